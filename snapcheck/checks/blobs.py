"""Holding a file's bytes for the later checks: in memory when small, otherwise an mmap of the file
on disk (the mirror's own file, or a copy spooled to a private temp dir from a stream)."""

from __future__ import annotations

import mmap
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import SourceError

CHUNK = 1 << 20


def release_pages(buf: Any) -> None:
    """Drop the pages of a mapped file from this process's resident set (``MADV_DONTNEED``; they stay
    in the page cache and come back on the next access), so reading a pack of any size keeps the
    resident set bounded.  Anything else than an mmap is left alone."""
    advise = getattr(buf, "madvise", None)
    flag = getattr(mmap, "MADV_DONTNEED", None)
    if advise is not None and flag is not None:
        try:
            advise(flag)
        except (OSError, ValueError):  # closed, or not supported here: only memory is at stake
            pass


def pages_releaser(buf: Any, every: int = 32) -> Callable[[], None] | None:
    """For the inflaters that read a mapped file a window (~1 MiB) at a time: a callback that lets the
    file's pages go (:func:`release_pages`) every *every* windows, so one huge object does not keep
    its whole file resident.  None for a buffer in memory."""
    if not isinstance(buf, mmap.mmap):
        return None
    count = [0]

    def after_window() -> None:
        count[0] += 1
        if count[0] >= every:
            count[0] = 0
            release_pages(buf)

    return after_window


# A file up to this size is read into memory rather than mapped: every mapping keeps a file descriptor
# open (CPython's mmap holds its own), and a mirror with thousands of loose objects or small packs would
# run out of descriptors (``ulimit -n`` is often 1024) or of mappings (``vm.max_map_count``).
SMALL_FILE = 256 << 10


class Held:
    """Bytes of one file, as a buffer: ``bytes`` or a read-only ``mmap``.  ``close()`` releases it.
    A *lazy* one (a small spooled member, see :func:`read_stream`) keeps only its path and reads the
    file each time ``buf`` is asked for: it costs neither memory nor a file descriptor meanwhile."""

    def __init__(self, buf: bytes | mmap.mmap | None, size: int, disk_path: Path | None = None, *,
                 lazy: bool = False) -> None:
        self._buf: bytes | mmap.mmap | None = buf
        self.size = size
        self.disk_path = disk_path
        self._lazy = lazy and disk_path is not None
        self._closed = False

    @property
    def buf(self) -> bytes | mmap.mmap:
        if self._closed:
            raise ValueError("buffer already released")
        if self._lazy:
            assert self.disk_path is not None
            try:
                return self.disk_path.read_bytes()
            except OSError as e:
                raise SourceError(f"cannot read spool file {self.disk_path}: {e.strerror or e}") from e
        assert self._buf is not None
        return self._buf

    def close(self) -> None:
        if isinstance(self._buf, mmap.mmap):
            try:
                self._buf.close()
            except BufferError:
                # a memoryview still points into it: leave it to the garbage collector
                pass
        self._buf = None
        self._closed = True


def map_file(path: Path) -> Held:
    """A file's bytes: read into memory up to :data:`SMALL_FILE` bytes, else mapped read-only (empty
    files become b'')."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                return Held(b"", 0, path)
            if size <= SMALL_FILE:
                data = f.read()
                return Held(data, len(data), path)
            return Held(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ), size, path)
    except OSError as e:
        raise SourceError(f"cannot read {path}: {e.strerror or e}") from e


class Spool:
    """A private temp dir for archive members that must outlive the stream (removed by ``close``)."""

    def __init__(self, parent: str | None = None) -> None:
        self._parent = parent
        self._dir: Path | None = None
        self._n = 0

    def _ensure(self) -> Path:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="snapcheck-spool-", dir=self._parent))
        return self._dir

    def new_file(self, hint: str) -> tuple[Path, BinaryIO]:
        d = self._ensure()
        self._n += 1
        safe = "".join(c if c.isalnum() or c in "-._" else "_" for c in hint)[-80:]
        p = d / f"{self._n:06d}-{safe}"
        try:
            return p, open(p, "xb")
        except OSError as e:
            raise SourceError(f"cannot write spool file {p}: {e.strerror or e}") from e

    @property
    def used(self) -> bool:
        return self._dir is not None

    def close(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


def read_stream(stream: BinaryIO, size: int, *, spool: Spool, hint: str, max_memory: int) -> Held:
    """Read a member's stream to its end: into memory when ``size <= max_memory``, else into the spool."""
    if size <= max_memory:
        parts = []
        while True:
            b = stream.read(CHUNK)
            if not b:
                break
            parts.append(b)
        data = b"".join(parts)
        return Held(data, len(data))
    path, f = spool.new_file(hint)
    written = 0
    with f:
        while True:
            b = stream.read(CHUNK)
            if not b:
                break
            f.write(b)
            written += len(b)
    if written <= SMALL_FILE:  # over the memory budget: read again when needed, not held, not mapped
        return Held(None, written, path, lazy=True)
    return map_file(path)
