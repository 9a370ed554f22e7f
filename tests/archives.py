"""Build archives for the archive-layer tests: with the real ``tar``, ``zstd``, ``pzstd`` and ``gzip``
binaries (exactly as cachew does), with Python's ``tarfile``, and byte by byte for crafted headers.

Also: :func:`scan`, which runs a byte string through ``DecompressedStream`` + ``TarStream`` and reads
every member, and oracles taken from the real tools (``zstd -dc``, ``tar -t``, pzstd's own frame
announcements) that the tests compare against.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import subprocess
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snapcheck.options import Limits
from snapcheck.report import Finding, Severity
from snapcheck.sources.base import EntryKind
from snapcheck.sources.compression import DecompressedStream
from snapcheck.sources.tar import TarStream

ENV = {**os.environ, "LC_ALL": "C"}


def run(cmd: list[str], input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    res = subprocess.run(cmd, input=input, capture_output=True, env=ENV)
    if check and res.returncode != 0:
        raise RuntimeError(f"{cmd} failed ({res.returncode}): {res.stderr.decode(errors='replace')}")
    return res


def shell(script: str) -> bytes:
    """Run a bash pipeline with pipefail; return its stdout."""
    return run(["bash", "-o", "pipefail", "-c", script]).stdout


# ----------------------------------------------------------------------------- real tools
def cachew_archive(mirror: Path, threads: int = 2) -> bytes:
    """Exactly cachew's pipeline: ``tar -cpf - -C <mirror> --exclude='*.lock' . | pzstd -c -p<N>``."""
    return shell(f"tar -cpf - -C '{mirror}' --exclude='*.lock' . | pzstd -q -c -p{threads}")


def tar_dir(src: Path, *args: str, members: Iterable[str] = (".",)) -> bytes:
    """``tar -cpf - [args] -C src members...`` (GNU tar)."""
    return run(["tar", "-cpf", "-", *args, "-C", str(src), "--", *members]).stdout


def zstd(data: bytes, *args: str) -> bytes:
    return run(["zstd", "-q", "-c", *args], input=data).stdout


def pzstd(data: bytes, threads: int = 2) -> bytes:
    return run(["pzstd", "-q", "-c", f"-p{threads}"], input=data).stdout


def gzip(data: bytes, *args: str) -> bytes:
    return run(["gzip", "-c", "-n", *args], input=data).stdout


def zstd_dc(data: bytes) -> tuple[int, bytes]:
    """``zstd -dc``: (exit code, output)."""
    res = run(["zstd", "-q", "-dc"], input=data, check=False)
    return res.returncode, res.stdout


def gnu_tar_list(tar_bytes: bytes) -> tuple[int, list[str]]:
    """``tar -tf -``: (exit code, member names)."""
    res = run(["tar", "-tf", "-"], input=tar_bytes, check=False)
    return res.returncode, res.stdout.decode(errors="surrogateescape").splitlines()


def python_tarfile_list(tar_bytes: bytes) -> list[str]:
    """Python's tarfile in stream mode (``r|``): the names it accepts (it raises on what it rejects)."""
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r|") as tf:
        return [m.name for m in tf]


def pzstd_layout(data: bytes) -> list[tuple[int, int]]:
    """(offset, size) of each zstd frame of a pzstd stream, from pzstd's own skippable-frame
    announcements (independent of the code under test)."""
    out = []
    pos = 0
    while pos < len(data):
        magic, four, size = struct.unpack_from("<III", data, pos)
        assert magic == 0x184D2A50 and four == 4, f"not a pzstd header at {pos}"
        out.append((pos + 12, size))
        pos += 12 + size
    assert pos == len(data)
    return out


def make_tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


def disk_listing(root: Path) -> dict[str, tuple[EntryKind, bytes | str | None]]:
    """What a directory holds, as the tar layer should report it: path -> (kind, data or link target)."""
    out: dict[str, tuple[EntryKind, bytes | str | None]] = {"": (EntryKind.DIR, None)}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if rel.endswith(".lock"):
                continue
            if p.is_symlink():
                out[rel] = (EntryKind.SYMLINK, os.readlink(p))
            elif p.is_dir():
                out[rel] = (EntryKind.DIR, None)
            else:
                out[rel] = (EntryKind.FILE, p.read_bytes())
    return out


# ----------------------------------------------------------------------------- Python tarfile
@dataclass
class M:
    """A member for :func:`tarfile_archive`."""

    name: str
    data: bytes = b""
    type: bytes = tarfile.REGTYPE
    linkname: str = ""
    mode: int = 0o644
    pax: dict[str, str] = field(default_factory=dict)


def tarfile_archive(members: Iterable[M], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for m in members:
            ti = tarfile.TarInfo(m.name)
            ti.type = m.type
            ti.mode = m.mode
            ti.mtime = 1700000000
            ti.linkname = m.linkname
            if m.pax:
                ti.pax_headers = dict(m.pax)
            if m.type in (tarfile.REGTYPE, tarfile.AREGTYPE):
                ti.size = len(m.data)
                tf.addfile(ti, io.BytesIO(m.data))
            else:
                tf.addfile(ti)
    return buf.getvalue()


# ----------------------------------------------------------------------------- crafted bytes
def _octal(n: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, n)


def raw_header(
    name: bytes,
    size: int = 0,
    typeflag: bytes = b"0",
    *,
    linkname: bytes = b"",
    mode: int = 0o644,
    magic: bytes = b"ustar\x00",
    version: bytes = b"00",
    prefix: bytes = b"",
    size_field: bytes | None = None,
    checksum: int | None = None,
) -> bytes:
    """One 512-byte header built by hand (checksum computed unless given)."""
    h = bytearray(512)
    h[0 : len(name)] = name
    h[100:108] = _octal(mode, 8)
    h[108:116] = _octal(1000, 8)
    h[116:124] = _octal(1000, 8)
    h[124:136] = size_field if size_field is not None else _octal(size, 12)
    h[136:148] = _octal(1700000000, 12)
    h[156:157] = typeflag
    h[157 : 157 + len(linkname)] = linkname
    h[257:263] = magic
    h[263:265] = version
    h[345 : 345 + len(prefix)] = prefix
    h[148:156] = b" " * 8
    chk = sum(h) if checksum is None else checksum
    h[148:156] = b"%06o\0 " % chk
    return bytes(h)


def pad(data: bytes) -> bytes:
    return data + bytes(-len(data) % 512)


def member(name: bytes, data: bytes = b"", typeflag: bytes = b"0", **kw: Any) -> bytes:
    return raw_header(name, len(data), typeflag, **kw) + pad(data)


def pax_member(records: dict[bytes, bytes], typeflag: bytes = b"x") -> bytes:
    """A pax extended header member holding *records*."""
    body = b""
    for k, v in records.items():
        rec = b" " + k + b"=" + v + b"\n"
        n = len(rec) + 1
        while len(str(n).encode()) + len(rec) != n:
            n = len(str(n).encode()) + len(rec)
        body += str(n).encode() + rec
    return member(b"PaxHeader", body, typeflag)


END = bytes(1024)


# ----------------------------------------------------------------------------- running the code under test
@dataclass
class Scan:
    entries: list[
        tuple[str, EntryKind, int, str | None, bytes | None, int]
    ]  # path, kind, size, link, data, mode
    findings: list[Finding]
    kind: str
    frames: int
    members: int
    end_marker_seen: bool
    max_piece: int = 0

    @property
    def codes(self) -> set[str]:
        return {f.code for f in self.findings}

    @property
    def errors(self) -> set[str]:
        return {f.code for f in self.findings if f.severity is Severity.ERROR}

    @property
    def bad(self) -> set[str]:
        """Codes of errors and warnings (what must be empty for a good archive)."""
        return {f.code for f in self.findings if f.severity is not Severity.INFO}

    def paths(self) -> list[str]:
        return [e[0] for e in self.entries]

    def by_path(self) -> dict[str, tuple[EntryKind, bytes | str | None]]:
        return {p: (k, d if k is EntryKind.FILE else link) for p, k, _, link, d, _ in self.entries}


class ChunkedReader:
    """A raw stream that returns at most the next of *sizes* bytes per read (cycling): exercises every
    buffer boundary; optionally raises OSError after *fail_after* bytes."""

    def __init__(self, data: bytes, sizes: list[int] | None = None, fail_after: int | None = None) -> None:
        self._data = data
        self._pos = 0
        self._sizes = sizes or [1 << 20]
        self._i = 0
        self._fail_after = fail_after

    def read(self, n: int = -1) -> bytes:
        if self._fail_after is not None and self._pos >= self._fail_after:
            raise OSError(104, "Connection reset by peer")
        k = self._sizes[self._i % len(self._sizes)]
        self._i += 1
        if n >= 0:
            k = min(k, n)
        out = self._data[self._pos : self._pos + k]
        self._pos += len(out)
        return out


def scan(
    data: bytes,
    limits: Limits | None = None,
    *,
    sizes: list[int] | None = None,
    read_sizes: list[int] | None = None,
    use_chunks: bool = False,
    read_data: bool = True,
) -> Scan:
    """Run *data* through DecompressedStream + TarStream, reading every member's data.

    *sizes*: how many bytes the raw stream returns per read; *read_sizes*: how many bytes the test
    asks of each member per ``read`` (cycling; default: all at once); *use_chunks*: read members with
    the zero-copy ``read_chunk`` instead.
    """
    limits = limits or Limits()
    findings: list[Finding] = []
    dec = DecompressedStream(ChunkedReader(data, sizes), limits=limits, findings=findings, label="t.tar")
    tar = TarStream(dec, limits=limits, findings=findings, label="t.tar")
    out = []
    max_piece = 0
    for e in tar.entries():
        body: bytes | None = None
        if e.stream is not None and read_data:
            if use_chunks:
                parts = []
                while True:
                    piece = e.stream.read_chunk()  # type: ignore[attr-defined]
                    if not piece:
                        break
                    max_piece = max(max_piece, len(piece))
                    parts.append(bytes(piece))
                body = b"".join(parts)
            elif read_sizes:
                parts, i = [], 0
                while True:
                    want = read_sizes[i % len(read_sizes)]
                    i += 1
                    piece = e.stream.read(want)
                    assert len(piece) <= want
                    if not piece:
                        break
                    parts.append(piece)
                body = b"".join(parts)
            else:
                body = e.stream.read()
        out.append((e.path, e.kind, e.size, e.link_target, body, e.mode))
    return Scan(out, findings, dec.kind, dec.frames, tar.members, tar.end_marker_seen, max_piece)


def iter_pieces(data: bytes, limits: Limits | None = None) -> Iterator[bytes]:
    """The decompressed pieces of *data* as ``DecompressedStream.read_chunk`` hands them out."""
    dec = DecompressedStream(io.BytesIO(data), limits=limits or Limits(), findings=[], label="x")
    while True:
        piece = dec.read_chunk()
        if not piece:
            return
        yield piece


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()
