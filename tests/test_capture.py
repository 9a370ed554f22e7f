"""Consistent capture of live mirrors (snapcheck.capture), against the real git binary.

Every capture is compared with what git itself says about the mirror (``git for-each-ref``,
``git symbolic-ref``, ``git fsck``), and the races are real: git processes write the mirror while
the capture runs (fetch, pack-refs, repack -ad, update-ref), or a hook runs real git commands between
the capture's phases.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import random
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import snapcheck.capture as capture_mod
from snapcheck.archive_writer import build_manifest, write_archive
from snapcheck.capture import Capture, CaptureError, capture_mirror
from snapcheck.errors import UsageError

from gitrepos import BUILDERS, GIT_ENV, build_work, git, git_rc

CONFIGS = list(BUILDERS)  # every configuration the fixtures build
TOP_FILES = ("HEAD", "config", "packed-refs", "description", "shallow")


def for_each_ref(repo: Path) -> dict[str, str]:
    out = git("for-each-ref", "--format=%(objectname) %(refname)", cwd=repo)
    return {line.split(" ", 1)[1]: line.split(" ", 1)[0] for line in out.splitlines()}


def head_target(repo: Path) -> str | None:
    rc, out, _ = git_rc("symbolic-ref", "-q", "HEAD", cwd=repo)
    return out.strip() if rc == 0 else None


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def expected_files(mirror: Path) -> set[str]:
    """The files a capture must stage: objects/, refs/, info/ and the top-level files, minus what git
    is still writing."""
    out = {name for name in TOP_FILES if (mirror / name).is_file()}
    for sub in ("objects", "refs", "info"):
        for p in (mirror / sub).rglob("*"):
            if p.is_file() and not p.name.endswith(".lock") and not p.name.startswith("tmp_"):
                out.add(p.relative_to(mirror).as_posix())
    return out


def fsck(repo: Path) -> None:
    rc, out, err = git_rc("fsck", "--no-dangling", cwd=repo)
    assert rc == 0, f"git fsck failed in {repo}: {out}{err}"
    assert "error" not in err.lower(), err


def leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if ".snapcheck-capture-" in p.name]


def check_capture_equals_mirror(c: Capture, mirror: Path) -> None:
    assert {n: o.hex() for n, o in c.refs.items()} == for_each_ref(mirror)
    assert c.head_target == head_target(mirror)
    assert c.head_oid is not None
    assert c.head_oid.hex() == git("rev-parse", "--verify", "HEAD", cwd=mirror).strip()
    assert set(c.files) == expected_files(mirror)
    for rel, (size, digest) in c.files.items():
        assert (c.staging / rel).stat().st_size == size, rel
        assert sha256(mirror / rel) == digest, rel
        assert sha256(c.staging / rel) == digest, rel


# --------------------------------------------------------------------------------------------------
# every configuration, quiet mirror


@pytest.mark.parametrize("name", CONFIGS)
def test_capture_equals_mirror(mirrors: Callable[[str], Path], name: str) -> None:
    mirror = mirrors(name)
    with capture_mirror(mirror) as c:
        assert c.attempts == 1
        assert c.staging.parent == mirror.resolve().parent
        check_capture_equals_mirror(c, mirror)
        assert c.object_format == ("sha256" if name == "sha256" else "sha1")
        packs = list((mirror / "objects/pack").glob("pack-*.idx"))
        assert c.pack_count == len(packs)
        loose = [p for p in (mirror / "objects").glob("??/*")]
        # object files are hard links to the mirror's (same inode); ref files and .keep files (git
        # writes those in place) are private copies
        linked = [r for r in c.files if r.startswith("objects/") and not r.endswith(".keep")]
        for rel in c.files:
            same = (c.staging / rel).stat().st_ino == (mirror / rel).stat().st_ino
            assert same == (rel in linked), rel
        assert c.linked == len(linked)
        if name == "loose":
            assert c.pack_count == 0 and c.object_count == len(loose) > 0
        fsck(c.staging)
        assert for_each_ref(c.staging) == for_each_ref(mirror)
        staging = c.staging
    assert not staging.exists()
    assert leftovers(mirror.resolve().parent) == []


def test_capture_symrefs_and_detached_head(mirror_copy: Callable[[str], Path]) -> None:
    m = mirror_copy("gc_bitmaps")
    git("symbolic-ref", "refs/remotes/origin/HEAD", "refs/heads/dev", cwd=m)
    git("update-ref", "--no-deref", "HEAD", git("rev-parse", "dev", cwd=m).strip(), cwd=m)
    with capture_mirror(m) as c:
        assert c.symrefs == {"refs/remotes/origin/HEAD": "refs/heads/dev"}
        assert c.refs["refs/remotes/origin/HEAD"] == c.refs["refs/heads/dev"]
        assert c.head_target is None
        assert c.head_oid is not None and c.head_oid.hex() == git("rev-parse", "dev", cwd=m).strip()
        check_capture_equals_mirror(c, m)


def test_skips_what_git_is_still_writing(mirror_copy: Callable[[str], Path]) -> None:
    m = mirror_copy("gc_bitmaps")
    before = for_each_ref(m)
    junk = {
        "packed-refs.lock": b"garbage",
        "packed-refs.new": b"garbage",
        "refs/heads/main.lock": b"x",
        "objects/pack/tmp_pack_abc123": b"PACK",
        "objects/pack/tmp_idx_abc123": b"idx",
        "objects/pack/multi-pack-index.lock": b"x",
        "objects/ab/tmp_obj_Zx81": b"x",
        "objects/incoming-Ab12/pack/pack-1.pack": b"x",
        "objects/info/commit-graphs/tmp_graph_1": b"x",
        "FETCH_HEAD": b"x",
        "ORIG_HEAD": b"x",
        "hooks/pre-receive": b"#!/bin/sh\n",
        "logs/HEAD": b"x",
        "gc.pid": b"1",
        "objects/pack/pack-" + "1" * 40 + ".pack": b"PACK in flight, no .idx yet",
        "objects/pack/pack-" + "2" * 40 + ".keep": b"orphan keep",
        "objects/bitmap-ref-tips_Ab12Cd": b"written in place by repack", "objects/pack/.tmp-123-pack-1.pack": b"x",
        "objects/pack/unknown-file": b"x", "objects/info/unknown": b"x",
    }
    for rel, data in junk.items():
        (m / rel).parent.mkdir(parents=True, exist_ok=True)
        (m / rel).write_bytes(data)
    with capture_mirror(m) as c:
        assert not set(junk) & set(c.files)
        assert {n: o.hex() for n, o in c.refs.items()} == before
        staged = {p.relative_to(c.staging).as_posix() for p in c.staging.rglob("*") if p.is_file()}
        assert staged == set(c.files)
        fsck(c.staging)


def test_mirror_that_cannot_be_captured(mirror_copy: Callable[[str], Path], tmp_path: Path) -> None:
    m = mirror_copy("gc_bitmaps")
    (m / "objects/info/alternates").write_text("/srv/other.git/objects\n")
    with pytest.raises(UsageError, match="alternates"):
        capture_mirror(m)
    assert leftovers(m.parent) == []
    (m / "objects/info/alternates").unlink()
    git("config", "extensions.refStorage", "reftable", cwd=m)
    with pytest.raises(UsageError, match="reftable"):
        capture_mirror(m)
    with pytest.raises(UsageError):
        capture_mirror(tmp_path / "nonexistent.git")
    assert leftovers(m.parent) == []


# --------------------------------------------------------------------------------------------------
# forced races between the phases


def test_refs_moved_between_phases_retries(mirror_copy: Callable[[str], Path]) -> None:
    m = mirror_copy("gc_bitmaps")
    calls = []
    dev = git("rev-parse", "dev", cwd=m).strip()

    def move_once() -> None:
        calls.append(1)
        if len(calls) == 1:
            git("update-ref", "refs/heads/main", dev, cwd=m)

    with capture_mirror(m, _between_phases=move_once) as c:
        assert c.attempts == 2 and len(calls) == 2
        assert c.refs["refs/heads/main"].hex() == dev
        check_capture_equals_mirror(c, m)
        fsck(c.staging)


def test_endless_movement_gives_capture_error(mirror_copy: Callable[[str], Path]) -> None:
    m = mirror_copy("many_refs")
    current = git("rev-parse", "refs/pull/1/head", cwd=m).strip()
    others = [r for r in git("rev-list", "--all", cwd=m).split() if r != current][:2]
    calls = []

    def move() -> None:  # a different value at every call: the refs never hold still
        calls.append(1)
        git("update-ref", "refs/pull/1/head", others[len(calls) % 2], cwd=m)

    with pytest.raises(CaptureError, match="3 attempt") as err:
        capture_mirror(m, max_attempts=3, _between_phases=move)
    assert err.value.exit_code == 3
    assert len(calls) == 3
    assert leftovers(m.parent) == []


def test_pack_refs_between_phases_is_not_a_move(mirror_copy: Callable[[str], Path]) -> None:
    """pack-refs rewrites packed-refs and deletes loose refs, but no ref changes value."""
    m = mirror_copy("many_refs")
    before = for_each_ref(m)
    with capture_mirror(m, _between_phases=lambda: git("pack-refs", "--all", cwd=m)) as c:
        assert c.attempts == 1
        assert {n: o.hex() for n, o in c.refs.items()} == before == for_each_ref(m)
        assert any(r.startswith("refs/pull/loose") for r in c.files)  # the loose refs as read in phase 1
        fsck(c.staging)
        assert for_each_ref(c.staging) == before


def test_repack_between_phases_keeps_the_staged_packs(mirror_copy: Callable[[str], Path]) -> None:
    m = mirror_copy("geometric_midx")
    old_packs = {p.name for p in (m / "objects/pack").glob("pack-*.pack")}
    with capture_mirror(m, _between_phases=lambda: git("repack", "-q", "-a", "-d", cwd=m)) as c:
        assert c.attempts == 1
        assert {p.name for p in (m / "objects/pack").glob("pack-*.pack")} != old_packs  # deleted live
        assert {p.name for p in (c.staging / "objects/pack").glob("pack-*.pack")} == old_packs
        fsck(c.staging)


def test_pack_deleted_between_listing_and_linking(
    mirror_copy: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """repack -d deletes a pack after the capture listed it and before it linked it: the pack is
    dropped whole and the next pass stages the new one, within the same attempt."""
    m = mirror_copy("geometric_midx")
    old_packs = {p.name for p in (m / "objects/pack").glob("pack-*.pack")}
    real_link = os.link
    repacked = []

    def link(src: str | Path, dst: str | Path, **kw: object) -> None:
        if not repacked and str(src).endswith(".idx") and "objects/pack/pack-" in str(src):
            repacked.append(src)
            git("repack", "-q", "-a", "-d", cwd=m)  # real git deletes every old pack now
        real_link(src, dst, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(capture_mod.os, "link", link)
    with capture_mirror(m) as c:
        assert repacked
        assert c.attempts == 1
        staged = {p.name for p in (c.staging / "objects/pack").glob("pack-*.pack")}
        assert staged == {p.name for p in (m / "objects/pack").glob("pack-*.pack")}
        assert not staged & old_packs
        check_capture_equals_mirror(c, m)
        fsck(c.staging)


def test_torn_read_of_packed_refs_is_retried(
    mirror_copy: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read that sees packed-refs cut mid-line (a non-atomic writer) fails the attempt; the next
    attempt reads the whole file."""
    m = mirror_copy("many_refs")
    real = capture_mod._read_stable
    torn = []

    def read(path: Path, rel: str) -> capture_mod._Small | None:
        got = real(path, rel)
        if rel == "packed-refs" and not torn and got is not None:
            torn.append(rel)
            return capture_mod._Small(got.data[: len(got.data) // 2], got.mode, got.mtime_ns)
        return got

    monkeypatch.setattr(capture_mod, "_read_stable", read)
    with capture_mirror(m) as c:
        assert torn and c.attempts == 2
        check_capture_equals_mirror(c, m)


def test_invalid_refs_end_in_capture_error(mirror_copy: Callable[[str], Path]) -> None:
    m = mirror_copy("many_refs")
    data = (m / "packed-refs").read_bytes()
    (m / "packed-refs").write_bytes(data[: len(data) // 2])  # cut mid-line, like the cachew incident
    with pytest.raises(CaptureError) as err:
        capture_mirror(m, max_attempts=2)
    assert "packedRefsUnterminated" in {f.code for f in err.value.findings}
    assert leftovers(m.parent) == []


@pytest.mark.parametrize("damage", ["midx_pack", "graph_layer", "ref_tip"])
def test_store_that_does_not_hold_together_fails(mirror_copy: Callable[[str], Path], damage: str) -> None:
    """Step 4: a staged multi-pack-index naming a pack that is not there, a commit-graph chain naming
    a missing layer, a ref whose object is not in the store: the attempt fails (here every attempt,
    since the live mirror itself is broken)."""
    m = mirror_copy("geometric_midx")
    if damage == "midx_pack":
        idx = sorted((m / "objects/pack").glob("pack-*.idx"))[0]
        for p in (m / "objects/pack").glob(idx.stem + ".*"):
            p.unlink()
        match = "multi-pack-index lists " + idx.name
    elif damage == "graph_layer":
        layer = sorted((m / "objects/info/commit-graphs").glob("graph-*.graph"))[0]
        layer.unlink()
        match = "commit-graph-chain lists " + layer.name
    else:
        (m / "refs/heads/ghost").write_text("1" * 40 + "\n")
        match = "refs/heads/ghost point to object"
    with pytest.raises(CaptureError, match=match):
        capture_mirror(m, max_attempts=2)
    assert leftovers(m.parent) == []


# --------------------------------------------------------------------------------------------------
# copies instead of links


def check_copies(c: Capture, mirror: Path) -> None:
    assert c.linked == 0
    for rel in c.files:
        assert (c.staging / rel).stat().st_ino != (mirror / rel).stat().st_ino, rel
        assert (c.staging / rel).stat().st_mtime_ns == (mirror / rel).stat().st_mtime_ns, rel
    check_capture_equals_mirror(c, mirror)
    fsck(c.staging)


def test_copy_path_when_linking_is_off(mirrors: Callable[[str], Path]) -> None:
    m = mirrors("geometric_midx")
    with capture_mirror(m, link=False) as c:
        check_copies(c, m)


def test_copy_path_across_file_systems(mirrors: Callable[[str], Path]) -> None:
    m = mirrors("cruft")
    other = Path("/dev/shm")
    assert other.is_dir() and other.stat().st_dev != m.stat().st_dev, "needs a second file system"
    with capture_mirror(m, other) as c:  # os.link fails with EXDEV: every object file is copied
        assert c.staging.parent == other
        check_copies(c, m)
    assert leftovers(other) == []


def test_careful_copy_never_mixes_versions(tmp_path: Path) -> None:
    """A file replaced by rename (git's way) and grown in place (a writer that appends) while it is
    copied: every copy is one state the file really had, or the copy reports that it kept changing."""
    src = tmp_path / "f"
    src.write_bytes(b"v0" * 64 * 1024)
    states = {hashlib.sha256(src.read_bytes()).hexdigest()}
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            if i % 4 == 0:  # a new version renamed over the old one
                tmp = tmp_path / "f.lock"
                data = bytes([65 + i % 26]) * (128 * (512 + i % 300))
                tmp.write_bytes(data)
                os.replace(tmp, src)
            else:  # grow in place by 128 bytes (never across a page boundary: one atomic size step)
                with open(src, "ab") as f:
                    f.write(bytes([97 + i % 26]) * 128)
                data = src.read_bytes()
            states.add(hashlib.sha256(data).hexdigest())
            time.sleep(0.0002)

    t = threading.Thread(target=writer)
    t.start()
    results = {"copied": 0, "changing": 0}
    copies: list[str] = []
    buf = bytearray(4096)  # many reads per copy: a wide window for the writer
    try:
        for k in range(400):
            if results["copied"] >= 30:
                break
            dst = tmp_path / f"copy{k}"
            try:
                got = capture_mod._copy_stable(src, dst, "f", buf)
            except capture_mod._Retry:
                results["changing"] += 1
                assert not dst.exists()
                continue
            assert got is not None
            digest = hashlib.sha256(dst.read_bytes()).hexdigest()
            assert digest == got[1]
            results["copied"] += 1
            copies.append(digest)
    finally:
        stop.set()
        t.join()
    assert results["copied"] > 0
    assert all(d in states for d in copies), "a copy holds bytes the file never had"


def test_careful_copy_detects_a_change_during_the_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deterministic version: the file grows (in place) and is then replaced (rename) while the
    first two copies read it; each is detected and the third copy is of the final file."""
    src = tmp_path / "f"
    src.write_bytes(b"a" * 10000)
    real_readv = os.readv
    calls = []

    def readv(fd: int, bufs: list[memoryview]) -> int:
        n = real_readv(fd, bufs)
        calls.append(n)
        if len(calls) == 1:
            with open(src, "ab") as f:
                f.write(b"b" * 100)
        elif len(calls) == 4:
            (tmp_path / "f.new").write_bytes(b"c" * 5000)
            os.replace(tmp_path / "f.new", src)
        return n

    monkeypatch.setattr(capture_mod.os, "readv", readv)
    got = capture_mod._copy_stable(src, tmp_path / "copy", "f", bytearray(1 << 16))
    assert got is not None
    assert (tmp_path / "copy").read_bytes() == b"c" * 5000
    assert got[1] == hashlib.sha256(b"c" * 5000).hexdigest()
    assert got[0].st_size == 5000
    with pytest.raises(capture_mod._Retry, match="kept changing"):
        calls.clear()

        def always(fd: int, bufs: list[memoryview]) -> int:
            n = real_readv(fd, bufs)
            if n:
                with open(src, "ab") as f:
                    f.write(b"d")
            return n

        monkeypatch.setattr(capture_mod.os, "readv", always)
        capture_mod._copy_stable(src, tmp_path / "copy2", "f", bytearray(1 << 16))
    assert not (tmp_path / "copy2").exists()


# --------------------------------------------------------------------------------------------------
# the real thing: git writes the mirror while captures run


State = dict[str, str]


def _writer_loop(
    up: Path, mirror: Path, stop: threading.Event, states: list[tuple[bool, State]], errors: list[str]
) -> None:
    """Real git writers, one after the other: fetch of a new upstream commit, pack-refs, repack -ad
    (with a multi-pack-index every other time), and update-ref transactions over 40 refs.  After each,
    the state git reports, and whether the operation changed several refs in one transaction."""
    rnd = random.Random(7)
    i = 0
    try:
        while not stop.is_set():
            i += 1
            op = i % 5
            if op == 0:
                (up / f"f{i}.txt").write_text(f"change {i}\n" * (i % 7 + 1))
                git("add", ".", cwd=up)
                date = f"{1700000000 + i * 60} +0000"
                git("commit", "-q", "-m", f"c{i}", cwd=up, env={"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date})
                git("fetch", "-q", "--prune", "origin", cwd=mirror)
            elif op == 1:
                git("pack-refs", "--all", cwd=mirror)
            elif op == 2:
                git("repack", "-q", "-a", "-d", *(["--write-midx"] if i % 2 else []), cwd=mirror)
            elif op == 3:
                revs = git("rev-list", "--all", cwd=mirror).split()
                lines = "".join(f"update refs/load/{k} {rnd.choice(revs)}\n" for k in range(40))
                git("update-ref", "--stdin", cwd=mirror, input=lines.encode())
            else:
                lines = "".join(f"delete refs/load/{k}\n" for k in range(0, 40, 3))
                git("update-ref", "--stdin", cwd=mirror, input=lines.encode())
            states.append((op in (3, 4), for_each_ref(mirror)))
            time.sleep(0.02)
    except Exception as e:  # surfaced by the test
        errors.append(repr(e))


def _explained(refs: State, states: list[tuple[bool, State]]) -> bool:
    """Is *refs* a state git had?  Either one the writer recorded between operations, or one inside a
    multi-ref update-ref transaction: the files backend renames each ref into place on its own, so
    while such a transaction runs every ref holds its value from just before or just after it (git's
    own readers see these states too).  A mix of any other two states is not explained."""
    if any(refs == s for _, s in states):
        return True
    for (_, before), (multi, after) in itertools.pairwise(states):
        if multi and all(refs.get(n) in (before.get(n), after.get(n)) for n in {*refs, *before, *after}):
            return True
    return False


def test_capture_while_git_writes(tmp_path: Path) -> None:
    up = build_work(tmp_path / "up", commits=14)
    mirror = tmp_path / "live.git"
    git("clone", "-q", "--mirror", str(up), str(mirror))
    git("config", "gc.auto", "0", cwd=mirror)
    git("config", "receive.unpackLimit", "1", cwd=mirror)
    states: list[tuple[bool, State]] = [(False, for_each_ref(mirror))]
    errors: list[str] = []
    stop = threading.Event()
    t = threading.Thread(target=_writer_loop, args=(up, mirror, stop, states, errors))
    captured: list[tuple[State, int]] = []
    archives: list[Path] = []
    t.start()
    try:
        start = time.monotonic()
        k = 0
        # at least 4 s, 25 writer operations and 4 captures (a loaded machine runs git slowly)
        while (time.monotonic() < start + 4 or len(states) < 25 or k < 4) and time.monotonic() < start + 60:
            k += 1
            with capture_mirror(mirror, max_attempts=40) as c:
                captured.append(({n: o.hex() for n, o in c.refs.items()}, c.attempts))
                if k % 4 == 1:
                    path = tmp_path / f"a{k}.tar.zst"
                    with open(path, "wb") as f:
                        write_archive(c.staging, build_manifest(c, "test"), f)
                    archives.append(path)
    finally:
        stop.set()
        t.join()
    assert not errors, errors
    assert len(states) >= 25, "the writer did not run"
    for refs, attempts in captured:
        assert _explained(refs, states), f"a capture (after {attempts} attempts) holds a state git never had"
    recorded = sum(any(refs == s for _, s in states) for refs, _ in captured)
    assert recorded >= len(captured) // 2, "most captures should fall between two operations"
    assert len({tuple(sorted(r.items())) for r, _ in captured}) > 1, "captures should see the refs move"
    for path in archives:
        out = tmp_path / (path.name + ".d")
        out.mkdir()
        res = subprocess.run(
            f"zstd -dc '{path}' | tar -x -C '{out}'", shell=True, capture_output=True, env=GIT_ENV
        )
        assert res.returncode == 0, res.stderr
        assert (out / ".snapcheck/manifest.json").is_file()
        shutil.rmtree(out / ".snapcheck")
        fsck(out)
    assert leftovers(tmp_path) == []
