"""Fuzz target: the forward-only tar reader (snapcheck.sources.tar.TarStream).

Run: ``python fuzz/fuzz_tar.py [corpus_dir] -max_total_time=N`` (see fuzz/README.md).
The raw stream hands out odd-sized pieces and members are read with ``read``, ``read_chunk`` or not at
all: the entries and findings must not depend on that.  No yielded path may be absolute or climb out.
"""

from __future__ import annotations

from _harness import check, main

from snapcheck.options import Limits
from snapcheck.report import Finding
from snapcheck.sources.tar import TarStream

LIMITS = Limits(max_members=2000, max_path_length=1024)


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


def scan(data: bytes, sizes: tuple[int, ...], how: str) -> tuple[list[tuple[str, str, int, str | None, bytes]], list[str]]:
    findings: list[Finding] = []
    tar = TarStream(Pieces(data, sizes), limits=LIMITS, findings=findings, label="t.tar")
    out = []
    for e in tar.entries():
        body = b""
        if e.stream is not None and how != "skip":
            if how == "read":
                body = e.stream.read()
            else:
                parts = []
                while piece := e.stream.read_chunk(700):  # type: ignore[attr-defined]
                    parts.append(bytes(piece))
                body = b"".join(parts)
            assert len(body) <= e.size
        p = e.path
        assert not p.startswith("/") and ".." not in p.split("/") and "\0" not in p, p
        out.append((p, e.kind.value, e.size, e.link_target, body))
    check(findings)
    return out, [f.code for f in findings]


def TestOneInput(data: bytes) -> None:
    whole = scan(data, (1 << 20,), "read")
    assert scan(data, (1, 511, 4096), "chunks") == whole
    entries, codes = scan(data, (512,), "skip")
    assert codes == whole[1] and [e[:4] for e in entries] == [e[:4] for e in whole[0]]


if __name__ == "__main__":
    main(TestOneInput)
