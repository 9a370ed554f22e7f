"""Fuzz target: reftable tables and ``tables.list`` (snapcheck.gitformats.reftable).

Run: ``python fuzz/fuzz_reftable.py [corpus_dir] -max_total_time=N`` (see fuzz/README.md).
The footer's CRC-32 is also made right on a copy of each input, so mutations reach the blocks.
"""

from __future__ import annotations

import struct
import zlib

from _harness import ALGOS, check, main

from snapcheck.gitformats import reftable as rt


def _crc_fixed(data: bytes) -> bytes:
    for version in (1, 2):
        n = rt.footer_size(version)
        if len(data) >= n and data[-n + 4:-n + 5] == bytes((version,)):
            body = data[-n:-4]
            return data[:-4] + struct.pack(">I", zlib.crc32(body))
    return data


def TestOneInput(data: bytes) -> None:
    tables = []
    for buf in (data, _crc_fixed(data)):
        for algo in (None, *ALGOS):
            info, findings = rt.parse_reftable(buf, "reftable/0x01-0x02-x.ref", algo)
            check(findings)
            if info is not None:
                tables.append(info)
    rt.merge_reftables(tables)
    rt.merged_peeled(tables)
    names, findings = rt.parse_tables_list(data, "reftable/tables.list")
    assert all(n and "/" not in n for n in names), names
    check(findings)


if __name__ == "__main__":
    main(TestOneInput)
