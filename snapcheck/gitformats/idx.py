"""Pack index files (``objects/pack/pack-<hash>.idx``), versions 1 and 2, SHA-1 and SHA-256.

Layout (git: Documentation/gitformat-pack.adoc, "pack-*.idx files"; H = hash length):

* v1: fan-out (256 x u32) | N x (u32 offset, name) | pack checksum (H) | idx checksum (H)
* v2: ``\\377tOc`` | u32 version = 2 | fan-out | N names | N x u32 CRC32 | N x u32 offset
  (MSB set: index into the next table) | K x u64 large offsets | pack checksum | idx checksum

Rules enforced, in the order git's loader applies them (git: packfile.c ``load_idx``):

1. size >= 1024 + 2H, else git: "index file <path> is too small"                    (idxTooSmall)
2. a v2 signature must carry version 2, else git: "index file … is version N and is not
   supported by this binary"                                                              (idxUnsupportedVersion)
3. the fan-out never decreases, else git: "non-monotonic index <path>"                   (idxFanoutNotMonotonic)
4. exact size: v1 = 1024 + N(H+4) + 2H; v2 = 1032 + N(H+8) + 2H + 8K where K is exactly the
   number of offsets with the MSB set.  git rejects a v2 size outside [min, min + 8(N-1)]
   with "wrong index v2 file size in <path>" (v1 likewise) and would read a wrong trailer
   from any other size in that range                                                      (idxBadSize)
5. every large-offset reference points inside the large-offset table; git:
   "offset beyond end of pack index … (truncated index?)"                                 (idxLargeOffsetOutOfRange)
6. names strictly increasing: a decrease breaks git's binary search (idxNamesNotSorted);
   an equal neighbour is a duplicate object, which git tolerates (t5308) (idxDuplicateName)
7. fan-out entry b == number of names whose first byte <= b                               (idxFanoutMismatch)
8. with ``verify_checksum``: hash of everything before the last H bytes == the last H bytes;
   git fsck: "Packfile index for <pack> hash mismatch"                                    (idxChecksumMismatch)

Against its pack (:func:`check_idx_against_pack`, git: packfile.c ``open_packed_git_1``):
object count == pack header count, pack checksum == pack trailer ("packfile … does not match
index"), every offset in [12, pack size - H) and no two objects at one offset.

A :class:`PackIndex` is a view over the buffer: no Python object per entry.  Bulk accessors
return one ``array`` each.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import mmap
import operator
import struct
import sys
from array import array
from collections.abc import Iterable
from typing import Any

from ..report import Finding, Severity, finding, register
from .chunks import be32_array, find_in_buckets
from .common import Buffer, HashAlgo

register(
    "idx",
    ("idxTooSmall", Severity.ERROR,
     "The pack index is smaller than the smallest valid index (1024 + 2 x hash length bytes).",
     "error: index file <path> is too small; the pack is unusable"),
    ("idxUnsupportedVersion", Severity.ERROR,
     "The pack index has the v2+ signature but a version other than 2.",
     "error: index file <path> is version N and is not supported by this binary"),
    ("idxFanoutNotMonotonic", Severity.ERROR,
     "The fan-out table of the pack index decreases somewhere.",
     "error: non-monotonic index <path>; the pack is unusable"),
    ("idxBadSize", Severity.ERROR,
     "The pack index size differs from the exact size its object count (and large-offset count) dictates: "
     "it was cut, padded or overwritten.",
     "error: wrong index v1/v2 file size in <path> (when outside git's accepted range; inside it git "
     "reads a wrong trailer and reports 'packfile … does not match index')"),
    ("idxLargeOffsetOutOfRange", Severity.ERROR,
     "An offset entry refers to a 64-bit offset beyond the large-offset table.",
     "fatal: offset beyond end of pack index for <pack> (truncated index?)"),
    ("idxNamesNotSorted", Severity.ERROR,
     "The object names in the pack index are not in ascending order.",
     "git's binary search misses objects (reported missing); git verify-pack rejects the index"),
    ("idxDuplicateName", Severity.WARNING,
     "The same object name appears more than once in the pack index (the pack holds duplicate objects).",
     "accepted by default (git index-pack --strict refuses: 'The same object … appears twice in the pack'); "
     "git never writes such packs itself"),
    ("idxFanoutMismatch", Severity.ERROR,
     "A fan-out entry differs from the number of object names with that first byte or less.",
     "object lookups through the fan-out miss objects (git reports them missing); git verify-pack rejects"),
    ("idxChecksumMismatch", Severity.ERROR,
     "The pack index's trailing checksum does not match its contents.",
     "git fsck: error: Packfile index for <pack> hash mismatch"),
    ("idxPackCountMismatch", Severity.ERROR,
     "The pack header's object count differs from the pack index's object count.",
     "error: packfile <pack> claims to have N objects while index indicates M objects"),
    ("idxPackMismatch", Severity.ERROR,
     "The pack checksum recorded in the pack index differs from the pack's trailer.",
     "error: packfile <pack> does not match index (git fsck: pack checksum does not match its index)"),
    ("idxOffsetOutOfRange", Severity.ERROR,
     "An object offset in the pack index lies outside the pack's object data (before byte 12 or in or "
     "after the trailer).",
     "fatal: offset beyond end of packfile (truncated pack?) or a bad object header at that offset"),
    ("idxDuplicateOffset", Severity.ERROR,
     "Two index entries point at the same pack offset.",
     "git fsck: index CRC mismatch / packed object is corrupt for one of them; git verify-pack rejects"),
)

IDX_SIGNATURE = b"\xfftOc"
_FANOUT = struct.Struct(">256I")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_LITTLE = sys.byteorder == "little"
# maps a byte to 1 when its most significant bit is set, else 0
_MSB_TABLE = bytes(1 if b & 0x80 else 0 for b in range(256))
_NAME_CHUNK = 4096  # names compared per struct unpack
_SORT_CHUNK = 1 << 20  # offsets sorted per chunk when checking for duplicates
_structs: dict[tuple[int, int, int], struct.Struct] = {}
# u32s can be widened to u64s by copying them into every other u32 ('I' is 4 bytes, 'Q' 8)
_NATIVE_WIDEN = array("I").itemsize == 4 and array("Q").itemsize == 8


def _names_struct(rawsz: int, skip: int, count: int) -> struct.Struct:
    """A Struct that unpacks *count* names of *rawsz* bytes, each preceded by *skip* bytes."""
    key = (rawsz, skip, count)
    s = _structs.get(key)
    if s is None:
        s = struct.Struct(">" + ((f"{skip}x" if skip else "") + f"{rawsz}s") * count)
        if count == _NAME_CHUNK or len(_structs) < 64:
            _structs[key] = s
    return s


def _widen_u32_be(raw: memoryview, n: int, stride: int = 4) -> array[int]:
    """*n* big-endian u32s, one every *stride* bytes of *raw*, as one array('Q') (byte shuffles at C speed)."""
    if stride == 4 and n and _NATIVE_WIDEN:
        # contiguous: byte-swap them as u32s, then copy them into every other u32 of the result
        res = array("Q", [0]) * n
        halves = memoryview(res).cast("B").cast("I")
        halves[0 if _LITTLE else 1::2] = be32_array(raw, 0, n)
        return res
    out = bytearray(8 * n)
    if n:
        for k in range(4):
            # byte k of a big-endian u32 is its (3 - k)-th least significant byte
            pos = (3 - k) if _LITTLE else (4 + k)
            out[pos::8] = raw[k: k + (n - 1) * stride + 1: stride].tobytes()
    res = array("Q")
    res.frombytes(out)
    return res


class PackIndex:
    """A parsed pack index: a view over the file's bytes (nothing per entry is materialised)."""

    __slots__ = (
        "_bounds", "_crc_off", "_data", "_distinct", "_fanout", "_large_off", "_mv", "_names_cache", "_names_off",
        "_nlarge", "_off_off", "_offsets", "_stride", "algo", "checksum_verified", "count", "idx_checksum",
        "pack_checksum", "version",
    )

    def __init__(self, mv: memoryview, data: Any, algo: HashAlgo, version: int,
                 fanout: tuple[int, ...], nlarge: int) -> None:
        h = algo.rawsz
        n = fanout[255]
        self._mv = mv
        self._data = data
        self._fanout = fanout
        self.algo = algo
        self.version = version
        self.count = n
        self.pack_checksum = bytes(mv[len(mv) - 2 * h: len(mv) - h])
        self.idx_checksum = bytes(mv[len(mv) - h:])
        self._nlarge = nlarge
        # True when parse_idx hashed the file and its trailing checksum matched
        self.checksum_verified = False
        self._names_cache: bytes | None = None
        # True once the offsets are known to be pairwise distinct (a verified .rev proves it for free)
        self._distinct: bool | None = None
        # (smallest, largest) offset, once known (a verified .rev gives them for free)
        self._bounds: tuple[int, int] | None = None
        self._offsets: array[int] | None = None  # offsets(), computed once
        if version == 1:
            self._names_off = 1024 + 4
            self._stride = h + 4
            self._crc_off = -1
            self._off_off = 1024
            self._large_off = -1
        else:
            self._names_off = 1032
            self._stride = h
            self._crc_off = 1032 + n * h
            self._off_off = self._crc_off + 4 * n
            self._large_off = self._off_off + 4 * n

    def __repr__(self) -> str:
        return f"<PackIndex v{self.version} {self.algo.name} {self.count} objects>"

    def __len__(self) -> int:
        return self.count

    @property
    def fanout(self) -> tuple[int, ...]:
        return self._fanout

    @property
    def large_offset_count(self) -> int:
        return self._nlarge

    def _check(self, i: int) -> None:
        if not 0 <= i < self.count:
            raise IndexError(f"pack index position {i} out of range (0..{self.count - 1})")

    def name(self, i: int) -> bytes:
        """The *i*-th object id in sorted order."""
        self._check(i)
        p = self._names_off + i * self._stride
        return bytes(self._data[p: p + self.algo.rawsz])

    def find(self, oid: bytes) -> int | None:
        """Position of *oid* (fan-out + binary search), or None."""
        h = self.algo.rawsz
        if len(oid) != h:
            return None
        oid = bytes(oid)
        first = oid[0]
        lo = self._fanout[first - 1] if first else 0
        hi = self._fanout[first]
        data, base, stride = self._data, self._names_off, self._stride
        while lo < hi:
            mid = (lo + hi) >> 1
            p = base + mid * stride
            cur = bytes(data[p: p + h])
            if cur < oid:
                lo = mid + 1
            elif cur > oid:
                hi = mid
            else:
                return mid
        return None

    def __contains__(self, oid: bytes) -> bool:
        return self.find(oid) is not None

    def find_many(self, oids: Iterable[bytes]) -> dict[bytes, int]:
        """Positions of those *oids* the index lists, in bulk (:func:`~.chunks.find_in_buckets`),
        searched in the index's own buffer when its names lie there contiguously."""
        h = self.algo.rawsz
        data: Any = self._data
        if self._stride == h and hasattr(data, "find"):
            return find_in_buckets(data, self._names_off, self._fanout, h, oids, self.find)
        return find_in_buckets(self.names_view(), 0, self._fanout, h, oids, self.find)  # v1, or a plain view

    def offset(self, i: int) -> int:
        """Pack offset of the *i*-th object (64-bit offsets resolved)."""
        self._check(i)
        if self.version == 1:
            return int(_U32.unpack_from(self._mv, 1024 + i * self._stride)[0])
        off = int(_U32.unpack_from(self._mv, self._off_off + 4 * i)[0])
        if off & 0x80000000:
            return int(_U64.unpack_from(self._mv, self._large_off + 8 * (off & 0x7FFFFFFF))[0])
        return off

    def crc32(self, i: int) -> int | None:
        """CRC32 of the *i*-th object's packed bytes (v2), None for v1."""
        self._check(i)
        if self.version == 1:
            return None
        return int(_U32.unpack_from(self._mv, self._crc_off + 4 * i)[0])

    def crc32s(self) -> array[int] | None:
        """All CRC32s in index order as one array('I'), None for v1."""
        if self.version == 1:
            return None
        return be32_array(self._mv, self._crc_off, self.count)

    def offsets(self) -> array[int]:
        """All pack offsets in index order, as one array('Q').  Computed once and shared by every caller:
        do not modify it."""
        res = self._offsets
        if res is None:
            res = self._offsets = self._compute_offsets()
        return res

    def offsets_u32(self) -> array[int] | None:
        """All pack offsets in index order as one native array('I') (a byte swap of the table, no
        widening) when the index is v2 and has no 64-bit offsets, else None (use :meth:`offsets`)."""
        if self.version != 2 or self._nlarge or not _NATIVE_WIDEN:
            return None
        return be32_array(self._mv, self._off_off, self.count)

    def offset_bounds(self) -> tuple[int, int]:
        """(smallest, largest) pack offset; the index must list at least one object."""
        b = self._bounds
        if b is None:
            offs = self.offsets()
            b = self._bounds = (min(offs), max(offs))
        return b

    def _compute_offsets(self) -> array[int]:
        n = self.count
        if self.version == 1:
            return _widen_u32_be(self._mv[self._off_off: self._off_off + n * self._stride], n, self._stride)
        raw = self._mv[self._off_off: self._off_off + 4 * n]
        res = _widen_u32_be(raw, n)
        if self._nlarge:
            flags = raw[0::4].tobytes().translate(_MSB_TABLE)
            large_start = self._large_off
            mv = self._mv
            for p in itertools.compress(range(n), flags):
                res[p] = _U64.unpack_from(mv, large_start + 8 * (res[p] & 0x7FFFFFFF))[0]
        return res

    def names_view(self) -> memoryview:
        """All object names, sorted, as one contiguous view of count * rawsz bytes."""
        h, n = self.algo.rawsz, self.count
        if self.version == 2:
            return self._mv[self._names_off: self._names_off + n * h]
        if self._names_cache is None:
            out = bytearray(n * h)
            src = self._mv[self._names_off: self._names_off + n * self._stride]
            for k in range(h):
                out[k::h] = src[k::self._stride].tobytes()
            self._names_cache = bytes(out)
        return memoryview(self._names_cache)

    def release(self) -> None:
        """Drop the views on the underlying buffer (so an mmap can be closed). The index is unusable after."""
        self._mv.release()
        self._data = b""
        self._offsets = None


def pack_path_for(path: str) -> str:
    """``objects/pack/pack-X.idx`` → ``objects/pack/pack-X.pack`` (git names the pack in its messages)."""
    for ext in (".idx", ".rev", ".mtimes", ".bitmap"):
        if path.endswith(ext):
            return path[: -len(ext)] + ".pack"
    return path


def _first_decrease(values: tuple[int, ...]) -> int:
    for i in range(1, len(values)):
        if values[i] < values[i - 1]:
            return i
    return -1


def _check_names(idx: PackIndex, path: str) -> tuple[bool, list[Finding]]:
    """Names strictly increasing?  Returns (sorted_non_decreasing, findings).  Compares a chunk of
    names at a time at C speed; only a failing chunk is examined name by name."""
    n, h = idx.count, idx.algo.rawsz
    skip = idx._stride - h
    base = idx._names_off if skip == 0 else idx._off_off  # v1 entries start with their offset
    mv = idx._mv
    lt = operator.lt
    prev: bytes | None = None
    first_unsorted = -1
    first_dup = -1
    n_unsorted = 0
    n_dup = 0
    for start in range(0, n, _NAME_CHUNK):
        k = min(_NAME_CHUNK, n - start)
        t = _names_struct(h, skip, k).unpack_from(mv, base + start * idx._stride)
        if (prev is None or prev < t[0]) and all(map(lt, t, t[1:])):
            prev = t[-1]
            continue
        seq = t if prev is None else (prev, *t)
        off = start if prev is None else start - 1
        for j in range(len(seq) - 1):
            a, b = seq[j], seq[j + 1]
            if a < b:
                continue
            if a == b:
                n_dup += 1
                if first_dup < 0:
                    first_dup = off + j + 1
            else:
                n_unsorted += 1
                if first_unsorted < 0:
                    first_unsorted = off + j + 1
        prev = t[-1]
    out: list[Finding] = []
    if first_unsorted >= 0:
        out.append(finding(
            "idxNamesNotSorted", path,
            f"{path}: object names out of order at entry {first_unsorted} "
            f"({idx.name(first_unsorted - 1).hex()} > {idx.name(first_unsorted).hex()}; "
            f"{n_unsorted} descent(s)): git's lookups miss objects in pack {pack_path_for(path)}"))
    if first_dup >= 0:
        out.append(finding(
            "idxDuplicateName", path,
            f"{path}: object {idx.name(first_dup).hex()} is listed more than once "
            f"({n_dup} duplicate entr{'y' if n_dup == 1 else 'ies'}); git accepts duplicate objects "
            "but never writes them"))
    return first_unsorted < 0, out


def _check_fanout_against_names(idx: PackIndex, path: str) -> list[Finding]:
    """With names sorted, fanout[b] must be the count of names whose first byte is <= b."""
    n = idx.count
    first = idx._mv[idx._names_off: idx._names_off + n * idx._stride: idx._stride].tobytes()
    fan = idx._fanout
    for b in range(256):
        want = bisect.bisect_right(first, b)
        if fan[b] != want:
            return [finding(
                "idxFanoutMismatch", path,
                f"{path}: fan-out entry {b:#04x} says {fan[b]} objects but {want} names start with "
                f"a byte <= {b:#04x}: git's lookups through this index miss objects")]
    return []


def parse_idx(buf: Buffer, algo: HashAlgo, path: str, *, verify_checksum: bool) -> tuple[PackIndex | None, list[Finding]]:
    """Parse and check a pack index.  Returns (None, findings) when git itself could not load it
    (size, version, fan-out, large-offset table); otherwise the index and any findings."""
    mv = memoryview(buf)
    if mv.format != "B" or mv.ndim != 1:
        mv = mv.cast("B")
    # slicing bytes or an mmap yields bytes directly (find() compares slices)
    data: Any = buf if isinstance(buf, (bytes, mmap.mmap)) else mv
    h = algo.rawsz
    size = len(mv)
    findings: list[Finding] = []
    if size < 1024 + 2 * h:
        findings.append(finding(
            "idxTooSmall", path,
            f"{path}: {size} bytes, less than the {1024 + 2 * h} bytes of the smallest {algo.name} index; "
            f"git: error: index file {path} is too small"))
        return None, findings
    if mv[:4] == IDX_SIGNATURE:
        version = int(_U32.unpack_from(mv, 4)[0])
        if version != 2:
            findings.append(finding(
                "idxUnsupportedVersion", path,
                f"{path}: index version {version} (only 1 and 2 exist); git: error: index file {path} "
                f"is version {version} and is not supported by this binary"))
            return None, findings
        header = 8
    else:
        version = 1
        header = 0
    fanout: tuple[int, ...] = _FANOUT.unpack_from(mv, header)
    if not all(map(operator.le, fanout, fanout[1:])):
        i = _first_decrease(fanout)
        findings.append(finding(
            "idxFanoutNotMonotonic", path,
            f"{path}: fan-out entry {i:#04x} ({fanout[i]}) is less than entry {i - 1:#04x} ({fanout[i - 1]}); "
            f"git: error: non-monotonic index {path}"))
        return None, findings
    n = fanout[255]
    nlarge = 0
    if version == 1:
        want = 1024 + 2 * h + n * (h + 4)
        if size != want:
            findings.append(finding(
                "idxBadSize", path,
                f"{path}: {size} bytes but a v1 index of {n} objects is exactly {want} bytes "
                f"({_size_delta(size, want)}); git: error: wrong index v1 file size in {path}"))
            return None, findings
    else:
        min_size = 1032 + 2 * h + n * (h + 8)
        max_size = min_size + 8 * (n - 1) if n else min_size
        if not min_size <= size <= max_size:
            findings.append(finding(
                "idxBadSize", path,
                f"{path}: {size} bytes but a v2 index of {n} objects is {min_size} bytes plus 8 per large offset "
                f"({_size_delta(size, min_size)}); git: error: wrong index v2 file size in {path}"))
            return None, findings
        off_off = 1032 + n * (h + 4)
        raw = mv[off_off: off_off + 4 * n]
        if n:
            flags = raw[0::4].tobytes().translate(_MSB_TABLE)
            nlarge = flags.count(1)
        want = min_size + 8 * nlarge
        if size != want:
            findings.append(finding(
                "idxBadSize", path,
                f"{path}: {size} bytes but this v2 index of {n} objects, {nlarge} of them flagged as large "
                f"offsets, is exactly {want} bytes ({_size_delta(size, want)}); git loads it, then fails with "
                f"'packfile {pack_path_for(path)} does not match index' or 'offset beyond end of pack index'"))
            return None, findings
        if nlarge:
            top = max(be32_array(mv, off_off, n))
            if (top & 0x7FFFFFFF) >= nlarge:
                findings.append(finding(
                    "idxLargeOffsetOutOfRange", path,
                    f"{path}: an offset entry refers to large offset #{top & 0x7FFFFFFF} but the table has "
                    f"{nlarge} entries; git: fatal: offset beyond end of pack index for "
                    f"{pack_path_for(path)} (truncated index?)"))
                return None, findings
    idx = PackIndex(mv, data, algo, version, fanout, nlarge)
    names_sorted, name_findings = _check_names(idx, path)
    findings.extend(name_findings)
    if names_sorted:
        findings.extend(_check_fanout_against_names(idx, path))
    if verify_checksum:
        got = algo.digest(mv[: size - h])
        idx.checksum_verified = got == idx.idx_checksum
        if not idx.checksum_verified:
            findings.append(finding(
                "idxChecksumMismatch", path,
                f"{path}: trailing checksum {idx.idx_checksum.hex()} but the contents hash to {got.hex()}; "
                f"git fsck: error: Packfile index for {pack_path_for(path)} hash mismatch"))
    return idx, findings


def _size_delta(size: int, want: int) -> str:
    d = size - want
    return f"{d} byte(s) too many" if d > 0 else f"{-d} byte(s) missing"


def _first_bad_offset(offsets: array[int], lo: int, hi: int) -> tuple[int, int]:
    for i, off in enumerate(offsets):
        if not lo <= off < hi:
            return i, off
    return -1, -1  # pragma: no cover - only called when one exists


def _strict_break(seq: Any) -> int | None:
    """The first value of an ascending sequence (or one-shot iterator) that is not greater than its
    predecessor, or None.  One pass, at C speed."""
    x, y, z = itertools.tee(seq, 3)
    next(y, None)
    next(z, None)
    bad = next(itertools.compress(z, map(operator.ge, x, y)), None)
    return None if bad is None else int(bad)


def _find_duplicate(offsets: array[int]) -> int | None:
    """An offset that occurs twice, or None.  Sorts at most _SORT_CHUNK Python ints at a time (the
    sorted runs are kept as arrays and merged), so memory stays near 8 bytes per object."""
    n = len(offsets)
    if n < 2:
        return None
    if n <= _SORT_CHUNK:
        return _strict_break(sorted(offsets))
    runs: list[array[int]] = []
    for start in range(0, n, _SORT_CHUNK):
        run = array("Q", sorted(offsets[start: start + _SORT_CHUNK]))
        dup = _strict_break(run)
        if dup is not None:
            return dup
        runs.append(run)
    return _strict_break(heapq.merge(*runs))


def check_idx_against_pack(idx: PackIndex, path: str, *, pack_path: str, pack_count: int | None,
                           pack_trailer: bytes | None, pack_size: int | None,
                           check_distinct: bool | None = None) -> list[Finding]:
    """Cross-check an index with its pack's header count, trailer and size (git: packfile.c
    ``open_packed_git_1``, pack-check.c ``verify_packfile``).

    Offsets must lie in [12, pack size - H) (cheap) and be pairwise distinct.  Distinctness needs a
    sort (about 1 s per million objects, memory ~8 bytes per object); with *check_distinct* None it
    is skipped when already implied: the index's checksum verified (git never writes duplicate
    offsets, so damage would have broken the checksum) or a sound ``.rev`` was checked first."""
    out: list[Finding] = []
    h = idx.algo.rawsz
    if pack_count is not None and pack_count != idx.count:
        out.append(finding(
            "idxPackCountMismatch", path,
            f"{path}: the index lists {idx.count} objects but {pack_path} says it holds {pack_count}; "
            f"git: error: packfile {pack_path} claims to have {pack_count} objects while index indicates "
            f"{idx.count} objects"))
    if pack_trailer is not None and bytes(pack_trailer) != idx.pack_checksum:
        out.append(finding(
            "idxPackMismatch", path,
            f"{path}: records pack checksum {idx.pack_checksum.hex()} but {pack_path} ends with "
            f"{bytes(pack_trailer).hex()}; git: error: packfile {pack_path} does not match index"))
    if pack_size is not None and idx.count:
        lo, hi = 12, pack_size - h
        first, last = idx.offset_bounds()
        if first < lo or last >= hi:
            i, off = _first_bad_offset(idx.offsets(), lo, hi)
            what = ("before the end of the 12-byte pack header" if off < lo else
                    f"at or beyond the pack trailer (object data ends at {max(hi, 0)})")
            out.append(finding(
                "idxOffsetOutOfRange", path,
                f"{path}: object {idx.name(i).hex()} is at offset {off}, {what} of {pack_path} "
                f"({pack_size} bytes); git: fatal: offset beyond end of packfile (truncated pack?)"))
        else:
            if check_distinct is None:
                check_distinct = not idx.checksum_verified
            dup = None
            if check_distinct and not idx._distinct:
                dup = _find_duplicate(idx.offsets())
                idx._distinct = dup is None
            if dup is not None:
                who = [idx.name(i).hex() for i in itertools.islice(
                    itertools.compress(range(idx.count), map(dup.__eq__, idx.offsets())), 2)]
                out.append(finding(
                    "idxDuplicateOffset", path,
                    f"{path}: objects {' and '.join(who)} both claim offset {dup} in {pack_path}; "
                    "git fsck: index CRC mismatch for one of them (git verify-pack rejects the index)"))
    return out


__all__ = ["IDX_SIGNATURE", "PackIndex", "check_idx_against_pack", "pack_path_for", "parse_idx"]
