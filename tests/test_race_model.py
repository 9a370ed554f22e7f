"""The race behind the seed bug, modelled step by step (Hypothesis ``RuleBasedStateMachine``).

A *writer* changes a real mirror directory exactly the way git does, one system call at a time:

* ``fetch``: a new pack appears the way index-pack writes it (``tmp_pack_*`` written in pieces,
  renamed to ``pack-<hash>.pack``; ``tmp_idx_*`` renamed to ``pack-<hash>.idx`` last) — or the same
  objects arrive as loose objects (``tmp_obj_*`` then rename) — and only then are the refs moved,
  each by ``<ref>.lock`` + rename, in git's transaction order;
* ``pack-refs``: ``packed-refs.lock`` written in pieces, renamed over ``packed-refs``, then the loose
  refs it packed are deleted one by one;
* ``delete-ref``: ``packed-refs`` rewritten without the ref first, then the loose file deleted;
* ``update-ref``: one loose ref replaced by lock + rename;
* ``config``: ``config.lock`` written in pieces and renamed (``git config``);
* ``repack -ad``: one new pack holding everything, then every other pack deleted (``.pack`` before
  ``.idx`` as git 2.39 does, or ``.idx`` first as newer git does);
* ``prune-packed``: loose objects that a pack now holds are deleted one by one.

Every pack, index and loose object it installs was made beforehand by the real git binary from a
real upstream, so every state the directory passes through is a real git state; the writer records
each one (the refs as git resolves them, and every version of every text file).

A *reader* builds a tar stream member by member the way a naive tar does: it lists a directory
when it reaches it, then per file either ``lstat`` → ``open`` → read exactly the ``lstat`` size,
padding with NULs or cutting (BusyBox), or ``open`` → ``fstat`` → read that size (GNU tar).  Four
readers run side by side (both flavours, each in sorted and in shuffled readdir order); Hypothesis
interleaves them with the writer at system-call granularity (``tick``), runs them up to an
interesting point — just after the ``lstat`` of ``packed-refs`` or ``config``, just before listing
``refs/`` or ``objects/pack`` (``read_to``) — and lets whole git operations run while they stall
there, as a tar does when its output pipe is full (``burst``).

Properties (``NaiveTarRace``), checked for every tar a reader finishes:

1. snapcheck (``verify_stream`` at ``standard``) either rejects it, or accepts it and then it is a
   real state — the refs equal a state the writer had while the tar ran and every file is a whole
   version of itself — or, without a manifest, it falls into one of the classes that no syntax check
   can see (each such archive is classified and counted with ``hypothesis.event``):
   ``packed-refs`` cut exactly at a record boundary (a well-formed, shorter file), ``config`` cut
   where it still parses, or cross-file skew (every ref file whole, but read at different moments,
   e.g. the old ``packed-refs`` and then ``refs/`` after ``pack-refs`` deleted the loose refs it
   packed).  Any other torn file that is accepted fails the test.  NOTE: the record-boundary cut
   is *not* the only blind spot of a manifest-less archive; the other two are real and found here.
2. with a manifest appended that describes the state the tar *started* from, snapcheck accepts the
   archive exactly when it holds that state, byte for byte: every blind spot above is rejected.
3. a tar taken while the writer stood still is accepted (no false reject).

The three blind spots and the seed bug (a cut mid-line, rejected) are also shown deterministically
by the plain tests below the machine.

Property of snapcheck's own archiver (``ArchiverRace``): ``snapcheck.archive`` runs in a thread that
stops at every capture step (each ref file read, each directory listing, each hard link, and between
the capture's phases); Hypothesis interleaves the writer's system calls with those steps.  The
archive is then published to a local bucket, verifies, and its refs equal a state the writer really
had — or the capture fails cleanly (``CaptureError``) and nothing at all appears in the bucket.

Budgets are bounded (about 30 examples of at most 15 steps, well under a minute on 2 cores) and
scale with ``HYPOTHESIS_PROFILE`` (``long`` runs many more).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import io
import os
import random
import shutil
import stat
import tarfile
import tempfile
import threading
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import event as _hypothesis_event
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

import snapcheck.archive as archive_mod
import snapcheck.capture as capture_mod
from snapcheck.archive import ArchiveOptions, ArchiveResult
from snapcheck.capture import CaptureError
from snapcheck.manifest import SCHEMA, Manifest
from snapcheck.options import VerifyOptions
from snapcheck.publish import PublishOptions
from snapcheck.report import Report
from snapcheck.verifier import verify_file, verify_stream

from gitrepos import copy_repo, git

PACKED_HEADER = b"# pack-refs with: peeled fully-peeled sorted \n"
HEAD_TARGET = "refs/heads/b00"

# ----------------------------------------------------------------------------------------------------
# the world, made once by git


@dataclass(frozen=True)
class PackPair:
    name: str  # pack-<hex>
    pack: bytes
    idx: bytes


@dataclass(frozen=True)
class Batch:
    """What one fetch brings: the objects (as a pack, or as loose objects) and the ref updates, in
    the order git's ref transaction renames them into place."""

    pack: PackPair
    loose: dict[str, bytes]  # objects/xx/<38 hex> -> the loose object file
    updates: tuple[tuple[str, str], ...]  # (refname, oid hex)


@dataclass(frozen=True)
class Prepared:
    mirror: Path  # the pristine mirror (copied for every example)
    batches: tuple[Batch, ...]
    full: tuple[PackPair, ...]  # full[k]: every object once k batches arrived (what repack -ad writes)
    toggle: tuple[str, str]  # two base commits refs/heads/b03 is moved between (update-ref)
    canonical: dict[str, bytes]  # every file whose bytes never change once in place


def _pack_objects(repo: Path, revs: str, out: Path) -> PackPair:
    """``git pack-objects --revs`` (a complete, non-thin pack) into *out*; the files as bytes."""
    out.mkdir(parents=True, exist_ok=True)
    h = git("pack-objects", "-q", "--revs", str(out / "pack"), cwd=repo, input=revs.encode()).strip()
    name = f"pack-{h}"
    return PackPair(name, (out / f"{name}.pack").read_bytes(), (out / f"{name}.idx").read_bytes())


def _loose_objects(repo: Path, oids: list[str]) -> dict[str, bytes]:
    """The loose object files git would write for *oids* (zlib of ``<type> <size>\\0<content>``)."""
    out: dict[str, bytes] = {}
    for oid in oids:
        kind = git("cat-file", "-t", oid, cwd=repo).strip()
        raw = _cat_raw(repo, kind, oid)
        out[f"objects/{oid[:2]}/{oid[2:]}"] = zlib.compress(f"{kind} {len(raw)}".encode() + b"\0" + raw)
    return out


def _cat_raw(repo: Path, kind: str, oid: str) -> bytes:
    import subprocess

    from gitrepos import GIT_ENV

    return subprocess.run(["git", "cat-file", kind, oid], cwd=repo, capture_output=True, check=True,
                          env=GIT_ENV).stdout


def prepare(base: Path) -> Prepared:
    """A small mirror whose refs all have names of one length (so a longer packed-refs cut at the old
    size ends exactly at a record boundary) plus lightweight tags of another length (so other cuts
    fall mid-line), one loose ref that overrides a packed one, and three upstream fetches."""
    work = base / "work"
    git("init", "-q", "-b", "b00", str(work))
    commits: dict[str, str] = {}

    def commit(label: str) -> str:
        (work / f"{label}.txt").write_text(f"content of {label}\n" * 3)
        git("add", f"{label}.txt", cwd=work)
        git("commit", "-q", "-m", f"commit {label}", cwd=work)
        commits[label] = git("rev-parse", "HEAD", cwd=work).strip()
        return commits[label]

    for i in range(6):
        commit(f"c{i}")
    git("branch", "b01", commits["c3"], cwd=work)
    git("branch", "b02", commits["c4"], cwd=work)
    git("branch", "b03", commits["c1"], cwd=work)
    git("tag", "t1", commits["c2"], cwd=work)
    mirror = base / "m0.git"
    git("clone", "-q", "--mirror", "--no-local", str(work), str(mirror))
    git("config", "remote.origin.url", "https://example.com/org/race", cwd=mirror)
    shutil.rmtree(mirror / "hooks", ignore_errors=True)
    git("pack-refs", "--all", cwd=mirror)
    git("update-ref", "refs/heads/b02", commits["c5"], cwd=mirror)  # loose, overriding the packed c4
    assert (mirror / "packed-refs").read_bytes().startswith(PACKED_HEADER)

    # three fetches: heads are renamed into place before tags (git's ref transaction order)
    tips = [commits["c5"]]
    batches: list[Batch] = []
    plan = [("b01", "c6", ("refs/heads/b01", "refs/tags/t2")),
            ("c5", "c7", ("refs/heads/b02", "refs/tags/t3")),
            ("b00", "c8", ("refs/heads/b00", "refs/heads/b04"))]
    scratch = base / "packs"
    scratch.mkdir()
    for k, (start, label, refs) in enumerate(plan):
        git("checkout", "-q", "--detach", commits.get(start, start), cwd=work)
        tip = commit(label)
        revs = tip + "\n" + "".join(f"^{t}\n" for t in tips)
        pack = _pack_objects(work, revs, scratch / f"b{k}")
        oids = git("rev-list", "--objects", tip, *(f"^{t}" for t in tips), cwd=work).split("\n")
        loose = _loose_objects(work, [line.split(" ")[0] for line in oids if line])
        batches.append(Batch(pack, loose, tuple((r, tip) for r in refs)))
        tips.append(tip)
    full = tuple(_pack_objects(work, "".join(f"{t}\n" for t in tips[: k + 1]), scratch / f"full{k}")
                 for k in range(len(tips)))
    canonical: dict[str, bytes] = {}
    for p in sorted(mirror.rglob("*")):
        rel = p.relative_to(mirror).as_posix()
        if p.is_file() and (rel.startswith("objects/") or rel in ("HEAD", "description") or rel.startswith("info/")):
            canonical[rel] = p.read_bytes()
    for pair in [*(b.pack for b in batches), *full]:
        canonical[f"objects/pack/{pair.name}.pack"] = pair.pack
        canonical[f"objects/pack/{pair.name}.idx"] = pair.idx
    for b in batches:
        canonical.update(b.loose)
    return Prepared(mirror, tuple(batches), full, (commits["c1"], commits["c2"]), canonical)


_PREPARED: Prepared | None = None
_PREP_LOCK = threading.Lock()


def prepared() -> Prepared:
    """The world, built once per process (a session fixture cannot reach a state machine)."""
    global _PREPARED
    with _PREP_LOCK:
        if _PREPARED is None:
            base = Path(tempfile.mkdtemp(prefix="snapcheck-race-"))
            atexit.register(shutil.rmtree, base, True)
            _PREPARED = prepare(base)
        return _PREPARED


# ----------------------------------------------------------------------------------------------------
# the writer: git, one system call at a time


def parse_packed(data: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in data.split(b"\n"):
        if line and not line.startswith((b"#", b"^")):
            oid, _, name = line.partition(b" ")
            out[name.decode()] = oid.decode()
    return out


def live_refs(root: Path) -> dict[str, str]:
    """The refs of a quiet directory as git resolves them: loose over packed."""
    try:
        refs = parse_packed((root / "packed-refs").read_bytes())
    except FileNotFoundError:
        refs = {}
    for d, _, files in os.walk(root / "refs"):
        for f in files:
            if not f.endswith(".lock"):
                p = Path(d) / f
                refs[p.relative_to(root).as_posix()] = p.read_text().strip()
    return refs


def loose_ref_files(root: Path) -> list[str]:
    out = []
    for d, _, files in os.walk(root / "refs"):
        out += [(Path(d) / f).relative_to(root).as_posix() for f in files if not f.endswith(".lock")]
    return sorted(out)


Action = Callable[[], None]


class Writer:
    """Applies git operations to *root* one system call (an *action*) at a time and records every
    state the directory passes through."""

    OPS = ("fetch-pack", "fetch-loose", "pack-refs", "delete-ref", "update-ref", "config", "repack",
           "prune-packed")

    def __init__(self, root: Path, prep: Prepared) -> None:
        self.root = root
        self.prep = prep
        self.fetched = 0
        self.pending: deque[Action] = deque()
        self.op: str | None = None
        self.ops_done: list[str] = []
        self.actions = 0
        self.tmp_counter = 0
        self.base_config = (root / "config").read_bytes()
        self.gc_auto = 0
        self.states: list[dict[str, str]] = []
        self.versions: dict[str, set[bytes]] = {}
        self.record()

    # -- what existed

    def record(self) -> None:
        refs = live_refs(self.root)
        if not self.states or self.states[-1] != refs:
            self.states.append(refs)
        for rel in ("packed-refs", "config", *loose_ref_files(self.root)):
            with contextlib.suppress(FileNotFoundError):
                self.versions.setdefault(rel, set()).add((self.root / rel).read_bytes())

    def existed(self, refs: dict[str, str], since: int = 0) -> bool:
        """Did the refs hold exactly *refs* at some moment (from state number *since* on)?"""
        return refs in self.states[since:]

    @property
    def now(self) -> int:
        """The number of the current state (for :meth:`existed`)."""
        return len(self.states) - 1

    # -- driving

    @property
    def busy(self) -> bool:
        return bool(self.pending)

    def available(self) -> list[str]:
        r = self.root
        packs = list((r / "objects/pack").glob("pack-*.pack"))
        loose = self._loose_objects()
        full = self.prep.full[self.fetched]
        out = ["config"]
        if self.fetched < len(self.prep.batches):
            out += ["fetch-pack", "fetch-loose"]
        if loose_ref_files(r):
            out.append("pack-refs")
        if "refs/heads/b03" in live_refs(r):
            out += ["delete-ref", "update-ref"]
        if loose or len(packs) != 1 or packs[0].name != f"{full.name}.pack":
            out.append("repack")
        if any(self._in_a_pack(rel) for rel in loose):
            out.append("prune-packed")
        return out

    def start(self, op: str, rnd: random.Random) -> str:
        """Queue the actions of *op* (or of an available one, when *op* cannot run now)."""
        avail = self.available()
        if op not in avail:
            op = avail[self.actions % len(avail)]
        self.op = op
        self.ops_done.append(op)
        getattr(self, "_op_" + op.replace("-", "_"))(rnd)
        return op

    def step(self) -> bool:
        """Run one action; False when nothing is pending."""
        if not self.pending:
            return False
        self.pending.popleft()()
        self.actions += 1
        self.record()
        if not self.pending:
            self.op = None
        return True

    def finish_op(self) -> None:
        while self.step():
            pass

    # -- system calls

    def _tmpname(self, prefix: str) -> str:
        self.tmp_counter += 1
        return f"{prefix}{self.tmp_counter:06x}"

    def _write_then_rename(self, rel: str, data: bytes, tmp_rel: str, pieces: int = 2) -> None:
        """git's way to install a file: write a temp/lock file (in *pieces*), rename it into place."""
        r = self.root
        cut = len(data) // 2 if pieces == 2 else len(data)

        def create() -> None:
            (r / tmp_rel).parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(r / tmp_rel, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, data[:cut])
            finally:
                os.close(fd)

        def append() -> None:
            with open(r / tmp_rel, "ab") as f:
                f.write(data[cut:])

        self.pending.append(create)
        if pieces == 2:
            self.pending.append(append)
        self.pending.append(lambda: os.rename(r / tmp_rel, r / rel))

    def _unlink(self, rel: str) -> None:
        def go() -> None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.root / rel)

        self.pending.append(go)

    def _update_ref(self, name: str, oid: str) -> None:
        self._write_then_rename(name, f"{oid}\n".encode(), name + ".lock", pieces=1)

    def _install_pack(self, pair: PackPair) -> None:
        if (self.root / f"objects/pack/{pair.name}.idx").exists():
            return  # the same objects, the same name: git keeps the existing file
        self._write_then_rename(f"objects/pack/{pair.name}.pack", pair.pack, self._tmpname("objects/pack/tmp_pack_"))
        self._write_then_rename(f"objects/pack/{pair.name}.idx", pair.idx, self._tmpname("objects/pack/tmp_idx_"),
                                pieces=1)

    def _loose_objects(self) -> list[str]:
        out = []
        for d in (self.root / "objects").iterdir():
            if len(d.name) == 2 and d.is_dir():
                out += [f"objects/{d.name}/{f.name}" for f in d.iterdir() if not f.name.startswith("tmp_")]
        return sorted(out)

    def _in_a_pack(self, rel: str) -> bool:
        oid = bytes.fromhex(rel[8:10] + rel[11:])
        for idx in (self.root / "objects/pack").glob("pack-*.idx"):
            data = idx.read_bytes()
            n = int.from_bytes(data[8 + 255 * 4: 8 + 256 * 4], "big")
            names = data[8 + 256 * 4: 8 + 256 * 4 + 20 * n]
            if any(names[i * 20:(i + 1) * 20] == oid for i in range(n)):
                return True
        return False

    # -- git operations

    def _op_fetch_pack(self, rnd: random.Random) -> None:
        batch = self.prep.batches[self.fetched]
        self._install_pack(batch.pack)
        self._fetch_refs(batch)

    def _op_fetch_loose(self, rnd: random.Random) -> None:
        batch = self.prep.batches[self.fetched]
        for rel, data in batch.loose.items():
            tmp = f"{rel[:11]}tmp_obj_{self.tmp_counter:06x}"
            self.tmp_counter += 1
            self._write_then_rename(rel, data, tmp, pieces=1)
        self._fetch_refs(batch)

    def _fetch_refs(self, batch: Batch) -> None:
        for name, oid in batch.updates:
            self._update_ref(name, oid)
        self.fetched += 1

    def _packed_content(self, refs: dict[str, str]) -> bytes:
        return PACKED_HEADER + b"".join(f"{oid} {name}\n".encode() for name, oid in sorted(refs.items()))

    def _op_pack_refs(self, rnd: random.Random) -> None:
        loose = loose_ref_files(self.root)
        self._write_then_rename("packed-refs", self._packed_content(live_refs(self.root)), "packed-refs.lock")
        for rel in loose:
            self._unlink(rel)

    def _op_delete_ref(self, rnd: random.Random) -> None:
        name = "refs/heads/b03"
        try:
            packed = parse_packed((self.root / "packed-refs").read_bytes())
        except FileNotFoundError:
            packed = {}
        if name in packed:  # git removes it from packed-refs first, then the loose file
            del packed[name]
            self._write_then_rename("packed-refs", self._packed_content(packed), "packed-refs.lock")
        self._unlink(name)

    def _op_update_ref(self, rnd: random.Random) -> None:
        a, b = self.prep.toggle
        self._update_ref("refs/heads/b03", b if live_refs(self.root)["refs/heads/b03"] == a else a)

    def _op_config(self, rnd: random.Random) -> None:
        self.gc_auto = 100 if self.gc_auto == 0 else 0
        data = self.base_config + f"[gc]\n\tauto = {self.gc_auto}\n".encode()
        self._write_then_rename("config", data, "config.lock")

    def _op_repack(self, rnd: random.Random) -> None:
        full = self.prep.full[self.fetched]
        self._install_pack(full)
        idx_first = rnd.random() < 0.5  # git >= 2.47 unlinks the .idx first; 2.39 the .pack
        for p in sorted((self.root / "objects/pack").glob("pack-*.pack")):
            if p.stem != full.name:
                exts = (".idx", ".pack") if idx_first else (".pack", ".idx")
                for ext in exts:
                    self._unlink(f"objects/pack/{p.stem}{ext}")

    def _op_prune_packed(self, rnd: random.Random) -> None:
        for rel in self._loose_objects():
            if self._in_a_pack(rel):
                self._unlink(rel)


# ----------------------------------------------------------------------------------------------------
# the reader: a naive tar, one system call at a time


def tar_header(name: str, *, directory: bool, size: int = 0) -> bytes:
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    ti.size = size
    ti.mode = 0o755 if directory else 0o644
    ti.mtime = 1700000000
    return ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def tar_member(name: str, data: bytes) -> bytes:
    return tar_header(name, directory=False, size=len(data)) + data + bytes(-len(data) % 512)


END_OF_ARCHIVE = bytes(1024)


class NaiveTar:
    """A tar that trusts the file system to stand still.  ``flavour`` ``busybox``: ``lstat`` the path
    for the size, later ``open`` it, read exactly that many bytes (NUL padding when it shrank, cut
    when it grew); ``gnu``: ``open``, ``fstat`` the descriptor, read that size.  Directories are
    listed when the walk reaches them, in ``sorted`` order (Python's tarfile) or in the order
    *shuffle* puts them in (readdir order: ``random.Random.shuffle``).  Paths that vanish are skipped, as GNU tar does after
    "File removed before we read it"; ``events`` counts what happened."""

    def __init__(self, root: Path, flavour: str, shuffle: Callable[[list[str]], None] | None = None) -> None:
        assert flavour in ("busybox", "gnu")
        self.root = root
        self.flavour = flavour
        self.shuffle = shuffle
        self.todo: list[tuple[str, str]] = [("dir", "")]  # a stack
        self.out = bytearray()
        self.members: dict[str, bytes] = {}
        self.cur: dict[str, Any] | None = None
        self.done = False
        self.events: dict[str, int] = {}

    def _event(self, name: str) -> None:
        self.events[name] = self.events.get(name, 0) + 1

    def step(self) -> None:
        """One system call (a listing, an lstat, an open, or the read of one member)."""
        if self.done:
            return
        if self.cur is not None:
            self._file_step()
            return
        if not self.todo:
            self.out += END_OF_ARCHIVE
            self.done = True
            return
        kind, rel = self.todo.pop()
        path = self.root / rel if rel else self.root
        if kind == "dir":
            try:
                names = os.listdir(path)
            except FileNotFoundError:
                self._event("vanished")
                return
            self.out += tar_header(f"./{rel}/" if rel else "./", directory=True)
            names.sort()
            if self.shuffle is not None:
                self.shuffle(names)
            for n in reversed(names):
                self.todo.append(("path", f"{rel}/{n}" if rel else n))
            return
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            self._event("vanished")
            return
        if stat.S_ISDIR(st.st_mode):
            self.todo.append(("dir", rel))
        elif stat.S_ISREG(st.st_mode):
            self.cur = {"rel": rel, "size": st.st_size, "fd": None}

    def _file_step(self) -> None:
        cur = self.cur
        assert cur is not None
        path = self.root / cur["rel"]
        if cur["fd"] is None:
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                self._event("vanished")
                self.cur = None
                return
            cur["fd"] = fd
            if self.flavour == "gnu":
                cur["size"] = os.fstat(fd).st_size
            return
        size = cur["size"]
        try:
            data = b""
            while len(data) < size:
                got = os.read(cur["fd"], size - len(data))
                if not got:
                    break
                data += got
            if len(data) < size:
                self._event("shrank")
                data += bytes(size - len(data))  # GNU tar: "file shrank by N bytes; padding with zeros"
            elif os.read(cur["fd"], 1):
                self._event("grew")  # "file changed as we read it": the rest is not archived
        finally:
            os.close(cur["fd"])
        self.cur = None
        self.members[cur["rel"]] = data
        self.out += tar_member(f"./{cur['rel']}", data)

    def run(self) -> bytes:
        while not self.done:
            self.step()
        return bytes(self.out)

    def close(self) -> None:
        if self.cur is not None and self.cur["fd"] is not None:
            os.close(self.cur["fd"])
            self.cur = None


def snapshot_files(root: Path) -> dict[str, bytes]:
    """Every regular file of a quiet directory, as a naive tar of it would hold it."""
    out: dict[str, bytes] = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = Path(d) / f
            out[p.relative_to(root).as_posix()] = p.read_bytes()
    return out


def manifest_of(files: dict[str, bytes], refs: dict[str, str]) -> bytes:
    """A snapcheck manifest describing a state (what a capture of it would record)."""
    m = Manifest(
        schema=SCHEMA, tool_version="race-model", created="2024-01-01T00:00:00Z", object_format="sha1",
        head_target=HEAD_TARGET, head_oid=refs.get(HEAD_TARGET), refs=dict(refs), symrefs={},
        files={rel: (len(data), hashlib.sha256(data).hexdigest()) for rel, data in files.items()},
        object_count=0, pack_count=sum(1 for r in files if r.endswith(".idx")),
    )
    return m.to_json()


def with_manifest(tar: bytes, manifest: bytes) -> bytes:
    """The naive tar with snapcheck's manifest appended as its last member."""
    assert tar.endswith(END_OF_ARCHIVE)
    return (tar[: -len(END_OF_ARCHIVE)] + tar_header("./.snapcheck/", directory=True)
            + tar_member("./.snapcheck/manifest.json", manifest) + END_OF_ARCHIVE)


def check(tar: bytes, label: str = "naive") -> Report:
    return verify_stream(io.BytesIO(tar), VerifyOptions(), label=label)


def hexrefs(rep: Report) -> dict[str, str]:
    return {n: o.hex() for n, o in rep.refs.items()}


# the classes of archives a naive tar makes that snapcheck cannot reject without a manifest
BLIND_SPOTS = frozenset({"packed-refs-cut-at-record-boundary", "config-cut-still-parses", "refs-never-existed"})


def classify(members: dict[str, bytes], refs: dict[str, str] | None, writer: Writer,
             canonical: dict[str, bytes], since: int) -> set[str]:
    """Why an archive's content is not one real state: an empty set when every file is a whole real
    version (or a git temporary) and the refs equal a state the writer had while the tar ran
    (from state number *since* on)."""
    labels: set[str] = set()
    for rel, data in members.items():
        name = rel.rsplit("/", 1)[-1]
        if name.endswith(".lock") or name.startswith("tmp_"):
            continue  # a write in flight: git ignores these files
        if rel in ("packed-refs", "config"):
            versions = writer.versions[rel]
            if data in versions:
                continue
            prefix = any(len(v) > len(data) and v.startswith(data) for v in versions)
            if rel == "packed-refs" and prefix and data.endswith(b"\n"):
                labels.add("packed-refs-cut-at-record-boundary")
            elif rel == "config" and prefix:
                labels.add("config-cut-still-parses")
            else:
                labels.add(f"torn:{rel}")
        elif rel.startswith("refs/"):
            if data not in writer.versions.get(rel, set()):
                labels.add(f"torn:{rel}")
        elif canonical.get(rel) != data:
            labels.add(f"torn:{rel}")
    if refs is not None and not writer.existed(refs, since):
        labels.add("refs-never-existed")
    return labels


def judge(reader: NaiveTar, start_files: dict[str, bytes], start_refs: dict[str, str], writer: Writer,
          canonical: dict[str, bytes], *, since: int, quiet: bool) -> tuple[Report, Report, set[str]]:
    """Properties 1-3 for one finished naive tar; returns both reports and the blind-spot labels of
    an accepted manifest-less archive."""
    tar = bytes(reader.out)
    rep = check(tar)
    rep_m = check(with_manifest(tar, manifest_of(start_files, start_refs)), "naive+manifest")
    labels: set[str] = set()
    if rep.sound:
        labels = classify(reader.members, hexrefs(rep), writer, canonical, since)
        assert labels <= BLIND_SPOTS, (
            f"snapcheck accepted a naive tar that is not a real state and not a known blind spot: {sorted(labels)}; "
            f"writer ops {writer.ops_done}, reader events {reader.events}")
        for lab in labels:
            event(f"accepted without manifest, blind spot: {lab}")
        if not labels:
            event("accepted without manifest: a real state")
    else:
        event("rejected without manifest")
    same = reader.members == start_files
    assert rep_m.sound == same, (
        f"with the manifest of the start state: sound={rep_m.sound} but the tar "
        f"{'holds' if same else 'does not hold'} that state exactly; errors "
        f"{[(f.code, f.path) for f in rep_m.errors][:5]}")
    if rep.sound and labels:
        event("blind spot closed by the manifest")
    if quiet:
        assert same
        assert rep.sound and hexrefs(rep) == start_refs, (
            f"a tar of a quiet mirror was rejected: {[(f.code, f.path, f.message) for f in rep.errors][:5]}")
    return rep, rep_m, labels


def event(name: str) -> None:
    """Count *name* in Hypothesis' statistics (a no-op in the plain tests)."""
    if currently_in_test_context():
        _hypothesis_event(name)


def _examples(default: int) -> int:
    """The example budget: bounded in CI and dev, larger under HYPOTHESIS_PROFILE=long."""
    profile_max = settings().max_examples  # the loaded profile's budget
    return default if profile_max <= 100 else max(default, profile_max // 10)


# ----------------------------------------------------------------------------------------------------
# property 1-3: naive tar vs git


@dataclass
class _Tar:
    """One naive tar in progress and the state it started from."""

    reader: NaiveTar
    files: dict[str, bytes]
    refs: dict[str, str]
    actions: int  # the writer's action count at the start
    state: int  # the writer's state number at the start
    judged: int = 0


class NaiveTarRace(RuleBasedStateMachine):
    """Four naive tars (BusyBox and GNU flavour, each in sorted and in shuffled readdir order) read
    the directory side by side while git writes it; each finished tar is judged and a new one starts."""

    FLAVOURS = (("busybox", False), ("busybox", True), ("gnu", False), ("gnu", True))

    def __init__(self) -> None:
        super().__init__()
        self.prep = prepared()
        self.tmp = Path(tempfile.mkdtemp(prefix="snapcheck-naive-"))
        self.root = copy_repo(self.prep.mirror, self.tmp / "live.git")
        self.writer = Writer(self.root, self.prep)
        self.tars: list[_Tar] = []
        self.judged = 0

    @initialize(rnd=st.randoms(use_true_random=False))
    def begin(self, rnd: random.Random) -> None:
        self.rnd = rnd
        self.tars = [self._new_tar(flavour, shuffled) for flavour, shuffled in self.FLAVOURS]

    def _new_tar(self, flavour: str, shuffled: bool) -> _Tar:
        return _Tar(NaiveTar(self.root, flavour, self.rnd.shuffle if shuffled else None),
                    snapshot_files(self.root), live_refs(self.root), self.writer.actions, self.writer.now)

    def _write(self, op: str, n: int) -> None:
        for _ in range(n):
            if not self.writer.busy:
                self.writer.start(op, self.rnd)
            self.writer.step()

    def _advance(self, i: int, until: Callable[[NaiveTar], bool] | None = None, steps: int = 1 << 30) -> None:
        tar = self.tars[i]
        for _ in range(steps):
            if until is not None and until(tar.reader):
                return
            tar.reader.step()
            if tar.reader.done:
                self._judge(tar)
                self.tars[i] = self._new_tar(*self.FLAVOURS[i])
                return

    @rule(op=st.sampled_from(Writer.OPS), writes=st.integers(0, 6), reads=st.integers(0, 8))
    def tick(self, op: str, writes: int, reads: int) -> None:
        """*writes* system calls of git (starting *op* when the last operation is complete), then
        *reads* system calls of every tar."""
        self._write(op, writes)
        for i in range(len(self.tars)):
            self._advance(i, steps=reads)

    @rule(where=st.sampled_from(["packed-refs", "config", "refs", "refs/heads", "refs/tags", "objects",
                                 "objects/pack"]))
    def read_to(self, where: str) -> None:
        """Run every tar up to *where*: for a file, until it has taken its size (lstat done, not yet
        read); for a directory, until just before it is listed (or to its end, if *where* is gone)."""

        def there(reader: NaiveTar) -> bool:
            if reader.cur is not None:
                return bool(reader.cur["rel"] == where and reader.cur["fd"] is None)
            return bool(reader.todo) and reader.todo[-1] == ("dir", where)

        for i in range(len(self.tars)):
            self._advance(i, until=there)

    @rule(op=st.sampled_from(Writer.OPS), writes=st.integers(6, 30))
    def burst(self, op: str, writes: int) -> None:
        """A run of git system calls while the tars are stalled (their output pipe is full): whole
        operations fit between an lstat and the read."""
        self._write(op, writes)

    def _judge(self, tar: _Tar) -> None:
        self.judged += 1
        quiet = self.writer.actions == tar.actions
        judge(tar.reader, tar.files, tar.refs, self.writer, self.prep.canonical, since=tar.state, quiet=quiet)
        for name in tar.reader.events:
            event(f"{tar.reader.flavour} tar saw a file that {name}")

    def teardown(self) -> None:
        try:
            if self.tars and self.judged == 0:
                # finish the first tar of each kind (the writer stands still from here on)
                for i in range(len(self.tars)):
                    self._advance(i)
            if self.writer.busy:
                self.writer.finish_op()
            # the writer's final state is a real git state: git agrees with the refs and finds nothing wrong
            assert live_refs(self.root) == for_each_ref(self.root)
            git("fsck", "--connectivity-only", "--no-dangling", cwd=self.root)
        finally:
            for tar in self.tars:
                tar.reader.close()
            shutil.rmtree(self.tmp, ignore_errors=True)


def for_each_ref(repo: Path) -> dict[str, str]:
    out = git("for-each-ref", "--format=%(objectname) %(refname)", cwd=repo)
    return {line.split(" ", 1)[1]: line.split(" ", 1)[0] for line in out.splitlines()}


NaiveTarRace.TestCase.settings = settings(
    settings.default, max_examples=_examples(30), stateful_step_count=15, deadline=None)
TestNaiveTarRace = NaiveTarRace.TestCase


# ----------------------------------------------------------------------------------------------------
# the blind spots, shown deterministically


def _fresh(tmp_path: Path) -> tuple[Prepared, Path, Writer]:
    prep = prepared()
    root = copy_repo(prep.mirror, tmp_path / "live.git")
    return prep, root, Writer(root, prep)


def packed_refs_first(names: list[str]) -> None:
    """A readdir order that lists packed-refs first (one of the orders GNU tar may meet)."""
    names.sort(key=lambda n: (n != "packed-refs", n))


def _read_until(reader: NaiveTar, rel: str) -> None:
    """Step the reader until it has taken the size of *rel* (lstat done, not yet opened)."""
    while not (reader.cur is not None and reader.cur["rel"] == rel):
        assert not reader.done, f"the reader never reached {rel}"
        reader.step()


def test_record_boundary_cut_is_accepted_without_manifest_and_rejected_with_it(tmp_path: Path) -> None:
    """BusyBox-style tar: lstat packed-refs; two fetches and a pack-refs rename a longer packed-refs
    over it (tags appended at its end); the tar reads the old size of the new file: a cut exactly at
    a record boundary that drops the refs/tags/t2 and t3 records while b01 and b02 already have their
    new values — a state git never had (t2 was created before b02 moved).  Nothing in the archive
    can show it; the manifest of the state the tar started from does."""
    prep, root, writer = _fresh(tmp_path)
    start_files, start_refs, since = snapshot_files(root), live_refs(root), writer.now
    reader = NaiveTar(root, "busybox", packed_refs_first)  # objects/ and refs/ are read after the writes
    _read_until(reader, "packed-refs")
    rnd = random.Random(0)
    for op in ("fetch-pack", "fetch-pack", "pack-refs"):
        assert writer.start(op, rnd) == op
        writer.finish_op()
    reader.run()
    member = reader.members["packed-refs"]
    assert len(member) == len(start_files["packed-refs"]) and member.endswith(b"\n")
    assert member not in writer.versions["packed-refs"]
    rep, rep_m, labels = judge(reader, start_files, start_refs, writer, prep.canonical, since=since, quiet=False)
    assert rep.sound, [(f.code, f.message) for f in rep.errors]  # the documented blind spot
    assert labels == {"packed-refs-cut-at-record-boundary", "refs-never-existed"}
    assert "refs/tags/t2" not in rep.refs and "refs/tags/t3" not in rep.refs
    assert rep.refs["refs/heads/b02"].hex() == prep.batches[1].updates[0][1]
    assert not rep_m.sound
    codes = {f.code for f in rep_m.errors}
    assert {"manifestFileDigestMismatch", "manifestRefMismatch"} <= codes, codes


def test_cut_mid_line_is_rejected_without_manifest(tmp_path: Path) -> None:
    """The seed bug: a new head sorts before the tags, so the old size ends mid-line."""
    _, root, writer = _fresh(tmp_path)
    rnd = random.Random(0)
    for op in ("fetch-pack", "fetch-pack", "pack-refs"):  # t2 and t3 packed
        writer.start(op, rnd)
        writer.finish_op()
    reader = NaiveTar(root, "busybox")
    _read_until(reader, "packed-refs")
    for op in ("fetch-pack", "pack-refs"):  # packs refs/heads/b04 before the tags
        writer.start(op, rnd)
        writer.finish_op()
    reader.run()
    rep = check(bytes(reader.out))
    assert not rep.sound
    assert "packedRefsUnterminated" in {f.code for f in rep.errors}, [(f.code, f.message) for f in rep.errors]
    assert any("unterminated line in ./packed-refs" in f.message for f in rep.errors)


def test_cross_file_skew_is_accepted_without_manifest_and_rejected_with_it(tmp_path: Path) -> None:
    """Each ref file whole, read at different moments: the old packed-refs, then refs/ after pack-refs
    deleted the loose refs/heads/b02 it had packed.  The archive shows b02's older packed value —
    no syntax shows it, the manifest does."""
    prep, root, writer = _fresh(tmp_path)
    start_files, start_refs, since = snapshot_files(root), live_refs(root), writer.now
    reader = NaiveTar(root, "gnu")  # sorted: packed-refs is read before refs/
    while "packed-refs" not in reader.members:
        reader.step()
    writer.start("pack-refs", random.Random(0))
    writer.finish_op()
    reader.run()
    assert "refs/heads/b02" not in reader.members
    rep, rep_m, labels = judge(reader, start_files, start_refs, writer, prep.canonical, since=since, quiet=False)
    assert rep.sound
    assert labels == {"refs-never-existed"}
    assert rep.refs["refs/heads/b02"].hex() != start_refs["refs/heads/b02"]
    assert not rep_m.sound and "manifestRefMismatch" in {f.code for f in rep_m.errors}


def test_config_cut_that_still_parses_is_accepted_without_manifest_and_rejected_with_it(tmp_path: Path) -> None:
    """`git config gc.auto 100` renames a longer config over the one the tar took the size of: the
    tar stores ``auto = 10`` without its final LF, which git reads as gc.auto = 10 (a value that
    never existed).  config has no checksum; only the manifest tells."""
    prep, root, writer = _fresh(tmp_path)
    rnd = random.Random(0)
    for _ in range(2):  # gc.auto = 100, then gc.auto = 0
        writer.start("config", rnd)
        writer.finish_op()
    start_files, start_refs, since = snapshot_files(root), live_refs(root), writer.now
    reader = NaiveTar(root, "busybox")
    _read_until(reader, "config")
    writer.start("config", rnd)  # gc.auto = 100
    writer.finish_op()
    reader.run()
    assert reader.members["config"].endswith(b"\tauto = 10")
    rep, rep_m, labels = judge(reader, start_files, start_refs, writer, prep.canonical, since=since, quiet=False)
    assert rep.sound and labels == {"config-cut-still-parses"}
    assert not rep_m.sound and "manifestFileDigestMismatch" in {f.code for f in rep_m.errors}  # same size


def test_quiet_naive_tar_is_accepted_both_ways(tmp_path: Path) -> None:
    prep, root, writer = _fresh(tmp_path)
    for flavour in ("busybox", "gnu"):
        reader = NaiveTar(root, flavour, random.Random(3).shuffle)
        files, refs = snapshot_files(root), live_refs(root)
        reader.run()
        rep, rep_m, labels = judge(reader, files, refs, writer, prep.canonical, since=writer.now, quiet=True)
        assert rep.sound and rep_m.sound and not labels
        assert rep_m.summary.manifest


# ----------------------------------------------------------------------------------------------------
# snapcheck's archiver under the same writer


class Stepper:
    """Runs *fn* in a thread that stops at every :meth:`gate` until :meth:`step` lets it go on, so the
    main thread can interleave other work between the thread's steps deterministically."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self._fn = fn
        self._go = threading.Semaphore(0)
        self._stopped = threading.Semaphore(0)
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None
        self.gates: list[str] = []
        self.thread = threading.Thread(target=self._run, name="archiver-under-test", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self._go.acquire()
        try:
            self.result = self._fn()
        except BaseException as e:
            self.error = e
        finally:
            self.done = True
            self._stopped.release()

    def gate(self, label: str) -> None:
        if threading.current_thread() is not self.thread:
            return  # helper threads (the verifier behind the tee) run freely
        self.gates.append(label)
        self._stopped.release()
        self._go.acquire()

    def step(self) -> None:
        if self.done:
            return
        self._go.release()
        if not self._stopped.acquire(timeout=120):
            raise AssertionError(f"the archiver did not reach its next step (last: {self.gates[-1:]})")

    def finish(self) -> None:
        while not self.done:
            self.step()
        self.thread.join(timeout=60)


class _GatedOs:
    """``os`` as the capture module sees it, with ``link`` stopping at a gate first."""

    def __init__(self, gate: Callable[[str], None]) -> None:
        self._gate = gate

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def link(self, src: Any, dst: Any, **kw: Any) -> None:
        self._gate(f"link {Path(src).name}")
        os.link(src, dst, **kw)


@contextlib.contextmanager
def gated_capture(gate: Callable[[str], None]) -> Iterator[None]:
    """Make every capture step of ``snapcheck.archive.archive`` stop at *gate*: each careful read of
    a ref file, each directory walked, each hard link or copy, and the point between the phases."""
    real_read, real_copy, real_walk = capture_mod._read_stable, capture_mod._copy_stable, capture_mod._walk
    real_capture = vars(archive_mod)["capture_mirror"]

    def read_stable(path: Path, rel: str) -> Any:
        gate(f"read {rel}")
        return real_read(path, rel)

    def copy_stable(src: Path, dst: Path, rel: str, buf: bytearray) -> Any:
        gate(f"copy {rel}")
        return real_copy(src, dst, rel, buf)

    def walk(root: Path, rel: str, skip: Callable[[str], bool]) -> Iterator[Any]:
        gate(f"walk {rel}")
        yield from real_walk(root, rel, skip)

    def capture_mirror(mirror: Path, staging_parent: Path | None = None, **kw: Any) -> Any:
        return real_capture(mirror, staging_parent, _between_phases=lambda: gate("between phases"), **kw)

    patches: list[tuple[Any, str, Any]] = [
        (capture_mod, "_read_stable", read_stable), (capture_mod, "_copy_stable", copy_stable),
        (capture_mod, "_walk", walk), (capture_mod, "os", _GatedOs(gate)),
        (archive_mod, "capture_mirror", capture_mirror),
    ]
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    for obj, name, new in patches:
        setattr(obj, name, new)
    try:
        yield
    finally:
        for obj, name, old in saved:
            setattr(obj, name, old)


def bucket_listing(bucket: Path) -> list[str]:
    """Everything in a local bucket but its metadata directory (temp files included)."""
    out = []
    for d, dirs, files in os.walk(bucket):
        dirs[:] = [x for x in dirs if x != ".snapcheck-meta"]
        out += [(Path(d) / f).relative_to(bucket).as_posix() for f in files]
    return sorted(out)


class ArchiverRace(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.prep = prepared()
        self.tmp = Path(tempfile.mkdtemp(prefix="snapcheck-archiver-"))
        self.root = copy_repo(self.prep.mirror, self.tmp / "live.git")
        self.writer = Writer(self.root, self.prep)
        self.bucket = self.tmp / "bucket"
        self.bucket.mkdir()
        self.dest = self.bucket / "git" / "live.tar.zst"
        self.stepper: Stepper | None = None
        self._patch: contextlib.ExitStack | None = None

    @initialize(attempts=st.sampled_from([1, 2, 4]), rnd=st.randoms(use_true_random=False))
    def begin(self, attempts: int, rnd: random.Random) -> None:
        self.rnd = rnd
        self.attempts = attempts
        self._patch = contextlib.ExitStack()
        self._patch.enter_context(gated_capture(lambda label: self._gate(label)))
        options = ArchiveOptions(publish=PublishOptions(baseline="none"), max_attempts=attempts)
        self.stepper = Stepper(lambda: archive_mod.archive(self.root, str(self.dest), options))

    def _gate(self, label: str) -> None:
        assert self.stepper is not None
        self.stepper.gate(label)

    @rule(op=st.sampled_from(Writer.OPS), writes=st.integers(0, 6), steps=st.integers(0, 8))
    def tick(self, op: str, writes: int, steps: int) -> None:
        """*writes* system calls of git, then *steps* steps of the archiver."""
        assert self.stepper is not None
        for _ in range(writes):
            if not self.writer.busy:
                self.writer.start(op, self.rnd)
            self.writer.step()
        for _ in range(steps):
            self.stepper.step()

    def teardown(self) -> None:
        try:
            if self.stepper is None:
                return
            self.stepper.finish()  # the writer stands still from here on
            event(f"archiver steps: {min(len(self.stepper.gates) // 20 * 20, 200)}+")
            self._check(self.stepper)
        finally:
            if self._patch is not None:
                self._patch.close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _check(self, s: Stepper) -> None:
        assert [p.name for p in self.tmp.iterdir() if ".snapcheck-capture-" in p.name] == [], "staging dir left"
        if isinstance(s.error, CaptureError):
            event("capture failed cleanly")
            assert s.error.exit_code == 3
            assert bucket_listing(self.bucket) == [], "a failed capture published something"
            return
        if s.error is not None:
            raise s.error
        res: ArchiveResult = s.result
        report = res.publish.report
        assert res.publish.committed, (
            f"the archiver produced an archive that does not verify: "
            f"{[(f.code, f.path, f.message) for f in report.errors][:5]}; writer ops {self.writer.ops_done}")
        assert bucket_listing(self.bucket) == ["git/live.tar.zst"]
        again = verify_file(self.dest)
        assert again.sound and again.summary.manifest
        refs = hexrefs(again)
        assert self.writer.existed(refs), f"the archive holds refs git never had; writer ops {self.writer.ops_done}"
        event(f"archived after {res.attempts} attempt(s)")
        if refs != self.writer.states[0]:
            event("archived a state after the start")


ArchiverRace.TestCase.settings = settings(
    settings.default, max_examples=_examples(25), stateful_step_count=15, deadline=None)
TestArchiverRace = ArchiverRace.TestCase


def test_gated_archiver_takes_many_steps(tmp_path: Path) -> None:
    """The gates really sit inside the capture (so the machine above interleaves with its phases)."""
    _, root, writer = _fresh(tmp_path)
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    holder: list[Stepper] = []
    with gated_capture(lambda label: holder[0].gate(label)):
        options = ArchiveOptions(publish=PublishOptions(baseline="none"), max_attempts=3)
        s = Stepper(lambda: archive_mod.archive(root, str(bucket / "a.tar.zst"), options))
        holder.append(s)
        rnd = random.Random(1)
        # let it reach the point between the phases of attempt 1, move a ref there, then let it run
        while not s.done and "between phases" not in s.gates:
            s.step()
        writer.start("update-ref", rnd)
        writer.finish_op()
        s.finish()
    assert s.error is None, s.error
    kinds = {g.split(" ")[0] for g in s.gates}
    assert {"read", "walk", "link", "between"} <= kinds, kinds
    assert s.result.attempts == 2  # the refs moved between the phases: the capture started over
    assert hexrefs(verify_file(bucket / "a.tar.zst")) == writer.states[-1]

