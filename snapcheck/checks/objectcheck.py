"""The object phase: ref targets, connectivity (``standard``), every object's content (``full``).

``quick`` reads no object: every ref target (and recorded peel) must be listed in a pack index or be
a loose object.  ``standard`` walks from every ref like ``git fsck --connectivity-only``.  ``full``
first verifies every packed object (inflate, hash, CRC32, format checks) like ``git fsck --full``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..gitformats.objects import tag_target
from ..options import VerifyOptions
from ..report import Finding, Level, finding
from .collector import Collected
from .graph import GraphStats, check_connectivity
from .objectstore import (
    LinkCollector,
    ObjectError,
    ObjectStore,
    PackSource,
    verify_loose_objects,
    verify_pack_objects,
)
from .repository import RepoModel


@dataclass
class ObjectPhase:
    findings: list[Finding]
    objects_walked: int
    head_type: int | None


def _roots(model: RepoModel) -> list[tuple[str, bytes]]:
    roots = [(name, oid) for name, oid in sorted(model.refs.items())]
    roots += [(f"{name}^{{}}", oid) for name, oid in sorted(model.peeled.items())]
    if model.head is not None and model.head.oid is not None:
        roots.append(("HEAD", model.head.oid))
    return roots


def _exists_quick(model: RepoModel, oid: bytes) -> bool:
    if oid in model.loose_oids:
        return True
    return any(idx.find(oid) is not None for idx in model.indexes.values())


def _peel(store: ObjectStore, oid: bytes) -> tuple[int, bytes] | None:
    """(type, oid) of what *oid* peels to (following tags); None when unreadable."""
    seen = 0
    t, data = store.read(oid)
    while t == 4 and seen < 64:
        parsed = tag_target(data, store.algo)
        if parsed is None or not store.contains(parsed[0]):
            return None
        oid = parsed[0]
        t, data = store.read(oid)
        seen += 1
    return t, oid


def _check_peels(store: ObjectStore, model: RepoModel) -> list[Finding]:
    out: list[Finding] = []
    for name, oid in sorted(model.refs.items()):
        recorded = model.peeled.get(name)
        if recorded is None and name not in model.fully_peeled:
            continue
        if not store.contains(oid):
            continue  # reported by the walk
        try:
            t, _ = store.read(oid)
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
        for name, oid in _roots(model):
            if not _exists_quick(model, oid):
                findings.append(finding("refTargetMissing", name.removesuffix("^{}"),
                                        f"{name}: points to {oid.hex()}, which is in no pack index and no loose object "
                                        f"(git fsck: error: {name}: invalid sha1 pointer {oid.hex()})"))
        return ObjectPhase(findings, 0, None)

    packs: list[PackSource] = []
    for hexname, idx in sorted(model.indexes.items()):
        rec = collected.packs[hexname]
        if rec.pack is None:
            continue
        packs.append(PackSource(f"objects/pack/pack-{hexname}.pack", rec.pack.buf, idx))
    loose = {bytes.fromhex(h): (r.path, (lambda r=r: bytes(r.held.buf))) for h, r in collected.loose.items()
             if bytes.fromhex(h) in model.loose_oids}
    store = ObjectStore(model.algo, packs, loose)
    try:
        return _standard_and_full(store, packs, model, options, findings)
    finally:
        store.close()


def _standard_and_full(store: ObjectStore, packs: list[PackSource], model: RepoModel, options: VerifyOptions,
                       findings: list[Finding]) -> ObjectPhase:
    links: LinkCollector | None = None
    if options.level.at_least(Level.FULL):
        # one pass per pack: inflate, hash, CRC and fsck every object; connectivity reuses its links
        links = LinkCollector(model.algo)
        for p in packs:
            _stats, fs = verify_pack_objects(p, model.algo, check_format=True, links=links)
            findings.extend(fs)
        _lstats, fs = verify_loose_objects(store.loose, model.algo, check_format=True, links=links)
        findings.extend(fs)
    stats: GraphStats
    stats, fs = check_connectivity(store, _roots(model), model.algo, links=links)
    findings.extend(fs)
    head_type: int | None = None
    if model.head_oid is not None and store.contains(model.head_oid):
        try:
            head_type = store.read(model.head_oid)[0]
        except ObjectError:
            head_type = None  # the walk has reported the damage
    findings.extend(_check_peels(store, model))
    for name, oid in sorted(model.refs.items()):
        if name.startswith("refs/heads/") and store.contains(oid):
            try:
                t = store.read(oid)[0]
            except ObjectError:
                continue
            if t != 1:
                findings.append(finding("refNotCommit", name, f"{name}: points to {oid.hex()}, which is not a commit "
                                                              f"(git fsck: error: {name}: not a commit)"))
    walked = stats.commits + stats.trees + stats.blobs + stats.tags
    return ObjectPhase(findings, walked, head_type)
