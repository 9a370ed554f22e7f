"""The chunk-based file layout shared by ``multi-pack-index`` and commit-graph files.

Both formats (git: Documentation/gitformat-chunk.adoc, chunk-format.c) start with a small header,
followed by a *table of contents*: ``count + 1`` entries of 12 bytes (a 4-byte chunk id and an
8-byte file offset), the last one a terminating id 0 whose offset is the end of the last chunk.
A chunk's size is the distance to the next entry's offset; the file ends with an H-byte trailer,
the hash of everything before it.

This module reads that table for both formats with git's rules (``read_table_of_contents``) plus
one rule git's reader leaves out but git's writer always satisfies, so a snapshot cut or extended
anywhere is caught without hashing:

1. every chunk id is non-zero, the terminating id is zero, no id repeats, offsets are aligned
   (``<p>ChunkTable``; git: "terminating chunk id appears earlier than expected",
   "final chunk has non-zero id", "duplicate chunk ID", "chunk id … not N-byte aligned");
2. offsets never decrease, never point into the header or the table itself, and never pass the
   trailer (``<p>ChunkOffset``; git: "improper chunk offset(s) %x and %x");
3. the last chunk ends exactly at the trailer (``<p>ChunkTableEnd``; git accepts slack here).

It also holds the checks both formats make on their OID fanout and OID lookup chunks
(``fanout``, ``first_unsorted``, ``fanout_mismatch``), vectorised over the buffer.
"""

from __future__ import annotations

import itertools
import operator
import re
import struct
import sys
from array import array
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..report import Finding, Severity, finding, register
from .common import Buffer

TOC_ENTRY = 12

_PREFIXES = {"midx": "multi-pack-index", "commitGraph": "commit-graph"}

for _p, _what in _PREFIXES.items():
    register(
        _p,
        (f"{_p}ChunkTable", Severity.ERROR,
         f"The {_what} table of contents is malformed: too short to hold its entries, a zero id "
         "before the end, a non-zero terminating id, a repeated id or a misaligned offset.",
         "git: error: terminating chunk id appears earlier than expected / final chunk has non-zero "
         "id / duplicate chunk ID / chunk id … not aligned; the file is not loaded."),
        (f"{_p}ChunkOffset", Severity.ERROR,
         f"A {_what} chunk offset decreases, points into the header or table of contents, or "
         "passes the trailing checksum: the file was cut short or its table is corrupt.",
         "git: error: improper chunk offset(s) …; the file is not loaded."),
        (f"{_p}ChunkTableEnd", Severity.ERROR,
         f"The last {_what} chunk ends before the trailing checksum: bytes were added to the "
         "file or its table of contents is corrupt.",
         "git accepts the slack when it loads the file; its writer never produces it."),
    )


def hex_id(chunk_id: bytes) -> str:
    """A chunk id for messages: its ASCII letters when printable, else hex (as git prints it)."""
    if all(0x20 < c < 0x7F for c in chunk_id):
        return f"{chunk_id.decode('ascii')} ({chunk_id.hex()})"
    return chunk_id.hex()


def read_chunk_table(
    mv: memoryview,
    path: str,
    prefix: str,
    *,
    toc_offset: int,
    count: int,
    hash_len: int,
    alignment: int,
) -> tuple[dict[bytes, tuple[int, int]] | None, list[Finding]]:
    """Read a table of contents of *count* chunks at *toc_offset*.

    Returns ``{chunk_id: (offset, size)}`` or ``None`` (with findings) when the table cannot be
    trusted. *prefix* selects the finding codes (``midx`` or ``commitGraph``).
    """
    what = _PREFIXES[prefix]
    size = len(mv)
    toc_end = toc_offset + (count + 1) * TOC_ENTRY
    limit = size - hash_len
    if toc_end > limit:
        return None, [finding(
            f"{prefix}ChunkTable", path,
            f"{path}: {what} of {size} bytes is too short to hold its table of {count} chunks "
            f"({toc_end} bytes) and a {hash_len}-byte trailer: the file was cut short. "
            f"git: error: {what} file is too small")]
    entries = [struct.unpack_from(">IQ", mv, toc_offset + i * TOC_ENTRY) for i in range(count + 1)]
    chunks: dict[bytes, tuple[int, int]] = {}
    for i in range(count):
        cid, off = entries[i]
        nxt = entries[i + 1][1]
        cid_b = cid.to_bytes(4, "big")
        if cid == 0:
            return None, [finding(
                f"{prefix}ChunkTable", path,
                f"{path}: {what} table of contents has a terminating (zero) chunk id at entry {i} of "
                f"{count}. git: error: terminating chunk id appears earlier than expected")]
        if alignment > 1 and off % alignment:
            return None, [finding(
                f"{prefix}ChunkTable", path,
                f"{path}: {what} chunk {hex_id(cid_b)} at offset {off:#x} is not {alignment}-byte "
                f"aligned. git: error: chunk id {cid:x} not {alignment}-byte aligned")]
        if off < toc_end or nxt < off or nxt > limit:
            if nxt > limit and nxt >= off >= toc_end:
                why = (f"chunk {hex_id(cid_b)} ends at {nxt:#x}, past the trailer at {limit:#x} "
                       f"(the file is {nxt - limit} bytes shorter than its table says: cut short?)")
            elif off < toc_end:
                why = (f"chunk {hex_id(cid_b)} starts at {off:#x}, inside the header and table of "
                       f"contents (which end at {toc_end:#x})")
            else:
                why = f"chunk {hex_id(cid_b)} spans {off:#x}..{nxt:#x}"
            return None, [finding(
                f"{prefix}ChunkOffset", path,
                f"{path}: {what} {why}. git: error: improper chunk offset(s) {off:x} and {nxt:x}")]
        if cid_b in chunks:
            return None, [finding(
                f"{prefix}ChunkTable", path,
                f"{path}: {what} lists chunk {hex_id(cid_b)} twice. "
                f"git: error: duplicate chunk ID {cid:x} found")]
        chunks[cid_b] = (off, nxt - off)
    last_id, last_off = entries[count]
    if last_id != 0:
        return None, [finding(
            f"{prefix}ChunkTable", path,
            f"{path}: {what} table of contents does not end with a zero chunk id (found "
            f"{hex_id(last_id.to_bytes(4, 'big'))}). git: error: final chunk has non-zero id {last_id:x}")]
    if count == 0 and not toc_end <= last_off <= limit:
        return None, [finding(
            f"{prefix}ChunkOffset", path,
            f"{path}: {what} terminating offset {last_off:#x} lies outside {toc_end:#x}..{limit:#x}. "
            f"git: error: improper chunk offset(s)")]
    if last_off != limit:
        return None, [finding(
            f"{prefix}ChunkTableEnd", path,
            f"{path}: {what} chunks end at {last_off:#x} but the trailing checksum starts at "
            f"{limit:#x}: {limit - last_off} unexplained bytes (appended data or a corrupt table)")]
    return chunks, []


# --- fanout and OID lookup helpers -------------------------------------------------------------


def be32_array(mv: Buffer, offset: int, n: int) -> array[int]:
    """*n* big-endian u32 starting at byte *offset* of *mv*, as one native ``array('I')`` (C speed, no
    copy of the bytes beyond the array's own)."""
    a = array("I")
    if a.itemsize != 4:  # pragma: no cover - every supported platform has 4-byte 'I'
        a = array("L")
    view = memoryview(mv)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    a.frombytes(view[offset:offset + 4 * n])
    if sys.byteorder == "little":
        a.byteswap()
    return a


def be32_column(mv: Buffer, offset: int, width: int, n: int, field: int) -> array[int]:
    """The u32 at byte *field* of each of *n* records of *width* bytes starting at *offset*.

    *width* and *field* must be multiples of 4 (true for CDAT, OOFF).
    """
    view = memoryview(mv)[offset:offset + width * n]
    words = view.cast("I") if len(view) % 4 == 0 else memoryview(bytes(view[: len(view) // 4 * 4])).cast("I")
    col = array("I")
    col.frombytes(words[field // 4::width // 4].tobytes())
    if sys.byteorder == "little":
        col.byteswap()
    return col


def fanout_disorder(fan: array[int]) -> int | None:
    """The first ``i`` with ``fan[i] > fan[i + 1]``, or None when the fanout never decreases."""
    if all(a <= b for a, b in itertools.pairwise(fan)):
        return None
    for i in range(255):
        if fan[i] > fan[i + 1]:
            return i
    return None  # pragma: no cover


def fanout_mismatch(fan: array[int], mv: Buffer, oid_offset: int, hash_len: int) -> int | None:
    """The first byte value ``b`` whose bucket boundaries disagree with the OIDs' first bytes.

    With a monotonic fanout whose last entry is the OID count, checking that each non-empty bucket
    starts and ends with OIDs of first byte ``b`` proves the fanout matches sorted OIDs (the full
    order is :func:`first_unsorted`'s job).
    """
    view = memoryview(mv)
    prev = 0
    for b in range(256):
        cur = fan[b]
        if cur > prev and (view[oid_offset + prev * hash_len] != b
                           or view[oid_offset + (cur - 1) * hash_len] != b):
            return b
        prev = cur
    return None


_SPLITTERS: dict[int, Callable[[Buffer], list[bytes]]] = {}


def record_splitter(width: int) -> Callable[[Buffer], list[bytes]]:
    """Joined fixed-width records (ids) -> the records: one ``findall`` at C speed, compiled once per
    width."""
    f = _SPLITTERS.get(width)
    if f is None:
        f = _SPLITTERS[width] = re.compile(rb".{%d}" % width, re.S).findall
    return f


def first_unsorted(mv: Buffer, oid_offset: int, count: int, hash_len: int) -> int | None:
    """The first ``i`` with ``oid[i] >= oid[i + 1]`` (not strictly increasing), or None.  A block of
    names at a time is cut apart by one regular expression and compared by one ``map`` (C speed);
    only a block that is not in order is examined name by name."""
    split = record_splitter(hash_len)
    view = memoryview(mv)
    step = 1 << 16
    prev: bytes | None = None
    for start in range(0, count, step):
        n = min(step, count - start)
        names = split(view[oid_offset + start * hash_len: oid_offset + (start + n) * hash_len])
        if prev is not None and not prev < names[0]:
            return start - 1
        if not all(map(operator.lt, names, itertools.islice(names, 1, None))):
            for i in range(n - 1):
                if not names[i] < names[i + 1]:
                    return start + i
        prev = names[-1]
    return None


BUCKET_SCAN_MAX = 1 << 16  # fan-out buckets of up to this many bytes of names are searched with find()


def find_in_buckets(names: Any, base: int, fan: Sequence[int], hash_len: int, oids: Iterable[bytes],
                    find: Callable[[bytes], int | None]) -> dict[bytes, int]:
    """Positions in a sorted name table (at *base* of *names*, fan-out *fan*) of those *oids* it lists,
    in bulk: each id is searched for in its fan-out bucket with one substring search at C speed, a hit
    counting only at a name boundary; in place when *names* can be searched (bytes, bytearray, mmap),
    else in one copy of each bucket asked about.  Buckets over ``BUCKET_SCAN_MAX`` bytes use *find*
    (a binary search)."""
    out: dict[bytes, int] = {}
    h = hash_len
    by_first: dict[int, list[bytes]] = {}
    for o in set(oids):
        if len(o) == h:
            by_first.setdefault(o[0], []).append(o)
    in_place = hasattr(names, "find")
    for first, qs in by_first.items():
        lo = fan[first - 1] if first else 0
        hi = fan[first]
        if hi <= lo:
            continue
        if (hi - lo) * h > BUCKET_SCAN_MAX:
            for o in qs:
                i = find(o)
                if i is not None:
                    out[o] = i
            continue
        if in_place:
            hay, start, end = names, base + lo * h, base + hi * h
        else:
            hay, start, end = bytes(names[base + lo * h: base + hi * h]), 0, (hi - lo) * h
        for o in qs:
            pos = hay.find(o, start, end)
            while pos >= 0 and (pos - start) % h:
                pos = hay.find(o, pos + 1, end)
            if pos >= 0:
                out[o] = lo + (pos - start) // h
    return out


def bsearch_oid(mv: Buffer, fan: array[int], oid_offset: int, hash_len: int, oid: bytes) -> int | None:
    """Position of *oid* in a sorted OID table with its fanout, or None."""
    if len(oid) != hash_len:
        return None
    view = memoryview(mv)
    first = oid[0]
    lo = fan[first - 1] if first else 0
    hi = fan[first]
    while lo < hi:
        mid = (lo + hi) // 2
        o = oid_offset + mid * hash_len
        cur = bytes(view[o:o + hash_len])
        if cur < oid:
            lo = mid + 1
        elif cur > oid:
            hi = mid
        else:
            return mid
    return None
