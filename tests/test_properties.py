"""Properties that close the gaps left by the per-parser test files (which already hold an
"arbitrary bytes never raise" property for every parser, see ``grep -l hypothesis tests/``):

* the whole pipeline (compression + tar + collector + every parser + graph + policy) on arbitrary
  bytes: a verdict, never an exception;
* mutations of files made by the real git are either rejected or still mean the same thing to git:
  whole archives (restored, then compared with the original mirror by git itself), loose objects,
  commits/trees/tags (against ``git fsck``), ``HEAD`` and loose refs (against ``git rev-parse``);
* the tar reader's symlink rule: whatever sequence of directories, files and symlinks an archive
  holds, the members :class:`~snapcheck.sources.tar.TarStream` lets through, extracted by GNU tar,
  leave no symlink that resolves outside the extraction directory.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from snapcheck.gitformats.common import SHA1
from snapcheck.gitformats.loose_object import check_loose_object
from snapcheck.gitformats.loose_refs import parse_head, parse_loose_ref
from snapcheck.gitformats.objects import OBJ_COMMIT, OBJ_TAG, OBJ_TREE, check_object_format
from snapcheck.options import Limits, VerifyOptions
from snapcheck.report import Finding, Level, Severity, code_info
from snapcheck.restore import restore_stream
from snapcheck.sources.base import EntryKind
from snapcheck.sources.tar import TarStream
from snapcheck.verifier import verify_stream

from archives import tar_dir
from gitrepos import GIT_ENV, copy_repo, git

Mirrors = Callable[[str], Path]
FIXTURES = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]


def errors(findings: list[Finding]) -> set[str]:
    return {f.code for f in findings if f.severity is Severity.ERROR}


# ============================================================================ the tar symlink rule
def tar_of_members(members: list[tuple[str, str, str]]) -> bytes:
    """A tar of ``(kind, path, link target)``: kind ``d`` directory, ``f`` file, ``s`` symlink."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for kind, path, target in members:
            ti = tarfile.TarInfo("./" + path)
            ti.mtime = 1700000000
            if kind == "d":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(ti)
            elif kind == "s":
                ti.type, ti.linkname = tarfile.SYMTYPE, target
                tf.addfile(ti)
            else:
                ti.size = 2
                tf.addfile(ti, io.BytesIO(b"f\n"))
    return buf.getvalue()


def through_tarstream(data: bytes) -> tuple[list[tuple[str, str, str]], list[Finding]]:
    findings: list[Finding] = []
    kept = []
    for e in TarStream(io.BytesIO(data), limits=Limits(), findings=findings, label="t").entries():
        if e.stream is not None:
            e.stream.read()
        kind = {EntryKind.DIR: "d", EntryKind.SYMLINK: "s", EntryKind.FILE: "f"}.get(e.kind)
        if kind is not None and e.path:
            kept.append((kind, e.path, e.link_target or ""))
    return kept, findings


def gnu_extract(data: bytes, base: Path) -> Path:
    """Extract with GNU tar into base/x/y/root (escapes land inside base); return root."""
    root = base / "x" / "y" / "root"
    root.mkdir(parents=True)
    subprocess.run(["tar", "-xf", "-", "--no-same-owner", "-C", str(root)], input=data, capture_output=True)
    return root


def escaping_links(root: Path) -> list[str]:
    """Symlinks below *root* that the kernel (as far as it gets) resolves outside it."""
    real_root = os.path.realpath(root)
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            if os.path.islink(p):
                r = os.path.realpath(p)
                if r != real_root and not r.startswith(real_root + os.sep):
                    out.append(f"{os.path.relpath(p, root)} -> {os.readlink(p)} resolves to {r}")
    return out


def test_reordered_symlink_chain_is_refused(tmp_path: Path) -> None:
    """``s2 -> d/s1/../outside`` is lexically inside when it comes; ``d/s1 -> ..`` later makes it escape.
    GNU tar extracts all three and s2 then leaves the directory; TarStream refuses s2 (the '..' follows
    d/s1, which is not known to be a real directory when s2 is read)."""
    members = [("s", "s2", "d/s1/../outside"), ("d", "d", ""), ("s", "d/s1", "..")]
    data = tar_of_members(members)
    assert escaping_links(gnu_extract(data, tmp_path / "raw")) != []  # the hazard is real
    kept, findings = through_tarstream(data)
    assert [(f.code, f.path) for f in findings if f.severity is Severity.ERROR] == [("tarLinkEscapes", "s2")]
    assert kept == members[1:]
    assert escaping_links(gnu_extract(tar_of_members(kept), tmp_path / "kept")) == []


def test_symlink_replacing_a_directory_is_refused(tmp_path: Path) -> None:
    """``s -> d/../x`` is safe while d is a directory; GNU tar replaces the empty d by ``d -> .`` and
    s then climbs out.  TarStream refuses a symlink over a directory it has seen."""
    members = [("d", "d", ""), ("s", "s", "d/../x"), ("s", "d", ".")]
    data = tar_of_members(members)
    assert escaping_links(gnu_extract(data, tmp_path / "raw")) != []
    kept, findings = through_tarstream(data)
    assert [(f.code, f.path) for f in findings if f.severity is Severity.ERROR] == [("tarLinkEscapes", "d")]
    assert escaping_links(gnu_extract(tar_of_members(kept), tmp_path / "kept")) == []


def test_dotdot_after_known_directories_is_accepted() -> None:
    """No false reject: '..' after directories seen earlier (members, or parents of members) is fine."""
    members = [("f", "objects/pack/p", ""), ("s", "a/l", "../objects/pack/../pack/p"),
               ("d", "refs/heads", ""), ("s", "refs/l", "heads/../../objects/pack/p")]
    kept, findings = through_tarstream(tar_of_members(members))
    assert findings == [] and kept == members


_NAMES = ["a", "b", "c", "a/b", "a/c", "b/a", "b/c", "a/b/c"]
_TARGET = st.lists(st.sampled_from(["a", "b", "c", "..", "."]), min_size=1, max_size=4).map("/".join)
_MEMBER = st.one_of(
    st.tuples(st.just("d"), st.sampled_from(_NAMES), st.just("")),
    st.tuples(st.just("f"), st.sampled_from(_NAMES), st.just("")),
    st.tuples(st.just("s"), st.sampled_from(_NAMES), _TARGET),
)


@settings(max_examples=60, deadline=None, suppress_health_check=FIXTURES)
@given(st.lists(_MEMBER, min_size=1, max_size=7))
def test_no_member_sequence_leaves_an_escaping_symlink(tmp_path_factory: pytest.TempPathFactory,
                                                        members: list[tuple[str, str, str]]) -> None:
    kept, _ = through_tarstream(tar_of_members(members))
    root = gnu_extract(tar_of_members(kept), tmp_path_factory.mktemp("seq"))
    assert escaping_links(root) == [], (members, kept)
    assert sorted(os.listdir(root.parent.parent.parent)) == ["x"]


# ============================================================================ the whole pipeline
_PREFIXES = [b"", b"\x28\xb5\x2f\xfd", b"\x50\x2a\x4d\x18\x04\0\0\0", b"\x1f\x8b\x08\0\0\0\0\0\0\3"]


def _tar_header_prefix() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        ti = tarfile.TarInfo("./HEAD")
        ti.size = 21
        tf.addfile(ti, io.BytesIO(b"ref: refs/heads/main\n"))
    return buf.getvalue()[:1024]


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=3000), st.sampled_from([*_PREFIXES, _tar_header_prefix()]),
       st.sampled_from([Level.QUICK, Level.STANDARD, Level.FULL]))
def test_verify_stream_on_arbitrary_bytes_gives_a_verdict(data: bytes, prefix: bytes, level: Level) -> None:
    report = verify_stream(io.BytesIO(prefix + data), VerifyOptions(level=level), label="x")
    assert report.verdict == "corrupt" and report.exit_code == 1
    for f in report.findings:
        assert code_info(f.code).code == f.code and f.message


def _git_view(repo: Path) -> tuple[str, str, str, str]:
    """What git sees: refs, HEAD, every object, and what fsck says."""
    refs = git("for-each-ref", "--format=%(objectname) %(refname)", cwd=repo)
    head = subprocess.run(["git", "symbolic-ref", "-q", "HEAD"], cwd=repo, capture_output=True, env=GIT_ENV).stdout
    objects = git("cat-file", "--batch-all-objects", "--batch-check", cwd=repo)
    fsck = subprocess.run(["git", "fsck", "--full", "--no-dangling", "--no-progress"], cwd=repo,
                          capture_output=True, env=GIT_ENV)
    return refs, head.decode(), objects, f"{fsck.returncode} {fsck.stdout.decode()}"


@pytest.fixture(scope="module")
def small_mirror(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes, tuple[str, str, str, str]]:
    """A small real mirror (a few commits, a pack, packed-refs, a loose ref), its plain tar and git's view."""
    base = tmp_path_factory.mktemp("small")
    work = base / "work"
    git("init", "-q", "-b", "main", str(work))
    for i in range(3):
        (work / f"f{i}").write_text(f"file {i}\n" * (i + 1))
        git("add", ".", cwd=work)
        git("commit", "-q", "-m", f"c{i}", cwd=work)
    git("tag", "-a", "-m", "t", "v1", cwd=work)
    mirror = base / "m.git"
    git("clone", "-q", "--mirror", "--no-local", str(work), str(mirror))
    git("update-ref", "refs/heads/loose", "HEAD~1", cwd=mirror)
    data = tar_dir(mirror)
    return mirror, data, _git_view(mirror)


@settings(max_examples=40, deadline=None, suppress_health_check=FIXTURES)
@given(st.data())
def test_a_mutated_archive_is_rejected_or_restores_the_same_repository(
        small_mirror: tuple[Path, bytes, tuple[str, str, str, str]], tmp_path_factory: pytest.TempPathFactory,
        data: st.DataObject) -> None:
    """Flip, insert, delete or cut bytes of a real mirror's tar; restore it.  Either the restore refuses
    (and leaves nothing), or git sees exactly the original repository in what was installed."""
    _mirror, tar, view = small_mirror
    b = bytearray(tar)
    rnd = data.draw(st.randoms(use_true_random=True), label="positions")  # uniform over the archive
    for _ in range(data.draw(st.integers(1, 2), label="mutations")):
        pos = rnd.randrange(len(b))
        how = data.draw(st.sampled_from(["flip", "flip", "set", "set", "insert", "delete"]), label="how")
        if how == "flip":
            b[pos] ^= 1 << data.draw(st.integers(0, 7))
        elif how == "set":
            b[pos] = data.draw(st.sampled_from([0, 0x0A, 0x20, 0x2E, 0x2F, 0x30, 0x37, 0x61, 0xFF]))
        elif how == "insert":
            b[pos:pos] = bytes([data.draw(st.integers(0, 255))])
        else:
            del b[pos]
    if data.draw(st.integers(0, 4), label="cut?") == 0:
        del b[rnd.randrange(len(b) + 1) :]
    assume(bytes(b) != tar)
    dest = tmp_path_factory.mktemp("restore") / "dest"
    result = restore_stream(io.BytesIO(bytes(b)), dest, VerifyOptions(level=Level.FULL), label="m.tar")
    if not result.installed:
        assert not result.report.sound and not dest.exists()
        assert os.listdir(dest.parent) == []
        return
    assert _git_view(dest) == view, [(f.code, f.message) for f in result.report.findings]


# ============================================================================ loose objects vs git fsck
@pytest.fixture(scope="module")
def loose_repo(mirrors: Mirrors) -> tuple[Path, list[Path]]:
    m = mirrors("loose")
    objs = sorted(p for p in (m / "objects").glob("??/*") if p.is_file())
    return m, objs


def _mutate(raw: bytes, data: st.DataObject) -> bytes:
    b = bytearray(raw)
    how = data.draw(st.sampled_from(["flip", "set", "insert", "delete", "cut", "append"]), label="how")
    pos = data.draw(st.integers(0, len(b) - 1), label="pos")
    if how == "flip":
        b[pos] ^= 1 << data.draw(st.integers(0, 7))
    elif how == "set":
        b[pos] = data.draw(st.integers(0, 255))
    elif how == "insert":
        b[pos:pos] = data.draw(st.binary(min_size=1, max_size=3))
    elif how == "delete":
        del b[pos]
    elif how == "cut":
        del b[pos:]
    else:
        b += data.draw(st.binary(min_size=1, max_size=8))
    return bytes(b)


@settings(max_examples=40, deadline=None, suppress_health_check=FIXTURES)
@given(st.data())
def test_mutated_loose_object_rejected_exactly_when_git_fsck_fails(
        loose_repo: tuple[Path, list[Path]], tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    mirror, objs = loose_repo
    src = data.draw(st.sampled_from(objs), label="object")
    raw = src.read_bytes()
    mutated = _mutate(raw, data)
    assume(mutated != raw)
    rel = src.relative_to(mirror).as_posix()
    obj, fs = check_loose_object(mutated, rel, SHA1, verify_hash=True)
    assert (obj is None) == bool(errors(fs))
    if obj is not None:  # accepted: it is the same object
        assert obj[1] == zlib.decompress(raw).split(b"\0", 1)[1]
    repo = copy_repo(mirror, tmp_path_factory.mktemp("lo") / "r.git")
    (repo / rel).write_bytes(mutated)
    fsck = subprocess.run(["git", "fsck", "--no-dangling", "--no-progress"], cwd=repo, capture_output=True,
                          env=GIT_ENV)
    assert (obj is None) == (fsck.returncode != 0), ([f.message for f in fs], fsck.stderr.decode()[-800:])


# ============================================================================ commits, trees, tags vs git fsck
_GIT_LINE = re.compile(r"^(error|warning) in (\w+) ([0-9a-f]{40}): (\w+): ")
_GIT_UNPARSEABLE = re.compile(r"^error: ([0-9a-f]{40}): object (?:could not be parsed|corrupt or missing)")


@pytest.fixture(scope="module")
def real_objects(mirrors: Mirrors) -> list[tuple[str, bytes]]:
    """Every commit, tree and tag of a real mirror, as (type, content)."""
    m = mirrors("gc_bitmaps")
    lines = git("cat-file", "--batch-all-objects", "--batch-check=%(objecttype) %(objectname)", cwd=m).split("\n")
    out = []
    for line in lines:
        if line and not line.startswith("blob"):
            kind, oid = line.split()
            content = subprocess.run(["git", "cat-file", kind, oid], cwd=m, capture_output=True, env=GIT_ENV,
                                     check=True).stdout
            out.append((kind, content))
    return out


_INTERESTING = [0x00, 0x09, 0x0A, 0x20, 0x2B, 0x2D, 0x2E, 0x2F, 0x30, 0x31, 0x3C, 0x3E, 0x40, 0x61, 0x80, 0xFF]


@settings(max_examples=25, deadline=None, suppress_health_check=FIXTURES)
@given(st.data())
def test_mutated_objects_rejected_exactly_when_git_fsck_reports_an_error(
        real_objects: list[tuple[str, bytes]], tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    """Eight mutated commits/trees/tags per example, written with ``hash-object --literally`` and judged
    by one ``git fsck``: snapcheck's object checks find an error exactly when git does."""
    repo = tmp_path_factory.mktemp("objs") / "r.git"
    git("init", "-q", "--bare", str(repo))
    files = []
    cases = []
    for i in range(8):
        kind, content = data.draw(st.sampled_from(real_objects), label="object")
        b = bytearray(content)
        pos = data.draw(st.integers(0, len(b) - 1), label="pos")
        how = data.draw(st.sampled_from(["set", "insert", "delete"]), label="how")
        if how == "set":
            b[pos] = data.draw(st.sampled_from(_INTERESTING))
        elif how == "insert":
            b[pos:pos] = bytes([data.draw(st.sampled_from(_INTERESTING))])
        else:
            del b[pos]
        f = repo / f"obj{i}"
        f.write_bytes(bytes(b))
        files.append(f)
        cases.append((kind, bytes(b)))
    oids = []
    for (kind, _), f in zip(cases, files, strict=True):
        oids.append(git("hash-object", "-t", kind, "--literally", "-w", str(f), cwd=repo).strip())
    res = subprocess.run(["git", "fsck", "--no-dangling", "--no-progress"], cwd=repo, capture_output=True,
                         env=GIT_ENV)
    bad_by_git: set[str] = set()
    for line in (res.stdout + res.stderr).decode(errors="replace").splitlines():
        m = _GIT_LINE.match(line)
        if m and m.group(1) == "error":
            bad_by_git.add(m.group(3))
        m2 = _GIT_UNPARSEABLE.match(line)
        if m2:
            bad_by_git.add(m2.group(1))
    types = {"commit": OBJ_COMMIT, "tree": OBJ_TREE, "tag": OBJ_TAG}
    for (kind, content), oid in zip(cases, oids, strict=True):
        fs = check_object_format(types[kind], content, bytes.fromhex(oid), SHA1, "objects/x")
        assert bool(errors(fs)) == (oid in bad_by_git), (kind, content, [f.message for f in fs],
                                                          (res.stdout + res.stderr).decode()[-1500:])


# ============================================================================ HEAD and loose refs vs git
@settings(max_examples=40, deadline=None, suppress_health_check=FIXTURES)
@given(st.data())
def test_mutated_head_and_loose_refs_rejected_or_read_alike_by_git(
        mirrors: Mirrors, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    """A mutated HEAD or loose ref that snapcheck accepts resolves, for git, to exactly what snapcheck read."""
    mirror = mirrors("loose")
    name = data.draw(st.sampled_from(["HEAD", "refs/heads/main", "refs/heads/dev", "refs/tags/light-1"]))
    raw = (mirror / name).read_bytes()
    mutated = _mutate(raw, data)
    assume(mutated != raw)
    if name == "HEAD":
        ref, fs = parse_head(mutated, SHA1)
    else:
        ref, fs = parse_loose_ref(mutated, name, SHA1, name)
    if errors(fs) or ref is None:
        return
    repo = tmp_path_factory.mktemp("refs") / "r.git"
    shutil.copytree(mirror, repo, symlinks=True)
    (repo / name).write_bytes(mutated)
    if ref.symref is not None:
        got = subprocess.run(["git", "symbolic-ref", name], cwd=repo, capture_output=True, env=GIT_ENV)
        want = ref.symref.encode("utf-8", "surrogateescape")
        assert got.returncode == 0 and got.stdout.rstrip(b"\n") == want, (mutated, got.stderr)
    else:
        assert ref.oid is not None
        got = subprocess.run(["git", "rev-parse", "--verify", "-q", name], cwd=repo, capture_output=True,
                             env=GIT_ENV)
        assert got.returncode == 0 and got.stdout.decode().strip() == ref.oid.hex(), (mutated, got.stderr)


# ============================================================================ the fuzz targets, on their seeds
FUZZ_DIR = Path(__file__).resolve().parent.parent / "fuzz"


@pytest.fixture(scope="module")
def fuzz_seeds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import sys

    sys.path.insert(0, str(FUZZ_DIR))
    import make_seeds

    return make_seeds.build(tmp_path_factory.mktemp("seeds"))


@pytest.mark.parametrize("target", sorted(p.stem for p in FUZZ_DIR.glob("fuzz_*.py")))
def test_fuzz_target_runs_clean_on_its_seeds(fuzz_seeds: dict[str, Path], target: str) -> None:
    """Every fuzz target has seeds and accepts them (and a few cut and flipped copies) without a crash."""
    import importlib

    mod = importlib.import_module(target)
    seeds = sorted(fuzz_seeds[target[5:]].iterdir())
    assert seeds
    for p in seeds:
        data = p.read_bytes()
        for variant in (data, data[: len(data) // 2], bytes([data[0] ^ 0x40]) + data[1:] if data else b"", b""):
            mod.TestOneInput(variant)
