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
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import compress

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
from .objectstore import LinkCollector, ObjectError, ObjectStore, scan_pack_links

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
        obj, _fs = check_loose_object(raw, path, algo, verify_hash=True)
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
    split = re.compile(rb".{%d}" % rawsz, re.S).findall
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
                rem[t].difference_update(compress(chunk, map(t.__eq__, ts)))
                if not rem[t]:
                    del rem[t]
            if not rem:
                break
    for oid, t in links.loose_types.items():
        s = rem.get(t)
        if s is not None:
            s.discard(oid)
    return {t: s for t, s in rem.items() if s}


class _Walk:
    def __init__(self, store: ObjectStore, algo: HashAlgo, suspects: dict[int, set[bytes]],
                 already: set[bytes]) -> None:
        self.store = store
        self.algo = algo
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
        # (oid, expected type or 0 for any, referrer type, referrer id)
        stack: list[tuple[bytes, int, int, bytes | None]] = [(oid, 0, 0, None) for oid, _t in reversed(starts)]
        while stack:
            oid, want, rtype, ref = stack.pop()
            known = seen.get(oid)
            if known is not None:
                if want and known and known != want and ref is not None:
                    self.wrong_type(oid, want, known, rtype, ref)
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
                       strategy: str = "auto") -> tuple[GraphStats, list[Finding]]:
    """Check that everything reachable from *roots* (``(ref name, oid)``) exists and parses.

    *links*: a collector already fed by whole-pack passes (``verify_pack_objects(…, links=)``,
    ``verify_loose_objects(…, links=)``); packs and loose objects it has not seen are scanned here.
    It is consumed.  *strategy*: ``auto`` (scan, and walk only if the scan saw anything amiss),
    ``scan`` (never walk: anything amiss anywhere is reported as unproven) or ``walk`` (always walk).
    """
    if strategy not in ("auto", "scan", "walk"):
        raise ValueError(f"unknown strategy {strategy!r}")
    where = path_for_root or _default_path
    findings: list[Finding] = []
    starts: list[tuple[bytes, int]] = []
    if links is None:
        links = LinkCollector(algo)
    if strategy != "walk":
        _collect(store, links)
    seen_roots: set[bytes] = set()
    for name, oid in roots:
        try:
            t = store.type_of(oid)
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
    walk = _Walk(store, algo, leftovers, links.reported)
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


__all__ = ["GraphStats", "check_connectivity"]
