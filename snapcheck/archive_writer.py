"""The archive snapcheck writes: a pax tar of a staged mirror under ``./``, zstd-compressed, whose last
member is the manifest (DESIGN.md "The archive format snapcheck writes").

Layout of the tar stream, in order:

1. every directory, parents before children, sorted by path (``./``, ``./objects/``, ...), including
   ``./.snapcheck/`` so a reader learns early that a manifest must follow;
2. every regular file of the staging directory, sorted by path bytes (so ``pack-X.idx`` comes
   before ``pack-X.pack``), each exactly as large as the manifest records;
3. ``./.snapcheck/manifest.json``, the manifest, as the **last** member;
4. the end-of-archive marker: two 512-byte zero blocks (nothing after them).

Headers are POSIX pax (``tarfile.PAX_FORMAT``: plain ustar headers unless a name or size needs a pax
record), numeric owner 0/0 with empty user and group names, the file's permission bits, its mtime in
whole seconds.  The same staging directory and manifest give the same bytes.

The stream is zstd-compressed (``ZstdCompressor(level, threads, write_checksum=True,
write_content_size=False)``: every frame carries its XXH64 checksum) and written to the sink as it is
produced, one buffer of file data at a time: memory use does not depend on the archive's size.
:class:`ArchiveStats` reports the sha256 of the compressed bytes handed to the sink.

The writer refuses (:class:`ArchiveWriteError`) to write an archive that would not match its
manifest: a staged file the manifest lacks or the reverse, a file whose size is not the recorded one
(also when it changes while it is read), anything but directories and regular files, or a staging
directory that has its own ``.snapcheck/``.  The caller must then abort the upload.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

import zstandard

from .capture import Capture
from .errors import SnapcheckError
from .manifest import MANIFEST_DIR, MANIFEST_PATH, SCHEMA, Manifest

__all__ = ["ArchiveStats", "ArchiveWriteError", "build_manifest", "write_archive"]

BLOCK = 512
_CHUNK = 1 << 20
_ZEROS = bytes(BLOCK * 2)


class ArchiveWriteError(SnapcheckError):
    """The archive could not be written as its manifest describes it; abort the upload.  Exit 3."""

    exit_code = 3


@dataclass(frozen=True)
class ArchiveStats:
    files: int  # regular-file members, the manifest included
    dirs: int  # directory members
    tar_bytes: int  # size of the uncompressed tar stream
    compressed_bytes: int  # bytes handed to the sink
    sha256: str  # of the compressed bytes


class _HashingSink:
    """The file-like object zstd writes into: forwards to the sink, counts and hashes."""

    def __init__(self, sink: BinaryIO) -> None:
        self._sink = sink
        self.hash = hashlib.sha256()
        self.count = 0

    def write(self, data: Any) -> int:
        mv = memoryview(data).cast("B")
        n = len(mv)
        self.hash.update(mv)
        done = 0
        while done < n:
            k = self._sink.write(mv[done:])
            done += n - done if k is None else k
            if k == 0:
                raise ArchiveWriteError("the archive sink accepted no bytes")
        self.count += n
        return n

    def flush(self) -> None:
        flush = getattr(self._sink, "flush", None)
        if flush is not None:
            flush()


def _header(name: str, *, kind: bytes, size: int, mode: int, mtime: int) -> bytes:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.size = size
    ti.mode = mode
    ti.mtime = mtime
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    return ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _scan(staging: Path) -> tuple[list[tuple[str, os.stat_result]], list[tuple[str, os.stat_result]]]:
    """(directories, files) of the staging directory as repository-relative paths ('' = root)."""
    dirs: list[tuple[str, os.stat_result]] = [("", os.stat(staging, follow_symlinks=False))]
    files: list[tuple[str, os.stat_result]] = []
    stack = [""]
    while stack:
        rel = stack.pop()
        with os.scandir(staging / rel if rel else staging) as it:
            entries = list(it)
        for d in entries:
            sub = f"{rel}/{d.name}" if rel else d.name
            st = d.stat(follow_symlinks=False)
            if not rel and d.name == MANIFEST_DIR:
                raise ArchiveWriteError(f"{staging / d.name}: the staging directory has its own {MANIFEST_DIR}/; "
                                        "snapcheck writes that member itself")
            if stat.S_ISDIR(st.st_mode):
                dirs.append((sub, st))
                stack.append(sub)
            elif stat.S_ISREG(st.st_mode):
                files.append((sub, st))
            else:
                raise ArchiveWriteError(f"{staging / sub}: neither a directory nor a regular file")

    def key(item: tuple[str, os.stat_result]) -> bytes:
        return item[0].encode("utf-8", "surrogateescape")

    dirs.sort(key=key)
    files.sort(key=key)
    return dirs, files


def write_archive(
    staging: Path,
    manifest: Manifest,
    sink: BinaryIO,
    *,
    level: int = 3,
    threads: int = 0,
) -> ArchiveStats:
    """Write the archive of *staging* (a staged mirror, see :mod:`snapcheck.capture`) with *manifest*
    as its last member to *sink*, compressed with zstd.  The sink is flushed, not closed."""
    staging = Path(staging)
    dirs, files = _scan(staging)
    seen = {rel for rel, _ in files}
    missing = sorted(set(manifest.files) - seen)
    extra = sorted(seen - set(manifest.files))
    if missing or extra:
        raise ArchiveWriteError(
            f"{staging}: the staging directory does not match the manifest "
            f"(missing {len(missing)}: {', '.join(missing[:3])}; not in the manifest {len(extra)}: "
            f"{', '.join(extra[:3])})")
    created = manifest.created_epoch()
    if created is None:
        raise ArchiveWriteError(f"manifest created time {manifest.created!r} is not an RFC 3339 UTC time")
    doc = manifest.to_json()
    out = _HashingSink(sink)
    cctx = zstandard.ZstdCompressor(level=level, threads=threads, write_checksum=True, write_content_size=False)
    writer: Any = cctx.stream_writer(cast(IO[bytes], out), write_return_read=True, closefd=False)
    buf = bytearray(_CHUNK)
    mv = memoryview(buf)
    tar_bytes = 0

    def emit(data: bytes | memoryview) -> None:
        nonlocal tar_bytes
        writer.write(data)
        tar_bytes += len(data)

    # On an error nothing more is written: closing the writer would end the zstd frame and make a
    # cut tar look like a complete stream.
    for rel, st in dirs:
        emit(_header(f"./{rel}" if rel else ".", kind=tarfile.DIRTYPE, size=0,
                     mode=stat.S_IMODE(st.st_mode), mtime=int(st.st_mtime)))
    emit(_header(f"./{MANIFEST_DIR}", kind=tarfile.DIRTYPE, size=0, mode=0o755, mtime=created))
    for rel, st in files:
        size = manifest.files[rel][0]
        emit(_header(f"./{rel}", kind=tarfile.REGTYPE, size=size,
                     mode=stat.S_IMODE(st.st_mode), mtime=int(st.st_mtime)))
        _copy_member(staging / rel, rel, size, mv, emit)
    emit(_header(f"./{MANIFEST_PATH}", kind=tarfile.REGTYPE, size=len(doc), mode=0o644, mtime=created))
    emit(doc)
    emit(_pad(len(doc)))
    emit(_ZEROS)
    writer.flush(zstandard.FLUSH_FRAME)
    writer.close()
    out.flush()
    return ArchiveStats(files=len(files) + 1, dirs=len(dirs) + 1, tar_bytes=tar_bytes,
                        compressed_bytes=out.count, sha256=out.hash.hexdigest())


def _pad(n: int) -> bytes:
    return bytes(-n % BLOCK)


def _copy_member(path: Path, rel: str, size: int, mv: memoryview, emit: Any) -> None:
    """Emit exactly *size* bytes of *path* and the padding; fail if the file is shorter or longer."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        left = size
        while left:
            k = os.readv(fd, [mv[:min(left, len(mv))]])
            if not k:
                raise ArchiveWriteError(f"{rel}: ended after {size - left} of {size} bytes while it was archived")
            emit(mv[:k])
            left -= k
        if os.read(fd, 1):
            raise ArchiveWriteError(f"{rel}: larger than the {size} bytes the manifest records")
    finally:
        os.close(fd)
    emit(_pad(size))


def build_manifest(capture: Capture, tool_version: str, *, created: str | None = None) -> Manifest:
    """The manifest of a capture.  *created* (RFC 3339 UTC) defaults to now."""
    if created is None:
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Manifest(
        schema=SCHEMA,
        tool_version=tool_version,
        created=created,
        object_format=capture.object_format,
        head_target=capture.head_target,
        head_oid=capture.head_oid.hex() if capture.head_oid is not None else None,
        refs={name: oid.hex() for name, oid in capture.refs.items()},
        symrefs=dict(capture.symrefs),
        files=dict(capture.files),
        object_count=capture.object_count,
        pack_count=capture.pack_count,
    )
