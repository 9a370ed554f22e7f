"""Fuzz target: ``packed-refs`` (snapcheck.gitformats.packed_refs).

Run: ``python fuzz/fuzz_packed_refs.py [corpus_dir] -max_total_time=N`` (see fuzz/README.md).
Every record the parser returns must come from the input (its id in hex, its name as bytes).
"""

from __future__ import annotations

from _harness import ALGOS, check, main

from snapcheck.gitformats.packed_refs import parse_packed_refs


def TestOneInput(data: bytes) -> None:
    for algo in (None, *ALGOS):
        result, findings = parse_packed_refs(data, algo, "packed-refs", max_line=4096, max_refs=10_000)
        check(findings)
        assert len(result.refs) <= 10_000
        low = data.lower()
        for ref in result.refs[:50]:
            assert ref.oid.hex().encode() in low, (ref, data[:200])
            assert ref.name.encode("utf-8", "surrogateescape") in data, (ref, data[:200])


if __name__ == "__main__":
    main(TestOneInput)
