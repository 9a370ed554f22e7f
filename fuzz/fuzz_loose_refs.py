"""Fuzz target: loose refs and ``HEAD`` (snapcheck.gitformats.loose_refs).

Run: ``python fuzz/fuzz_loose_refs.py [corpus_dir] -max_total_time=N`` (see fuzz/README.md).
"""

from __future__ import annotations

from _harness import ALGOS, check, main

from snapcheck.gitformats.loose_refs import parse_head, parse_loose_ref

NAMES = ("refs/heads/main", "refs/tags/v1.0", "refs/remotes/origin/HEAD", "refs/heads/a..b", "MERGE_HEAD")


def TestOneInput(data: bytes) -> None:
    name = NAMES[len(data) % len(NAMES)]
    for algo in (None, *ALGOS):
        ref, findings = parse_loose_ref(data, name, algo, name, max_size=4096)
        check(findings)
        if ref is not None:
            assert ref.name == name and (ref.oid is None) != (ref.symref is None), ref
            if ref.oid is not None:
                assert ref.oid.hex().encode() in data.lower()
        head, findings = parse_head(data, algo)
        check(findings)
        if head is None:
            assert findings, data[:100]


if __name__ == "__main__":
    main(TestOneInput)
