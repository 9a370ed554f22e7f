"""Fuzz target: pack reverse indexes and cruft-pack mtimes (snapcheck.gitformats.rev, .mtimes).

Run: ``python fuzz/fuzz_rev_mtimes.py [corpus_dir] -max_total_time=N`` (see fuzz/README.md).
"""

from __future__ import annotations

from _harness import ALGOS, check, main, rehashed

from snapcheck.gitformats.mtimes import parse_mtimes
from snapcheck.gitformats.rev import parse_rev


def TestOneInput(data: bytes) -> None:
    for algo in ALGOS:
        for buf in (data, rehashed(data, algo)):
            for given in (None, algo):
                check(parse_rev(buf, "objects/pack/pack-x.rev", given, None, verify_checksum=True))
                check(parse_mtimes(buf, "objects/pack/pack-x.mtimes", given, None, verify_checksum=True))


if __name__ == "__main__":
    main(TestOneInput)
