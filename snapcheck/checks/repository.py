"""Cross-file checks: from what the collector gathered to a repository model.

Rules, in the order they run (each cites its source of truth):

1. The directory is a git directory: ``HEAD``, ``objects/`` and ``refs/`` exist (git's setup.c
   ``is_git_directory``); ``config`` parses (config.c) and names a known object format and ref
   storage (``extensions.objectFormat``, ``extensions.refStorage``).
2. Refs: ``packed-refs`` strictly (refs/packed-backend.c), every loose ref and ``HEAD``
   (refs/files-backend.c), or the reftable stack (technical/reftable.adoc); loose refs override
   packed ones; symbolic refs resolve.
3. Packs (gitformat-pack.adoc, packfile.c): every ``.pack`` has its ``.idx`` and the other way round;
   the idx parses, its count and pack checksum match the pack; ``.rev``, ``.mtimes`` and ``.bitmap``
   belong to their pack.
4. ``multi-pack-index`` (+ bitmap): every listed pack present; at ``standard``+ every object offset
   equals its idx's (``git multi-pack-index verify``).  Commit-graph file or split chain
   (``git commit-graph verify``): chain complete, layers linked, checksums.
5. Loose objects: complete zlib stream, header, size, and (``standard``+) hash equals the path.
6. Every ref target exists; ``standard``: connectivity from every ref; ``full``: every packed object
   inflated, hashed and CRC-checked, object format checks with git's severities.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ..gitformats import bitmap as bitmap_fmt
from ..gitformats import commit_graph as cg_fmt
from ..gitformats.chunks import be32_array
from ..gitformats.common import SHA1, SHA256, HashAlgo, algo_for_hexlen
from ..gitformats.config import GitConfig, parse_config
from ..gitformats.idx import PackIndex, check_idx_against_pack, parse_idx
from ..gitformats.loose_refs import LooseRef, parse_head, parse_loose_ref
from ..gitformats.packed_refs import parse_packed_refs
from ..gitformats.rev import parse_rev
from ..options import VerifyOptions
from ..report import Finding, Level, Severity, finding, register
from .collector import RE_GRAPH, RE_MIDX_AUX, Collected

if TYPE_CHECKING:
    from ..gitformats import midx as midx_fmt

# Parsers of files most mirrors do not have (multi-pack-index, reftable, .mtimes, loose objects) are
# imported by the step that meets such a file.

register(
    "repository",
    ("notAGitDirectory", Severity.ERROR,
     "The snapshot lacks what makes a directory a git repository (HEAD, objects/, refs/).",
     "git: `fatal: not a git repository (or any of the parent directories): .git`."),
    ("configMissing", Severity.ERROR,
     "There is no `config` file.",
     "git runs with defaults, but a mirror without its remote configuration cannot fetch; a snapshot without it is incomplete."),
    ("configUnknownObjectFormat", Severity.ERROR,
     "extensions.objectFormat names a hash git does not know.",
     "git: `fatal: unknown repository extension found: objectformat` / `invalid value for 'extensions.objectformat'`."),
    ("configUnknownExtension", Severity.ERROR,
     "repositoryformatversion 1 with an extension git does not know.",
     "git: `fatal: unknown repository extension found: <name>`."),
    ("partialClone", Severity.WARNING,
     "extensions.partialClone: objects may be missing on purpose (a promisor remote); the mirror is not complete.",
     "git fetches missing objects from the promisor remote on demand."),
    ("objectFormatMismatch", Severity.ERROR,
     "A file's hash length disagrees with the repository's object format.",
     "git cannot use the file: `fatal: … hash algorithm mismatch` or the file is ignored."),
    ("symrefTargetMissing", Severity.WARNING,
     "A symbolic ref points at a ref that does not exist.",
     "git treats it as dangling (for-each-ref skips it; `git fsck` reports it)."),
    ("symrefLoop", Severity.ERROR,
     "Symbolic refs form a loop or a chain too deep to follow.",
     "git: `warning: ignoring dangling symref` / `fatal: ref … is a symbolic ref loop`."),
    ("packWithoutIdx", Severity.WARNING,
     "A `.pack` has no `.idx`: its objects are invisible to git (an unfinished fetch or a cut snapshot).",
     "git ignores the pack (count-objects: `garbage found: … no corresponding .idx`)."),
    ("idxWithoutPack", Severity.WARNING,
     "An `.idx` has no `.pack`: the objects it lists cannot be read.",
     "git ignores the index (count-objects: `no corresponding .pack`)."),
    ("packSideFileOrphan", Severity.WARNING,
     "A `.rev`, `.mtimes` or `.bitmap` has no pack of the same name.",
     "git ignores it (count-objects: garbage)."),
    ("midxBitmapOrphan", Severity.WARNING,
     "A multi-pack-index bitmap or reverse index whose name does not match the multi-pack-index checksum "
     "(a stale file from an earlier multi-pack-index, or the multi-pack-index itself is missing or damaged).",
     "git ignores a bitmap that does not belong to the current multi-pack-index."),
    ("refTargetMissing", Severity.ERROR,
     "A ref (or a peeled tag recorded in packed-refs) names an object that is not in the repository.",
     "git fsck: `error: refs/…: invalid sha1 pointer <oid>`; commands using the ref fail with `fatal: bad object`."),
    ("peeledMismatch", Severity.ERROR,
     "packed-refs records a peeled value (`^<oid>`) that is not what the tag peels to.",
     "git trusts the recorded value: `git show-ref --dereference` and fetches would advertise a wrong object."),
    ("reftableMissingTable", Severity.ERROR,
     "reftable/tables.list names a table file that is not in the snapshot.",
     "git cannot read the ref stack: every ref command fails."),
    ("packedRefsMissingPeel", Severity.ERROR,
     "packed-refs says its tags are peeled (trait `fully-peeled`, or `peeled` for refs/tags/), but a ref to an "
     "annotated tag has no `^<oid>` line: the file was cut between a tag's record and its peel line, a cut no "
     "syntax check can see.",
     "git trusts the trait and reports the tag as not peelable: `git show-ref -d` and fetches of `^{}` go wrong."),
    ("refNotCommit", Severity.ERROR,
     "A branch (refs/heads/*) points at an object that is not a commit.",
     "git fsck: `error: refs/heads/…: not a commit`."),
)


class VerifiedBitmap:
    """A reachability bitmap whose own checksum, header target and target (pack trailer and idx, or the
    MIDX and every pack it names) all verified: the file git wrote for these objects.  ``order[b]`` is
    the object at bit *b*: an idx position of ``pack``, or a MIDX position (``midx``)."""

    __slots__ = ("buf", "info", "midx", "order", "pack", "packs", "path")

    def __init__(self, path: str, info: bitmap_fmt.BitmapInfo, buf: Any, order: Any, pack: str | None = None,
                 midx: midx_fmt.MultiPackIndex | None = None, packs: tuple[str, ...] = ()) -> None:
        self.path = path
        self.info = info
        self.buf = buf
        self.order = order
        self.pack = pack
        self.midx = midx
        # the packs under it, whose whole-file hash must verify (a hash still running in the background
        # is awaited by the object phase before the bitmap is used)
        self.packs = packs


_PACK_NAME = re.compile(r"pack-([0-9a-f]{40}|[0-9a-f]{64})\.(?:idx|pack)")


def _clean(findings: list[Finding]) -> bool:
    """No finding at all: a structure used as evidence must have passed every check."""
    return not findings


class RepoModel:
    """What the repository checks learned: object format, config, refs, indexes, verified structures."""

    def __init__(self) -> None:
        self.algo: HashAlgo = SHA1
        self.config: GitConfig | None = None
        self.bare: bool | None = None
        self.ref_storage = "files"
        self.head: LooseRef | None = None
        self.head_target: str | None = None  # the branch HEAD names, when symbolic
        self.head_oid: bytes | None = None
        self.refs: dict[str, bytes] = {}  # every ref resolved to an oid
        self.peeled: dict[str, bytes] = {}  # from packed-refs ^ lines
        self.fully_peeled: set[str] = set()  # packed refs whose peel state the file vouches for
        self.indexes: dict[str, PackIndex] = {}  # pack hex name -> idx (only packs that have both)
        self.loose_oids: set[bytes] = set()
        self.commit_graph_present = False
        self.not_checked: list[str] = []
        # Verified structures the object phase may lean on (standard+ only; see checks/graph.py): a pack's
        # .rev table when it checked clean, bitmaps whose checksum, target and pack all verified, and the
        # commit-graph layers (base first) when every layer and the chain verified.
        self.pack_orders: dict[str, Any] = {}  # pack hex name -> idx positions in pack order
        self.bitmaps: list[VerifiedBitmap] = []
        self.commit_graph: list[cg_fmt.CommitGraph] = []
        self.object_files = 0  # .pack files and loose objects present, whether or not they could be parsed

    def object_count(self) -> int:
        return sum(i.count for i in self.indexes.values()) + len(self.loose_oids)


def _dir_exists(c: Collected, d: str) -> bool:
    if d in c.dirs:
        return True
    prefix = d + "/"
    return any(f.path.startswith(prefix) for f in c.files) or any(x.startswith(prefix) for x in c.dirs)


class RepositoryChecks:
    def __init__(self, collected: Collected, options: VerifyOptions) -> None:
        self.c = collected
        self.options = options
        self.level = options.level
        self.model = RepoModel()
        self.findings: list[Finding] = []
        self._sound_packs: set[str] = set()  # hex names of packs verified whole (see _packs)

    def run(self) -> RepoModel:
        self._structure()
        self._config()
        self._refs()
        self._packs()
        self._midx()
        self._commit_graph()
        self._loose_objects()
        return self.model

    # 1 -------------------------------------------------------------------------------------------
    def _structure(self) -> None:
        missing = [n for n in ("HEAD",) if n not in self.c.texts]
        missing += [d + "/" for d in ("objects", "refs") if not _dir_exists(self.c, d)]
        if missing:
            self.findings.append(finding(
                "notAGitDirectory", missing[0].rstrip("/"),
                f"not a git repository: {', '.join(missing)} missing "
                "(git: fatal: not a git repository (or any of the parent directories): .git)"))

    def _config(self) -> None:
        data = self.c.texts.get("config")
        m = self.model
        if data is None:
            self.findings.append(finding("configMissing", "config", "config: file missing; the mirror's remote settings are lost"))
            self._infer_algo_from_files()
            return
        cfg, fs = parse_config(data, "config")
        self.findings.extend(fs)
        m.config = cfg
        m.bare = cfg.get_bool("core", "bare")
        version = cfg.get("core", "repositoryformatversion")
        fmt = (cfg.get("extensions", "objectformat") or "sha1").lower()
        if fmt == "sha256":
            m.algo = SHA256
        elif fmt == "sha1":
            m.algo = SHA1
        else:
            self.findings.append(finding("configUnknownObjectFormat", "config",
                                         f"config: extensions.objectFormat = {fmt!r} is not a hash git knows "
                                         "(git: fatal: invalid value for 'extensions.objectformat')"))
            self._infer_algo_from_files()
        m.ref_storage = (cfg.get("extensions", "refstorage") or "files").lower()
        if version is not None and version.strip() == "1":
            known = {"noop", "noop-v1", "preciousobjects", "partialclone", "worktreeconfig", "objectformat",
                     "compatobjectformat", "refstorage", "relativeworktrees"}
            for section, _sub, key, _value in cfg.entries:
                if section == "extensions" and key not in known:
                    self.findings.append(finding("configUnknownExtension", "config",
                                                 f"config: unknown extension extensions.{key} "
                                                 f"(git: fatal: unknown repository extension found: {key})"))
        if cfg.get("extensions", "partialclone") is not None:
            self.findings.append(finding("partialClone", "config",
                                         "config: extensions.partialClone is set: objects may be missing on purpose"))

    def _infer_algo_from_files(self) -> None:
        for hexname in self.c.packs:
            a = algo_for_hexlen(len(hexname))
            if a is not None:
                self.model.algo = a
                return
        for hexoid in self.c.loose:
            a = algo_for_hexlen(len(hexoid))
            if a is not None:
                self.model.algo = a
                return

    # 2 -------------------------------------------------------------------------------------------
    def _refs(self) -> None:
        m = self.model
        algo = m.algo
        head_data = self.c.texts.get("HEAD")
        if head_data is not None and not (m.ref_storage == "reftable" and head_data.startswith(b"ref: refs/heads/.invalid")):
            # (with reftable, the HEAD file is a placeholder that keeps old gits away; HEAD lives in the tables)
            m.head, fs = parse_head(head_data, algo, "HEAD")
            self.findings.extend(fs)
        symrefs: dict[str, str] = {}
        if m.ref_storage == "reftable":
            self._reftable_refs(symrefs)
        elif m.ref_storage == "files":
            pr_data = self.c.texts.get("packed-refs")
            if pr_data is not None:
                packed, fs = parse_packed_refs(pr_data, algo, "packed-refs",
                                               max_line=self.options.limits.max_ref_line,
                                               max_refs=self.options.limits.max_refs)
                self.findings.extend(fs)
                fully = "fully-peeled" in packed.traits
                tags_peeled = "peeled" in packed.traits
                for r in packed.refs:
                    m.refs[r.name] = r.oid
                    if r.peeled is not None:
                        m.peeled[r.name] = r.peeled
                    if fully or (tags_peeled and r.name.startswith("refs/tags/")):
                        m.fully_peeled.add(r.name)
            for path, data in sorted(self.c.loose_refs.items()):
                ref, fs = parse_loose_ref(data, path, algo, path, max_size=self.options.limits.max_ref_line)
                self.findings.extend(fs)
                if ref is None:
                    continue
                if ref.symref is not None:
                    symrefs[ref.name] = ref.symref
                    m.refs.pop(ref.name, None)
                elif ref.oid is not None:
                    m.refs[ref.name] = ref.oid
                    m.peeled.pop(ref.name, None)  # a loose ref overrides the packed record and its peel
                    m.fully_peeled.discard(ref.name)
        # symbolic refs other than HEAD
        for name, target in symrefs.items():
            oid = self._resolve(target, symrefs)
            if oid is None:
                self.findings.append(finding("symrefTargetMissing", name,
                                             f"{name}: symbolic ref to {target}, which does not exist"))
            else:
                m.refs[name] = oid
        if m.head is not None:
            if m.head.symref is not None:
                m.head_target = m.head.symref
                m.head_oid = self._resolve(m.head.symref, symrefs)
            else:
                m.head_oid = m.head.oid

    def _resolve(self, target: str, symrefs: dict[str, str]) -> bytes | None:
        seen: set[str] = set()
        while target in symrefs:
            if target in seen or len(seen) > 5:
                self.findings.append(finding("symrefLoop", target, f"{target}: symbolic refs loop or nest too deep"))
                return None
            seen.add(target)
            target = symrefs[target]
        return self.model.refs.get(target)

    def _reftable_refs(self, symrefs: dict[str, str]) -> None:
        m = self.model
        m.not_checked.append("reftable: block contents carry no checksum in the format; ref blocks and their restart "
                             "tables are parsed, index, obj and log blocks are only located, not decoded")
        data = self.c.texts.get("reftable/tables.list")
        if data is None:
            self.findings.append(finding("notAGitDirectory", "reftable/tables.list",
                                         "reftable/tables.list missing: extensions.refStorage=reftable but no table list"))
            return
        from ..gitformats import reftable as reftable_fmt

        names, fs = reftable_fmt.parse_tables_list(data, "reftable/tables.list")
        self.findings.extend(fs)
        tables = []
        for name in names:
            path = f"reftable/{name}"
            held = self.c.held.get(path)
            if held is None:
                self.findings.append(finding("reftableMissingTable", path,
                                             f"{path}: listed in reftable/tables.list but missing "
                                             "(git: fatal: could not read reftable stack)"))
                continue
            info, fs = reftable_fmt.parse_reftable(held.buf, path, m.algo)
            self.findings.extend(fs)
            if info is not None:
                tables.append(info)
        merged = reftable_fmt.merge_reftables(tables)
        for name, (kind, value) in merged.items():
            if kind == "oid" and isinstance(value, bytes):
                m.refs[name] = value
            elif kind == "symref" and isinstance(value, str):
                if name == "HEAD":
                    m.head = LooseRef("HEAD", None, value)
                else:
                    symrefs[name] = value

    # 3 -------------------------------------------------------------------------------------------
    def _packs(self) -> None:
        m = self.model
        verify = self.level.at_least(Level.STANDARD)
        m.object_files = len(self.c.loose) + sum(1 for r in self.c.packs.values() if r.summary is not None)
        for hexname, rec in sorted(self.c.packs.items()):
            base = f"objects/pack/pack-{hexname}"
            a = algo_for_hexlen(len(hexname))
            if a is not None and a != m.algo:
                self.findings.append(finding("objectFormatMismatch", base + ".pack",
                                             f"{base}: {a.name} name in a {m.algo.name} repository"))
                continue
            has_pack = rec.summary is not None
            if rec.idx is None:
                if has_pack:
                    self.findings.append(finding("packWithoutIdx", base + ".pack",
                                                 f"{base}.pack has no .idx: git cannot use it and its objects are invisible"))
                for ext in ("rev", "mtimes", "bitmap"):
                    if getattr(rec, ext) is not None and not has_pack:
                        self.findings.append(finding("packSideFileOrphan", f"{base}.{ext}", f"{base}.{ext}: no pack of that name"))
                continue
            idx, fs = parse_idx(rec.idx.buf, m.algo, base + ".idx", verify_checksum=verify)
            self.findings.extend(fs)
            mark = len(self.findings) - len(fs)  # this pack's findings (idx, .rev, cross-check) start here
            if not has_pack:
                self.findings.append(finding("idxWithoutPack", base + ".idx",
                                             f"{base}.idx has no .pack: the objects it lists cannot be read"))
                continue
            if idx is None:
                continue
            s = rec.summary
            assert s is not None
            if rec.rev is not None:
                # first: a sound .rev proves the idx offsets distinct, sparing the cross-check a sort
                rev_fs = parse_rev(rec.rev.buf, base + ".rev", m.algo, idx, verify_checksum=verify)
                self.findings.extend(rev_fs)
                if verify and _clean(rev_fs):
                    m.pack_orders[hexname] = be32_array(rec.rev.buf, 12, idx.count)
            # distinct offsets need a sort of every offset: left to the idx checksum (standard) or the .rev;
            # quick stays a structural pass that reads no bulk data
            self.findings.extend(check_idx_against_pack(idx, base + ".idx", pack_path=base + ".pack",
                                                        pack_count=s.count, pack_trailer=s.trailer, pack_size=s.size,
                                                        check_distinct=None if verify else False))
            m.indexes[hexname] = idx
            # a pack whose trailer, idx checksum and cross-checks all verified: what git wrote, whole
            # (a trailer hash still running in the background is awaited before any use: VerifiedBitmap.packs)
            hashed = s.hash_verified or rec.pending is not None
            sound = verify and hashed and idx.checksum_verified and _clean(self.findings[mark:])
            if sound:
                self._sound_packs.add(hexname)
            if rec.mtimes is not None:
                from ..gitformats.mtimes import parse_mtimes

                self.findings.extend(parse_mtimes(rec.mtimes.buf, base + ".mtimes", m.algo, idx, verify_checksum=verify))
            if rec.bitmap is not None:
                info, fs = bitmap_fmt.parse_bitmap(rec.bitmap.buf, base + ".bitmap", m.algo,
                                                   object_count=idx.count, verify_checksum=verify)
                self.findings.extend(fs)
                if info is not None:
                    tfs = bitmap_fmt.check_bitmap_target(
                        info, base + ".bitmap", expected_checksum=idx.pack_checksum, target=base + ".pack")
                    self.findings.extend(tfs)
                    if sound and _clean(fs) and _clean(tfs) and s.trailer == info.checksum:
                        m.bitmaps.append(VerifiedBitmap(base + ".bitmap", info, rec.bitmap.buf,
                                                        m.pack_orders.get(hexname), pack=hexname, packs=(hexname,)))

    # 4 -------------------------------------------------------------------------------------------
    def _midx(self) -> None:
        m = self.model
        verify = self.level.at_least(Level.STANDARD)
        held = self.c.held.get("objects/pack/multi-pack-index")
        aux = {p: h for p, h in self.c.held.items() if RE_MIDX_AUX.match(p)}
        if held is None and not aux:
            return
        from ..gitformats import midx as midx_fmt

        midx = None
        if held is not None:
            midx, fs = midx_fmt.parse_midx(held.buf, "objects/pack/multi-pack-index", m.algo, verify_checksum=verify)
            self.findings.extend(fs)
            midx_sound = verify and _clean(fs)
            if midx is not None:
                idx_by_name = {f"pack-{h}.idx": i for h, i in m.indexes.items()}
                cfs = midx_fmt.check_midx_against_packs(midx, "objects/pack/multi-pack-index", idx_by_name, deep=verify)
                self.findings.extend(cfs)
                # every object of a sound MIDX is at its offset in a pack that verified whole
                names = [_PACK_NAME.fullmatch(n) for n in midx.pack_names]
                midx_sound = midx_sound and _clean(cfs) and all(
                    x is not None and x.group(1) in self._sound_packs for x in names)
        midx_bitmap: tuple[str, bitmap_fmt.BitmapInfo, Any] | None = None
        midx_order: Any = None
        if midx is not None and midx_sound and midx.chunks.get(midx_fmt.RIDX) is not None:
            midx_order = be32_array(held.buf if held is not None else b"", midx.chunks[midx_fmt.RIDX][0], midx.count)
        for path, h in sorted(aux.items()):
            mm = RE_MIDX_AUX.match(path)
            assert mm is not None
            if midx is None or bytes.fromhex(mm.group("hex")) != midx.checksum:
                self.findings.append(finding("midxBitmapOrphan", path,
                                             f"{path}: does not belong to the multi-pack-index present "
                                             "(its name is not the multi-pack-index checksum)"))
                continue
            if mm.group("ext") == "bitmap":
                info, fs = bitmap_fmt.parse_bitmap(h.buf, path, m.algo, object_count=midx.count, verify_checksum=verify)
                self.findings.extend(fs)
                if info is not None:
                    tfs = bitmap_fmt.check_bitmap_target(
                        info, path, expected_checksum=midx.checksum, target="objects/pack/multi-pack-index")
                    self.findings.extend(tfs)
                    if midx_sound and _clean(fs) and _clean(tfs):
                        midx_bitmap = (path, info, h.buf)
            else:
                rfs = parse_rev(h.buf, path, m.algo, None, verify_checksum=verify)
                self.findings.extend(rfs)
                if midx_order is None and midx_sound and _clean(rfs) and len(h.buf) >= 12 + 4 * midx.count:
                    midx_order = be32_array(h.buf, 12, midx.count)
        if midx is not None and midx_bitmap is not None and midx_order is not None:
            path, info, buf = midx_bitmap
            hexes = tuple(x.group(1) for x in map(_PACK_NAME.fullmatch, midx.pack_names) if x is not None)
            m.bitmaps.append(VerifiedBitmap(path, info, buf, midx_order, midx=midx, packs=hexes))

    def _commit_graph(self) -> None:
        m = self.model
        verify = self.level.at_least(Level.STANDARD)
        single = self.c.held.get("objects/info/commit-graph")
        if single is not None:
            m.commit_graph_present = True
            g1, fs = cg_fmt.parse_commit_graph(single.buf, "objects/info/commit-graph", m.algo, verify_checksum=verify)
            self.findings.extend(fs)
            if verify and g1 is not None and _clean(fs) and g1.num_base == 0:
                m.commit_graph = [g1]  # git reads this file first when it is there
        chain_path = "objects/info/commit-graphs/commit-graph-chain"
        layers = {p.rsplit("/", 1)[-1]: h for p, h in self.c.held.items() if RE_GRAPH.match(p)}
        chain_data = self.c.texts.get(chain_path)
        if chain_data is None and not layers:
            return
        m.commit_graph_present = True
        graphs: dict[str, cg_fmt.CommitGraph | None] = {}
        mark = len(self.findings)
        for name, h in sorted(layers.items()):
            g, fs = cg_fmt.parse_commit_graph(h.buf, f"objects/info/commit-graphs/{name}", m.algo, verify_checksum=verify)
            self.findings.extend(fs)
            graphs[name] = g
        if chain_data is not None:
            chain, fs = cg_fmt.parse_commit_graph_chain(chain_data, chain_path, m.algo)
            self.findings.extend(fs)
            self.findings.extend(cg_fmt.check_commit_graph_chain(chain, graphs, chain_path))
            if verify and not m.commit_graph and chain and _clean(self.findings[mark:]):
                listed = [graphs.get(f"graph-{c.hex()}.graph") for c in chain]
                if all(g is not None for g in listed):
                    m.commit_graph = [g for g in listed if g is not None]

    # 5 -------------------------------------------------------------------------------------------
    def _loose_objects(self) -> None:
        m = self.model
        verify = self.level.at_least(Level.STANDARD)
        if not self.c.loose:
            return
        from ..gitformats.loose_object import check_loose_object
        from .blobs import pages_releaser

        for hexoid, rec in sorted(self.c.loose.items()):
            if len(hexoid) != m.algo.hexsz:
                self.findings.append(finding("objectFormatMismatch", rec.path,
                                             f"{rec.path}: {len(hexoid)}-hex object name in a {m.algo.name} repository"))
                continue
            buf = rec.held.buf
            obj, fs = check_loose_object(buf, rec.path, m.algo, verify_hash=verify, keep_content=False,
                                         after_window=pages_releaser(buf))
            self.findings.extend(fs)
            if obj is not None:
                m.loose_oids.add(bytes.fromhex(hexoid))
