"""Objects from packs and loose files: random access for the walk, and whole-pack passes.

**Random access** (:class:`ObjectStore`): an object is found through the pack indexes (the idx is
the table: nothing per object is kept in Python), then read at its offset; OFS and REF deltas
are resolved by following the chain to its base (iteratively, REF cycles and over-long chains
are errors) and applying the deltas forward, with a bounded LRU cache of resolved objects so that
siblings share their bases.  Loose objects are inflated and hash-checked on read.

**Whole-pack passes** (:func:`verify_pack_objects` at ``full``, :func:`scan_pack_links` for the
connectivity check at ``standard``) take every object of a pack in offset order, with boundaries
from the sorted idx offsets (the last object ends where the trailer starts):

1. each entry header is parsed once (type, size, delta base); an OFS base must be an object
   boundary of this pack, a REF base an object of this pack (git: packfile.c ``get_delta_base``:
   "failed to find delta-pack base object");
2. ``full``: the CRC32 of the raw entry equals the idx's (git: pack-check.c "index CRC mismatch
   for object … at offset N");
3. every object is inflated exactly **once**: delta trees are resolved from their bases (depth
   first, only one chain of contents held at a time), never per object; the zlib stream must
   produce exactly the declared size and (``full``) end exactly at the next object;
4. ``full``: the hash of ``<type> <size>\\0<content>`` equals the idx name at that offset (git:
   "packed <oid> from <pack> is corrupt"), and with ``check_format`` git's fsck rules run on
   the content (:func:`snapcheck.gitformats.objects.check_object_format`);
5. every idx entry is accounted for: resolved, or reported (unresolvable deltas are reported
   once, at the base that broke them).

The ``standard`` pass inflates only commits, trees and tags (a blob delta tree is typed without
inflating anything) and feeds a :class:`LinkCollector`, which lets the connectivity check prove
"every id referenced by an object exists with the referenced type" with set operations instead of
a walk (see :mod:`snapcheck.checks.graph`).  ``full`` can feed the same collector, so connectivity
reuses its pass.
"""

from __future__ import annotations

import bisect
import hashlib
import importlib
import itertools
import mmap
import operator
import os
import tempfile
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import SourceError
from ..gitformats.chunks import find_in_buckets, record_splitter
from ..gitformats.common import Buffer, HashAlgo
from ..gitformats.loose_object import check_loose_object, loose_object_type
from ..gitformats.objects import (
    OBJ_BLOB,
    OBJ_COMMIT,
    OBJ_OFS_DELTA,
    OBJ_REF_DELTA,
    OBJ_TAG,
    OBJ_TREE,
    check_object_format,
    commit_links,
    fsck_tree,
    tag_target,
    tree_links_into,
    tree_sort_re,
    type_name,
)
from ..gitformats.zlibimpl import zlib
from ..report import Finding, Severity, finding, register
from .blobs import pages_releaser, release_pages

_rust_apply_delta: Callable[[bytes, bytes], list[bytes]] | None = None
_RustDeltaError: type[Exception] = ValueError
_rust_loaded = False


def _load_rust() -> None:
    """dulwich's Rust delta applier, imported on the first delta (optional: the pure-Python one below
    mirrors git exactly; a run that applies no delta never imports dulwich)."""
    global _rust_apply_delta, _RustDeltaError, _rust_loaded
    _rust_loaded = True
    try:
        _rust_apply_delta = importlib.import_module("dulwich._pack").apply_delta
        _RustDeltaError = importlib.import_module("dulwich.errors").ApplyDeltaError
    except (ImportError, AttributeError):  # pragma: no cover - depends on the installed wheel
        _rust_apply_delta = None


register(
    "objectStore",
    ("packObjectCorrupt", Severity.ERROR,
     "A packed object cannot be read: bad entry header, broken zlib stream, wrong inflated size, bytes "
     "between its stream and the next object, or a delta that does not apply.",
     "git fsck: error: cannot unpack <oid> from <pack> at offset N (git index-pack --verify fails)"),
    ("packObjectHashMismatch", Severity.ERROR,
     "A packed object's content does not hash to the object id the pack index gives it.",
     "git fsck: error: packed <oid> from <pack> is corrupt"),
    ("packCrcMismatch", Severity.ERROR,
     "The CRC32 of a packed object's raw bytes differs from the one recorded in the pack index.",
     "git fsck: error: index CRC mismatch for object <oid> from <pack> at offset N"),
    ("packDeltaBaseMissing", Severity.ERROR,
     "A delta's base is not in its pack (REF delta) or its offset is not an object of the pack (OFS delta).",
     "error: failed to find delta-pack base object / cannot unpack <oid> from <pack>"),
    ("packObjectOffsetInvalid", Severity.ERROR,
     "A pack index entry points outside the pack's object data or at the same offset as another entry.",
     "fatal: offset beyond end of packfile (truncated pack?) / index CRC mismatch"),
    ("looseObjectUnreadable", Severity.ERROR,
     "A loose object needed by the walk could not be read or does not hold the object its path names.",
     "error: unable to unpack contents of <path> / hash-path mismatch; git fsck: object corrupt or missing"),
    ("objectMissing", Severity.ERROR,
     "An object named by a reachable commit, tree or tag is in no pack and no loose file.",
     "git fsck: broken link from <type> <oid> to <type> <oid>; missing <type> <oid>"),
)

MAX_DELTA_CHAIN = 10_000  # git's pack.depth is at most 4095; longer chains are loops or damage
_RUST_DELTA_LIMIT = 64 << 20  # results larger than this are built incrementally in Python
_HEADER_SHIFT_LIMIT = 64  # git: unpack_object_header_buffer refuses sizes beyond unsigned long
_MAX_INFLATE_CALL = 1 << 30  # output per zlib call (sizes from damaged headers can be absurd)
_MAX_OBJECT_SIZE = 1 << 62
# ``full``: a blob at least this large is hashed as it inflates, never held whole, and written to a
# mapped temp file when deltas are built on it; a blob delta with a result this large is replayed into
# the hash the same way (_PackPass._stream_blob, _blob_delta).  The window and chunk bound the bytes
# in memory meanwhile
STREAM_MIN = 16 << 20
_STREAM_WINDOW = 1 << 20
_STREAM_CHUNK = 1 << 20


class PackIndexLike(Protocol):
    """What the store needs from a parsed pack index (:class:`snapcheck.gitformats.idx.PackIndex`)."""

    version: int
    count: int
    pack_checksum: bytes

    def name(self, i: int) -> bytes: ...
    def find(self, oid: bytes) -> int | None: ...
    def offset(self, i: int) -> int: ...
    def crc32(self, i: int) -> int | None: ...
    def offsets(self) -> array[int]: ...
    def names_view(self) -> memoryview: ...


@dataclass
class PackSource:
    """One pack: its repository-relative path (used in findings), its bytes, its parsed index."""

    label: str
    buf: Buffer
    idx: PackIndexLike
    order: Sequence[int] | None = None  # idx positions in pack order (a .rev table), checked before use
    order_checked: bool = False  # ... unless it was proven already (a .rev that verified)


# a loose object: (repository-relative path, zero-argument callable returning the file's bytes)
LooseEntry = tuple[str, Callable[[], Buffer]]


class ObjectError(Exception):
    """An object could not be read; ``finding()`` turns it into a report entry."""

    def __init__(self, code: str, path: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.path = path
        self.message = message

    def finding(self) -> Finding:
        return finding(self.code, self.path, self.message)


class _Bad(Exception):
    """Internal: damage found while decoding a pack entry (code, text)."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


# --------------------------------------------------------------------------------------------------
# pack entry decoding
# --------------------------------------------------------------------------------------------------
def _byte_view(buf: Buffer) -> memoryview:
    mv = memoryview(buf)
    if mv.ndim != 1 or mv.format != "B":
        mv = mv.cast("B")
    return mv


def _entry_header(mv: memoryview, off: int, end: int) -> tuple[int, int, int]:
    """(type, size, position after the header) of the entry at *off* (git: unpack_object_header_buffer)."""
    if not 12 <= off < end:
        raise _Bad("packObjectCorrupt", f"offset {off} is outside the object data (12..{end})")
    c = mv[off]
    typ = (c >> 4) & 7
    size = c & 15
    shift = 4
    p = off + 1
    while c & 0x80:
        if p >= end or shift >= _HEADER_SHIFT_LIMIT:
            raise _Bad("packObjectCorrupt", f"bad object header at offset {off}")
        c = mv[p]
        p += 1
        size |= (c & 0x7F) << shift
        shift += 7
    if size >= _MAX_OBJECT_SIZE:
        raise _Bad("packObjectCorrupt", f"bad object header at offset {off} (size {size})")
    return typ, size, p


def _ofs_base(mv: memoryview, p: int, end: int, off: int) -> tuple[int, int]:
    """(base offset, position after the encoded distance) of an OFS delta at *off*."""
    if p >= end:
        raise _Bad("packObjectCorrupt", f"delta at offset {off} is cut inside its base distance")
    c = mv[p]
    p += 1
    dist = c & 0x7F
    while c & 0x80:
        if p >= end or dist >> 56:
            raise _Bad("packObjectCorrupt", f"delta base offset overflow at offset {off}")
        c = mv[p]
        p += 1
        dist = ((dist + 1) << 7) | (c & 0x7F)
    base = off - dist
    if dist == 0 or base < 12:
        raise _Bad("packDeltaBaseMissing",
                   f"delta at offset {off} names base offset {base}, which is not before it in the pack")
    return base, p


def _stream_verdict(eof: bool, have: int, size: int, start: int, stop: int) -> None:
    """Raise where an inflated entry (stream at *start*, the next object at *stop*) is not the *size*
    bytes its header declares: too long, not ended, or short."""
    if have > size:
        raise _Bad("packObjectCorrupt", f"inflates to more than the {size} bytes its header declares")
    if not eof:
        raise _Bad("packObjectCorrupt",
                   f"zlib stream at offset {start} does not end before offset {stop} ({have} of {size} bytes)")
    if have != size:
        raise _Bad("packObjectCorrupt", f"inflates to {have} bytes, not the {size} its header declares")


def _inflate(mv: memoryview, start: int, stop: int, size: int, *, exact: bool) -> tuple[bytes, int]:
    """Inflate the zlib stream at *start* (input bounded by *stop*) that must give *size* bytes.
    With *exact*, *stop* is the next object and the whole range is fed at once; otherwise the input
    is fed in growing windows, so that what follows the stream is never copied in bulk.  Output is
    bounded by one byte more than *size* (that byte reveals an over-long stream).  Returns (data,
    number of input bytes left after the stream's end)."""
    d = zlib.decompressobj()
    want = size + 1
    parts: list[bytes] = []
    have = 0
    pos = start
    step = stop - start if exact else size + (size >> 3) + 64
    try:
        while True:
            if d.unconsumed_tail:
                inp: Any = d.unconsumed_tail
            elif pos < stop:
                hi = min(stop, pos + step)
                inp = mv[pos:hi]
                pos = hi
                step *= 2
            else:
                inp = b""
            chunk = d.decompress(inp, min(want - have, _MAX_INFLATE_CALL))
            if chunk:
                parts.append(chunk)
                have += len(chunk)
            if d.eof or have > size or (not chunk and not inp):
                break
    except zlib.error as e:
        raise _Bad("packObjectCorrupt", f"zlib stream at offset {start} is corrupt ({e})") from None
    _stream_verdict(d.eof, have, size, start, stop)
    data = parts[0] if len(parts) == 1 else b"".join(parts)
    return data, len(d.unused_data)


def _inflate_to(mv: memoryview, start: int, stop: int, size: int, sink: Callable[[bytes], object],
                after_window: Callable[[], object] | None = None) -> int:
    """:func:`_inflate` with *exact* (the stream at *start*, bounded by the next object at *stop*, must
    give *size* bytes), handing the content to *sink* chunk by chunk instead of returning it: the
    input is fed ``_STREAM_WINDOW`` bytes at a time and at most ``_STREAM_CHUNK`` bytes come out per
    call, so memory stays bounded whatever the object's size.  Same verdicts and messages as
    :func:`_inflate`; *after_window* runs after each window is used up (to let mapped pages go).
    Returns the number of input bytes left after the stream's end."""
    d = zlib.decompressobj()
    want = size + 1
    have = 0
    pos = start
    tail: Any = b""
    try:
        while True:
            if not tail and pos < stop:
                if after_window is not None and pos > start:
                    after_window()
                tail = mv[pos:min(stop, pos + _STREAM_WINDOW)]
                pos += len(tail)
            # with the input used up, empty calls still drain what an output-bound call left pending
            chunk = d.decompress(tail, min(want - have, _STREAM_CHUNK))
            rest = d.unconsumed_tail
            if chunk:
                sink(chunk)
                have += len(chunk)
            if d.eof or have > size:
                break
            if not chunk and len(rest) == len(tail):  # nothing out, nothing taken: the input is exhausted
                break
            tail = rest
    except zlib.error as e:
        raise _Bad("packObjectCorrupt", f"zlib stream at offset {start} is corrupt ({e})") from None
    _stream_verdict(d.eof, have, size, start, stop)
    return len(d.unused_data) + stop - pos


def _delta_varint(delta: bytes, pos: int) -> tuple[int, int]:
    v = 0
    shift = 0
    n = len(delta)
    while True:
        if pos >= n or shift > 63:
            raise _Bad("packObjectCorrupt", "delta header is cut or too large")
        c = delta[pos]
        pos += 1
        v |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return v, pos


def _apply_delta_py(src: bytes, delta: bytes, pos: int, dst_size: int) -> bytes:
    """git: patch-delta.c in Python (results too large for dulwich's Rust applier, or no Rust): the
    replay of :func:`_apply_delta_to`, collected."""
    parts: list[Buffer] = []
    _apply_delta_to(src, delta, pos, dst_size, parts.append)
    return b"".join(parts)


def _delta_header(delta: bytes, src_len: int) -> tuple[int, int]:
    """A delta's result size and the position of its first opcode; raises where git's patch_delta
    refuses the delta before replaying it (too short, or made for a base of another size)."""
    if len(delta) < 4:
        raise _Bad("packObjectCorrupt", "delta is shorter than the smallest valid delta (4 bytes)")
    # the two sizes, inline (this runs once per delta); _delta_varint handles the long ones
    c = delta[0]
    if c < 0x80:
        src_size, pos = c, 1
    elif delta[1] < 0x80:
        src_size, pos = (c & 0x7F) | (delta[1] << 7), 2
    else:
        src_size, pos = _delta_varint(delta, 0)
    c = delta[pos]
    if c < 0x80:
        dst_size, pos = c, pos + 1
    elif pos + 1 < len(delta) and delta[pos + 1] < 0x80:
        dst_size, pos = (c & 0x7F) | (delta[pos + 1] << 7), pos + 2
    else:
        dst_size, pos = _delta_varint(delta, pos)
    if src_size != src_len:
        raise _Bad("packObjectCorrupt", f"delta expects a {src_size}-byte base but the base has {src_len} bytes")
    return dst_size, pos


def apply_delta(src: bytes, delta: bytes) -> bytes:
    """Apply a git delta to *src*; raises on anything git's patch_delta refuses."""
    dst_size, pos = _delta_header(delta, len(src))
    if not _rust_loaded:
        _load_rust()
    if _rust_apply_delta is not None and dst_size <= _RUST_DELTA_LIMIT:
        try:
            chunks = _rust_apply_delta(src, delta)
        except (_RustDeltaError, ValueError, MemoryError) as e:
            raise _Bad("packObjectCorrupt", f"delta does not apply ({e})") from None
        res: bytes = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if len(res) != dst_size:
            raise _Bad("packObjectCorrupt", f"delta gives {len(res)} bytes, not the {dst_size} it declares")
        return res
    return _apply_delta_py(src, delta, pos, dst_size)


def _apply_delta_to(src: Buffer, delta: bytes, pos: int, dst_size: int, sink: Callable[[Buffer], object],
                    every: Callable[[], object] | None = None) -> None:
    """git: patch-delta.c, from the first opcode at *pos*: an instruction that does not fit stops the
    replay, which is then an error unless the delta was used up and the result is complete.  The
    result goes to *sink* in pieces of about ``_STREAM_CHUNK`` bytes (less than 4 KiB more), never
    built whole; *src* may be a mapped file, whose long copied ranges go to *sink* as views of it (not
    copies).  *every* runs after each piece (to let the mapped pages of *src* go)."""
    out = bytearray()  # inserted bytes and short copies, not handed on yet
    have = 0  # bytes of the result so far (handed on or in out)
    n = len(delta)
    view = memoryview(src)
    src_size = len(view)
    limit = _STREAM_CHUNK

    def flush() -> None:
        sink(bytes(out))
        out.clear()
        if every is not None:
            every()

    while pos < n:
        cmd = delta[pos]
        pos += 1
        if cmd & 0x80:
            off = sz = 0
            for bit, shift in ((0x01, 0), (0x02, 8), (0x04, 16), (0x08, 24)):
                if cmd & bit:
                    off |= (delta[pos] if pos < n else 0) << shift
                    pos += 1
            for bit, shift in ((0x10, 0), (0x20, 8), (0x40, 16)):
                if cmd & bit:
                    sz |= (delta[pos] if pos < n else 0) << shift
                    pos += 1
            if sz == 0:
                sz = 0x10000
            if off + sz > src_size or sz > dst_size - have:
                break
            have += sz
            if sz < 4096:
                out += view[off:off + sz]
            else:  # a long copy goes on as views of the base, in pieces of at most the chunk size
                if out:
                    flush()
                for lo in range(off, off + sz, limit):
                    sink(view[lo:min(off + sz, lo + limit)])
                    if every is not None:
                        every()
                continue
        elif cmd:
            if cmd > dst_size - have or cmd > n - pos:
                break
            out += delta[pos:pos + cmd]
            pos += cmd
            have += cmd
        else:
            raise _Bad("packObjectCorrupt", "unexpected delta opcode 0")
        if len(out) >= limit:
            flush()
    if pos != n or have != dst_size:
        raise _Bad("packObjectCorrupt", "delta replay has gone wild (it does not fit its base or its result size)")
    if out:
        flush()


class _Spill:
    """A large blob's content written to an anonymous temporary file and mapped, for the deltas built
    on it (``full``): the content is never held in memory whole."""

    __slots__ = ("_dir", "_file", "buf", "size")

    def __init__(self, spool_dir: str | None) -> None:
        self._dir = spool_dir or tempfile.gettempdir()
        try:
            self._file = tempfile.TemporaryFile(dir=spool_dir)  # noqa: SIM115 - closed by close()
        except OSError as e:
            raise self._error(e) from e
        self.size = 0
        self.buf: Any = b""

    def _error(self, e: OSError) -> SourceError:
        """A temp file that cannot be written (a full disk): the environment, not the data (exit 3)."""
        return SourceError(f"cannot write a temporary file for a large object in {self._dir}: {e.strerror or e} "
                           "(--spool-dir chooses where)")

    def write(self, b: Buffer) -> None:
        try:
            self.size += self._file.write(b)
        except OSError as e:
            self.close()
            raise self._error(e) from e

    def seal(self) -> _Spill:
        """Done writing: map what was written (``buf``)."""
        try:
            self._file.flush()
            if self.size:
                self.buf = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as e:
            self.close()
            raise self._error(e) from e
        return self

    def close(self) -> None:
        if isinstance(self.buf, mmap.mmap):
            try:
                self.buf.close()
            except BufferError:  # pragma: no cover - a view still points into it: the collector frees it
                pass
        self.buf = b""
        self._file.close()


# --------------------------------------------------------------------------------------------------
# random access
# --------------------------------------------------------------------------------------------------
def find_many(idx: Any, oids: Iterable[bytes]) -> dict[bytes, int]:
    """Positions in *idx* (a pack index or a MIDX) of those *oids* it lists, in bulk: the index's own
    ``find_many`` (:func:`~snapcheck.gitformats.chunks.find_in_buckets`), else — anything else with
    ``find``, ``names_view`` and ``fanout`` — the same bucket search over its names, else ``find`` one
    by one."""
    own = getattr(idx, "find_many", None)
    if own is not None:
        found: dict[bytes, int] = own(oids)
        return found
    fan = getattr(idx, "fanout", None)
    if fan is not None and len(fan) == 256:
        return find_in_buckets(idx.names_view(), 0, fan, idx.algo.rawsz, oids, idx.find)
    out: dict[bytes, int] = {}
    for o in set(oids):
        i = idx.find(o)
        if i is not None:
            out[o] = i
    return out


class _LRU:
    """Resolved objects by (pack number, offset), bounded by total bytes."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0
        self.items: dict[tuple[int, int], tuple[int, bytes]] = {}

    def get(self, key: tuple[int, int]) -> tuple[int, bytes] | None:
        v = self.items.pop(key, None)
        if v is not None:
            self.items[key] = v
        return v

    def put(self, key: tuple[int, int], typ: int, data: bytes) -> None:
        n = len(data)
        if n > self.budget >> 2 or key in self.items:
            return
        self.items[key] = (typ, data)
        self.used += n
        while self.used > self.budget:
            old = next(iter(self.items))
            self.used -= len(self.items.pop(old)[1])


class _Pack:
    __slots__ = ("end", "idx", "label", "mv", "no", "rawsz", "src", "types")

    def __init__(self, no: int, src: PackSource, rawsz: int) -> None:
        self.no = no
        self.src = src
        self.idx = src.idx
        self.label = src.label
        self.mv = _byte_view(src.buf)
        self.rawsz = rawsz
        self.end = len(self.mv) - rawsz  # object data ends where the trailer starts
        self.types: bytes | None = None  # object type by idx position, from a whole-pack pass


class ObjectStore:
    """Every object of a repository, found through its pack indexes and loose files."""

    def __init__(self, algo: HashAlgo, packs: list[PackSource], loose: Mapping[bytes, LooseEntry], *,
                 cache_bytes: int = 64 << 20) -> None:
        self.algo = algo
        self._packs = [_Pack(i, p, algo.rawsz) for i, p in enumerate(packs)]
        self._loose: dict[bytes, LooseEntry] = dict(loose)
        self._loose_types: dict[bytes, int] = {}
        self._cache = _LRU(cache_bytes)
        self._last = 0
        self._reads = 0

    # -- what is there ------------------------------------------------------------------------
    @property
    def packs(self) -> list[PackSource]:
        return [p.src for p in self._packs]

    @property
    def loose(self) -> Mapping[bytes, LooseEntry]:
        return self._loose

    def _locate(self, oid: bytes) -> tuple[_Pack, int] | None:
        packs = self._packs
        n = len(packs)
        for k in range(n):
            p = packs[(self._last + k) % n]
            i = p.idx.find(oid)
            if i is not None:
                self._last = p.no
                return p, i
        return None

    def contains(self, oid: bytes) -> bool:
        return oid in self._loose or self._locate(oid) is not None

    def path_of(self, oid: bytes) -> str | None:
        """The pack or loose file that holds *oid*."""
        loc = self._locate(oid)
        if loc is not None:
            return loc[0].label
        entry = self._loose.get(oid)
        return None if entry is None else entry[0]

    def close(self) -> None:
        """Release the views on the pack buffers (so that mmaps can be closed) and the cache."""
        self._cache = _LRU(self._cache.budget)
        for p in self._packs:
            try:
                p.mv.release()
            except BufferError:  # a slice is still alive somewhere: the garbage collector will do it
                pass

    def seed_types(self, label: str, types: bytes) -> None:
        """Object types of a pack by idx position, from a whole-pack pass (0 = unreadable)."""
        for p in self._packs:
            if p.label == label and len(types) == p.idx.count:
                p.types = types

    def seed_loose_types(self, types: Mapping[bytes, int]) -> None:
        self._loose_types.update(types)

    # -- reading ------------------------------------------------------------------------------
    def _error(self, p: _Pack, oid: bytes, off: int, e: _Bad) -> ObjectError:
        if e.code == "packDeltaBaseMissing":
            git = f"error: failed to find delta-pack base object; cannot unpack {oid.hex()} from {p.label}"
        else:
            git = f"error: cannot unpack {oid.hex()} from {p.label} at offset {off}"
        return ObjectError(e.code, p.label,
                           f"{p.label}: object {oid.hex()} at offset {off}: {e.text} (git fsck: {git})")

    def _chain_base(self, p: _Pack, typ: int, pos: int, off: int) -> tuple[int, int]:
        """(base offset, position of the delta data) of a delta entry."""
        if typ == OBJ_OFS_DELTA:
            return _ofs_base(p.mv, pos, p.end, off)
        base = bytes(p.mv[pos:pos + p.rawsz])
        if len(base) != p.rawsz:
            raise _Bad("packObjectCorrupt", f"delta at offset {off} is cut inside its base id")
        j = p.idx.find(base)
        if j is None:
            raise _Bad("packDeltaBaseMissing", f"delta base {base.hex()} is not in {p.label}")
        return p.idx.offset(j), pos + p.rawsz

    def _packed_type(self, p: _Pack, off: int) -> int:
        for _ in range(MAX_DELTA_CHAIN):
            typ, _size, pos = _entry_header(p.mv, off, p.end)
            if OBJ_COMMIT <= typ <= OBJ_TAG:
                return typ
            if typ not in (OBJ_OFS_DELTA, OBJ_REF_DELTA):
                raise _Bad("packObjectCorrupt", f"unknown pack entry type {typ} at offset {off}")
            off, _pos = self._chain_base(p, typ, pos, off)
        raise _Bad("packObjectCorrupt", f"delta chain longer than {MAX_DELTA_CHAIN} (a loop?)")

    def _read_packed(self, p: _Pack, off: int) -> tuple[int, bytes]:
        chain: list[tuple[int, int, int]] = []  # (entry offset, delta data position, delta size)
        cur = off
        cache = self._cache
        while True:
            hit = cache.get((p.no, cur))
            if hit is not None:
                btyp, data = hit
                break
            typ, size, pos = _entry_header(p.mv, cur, p.end)
            if OBJ_COMMIT <= typ <= OBJ_TAG:
                btyp = typ
                try:
                    data, _left = _inflate(p.mv, pos, p.end, size, exact=False)
                except _Bad as e:
                    if cur != off:
                        raise _Bad(e.code, f"its delta base at offset {cur} cannot be read: {e.text}") from None
                    raise
                if chain:
                    cache.put((p.no, cur), typ, data)
                break
            if typ not in (OBJ_OFS_DELTA, OBJ_REF_DELTA):
                raise _Bad("packObjectCorrupt", f"unknown pack entry type {typ} at offset {cur}")
            base, dpos = self._chain_base(p, typ, pos, cur)
            chain.append((cur, dpos, size))
            if len(chain) > MAX_DELTA_CHAIN:
                raise _Bad("packObjectCorrupt", f"delta chain longer than {MAX_DELTA_CHAIN} (a loop?)")
            cur = base
        for eoff, dpos, dsize in reversed(chain):
            delta, _left = _inflate(p.mv, dpos, p.end, dsize, exact=False)
            data = apply_delta(data, delta)
            cache.put((p.no, eoff), btyp, data)
        return btyp, data

    def _read_loose(self, oid: bytes, entry: LooseEntry) -> tuple[int, bytes]:
        path, load = entry
        buf = load()
        obj, fs = check_loose_object(buf, path, self.algo, verify_hash=True, after_window=pages_releaser(buf))
        if obj is None:
            why = "; ".join(f.message for f in fs) or "unreadable"
            raise ObjectError("looseObjectUnreadable", path, f"{path}: object {oid.hex()}: {why}")
        self._loose_types[oid] = obj[0]
        return obj

    def read(self, oid: bytes) -> tuple[int, bytes]:
        """``(type, content)`` of *oid*; raises :class:`ObjectError` (``objectMissing`` when absent)."""
        loc = self._locate(oid)
        if loc is not None:
            p, i = loc
            off = p.idx.offset(i)
            self._reads += 1
            if self._reads >= _RESIDENT_CHECK:  # a long walk: keep the mapped pages bounded
                self._reads = 0
                if _mapped_resident() > _RESIDENT_MAX:
                    for q in self._packs:
                        release_pages(q.src.buf)
            try:
                return self._read_packed(p, off)
            except _Bad as e:
                raise self._error(p, oid, off, e) from None
        entry = self._loose.get(oid)
        if entry is not None:
            return self._read_loose(oid, entry)
        raise ObjectError("objectMissing", "objects", f"object {oid.hex()} is in no pack and no loose file")

    def type_of(self, oid: bytes) -> int | None:
        """The type of *oid* without inflating its content (None when absent); raises
        :class:`ObjectError` when the entry cannot be decoded."""
        loc = self._locate(oid)
        if loc is not None:
            p, i = loc
            if p.types is not None and p.types[i]:
                return p.types[i]
            off = p.idx.offset(i)
            try:
                return self._packed_type(p, off)
            except _Bad as e:
                raise self._error(p, oid, off, e) from None
        entry = self._loose.get(oid)
        if entry is None:
            return None
        t = self._loose_types.get(oid)
        if t is None:
            t = loose_object_type(entry[1]())
            if t is None:
                return self._read_loose(oid, entry)[0]  # raises with the precise reason
            self._loose_types[oid] = t
        return t


# --------------------------------------------------------------------------------------------------
# links gathered by whole-repository passes
# --------------------------------------------------------------------------------------------------
class LinkCollector:
    """Every id referenced by the commits, trees and tags seen in passes, by the type the referrer
    expects (commit: tree + parents; tree: subtrees + blobs, gitlinks never; tag: its target with
    its declared type), plus the objects that could not be parsed or read, and the type of every
    object seen (per pack by idx position, and per loose id).  One set entry per distinct id."""

    def __init__(self, algo: HashAlgo) -> None:
        self.algo = algo
        self.expect: dict[int, set[bytes]] = {OBJ_COMMIT: set(), OBJ_TREE: set(), OBJ_BLOB: set(), OBJ_TAG: set()}
        self.unparseable: list[tuple[bytes, int, str]] = []  # (oid, type, where)
        self.unreadable = 0  # objects whose content could not be obtained
        # objects whose damage a verifying pass (full, loose) has already reported: the walk does
        # not report them again
        self.reported: set[bytes] = set()
        self.pack_types: dict[str, bytes] = {}
        self.loose_types: dict[bytes, int] = {}
        self.counts: dict[int, int] = {OBJ_COMMIT: 0, OBJ_TREE: 0, OBJ_BLOB: 0, OBJ_TAG: 0}

    def add(self, obj_type: int, data: bytes) -> bool:
        """Record the links of one object; False when git could not parse it."""
        algo = self.algo
        if obj_type == OBJ_TREE:
            if not tree_links_into(data, algo, self.expect[OBJ_TREE], self.expect[OBJ_BLOB]):
                return False
        elif obj_type == OBJ_COMMIT:
            c = commit_links(data, algo)
            if c is None:
                return False
            self.expect[OBJ_TREE].add(c[0])
            self.expect[OBJ_COMMIT].update(c[1])
        elif obj_type == OBJ_TAG:
            g = tag_target(data, algo)
            if g is None:
                return False
            self.expect[g[1]].add(g[0])
        self.counts[obj_type] += 1
        return True

    def drop_none(self) -> None:
        """Forget the ``None`` a fast tree scan may have put in the sets (see ``_PackPass._visitor``)."""
        for s in self.expect.values():
            s.discard(None)

    def export(self) -> dict[str, Any]:
        """What a worker process hands back (ids joined into one bytes per type)."""
        return {"expect": {t: b"".join(s) for t, s in self.expect.items()}, "unparseable": self.unparseable,
                "unreadable": self.unreadable, "reported": b"".join(self.reported), "counts": self.counts}

    def merge(self, d: Mapping[str, Any]) -> None:
        """Take in a worker's :meth:`export`."""
        split = record_splitter(self.algo.rawsz)
        for t, blob in d["expect"].items():
            if blob:
                self.expect[t].update(split(blob))
        self.unparseable.extend(d["unparseable"])
        self.unreadable += d["unreadable"]
        if d["reported"]:
            self.reported.update(split(d["reported"]))
        for t, k in d["counts"].items():
            self.counts[t] = self.counts.get(t, 0) + k


# --------------------------------------------------------------------------------------------------
# whole-pack passes
# --------------------------------------------------------------------------------------------------
@dataclass
class PackObjectStats:
    """What a whole-pack pass saw.  ``types`` is the object type by idx position (0: unreadable)."""

    label: str
    objects: int = 0
    commits: int = 0
    trees: int = 0
    blobs: int = 0
    tags: int = 0
    deltas: int = 0
    unreadable: int = 0
    inflated_bytes: int = 0
    types: bytes = b""
    by_type: dict[int, int] = field(default_factory=dict)


def order_by_offset(offs: array[int], given: Sequence[int] | None, *, checked: bool = False) -> array[int]:
    """Index positions in pack order: *given* (a ``.rev`` file's table) when it is a permutation
    that really orders the offsets, else sorted here (transiently one int per object).  *checked*:
    *given* was already proven to be that (a ``.rev`` whose positions and checksum verified)."""
    n = len(offs)
    if checked and isinstance(given, array) and len(given) == n:
        return given
    a = array("I")
    if a.itemsize < 4:  # pragma: no cover
        a = array("L")
    if given is not None and len(given) == n:
        try:
            a.extend(given)
            at = offs.__getitem__
            ordered = all(map(operator.lt, map(at, a), map(at, itertools.islice(a, 1, None))))
        except (IndexError, OverflowError, TypeError):
            ordered = False
        if ordered:  # strictly increasing offsets from n in-range positions: a permutation
            return a
        del a[:]
    a.extend(sorted(range(n), key=offs.__getitem__))
    return a


_ROOT_KINDS = bytes(1 if OBJ_COMMIT <= b <= OBJ_TAG else 0 for b in range(256))
_DELTA_KINDS = bytes(1 if b in (OBJ_OFS_DELTA, OBJ_REF_DELTA) else 0 for b in range(256))
_ZERO_IS_ONE = bytes(1 if b == 0 else 0 for b in range(256))
_NOT_BLOB = bytes(0 if b == OBJ_BLOB else 1 for b in range(256))
_TYPE_WORDS = {t: type_name(t).encode() for t in (OBJ_COMMIT, OBJ_TREE, OBJ_BLOB, OBJ_TAG)}
# below this many objects a pass runs in one process (a fork costs a few milliseconds)
PARALLEL_MIN_OBJECTS = 20_000


def worker_count() -> int:
    """Processes a whole-pack pass may use: ``SNAPCHECK_JOBS`` if set, else the CPUs this process may
    run on (at most 8); 1 where ``fork`` is not available."""
    if not hasattr(os, "fork"):
        return 1
    env = os.environ.get("SNAPCHECK_JOBS", "").strip()
    if env:
        try:
            return max(1, min(64, int(env)))
        except ValueError:
            pass
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus))


def _or_into(dst: bytearray, src: bytes) -> None:
    """dst |= src, byte by byte (both the same length; the writers touched disjoint positions)."""
    if len(src) == len(dst) and src.count(0) != len(src):
        n = len(dst)
        dst[:] = (int.from_bytes(dst, "little") | int.from_bytes(src, "little")).to_bytes(n, "little")


_RELEASE_EVERY = 64 << 20  # bytes of a mapped pack read between two page releases (peak RSS bound)
_RESIDENT_CHECK = 2048  # objects read between two looks at the resident set ...
_RESIDENT_BYTES = 16 << 20  # ... or raw bytes read
_RESIDENT_MAX = 64 << 20  # mapped file pages allowed to stay resident


def _mapped_resident() -> int:
    """Bytes of mapped files resident in this process (Linux ``/proc/self/statm``), or -1."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[2]) * mmap.PAGESIZE
    except (OSError, ValueError, IndexError):
        return -1


def _pickle() -> Any:
    """The pickle module, imported when workers are used (it is not needed otherwise)."""
    import pickle

    return pickle


def _write_all(fd: int, data: bytes) -> None:
    mv = memoryview(data)
    while mv:
        k = os.write(fd, mv)
        mv = mv[k:]


def _read_all(fd: int) -> bytes:
    parts: list[bytes] = []
    while True:
        b = os.read(fd, 1 << 20)
        if not b:
            return b"".join(parts)
        parts.append(b)


class _PackPass:
    """One pass over a pack in offset order (see the module docstring).

    Entry headers are read once, in one process; then the delta trees (a base and every delta built
    on it) are shared out between worker processes in contiguous runs of about equal weight
    (``jobs``; ``fork`` after the pack is mapped, so the workers read the same pages), each resolves
    its trees, and the parent merges types, failures, findings and links."""

    def __init__(self, pack: PackSource, algo: HashAlgo, *, full: bool, check_format: bool,
                 links: LinkCollector | None, pack_order: Sequence[int] | None = None,
                 jobs: int | None = None, spool_dir: str | None = None) -> None:
        self.pack = pack
        self.spool_dir = spool_dir  # where large blobs that deltas are built on are written (full)
        self.pack_order = pack_order if pack_order is not None else pack.order
        self.algo = algo
        self.full = full
        self.check_format = check_format
        self.links = links
        self.label = pack.label
        self.idx = pack.idx
        self.mv = _byte_view(pack.buf)
        self.end = len(self.mv) - algo.rawsz
        self.findings: list[Finding] = []
        self.stats = PackObjectStats(pack.label)
        self.n = 0
        self.inflated = 0
        self.jobs = worker_count() if jobs is None else max(1, jobs)
        self.names = pack.idx.names_view()
        self._hnew: Callable[[bytes], Any] = getattr(hashlib, algo.name, algo.new)
        self.crcs: Any = None
        self.crc_done = bytearray()
        self._read = [0, 0]  # objects and raw bytes read since the resident set was last looked at

    # findings ---------------------------------------------------------------------------------
    def _oid(self, p: int) -> bytes:
        return self.idx.name(self.order[p])

    def _report(self, code: str, p: int, text: str, git: str | None = None) -> None:
        oid = self._oid(p).hex()
        off = self.soffs[p]
        if git is None:
            git = f"error: cannot unpack {oid} from {self.label} at offset {off}"
        self.findings.append(finding(code, self.label,
                                     f"{self.label}: object {oid} at offset {off}: {text} (git fsck: {git})"))

    def _reported(self, positions: Iterable[int]) -> None:
        """A verifying pass has reported these entries: the graph need not report them again."""
        if self.full and self.links is not None:
            name, order = self.idx.name, self.order
            self.links.reported.update(name(order[q]) for q in positions)

    def _fail(self, p: int, e: _Bad) -> None:
        """Entry *p* cannot be resolved: report it once, with the number of deltas depending on it."""
        dependents = self._descendants(p)
        for q in dependents:
            self.failed[q] = 1
        self.failed[p] = 1
        self._reported([p, *dependents])
        extra = f"; {len(dependents)} delta(s) built on it cannot be resolved either" if dependents else ""
        self._report(e.code, p, e.text + extra)

    def _descendants(self, p: int) -> list[int]:
        out: list[int] = []
        stack = [p]
        first, nxt = self.first, self.next
        limit = self.n
        while stack and len(out) <= limit:  # (each entry has one base, so this is a tree; the bound is a guard)
            c = first[stack.pop()]
            while c != -1:
                out.append(c)
                stack.append(c)
                c = nxt[c]
        return out

    # the pass ---------------------------------------------------------------------------------
    def run(self) -> tuple[PackObjectStats, list[Finding]]:
        idx = self.idx
        n = idx.count
        st = self.stats
        st.objects = n
        self.types = bytearray(n)  # by idx position
        if n == 0:
            st.types = b""
            if self.links is not None:
                self.links.pack_types[self.label] = st.types
            return st, self.findings
        offs = idx.offsets()
        self.n = n
        self.order = order_by_offset(offs, self.pack_order,
                                     checked=self.pack_order is self.pack.order and self.pack.order_checked)
        self.soffs = array("Q", map(offs.__getitem__, self.order))
        self.kind = bytearray(n)  # entry type by offset position (0: bad header)
        self.hlen = bytearray(n)  # header length (entry data starts at offset + hlen)
        self.size = array("Q", bytes(8 * n))
        self.first = array("i", [-1]) * n  # first delta child (offset position)
        self.next = array("i", [-1]) * n  # next sibling delta
        self.base = array("i", [-1]) * n  # delta base (offset position)
        self.failed = bytearray(n)
        if self.full and idx.version >= 2:
            bulk = getattr(idx, "crc32s", None)
            self.crcs = bulk() if bulk is not None else None
            self.crc_done = bytearray(n)
        self._headers(offs)
        roots = list(itertools.compress(range(n), self.kind.translate(_ROOT_KINDS)))
        groups = self._split(roots) if self.jobs > 1 and n >= PARALLEL_MIN_OBJECTS else [roots]
        if len(groups) > 1:
            self._parallel(groups)
        else:
            self._resolve(roots)
        if self.full and self.crcs is not None:
            self._crc_rest()
        if self.links is not None:
            self.links.drop_none()
        self._unresolved()
        st.types = bytes(self.types)
        st.inflated_bytes = self.inflated
        for t, name in ((OBJ_COMMIT, "commits"), (OBJ_TREE, "trees"), (OBJ_BLOB, "blobs"), (OBJ_TAG, "tags")):
            count = st.types.count(t)
            if count:
                st.by_type[t] = count
            setattr(st, name, count)
        st.unreadable = n - sum(st.by_type.values())
        if self.links is not None:
            self.links.pack_types[self.label] = st.types
            self.links.unreadable += st.unreadable
        return st, self.findings

    def _headers(self, offs: array[int]) -> None:
        """Every entry's header: type, size, data start, delta base; then the delta trees.  Large packs
        are read by two processes, one half each."""
        n, soffs, end = self.n, self.soffs, self.end
        # offsets strictly increasing inside the object data: then no entry needs its own check
        offsets_ok = n > 0 and soffs[0] >= 12 and soffs[n - 1] < end and all(
            map(operator.lt, soffs, itertools.islice(soffs, 1, None)))
        if self.jobs > 1 and n >= PARALLEL_MIN_OBJECTS and n >= 2:
            self._headers_split(offs, offsets_ok)
        else:
            self._reported(self._header_range(0, n, offs, offsets_ok))
        kind, first, nxt, base = self.kind, self.first, self.next, self.base
        self.stats.deltas = kind.count(OBJ_OFS_DELTA) + kind.count(OBJ_REF_DELTA)
        # the delta trees: each base's deltas, in decreasing position (the order the walk takes them)
        for p in itertools.compress(range(n), kind.translate(_DELTA_KINDS)):
            b = base[p]
            if b >= 0:
                nxt[p] = first[b]
                first[b] = p
        # deltas built on an entry that was rejected here cannot be resolved (it was reported)
        for p in itertools.compress(range(n), self.failed):
            if first[p] != -1:
                deps = self._descendants(p)
                for q in deps:
                    self.failed[q] = 1
                self._reported(deps)

    def _headers_split(self, offs: array[int], offsets_ok: bool) -> None:
        """:meth:`_header_range` for the second half in a forked worker, the first half here."""
        n = self.n
        mid = n // 2
        child: tuple[int, int] | None = None
        try:
            r, w = os.pipe()
            pid = os.fork()
        except OSError:
            pid = -1
        if pid == 0:  # pragma: no cover - runs in the child (coverage does not follow forks)
            code = 1
            try:
                os.close(r)
                mark = len(self.findings)
                reported = self._header_range(mid, n, offs, offsets_ok)
                out = {"kind": bytes(self.kind[mid:]), "hlen": bytes(self.hlen[mid:]),
                       "size": self.size[mid:].tobytes(), "base": self.base[mid:].tobytes(),
                       "failed": bytes(self.failed[mid:]), "findings": self.findings[mark:], "reported": reported}
                _write_all(w, _pickle().dumps(out, protocol=-1))
                code = 0
            except BaseException:  # the parent reads this half itself
                pass
            finally:
                os._exit(code)
        if pid > 0:
            os.close(w)
            child = (pid, r)
        self._reported(self._header_range(0, mid, offs, offsets_ok))
        res: dict[str, Any] | None = None
        if child is not None:
            pid, r = child
            try:
                data = _read_all(r)
            finally:
                os.close(r)
            _pid, status = os.waitpid(pid, 0)
            if os.waitstatus_to_exitcode(status) == 0 and data:
                try:
                    res = _pickle().loads(data)
                except Exception:  # a garbled result: read that half here
                    res = None
        if res is None:
            self._reported(self._header_range(mid, n, offs, offsets_ok))
            return
        self.kind[mid:] = res["kind"]
        self.hlen[mid:] = res["hlen"]
        size = array("Q")
        size.frombytes(res["size"])
        self.size[mid:] = size
        base = array("i")
        base.frombytes(res["base"])
        self.base[mid:] = base
        self.failed[mid:] = res["failed"]
        self.findings.extend(res["findings"])
        self._reported(res["reported"])

    def _header_range(self, lo: int, hi: int, offs: array[int], offsets_ok: bool) -> list[int]:
        """Entry headers of positions [lo, hi) (git: unpack_object_header_buffer, get_delta_base) into
        ``kind``, ``hlen``, ``size``, ``base``, ``failed``; returns the positions reported as damaged."""
        mv, end, idx = self.mv, self.end, self.idx
        soffs = self.soffs
        kind, hlen, size, base = self.kind, self.hlen, self.size, self.base
        n = self.n
        rawsz = self.algo.rawsz
        failed = self.failed
        bisect_left = bisect.bisect_left
        find = idx.find
        buf = self.pack.buf
        reported: list[int] = []
        release_at = (soffs[lo] if lo < n else 0) + _RELEASE_EVERY
        for p in range(lo, hi):
            off = soffs[p]
            stop = soffs[p + 1] if p + 1 < n else end
            if off > release_at:  # read in offset order: what was read lies behind
                release_at = off + _RELEASE_EVERY
                release_pages(buf)
            if not offsets_ok and (stop <= off or not 12 <= off < end):
                why = ("shares its offset with another index entry" if stop == off
                       else f"offset {off} is outside the object data (12..{end})")
                self._report("packObjectOffsetInvalid", p, why,
                             "fatal: offset beyond end of packfile (truncated pack?)")
                failed[p] = 1
                reported.append(p)
                continue
            # entry header (git: unpack_object_header_buffer), inline: this loop runs once per object
            c = mv[off]
            typ = (c >> 4) & 7
            sz = c & 15
            pos = off + 1
            try:
                if c & 0x80:
                    shift = 4
                    while c & 0x80:
                        if pos >= stop or shift >= _HEADER_SHIFT_LIMIT:
                            raise _Bad("packObjectCorrupt", f"bad object header at offset {off}")
                        c = mv[pos]
                        pos += 1
                        sz |= (c & 0x7F) << shift
                        shift += 7
                    if sz >= _MAX_OBJECT_SIZE:
                        raise _Bad("packObjectCorrupt", f"bad object header at offset {off} (size {sz})")
                if typ == OBJ_OFS_DELTA:
                    # the base distance (git: get_delta_base), inline
                    if pos >= stop:
                        raise _Bad("packObjectCorrupt", f"delta at offset {off} is cut inside its base distance")
                    c = mv[pos]
                    pos += 1
                    dist = c & 0x7F
                    while c & 0x80:
                        if pos >= stop or dist >> 56:
                            raise _Bad("packObjectCorrupt", f"delta base offset overflow at offset {off}")
                        c = mv[pos]
                        pos += 1
                        dist = ((dist + 1) << 7) | (c & 0x7F)
                    base_off = off - dist
                    if dist == 0 or base_off < 12:
                        raise _Bad("packDeltaBaseMissing",
                                   f"delta at offset {off} names base offset {base_off}, which is not before it "
                                   "in the pack")
                    b = bisect_left(soffs, base_off, 0, p)
                    if b >= p or soffs[b] != base_off:
                        raise _Bad("packDeltaBaseMissing",
                                   f"its delta base offset {base_off} is not the start of an object in the pack")
                elif typ == OBJ_REF_DELTA:
                    if pos + rawsz > stop:
                        raise _Bad("packObjectCorrupt", "the entry is cut inside its delta base id")
                    bid = bytes(mv[pos:pos + rawsz])
                    j = find(bid)
                    if j is None:
                        raise _Bad("packDeltaBaseMissing", f"its delta base {bid.hex()} is not in this pack")
                    b = bisect_left(soffs, offs[j])
                    pos += rawsz
                elif not OBJ_COMMIT <= typ <= OBJ_TAG:
                    raise _Bad("packObjectCorrupt", f"unknown pack entry type {typ}")
                else:
                    b = -1
                if pos > stop:
                    raise _Bad("packObjectCorrupt", "the entry header runs into the next object")
            except _Bad as e:
                failed[p] = 1
                self._report(e.code, p, e.text)
                reported.append(p)
                continue
            kind[p] = typ
            hlen[p] = pos - off
            size[p] = sz
            if b >= 0:
                base[p] = b
        return reported

    def _crc(self, p: int, off: int, stop: int) -> None:
        want = self.crcs[self.order[p]]
        self.crc_done[p] = 1
        if zlib.crc32(self.mv[off:stop]) != want:
            self._crc_mismatch(p, off, stop)

    def _crc_rest(self) -> None:
        """``full``: the CRC32 of every entry that was never inflated (bad header, unresolvable)."""
        soffs, end, n = self.soffs, self.end, self.n
        for p in itertools.compress(range(n), self.crc_done.translate(_ZERO_IS_ONE)):
            off = soffs[p]
            stop = soffs[p + 1] if p + 1 < n else end
            if 12 <= off < stop <= end:
                self._crc(p, off, stop)

    def _inflater(self) -> Callable[[int], bytes]:
        """``inflate(p)``: the content of entry *p* (a base object, or a delta's delta data), with its
        CRC32 checked at ``full``; the common case inline, anything unusual through :meth:`_inflate`."""
        mv, soffs, hlen, size, n, end = self.mv, self.soffs, self.hlen, self.size, self.n, self.end
        crcs, crc_done, order = self.crcs, self.crc_done, self.order
        full = self.full
        decompressobj, crc32, zerror = zlib.decompressobj, zlib.crc32, zlib.error
        slow = self._inflate
        buf = self.pack.buf
        # objects read since the resident set was last looked at (shared by every run): the pages a
        # read maps are many more than the bytes it reads (the kernel maps pages around a fault), so
        # the measure is the resident set itself where the system shows it
        read = self._read

        def inflate(p: int) -> bytes:
            off = soffs[p]
            stop = soffs[p + 1] if p + 1 < n else end
            read[0] += 1
            read[1] += stop - off
            if read[0] >= _RESIDENT_CHECK or read[1] >= _RESIDENT_BYTES:
                read[0] = read[1] = 0
                if _mapped_resident() > _RESIDENT_MAX:
                    release_pages(buf)
            if crcs is not None:
                crc_done[p] = 1
                if crc32(mv[off:stop]) != crcs[order[p]]:
                    self._crc_mismatch(p, off, stop)
            sz = size[p]
            d = decompressobj()
            try:
                data = d.decompress(mv[off + hlen[p]:stop], sz + 1) if sz < _MAX_INFLATE_CALL else b""
            except zerror:
                return slow(p, crc=False)
            if not d.eof or len(data) != sz or (full and d.unused_data):
                return slow(p, crc=False)
            self.inflated += sz
            return data

        return inflate

    def _visitor(self) -> Callable[[int, int, bytes], None]:
        """``visit(p, type, content)`` for a resolved entry: its type recorded, and at ``standard`` its
        links collected; at ``full`` also its hash against the idx name and git's format checks."""
        if self.full:
            return self._full_visitor()
        if self.links is None:
            return self._visit
        links = self.links
        order, types, name, label, algo = self.order, self.types, self.idx.name, self.label, self.algo
        trees, blobs = links.expect[OBJ_TREE], links.expect[OBJ_BLOB]
        counts, unparseable, add = links.counts, links.unparseable, links.add
        split = tree_sort_re(algo.rawsz).split

        def visit(p: int, typ: int, data: bytes) -> None:
            i = order[p]
            types[i] = typ
            if typ == OBJ_TREE:
                parts = split(data)
                if any(parts[::4]):
                    unparseable.append((name(i), typ, label))
                elif any(parts[3::4]):  # modes other than the four plain ones: the exact path
                    if tree_links_into(data, algo, trees, blobs):
                        counts[OBJ_TREE] += 1
                    else:
                        unparseable.append((name(i), typ, label))
                else:  # ids sorted by kind by the pattern (None for the other kind)
                    trees.update(filter(None, parts[1::4]))
                    blobs.update(filter(None, parts[2::4]))
                    counts[OBJ_TREE] += 1
            elif not add(typ, data):
                unparseable.append((name(i), typ, label))

        return visit

    def _full_visitor(self) -> Callable[[int, int, bytes], None]:
        """:meth:`_visit` at ``full``, with its lookups bound once (it runs for every object)."""
        order, types, names, label, algo = self.order, self.types, self.names, self.label, self.algo
        rawsz = algo.rawsz
        hnew, words = self._hnew, _TYPE_WORDS
        check_format, links, findings = self.check_format, self.links, self.findings
        trees = links.expect[OBJ_TREE] if links is not None else None
        blobs = links.expect[OBJ_BLOB] if links is not None else None

        def visit(p: int, typ: int, data: bytes) -> None:
            i = order[p]
            h = hnew(b"%s %d\x00" % (words[typ], len(data)))
            h.update(data)
            got = h.digest()
            if names[i * rawsz:(i + 1) * rawsz] != got:
                self._hash_mismatch(p, i, typ, got)
                return  # not the object the index names: unreadable for the graph
            types[i] = typ
            if typ == OBJ_BLOB:
                return
            if check_format:
                if typ == OBJ_TREE:
                    fs, parsed = fsck_tree(data, got, algo, label, trees, blobs)
                    if fs:
                        findings.extend(fs)
                    if links is not None:
                        if parsed:
                            links.counts[OBJ_TREE] += 1
                        else:
                            links.unparseable.append((got, typ, label))
                    return
                fs = check_object_format(typ, data, got, algo, label)
                if fs:
                    findings.extend(fs)
            if links is not None and not links.add(typ, data):
                links.unparseable.append((got, typ, label))

        return visit

    def _hash_mismatch(self, p: int, i: int, typ: int, got: bytes) -> None:
        oid = self.idx.name(i)
        self._report("packObjectHashMismatch", p, f"its {type_name(typ)} content hashes to {got.hex()}",
                     f"error: packed {oid.hex()} from {self.label} is corrupt")
        self._reported([p])

    def _crc_mismatch(self, p: int, off: int, stop: int) -> None:
        oid = self._oid(p).hex()
        self._report("packCrcMismatch", p, f"the CRC32 of its {stop - off} raw bytes differs from the index's",
                     f"error: index CRC mismatch for object {oid} from {self.label} at offset {off}")

    def _inflate(self, p: int, *, crc: bool = True) -> bytes:
        off = self.soffs[p]
        stop = self.soffs[p + 1] if p + 1 < self.n else self.end
        if crc and self.crcs is not None:
            self._crc(p, off, stop)
        start = off + self.hlen[p]
        size = self.size[p]
        # the common case in one call; anything unusual goes through _inflate for its diagnosis
        d = zlib.decompressobj()
        try:
            data = d.decompress(self.mv[start:stop], size + 1) if size < _MAX_INFLATE_CALL else b""
            ok = d.eof and len(data) == size
        except zlib.error:
            ok = False
        if ok:
            left = len(d.unused_data)
        else:
            data, left = _inflate(self.mv, start, stop, size, exact=True)
        if left and self.full:
            raise _Bad("packObjectCorrupt",
                       f"{left} byte(s) lie between the end of its zlib stream and the next object")
        self.inflated += size
        return data

    def _visit(self, p: int, typ: int, data: bytes) -> None:
        i = self.order[p]
        links = self.links
        if self.full:
            rawsz = self.algo.rawsz
            h = self._hnew(b"%s %d\x00" % (_TYPE_WORDS[typ], len(data)))
            h.update(data)
            got = h.digest()
            if self.names[i * rawsz:(i + 1) * rawsz] != got:
                oid = self.idx.name(i)
                self._report("packObjectHashMismatch", p,
                             f"its {type_name(typ)} content hashes to {got.hex()}",
                             f"error: packed {oid.hex()} from {self.label} is corrupt")
                self._reported([p])
                return  # not the object the index names: unreadable for the graph
            if self.check_format and typ != OBJ_BLOB:
                if typ == OBJ_TREE:
                    fs, parsed = fsck_tree(data, got, self.algo, self.label,
                                           *((links.expect[OBJ_TREE], links.expect[OBJ_BLOB])
                                             if links is not None else (None, None)))
                    if fs:
                        self.findings.extend(fs)
                    if links is not None:
                        if parsed:
                            links.counts[OBJ_TREE] += 1
                        else:
                            links.unparseable.append((got, typ, self.label))
                    self.types[i] = typ
                    return
                fs = check_object_format(typ, data, got, self.algo, self.label)
                if fs:
                    self.findings.extend(fs)
        if links is not None and typ != OBJ_BLOB and not links.add(typ, data):
            links.unparseable.append((self.idx.name(i), typ, self.label))
        self.types[i] = typ

    def _resolve(self, roots: Iterable[int]) -> None:
        kind, first, nxt, failed = self.kind, self.first, self.next, self.failed
        full = self.full
        inflate = self._inflater()
        visit = self._visitor()
        for p in roots:
            typ = kind[p]
            if failed[p]:
                continue
            # full: a blob delta tree may hold large contents, kept in mapped temp files (_Spill)
            big = full and typ == OBJ_BLOB
            data: Any
            if typ == OBJ_BLOB and (not full or self.size[p] >= STREAM_MIN):
                if not full:
                    self._type_blob_tree(p)
                    continue
                data = self._stream_blob(p, keep=first[p] != -1)
                if data is None:
                    continue
            else:
                try:
                    data = inflate(p)
                except _Bad as e:
                    self._fail(p, e)
                    continue
                visit(p, typ, data)
                if first[p] == -1:
                    continue
            # depth first over the delta tree.  Held: the contents of the bases on the way down that
            # still have deltas to apply; a base whose last delta is being applied gives its place to
            # that delta, so a chain of any depth holds two contents at most
            stack: list[Any] = [data]
            del data
            cursor = [first[p]]
            while cursor:
                c = cursor[-1]
                if c == -1:
                    done = stack.pop()
                    cursor.pop()
                    if big and isinstance(done, _Spill):
                        done.close()
                    continue
                cursor[-1] = nxt[c]
                if failed[c]:
                    continue
                try:
                    if big:
                        res = self._blob_delta(c, stack[-1], inflate, visit)
                    else:
                        res = apply_delta(stack[-1], inflate(c))
                        visit(c, typ, res)
                except _Bad as e:
                    self._fail(c, e)
                    continue
                if first[c] != -1:
                    if cursor[-1] == -1:  # c was its base's last delta: the base is done with
                        if big and isinstance(stack[-1], _Spill):
                            stack[-1].close()
                        stack[-1] = res
                        cursor[-1] = first[c]
                    else:
                        stack.append(res)
                        cursor.append(first[c])
                del res

    def _blob_delta(self, c: int, base: Any, inflate: Callable[[int], bytes],
                    visit: Callable[[int, int, bytes], None]) -> Any:
        """``full``: delta *c* of a blob applied to *base* (bytes, or a :class:`_Spill`) and checked.  A
        result of at least ``STREAM_MIN`` bytes, or one built on a spilled base, is hashed as the delta
        replays; it is written to a :class:`_Spill` when deltas are built on it (else ``b""``)."""
        delta = inflate(c)
        spilled = isinstance(base, _Spill)
        src = base.buf if spilled else base
        dst_size, pos = _delta_header(delta, len(src))
        if not spilled and dst_size < STREAM_MIN:
            res = apply_delta(src, delta)
            visit(c, OBJ_BLOB, res)
            return res
        out = _Spill(self.spool_dir) if self.first[c] != -1 else None
        h = self._hnew(b"blob %d\x00" % dst_size)
        update = h.update

        def sink(b: Buffer) -> None:
            update(b)
            if out is not None:
                out.write(b)

        def let_go() -> None:
            if spilled and _mapped_resident() > _RESIDENT_MAX:
                release_pages(src)

        try:
            _apply_delta_to(src, delta, pos, dst_size, sink, let_go)
        except BaseException:
            if out is not None:
                out.close()
            raise
        self._blob_hash(c, h.digest())
        return out.seal() if out is not None else b""

    def _blob_hash(self, p: int, got: bytes) -> None:
        """A blob checked without its content in hand: its hash against the idx name, as the full
        visitor does."""
        i = self.order[p]
        rawsz = self.algo.rawsz
        if self.names[i * rawsz:(i + 1) * rawsz] != got:
            self._hash_mismatch(p, i, OBJ_BLOB, got)
            return
        self.types[i] = OBJ_BLOB

    def _stream_blob(self, p: int, *, keep: bool = False) -> _Spill | None:
        """``full``: a large blob that is a whole entry, checked like any other (CRC32, inflate, hash
        against its idx name) but streamed: its content is never held whole, and the pages of the
        pack it maps are let go as it goes.  With *keep* (deltas are built on it) the content is
        written to a :class:`_Spill`, returned; None when it cannot be inflated (reported)."""
        off = self.soffs[p]
        stop = self.soffs[p + 1] if p + 1 < self.n else self.end
        buf = self.pack.buf

        def let_go() -> None:
            if _mapped_resident() > _RESIDENT_MAX:
                release_pages(buf)

        if self.crcs is not None:
            self.crc_done[p] = 1
            crc = 0
            for lo in range(off, stop, _STREAM_WINDOW):
                crc = zlib.crc32(self.mv[lo:min(stop, lo + _STREAM_WINDOW)], crc)
                let_go()
            if crc != self.crcs[self.order[p]]:
                self._crc_mismatch(p, off, stop)
        size = self.size[p]
        h = self._hnew(b"blob %d\x00" % size)
        out = _Spill(self.spool_dir) if keep else None
        sink: Callable[[bytes], object] = h.update
        if out is not None:
            spill, update = out, h.update

            def sink(b: bytes) -> None:
                update(b)
                spill.write(b)

        try:
            left = _inflate_to(self.mv, off + self.hlen[p], stop, size, sink, let_go)
            if left:
                raise _Bad("packObjectCorrupt",
                           f"{left} byte(s) lie between the end of its zlib stream and the next object")
        except _Bad as e:
            if out is not None:
                out.close()
            self._fail(p, e)
            return None
        let_go()
        self.inflated += size
        self._blob_hash(p, h.digest())
        return out.seal() if out is not None else None

    def _type_blob_tree(self, p: int) -> None:
        """``standard``: a blob and the deltas built on it are blobs; nothing is inflated."""
        order, types = self.order, self.types
        types[order[p]] = OBJ_BLOB
        if self.first[p] != -1:
            for q in self._descendants(p):
                if not self.failed[q]:
                    types[order[q]] = OBJ_BLOB

    # sharing the work out ---------------------------------------------------------------------
    def _split(self, roots: list[int]) -> list[list[int]]:
        """The roots in contiguous runs of about equal weight, 16 per job (the processes take runs from
        a queue, so uneven runs even out).  A delta tree weighs its objects (a per-object cost) and,
        at ``full``, the raw bytes of its entries too; at ``standard`` a blob tree is only typed and
        weighs next to nothing."""
        runs = min(16 * self.jobs, len(roots), 255)
        if self.jobs < 2 or runs < 2:
            return [roots]
        n, soffs, kind, base = self.n, self.soffs, self.kind, self.base
        if self.full:
            bounds = soffs + array("Q", [self.end])
            w = array("q", map((2000).__add__, map(operator.sub, itertools.islice(bounds, 1, None), soffs)))
        else:
            w = array("q", [1]) * n
        for p in reversed(list(itertools.compress(range(n), kind.translate(_DELTA_KINDS)))):
            b = base[p]
            if b >= 0:
                w[b] += w[p]
        weights = list(map(w.__getitem__, roots))
        if not self.full:  # blob trees: next to nothing
            weights = list(map(operator.mul, weights, bytes(map(kind.__getitem__, roots)).translate(_NOT_BLOB)))
        total = sum(weights)
        if total <= 0:
            return [roots]
        acc = list(itertools.accumulate(weights))
        groups: list[list[int]] = []
        start = 0
        for k in range(1, runs):
            cut = bisect.bisect_left(acc, total * k // runs, start)
            groups.append(roots[start:cut])
            start = cut
        groups.append(roots[start:])
        return [g for g in groups if g]

    def _parallel(self, groups: list[list[int]]) -> None:
        """Resolve the runs in *groups* with ``jobs`` processes: run numbers wait in a pipe, each process
        (this one too) reads one at a time until the pipe is empty, the workers send their results back
        pickled, and any run a worker did not deliver is done here."""
        try:
            qr, qw = os.pipe()
        except OSError:
            for g in groups:
                self._resolve(g)
            return
        try:
            _write_all(qw, bytes(range(len(groups))))
        finally:
            os.close(qw)
        children: list[tuple[int, int]] = []
        for _ in range(min(self.jobs, len(groups)) - 1):
            try:
                r, w = os.pipe()
            except OSError:
                break
            try:
                pid = os.fork()
            except OSError:
                os.close(r)
                os.close(w)
                break
            if pid == 0:  # pragma: no cover - runs in the child (coverage does not follow forks)
                code = 1
                try:
                    os.close(r)
                    _write_all(w, self._share(groups, qr))
                    code = 0
                except BaseException:  # the parent redoes what this worker took
                    pass
                finally:
                    os._exit(code)
            os.close(w)
            children.append((pid, r))
        found: dict[int, list[Finding]] = {}  # findings by run: reported in run order, as one process would
        try:
            found.update(self._take(groups, qr))
        finally:
            os.close(qr)
        for pid, r in children:
            try:
                data = _read_all(r)
            finally:
                os.close(r)
            _pid, status = os.waitpid(pid, 0)
            if os.waitstatus_to_exitcode(status) != 0 or not data:
                continue
            try:
                res = _pickle().loads(data)
            except Exception:  # a garbled result: its runs are redone below
                continue
            self._merge(res)
            found.update(res["runs"])
        for k, g in enumerate(groups):
            if k not in found:
                mark = len(self.findings)
                self._resolve(g)
                found[k] = self.findings[mark:]
                del self.findings[mark:]
        for k in sorted(found):
            self.findings.extend(found[k])

    def _take(self, groups: list[list[int]], queue: int) -> dict[int, list[Finding]]:
        """Resolve runs read one by one from the *queue* pipe until it is empty; the findings of each
        (taken out of ``findings``), by run number."""
        taken: dict[int, list[Finding]] = {}
        while True:
            b = os.read(queue, 1)
            if not b:
                return taken
            mark = len(self.findings)
            self._resolve(groups[b[0]])
            taken[b[0]] = self.findings[mark:]
            del self.findings[mark:]

    def _share(self, groups: list[list[int]], queue: int) -> bytes:
        """In a worker: resolve runs from the queue and return what the parent merges (pickled)."""
        self.inflated = 0
        if self.links is not None:
            self.links = LinkCollector(self.algo)
        runs = self._take(groups, queue)
        if self.links is not None:
            self.links.drop_none()
        out: dict[str, Any] = {
            "runs": runs, "types": bytes(self.types), "failed": bytes(self.failed), "crc": bytes(self.crc_done),
            "inflated": self.inflated,
            "links": self.links.export() if self.links is not None else None,
        }
        data: bytes = _pickle().dumps(out, protocol=-1)
        return data

    def _merge(self, res: dict[str, Any]) -> None:
        _or_into(self.types, res["types"])
        _or_into(self.failed, res["failed"])
        if self.crc_done:
            _or_into(self.crc_done, res["crc"])
        self.inflated += res["inflated"]
        if self.links is not None and res["links"] is not None:
            self.links.merge(res["links"])

    def _unresolved(self) -> None:
        """Deltas never reached from a base (REF delta loops) that nothing has reported yet."""
        kind, failed, types, order = self.kind, self.failed, self.types, self.order
        left = [p for p in itertools.compress(range(len(kind)), kind.translate(_DELTA_KINDS))
                if not failed[p] and not types[order[p]]]
        if not left:
            return
        for q in left:
            failed[q] = 1
        self._reported(left)
        more = f" (and {len(left) - 1} more)" if len(left) > 1 else ""
        self._report("packObjectCorrupt", left[0],
                     f"its delta chain never reaches a base object (the deltas refer to each other){more}")


def verify_pack_objects(pack: PackSource, algo: HashAlgo, *, check_format: bool,
                        links: LinkCollector | None = None,
                        pack_order: Sequence[int] | None = None,
                        jobs: int | None = None, spool_dir: str | None = None
                        ) -> tuple[PackObjectStats, list[Finding]]:
    """``full``: every object of *pack* inflated once, delta-resolved from its base, hashed against
    its idx name, CRC32-checked, and (with *check_format*) checked with git's fsck rules.  With
    *links*, the commits, trees and tags feed the collector so connectivity reuses this pass.
    *pack_order*: idx positions in pack order (a verified ``.rev``), saves sorting the offsets.
    *jobs*: worker processes (default :func:`worker_count`; packs under ``PARALLEL_MIN_OBJECTS``
    objects always use one).  *spool_dir*: where the content of a large blob that deltas are built on
    is written meanwhile (default: the system temp dir)."""
    return _PackPass(pack, algo, full=True, check_format=check_format, links=links, pack_order=pack_order,
                     jobs=jobs, spool_dir=spool_dir).run()


def scan_pack_links(pack: PackSource, algo: HashAlgo, links: LinkCollector, *,
                    pack_order: Sequence[int] | None = None,
                    jobs: int | None = None) -> tuple[PackObjectStats, list[Finding]]:
    """``standard``: inflate every commit, tree and tag of *pack* once (blobs are typed, not read)
    and feed their links to *links*.  The findings describe objects that could not be decoded;
    whether they matter (are reachable) is for the connectivity check to decide."""
    return _PackPass(pack, algo, full=False, check_format=False, links=links, pack_order=pack_order,
                     jobs=jobs).run()


@dataclass
class LooseObjectStats:
    objects: int = 0
    by_type: dict[int, int] = field(default_factory=dict)
    unreadable: int = 0


def verify_loose_objects(loose: Mapping[bytes, LooseEntry] | Iterable[tuple[bytes, LooseEntry]], algo: HashAlgo, *,
                         check_format: bool, links: LinkCollector | None = None
                         ) -> tuple[LooseObjectStats, list[Finding]]:
    """Every loose object inflated and hashed against its path (``check_loose_object``), with
    git's fsck rules when *check_format*; with *links*, their links feed the collector."""
    items = loose.items() if isinstance(loose, Mapping) else loose
    st = LooseObjectStats()
    out: list[Finding] = []
    for oid, (path, load) in items:
        st.objects += 1
        # a blob's content is hashed as it inflates, never held: nothing reads it afterwards
        buf = load()
        obj, fs = check_loose_object(buf, path, algo, verify_hash=True, keep_blob=False,
                                     after_window=pages_releaser(buf))
        out.extend(fs)
        if obj is None:
            st.unreadable += 1
            if links is not None:
                links.unreadable += 1
                links.reported.add(oid)
            continue
        typ, data = obj
        st.by_type[typ] = st.by_type.get(typ, 0) + 1
        if check_format:
            out.extend(check_object_format(typ, data, oid, algo, path))
        if links is not None:
            links.loose_types[oid] = typ
            if typ != OBJ_BLOB and not links.add(typ, data):
                links.unparseable.append((oid, typ, path))
    return st, out


__all__ = [
    "MAX_DELTA_CHAIN",
    "PARALLEL_MIN_OBJECTS",
    "LinkCollector",
    "LooseEntry",
    "LooseObjectStats",
    "ObjectError",
    "ObjectStore",
    "PackIndexLike",
    "PackObjectStats",
    "PackSource",
    "apply_delta",
    "order_by_offset",
    "scan_pack_links",
    "verify_loose_objects",
    "verify_pack_objects",
    "worker_count",
]
