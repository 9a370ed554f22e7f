"""Fuzz target: multi-pack-index files (snapcheck.gitformats.midx) and the MIDX/idx cross-check.

Run: ``python fuzz/fuzz_midx.py [corpus_dir] -max_total_time=N`` (see fuzz/README.md).
Each input is also tried with its trailing checksum made right, so mutations reach the chunk checks.
"""

from __future__ import annotations

from _harness import ALGOS, check, has_errors, main, rehashed

from snapcheck.gitformats.midx import check_midx_against_packs, parse_midx


def TestOneInput(data: bytes) -> None:
    for algo in ALGOS:
        for buf in (data, rehashed(data, algo)):
            for given in (None, algo):
                m, findings = parse_midx(buf, "objects/pack/multi-pack-index", given, verify_checksum=True)
                check(findings)
                if m is None:
                    assert findings
                    continue
                for i in (0, m.count // 2, m.count - 1) if m.count else ():
                    name = m.name(i)
                    pack, _ = m.location(i)
                    if not has_errors(findings):
                        assert m.find(name) is not None
                        assert 0 <= pack < len(m.pack_names), (pack, m.pack_names)
                assert len(m.pack_ids()) == len(m.offsets()) == m.count
                for deep in (False, True):
                    check(check_midx_against_packs(m, "objects/pack/multi-pack-index", {}, deep=deep))


if __name__ == "__main__":
    main(TestOneInput)
