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
import importlib
import itertools
import operator
import zlib
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

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
    object_header,
    tag_target,
    tree_links_into,
    type_name,
)
from ..report import Finding, Severity, finding, register

_rust_apply_delta: Callable[[bytes, bytes], list[bytes]] | None = None
_RustDeltaError: type[Exception] = ValueError
try:  # dulwich's Rust delta applier (optional: the pure-Python one below mirrors git exactly)
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
    if have > size:
        raise _Bad("packObjectCorrupt", f"inflates to more than the {size} bytes its header declares")
    if not d.eof:
        raise _Bad("packObjectCorrupt",
                   f"zlib stream at offset {start} does not end before offset {stop} ({have} of {size} bytes)")
    if have != size:
        raise _Bad("packObjectCorrupt", f"inflates to {have} bytes, not the {size} its header declares")
    data = parts[0] if len(parts) == 1 else b"".join(parts)
    return data, len(d.unused_data)


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
    """git: patch-delta.c, from the first opcode at *pos*: an instruction that does not fit stops
    the replay, which is then an error unless the delta was used up and the result is complete."""
    out = bytearray()
    n = len(delta)
    src_size = len(src)
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
            if off + sz > src_size or sz > dst_size - len(out):
                break
            out += src[off:off + sz]
        elif cmd:
            if cmd > dst_size - len(out) or cmd > n - pos:
                break
            out += delta[pos:pos + cmd]
            pos += cmd
        else:
            raise _Bad("packObjectCorrupt", "unexpected delta opcode 0")
    if pos != n or len(out) != dst_size:
        raise _Bad("packObjectCorrupt", "delta replay has gone wild (it does not fit its base or its result size)")
    return bytes(out)


def apply_delta(src: bytes, delta: bytes) -> bytes:
    """Apply a git delta to *src*; raises on anything git's patch_delta refuses."""
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
    if src_size != len(src):
        raise _Bad("packObjectCorrupt", f"delta expects a {src_size}-byte base but the base has {len(src)} bytes")
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


# --------------------------------------------------------------------------------------------------
# random access
# --------------------------------------------------------------------------------------------------
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
        obj, fs = check_loose_object(load(), path, self.algo, verify_hash=True)
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


def _order_by_offset(offs: array[int], given: Sequence[int] | None) -> array[int]:
    """Index positions in pack order: *given* (a ``.rev`` file's table) when it is a permutation
    that really orders the offsets, else sorted here (transiently one int per object)."""
    n = len(offs)
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


class _PackPass:
    """One pass over a pack in offset order (see the module docstring)."""

    def __init__(self, pack: PackSource, algo: HashAlgo, *, full: bool, check_format: bool,
                 links: LinkCollector | None, pack_order: Sequence[int] | None = None) -> None:
        self.pack = pack
        self.pack_order = pack_order
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
        self.order = _order_by_offset(offs, self.pack_order)
        self.soffs = array("Q", map(offs.__getitem__, self.order))
        self.kind = bytearray(n)  # entry type by offset position (0: bad header)
        self.hlen = bytearray(n)  # header length (entry data starts at offset + hlen)
        self.size = array("Q", bytes(8 * n))
        self.first = array("i", [-1]) * n  # first delta child (offset position)
        self.next = array("i", [-1]) * n  # next sibling delta
        self.failed = bytearray(n)
        self._headers(offs)
        self._resolve()
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
        mv, end, idx = self.mv, self.end, self.idx
        soffs, order = self.soffs, self.order
        kind, hlen, size, first, nxt = self.kind, self.hlen, self.size, self.first, self.next
        n = len(soffs)
        rawsz = self.algo.rawsz
        check_crc = self.full and idx.version >= 2
        crcs: Any = None
        if check_crc:
            bulk = getattr(idx, "crc32s", None)
            crcs = bulk() if bulk is not None else None
        crc32 = zlib.crc32
        # offsets strictly increasing inside the object data: then no entry needs its own check
        offsets_ok = n > 0 and soffs[0] >= 12 and soffs[n - 1] < end and all(
            map(operator.lt, soffs, itertools.islice(soffs, 1, None)))
        failed = self.failed
        for p in range(n):
            off = soffs[p]
            stop = soffs[p + 1] if p + 1 < n else end
            if not offsets_ok and (stop <= off or not 12 <= off < end):
                why = ("shares its offset with another index entry" if stop == off
                       else f"offset {off} is outside the object data (12..{end})")
                self._report("packObjectOffsetInvalid", p, why,
                             "fatal: offset beyond end of packfile (truncated pack?)")
                failed[p] = 1
                self._reported([p])
                continue
            if check_crc:
                want = crcs[order[p]] if crcs is not None else idx.crc32(order[p])
                if want is not None and crc32(mv[off:stop]) != want:
                    oid = self._oid(p).hex()
                    self._report("packCrcMismatch", p,
                                 f"the CRC32 of its {stop - off} raw bytes differs from the index's",
                                 f"error: index CRC mismatch for object {oid} from {self.label} at offset {off}")
            # entry header (git: unpack_object_header_buffer), inline: this loop runs once per object
            c = mv[off]
            typ = (c >> 4) & 7
            sz = c & 15
            shift = 4
            pos = off + 1
            try:
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
                    base_off, pos = _ofs_base(mv, pos, stop, off)
                    b = bisect.bisect_left(soffs, base_off)
                    if b >= n or soffs[b] != base_off:
                        raise _Bad("packDeltaBaseMissing",
                                   f"its delta base offset {base_off} is not the start of an object in the pack")
                elif typ == OBJ_REF_DELTA:
                    if pos + rawsz > stop:
                        raise _Bad("packObjectCorrupt", "the entry is cut inside its delta base id")
                    base = bytes(mv[pos:pos + rawsz])
                    j = idx.find(base)
                    if j is None:
                        raise _Bad("packDeltaBaseMissing", f"its delta base {base.hex()} is not in this pack")
                    b = bisect.bisect_left(soffs, offs[j])
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
                self._reported([p])
                continue
            kind[p] = typ
            hlen[p] = pos - off
            size[p] = sz
            if b >= 0:
                nxt[p] = first[b]
                first[b] = p
        self.stats.deltas = kind.count(OBJ_OFS_DELTA) + kind.count(OBJ_REF_DELTA)
        # deltas built on an entry that was rejected here cannot be resolved (it was reported)
        for p in range(n):
            if self.failed[p] and first[p] != -1:
                deps = self._descendants(p)
                for q in deps:
                    self.failed[q] = 1
                self._reported(deps)

    def _inflate(self, p: int) -> bytes:
        off = self.soffs[p]
        stop = self.soffs[p + 1] if p + 1 < self.n else self.end
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
        if self.full:
            oid = self.idx.name(i)
            h = self.algo.new(object_header(typ, len(data)))
            h.update(data)
            got = h.digest()
            if got != oid:
                self._report("packObjectHashMismatch", p,
                             f"its {type_name(typ)} content hashes to {got.hex()}",
                             f"error: packed {oid.hex()} from {self.label} is corrupt")
                self._reported([p])
                return  # not the object the index names: unreadable for the graph
            if self.check_format:
                fs = check_object_format(typ, data, oid, self.algo, self.label)
                if fs:
                    self.findings.extend(fs)
        links = self.links
        if links is not None and typ != OBJ_BLOB and not links.add(typ, data):
            links.unparseable.append((self.idx.name(i), typ, self.label))
        self.types[i] = typ

    def _resolve(self) -> None:
        kind, first, nxt, failed = self.kind, self.first, self.next, self.failed
        full = self.full
        inflate, visit = self._inflate, self._visit
        for p in range(self.n):
            typ = kind[p]
            if not OBJ_COMMIT <= typ <= OBJ_TAG or failed[p]:
                continue
            if typ == OBJ_BLOB and not full:
                self._type_blob_tree(p)
                continue
            try:
                data = inflate(p)
            except _Bad as e:
                self._fail(p, e)
                continue
            visit(p, typ, data)
            if first[p] == -1:
                continue
            # depth first over the delta tree: one chain of contents is held at a time
            stack: list[bytes] = [data]
            cursor = [first[p]]
            while cursor:
                c = cursor[-1]
                if c == -1:
                    stack.pop()
                    cursor.pop()
                    continue
                cursor[-1] = nxt[c]
                if failed[c]:
                    continue
                try:
                    res = apply_delta(stack[-1], inflate(c))
                except _Bad as e:
                    self._fail(c, e)
                    continue
                visit(c, typ, res)
                if first[c] != -1:
                    stack.append(res)
                    cursor.append(first[c])

    def _type_blob_tree(self, p: int) -> None:
        """``standard``: a blob and the deltas built on it are blobs; nothing is inflated."""
        order, types = self.order, self.types
        types[order[p]] = OBJ_BLOB
        if self.first[p] != -1:
            for q in self._descendants(p):
                if not self.failed[q]:
                    types[order[q]] = OBJ_BLOB

    def _unresolved(self) -> None:
        """Deltas never reached from a base (REF delta loops) that nothing has reported yet."""
        kind, failed, types, order = self.kind, self.failed, self.types, self.order
        left = [p for p in range(len(kind)) if kind[p] in (OBJ_OFS_DELTA, OBJ_REF_DELTA)
                and not failed[p] and not types[order[p]]]
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
                        pack_order: Sequence[int] | None = None) -> tuple[PackObjectStats, list[Finding]]:
    """``full``: every object of *pack* inflated once, delta-resolved from its base, hashed against
    its idx name, CRC32-checked, and (with *check_format*) checked with git's fsck rules.  With
    *links*, the commits, trees and tags feed the collector so connectivity reuses this pass.
    *pack_order*: idx positions in pack order (a verified ``.rev``), saves sorting the offsets."""
    return _PackPass(pack, algo, full=True, check_format=check_format, links=links, pack_order=pack_order).run()


def scan_pack_links(pack: PackSource, algo: HashAlgo, links: LinkCollector, *,
                    pack_order: Sequence[int] | None = None) -> tuple[PackObjectStats, list[Finding]]:
    """``standard``: inflate every commit, tree and tag of *pack* once (blobs are typed, not read)
    and feed their links to *links*.  The findings describe objects that could not be decoded;
    whether they matter (are reachable) is for the connectivity check to decide."""
    return _PackPass(pack, algo, full=False, check_format=False, links=links, pack_order=pack_order).run()


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
        obj, fs = check_loose_object(load(), path, algo, verify_hash=True)
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
    "MAX_DELTA_CHAIN", "LinkCollector", "LooseEntry", "LooseObjectStats", "ObjectError", "ObjectStore",
    "PackIndexLike", "PackObjectStats", "PackSource", "apply_delta", "scan_pack_links", "verify_loose_objects",
    "verify_pack_objects",
]
