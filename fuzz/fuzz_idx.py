"""Fuzz target: pack indexes, v1 and v2 (snapcheck.gitformats.idx), and the idx/pack cross-check.

Run: ``python fuzz/fuzz_idx.py [corpus_dir] -max_total_time=N`` (see fuzz/README.md).
Each input is also tried with its trailing checksum made right, so mutations reach the table checks.
"""

from __future__ import annotations

from _harness import ALGOS, check, has_errors, main, rehashed

from snapcheck.gitformats.idx import check_idx_against_pack, parse_idx


def TestOneInput(data: bytes) -> None:
    for algo in ALGOS:
        for buf in (data, rehashed(data, algo)):
            idx, findings = parse_idx(buf, algo, "objects/pack/pack-x.idx", verify_checksum=True)
            check(findings)
            if idx is None:
                assert findings
                continue
            n = len(idx)
            assert n == idx.fanout[255]
            for i in (0, n // 2, n - 1) if n and not has_errors(findings) else ():
                name = idx.name(i)
                assert len(name) == algo.rawsz
                found = idx.find(name)
                assert found is not None and idx.name(found) == name
                idx.offset(i)
                idx.crc32(i)
            offsets = idx.offsets()
            assert len(offsets) == n
            size = (max(offsets) + 100) if n else 100
            check(check_idx_against_pack(idx, "objects/pack/pack-x.idx", pack_path="objects/pack/pack-x.pack",
                                         pack_count=n, pack_trailer=buf[-2 * algo.rawsz:-algo.rawsz],
                                         pack_size=size))
            check(check_idx_against_pack(idx, "objects/pack/pack-x.idx", pack_path="objects/pack/pack-x.pack",
                                         pack_count=n + 1, pack_trailer=None, pack_size=12 + algo.rawsz))
            idx.release()


if __name__ == "__main__":
    main(TestOneInput)
