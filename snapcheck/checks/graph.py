"""Connectivity: from every ref, every reachable object exists (``git fsck --connectivity-only``).

The rule (DESIGN.md "graph"; git: builtin/fsck.c ``snapshot_ref``, ``mark_object``,
``check_reachable_object``):

1. every root (a ref, a peeled tag, HEAD) names an object that exists
   (git: "<ref>: invalid sha1 pointer <oid>");
2. every commit, tree and tag reachable from a root exists and parses, and names objects of the
   type it expects (a commit's tree is a tree, its parents commits; a tag's target has the type
   the tag declares — a tag of a tree, a blob or another tag is fine);
3. every blob a reachable tree names exists (blobs are not read);
4. gitlinks (mode 160000, submodule commits) are not followed; unreachable objects may refer to
   objects that are gone (git prunes in that order): that is not an error.

Two strategies give the same verdict:

* **scan** (the fast path): one pass over every pack and loose object reads each commit, tree
  and tag once, in pack order, and collects every id they reference by expected type
  (:class:`~snapcheck.checks.objectstore.LinkCollector`).  When every referenced id exists with
  that type, every object parses and every root exists, the graph is closed under links, so
  everything reachable is present: proven with set operations over the pack index names, without
  a walk.  ``full`` feeds the same collector from its own pass.
* **walk** (exact, used when the scan saw anything amiss — which may concern only unreachable
  objects, e.g. in a cruft pack): depth-first from the roots through the object store, reporting
  only what is reachable, in git's words: "missing <type> <oid>", "broken link from <type> <oid>
  to <type> <oid>", wrong types, unparseable objects.

At ``standard`` (never at ``full``) a **verified reachability bitmap** stands for the closure of the
objects it covers, as ``git rev-list --use-bitmap-index`` lets it (:class:`BitmapCoverage`); the walk
then starts from every root but stops at any object whose bit is set in the union of the bitmap's
commit bitmaps, and walks only the rest (refs without bitmaps, loose objects, other packs).  What it
trusts, and why that is sound against accidental damage:

* the bitmap's own trailer hash verified, its header names the pack (or MIDX) it sits beside, and
  that pack's trailer hash and its idx's checksum verified (for a MIDX: the MIDX checksum, every
  object at its offset in its pack's idx, every pack verified whole) — so the bitmap, the pack and
  the idx are byte for byte what git wrote together (:class:`~snapcheck.checks.repository.VerifiedBitmap`);
* git writes a bitmap only for a pack that holds the full closure of the commits it selects, and each
  commit bitmap is git's own computation of that closure; the union of closed sets is closed, so any
  object in the union has every object it reaches in the same pack, present;
* bit positions are checked against the object count when the file is parsed, and the bit order
  (offset order of the pack, or the MIDX pseudo-pack order) is checked here before use.

It does not prove that the covered commits and trees parse (the pack bytes are git's, checked by
the trailer hash); a bitmap forged together with its checksums is not caught at ``standard`` —
``full`` reads every object and never uses bitmaps.  Commits outside the bitmap take their tree
and parents from a verified commit-graph when one lists them (:class:`CommitGraphLinks`), with the
commit object's existence and type still read from the pack.
"""

from __future__ import annotations

import struct
import sys
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import compress, islice
from operator import lt
from typing import Any

from ..gitformats.chunks import record_splitter
from ..gitformats.common import HashAlgo
from ..gitformats.loose_object import check_loose_object, loose_object_type
from ..gitformats.objects import (
    OBJ_BLOB,
    OBJ_COMMIT,
    OBJ_TAG,
    OBJ_TREE,
    commit_links,
    tag_target,
    tree_entries,
    type_name,
)
from ..report import Finding, Severity, finding, register
from . import repository as _repository  # noqa: F401  (registers refTargetMissing, shared with the quick level)
from .blobs import pages_releaser
from .objectstore import LinkCollector, ObjectError, ObjectStore, find_many, order_by_offset, scan_pack_links

register(
    "graph",
    ("brokenLink", Severity.ERROR,
     "A reachable commit, tree or tag names an object of another type than it expects (a commit whose "
     "tree is a blob, a tag whose target is not of its declared type, …).",
     "git fsck: error in <type> <oid>: broken links / wrong object type in link"),
    ("objectCorrupt", Severity.ERROR,
     "A reachable commit, tree or tag cannot be parsed (git's own parser fails on it).",
     "git: error: bogus commit object / too-short tree object / unknown tag type; git fsck reports "
     "broken links"),
)

_CHUNK = 1 << 16  # index names compared per set operation
# byte -> 1 when it is that object type: a selector over a pack's types at C speed
_IS_TYPE = {t: bytes(1 if b == t else 0 for b in range(256)) for t in (OBJ_COMMIT, OBJ_TREE, OBJ_BLOB, OBJ_TAG)}


@dataclass
class GraphStats:
    """Objects checked by the connectivity check.  In the ``scan`` strategy the counts are every
    object of the repository (all were proven linked); in ``walk`` they are the reachable ones."""

    commits: int = 0
    trees: int = 0
    blobs: int = 0
    tags: int = 0
    missing: int = 0
    corrupt: int = 0
    roots: int = 0
    strategy: str = "scan"
    not_found: dict[str, int] = field(default_factory=dict)
    covered: int = 0  # objects where the walk stopped because a verified bitmap covers their closure


def _default_path(name: str) -> str:
    return name.removesuffix("^{}")


def _collect(store: ObjectStore, links: LinkCollector) -> None:
    """Scan every pack and loose object the collector has not seen yet."""
    algo = store.algo
    for src in store.packs:
        if src.label not in links.pack_types:
            scan_pack_links(src, algo, links)  # its findings are judged by reachability (the walk)
    for oid, (path, load) in store.loose.items():
        if oid in links.loose_types:
            continue
        raw = load()
        if loose_object_type(raw) == OBJ_BLOB:  # a blob is typed from its header, never read
            links.loose_types[oid] = OBJ_BLOB
            continue
        obj, _fs = check_loose_object(raw, path, algo, verify_hash=True, after_window=pages_releaser(raw))
        if obj is None:
            links.unreadable += 1
            continue
        typ, data = obj
        links.loose_types[oid] = typ
        if typ != OBJ_BLOB and not links.add(typ, data):
            links.unparseable.append((oid, typ, path))
    for label, types in links.pack_types.items():
        store.seed_types(label, types)
    store.seed_loose_types(links.loose_types)


def _unmatched(store: ObjectStore, links: LinkCollector) -> dict[int, set[bytes]]:
    """Referenced ids that no object of the expected type answers (consumes ``links.expect``)."""
    rem = {t: s for t, s in links.expect.items() if s}
    rawsz = store.algo.rawsz
    split = record_splitter(rawsz)
    for src in store.packs:
        types = links.pack_types.get(src.label)
        if types is None or not rem:
            continue
        names = src.idx.names_view()
        n = len(types)
        for a in range(0, n, _CHUNK):
            b = min(n, a + _CHUNK)
            chunk = split(names[a * rawsz:b * rawsz])
            ts = types[a:b]
            for t in list(rem):
                # (a set argument is taken faster than an iterator; measured)
                rem[t].difference_update(set(compress(chunk, ts.translate(_IS_TYPE[t]))))
                if not rem[t]:
                    del rem[t]
            if not rem:
                break
    for oid, t in links.loose_types.items():
        s = rem.get(t)
        if s is not None:
            s.discard(oid)
    return {t: s for t, s in rem.items() if s}


# --------------------------------------------------------------------------------------------------
# verified bitmaps and commit-graphs as evidence (standard only)
# --------------------------------------------------------------------------------------------------
_LITTLE = sys.byteorder == "little"
_EWAH_HEAD = struct.Struct(">II")


def _ewah_int(mv: memoryview, off: int) -> int:
    """The EWAH bitmap at *off* as an int (bit *i* = object *i*).  Only for files whose structure and
    checksum verified (:func:`snapcheck.gitformats.bitmap.parse_bitmap`): the run-length chain is
    walked without the parser's diagnostics, literal words are sliced from one byte-swapped copy."""
    _bits, nwords = _EWAH_HEAD.unpack_from(mv, off)
    words = array("Q")
    words.frombytes(mv[off + 8: off + 8 + 8 * nwords])
    if _LITTLE:
        words.byteswap()
        raw = words.tobytes()
    else:  # pragma: no cover - big-endian hosts
        le = array("Q", words)
        le.byteswap()
        raw = le.tobytes()
    parts: list[bytes] = []
    append = parts.append
    i = 0
    while i < nwords:
        rlw = words[i]
        run = (rlw >> 1) & 0xFFFFFFFF
        lit = rlw >> 33
        if run:
            append((b"\xff" if rlw & 1 else b"\0") * (8 * run))
        if lit:
            append(raw[8 * (i + 1): 8 * (i + 1 + lit)])
        i += 1 + lit
    return int.from_bytes(b"".join(parts), "little")


def _bits_bytes(bits: int, count: int) -> bytes:
    """*bits* limited to *count* bits, as little-endian bytes (bit *i* is ``b[i >> 3] >> (i & 7) & 1``)."""
    return (bits & ((1 << count) - 1)).to_bytes((count + 7) >> 3, "little")


def _bit(b: bytes, i: int) -> int:
    return (b[i >> 3] >> (i & 7)) & 1


class _CoverPart:
    """One verified bitmap: the union of its commit bitmaps, its type bitmaps, and the way from an
    object id to its bit: *index* (the pack index or MIDX listing the objects) and *bit_of* (its
    position -> bit position)."""

    __slots__ = ("bit_of", "index", "tag", "types", "union")

    def __init__(self, union: bytes, types: tuple[bytes, ...], index: Any, bit_of: Callable[[int], int],
                 tag: object) -> None:
        self.union = union
        self.types = types
        self.index = index
        self.bit_of = bit_of
        self.tag = tag

    def type_at(self, i: int) -> int:
        """Type of the object at index position *i* when the union covers it, else 0."""
        b = self.bit_of(i)
        if not _bit(self.union, b):
            return 0
        for t, tb in enumerate(self.types, start=OBJ_COMMIT):
            if _bit(tb, b):
                return t
        return 0


class BitmapCoverage:
    """``type_of(oid)``: the type of *oid* when a verified bitmap covers it (its closure is present),
    else 0.  Built from :class:`~snapcheck.checks.repository.VerifiedBitmap` records."""

    def __init__(self) -> None:
        self._parts: list[_CoverPart] = []
        self._memo: dict[bytes, int] = {}
        self.skipped: list[str] = []  # bitmaps not used, with the reason

    def __bool__(self) -> bool:
        return bool(self._parts)

    def _decode(self, info: Any, buf: Any, count: int) -> tuple[bytes, tuple[bytes, ...]]:
        mv = memoryview(buf).cast("B")
        ring: list[int] = [0] * 160
        union = 0
        xors = info.entry_xor
        for k, eoff in enumerate(info.entry_offsets):
            bits = _ewah_int(mv, eoff + 6)
            x = xors[k]
            if x:
                bits ^= ring[(k - x) % 160]
            ring[k % 160] = bits
            union |= bits
        types = tuple(_bits_bytes(_ewah_int(mv, off), count) for off in info.type_offsets)
        return _bits_bytes(union, count), types

    def add_pack(self, path: str, info: Any, buf: Any, order: Sequence[int] | None, idx: Any, *,
                 checked: bool = False, tag: object = None) -> bool:
        """A pack bitmap: bit *b* is the *b*-th object in pack (offset) order.  *order*: a ``.rev``
        table (*checked*: one that verified), else the offsets are sorted here."""
        n = idx.count
        offs = idx.offsets()
        # a given table is used only if it orders the offsets (or was proven to)
        by_offset = order_by_offset(offs, order, checked=checked)
        key = offs.__getitem__

        def bit_of(i: int) -> int:
            return bisect_left(by_offset, offs[i], key=key)

        return self._add(path, info, buf, n, idx, bit_of, tag)

    def add_midx(self, path: str, info: Any, buf: Any, order: Sequence[int], midx: Any, *,
                 tag: object = None) -> bool:
        """A MIDX bitmap: bit *b* is object ``order[b]`` of the MIDX, in pseudo-pack order (the
        preferred pack's objects first, then each pack by id; each pack by offset)."""
        n = midx.count
        if len(order) != n:
            self.skipped.append(f"{path}: its reverse index does not list {n} objects")
            return False
        pids = midx.pack_ids()
        offs = midx.offsets()
        try:
            p_in_order = array("I", map(pids.__getitem__, order))
            o_in_order = array("Q", map(offs.__getitem__, order))
        except (IndexError, OverflowError):
            self.skipped.append(f"{path}: its reverse index names positions beyond the MIDX")
            return False
        segments: dict[int, tuple[int, int]] = {}
        if n:
            preferred = p_in_order[0]
            a = 0
            for pid in [preferred, *sorted(set(pids) - {preferred})]:
                k = p_in_order.count(pid)
                b = a + k
                seg = o_in_order[a:b]
                if p_in_order[a:b] != array("I", [pid]) * k or not all(map(lt, seg, islice(seg, 1, None))):
                    self.skipped.append(f"{path}: the MIDX reverse index is not in pseudo-pack order")
                    return False
                segments[pid] = (a, b)
                a = b
            if a != n:
                self.skipped.append(f"{path}: the MIDX reverse index is not a permutation")
                return False

        def bit_of(i: int) -> int:
            a, b = segments[pids[i]]
            return bisect_left(o_in_order, offs[i], a, b)

        return self._add(path, info, buf, n, midx, bit_of, tag)

    def keep(self, usable: Callable[[object], bool]) -> bool:
        """Drop the bitmaps whose tag is not *usable* (e.g. a pack under it failed its hash); True when
        every one was kept (nothing changed)."""
        kept = [p for p in self._parts if usable(p.tag)]
        if len(kept) != len(self._parts):
            self._parts = kept
            self._memo.clear()
            return False
        return True

    def _add(self, path: str, info: Any, buf: Any, n: int, index: Any, bit_of: Callable[[int], int],
             tag: object) -> bool:
        try:
            union, types = self._decode(info, buf, n)
        except (ValueError, IndexError, struct.error, OverflowError) as e:  # verified files never get here
            self.skipped.append(f"{path}: cannot be decoded ({e})")
            return False
        if len(types) != 4:
            self.skipped.append(f"{path}: no type bitmaps")
            return False
        self._parts.append(_CoverPart(union, types, index, bit_of, tag))
        return True

    def prime(self, oids: Iterable[bytes]) -> None:
        """Look many ids up at once (the roots): :func:`~snapcheck.checks.objectstore.find_many`."""
        todo = {o for o in oids if o not in self._memo}
        for part in self._parts:
            if not todo:
                break
            for o, i in find_many(part.index, todo).items():
                t = part.type_at(i)
                if t:
                    self._memo[o] = t
                    todo.discard(o)
        for o in todo:
            self._memo[o] = 0

    def type_of(self, oid: bytes) -> int:
        t = self._memo.get(oid)
        if t is not None:
            return t
        t = 0
        for part in self._parts:
            i = part.index.find(oid)
            if i is not None:
                t = part.type_at(i)
                if t:
                    break
        if len(self._memo) < 1 << 20:
            self._memo[oid] = t
        return t


class CommitGraphLinks:
    """``links(oid)``: a commit's (tree, parents) from verified commit-graph layers (base first), or
    None when no layer lists it."""

    def __init__(self, layers: Sequence[Any]) -> None:
        self.layers = list(layers)
        self.starts: list[int] = []
        total = 0
        for g in self.layers:
            self.starts.append(total)
            total += g.count
        self.total = total

    def _name(self, pos: int) -> bytes:
        k = len(self.starts) - 1
        while k > 0 and self.starts[k] > pos:
            k -= 1
        return bytes(self.layers[k].name(pos - self.starts[k]))

    def links(self, oid: bytes) -> tuple[bytes, list[bytes]] | None:
        for g in self.layers:
            i = g.find(oid)
            if i is not None:
                try:
                    tree, parents, _gen, _time = g.commit(i)
                    return bytes(tree), [self._name(p) for p in parents]
                except (IndexError, struct.error):  # verified graphs never get here
                    return None
        return None


class _Walk:
    def __init__(self, store: ObjectStore, algo: HashAlgo, suspects: dict[int, set[bytes]],
                 already: set[bytes], cover: BitmapCoverage | None = None,
                 graph: CommitGraphLinks | None = None) -> None:
        self.store = store
        self.algo = algo
        self.cover = cover if cover else None
        self.graph = graph
        self.findings: list[Finding] = []
        self.stats = GraphStats(strategy="walk")
        self.seen: dict[bytes, int] = {}  # commits, trees, tags (and blobs named by tags) visited: their type
        self.blobs: set[bytes] = set()
        self.reported: set[bytes] = set()
        self.already = already  # damage a verifying pass has reported: counted, not reported again
        self.suspect_blobs = suspects.get(OBJ_BLOB, set())

    def _where(self, oid: bytes | None) -> str:
        if oid is None:
            return "objects"
        return self.store.path_of(oid) or "objects"

    def missing(self, oid: bytes, want: int, ref_type: int, ref: bytes) -> None:
        if oid in self.reported:
            return
        self.reported.add(oid)
        self.stats.missing += 1
        w, rt = type_name(want), type_name(ref_type)
        self.findings.append(finding(
            "objectMissing", self._where(ref),
            f"missing {w} {oid.hex()}, named by {rt} {ref.hex()} (git fsck: broken link from {rt:>7} "
            f"{ref.hex()} to {w:>7} {oid.hex()}; missing {w} {oid.hex()})"))

    def wrong_type(self, oid: bytes, want: int, got: int, ref_type: int, ref: bytes) -> None:
        if oid in self.reported:
            return
        self.reported.add(oid)
        rt = type_name(ref_type)
        self.findings.append(finding(
            "brokenLink", self._where(ref),
            f"{rt} {ref.hex()} names {oid.hex()} as a {type_name(want)}, but it is a {type_name(got)} "
            f"(git fsck: error in {rt} {ref.hex()}: broken links / wrong object type in link)"))

    def corrupt(self, e: ObjectError, oid: bytes) -> None:
        self.stats.corrupt += 1
        if oid not in self.already:
            self.findings.append(e.finding())

    def run(self, starts: list[tuple[bytes, int]]) -> None:
        store, algo, seen = self.store, self.algo, self.seen
        st = self.stats
        covered = self.cover.type_of if self.cover is not None else None
        graph = self.graph
        # (oid, expected type or 0 for any, referrer type, referrer id)
        stack: list[tuple[bytes, int, int, bytes | None]] = [(oid, 0, 0, None) for oid, _t in reversed(starts)]
        while stack:
            oid, want, rtype, ref = stack.pop()
            known = seen.get(oid)
            if known is not None:
                if want and known and known != want and ref is not None:
                    self.wrong_type(oid, want, known, rtype, ref)
                continue
            if covered is not None:
                ct = covered(oid)
                if ct:  # a verified bitmap covers it: present, and so is everything it reaches
                    seen[oid] = ct
                    st.covered += 1
                    if want and ct != want and ref is not None:
                        self.wrong_type(oid, want, ct, rtype, ref)
                    continue
            try:
                t = store.type_of(oid)
            except ObjectError as e:
                seen[oid] = 0
                if oid not in self.reported:
                    self.reported.add(oid)
                    self.corrupt(e, oid)
                continue
            if t is None:
                seen[oid] = 0
                if ref is not None:
                    self.missing(oid, want, rtype, ref)
                continue
            seen[oid] = t
            if want and t != want and ref is not None:
                self.wrong_type(oid, want, t, rtype, ref)
            if t == OBJ_BLOB:  # named by a tag or a root
                if oid not in self.blobs:
                    self.blobs.add(oid)
                    st.blobs += 1
                continue
            if t == OBJ_COMMIT and graph is not None:
                gl = graph.links(oid)
                if gl is not None:  # a verified commit-graph gives its tree and parents
                    st.commits += 1
                    for p in reversed(gl[1]):
                        stack.append((p, OBJ_COMMIT, OBJ_COMMIT, oid))
                    stack.append((gl[0], OBJ_TREE, OBJ_COMMIT, oid))
                    continue
            try:
                typ, data = store.read(oid)
            except ObjectError as e:
                self.reported.add(oid)
                self.corrupt(e, oid)
                continue
            if typ == OBJ_COMMIT:
                st.commits += 1
                c = commit_links(data, algo)
                if c is None:
                    self._unparseable(oid, typ, "bogus commit object (no valid tree line or bad parents)")
                    continue
                for p in reversed(c[1]):
                    stack.append((p, OBJ_COMMIT, OBJ_COMMIT, oid))
                stack.append((c[0], OBJ_TREE, OBJ_COMMIT, oid))
            elif typ == OBJ_TREE:
                st.trees += 1
                ents = tree_entries(data, algo)
                if ents is None:
                    self._unparseable(oid, typ, "too-short tree object or malformed entry")
                    continue
                for s in ents.subtrees:
                    if s not in seen:
                        stack.append((s, OBJ_TREE, OBJ_TREE, oid))
                    elif seen[s] != OBJ_TREE and seen[s]:
                        self.wrong_type(s, OBJ_TREE, seen[s], OBJ_TREE, oid)
                self._blobs(ents.blobs, oid)
            elif typ == OBJ_TAG:
                st.tags += 1
                g = tag_target(data, algo)
                if g is None:
                    self._unparseable(oid, typ, "tag is not 'object <id>', 'type <type>', 'tag <name>'")
                    continue
                stack.append((g[0], g[1], OBJ_TAG, oid))

    def _blobs(self, blobs: list[bytes], tree: bytes) -> None:
        new = set(blobs)
        new.difference_update(self.blobs)
        if not new:
            return
        self.blobs.update(new)
        self.stats.blobs += len(new)
        store = self.store
        for b in new:
            if b in self.suspect_blobs or not store.contains(b):
                try:
                    t = store.type_of(b)
                except ObjectError as e:
                    if b not in self.reported:
                        self.reported.add(b)
                        self.corrupt(e, b)
                    continue
                if t is None:
                    self.missing(b, OBJ_BLOB, OBJ_TREE, tree)
                elif t != OBJ_BLOB:
                    self.wrong_type(b, OBJ_BLOB, t, OBJ_TREE, tree)

    def _unparseable(self, oid: bytes, typ: int, why: str) -> None:
        self.stats.corrupt += 1
        tn = type_name(typ)
        where = self._where(oid)
        self.findings.append(finding(
            "objectCorrupt", where,
            f"{where}: reachable {tn} {oid.hex()} cannot be parsed: {why} (git fsck: error in {tn} "
            f"{oid.hex()}: broken links)"))


def check_connectivity(store: ObjectStore, roots: list[tuple[str, bytes]], algo: HashAlgo, *,
                       path_for_root: Callable[[str], str] | None = None,
                       links: LinkCollector | None = None,
                       strategy: str = "auto",
                       cover: BitmapCoverage | None = None,
                       graph: CommitGraphLinks | None = None) -> tuple[GraphStats, list[Finding]]:
    """Check that everything reachable from *roots* (``(ref name, oid)``) exists and parses.

    *links*: a collector already fed by whole-pack passes (``verify_pack_objects(…, links=)``,
    ``verify_loose_objects(…, links=)``); packs and loose objects it has not seen are scanned here.
    It is consumed.  *strategy*: ``auto`` (scan, and walk only if the scan saw anything amiss),
    ``scan`` (never walk: anything amiss anywhere is reported as unproven) or ``walk`` (always walk).
    *cover*: verified bitmaps (``standard`` only, see the module docstring); with ``auto`` the scan
    is skipped and the walk stops at covered objects.  *graph*: verified commit-graph layers the
    walk takes commit links from.
    """
    if strategy not in ("auto", "scan", "walk"):
        raise ValueError(f"unknown strategy {strategy!r}")
    where = path_for_root or _default_path
    findings: list[Finding] = []
    starts: list[tuple[bytes, int]] = []
    if links is None:
        links = LinkCollector(algo)
    if cover is not None and not cover:
        cover = None
    if cover is not None and strategy == "auto":
        strategy = "walk"
    if strategy != "walk":
        _collect(store, links)
    seen_roots: set[bytes] = set()
    if cover is not None:
        cover.prime(oid for _name, oid in roots)
    for name, oid in roots:
        try:
            t = (cover.type_of(oid) if cover is not None else 0) or store.type_of(oid)
        except ObjectError as e:
            findings.append(e.finding())
            continue
        if t is None:
            findings.append(finding(
                "refTargetMissing", where(name),
                f"{name}: points to {oid.hex()}, which is in no pack and no loose object "
                f"(git fsck: error: {name}: invalid sha1 pointer {oid.hex()})"))
            continue
        if oid not in seen_roots:
            seen_roots.add(oid)
            starts.append((oid, t))
    if strategy != "walk":
        leftovers = _unmatched(store, links)
        clean = not leftovers and not links.unparseable and not links.unreadable
        if clean or strategy == "scan":
            st = GraphStats(strategy="scan", roots=len(starts))
            totals = dict.fromkeys((OBJ_COMMIT, OBJ_TREE, OBJ_BLOB, OBJ_TAG), 0)
            for types in links.pack_types.values():
                for t in totals:
                    totals[t] += types.count(t)
            for t in links.loose_types.values():
                totals[t] += 1
            st.commits, st.trees, st.blobs, st.tags = (totals[OBJ_COMMIT], totals[OBJ_TREE],
                                                       totals[OBJ_BLOB], totals[OBJ_TAG])
            st.not_found = {type_name(t): len(s) for t, s in leftovers.items()}
            if not clean:
                st.missing = sum(len(s) for s in leftovers.values())
                st.corrupt = len(links.unparseable) + links.unreadable
                findings.extend(_unproven(leftovers, links))
            return st, findings
    else:
        leftovers = {}
    walk = _Walk(store, algo, leftovers, links.reported, cover=cover, graph=graph)
    if cover is not None:
        walk.stats.strategy = "bitmap"
    walk.run(starts)
    walk.stats.roots = len(starts)
    findings.extend(walk.findings)
    return walk.stats, findings


def _unproven(leftovers: dict[int, set[bytes]], links: LinkCollector) -> list[Finding]:
    """``strategy='scan'``: what the scan could not prove, without deciding reachability."""
    out: list[Finding] = []
    for t, s in sorted(leftovers.items()):
        some = ", ".join(sorted(o.hex() for o in s)[:5])
        out.append(finding(
            "objectMissing", "objects",
            f"{len(s)} {type_name(t)}(s) named by objects of the repository are missing or of another type "
            f"(e.g. {some}); reachability not decided (scan only)"))
    for oid, typ, path in links.unparseable[:20]:
        out.append(finding("objectCorrupt", path,
                           f"{path}: {type_name(typ)} {oid.hex()} cannot be parsed (reachability not decided)"))
    return out


__all__ = ["BitmapCoverage", "CommitGraphLinks", "GraphStats", "check_connectivity"]
