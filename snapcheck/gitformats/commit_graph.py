"""Commit-graph files: ``objects/info/commit-graph`` and split chains under
``objects/info/commit-graphs/`` (``commit-graph-chain`` + ``graph-<hash>.graph`` layers).

Layout (git: Documentation/gitformat-commit-graph.adoc, commit-graph.c): an 8-byte header
(``CGPH``, version 1, hash version, chunk count C, base-graph count B), a chunk table (see
:mod:`.chunks`), the chunks, and an H-byte trailer hashing everything before it.

Rules for one file, in order (git's message where git fails):

1. size ≥ 8 + 4·12 + 1024 + H (``commitGraphTooSmall``; git: "commit-graph file is too small");
2. signature ``CGPH`` (``commitGraphSignature``), version 1 (``commitGraphVersion``), hash version
   1/2 and the repository's (``commitGraphHashVersion``);
3. the chunk table (:func:`.chunks.read_chunk_table`);
4. OIDF, OIDL, CDAT present (``commitGraphChunkMissing``) with exact sizes OIDF 256·4, OIDL N·H,
   CDAT N·(H+16), GDA2 N·4, GDO2 and EDGE multiples of 8 and 4, BASE B·H (``commitGraphChunkSize``;
   a missing BASE with B > 0 is ``commitGraphBase``); BIDX N·4 and BDAT ≥ 12 are warnings
   (``commitGraphBloom``: git only disables the filters);
5. fanout never decreasing and matching the OIDs' first bytes (``commitGraphFanout``), OIDs
   strictly increasing (``commitGraphOidOrder``, with ``verify_checksum`` as in git verify);
6. every parent position inside the graph — for a layer of a chain, checked by
   :func:`check_commit_graph_chain`, which knows the layers below — and every octopus pointer
   inside EDGE, terminated there (``commitGraphParent``; git: "invalid parent position",
   "commit-graph extra-edges pointer out of bounds"); overflow generation pointers inside GDO2
   (``commitGraphGenerationData``);
7. trailer == hash of the rest (``commitGraphChecksum`` with ``verify_checksum``; git: "the
   commit-graph file has incorrect checksum and is likely corrupt"), and for ``graph-<hex>.graph``
   the name == the trailer (``commitGraphNameMismatch``, no hashing needed).

Chains: ``commit-graph-chain`` is one lower-case hex hash per line, every line LF-terminated
(``commitGraphChainNewline``: git ≥ 2.41 fails, 2.39 silently drops the last layer), and
(:func:`check_commit_graph_chain`) every listed layer exists (``commitGraphChainMissing``: git
"unable to find all commit-graph files"), and layer k's BASE chunk lists exactly the k layers before
it (``commitGraphChainMismatch``: git "commit-graph chain does not match").

Not done here (it needs the object database): comparing each commit's tree, parents, generation
and date with the commit object (the second half of ``git commit-graph verify``); callers can do
that with :meth:`CommitGraph.commit`.
"""

from __future__ import annotations

import bisect
import itertools
import posixpath
import re
import struct
from array import array

from ..report import Finding, Severity, finding, register
from .chunks import (
    be32_array,
    be32_column,
    bsearch_oid,
    fanout_disorder,
    fanout_mismatch,
    first_unsorted,
    hex_id,
    read_chunk_table,
)
from .common import Buffer, HashAlgo, algo_for_format_id, algo_for_hexlen, is_hex_oid

register(
    "commitGraph",
    ("commitGraphTooSmall", Severity.ERROR,
     "The commit-graph file is shorter than the smallest possible commit-graph: it was cut short.",
     "git: error: commit-graph file is too small; the graph is not used."),
    ("commitGraphSignature", Severity.ERROR,
     "The commit-graph file does not start with 'CGPH'.",
     "git: error: commit-graph signature … does not match signature 43475048"),
    ("commitGraphVersion", Severity.ERROR,
     "The commit-graph version is not 1.",
     "git: error: commit-graph version … does not match version 1"),
    ("commitGraphHashVersion", Severity.ERROR,
     "The commit-graph hash version is unknown or not the repository's object format.",
     "git: error: commit-graph hash version … does not match version …"),
    ("commitGraphChunkMissing", Severity.ERROR,
     "A required commit-graph chunk (OIDF, OIDL, CDAT) is missing.",
     "git: error: commit-graph required … chunk missing or corrupted"),
    ("commitGraphChunkSize", Severity.ERROR,
     "A commit-graph chunk has the wrong size for the commit count.",
     "git: error: commit-graph … chunk is wrong size"),
    ("commitGraphBloom", Severity.WARNING,
     "The changed-path Bloom filter chunks (BIDX, BDAT) have impossible sizes.",
     "git: warning: commit-graph changed-path index chunk is too small; the filters are ignored."),
    ("commitGraphBase", Severity.ERROR,
     "The commit-graph header claims base graphs but the file has no BASE chunk.",
     "git: warning: commit-graph has no base graphs chunk; the layer and those above are dropped."),
    ("commitGraphFanout", Severity.ERROR,
     "The commit-graph OID fanout decreases or disagrees with the OIDs it indexes.",
     "git: error: commit-graph fanout values out of order / verify: incorrect fanout value"),
    ("commitGraphOidOrder", Severity.ERROR,
     "The commit-graph OIDs are not strictly increasing.",
     "git commit-graph verify: error: commit-graph has incorrect OID order"),
    ("commitGraphParent", Severity.ERROR,
     "A commit-graph parent position or octopus edge pointer lies outside the graph.",
     "git: fatal: invalid parent position / error: commit-graph extra-edges pointer out of bounds"),
    ("commitGraphGenerationData", Severity.ERROR,
     "A generation-data overflow pointer lies outside the GDO2 chunk (or GDO2 is missing).",
     "git: fatal: commit-graph requires overflow generation data but has none / overflow "
     "generation data is too small"),
    ("commitGraphChecksum", Severity.ERROR,
     "The commit-graph trailer is not the hash of its contents: the file is corrupt.",
     "git commit-graph verify: error: the commit-graph file has incorrect checksum and is likely "
     "corrupt (fsck exit bit 16)"),
    ("commitGraphNameMismatch", Severity.ERROR,
     "A split commit-graph layer graph-<hash>.graph does not end with <hash>: it is cut, corrupt "
     "or misnamed.",
     "git: warning: commit-graph chain does not match; the layer and those above are dropped."),
    ("commitGraphChainEmpty", Severity.WARNING,
     "commit-graph-chain is empty.",
     "git treats an empty chain file like a missing one: no commit-graph is used."),
    ("commitGraphChainFormat", Severity.ERROR,
     "A commit-graph-chain line is not a lower-case hash of the object format, or repeats.",
     "git: warning: invalid commit-graph chain: line '…' not a hash; no commit-graph is used."),
    ("commitGraphChainNewline", Severity.ERROR,
     "commit-graph-chain does not end with a newline: it was cut short.",
     "git 2.39 silently drops the last layer (exit 0); git ≥ 2.41 commit-graph verify fails (fsck 16)."),
    ("commitGraphChainMissing", Severity.ERROR,
     "A layer listed in commit-graph-chain is not in the snapshot.",
     "git: warning: unable to find all commit-graph files (2.39 exits 0; newer verify fails)."),
    ("commitGraphChainMismatch", Severity.ERROR,
     "A commit-graph layer's BASE chunk (or hash) does not match the layers before it in the chain.",
     "git: warning: commit-graph chain does not match; the layer and those above are dropped."),
    ("commitGraphUnlisted", Severity.INFO,
     "A graph-<hash>.graph file is not listed in commit-graph-chain.",
     "git ignores it and deletes it once it has expired."),
)

SIGNATURE = b"CGPH"
HEADER_SIZE = 8
OIDF, OIDL, CDAT, GDA2, GDO2, EDGE, BIDX, BDAT, BASE = (
    b"OIDF", b"OIDL", b"CDAT", b"GDA2", b"GDO2", b"EDGE", b"BIDX", b"BDAT", b"BASE")
PARENT_NONE = 0x70000000
OCTOPUS = 0x80000000
_GRAPH_NAME = re.compile(r"graph-([0-9a-f]{40}|[0-9a-f]{64})\.graph")


class CommitGraph:
    """One parsed commit-graph file (a whole graph or one layer of a chain) over its buffer."""

    def __init__(self, mv: memoryview, algo: HashAlgo, count: int, num_base: int,
                 chunks: dict[bytes, tuple[int, int]], fanout: array[int]) -> None:
        h = algo.rawsz
        self._mv = mv
        self.algo = algo
        self.version = 1
        self.count = count
        self.num_base = num_base
        self.chunks = chunks
        self.fanout = fanout
        self.checksum = bytes(mv[len(mv) - h:])
        base = chunks.get(BASE)
        self.base_hashes: list[bytes] = []
        if base is not None:
            self.base_hashes = [bytes(mv[base[0] + i * h: base[0] + (i + 1) * h]) for i in range(base[1] // h)]
        self._oidl = chunks[OIDL][0]
        self._cdat = chunks[CDAT][0]
        self._edge = chunks.get(EDGE)
        self._gda2 = chunks.get(GDA2)
        self._gdo2 = chunks.get(GDO2)
        self.has_generation_data = self._gda2 is not None

    def name(self, i: int) -> bytes:
        """The commit id at local position *i* (0 ≤ i < count)."""
        if not 0 <= i < self.count:
            raise IndexError(i)
        h = self.algo.rawsz
        return bytes(self._mv[self._oidl + i * h: self._oidl + (i + 1) * h])

    def find(self, oid: bytes) -> int | None:
        """Local position of *oid* in this file, or None."""
        return bsearch_oid(self._mv, self.fanout, self._oidl, self.algo.rawsz, oid)

    def commit(self, i: int) -> tuple[bytes, list[int], int, int]:
        """``(root tree oid, parent graph positions, topological level, commit time)`` of commit *i*.

        *i* is the local position in this file; parent positions are positions in the whole chain
        (local position + number of commits in the base layers), as stored. The level is the
        CDAT generation number v1; see :meth:`corrected_date` for generation v2.
        """
        if not 0 <= i < self.count:
            raise IndexError(i)
        h = self.algo.rawsz
        rec = self._cdat + i * (h + 16)
        tree = bytes(self._mv[rec:rec + h])
        p1, p2, w3, w4 = struct.unpack_from(">IIII", self._mv, rec + h)
        parents: list[int] = []
        if p1 != PARENT_NONE:
            parents.append(p1)
        if p2 != PARENT_NONE:
            if p2 & OCTOPUS:
                parents.extend(self._extra_edges(p2 & ~OCTOPUS))
            else:
                parents.append(p2)
        return tree, parents, w3 >> 2, ((w3 & 3) << 32) | w4

    def _extra_edges(self, k: int) -> list[int]:
        out: list[int] = []
        if self._edge is None:
            return out
        start, size = self._edge
        while 4 * k + 4 <= size:
            v = struct.unpack_from(">I", self._mv, start + 4 * k)[0]
            out.append(v & ~OCTOPUS)
            if v & OCTOPUS:
                break
            k += 1
        return out

    def corrected_date(self, i: int) -> int | None:
        """Generation number v2 (corrected commit date) of commit *i*, or None without GDA2."""
        if self._gda2 is None:
            return None
        _, _, _, date = self.commit(i)
        off = int(struct.unpack_from(">I", self._mv, self._gda2[0] + 4 * i)[0])
        if off & OCTOPUS:
            k = off & ~OCTOPUS
            if self._gdo2 is None or 8 * k + 8 > self._gdo2[1]:
                return None
            return date + int(struct.unpack_from(">Q", self._mv, self._gdo2[0] + 8 * k)[0])
        return date + off

    def parent_columns(self) -> tuple[array[int], array[int]]:
        """The first and second parent fields of every commit (raw, as stored)."""
        w = self.algo.rawsz + 16
        return (be32_column(self._mv, self._cdat, w, self.count, self.algo.rawsz),
                be32_column(self._mv, self._cdat, w, self.count, self.algo.rawsz + 4))


def parse_commit_graph(buf: Buffer, path: str, algo: HashAlgo | None, *,
                       verify_checksum: bool) -> tuple[CommitGraph | None, list[Finding]]:
    """Parse and check one commit-graph file. *algo* None: take it from the header."""
    mv = memoryview(buf).cast("B")
    size = len(mv)
    hmin = algo.rawsz if algo else 20
    min_size = HEADER_SIZE + 4 * 12 + 1024 + hmin
    if size < HEADER_SIZE:
        return None, [_too_small(path, size, min_size)]
    sig = bytes(mv[0:4])
    if sig != SIGNATURE:
        return None, [finding("commitGraphSignature", path,
                              f"{path}: does not start with 'CGPH' (found {sig.hex()}). git: error: "
                              f"commit-graph signature {sig.hex().upper()} does not match signature 43475048")]
    version, hash_version, nchunks, nbase = mv[4], mv[5], mv[6], mv[7]
    if version != 1:
        return None, [finding("commitGraphVersion", path,
                              f"{path}: commit-graph version {version} is not 1. "
                              f"git: error: commit-graph version {version:X} does not match version 1")]
    file_algo = algo_for_format_id(hash_version)
    if file_algo is None or (algo is not None and file_algo != algo):
        want = algo.format_id if algo else "1 or 2"
        return None, [finding("commitGraphHashVersion", path,
                              f"{path}: commit-graph hash version {hash_version}, expected {want}. git: error: "
                              f"commit-graph hash version {hash_version:X} does not match version {want}")]
    algo = file_algo
    h = algo.rawsz
    min_size = HEADER_SIZE + 4 * 12 + 1024 + h
    if size < min_size:
        return None, [_too_small(path, size, min_size)]
    chunks, fs = read_chunk_table(mv, path, "commitGraph", toc_offset=HEADER_SIZE, count=nchunks,
                                  hash_len=h, alignment=1)
    if chunks is None:
        return None, fs
    missing = [c for c in (OIDF, OIDL, CDAT) if c not in chunks]
    if missing:
        names = {OIDF: "OID fanout", OIDL: "OID lookup", CDAT: "commit data"}
        return None, [finding("commitGraphChunkMissing", path,
                              f"{path}: commit-graph has no {hex_id(missing[0])} chunk. git: error: "
                              f"commit-graph required {names[missing[0]]} chunk missing or corrupted")]
    off, sz = chunks[OIDF]
    if sz != 1024:
        return None, [finding("commitGraphChunkSize", path,
                              f"{path}: OID fanout chunk is {sz} bytes, not 1024. "
                              "git: error: commit-graph oid fanout chunk is wrong size")]
    fan = be32_array(mv, off, 256)
    bad = fanout_disorder(fan)
    if bad is not None:
        return None, [finding("commitGraphFanout", path,
                              f"{path}: OID fanout out of order: fanout[{bad}] = {fan[bad]} > {fan[bad + 1]} = "
                              f"fanout[{bad + 1}]. git: error: commit-graph fanout values out of order")]
    n = fan[255]
    sizes = {OIDL: (n * h, "OID lookup"), CDAT: (n * (h + 16), "commit data")}
    if GDA2 in chunks:
        sizes[GDA2] = (n * 4, "generations")
    if BASE in chunks or nbase:
        if BASE not in chunks:
            return None, [finding("commitGraphBase", path,
                                  f"{path}: header claims {nbase} base graphs but there is no BASE chunk. "
                                  "git: warning: commit-graph has no base graphs chunk")]
        sizes[BASE] = (nbase * h, "base graphs")
    for cid, (want, what) in sizes.items():
        got = chunks[cid][1]
        if got != want:
            return None, [finding("commitGraphChunkSize", path,
                                  f"{path}: {what} chunk {hex_id(cid)} is {got} bytes, expected {want} for "
                                  f"{n} commits and {nbase} base graphs. git: error: commit-graph {what} chunk "
                                  "is wrong size")]
    for cid, unit in ((GDO2, 8), (EDGE, 4)):
        if cid in chunks and chunks[cid][1] % unit:
            return None, [finding("commitGraphChunkSize", path,
                                  f"{path}: chunk {hex_id(cid)} is {chunks[cid][1]} bytes, not a multiple of {unit}")]
    findings: list[Finding] = []
    if BIDX in chunks or BDAT in chunks:
        findings += _check_bloom(mv, path, chunks, n)
    g = CommitGraph(mv, algo, n, nbase, chunks, fan)
    if n:
        b = fanout_mismatch(fan, mv, chunks[OIDL][0], h)
        if b is not None:
            findings.append(finding("commitGraphFanout", path,
                                    f"{path}: OID fanout bucket {b:02x} does not match the OIDs it covers. "
                                    "git commit-graph verify: error: commit-graph has incorrect fanout value"))
        elif verify_checksum:
            i = first_unsorted(mv, chunks[OIDL][0], n, h)
            if i is not None:
                findings.append(finding("commitGraphOidOrder", path,
                                        f"{path}: OIDs out of order: {g.name(i).hex()} then {g.name(i + 1).hex()}. "
                                        "git commit-graph verify: error: commit-graph has incorrect OID order"))
        findings += check_parents(g, path, limit=n if nbase == 0 else None)
        findings += _check_generation_data(g, mv, path)
    m = _GRAPH_NAME.fullmatch(posixpath.basename(path))
    if m and m.group(1) != g.checksum.hex():
        findings.append(finding("commitGraphNameMismatch", path,
                                f"{path}: trailer is {g.checksum.hex()}, not the hash in the file name: the layer "
                                "is cut, corrupt or misnamed. git: warning: commit-graph chain does not match"))
    if verify_checksum:
        actual = algo.digest(mv[:size - h])
        if actual != g.checksum:
            findings.append(finding("commitGraphChecksum", path,
                                    f"{path}: trailer {g.checksum.hex()} but contents hash to {actual.hex()}. "
                                    "git commit-graph verify: error: the commit-graph file has incorrect "
                                    "checksum and is likely corrupt"))
    return g, findings


def _too_small(path: str, size: int, min_size: int) -> Finding:
    return finding("commitGraphTooSmall", path,
                   f"{path}: commit-graph is {size} bytes, less than the minimum {min_size}: cut short. "
                   "git: error: commit-graph file is too small")


def _check_bloom(mv: memoryview, path: str, chunks: dict[bytes, tuple[int, int]], n: int) -> list[Finding]:
    bidx, bdat = chunks.get(BIDX), chunks.get(BDAT)
    why = None
    if bidx is not None and bidx[1] != 4 * n:
        why = f"BIDX is {bidx[1]} bytes, expected {4 * n}"
    elif bdat is not None and bdat[1] < 12:
        why = f"BDAT is {bdat[1]} bytes, less than its 12-byte header"
    elif bidx is not None and bdat is not None and n:
        ends = be32_array(mv, bidx[0], n)
        if fanout_disorder_any(ends) or ends[-1] > bdat[1] - 12:
            why = "BIDX offsets decrease or pass the end of BDAT"
    if why is None:
        return []
    return [finding("commitGraphBloom", path,
                    f"{path}: changed-path Bloom filter chunks are inconsistent ({why}). "
                    "git: warning: commit-graph changed-path index chunk is too small (filters ignored)")]


def fanout_disorder_any(a: array[int]) -> bool:
    """True when the sequence ever decreases."""
    return not all(x <= y for x, y in itertools.pairwise(a))


def check_parents(g: CommitGraph, path: str, *, limit: int | None) -> list[Finding]:
    """Every parent position < *limit* (None: skip the range check) and every octopus edge list
    inside EDGE and terminated there."""
    if not g.count:
        return []
    p1, p2 = g.parent_columns()
    if limit is not None:
        bad = _first_bad_parent(p1, limit, octopus_ok=False)
        which = "first"
        if bad is None:
            bad = _first_bad_parent(p2, limit, octopus_ok=True)
            which = "second"
        if bad is not None:
            v = (p1 if which == "first" else p2)[bad]
            return [finding("commitGraphParent", path,
                            f"{path}: commit {g.name(bad).hex()} has {which} parent at graph position {v}, "
                            f"but the graph holds {limit} commits. git: fatal: invalid parent position {v}")]
    if max(p2) & OCTOPUS:
        nedge = g._edge[1] // 4 if g._edge else 0
        for i, v in enumerate(p2):
            if v == PARENT_NONE or not v & OCTOPUS:
                continue
            k = v & ~OCTOPUS
            while True:
                if k >= nedge:
                    return [finding("commitGraphParent", path,
                                    f"{path}: commit {g.name(i).hex()} has an octopus edge list that runs past the "
                                    f"EDGE chunk ({nedge} entries). git: error: commit-graph extra-edges pointer "
                                    "out of bounds")]
                e = struct.unpack_from(">I", g._mv, g._edge[0] + 4 * k)[0] if g._edge else 0
                if limit is not None and (e & ~OCTOPUS) >= limit:
                    return [finding("commitGraphParent", path,
                                    f"{path}: commit {g.name(i).hex()} has an octopus parent at graph position "
                                    f"{e & ~OCTOPUS}, but the graph holds {limit} commits. git: fatal: invalid "
                                    f"parent position {e & ~OCTOPUS}")]
                if e & OCTOPUS:
                    break
                k += 1
    return []


def _first_bad_parent(col: array[int], limit: int, *, octopus_ok: bool) -> int | None:
    # the common answer (none) from the distinct values at or above the limit, found at C speed: "no
    # parent" and, in the second column, octopus pointers; the position only when something else is there
    distinct = sorted(set(col))
    if all(v == PARENT_NONE or (octopus_ok and v & OCTOPUS)
           for v in itertools.islice(distinct, bisect.bisect_left(distinct, limit), None)):
        return None
    for i, v in enumerate(col):
        if v >= limit and v != PARENT_NONE and not (octopus_ok and v & OCTOPUS):
            return i
    return None


def _check_generation_data(g: CommitGraph, mv: memoryview, path: str) -> list[Finding]:
    if g._gda2 is None:
        return []
    gda = be32_array(mv, g._gda2[0], g.count)
    if not max(gda) & OCTOPUS:
        return []
    nover = g._gdo2[1] // 8 if g._gdo2 else 0
    for i, v in enumerate(gda):
        if v & OCTOPUS and (v & ~OCTOPUS) >= nover:
            why = "has none" if g._gdo2 is None else "is too small"
            return [finding("commitGraphGenerationData", path,
                            f"{path}: commit {g.name(i).hex()} refers to overflow generation entry "
                            f"{v & ~OCTOPUS}, but GDO2 holds {nover}. git: fatal: commit-graph requires overflow "
                            f"generation data but {why}")]
    return []


def parse_commit_graph_chain(data: bytes, path: str,
                             algo: HashAlgo | None) -> tuple[list[bytes], list[Finding]]:
    """Parse ``commit-graph-chain``: one hex hash per line, oldest layer first, final LF required."""
    if not data:
        return [], [finding("commitGraphChainEmpty", path,
                            f"{path}: the chain file is empty; git ignores it and uses no commit-graph")]
    findings: list[Finding] = []
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    else:
        findings.append(finding("commitGraphChainNewline", path,
                                f"{path}: last line {lines[-1][:80]!r} is not terminated by a newline: the file "
                                "was cut short. git 2.39 silently drops that layer; git >= 2.41 commit-graph "
                                "verify fails"))
    if algo is None:
        algo = algo_for_hexlen(len(lines[0])) if lines else None
    out: list[bytes] = []
    seen: set[bytes] = set()
    for i, line in enumerate(lines):
        if algo is None or not is_hex_oid(line, algo):
            text = line[:80].decode("utf-8", "backslashreplace")
            findings.append(finding("commitGraphChainFormat", path,
                                    f"{path}: line {i + 1} {text!r} is not a hash. git: warning: invalid "
                                    f"commit-graph chain: line '{text}' not a hash"))
            return out, findings
        raw = bytes.fromhex(line.decode("ascii"))
        if raw in seen:
            findings.append(finding("commitGraphChainFormat", path,
                                    f"{path}: line {i + 1} repeats layer {line.decode('ascii')}. git: warning: "
                                    "commit-graph chain does not match"))
            return out, findings
        seen.add(raw)
        out.append(raw)
    return out, findings


def check_commit_graph_chain(chain: list[bytes], graphs: dict[str, CommitGraph | None],
                             chain_path: str) -> list[Finding]:
    """Cross-check a chain with its layers (*graphs*: every ``graph-<hex>.graph`` file in the
    directory, by file name; None for a file that did not parse)."""
    findings: list[Finding] = []
    folder = posixpath.dirname(chain_path)
    listed = set()
    base = 0  # commits in the layers below, while all of them parsed
    below_ok = True
    algo: HashAlgo | None = None
    for k, h in enumerate(chain):
        name = f"graph-{h.hex()}.graph"
        listed.add(name)
        layer_path = posixpath.join(folder, name)
        if name not in graphs:
            findings.append(finding("commitGraphChainMissing", chain_path,
                                    f"{chain_path}: layer {k + 1} of {len(chain)}, {name}, is missing. "
                                    "git: warning: unable to find all commit-graph files"))
            below_ok = False
            continue
        g = graphs[name]
        if g is None:
            below_ok = False
            continue
        if algo is None:
            algo = g.algo
        if g.algo != algo or g.checksum != h:
            findings.append(finding("commitGraphChainMismatch", layer_path,
                                    f"{layer_path}: layer {k + 1} has trailer {g.checksum.hex()} and hash "
                                    f"{g.algo.name}, not what {chain_path} lists. git: warning: commit-graph "
                                    "chain does not match"))
            below_ok = False
            continue
        if g.num_base != k or g.base_hashes != chain[:k]:
            have = ", ".join(x.hex()[:12] for x in g.base_hashes) or "none"
            want = ", ".join(x.hex()[:12] for x in chain[:k]) or "none"
            findings.append(finding("commitGraphChainMismatch", layer_path,
                                    f"{layer_path}: BASE chunk lists [{have}] but the chain puts [{want}] below "
                                    "it. git: warning: commit-graph chain does not match"))
            below_ok = False
            continue
        if below_ok and k:
            findings += check_parents(g, layer_path, limit=base + g.count)
        base += g.count
    for name in sorted(set(graphs) - listed):
        findings.append(finding("commitGraphUnlisted", posixpath.join(folder, name),
                                f"{posixpath.join(folder, name)} is not listed in {chain_path}; git ignores it"))
    return findings
