"""Fuzz target: pack and multi-pack-index bitmaps (snapcheck.gitformats.bitmap), EWAH included.

Run: ``python fuzz/fuzz_bitmap.py [corpus_dir] -max_total_time=N`` (see fuzz/README.md).
Each input is also tried with its trailing checksum made right, so mutations reach the EWAH decoder.
"""

from __future__ import annotations

from _harness import ALGOS, check, main, rehashed

from snapcheck.gitformats.bitmap import EwahError, check_bitmap_target, ewah_decode, parse_bitmap


def TestOneInput(data: bytes) -> None:
    for algo in ALGOS:
        for buf in (data, rehashed(data, algo)):
            for count in (None, len(buf) // 3):
                info, findings = parse_bitmap(buf, "objects/pack/pack-x.bitmap", algo, object_count=count,
                                              verify_checksum=True)
                check(findings)
                if info is not None:
                    check(check_bitmap_target(info, "objects/pack/pack-x.bitmap", expected_checksum=buf[:algo.rawsz],
                                              target="pack"))
    try:
        ewah_decode(data, 0, max_bits=1 << 20)  # EwahError is its documented failure
    except EwahError:
        pass


if __name__ == "__main__":
    main(TestOneInput)
