"""The object phase: ref targets, connectivity (``standard``), every object's content (``full``).

``quick`` reads no object: every ref target (and recorded peel) must be listed in a pack index or be
a loose object.  ``standard`` walks from every ref like ``git fsck --connectivity-only``; verified
reachability bitmaps stand for the closure of what they cover and verified commit-graphs give
commit links (:mod:`snapcheck.checks.graph` says what that trusts).  ``full`` first verifies every
packed object (inflate, hash, CRC32, format checks) like ``git fsck --full`` and never uses bitmaps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..options import VerifyOptions
from ..report import Finding, Level, finding
from .collector import Collected
from .repository import RepoModel

if TYPE_CHECKING:
    from .graph import BitmapCoverage
    from .objectstore import ObjectStore, PackSource

# ``quick`` needs only the pack indexes: the object store, the graph and the object parsers are imported
# by the ``standard``/``full`` path.


@dataclass
class ObjectPhase:
    """What the object phase found, how many objects it walked, and the type of HEAD's object."""

    findings: list[Finding]
    objects_walked: int
    head_type: int | None


def _roots(model: RepoModel) -> list[tuple[str, bytes]]:
    roots = [(name, oid) for name, oid in sorted(model.refs.items())]
    roots += [(f"{name}^{{}}", oid) for name, oid in sorted(model.peeled.items())]
    if model.head is not None and model.head.oid is not None:
        roots.append(("HEAD", model.head.oid))
    return roots


class _Types:
    """Object types for the ref checks: from a verified bitmap when it covers the object, else from the
    pack entry header or the loose header (nothing inflated)."""

    def __init__(self, store: ObjectStore, cover: BitmapCoverage | None) -> None:
        self.store = store
        self.cover = cover if cover else None

    def __call__(self, oid: bytes) -> int | None:
        """The type of *oid*; None when absent; raises ObjectError when unreadable."""
        if self.cover is not None:
            t = self.cover.type_of(oid)
            if t:
                return t
        return self.store.type_of(oid)


def _peel(store: ObjectStore, oid: bytes) -> tuple[int, bytes] | None:
    """(type, oid) of what *oid* peels to (following tags); None when unreadable.  Only the tags are
    read: what they peel to is typed from its header (a tag of a large blob does not load the blob)."""
    from ..gitformats.objects import tag_target

    seen = 0
    t = store.type_of(oid)
    while t == 4 and seen < 64:
        _t, data = store.read(oid)
        parsed = tag_target(data, store.algo)
        if parsed is None or not store.contains(parsed[0]):
            return None
        oid = parsed[0]
        t = store.type_of(oid)
        seen += 1
    return None if t is None else (t, oid)


def _check_peels(store: ObjectStore, model: RepoModel, type_of: _Types) -> list[Finding]:
    from .objectstore import ObjectError

    out: list[Finding] = []
    for name, oid in sorted(model.refs.items()):
        recorded = model.peeled.get(name)
        if recorded is None and name not in model.fully_peeled:
            continue
        try:
            t = type_of(oid)
            if t is None:
                continue  # reported by the walk
            if t != 4:
                if recorded is not None:
                    out.append(finding("peeledMismatch", "packed-refs",
                                       f"packed-refs: {name} is not a tag but has a peel line ^{recorded.hex()}"))
                continue
            peeled = _peel(store, oid)
        except ObjectError:
            continue  # reported by the walk
        if peeled is None:
            continue
        if recorded is None:
            out.append(finding("packedRefsMissingPeel", "packed-refs",
                               f"packed-refs: {name} is an annotated tag but has no ^ peel line although the header "
                               "promises one: the file was probably cut between the tag's line and its peel line"))
        elif recorded != peeled[1]:
            out.append(finding("peeledMismatch", "packed-refs",
                               f"packed-refs: {name} records peel ^{recorded.hex()} but the tag peels to {peeled[1].hex()}"))
    return out


def check_objects(collected: Collected, model: RepoModel, options: VerifyOptions) -> ObjectPhase:
    findings: list[Finding] = []
    if not options.level.at_least(Level.STANDARD):
        roots = _roots(model)
        listed = set(model.loose_oids)
        for idx in model.indexes.values():
            listed.update(idx.find_many(oid for _n, oid in roots if oid not in listed))
        for name, oid in roots:
            if oid not in listed:
                findings.append(finding("refTargetMissing", name.removesuffix("^{}"),
                                        f"{name}: points to {oid.hex()}, which is in no pack index and no loose object "
                                        f"(git fsck: error: {name}: invalid sha1 pointer {oid.hex()})"))
        return ObjectPhase(findings, 0, None)

    from .objectstore import ObjectStore, PackSource

    packs: list[PackSource] = []
    for hexname, idx in sorted(model.indexes.items()):
        rec = collected.packs[hexname]
        if rec.pack is None:
            continue
        order = model.pack_orders.get(hexname)  # only .rev tables that verified
        packs.append(PackSource(f"objects/pack/pack-{hexname}.pack", rec.pack.buf, idx,
                                order=order, order_checked=order is not None))
    # the held buffer itself (a mapped file or a spooled member): a loose object is inflated a window at
    # a time, never copied whole
    loose = {bytes.fromhex(h): (r.path, (lambda r=r: r.held.buf)) for h, r in collected.loose.items()
             if bytes.fromhex(h) in model.loose_oids}
    store = ObjectStore(model.algo, packs, loose)
    try:
        return _standard_and_full(store, packs, model, options, findings, collected)
    finally:
        store.close()
        # packs hashed in the background: their findings (a bad trailer) belong to the report whatever
        # happened above (normally collected already, below)
        findings.extend(collected.finish_hashing())


def _coverage(model: RepoModel) -> BitmapCoverage:
    """The verified bitmaps of the repository as walk stops (``standard`` only).  Each part is tagged
    with its :class:`~snapcheck.checks.repository.VerifiedBitmap` (see :func:`_whole`)."""
    from .graph import BitmapCoverage

    cover = BitmapCoverage()
    for vb in model.bitmaps:
        if vb.pack is not None:
            idx = model.indexes.get(vb.pack)
            if idx is not None:
                cover.add_pack(vb.path, vb.info, vb.buf, vb.order, idx, checked=vb.order is not None, tag=vb)
        elif vb.midx is not None:
            cover.add_midx(vb.path, vb.info, vb.buf, vb.order, vb.midx, tag=vb)
    return cover


def _whole(collected: Collected) -> Callable[[object], bool]:
    """Is a bitmap's every pack's whole-file hash verified?  (Asked after ``finish_hashing``.)"""

    def usable(vb: object) -> bool:
        packs = getattr(vb, "packs", ())
        for h in packs:
            rec = collected.packs.get(h)
            if rec is None or rec.summary is None or not rec.summary.hash_verified:
                return False
        return bool(packs)

    return usable


def _standard_and_full(store: ObjectStore, packs: list[PackSource], model: RepoModel, options: VerifyOptions,
                       findings: list[Finding], collected: Collected) -> ObjectPhase:
    from . import graph as graph_mod
    from .graph import CommitGraphLinks, GraphStats
    from .objectstore import LinkCollector, ObjectError, verify_loose_objects, verify_pack_objects

    links: LinkCollector | None = None
    full = options.level.at_least(Level.FULL)
    graph = CommitGraphLinks(model.commit_graph) if model.commit_graph and not full else None

    def walk(cover: BitmapCoverage | None) -> tuple[GraphStats, list[Finding], int | None]:
        """Connectivity from every root, then the ref checks (peels, HEAD's type, branches)."""
        out: list[Finding] = []
        stats, fs = graph_mod.check_connectivity(store, _roots(model), model.algo, links=links, cover=cover, graph=graph)
        out.extend(fs)
        type_of = _Types(store, cover)
        head_type: int | None = None
        if model.head_oid is not None:
            try:
                head_type = type_of(model.head_oid)
            except ObjectError:
                head_type = None  # the walk has reported the damage
        out.extend(_check_peels(store, model, type_of))
        for name, oid in sorted(model.refs.items()):
            if name.startswith("refs/heads/"):
                try:
                    t = type_of(oid)
                except ObjectError:
                    continue
                if t is not None and t != 1:
                    out.append(finding("refNotCommit", name, f"{name}: points to {oid.hex()}, which is not a commit "
                                                             f"(git fsck: error: {name}: not a commit)"))
        return stats, out, head_type

    done: tuple[GraphStats, list[Finding], int | None] | None = None
    cover: BitmapCoverage | None = None
    if full:
        # one pass per pack: inflate, hash, CRC and fsck every object; connectivity reuses its links
        links = LinkCollector(model.algo)
        for p in packs:
            _stats, fs = verify_pack_objects(p, model.algo, check_format=True, links=links,
                                             spool_dir=options.spool_dir)
            findings.extend(fs)
        _lstats, fs = verify_loose_objects(store.loose, model.algo, check_format=True, links=links)
        findings.extend(fs)
    elif model.bitmaps:
        cover = _coverage(model)  # never at full: there every object is read anyway
        # While a pack under a bitmap may still be hashing, the walk runs with the bitmaps (nothing it
        # does depends on the hash but which bitmaps may be used); a bitmap stands for its pack only once
        # the pack's whole-file hash verified: if one did not, that walk is thrown away and done again
        # without it.
        ahead = walk(cover)
        findings.extend(collected.finish_hashing())
        if cover.keep(_whole(collected)):
            done = ahead
    stats, fs, head_type = done if done is not None else walk(cover)
    findings.extend(fs)
    walked = stats.commits + stats.trees + stats.blobs + stats.tags
    return ObjectPhase(findings, walked, head_type)
