"""Consistent capture of a LIVE bare mirror into a private staging directory, without stopping git.

Nothing ever tars the live directory (DESIGN.md "Consistency while git writes"; cachew-snapshots.md
§2.5 and §7 #189: a tar that reads ``packed-refs`` while ``git fetch`` renames a new one over it
stores a file cut mid-line).  Instead :func:`capture_mirror` builds, next to the mirror, a staging
directory that holds one consistent state of it, and the archive writer tars that.

The facts about git's writers this rests on (git: refs/files-backend.c, refs/packed-backend.c,
pack-write.c, builtin/repack.c, midx.c, commit-graph.c):

* git replaces ``HEAD``, loose refs, ``packed-refs``, ``config``, ``shallow``, the
  ``multi-pack-index`` and ``commit-graph-chain`` by writing ``<name>.lock`` and renaming it, so a
  reader sees the old or the new file, never a mix.  It never changes a pack, an index or a loose
  object once renamed into place (a pack's name is its checksum; ``freshen`` only touches mtimes).
* a pack's ``.idx`` is renamed into place last (after ``.pack``, ``.rev``, ``.bitmap``), so a pack
  counts when its ``.idx`` and ``.pack`` are both there; a ``.pack`` alone is still being written.
* git writes new objects (packs, loose objects) *before* it updates the refs that need them, and
  deletes packs or loose objects (``repack -d``, ``prune-packed``) only *after* the objects they
  held are in a new pack: an object reachable from the refs always has a home.
* a pack-refs writer puts the new ``packed-refs`` into place *before* it deletes the loose refs it
  packed, so a reader that reads every loose ref first and ``packed-refs`` second never misses a
  ref (git's own iterator reads in this order for this reason).

The capture: a warm-up stages the object store once; then *attempts* (up to ``max_attempts``,
a short randomised back-off between them), each of which reuses what is already staged when its
source is unchanged (same inode; for copies same inode, size and mtime):

1. read ``config``, ``HEAD``, every loose ref, then ``packed-refs`` (and ``shallow``); every file is
   read "carefully" (open, fstat, read to EOF, fstat, stat the path again: same inode, size and
   mtime, else read again), and strictly validated with snapcheck's own parsers: a torn or invalid
   read fails the attempt.  The bytes read are what is staged (never a second read), written to the
   staging directory only after step 3, so that the window in which the refs must hold still holds
   only step 2.
2. hard-link (``os.link``; across file systems or where linking is refused — EXDEV, EPERM, ... — a
   careful copy) every loose object, then, in passes, the rest of the object store.  Only the files
   git reads are captured: loose objects, ``pack-<hash>.{pack,idx,rev,bitmap,mtimes,keep,promisor}``
   (of packs whose ``.idx`` and ``.pack`` are both there), ``multi-pack-index`` (+ ``.d/`` chain)
   with its bitmap and rev, ``info/commit-graph``, ``info/commit-graphs/*``, ``info/packs``.  Git's
   temporaries (``tmp_*``, ``.tmp-<pid>-pack*``, ``bitmap-ref-tips_*``, ``*.lock``, ``incoming-*``)
   are written in place and never captured; ``.keep``/``.promisor`` are written in place too and are
   copied, not linked.  A pass re-lists the directories and stages what is new or replaced and drops
   what is gone; a pack whose ``.idx`` or ``.pack`` vanished between listing and linking (``repack
   -d`` deleted it) is dropped whole, and the next pass finds the pack that replaced it (git wrote
   that one first).  The passes end with one that changes nothing — the listing is stable and fully
   staged — or the attempt fails.  Loose objects are walked before the packs are listed, so an object
   that moved from a loose file into a pack meanwhile is in a pack the passes see.
3. read the refs again; if anything moved (any ref, symref, HEAD, ``config`` or ``shallow``), the
   attempt fails.  A capture therefore holds refs that stood still from step 1 to step 3.  (The
   files backend renames the refs of one multi-ref transaction into place one by one; a capture, like
   any git reader, can see such a transaction half applied if it holds still that long.)
4. check the staged object store: every pack a staged ``multi-pack-index`` lists and every layer
   the ``commit-graph-chain`` lists is staged, and every ref tip (and HEAD) is in a staged pack index
   or a staged loose object; otherwise the attempt fails.

Then the ref files, ``info/`` and ``description`` are written (``hooks/``, ``logs/``, ``FETCH_HEAD``
and other top-level files are not part of a snapshot), and every staged file is hashed (sha256) for
the manifest; a linked file whose size changed since it was linked fails the attempt.  The full
connectivity check is the verifier's job (the archive is teed through it).  A mirror that borrows
objects (``alternates``) or keeps its refs in reftable cannot be captured
(:class:`~snapcheck.errors.UsageError`, exit 2); a mirror whose refs stay invalid or that never holds
still long enough raises :class:`CaptureError` (exit 3).
"""

from __future__ import annotations

import errno
import hashlib
import mmap
import os
import random
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from .errors import SnapcheckError, UsageError
from .gitformats.commit_graph import parse_commit_graph_chain
from .gitformats.common import ALGOS, SHA1, HashAlgo
from .gitformats.config import parse_config
from .gitformats.idx import parse_idx
from .gitformats.loose_refs import parse_head, parse_loose_ref
from .gitformats.midx import parse_midx
from .gitformats.packed_refs import parse_packed_refs
from .install import _try_lock
from .report import Finding, Severity

__all__ = ["Capture", "CaptureError", "capture_mirror"]

_FILE_RETRIES = 3  # careful reads of one file before the attempt fails
_MAX_PASSES = 8  # object-store passes per attempt before it fails as "kept changing"
_SYMREF_DEPTH = 5  # git: SYMREF_MAXDEPTH
_CHUNK = 1 << 20
_BIG_FILE = 1 << 20  # staged files at least this large are hashed in a thread pool
_LINK_FALLBACK = frozenset(
    e for e in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES, errno.ENOSYS,
                getattr(errno, "ENOTSUP", None), getattr(errno, "EOPNOTSUPP", None)) if e is not None
)
_LOOSE_DIR = re.compile(r"[0-9a-f]{2}\Z")
_H = r"[0-9a-f]{40}(?:[0-9a-f]{24})?"  # a sha1 or sha256 hex name
# The files of an object store that git reads.  Anything else under objects/ is not captured: git's
# temporaries there (tmp_pack_*, .tmp-<pid>-pack*, bitmap-ref-tips_*, ...) are written in place.
_OBJECT_FILE = re.compile(
    rf"objects/[0-9a-f]{{2}}/[0-9a-f]{{38}}(?:[0-9a-f]{{24}})?"
    rf"|objects/pack/pack-{_H}\.(?:pack|idx|rev|bitmap|mtimes|keep|promisor)"
    rf"|objects/pack/multi-pack-index|objects/pack/multi-pack-index-{_H}\.(?:bitmap|rev)"
    rf"|objects/pack/multi-pack-index\.d/(?:multi-pack-index-chain|multi-pack-index-{_H}\.(?:midx|bitmap|rev))"
    rf"|objects/info/(?:packs|commit-graph|commit-graphs/commit-graph-chain|commit-graphs/graph-{_H}\.graph)"
)
_PACK_FILE = re.compile(r"(pack-[0-9a-f]+)\.([a-z]+)\Z")
_ONLY_WITH_PACK = frozenset({"pack", "idx", "rev", "bitmap", "mtimes", "keep", "promisor"})
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_CAPTURED_TOP = ("description",)  # besides HEAD, config, packed-refs, shallow, refs/, objects/, info/


class CaptureError(SnapcheckError):
    """The mirror could not be captured consistently: its refs stayed invalid, or it never held still
    for a whole attempt.  Exit code 3 (could not finish; worth a retry).  ``findings`` holds the
    parsers' error findings when the refs were invalid."""

    exit_code = 3

    def __init__(self, message: str, findings: list[Finding] | None = None) -> None:
        super().__init__(message)
        self.findings = findings or []


class _Retry(Exception):
    """This attempt failed for a reason a later attempt may not meet (something moved)."""

    def __init__(self, reason: str, findings: list[Finding] | None = None) -> None:
        super().__init__(reason)
        self.findings = findings or []


@dataclass
class Capture:
    """One consistent state of a mirror, staged in ``staging`` (a bare repository directory on the
    mirror's file system; object files are hard links to the mirror's, so never write to them).
    ``files`` maps every staged regular file (repository-relative) to ``(size, sha256 hex)``.
    Remove the staging directory with :meth:`cleanup`, or use the capture as a context manager."""

    staging: Path
    refs: dict[str, bytes]
    symrefs: dict[str, str]
    head_target: str | None
    head_oid: bytes | None
    object_format: str
    attempts: int
    files: dict[str, tuple[int, str]]
    object_count: int = 0
    pack_count: int = 0
    linked: int = 0  # files hard-linked (the rest were copied)
    mirror: Path | None = None

    lock_fd: int | None = None  # flock held on the staging dir while this capture lives

    def cleanup(self) -> None:
        _remove_tree(self.staging)
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.cleanup()


def capture_mirror(
    mirror: Path,
    staging_parent: Path | None = None,
    *,
    max_attempts: int = 5,
    link: bool = True,
    _between_phases: Callable[[], None] | None = None,
) -> Capture:
    """Capture *mirror* (a bare repository, possibly being written to) into a new staging directory
    made in *staging_parent* (default: the mirror's parent, so hard links work).  *link* False
    copies every object file instead of linking it.  *_between_phases* is a test hook called after
    the object store is staged and before the refs are read again."""
    mirror = Path(mirror)
    if max_attempts < 1:
        raise UsageError("max_attempts must be at least 1")
    try:
        top = mirror.stat()
    except OSError as e:
        raise UsageError(f"{mirror}: {e.strerror or e}") from e
    if not stat.S_ISDIR(top.st_mode) or not (mirror / "objects").is_dir():
        raise UsageError(f"{mirror} is not a bare git repository (no objects/ directory)")
    parent = Path(staging_parent) if staging_parent is not None else mirror.resolve().parent
    prefix = f".{mirror.resolve().name}.snapcheck-capture-"
    remove_stale_staging(parent, prefix)
    try:
        staging = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    except OSError as e:
        raise CaptureError(f"cannot make a staging directory in {parent}: {e.strerror or e}") from e
    lock_fd = _try_lock(staging)  # held while we live: the next run's clean-up leaves a live capture alone
    try:
        capture = _Capturer(mirror, staging, link, _between_phases).run(max_attempts)
    except BaseException:
        _remove_tree(staging)
        if lock_fd is not None:
            os.close(lock_fd)
        raise
    capture.lock_fd = lock_fd
    return capture


def remove_stale_staging(parent: Path, prefix: str) -> list[Path]:
    """Remove staging dirs a killed capture left (``<prefix>*`` in *parent*, ours, not locked by a live
    process): they hold hard links that would keep deleted packs' space in use forever."""
    removed: list[Path] = []
    try:
        names = [n for n in os.listdir(parent) if n.startswith(prefix)]
    except OSError:
        return removed
    for name in names:
        path = parent / name
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
            continue
        fd = _try_lock(path)
        if fd is None:
            continue  # a live capture holds it
        try:
            _remove_tree(path)
            removed.append(path)
        finally:
            os.close(fd)
    return removed


# --------------------------------------------------------------------------------------------------
# careful reads


def _ident(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass
class _Small:
    """A small mutable file read into memory: its bytes and its source mode/mtime."""

    data: bytes
    mode: int
    mtime_ns: int


def _read_stable(path: Path, rel: str) -> _Small | None:
    """Read a whole file and make sure it is one version of it; None when it does not exist."""
    for _ in range(_FILE_RETRIES):
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except FileNotFoundError:
            return None
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise _Retry(f"{rel} is a symbolic link; snapcheck captures only regular files there") from e
            raise
        try:
            st1 = os.fstat(fd)
            if not stat.S_ISREG(st1.st_mode):
                raise _Retry(f"{rel} is not a regular file")
            parts: list[bytes] = []
            got = 0
            while got <= st1.st_size:  # more than fstat said: it grew, stop and read again
                b = os.read(fd, max(_CHUNK, st1.st_size + 1))
                if not b:
                    break
                parts.append(b)
                got += len(b)
            st2 = os.fstat(fd)
        finally:
            os.close(fd)
        data = b"".join(parts)
        try:
            st3 = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            continue  # renamed away or deleted after the read: read whatever is there now
        if len(data) == st1.st_size and _ident(st1) == _ident(st2) == _ident(st3):
            return _Small(data, stat.S_IMODE(st1.st_mode), st1.st_mtime_ns)
    raise _Retry(f"{rel} kept changing while it was read")


def _copy_stable(src: Path, dst: Path, rel: str, buf: bytearray) -> tuple[os.stat_result, str] | None:
    """Copy *src* to the new file *dst* and make sure the copy is one whole version of it: open,
    fstat, read to EOF, fstat, then the path must still name the same inode, size and mtime.
    Returns (source stat, sha256 hex), or None when the file vanished."""
    mv = memoryview(buf)
    for _ in range(_FILE_RETRIES):
        try:
            fd = os.open(src, _OPEN_FLAGS)
        except FileNotFoundError:
            return None
        try:
            st1 = os.fstat(fd)
            if not stat.S_ISREG(st1.st_mode):
                raise _Retry(f"{rel} is not a regular file")
            h = hashlib.sha256()
            n = 0
            with open(dst, "xb") as out:
                while n <= st1.st_size:  # more than fstat said: it grew, stop and try again
                    k = os.readv(fd, [mv])
                    if not k:
                        break
                    h.update(mv[:k])
                    out.write(mv[:k])
                    n += k
            st2 = os.fstat(fd)
        finally:
            os.close(fd)
        try:
            st3: os.stat_result | None = os.stat(src, follow_symlinks=False)
        except FileNotFoundError:
            st3 = None
        if st3 is not None and n == st1.st_size and _ident(st1) == _ident(st2) == _ident(st3):
            os.chmod(dst, stat.S_IMODE(st1.st_mode))
            os.utime(dst, ns=(st1.st_mtime_ns, st1.st_mtime_ns))
            return st1, h.hexdigest()
        os.unlink(dst)
        if st3 is None:
            return None
    raise _Retry(f"{rel} kept changing while it was copied")


def _remove_tree(path: Path) -> None:
    def onerror(func: Callable[..., Any], p: str, exc: Any) -> None:
        # a directory we gave a read-only mode: make it writable and try once more
        try:
            os.chmod(os.path.dirname(p), 0o700)
            func(p)
        except OSError:
            pass

    if path.exists():
        for d, _, _ in os.walk(path):
            try:
                os.chmod(d, 0o700)
            except OSError:
                pass
        shutil.rmtree(path, onerror=onerror)


def _skip_lock(name: str) -> bool:
    """Lock files: a writer's next version of a file (refs, info/): never captured."""
    return name.endswith(".lock")


def _skip_object_name(name: str) -> bool:
    """Files and directories git is still writing in objects/ (or left behind after a crash):
    ``*.lock``, ``tmp_pack_*``, ``tmp_idx_*``, ``tmp_obj_*``, ``tmp_graph_*``..., ``.tmp-*``, and
    receive-pack's quarantine directories ``incoming-*``."""
    return name.endswith(".lock") or name.startswith(("tmp_", ".tmp-", "incoming-"))


# --------------------------------------------------------------------------------------------------
# the refs


@dataclass
class _RefState:
    algo: HashAlgo
    refs: dict[str, bytes]  # every ref, symrefs resolved
    symrefs: dict[str, str]
    head_target: str | None
    head_oid: bytes | None
    small: dict[str, _Small]  # config, HEAD, packed-refs, shallow, refs/** as read
    dirs: dict[str, tuple[int, int]]  # refs/** directories: (mode, mtime_ns)

    def key(self) -> tuple[object, ...]:
        def data(rel: str) -> bytes | None:
            s = self.small.get(rel)
            return s.data if s else None

        return (self.algo.name, self.refs, self.symrefs, self.head_target, self.head_oid,
                data("config"), data("shallow"))


def _errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity is Severity.ERROR]


def _read_refs(mirror: Path) -> _RefState:
    """Read and strictly validate config, HEAD, every loose ref and then packed-refs (that order:
    a pack-refs writer installs the new packed-refs before pruning the loose refs)."""
    small: dict[str, _Small] = {}
    bad: list[Finding] = []

    cfg_file = _read_stable(mirror / "config", "config")
    algo = SHA1
    if cfg_file is not None:
        small["config"] = cfg_file
        cfg, findings = parse_config(cfg_file.data, "config")
        bad += _errors(findings)
        if (cfg.get("extensions", "refstorage") or "files").lower() == "reftable" or (mirror / "reftable").is_dir():
            raise UsageError(f"{mirror}: the refs are in reftable format; snapcheck cannot capture "
                             "a reftable mirror yet")
        fmt = (cfg.get("extensions", "objectformat") or "sha1").lower()
        if fmt not in ALGOS:
            raise UsageError(f"{mirror}: extensions.objectFormat = {fmt!r} is not an object format "
                             "snapcheck knows (sha1, sha256)")
        algo = ALGOS[fmt]

    head_file = _read_stable(mirror / "HEAD", "HEAD")
    head_ref = None
    if head_file is None:
        raise _Retry("HEAD is missing: not a git repository")
    small["HEAD"] = head_file
    head_ref, findings = parse_head(head_file.data, algo, "HEAD")
    bad += _errors(findings)

    loose: dict[str, bytes] = {}
    loose_sym: dict[str, str] = {}
    dirs: dict[str, tuple[int, int]] = {}
    for rel, kind, st in _walk(mirror, "refs", _skip_lock):
        if kind == "dir":
            dirs[rel] = (stat.S_IMODE(st.st_mode), st.st_mtime_ns)
            continue
        if kind != "file":
            raise _Retry(f"{rel} is a symbolic link or special file; snapcheck captures only regular ref files")
        got = _read_stable(mirror / rel, rel)
        if got is None:
            continue  # deleted or packed since the listing: packed-refs (read next) has the truth
        small[rel] = got
        ref, findings = parse_loose_ref(got.data, rel, algo, rel)
        bad += _errors(findings)
        if ref is None:
            continue
        if ref.symref is not None:
            loose_sym[rel] = ref.symref
        elif ref.oid is not None:
            loose[rel] = ref.oid

    packed: dict[str, bytes] = {}
    pr = _read_stable(mirror / "packed-refs", "packed-refs")
    if pr is not None:
        small["packed-refs"] = pr
        parsed, findings = parse_packed_refs(pr.data, algo, "packed-refs")
        bad += _errors(findings)
        if not parsed.complete and not _errors(findings):
            raise _Retry(f"packed-refs: git would not read this file ({parsed.git_error or 'incomplete'})", findings)
        packed = {r.name: r.oid for r in parsed.refs}

    shallow = _read_stable(mirror / "shallow", "shallow")
    if shallow is not None:
        small["shallow"] = shallow

    if bad:
        raise _Retry("the refs are not valid: " + "; ".join(f.message for f in bad[:5]), bad)

    # loose refs win over packed ones; a loose symref hides a packed ref of the same name
    direct: dict[str, bytes] = {n: o for n, o in packed.items() if n not in loose_sym}
    direct.update(loose)
    refs = dict(direct)
    for name in loose_sym:
        oid = _resolve(name, direct, loose_sym)
        if oid is not None:
            refs[name] = oid
    head_target: str | None = None
    head_oid: bytes | None = None
    if head_ref is not None:
        if head_ref.symref is not None:
            head_target = head_ref.symref
            head_oid = _resolve(head_target, direct, loose_sym)
        else:
            head_oid = head_ref.oid
    return _RefState(algo, refs, loose_sym, head_target, head_oid, small, dirs)


def _resolve(name: str, direct: dict[str, bytes], sym: dict[str, str]) -> bytes | None:
    for _ in range(_SYMREF_DEPTH + 1):
        if name in sym:
            name = sym[name]
            continue
        return direct.get(name)
    return None


def _walk(root: Path, rel: str, skip: Callable[[str], bool]) -> Iterator[tuple[str, str, os.stat_result]]:
    """Entries below root/rel in sorted order: (relative path, 'dir' | 'file' | 'other', lstat).
    Directories that vanish while walked are treated as empty; skipped names are left out."""
    try:
        st = os.stat(root / rel, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        yield rel, ("file" if stat.S_ISREG(st.st_mode) else "other"), st
        return
    yield rel, "dir", st
    try:
        with os.scandir(root / rel) as it:
            entries = sorted(it, key=lambda d: d.name)
    except (FileNotFoundError, NotADirectoryError):
        return
    for d in entries:
        if skip(d.name):
            continue
        sub = f"{rel}/{d.name}"
        try:
            dst = d.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(dst.st_mode):
            yield from _walk(root, sub, skip)
        else:
            yield sub, ("file" if stat.S_ISREG(dst.st_mode) else "other"), dst


# --------------------------------------------------------------------------------------------------
# the object store


@dataclass
class _Staged:
    key: tuple[int, ...]  # (dev, ino) of a link; (dev, ino, size, mtime_ns) of the source of a copy
    size: int
    digest: str | None
    loose: bool
    linked: bool

    def same_source(self, st: os.stat_result) -> bool:
        if self.linked:
            return self.key == (st.st_dev, st.st_ino)
        return self.key == _ident(st)


@dataclass
class _Capturer:
    mirror: Path
    staging: Path
    link: bool
    between_phases: Callable[[], None] | None
    staged: dict[str, _Staged] = field(default_factory=dict)
    obj_dirs: dict[str, tuple[int, int]] = field(default_factory=dict)
    extra: dict[str, _Small] = field(default_factory=dict)  # info/**, description
    extra_dirs: dict[str, tuple[int, int]] = field(default_factory=dict)
    buf: bytearray = field(default_factory=lambda: bytearray(_CHUNK))
    made: set[str] = field(default_factory=set)  # staging directories known to exist

    def run(self, max_attempts: int) -> Capture:
        self._check_alternates()
        try:  # warm-up: stage the object store once, so that attempts only stage what changed
            self._stage_loose()
            self._pass()
        except _Retry:
            pass
        except OSError as e:
            raise CaptureError(f"capture of {self.mirror} failed: {e}") from e
        last: _Retry | None = None
        for attempt in range(1, max_attempts + 1):
            if attempt > 1:
                time.sleep(min(0.5, 0.01 * 2 ** attempt) * random.uniform(0.5, 1.5))
            try:
                return self._attempt(attempt)
            except _Retry as e:
                last = e
            except OSError as e:
                raise CaptureError(f"capture of {self.mirror} failed: {e}") from e
        assert last is not None
        raise CaptureError(f"could not capture {self.mirror} consistently in {max_attempts} attempt(s); "
                           f"last: {last}", last.findings)

    def _check_alternates(self) -> None:
        alt = self.mirror / "objects/info/alternates"
        try:
            text = alt.read_bytes()
        except FileNotFoundError:
            return
        if any(line.strip() and not line.startswith(b"#") for line in text.splitlines()):
            raise UsageError(f"{self.mirror} borrows objects from other repositories (objects/info/alternates); "
                             "a snapshot of it would not be self-contained")

    def _attempt(self, attempt: int) -> Capture:
        # Only the object store is staged between the two reads of the refs (the ref files are
        # written from memory afterwards), so the window in which a writer must hold still is short;
        # files staged by an earlier attempt (or the warm-up) are kept when their source is unchanged.
        top = os.stat(self.mirror)
        before = _read_refs(self.mirror)  # phase 1
        self._stage_loose()  # phase 2: loose objects first, then packs and the rest, in passes
        for _ in range(_MAX_PASSES):
            if not self._pass():
                break
        else:
            raise _Retry("the object store kept changing")
        if self.between_phases is not None:
            self.between_phases()
        after = _read_refs(self.mirror)  # phase 3
        if after.key() != before.key():
            raise _Retry("the refs moved during the capture")
        counts = self._check_store(before)  # phase 4
        self._stage_refs(before)
        self._stage_extra()
        files = self._digests(before)
        self._finish_dirs(before, top)
        return Capture(
            staging=self.staging, refs=before.refs, symrefs=before.symrefs, head_target=before.head_target,
            head_oid=before.head_oid, object_format=before.algo.name, attempts=attempt, files=files,
            object_count=counts[0], pack_count=counts[1],
            linked=sum(1 for s in self.staged.values() if s.linked), mirror=self.mirror,
        )

    # ---- staging helpers

    def _dst(self, rel: str) -> Path:
        return self.staging / rel

    def _mkdir(self, rel: str) -> None:
        if rel not in self.made:
            os.makedirs(self._dst(rel), exist_ok=True)
            self.made.add(rel)

    def _mkparent(self, rel: str) -> None:
        parent = rel.rpartition("/")[0]
        if parent:
            self._mkdir(parent)

    def _write_small(self, rel: str, s: _Small) -> None:
        dst = self._dst(rel)
        self._mkparent(rel)
        with open(dst, "wb") as f:
            f.write(s.data)
        os.chmod(dst, s.mode)
        os.utime(dst, ns=(s.mtime_ns, s.mtime_ns))

    def _unlink(self, rel: str) -> None:
        try:
            os.unlink(self._dst(rel))
        except FileNotFoundError:
            pass

    def _stage_refs(self, state: _RefState) -> None:
        _remove_tree(self._dst("refs"))
        self.made = {d for d in self.made if d != "refs" and not d.startswith("refs/")}
        for rel in ("HEAD", "config", "packed-refs", "shallow"):
            self._unlink(rel)
        for rel in state.dirs:
            self._mkdir(rel)
        for rel, s in state.small.items():
            self._write_small(rel, s)

    def _stage_file(self, rel: str, loose: bool) -> bool:
        """Link (or copy) one object-store file into staging; False when it vanished."""
        src, dst = self.mirror / rel, self._dst(rel)
        if self.staged.pop(rel, None) is not None:
            self._unlink(rel)
        self._mkparent(rel)
        if rel.endswith((".keep", ".promisor")):
            # written in place (open O_EXCL, write, close) by index-pack and fetch: a link could see
            # the file before its content, so it is copied
            return self._copy_file(rel, src, dst, loose)
        if self.link:
            try:
                try:
                    os.link(src, dst, follow_symlinks=False)
                except FileExistsError:  # a leftover of an earlier attempt
                    os.unlink(dst)
                    os.link(src, dst, follow_symlinks=False)
            except FileNotFoundError:
                return False
            except OSError as e:
                if e.errno not in _LINK_FALLBACK:
                    raise
                self.link = False  # another file system, or linking refused: copy from now on
            else:
                st = os.lstat(dst)
                if not stat.S_ISREG(st.st_mode):
                    os.unlink(dst)
                    raise _Retry(f"{rel} is not a regular file")
                self.staged[rel] = _Staged((st.st_dev, st.st_ino), st.st_size, None, loose, True)
                return True
        return self._copy_file(rel, src, dst, loose)

    def _copy_file(self, rel: str, src: Path, dst: Path, loose: bool) -> bool:
        if os.path.lexists(dst):
            os.unlink(dst)
        got = _copy_stable(src, dst, rel, self.buf)
        if got is None:
            return False
        st, digest = got
        self.staged[rel] = _Staged(_ident(st), st.st_size, digest, loose, False)
        return True

    def _drop(self, rel: str) -> None:
        self._unlink(rel)
        self.staged.pop(rel, None)

    def _stage_loose(self) -> None:
        seen: set[str] = set()
        for rel, kind, st in _walk(self.mirror, "objects", _skip_object_name):
            parts = rel.split("/")
            if len(parts) < 2 or not _LOOSE_DIR.match(parts[1]):
                continue
            if kind == "dir":
                if len(parts) == 2:
                    self.obj_dirs[rel] = (stat.S_IMODE(st.st_mode), st.st_mtime_ns)
                    self._mkdir(rel)
                continue
            if kind != "file" or not _OBJECT_FILE.fullmatch(rel):
                continue
            old = self.staged.get(rel)
            if (old is not None and old.same_source(st)) or self._stage_file(rel, loose=True):
                seen.add(rel)
        for rel in [r for r, s in self.staged.items() if s.loose and r not in seen]:
            self._drop(rel)

    def _list_rest(self) -> tuple[dict[str, os.stat_result], dict[str, tuple[int, int]]]:
        """Everything under objects/ except loose objects: files to stage, directories."""
        files: dict[str, os.stat_result] = {}
        dirs: dict[str, tuple[int, int]] = {}
        for rel, kind, st in _walk(self.mirror, "objects", _skip_object_name):
            parts = rel.split("/")
            if len(parts) >= 2 and _LOOSE_DIR.match(parts[1]):
                continue
            if kind == "dir":
                dirs[rel] = (stat.S_IMODE(st.st_mode), st.st_mtime_ns)
            elif kind == "file" and _OBJECT_FILE.fullmatch(rel):
                files[rel] = st
        # a pack counts only when both its .idx and .pack are there (the .idx is renamed in last)
        groups: dict[str, set[str]] = {}
        for rel in files:
            g = _pack_group(rel)
            if g is not None:
                groups.setdefault(g[0], set()).add(g[1])
        for rel in list(files):
            g = _pack_group(rel)
            if g is not None and not {"idx", "pack"} <= groups[g[0]]:
                del files[rel]
        return files, dirs

    def _pass(self) -> bool:
        """One pass over the object store (loose objects aside); True when it changed anything."""
        files, dirs = self._list_rest()
        for rel in dirs:
            self._mkdir(rel)
        self.obj_dirs.update(dirs)
        changed = False

        def order(rel: str) -> tuple[int, str, int]:
            g = _pack_group(rel)
            if g is None:
                return (0, rel, 0)  # multi-pack-index, commit-graph(s), info/packs first
            return (1, g[0], {"idx": 0, "pack": 1}.get(g[1], 2))

        dropped: set[str] = set()
        for rel in sorted(files, key=order):
            g = _pack_group(rel)
            if g is not None and g[0] in dropped:
                continue
            old = self.staged.get(rel)
            if old is not None and old.same_source(files[rel]):
                continue
            changed = True
            if not self._stage_file(rel, loose=False) and g is not None and g[1] in ("idx", "pack"):
                dropped.add(g[0])  # repack -d deleted this pack: drop it whole
        for rel in [r for r, s in self.staged.items() if not s.loose]:
            g = _pack_group(rel)
            if rel not in files or (g is not None and g[0] in dropped):
                self._drop(rel)
                changed = True
        return changed

    def _stage_extra(self) -> None:
        """info/** and description: small files, copied carefully, not compared between phases."""
        for rel in list(self.extra):
            self._unlink(rel)
        self.extra.clear()
        self.extra_dirs.clear()
        for rel, kind, st in _walk(self.mirror, "info", _skip_lock):
            if kind == "dir":
                self.extra_dirs[rel] = (stat.S_IMODE(st.st_mode), st.st_mtime_ns)
                self._mkdir(rel)
            elif kind == "file":
                got = _read_stable(self.mirror / rel, rel)
                if got is not None:
                    self.extra[rel] = got
        for rel in _CAPTURED_TOP:
            got = _read_stable(self.mirror / rel, rel)
            if got is not None:
                self.extra[rel] = got
        for rel, s in self.extra.items():
            self._write_small(rel, s)

    # ---- phase 4

    def _check_store(self, state: _RefState) -> tuple[int, int]:
        """Cross-references inside the staged store and the ref tips; (object count, pack count)."""
        algo = state.algo
        midx_rel = "objects/pack/multi-pack-index"
        if midx_rel in self.staged:
            data = _map(self._dst(midx_rel))
            midx, _ = parse_midx(data, midx_rel, algo, verify_checksum=False) if data is not None else (None, [])
            if midx is not None:
                for name in midx.pack_names:
                    base = name[:-4] if name.endswith(".idx") else name
                    for ext in (".idx", ".pack"):
                        if f"objects/pack/{base}{ext}" not in self.staged:
                            raise _Retry(f"{midx_rel} lists {name}, which is not in the captured store")
        chain_rel = "objects/info/commit-graphs/commit-graph-chain"
        if chain_rel in self.staged:
            layers, _ = parse_commit_graph_chain(self._dst(chain_rel).read_bytes(), chain_rel, algo)
            for h in layers:
                if f"objects/info/commit-graphs/graph-{h.hex()}.graph" not in self.staged:
                    raise _Retry(f"{chain_rel} lists graph-{h.hex()}.graph, which is not in the captured store")
        want = {o for o in state.refs.values()}
        if state.head_oid is not None:
            want.add(state.head_oid)
        objects = 0
        packs = 0
        for rel in sorted(self.staged):
            if rel.endswith(".idx") and _pack_group(rel) is not None:
                packs += 1
                idx = _open_idx(self._dst(rel), algo, rel)
                if idx is None:
                    continue
                objects += idx.count
                if want:
                    want = {o for o in want if idx.find(o) is None}
        loose = [r for r, s in self.staged.items() if s.loose]
        objects += len(loose)
        if want:
            names = {r[8:10] + r[11:] for r in loose}
            missing = sorted(o.hex() for o in want if o.hex() not in names)
            if missing:
                holders = sorted(n for n, o in state.refs.items() if o.hex() in missing)
                raise _Retry(f"ref(s) {', '.join(holders[:5]) or 'HEAD'} point to object(s) "
                             f"{', '.join(missing[:5])} that are not in the captured object store")
        return objects, packs

    # ---- digests and directory metadata

    def _digests(self, state: _RefState) -> dict[str, tuple[int, str]]:
        files: dict[str, tuple[int, str]] = {}
        for rel, sm in [*state.small.items(), *self.extra.items()]:
            files[rel] = (len(sm.data), hashlib.sha256(sm.data).hexdigest())
        todo = [rel for rel, s in self.staged.items() if s.digest is None]
        big = [rel for rel in todo if self.staged[rel].size >= _BIG_FILE]
        small = [rel for rel in todo if self.staged[rel].size < _BIG_FILE]
        results: dict[str, tuple[int, str]] = {}
        if big:
            workers = max(1, min(4, os.cpu_count() or 1))
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for rel, res in zip(big, pool.map(self._hash_staged, big), strict=True):
                    results[rel] = res
        for rel in small:
            results[rel] = self._hash_staged(rel)
        for rel, s in self.staged.items():
            if s.digest is None:
                size, digest = results[rel]
                if size != s.size:  # written in place after it was linked: not a file git writes so
                    self._drop(rel)
                    raise _Retry(f"{rel} changed size after it was staged ({s.size} -> {size} bytes)")
                s.digest = digest
            assert s.digest is not None
            files[rel] = (s.size, s.digest)
        return files

    def _hash_staged(self, rel: str) -> tuple[int, str]:
        with open(self._dst(rel), "rb") as f:
            h = hashlib.file_digest(f, "sha256")
            return f.tell(), h.hexdigest()

    def _finish_dirs(self, state: _RefState, top: os.stat_result) -> None:
        dirs = {**self.obj_dirs, **state.dirs, **self.extra_dirs}
        for rel in sorted(dirs, key=lambda r: r.count("/"), reverse=True):
            p = self._dst(rel)
            if not p.is_dir():
                continue
            mode, mtime = dirs[rel]
            os.utime(p, ns=(mtime, mtime))
            os.chmod(p, mode | stat.S_IRWXU)  # the owner must keep access to remove the staging dir
        os.utime(self.staging, ns=(top.st_mtime_ns, top.st_mtime_ns))
        os.chmod(self.staging, stat.S_IMODE(top.st_mode) | stat.S_IRWXU)


def _pack_group(rel: str) -> tuple[str, str] | None:
    """('pack-<hash>', extension) for a pack's file in objects/pack, else None."""
    if not rel.startswith("objects/pack/") or rel.count("/") != 2:
        return None
    m = _PACK_FILE.match(rel[13:])
    if m is None or m.group(2) not in _ONLY_WITH_PACK:
        return None
    return m.group(1), m.group(2)


def _map(path: Path) -> mmap.mmap | None:
    """The file mapped read-only; None when it cannot be (empty, unreadable)."""
    try:
        with open(path, "rb") as f:
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        return None


def _open_idx(path: Path, algo: HashAlgo, rel: str) -> Any:
    data = _map(path)
    if data is None:
        return None
    idx, _ = parse_idx(data, algo, rel, verify_checksum=False)
    return idx
