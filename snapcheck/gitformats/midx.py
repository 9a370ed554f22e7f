"""``objects/pack/multi-pack-index``: strict parser and cross-checks against the packs' ``.idx``.

Layout (git: Documentation/gitformat-pack.adoc "multi-pack-index (MIDX) files", midx.c): a
12-byte header (``MIDX``, version 1 or 2, hash version, chunk count, base-MIDX count, pack count),
a chunk table (see :mod:`.chunks`), the chunks, and an H-byte trailer hashing everything before it.

Rules, in the order they are checked (each with the git message where git fails on it):

1. size ≥ 12 + H (``midxTooSmall``; git: "multi-pack-index file … is too small");
2. signature ``MIDX`` (``midxSignature``; git dies), version 1 or 2 (``midxVersion``; git ≥ 2.45
   reads both, 2.39 dies on 2), hash version 1/2 and equal to the repository's
   (``midxHashVersion``), base-MIDX count 0 (``midxBaseCount``: a layer of an incremental chain
   does not belong at ``pack/multi-pack-index``);
3. the chunk table (:func:`.chunks.read_chunk_table`);
4. required chunks PNAM, OIDF, OIDL, OOFF present (``midxChunkMissing``) with exact sizes: OIDF
   256·4, OIDL N·H, OOFF N·8, LOFF a multiple of 8, RIDX N·4, BTMP P·8 (``midxChunkSize``);
5. fanout never decreasing, its buckets matching the OIDs' first bytes (``midxFanout``); OIDs
   strictly increasing (``midxOidOrder``, checked with ``verify_checksum``, as git verify does);
   no OIDs at all (``midxNoObjects``; git verify: "the midx contains no oid");
6. PNAM: exactly P NUL-terminated names, 0–3 NULs of padding, plain ``*.idx`` file names, in
   strictly increasing order for version 1 (``midxPackNames``);
7. every pack-int-id < P (``midxPackIntId``), every large-offset reference inside LOFF
   (``midxLargeOffset``), every RIDX entry an object position (``midxRevIndex``; that RIDX is a
   permutation is left to the checksum);
8. trailer == hash of the rest (``midxChecksum``, when ``verify_checksum``; git verify:
   "incorrect checksum").

:func:`check_midx_against_packs` does what ``git multi-pack-index verify`` does with the packs:
every listed pack's ``.idx`` is present (``midxPackMissing``), and (``deep``) every object is in
the idx of the pack the MIDX names, at the same offset (``midxObjectNotInPack``,
``midxOffsetMismatch``). Not done: incremental MIDX chains (``multi-pack-index.d/``), which
git 2.39 cannot write.
"""

from __future__ import annotations

import itertools
import re
import struct
import sys
from array import array
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from ..report import Finding, Severity, finding, register
from .chunks import (
    be32_array,
    be32_column,
    bsearch_oid,
    fanout_disorder,
    fanout_mismatch,
    find_in_buckets,
    first_unsorted,
    hex_id,
    read_chunk_table,
)
from .common import Buffer, HashAlgo, algo_for_format_id

register(
    "midx",
    ("midxTooSmall", Severity.ERROR,
     "The multi-pack-index is shorter than its header and trailer: it was cut short.",
     "git: error: multi-pack-index file … is too small; the MIDX is not used."),
    ("midxSignature", Severity.ERROR,
     "The multi-pack-index does not start with 'MIDX'.",
     "git: fatal: multi-pack-index signature 0x… does not match signature 0x4d494458"),
    ("midxVersion", Severity.ERROR,
     "The multi-pack-index version is neither 1 nor 2.",
     "git: fatal: multi-pack-index version … not recognized (git 2.39 also dies on version 2)"),
    ("midxHashVersion", Severity.ERROR,
     "The multi-pack-index hash version is unknown or not the repository's object format.",
     "git: error: multi-pack-index hash version … does not match version …; the MIDX is ignored."),
    ("midxBaseCount", Severity.ERROR,
     "The multi-pack-index header claims base MIDX files, which only layers of an incremental "
     "chain (multi-pack-index.d/) may have.",
     "git ignores the base count of pack/multi-pack-index; a layer copied there is unusable."),
    ("midxChunkMissing", Severity.ERROR,
     "A required multi-pack-index chunk (PNAM, OIDF, OIDL, OOFF) is missing.",
     "git: fatal: multi-pack-index required … chunk missing or corrupted"),
    ("midxChunkSize", Severity.ERROR,
     "A multi-pack-index chunk has the wrong size for the object or pack count.",
     "git: fatal: multi-pack-index … chunk is the wrong size / OID fanout is of the wrong size"),
    ("midxFanout", Severity.ERROR,
     "The multi-pack-index OID fanout decreases or disagrees with the OIDs it indexes.",
     "git: error: oid fanout out of order (verify: incorrect fanout)"),
    ("midxOidOrder", Severity.ERROR,
     "The multi-pack-index OIDs are not strictly increasing.",
     "git multi-pack-index verify: error: oid lookup out of order"),
    ("midxNoObjects", Severity.ERROR,
     "The multi-pack-index indexes no objects.",
     "git multi-pack-index verify: error: the midx contains no oid"),
    ("midxPackNames", Severity.ERROR,
     "The multi-pack-index pack-name chunk is short, unterminated, badly padded, out of order or "
     "names something other than a plain .idx file.",
     "git: fatal: multi-pack-index pack-name chunk is too short / pack names out of order"),
    ("midxPackIntId", Severity.ERROR,
     "A multi-pack-index object names a pack number beyond its pack list.",
     "git: error: bad pack-int-id: … (… total packs); objects cannot be read through the MIDX."),
    ("midxLargeOffset", Severity.ERROR,
     "A multi-pack-index object refers to a large offset beyond the LOFF chunk.",
     "git: fatal: multi-pack-index large offset out of bounds"),
    ("midxRevIndex", Severity.ERROR,
     "The multi-pack-index RIDX chunk names an object position past the object count.",
     "git uses it for bitmaps without checking; bitmap answers would be wrong."),
    ("midxChecksum", Severity.ERROR,
     "The multi-pack-index trailer is not the hash of its contents: the file is corrupt.",
     "git multi-pack-index verify: error: incorrect checksum (fsck exit bit 32)"),
    ("midxPackMissing", Severity.ERROR,
     "A pack listed in the multi-pack-index has no .idx in the snapshot.",
     "git multi-pack-index verify: error: failed to load pack in position …; objects in it are missing."),
    ("midxObjectNotInPack", Severity.ERROR,
     "An object of the multi-pack-index is not in the .idx of the pack the MIDX names for it.",
     "git multi-pack-index verify: error: failed to load pack entry for oid[…]"),
    ("midxOffsetMismatch", Severity.ERROR,
     "An object's offset in the multi-pack-index differs from its offset in the pack's .idx.",
     "git multi-pack-index verify: error: incorrect object offset for oid[…] = …: … != …"),
)

SIGNATURE = b"MIDX"
HEADER_SIZE = 12
PNAM, OIDF, OIDL, OOFF, LOFF, RIDX, BTMP = (b"PNAM", b"OIDF", b"OIDL", b"OOFF", b"LOFF", b"RIDX", b"BTMP")
LARGE_OFFSET_NEEDED = 0x80000000


class IdxLike(Protocol):
    """What the MIDX cross-check needs of a parsed pack index (``idx.PackIndex`` fits)."""

    @property
    def count(self) -> int: ...

    def offsets(self) -> Sequence[int]: ...

    def names_view(self) -> Buffer: ...


class MultiPackIndex:
    """A parsed multi-pack-index over a buffer (kept, not copied)."""

    def __init__(self, mv: memoryview, algo: HashAlgo, version: int, pack_names: list[str],
                 count: int, chunks: dict[bytes, tuple[int, int]], fanout: array[int]) -> None:
        self._mv = mv
        self.algo = algo
        self.version = version
        self.pack_names = pack_names
        self.count = count
        self.checksum = bytes(mv[len(mv) - algo.rawsz:])
        self.chunks = chunks
        self.fanout = fanout
        self._oidl = chunks[OIDL][0]
        self._ooff = chunks[OOFF][0]
        loff = chunks.get(LOFF)
        self._loff: tuple[int, int] | None = loff
        self.has_rev_index = RIDX in chunks

    def name(self, i: int) -> bytes:
        """The OID at position *i* (0 ≤ i < count) in OID order."""
        if not 0 <= i < self.count:
            raise IndexError(i)
        h = self.algo.rawsz
        return bytes(self._mv[self._oidl + i * h: self._oidl + (i + 1) * h])

    def find(self, oid: bytes) -> int | None:
        return bsearch_oid(self._mv, self.fanout, self._oidl, self.algo.rawsz, oid)

    def find_many(self, oids: Iterable[bytes]) -> dict[bytes, int]:
        """Positions of those *oids* the MIDX lists, in bulk (:func:`~.chunks.find_in_buckets`)."""
        return find_in_buckets(self._mv, self._oidl, self.fanout, self.algo.rawsz, oids, self.find)

    def location(self, i: int) -> tuple[int, int]:
        """``(pack int id, offset in that pack)`` of the object at position *i*."""
        if not 0 <= i < self.count:
            raise IndexError(i)
        pack, off = struct.unpack_from(">II", self._mv, self._ooff + 8 * i)
        return pack, self._resolve(off)

    def _resolve(self, off: int) -> int:
        if off & LARGE_OFFSET_NEEDED and self._loff is not None:
            k = off & ~LARGE_OFFSET_NEEDED
            start, size = self._loff
            if 8 * k + 8 <= size:
                return int(struct.unpack_from(">Q", self._mv, start + 8 * k)[0])
        return off

    def pack_ids(self) -> array[int]:
        """The pack int id of every object, in OID order."""
        return be32_column(self._mv, self._ooff, 8, self.count, 0)

    def offsets(self) -> array[int]:
        """The pack offset of every object, in OID order (large offsets resolved), as ``array('Q')``."""
        raw = be32_column(self._mv, self._ooff, 8, self.count, 4)
        out = array("Q", raw)
        if self._loff is not None and raw and max(raw) & LARGE_OFFSET_NEEDED:
            for i, o in enumerate(raw):
                if o & LARGE_OFFSET_NEEDED:
                    out[i] = self._resolve(o)
        return out

    def names_view(self) -> memoryview:
        """The OID lookup table: ``count * H`` bytes."""
        return self._mv[self._oidl:self._oidl + self.count * self.algo.rawsz]


def parse_midx(buf: Buffer, path: str, algo: HashAlgo | None, *,
               verify_checksum: bool) -> tuple[MultiPackIndex | None, list[Finding]]:
    """Parse and check a multi-pack-index. *algo* None: take it from the header."""
    mv = memoryview(buf).cast("B")
    size = len(mv)
    hmin = algo.rawsz if algo else 20
    if size < HEADER_SIZE + hmin:
        return None, [finding("midxTooSmall", path,
                              f"{path}: multi-pack-index is {size} bytes, less than a {HEADER_SIZE}-byte header "
                              f"and a {hmin}-byte trailer: cut short. "
                              f"git: error: multi-pack-index file {path} is too small")]
    sig = bytes(mv[0:4])
    if sig != SIGNATURE:
        return None, [finding("midxSignature", path,
                              f"{path}: does not start with 'MIDX' (found {sig.hex()}). git: fatal: "
                              f"multi-pack-index signature 0x{sig.hex()} does not match signature 0x4d494458")]
    version, hash_version, nchunks, nbase = mv[4], mv[5], mv[6], mv[7]
    npacks = struct.unpack_from(">I", mv, 8)[0]
    if version not in (1, 2):
        return None, [finding("midxVersion", path,
                              f"{path}: multi-pack-index version {version} is not 1 or 2. "
                              f"git: fatal: multi-pack-index version {version} not recognized")]
    file_algo = algo_for_format_id(hash_version)
    if file_algo is None or (algo is not None and file_algo != algo):
        want = algo.format_id if algo else "1 or 2"
        return None, [finding("midxHashVersion", path,
                              f"{path}: multi-pack-index hash version {hash_version}, expected {want}. git: error: "
                              f"multi-pack-index hash version {hash_version} does not match version {want}")]
    algo = file_algo
    h = algo.rawsz
    if size < HEADER_SIZE + h:
        return None, [finding("midxTooSmall", path,
                              f"{path}: multi-pack-index is {size} bytes, less than its header and {h}-byte "
                              f"trailer: cut short. git: error: multi-pack-index file {path} is too small")]
    findings: list[Finding] = []
    if nbase != 0:
        findings.append(finding("midxBaseCount", path,
                                f"{path}: multi-pack-index header claims {nbase} base MIDX files; only layers "
                                "of an incremental chain (multi-pack-index.d/) have a base"))

    def fail(code: str, msg: str) -> tuple[None, list[Finding]]:
        return None, [*findings, finding(code, path, msg)]

    chunks, fs = read_chunk_table(mv, path, "midx", toc_offset=HEADER_SIZE, count=nchunks,
                                  hash_len=h, alignment=4)
    if chunks is None:
        return None, findings + fs
    missing = [c for c in (PNAM, OIDF, OIDL, OOFF) if c not in chunks]
    if missing:
        names = {PNAM: "pack-name", OIDF: "OID fanout", OIDL: "OID lookup", OOFF: "object offsets"}
        return fail("midxChunkMissing",
                    f"{path}: multi-pack-index has no {hex_id(missing[0])} chunk. git: fatal: "
                    f"multi-pack-index required {names[missing[0]]} chunk missing or corrupted")
    off, sz = chunks[OIDF]
    if sz != 1024:
        return fail("midxChunkSize",
                    f"{path}: OID fanout chunk is {sz} bytes, not 1024. "
                    "git: error: multi-pack-index OID fanout is of the wrong size")
    fan = be32_array(mv, off, 256)
    bad = fanout_disorder(fan)
    if bad is not None:
        return fail("midxFanout",
                    f"{path}: OID fanout out of order: fanout[{bad}] = {fan[bad]:x} > "
                    f"{fan[bad + 1]:x} = fanout[{bad + 1}]. git: error: oid fanout out of order")
    count = fan[255]
    sizes = {OIDL: count * h, OOFF: count * 8}
    if RIDX in chunks:
        sizes[RIDX] = count * 4
    if BTMP in chunks:
        sizes[BTMP] = npacks * 8
    for cid, want in sizes.items():
        got = chunks[cid][1]
        if got != want:
            return fail("midxChunkSize",
                        f"{path}: chunk {hex_id(cid)} is {got} bytes, expected {want} for "
                        f"{count} objects and {npacks} packs. git: fatal: "
                        "multi-pack-index … chunk is the wrong size")
    if LOFF in chunks and chunks[LOFF][1] % 8:
        return fail("midxChunkSize",
                    f"{path}: large-offset chunk LOFF is {chunks[LOFF][1]} bytes, not a "
                    "multiple of 8")
    pack_names, fs = _pack_names(mv, path, chunks[PNAM], npacks, version)
    findings += fs
    if pack_names is None:
        return None, findings
    midx = MultiPackIndex(mv, algo, version, pack_names, count, chunks, fan)
    oidl = chunks[OIDL][0]
    if count == 0:
        findings.append(finding("midxNoObjects", path,
                                f"{path}: multi-pack-index indexes no objects. "
                                "git multi-pack-index verify: error: the midx contains no oid"))
    else:
        b = fanout_mismatch(fan, mv, oidl, h)
        if b is not None:
            findings.append(finding("midxFanout", path,
                                    f"{path}: OID fanout bucket {b:02x} does not match the OIDs it covers. "
                                    "git multi-pack-index verify: error: oid fanout out of order"))
        elif verify_checksum:
            i = first_unsorted(mv, oidl, count, h)
            if i is not None:
                findings.append(finding("midxOidOrder", path,
                                        f"{path}: OIDs out of order: oid[{i}] = {midx.name(i).hex()} >= "
                                        f"{midx.name(i + 1).hex()} = oid[{i + 1}]. git multi-pack-index verify: "
                                        f"error: oid lookup out of order"))
    findings += _check_offsets(midx, mv, path, npacks, chunks)
    if RIDX in chunks and count:
        findings += _check_ridx(mv, path, chunks[RIDX][0], count)
    if verify_checksum:
        actual = algo.digest(mv[:size - h])
        if actual != midx.checksum:
            findings.append(finding("midxChecksum", path,
                                    f"{path}: trailer {midx.checksum.hex()} but contents hash to {actual.hex()}: "
                                    "the file is corrupt. git multi-pack-index verify: error: incorrect checksum"))
    return midx, findings


def _pack_names(mv: memoryview, path: str, chunk: tuple[int, int], npacks: int,
                version: int) -> tuple[list[str] | None, list[Finding]]:
    off, sz = chunk
    data = bytes(mv[off:off + sz])
    names: list[str] = []
    pos = 0
    for i in range(npacks):
        end = data.find(b"\0", pos)
        if end < 0:
            return None, [finding("midxPackNames", path,
                                  f"{path}: pack-name chunk holds {i} of {npacks} NUL-terminated names. "
                                  "git: fatal: multi-pack-index pack-name chunk is too short")]
        raw = data[pos:end]
        name = raw.decode("utf-8", "surrogateescape")
        if not raw or b"/" in raw or not (raw.endswith(b".idx") or raw.endswith(b".pack")):
            return None, [finding("midxPackNames", path,
                                  f"{path}: pack name {i} {name!r} is not a plain .idx file name")]
        if version == 1 and names and not names[-1].encode("utf-8", "surrogateescape") < raw:
            return None, [finding("midxPackNames", path,
                                  f"{path}: pack names out of order: {names[-1]!r} before {name!r}. git: fatal: "
                                  f"multi-pack-index pack names out of order: '{names[-1]}' before '{name}'")]
        names.append(name)
        pos = end + 1
    pad = data[pos:]
    if len(pad) > 3 or pad.strip(b"\0"):
        return None, [finding("midxPackNames", path,
                              f"{path}: pack-name chunk has {len(pad)} bytes after its {npacks} names "
                              "(at most 3 NULs of padding allowed): the pack count or the chunk is corrupt")]
    return names, []


def _check_offsets(midx: MultiPackIndex, mv: memoryview, path: str, npacks: int,
                   chunks: dict[bytes, tuple[int, int]]) -> list[Finding]:
    if not midx.count:
        return []
    findings: list[Finding] = []
    pids = midx.pack_ids()
    top = max(pids)
    if top >= npacks:
        i = next(i for i, p in enumerate(pids) if p >= npacks)
        findings.append(finding("midxPackIntId", path,
                                f"{path}: object {midx.name(i).hex()} (position {i}) is in pack {pids[i]}, but "
                                f"only {npacks} packs are listed. git: error: bad pack-int-id: {pids[i]} "
                                f"({npacks} total packs)"))
    if LOFF in chunks:
        raw = be32_column(mv, chunks[OOFF][0], 8, midx.count, 4)
        nlarge = chunks[LOFF][1] // 8
        if max(raw) & LARGE_OFFSET_NEEDED:
            for i, o in enumerate(raw):
                if o & LARGE_OFFSET_NEEDED and (o & ~LARGE_OFFSET_NEEDED) >= nlarge:
                    findings.append(finding("midxLargeOffset", path,
                                            f"{path}: object at position {i} refers to large offset "
                                            f"{o & ~LARGE_OFFSET_NEEDED}, but LOFF holds {nlarge}. "
                                            "git: fatal: multi-pack-index large offset out of bounds"))
                    break
    return findings


def _check_ridx(mv: memoryview, path: str, off: int, count: int) -> list[Finding]:
    ridx = be32_array(mv, off, count)
    top = max(ridx)
    if top >= count:
        return [finding("midxRevIndex", path,
                        f"{path}: RIDX chunk names object position {top}, but there are {count} objects: "
                        "MIDX bitmaps would give wrong answers")]
    return []


def _selector(pids: array[int], p: int, npacks: int) -> bytes:
    """One byte per object: 1 where the object's pack int id is *p* (C speed for up to 256 packs)."""
    if npacks <= 256 and (not pids or max(pids) < 256):
        low = pids.tobytes()[0 if sys.byteorder == "little" else 3::4]
        table = bytes(1 if b == p else 0 for b in range(256))
        return low.translate(table)
    return bytes(1 if x == p else 0 for x in pids)


def _idx_name(pack_name: str) -> str:
    return pack_name[: -len(".pack")] + ".idx" if pack_name.endswith(".pack") else pack_name


def check_midx_against_packs(midx: MultiPackIndex, path: str, indexes: Mapping[str, IdxLike], *,
                             deep: bool) -> list[Finding]:
    """Cross-check a MIDX with the ``.idx`` files of its packs (keys: ``pack-<hex>.idx``).

    Always: every listed pack has an idx, and no pack is claimed for more objects than its idx
    holds. ``deep``: every object is in its pack's idx at the same offset (git multi-pack-index
    verify).
    """
    findings: list[Finding] = []
    present: dict[int, IdxLike] = {}
    for i, name in enumerate(midx.pack_names):
        idx = indexes.get(_idx_name(name))
        if idx is None:
            findings.append(finding("midxPackMissing", path,
                                    f"{path}: lists pack {i} {name}, which has no .idx in the snapshot. "
                                    f"git multi-pack-index verify: error: failed to load pack in position {i}"))
        else:
            present[i] = idx
    if not midx.count or not present:
        return findings
    pids = midx.pack_ids()
    per_pack = {i: pids.count(i) for i in present}
    for i, n in per_pack.items():
        if n > present[i].count:
            findings.append(finding("midxObjectNotInPack", path,
                                    f"{path}: names {n} objects in {midx.pack_names[i]}, whose idx holds only "
                                    f"{present[i].count}: the MIDX belongs to other packs"))
    if not deep:
        return findings
    h = midx.algo.rawsz
    pat = b"(?s).{%d}" % h
    blob = bytes(midx.names_view())
    offsets = midx.offsets()
    names: list[bytes] = []
    for p, idx in present.items():
        if not per_pack[p]:
            continue
        theirs_blob = bytes(idx.names_view())
        theirs_offs = array("Q", idx.offsets())
        if per_pack[p] == midx.count == idx.count and blob == theirs_blob and offsets == theirs_offs:
            continue  # one pack holds every object: two comparisons at C speed
        if not names:
            names = re.findall(pat, blob)
        sel = _selector(pids, p, len(midx.pack_names))
        mine_names = list(itertools.compress(names, sel))
        mine_offs = list(itertools.compress(offsets, sel))
        if per_pack[p] == idx.count and b"".join(mine_names) == theirs_blob and mine_offs == list(theirs_offs):
            continue
        theirs = dict(zip(re.findall(pat, theirs_blob), theirs_offs, strict=False))
        if all(theirs.get(n) == o for n, o in zip(mine_names, mine_offs, strict=True)):
            continue
        reported = 0
        for q in itertools.compress(range(midx.count), sel):
            oid = names[q]
            off = theirs.get(oid)
            if off is None:
                findings.append(finding("midxObjectNotInPack", path,
                                        f"{path}: object {oid.hex()} (oid[{q}]) is not in {midx.pack_names[p]}. "
                                        f"git multi-pack-index verify: error: failed to load pack entry for "
                                        f"oid[{q}] = {oid.hex()}"))
                reported += 1
            elif off != offsets[q]:
                findings.append(finding("midxOffsetMismatch", path,
                                        f"{path}: object {oid.hex()} is at offset {offsets[q]:#x} per the MIDX "
                                        f"but {off:#x} per {midx.pack_names[p]}. git multi-pack-index "
                                        f"verify: error: incorrect object offset for oid[{q}] = {oid.hex()}: "
                                        f"{offsets[q]:x} != {off:x}"))
                reported += 1
            if reported >= 10:
                break
    return findings
