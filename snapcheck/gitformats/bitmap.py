"""Reachability bitmaps: ``pack-<hash>.bitmap`` and ``multi-pack-index-<hash>.bitmap``.

Layout (git: Documentation/technical/bitmap-format.adoc, pack-bitmap.c, pack-bitmap-write.c):
a header (``BITM``, u16 version 1, u16 flags, u32 entry count, the H-byte checksum of the pack or
MIDX it belongs to), four EWAH type bitmaps (commits, trees, blobs, tags), the entries (u32
object position, u8 XOR offset, u8 flags, an EWAH bitmap each), then — by flag — pseudo-merges
(0x20), the commit lookup table (0x10: 16 bytes per entry) and the name-hash cache (0x4: 4 bytes
per object), and an H-byte trailer hashing everything before it.

Rules, in order (git's message where git fails):

1. size ≥ header + H (``bitmapSize``; git: "corrupted bitmap index (too small)"), ``BITM``
   (``bitmapSignature``), version 1 (``bitmapVersion``), flag FULL_DAG set (``bitmapFlags``; git
   BUG()s without it); unknown flags are ``bitmapUnknownFlags`` (git ignores them; the exact-size
   rule 4 is then skipped);
2. the optional tables fit, measured from the end as git does (``bitmapSize``; git: "too short to
   fit hash cache / lookup table / pseudo-merge table");
3. every EWAH and entry header ends before the tables (``bitmapSize``; git: "corrupt ewah bitmap:
   eof …"); each EWAH's last-RLW pointer lies inside its words and its bit count within the object
   count rounded up to 64; the four type bitmaps' run-length chains are walked to their last word
   (``bitmapEwah``);
4. the entries end exactly where the tables (or the trailer) begin: the structure explains every
   byte (``bitmapSize``: a cut or extended file);
5. entries: object position < object count, XOR offset ≤ 160 and ≤ the entry's index, no
   commit twice (``bitmapEntry``; git: "commit index … out of range", "corrupted bitmap pack
   index", "duplicate entry in bitmap index");
6. lookup table: sorted by position, every triplet naming an entry (position and file offset)
   and a valid XOR row (``bitmapLookupTable``; git: "corrupt bitmap lookup table: …");
7. trailer == hash of the rest (``bitmapChecksum`` with ``verify_checksum``; git ≥ 2.41 fsck:
   "bitmap file '…' has invalid checksum").

:func:`check_bitmap_target` compares the header checksum with the pack trailer or MIDX checksum
(``bitmapTarget``; git for MIDX bitmaps: "checksum doesn't match in MIDX and bitmap"; git never
checks it for pack bitmaps and would answer with wrong objects) and, for a MIDX bitmap, its file
name with the MIDX checksum (``bitmapStale``: git only opens ``multi-pack-index-<checksum>.bitmap``).

Not checked: the pseudo-merge bitmaps' contents, the name-hash values, and whether each bitmap's
bits are what the object graph implies (that needs the objects).
"""

from __future__ import annotations

import posixpath
import re
import struct
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..report import Finding, Severity, finding, register
from .common import Buffer, HashAlgo

register(
    "bitmap",
    ("bitmapSize", Severity.ERROR,
     "The bitmap file's sections do not add up to its size: it was cut short, extended, or a "
     "length inside it is corrupt.",
     "git: error: corrupted bitmap index (too small / too short to fit …) or a wrong bitmap "
     "silently; git >= 2.41 fsck: bitmap file has invalid checksum (exit bit 128); 2.39 exits 0."),
    ("bitmapSignature", Severity.ERROR,
     "The bitmap file does not start with 'BITM'.",
     "git: error: corrupted bitmap index file (wrong header); bitmaps are not used."),
    ("bitmapVersion", Severity.ERROR,
     "The bitmap file version is not 1.",
     "git: error: unsupported version '…' for bitmap index file"),
    ("bitmapFlags", Severity.ERROR,
     "The bitmap file lacks the required FULL_DAG flag.",
     "git: BUG: unsupported options for bitmap index file (Git requires BITMAP_OPT_FULL_DAG)"),
    ("bitmapUnknownFlags", Severity.WARNING,
     "The bitmap file sets flags this verifier does not know; the sections they add were not checked.",
     "git ignores unknown flags."),
    ("bitmapEwah", Severity.ERROR,
     "An EWAH bitmap in the file is internally inconsistent (its last-RLW pointer or run-length "
     "chain is broken, or it has more bits than there are objects).",
     "git: error: corrupt ewah bitmap: eof … / failed to load bitmap index (corrupted?)"),
    ("bitmapEntry", Severity.ERROR,
     "A bitmap entry names an object position out of range, has an impossible XOR offset or "
     "repeats a commit.",
     "git: error: corrupt ewah bitmap: commit index … out of range / corrupted bitmap pack index / "
     "duplicate entry in bitmap index"),
    ("bitmapLookupTable", Severity.ERROR,
     "The bitmap commit lookup table is unsorted or points at no entry.",
     "git: error: corrupt bitmap lookup table: triplet position out of index / xor chain exceeds "
     "entry count / commit index … out of range"),
    ("bitmapChecksum", Severity.ERROR,
     "The bitmap trailer is not the hash of its contents: the file is corrupt.",
     "git >= 2.41 fsck: error: bitmap file '…' has invalid checksum (exit bit 128); git 2.39 exits 0."),
    ("bitmapTarget", Severity.ERROR,
     "The pack or MIDX checksum in the bitmap header is not the checksum of the pack or MIDX it "
     "sits beside: the bitmap belongs to other objects.",
     "git (MIDX): error: checksum doesn't match in MIDX and bitmap; for a pack git does not "
     "check and answers reachability queries with the wrong objects."),
    ("bitmapStale", Severity.WARNING,
     "A multi-pack-index-<hash>.bitmap names a MIDX other than the current one.",
     "git only opens multi-pack-index-<current checksum>.bitmap and ignores (later deletes) others."),
)

SIGNATURE = b"BITM"
OPT_FULL_DAG = 0x1
OPT_HASH_CACHE = 0x4
OPT_LOOKUP_TABLE = 0x10
OPT_PSEUDO_MERGES = 0x20
KNOWN_FLAGS = OPT_FULL_DAG | OPT_HASH_CACHE | OPT_LOOKUP_TABLE | OPT_PSEUDO_MERGES
MAX_XOR_OFFSET = 160
LOOKUP_TRIPLET = 16
TYPE_NAMES = ("commits", "trees", "blobs", "tags")


class EwahError(ValueError):
    """Raised by :func:`ewah_decode` on a corrupt EWAH bitmap."""


@dataclass
class BitmapInfo:
    """The parsed structure of a ``.bitmap``; bit positions are in pack (or MIDX pseudo-pack) order."""

    version: int
    flags: int
    entry_count: int
    checksum: bytes  # of the pack or MIDX this bitmap belongs to (from the header)
    has_hash_cache: bool
    has_lookup_table: bool
    trailer: bytes
    has_pseudo_merges: bool = False
    object_count: int | None = None  # given, or inferred from the hash cache
    type_offsets: tuple[int, ...] = ()  # file offsets of the commit, tree, blob, tag EWAHs
    entry_positions: array[int] = field(default_factory=lambda: array("I"))  # object position per entry
    entry_xor: bytes = b""  # XOR offset per entry
    entry_flags: bytes = b""
    entry_offsets: array[int] = field(default_factory=lambda: array("Q"))  # offset of each entry's header
    hash_cache_offset: int | None = None
    lookup_table_offset: int | None = None

    def type_bitmaps(self, buf: Buffer) -> tuple[int, ...]:
        """The commit, tree, blob and tag bitmaps (bit *i* set: object *i* has that type)."""
        return tuple(ewah_decode(buf, off, max_bits=self._max_bits())[0] for off in self.type_offsets)

    def commit_bitmaps(self, buf: Buffer) -> Iterator[tuple[int, int]]:
        """``(commit object position, reachability bitmap)`` for every entry, XOR chains resolved."""
        ring: list[int] = [0] * MAX_XOR_OFFSET
        for i, off in enumerate(self.entry_offsets):
            bits, _ = ewah_decode(buf, off + 6, max_bits=self._max_bits())
            x = self.entry_xor[i]
            if x:
                bits ^= ring[(i - x) % MAX_XOR_OFFSET]
            ring[i % MAX_XOR_OFFSET] = bits
            yield self.entry_positions[i], bits

    def _max_bits(self) -> int | None:
        return None if self.object_count is None else (self.object_count + 63) // 64 * 64


def _swapped_words(data: bytes) -> bytes:
    """Big-endian 64-bit words → the same words as little-endian bytes (the bit-stream order)."""
    a = array("Q")
    a.frombytes(data)
    a.byteswap()
    return a.tobytes()


def ewah_decode(buf: Buffer, offset: int, *, max_bits: int | None = None) -> tuple[int, int]:
    """Decode the EWAH bitmap at *offset*: ``(bits, bytes consumed)``.

    Bit *i* of the returned int is bit *i* of the bitmap. Raises :class:`EwahError` when the
    bitmap is truncated, its run-length chain is broken, or it expands past *max_bits* (or its
    own bit count rounded up to 64).
    """
    mv = memoryview(buf).cast("B")
    if offset < 0 or offset + 8 > len(mv):
        raise EwahError("eof before bit size / length")
    bit_size, nwords = struct.unpack_from(">II", mv, offset)
    end = offset + 8 + 8 * nwords + 4
    if end > len(mv):
        raise EwahError(f"eof in data ({end - len(mv)} bytes short)")
    limit = (bit_size + 63) // 64
    if max_bits is not None:
        limit = min(limit, (max_bits + 63) // 64)
    words = memoryview(bytes(mv[offset + 8: offset + 8 + 8 * nwords]))
    parts: list[bytes] = []
    i = 0
    total = 0
    ones = b"\xff" * 8
    zero = b"\0" * 8
    while i < nwords:
        rlw = int.from_bytes(words[8 * i: 8 * i + 8], "big")
        run = (rlw >> 1) & 0xFFFFFFFF
        lit = rlw >> 33
        if i + 1 + lit > nwords:
            raise EwahError(f"run-length word {i} claims {lit} literal words, only {nwords - i - 1} follow")
        total += run + lit
        if total > limit:
            raise EwahError(f"expands to {total * 64} bits, more than {limit * 64}")
        if run:
            parts.append((ones if rlw & 1 else zero) * run)
        if lit:
            parts.append(_swapped_words(bytes(words[8 * (i + 1): 8 * (i + 1 + lit)])))
        i += 1 + lit
    bits = int.from_bytes(b"".join(parts), "little")
    if bits.bit_length() > bit_size:
        bits &= (1 << bit_size) - 1
    return bits, end - offset


def _ewah_span(mv: memoryview, pos: int, end: int) -> tuple[int, int, int, int] | str:
    """Header of the EWAH at *pos* within ``[pos, end)``: ``(bit_size, nwords, rlw, next)`` or an error."""
    if end - pos < 4:
        return "eof before bit size"
    if end - pos < 8:
        return "eof before length"
    bit_size, nwords = struct.unpack_from(">II", mv, pos)
    data_end = pos + 8 + 8 * nwords
    if data_end > end:
        return f"eof in data ({data_end - end} bytes short)"
    if data_end + 4 > end:
        return "eof before rlw"
    rlw = struct.unpack_from(">I", mv, data_end)[0]
    if (nwords and rlw >= nwords) or (not nwords and rlw):
        return f"last run-length word {rlw} lies outside its {nwords} words"
    return bit_size, nwords, rlw, data_end + 4


def _ewah_chain_ok(mv: memoryview, pos: int, nwords: int, rlw: int) -> bool:
    """Walk the run-length words of the EWAH whose words start at *pos*; the last must be *rlw*."""
    i = 0
    last = 0
    while i < nwords:
        last = i
        lit = struct.unpack_from(">Q", mv, pos + 8 * i)[0] >> 33
        i += 1 + lit
    return i == nwords and last == rlw


def parse_bitmap(buf: Buffer, path: str, algo: HashAlgo, *, object_count: int | None,
                 verify_checksum: bool) -> tuple[BitmapInfo | None, list[Finding]]:
    """Parse and check a ``.bitmap``. *object_count*: objects in its pack or MIDX, if known."""
    mv = memoryview(buf).cast("B")
    size = len(mv)
    h = algo.rawsz
    header_size = 12 + h
    if size < header_size + h:
        return None, [finding("bitmapSize", path,
                              f"{path}: bitmap is {size} bytes, less than its {header_size}-byte header and "
                              f"{h}-byte trailer: cut short. git: error: corrupted bitmap index (too small)")]
    if bytes(mv[:4]) != SIGNATURE:
        return None, [finding("bitmapSignature", path,
                              f"{path}: does not start with 'BITM' (found {bytes(mv[:4]).hex()}). "
                              "git: error: corrupted bitmap index file (wrong header)")]
    version, flags, entry_count = struct.unpack_from(">HHI", mv, 4)
    if version != 1:
        return None, [finding("bitmapVersion", path,
                              f"{path}: bitmap version {version}, not 1. "
                              f"git: error: unsupported version '{version}' for bitmap index file")]
    if not flags & OPT_FULL_DAG:
        return None, [finding("bitmapFlags", path,
                              f"{path}: flags {flags:#x} lack FULL_DAG (0x1). git: BUG: unsupported options for "
                              "bitmap index file (Git requires BITMAP_OPT_FULL_DAG)")]
    findings: list[Finding] = []
    exact = True
    if flags & ~KNOWN_FLAGS:
        exact = False
        findings.append(finding("bitmapUnknownFlags", path,
                                f"{path}: flags {flags:#x} include unknown bits {flags & ~KNOWN_FLAGS:#x}; "
                                "the sections they add were not checked"))
    info = BitmapInfo(version=version, flags=flags, entry_count=entry_count,
                      checksum=bytes(mv[12:12 + h]), has_hash_cache=bool(flags & OPT_HASH_CACHE),
                      has_lookup_table=bool(flags & OPT_LOOKUP_TABLE), trailer=bytes(mv[size - h:]),
                      has_pseudo_merges=bool(flags & OPT_PSEUDO_MERGES), object_count=object_count)

    def size_error(msg: str) -> tuple[None, list[Finding]]:
        return None, [*findings, finding("bitmapSize", path, f"{path}: {msg}")]

    # Tables at the end, measured from the trailer backwards (as git's load_bitmap_header does).
    index_end = size - h
    cache_known = object_count is not None or not info.has_hash_cache
    if info.has_hash_cache and object_count is not None:
        cache = 4 * object_count
        if cache > index_end - header_size:
            return size_error(f"too short for a name-hash cache of {object_count} objects ({cache} bytes). "
                              "git: error: corrupted bitmap index file (too short to fit hash cache)")
        index_end -= cache
        info.hash_cache_offset = index_end
    lookup_size = LOOKUP_TRIPLET * entry_count if info.has_lookup_table else 0
    if info.has_lookup_table and cache_known:
        if lookup_size > index_end - header_size:
            return size_error(f"too short for a lookup table of {entry_count} entries ({lookup_size} bytes). "
                              "git: error: corrupted bitmap index file (too short to fit lookup table)")
        index_end -= lookup_size
        info.lookup_table_offset = index_end
    if info.has_pseudo_merges:
        if not cache_known:
            exact = False
        else:
            if index_end - header_size < 24:
                return size_error("too short for the pseudo-merge table header. git: error: corrupted bitmap "
                                  "index file (too short to fit pseudo-merge table header)")
            table_size = struct.unpack_from(">Q", mv, index_end - 8)[0]
            nr = struct.unpack_from(">I", mv, index_end - 24)[0]
            if table_size > index_end - header_size:
                return size_error(f"pseudo-merge section of {table_size} bytes does not fit. git: error: "
                                  "corrupted bitmap index file (too short to fit pseudo-merge table)")
            if 8 * nr + 24 > table_size:
                return size_error(f"pseudo-merge section of {table_size} bytes cannot hold {nr} positions. git: "
                                  "error: corrupted bitmap index file, pseudo-merge table too short")
            index_end -= table_size
    if not cache_known:
        # hash cache of unknown length: [entries][lookup][cache][trailer]; bound the walk by the lookup.
        index_end = size - h - lookup_size
    # Walk the type bitmaps and the entries from the front.
    pos = header_size
    offsets: list[int] = []
    for t in TYPE_NAMES:
        span = _ewah_span(mv, pos, index_end)
        if isinstance(span, str):
            return _ewah_error(findings, path, f"type bitmap of {t}", pos, span, index_end)
        bit_size, nwords, rlw, nxt = span
        if not _ewah_chain_ok(mv, pos + 8, nwords, rlw):
            findings.append(finding("bitmapEwah", path,
                                    f"{path}: type bitmap of {t} at {pos:#x}: its run-length words do not chain "
                                    "to its last word. git: error: failed to load bitmap index (corrupted?)"))
            return None, findings
        if (f := _bits_beyond(path, f"type bitmap of {t}", bit_size, object_count)) is not None:
            return None, [*findings, f]
        offsets.append(pos)
        pos = nxt
    info.type_offsets = tuple(offsets)
    positions = array("I")
    xors = bytearray()
    eflags = bytearray()
    eoffsets = array("Q")
    for i in range(entry_count):
        if index_end - pos < 6:
            return _ewah_error(findings, path, f"entry {i}", pos, f"truncated header for entry {i}", index_end)
        cpos, xor, ef = struct.unpack_from(">IBB", mv, pos)
        span = _ewah_span(mv, pos + 6, index_end)
        if isinstance(span, str):
            return _ewah_error(findings, path, f"bitmap of entry {i}", pos + 6, span, index_end)
        bit_size, _, _, nxt = span
        if object_count is not None and cpos >= object_count:
            findings.append(finding("bitmapEntry", path,
                                    f"{path}: entry {i} names object position {cpos}, but there are "
                                    f"{object_count} objects. git: error: corrupt ewah bitmap: commit index "
                                    f"{cpos} out of range"))
            return None, findings
        if xor > MAX_XOR_OFFSET or xor > i:
            findings.append(finding("bitmapEntry", path,
                                    f"{path}: entry {i} has XOR offset {xor} (at most {min(i, MAX_XOR_OFFSET)} "
                                    "allowed). git: error: corrupted bitmap pack index"))
            return None, findings
        if (f := _bits_beyond(path, f"bitmap of entry {i}", bit_size, object_count)) is not None:
            return None, [*findings, f]
        positions.append(cpos)
        xors.append(xor)
        eflags.append(ef)
        eoffsets.append(pos)
        pos = nxt
    if not cache_known:
        # [entries][pseudo-merges?][lookup?][cache][trailer] with the cache length unknown
        rest = index_end - pos
        if not info.has_pseudo_merges:
            if rest % 4:
                return size_error(f"{rest} bytes after the entries cannot be a name-hash cache of 4-byte "
                                  "values: the file is cut short or extended")
            info.object_count = rest // 4
            if info.has_lookup_table:
                info.lookup_table_offset = pos
            info.hash_cache_offset = pos + lookup_size
        pos = index_end
    if exact and pos != index_end:
        return size_error(f"the entries end at {pos:#x}, but the tables after them start at {index_end:#x}: "
                          f"{index_end - pos} unexplained bytes (a cut or extended file, or a corrupt length)")
    if len(set(positions)) != len(positions):
        seen: set[int] = set()
        for p in positions:
            if p in seen:
                break
            seen.add(p)
        findings.append(finding("bitmapEntry", path,
                                f"{path}: object position {p} has two entries. git: error: duplicate entry in "
                                "bitmap index"))
        return None, findings
    info.entry_positions = positions
    info.entry_xor = bytes(xors)
    info.entry_flags = bytes(eflags)
    info.entry_offsets = eoffsets
    if info.lookup_table_offset is not None:
        findings += _check_lookup(mv, path, info)
    if verify_checksum:
        actual = algo.digest(mv[:size - h])
        if actual != info.trailer:
            findings.append(finding("bitmapChecksum", path,
                                    f"{path}: trailer {info.trailer.hex()} but contents hash to {actual.hex()}. "
                                    f"git >= 2.41 fsck: error: bitmap file '{path}' has invalid checksum"))
    return info, findings


def _ewah_error(findings: list[Finding], path: str, what: str, pos: int, why: str,
                end: int) -> tuple[None, list[Finding]]:
    if why.startswith(("eof", "truncated")):
        code = "bitmapSize"
        msg = (f"{path}: {what} at {pos:#x} runs past {end:#x}, where the tables or the trailer begin "
               f"({why}): the file was cut short or a length in it is corrupt. git: error: corrupt ewah "
               f"bitmap: {why}")
    else:
        code = "bitmapEwah"
        msg = f"{path}: {what} at {pos:#x}: {why}. git: error: failed to load bitmap index (corrupted?)"
    return None, [*findings, finding(code, path, msg)]


def _bits_beyond(path: str, what: str, bit_size: int, object_count: int | None) -> Finding | None:
    if object_count is None or bit_size <= (object_count + 63) // 64 * 64:
        return None
    return finding("bitmapEwah", path,
                   f"{path}: {what} holds {bit_size} bits, more than the {object_count} objects it describes")


def _check_lookup(mv: memoryview, path: str, info: BitmapInfo) -> list[Finding]:
    off = info.lookup_table_offset
    assert off is not None
    n = info.entry_count
    by_offset = {o: p for o, p in zip(info.entry_offsets, info.entry_positions, strict=True)}
    prev = -1
    for i in range(n):
        cpos, eoff, xor_row = struct.unpack_from(">IQI", mv, off + LOOKUP_TRIPLET * i)
        why = None
        if cpos <= prev:
            why = f"triplet {i} (position {cpos}) is not sorted after position {prev}"
        elif by_offset.get(eoff) != cpos:
            why = f"triplet {i} points at offset {eoff:#x}, which is not the entry of position {cpos}"
        elif xor_row != 0xFFFFFFFF and xor_row >= n:
            why = f"triplet {i} has XOR row {xor_row} of {n}"
        if why:
            return [finding("bitmapLookupTable", path,
                            f"{path}: lookup table: {why}. git: error: corrupt bitmap lookup table")]
        prev = cpos
    return []


_MIDX_BITMAP = re.compile(r"multi-pack-index-([0-9a-f]{40}|[0-9a-f]{64})\.bitmap")


def check_bitmap_target(info: BitmapInfo, path: str, *, expected_checksum: bytes, target: str) -> list[Finding]:
    """Compare the bitmap's header checksum with its pack's trailer or its MIDX's checksum.

    *target* is ``"pack"`` or ``"midx"`` (or a path, for the message: a path ending in
    ``multi-pack-index`` counts as a MIDX).
    """
    is_midx = target == "midx" or target.endswith("multi-pack-index")
    what = "the multi-pack-index" if is_midx else "its pack"
    if is_midx:
        m = _MIDX_BITMAP.fullmatch(posixpath.basename(path))
        if m and m.group(1) != expected_checksum.hex():
            return [finding("bitmapStale", path,
                            f"{path}: named for MIDX {m.group(1)}, but the multi-pack-index is "
                            f"{expected_checksum.hex()}: git ignores this bitmap (a leftover)")]
    if info.checksum != expected_checksum:
        git = ("git: error: checksum doesn't match in MIDX and bitmap" if is_midx
               else "git does not check this and would answer reachability queries with the wrong objects")
        return [finding("bitmapTarget", path,
                        f"{path}: header names {info.checksum.hex()}, but {what} is {expected_checksum.hex()}. {git}")]
    return []
