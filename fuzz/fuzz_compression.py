"""Fuzz target: the compression layer (snapcheck.sources.compression): zstd frame chains, pzstd
skippable frames, gzip members, plain tar.

Run: ``python fuzz/fuzz_compression.py [corpus_dir] -max_total_time=N`` (see fuzz/README.md).
The findings must not depend on how the raw stream is cut into reads, nor, for a stream the layer
accepts, the output, which must be what zstd/zlib themselves produce.
"""

from __future__ import annotations

import zlib

import zstandard
from _harness import check, main

from snapcheck.options import Limits
from snapcheck.report import Finding, Severity
from snapcheck.sources.compression import DecompressedStream

LIMITS = Limits(max_total_bytes=64 << 20)


class Pieces:
    def __init__(self, data: bytes, sizes: tuple[int, ...]) -> None:
        self._data, self._pos, self._sizes, self._i = data, 0, sizes, 0

    def read(self, n: int = -1) -> bytes:
        k = self._sizes[self._i % len(self._sizes)]
        self._i += 1
        if n >= 0:
            k = min(k, n)
        out = self._data[self._pos:self._pos + k]
        self._pos += len(out)
        return out


def decode(data: bytes, sizes: tuple[int, ...]) -> tuple[bytes, list[str], str]:
    findings: list[Finding] = []
    dec = DecompressedStream(Pieces(data, sizes), limits=LIMITS, findings=findings, label="x")
    out = dec.readall()
    check(findings)
    assert dec.failed == any(f.severity is Severity.ERROR for f in findings), findings
    return out, [f.code for f in findings], dec.kind


def TestOneInput(data: bytes) -> None:
    whole = decode(data, (1 << 20,))
    pieces = decode(data, (1, 5, 13, 4096))
    out, codes, kind = whole
    assert pieces[1:] == whole[1:], (pieces[1:], whole[1:])
    if [c for c in codes if c != "zstdNoChecksum"]:
        return  # how much comes out before the damage depends on where the reads cut the input
    assert pieces[0] == out
    if kind == "zstd":
        reader = zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True)
        assert reader.read() == out
    elif kind == "gzip":
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        expect, rest = b"", data
        while rest[:2] == b"\x1f\x8b":
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            expect += d.decompress(rest)
            rest = d.unused_data
        assert expect == out
    else:
        assert out == data


if __name__ == "__main__":
    main(TestOneInput)
