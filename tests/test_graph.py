"""Connectivity (``standard``) and the ``full`` pass feeding it, on real mirrors made by git.

Every good configuration passes with no finding, by both strategies; every damage gives the exact
code, and ``git fsck`` fails on the same repository.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from test_objectstore import git_fsck_fails, load_loose, load_packs, open_store, roots_of

from snapcheck.checks import graph
from snapcheck.checks.graph import check_connectivity
from snapcheck.checks.objectstore import LinkCollector, ObjectStore, verify_loose_objects, verify_pack_objects
from snapcheck.report import Severity

from gitrepos import GIT_ENV, git, git_rc

CONFIGS = ["gc_bitmaps", "geometric_midx", "loose", "sha256", "cruft", "many_refs"]


def run(repo: Path, strategy: str = "auto", **kw: object) -> tuple[graph.GraphStats, list]:  # type: ignore[type-arg]
    store, algo = open_store(repo)
    return check_connectivity(store, roots_of(repo), algo, strategy=strategy, **kw)  # type: ignore[arg-type]


def codes(fs: list) -> list[str]:  # type: ignore[type-arg]
    return sorted(f.code for f in fs)


def reachable_count(repo: Path) -> int:
    return len(git("rev-list", "--objects", "--all", cwd=repo).splitlines())


# -- good repositories ---------------------------------------------------------------------------------
@pytest.mark.parametrize("config", CONFIGS)
def test_clean_by_both_strategies(mirrors: Callable[[str], Path], config: str) -> None:
    repo = mirrors(config)
    st, fs = run(repo)
    assert fs == [] and st.strategy == "scan" and st.missing == 0
    assert st.commits and st.trees and st.blobs and st.tags
    wst, wfs = run(repo, "walk")
    assert wfs == [] and wst.strategy == "walk"
    # the walk counts exactly what git calls reachable (the gitlink's commit is not followed)
    assert wst.commits + wst.trees + wst.blobs + wst.tags == reachable_count(repo)
    assert wst.roots == st.roots > 0


@pytest.mark.parametrize("config", CONFIGS)
def test_full_pass_feeds_connectivity(mirrors: Callable[[str], Path], config: str,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    repo = mirrors(config)
    store, algo = open_store(repo)
    links = LinkCollector(algo)
    for p in store.packs:
        _s, fs = verify_pack_objects(p, algo, check_format=True, links=links)
        assert fs == []
    _l, fs = verify_loose_objects(store.loose, algo, check_format=True, links=links)
    assert fs == []

    def no_rescan(*_a: object, **_k: object) -> None:
        raise AssertionError("the full pass should have covered every pack")

    monkeypatch.setattr(graph, "scan_pack_links", no_rescan)
    st, fs = check_connectivity(store, roots_of(repo), algo, links=links)
    assert fs == [] and st.strategy == "scan"


# -- missing objects --------------------------------------------------------------------------------------
def _rm_loose(repo: Path, rev: str) -> str:
    oid = git("rev-parse", rev, cwd=repo).strip()
    (repo / "objects" / oid[:2] / oid[2:]).unlink()
    return oid


@pytest.mark.parametrize(("rev", "kind"), [("HEAD:README", "blob"), ("HEAD:src", "tree"), ("HEAD~3", "commit"),
                                           ("HEAD^{tree}", "tree")])
def test_deleted_loose_object(mirror_copy: Callable[[str], Path], rev: str, kind: str) -> None:
    repo = mirror_copy("loose")
    oid = _rm_loose(repo, rev)
    for strategy in ("auto", "walk"):
        st, fs = run(repo, strategy)
        assert codes(fs) == ["objectMissing"], fs
        assert f"missing {kind} {oid}" in fs[0].message
        assert st.strategy == "walk" and st.missing == 1
        assert fs[0].severity is Severity.ERROR
    assert git_fsck_fails(repo, "--connectivity-only")


def test_deleted_ref_target(mirror_copy: Callable[[str], Path]) -> None:
    repo = mirror_copy("loose")
    oid = _rm_loose(repo, "refs/heads/dev")
    _st, fs = run(repo, path_for_root=lambda name: f"refs-file:{name}")
    got = [(f.code, f.path) for f in fs]
    assert ("refTargetMissing", "refs-file:refs/heads/dev") in got
    assert {c for c, _p in got} <= {"refTargetMissing", "objectMissing"}
    assert any(f"invalid sha1 pointer {oid}" in f.message for f in fs)
    assert git_fsck_fails(repo, "--connectivity-only")


def _repack_without(repo: Path, omit: set[str]) -> None:
    """Replace every pack of *repo* by one pack of all reachable objects except *omit*."""
    objs = git("rev-list", "--objects", "--all", cwd=repo).splitlines()
    keep = "".join(line.split()[0] + "\n" for line in objs if line.split()[0] not in omit)
    old = list((repo / "objects/pack").iterdir())
    name = subprocess.run(["git", "pack-objects", "-q", "objects/pack/pack"], cwd=repo, input=keep.encode(),
                          capture_output=True, env=GIT_ENV, check=True).stdout.decode().strip()
    for f in old:
        if name not in f.name:
            f.unlink()
    for f in ("objects/info/commit-graph", "objects/pack/multi-pack-index"):
        if (repo / f).exists():
            (repo / f).unlink()
    for f in (repo / "objects").glob("??/*"):
        f.unlink()


@pytest.mark.parametrize(("rev", "kind", "referrer"), [("HEAD:run.sh", "blob", "tree"),
                                                       ("HEAD^{tree}", "tree", "commit"),
                                                       ("HEAD~2", "commit", "commit")])
def test_pack_without_an_object(mirror_copy: Callable[[str], Path], rev: str, kind: str, referrer: str) -> None:
    repo = mirror_copy("gc_bitmaps")
    oid = git("rev-parse", rev, cwd=repo).strip()
    _repack_without(repo, {oid})
    _st, fs = run(repo)
    missing = [f for f in fs if f.code == "objectMissing"]
    assert codes(fs) in (["objectMissing"], ["objectMissing", "refTargetMissing"]) and len(missing) == 1
    assert f"missing {kind} {oid}" in missing[0].message and f"named by {referrer}" in missing[0].message
    assert missing[0].path.startswith("objects/pack/pack-")
    assert git_fsck_fails(repo, "--connectivity-only")
    # full on the same repository: the pack itself is sound, only the graph is not
    store, algo = open_store(repo)
    links = LinkCollector(algo)
    for p in store.packs:
        _s, pfs = verify_pack_objects(p, algo, check_format=True, links=links)
        assert pfs == []
    _st, gfs = check_connectivity(store, roots_of(repo), algo, links=links)
    assert codes(gfs) == codes(fs)


def test_tag_of_a_missing_object(mirror_copy: Callable[[str], Path]) -> None:
    repo = mirror_copy("gc_bitmaps")
    blob = git("hash-object", "-w", "--stdin", cwd=repo, input=b"only a tag names me\n").strip()
    git("tag", "-a", "-m", "lonely", "lonely", blob, cwd=repo)
    tag = git("rev-parse", "refs/tags/lonely", cwd=repo).strip()
    _repack_without(repo, {blob})
    _st, fs = run(repo)
    assert codes(fs) == ["objectMissing"]
    assert f"missing blob {blob}, named by tag {tag}" in fs[0].message
    assert git_fsck_fails(repo, "--connectivity-only")


def test_unreachable_objects_may_lack_their_links(mirror_copy: Callable[[str], Path]) -> None:
    """An unreachable tree naming a blob that is gone is not an error (git prunes in that order)."""
    repo = mirror_copy("loose")
    absent = "5" * 40
    git("mktree", "--missing", cwd=repo, input=f"100644 blob {absent}\tgone.txt\n".encode())
    st, fs = run(repo)
    assert fs == [] and st.strategy == "walk"  # the scan saw the missing blob; the walk cleared it
    rc, _o, _e = git_rc("fsck", "--connectivity-only", "--no-dangling", cwd=repo)
    assert rc == 0
    _st, fs = run(repo, "scan")  # the scan alone cannot tell, and says so
    assert codes(fs) == ["objectMissing"] and "reachability not decided" in fs[0].message


# -- wrong types, unparseable objects, damaged packs ---------------------------------------------------------
def _write(repo: Path, kind: str, data: bytes) -> str:
    return git("hash-object", "-t", kind, "--literally", "-w", "--stdin", cwd=repo, input=data).strip()


def test_tag_with_wrong_declared_type(mirror_copy: Callable[[str], Path]) -> None:
    repo = mirror_copy("loose")
    tree = git("rev-parse", "HEAD^{tree}", cwd=repo).strip()
    tag = _write(repo, "tag", f"object {tree}\ntype commit\ntag liar\ntagger T <t@e> 1 +0000\n\nx\n".encode())
    git("update-ref", "refs/tags/liar", tag, cwd=repo)
    _st, fs = run(repo)
    assert codes(fs) == ["brokenLink"]
    assert f"names {tree} as a commit, but it is a tree" in fs[0].message
    assert git_fsck_fails(repo, "--connectivity-only")


def test_commit_whose_tree_is_a_blob(mirror_copy: Callable[[str], Path]) -> None:
    repo = mirror_copy("loose")
    blob = git("rev-parse", "HEAD:README", cwd=repo).strip()
    c = _write(repo, "commit", f"tree {blob}\nauthor A <a@b> 1 +0000\ncommitter A <a@b> 1 +0000\n\nx\n".encode())
    git("update-ref", "refs/heads/odd", c, cwd=repo)
    _st, fs = run(repo)
    assert codes(fs) == ["brokenLink"]
    assert git_fsck_fails(repo, "--connectivity-only")


def test_reachable_unparseable_commit(mirror_copy: Callable[[str], Path]) -> None:
    repo = mirror_copy("loose")
    c = _write(repo, "commit", b"this is not a commit\n")
    (repo / "refs/heads/bogus").write_text(c + "\n")  # git update-ref refuses to point at it
    _st, fs = run(repo)
    assert codes(fs) == ["objectCorrupt"] and c in fs[0].message
    assert git_fsck_fails(repo, "--connectivity-only")


def test_corrupt_reachable_loose_tree(mirror_copy: Callable[[str], Path]) -> None:
    repo = mirror_copy("loose")
    oid = git("rev-parse", "HEAD:src", cwd=repo).strip()
    f = repo / "objects" / oid[:2] / oid[2:]
    f.write_bytes(f.read_bytes()[:-3])
    _st, fs = run(repo)
    assert codes(fs) == ["looseObjectUnreadable"] and "looseObjectTruncated" not in fs[0].code
    assert git_fsck_fails(repo, "--connectivity-only")


def test_corrupt_reachable_packed_tree(mirror_copy: Callable[[str], Path]) -> None:
    repo = mirror_copy("gc_bitmaps")
    tree = git("rev-parse", "HEAD^{tree}", cwd=repo).strip()
    pack = sorted((repo / "objects/pack").glob("pack-*.pack"))[0]
    line = next(x for x in git("verify-pack", "-v", str(pack.with_suffix(".idx")), cwd=repo).splitlines()
                if x.startswith(tree)).split()
    size, off = int(line[3]), int(line[4])
    data = bytearray(pack.read_bytes())
    data[off + size - 3] ^= 0xFF  # inside the zlib stream's Adler-32
    pack.chmod(0o644)
    pack.write_bytes(bytes(data))
    st, fs = run(repo)
    # the tree, and any reachable delta built on it, cannot be read
    assert set(codes(fs)) == {"packObjectCorrupt"} and st.corrupt == len(fs)
    mine = [f for f in fs if f"object {tree}" in f.message]
    assert len(mine) == 1 and "incorrect data check" in mine[0].message
    assert all("delta base at offset" in f.message for f in fs if f not in mine)
    assert git_fsck_fails(repo, "--connectivity-only")


# -- what git only warns about is not an error ---------------------------------------------------------------
def test_zero_padded_mode_is_only_a_warning(mirror_copy: Callable[[str], Path]) -> None:
    repo = mirror_copy("loose")
    sub = git("rev-parse", "HEAD:src", cwd=repo).strip()
    readme = git("rev-parse", "HEAD:README", cwd=repo).strip()
    tree = _write(repo, "tree", b"100644 README\x00" + bytes.fromhex(readme) + b"040000 src\x00" + bytes.fromhex(sub))
    commit = git("commit-tree", tree, "-m", "old tool", cwd=repo).strip()
    git("update-ref", "refs/heads/zero-padded", commit, cwd=repo)
    _st, fs = run(repo)
    assert fs == []
    wst, wfs = run(repo, "walk")
    assert wfs == [] and wst.trees >= 1
    store, algo = open_store(repo)
    _l, lfs = verify_loose_objects(store.loose, algo, check_format=True)
    assert [(f.code, f.severity) for f in lfs] == [("zeroPaddedFilemode", Severity.WARNING)]
    rc, out, err = git_rc("fsck", "--no-dangling", cwd=repo)
    assert rc == 0 and "zeroPaddedFilemode" in out + err


def test_store_built_from_files_only(mirrors: Callable[[str], Path]) -> None:
    """ObjectStore needs no git: the same answers from packs and loose files read as plain bytes."""
    repo = mirrors("geometric_midx")
    store, algo = open_store(repo)
    assert len(store.packs) == len(load_packs(repo, algo)) >= 2
    assert dict(store.loose).keys() == load_loose(repo).keys()
    st, fs = check_connectivity(ObjectStore(algo, store.packs, {}), roots_of(repo), algo)
    assert fs == [] and st.roots > 0
    assert os.path.isdir(repo)


def test_full_reports_a_damaged_object_once(mirror_copy: Callable[[str], Path]) -> None:
    """At full the pack pass reports the damage; the walk that follows counts it without repeating it."""
    repo = mirror_copy("gc_bitmaps")
    tree = git("rev-parse", "HEAD^{tree}", cwd=repo).strip()
    pack = sorted((repo / "objects/pack").glob("pack-*.pack"))[0]
    line = next(x for x in git("verify-pack", "-v", str(pack.with_suffix(".idx")), cwd=repo).splitlines()
                if x.startswith(tree)).split()
    size, off = int(line[3]), int(line[4])
    data = bytearray(pack.read_bytes())
    data[off + size - 3] ^= 0xFF
    pack.chmod(0o644)
    pack.write_bytes(bytes(data))
    store, algo = open_store(repo)
    links = LinkCollector(algo)
    pass_fs = []
    for p in store.packs:
        pass_fs += verify_pack_objects(p, algo, check_format=True, links=links)[1]
    assert {"packCrcMismatch", "packObjectCorrupt"} <= set(codes(pass_fs))
    st, fs = check_connectivity(store, roots_of(repo), algo, links=links)
    assert fs == [] and st.strategy == "walk" and st.corrupt >= 1
    store.close()
