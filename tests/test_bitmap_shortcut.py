"""The bitmap shortcut of ``standard``: a verified reachability bitmap stands for the closure of the
objects it covers, and the walk covers only the rest (snapcheck.checks.graph).

Every case is judged on the verdict a repository with a missing reachable object must get: the
shortcut is used only when the bitmap, its pack and its idx all verified; a damaged, stale or absent
bitmap means no shortcut (and a finding for the bitmap), and the missing object is still found.
``full`` never uses a bitmap.  git's own view is checked alongside: ``git fsck --connectivity-only``
(which never uses bitmaps) fails on the same repositories.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import snapcheck.checks.graph as graph_mod
from snapcheck.checks.graph import GraphStats
from snapcheck.options import VerifyOptions
from snapcheck.report import Level, Report
from snapcheck.verifier import verify

from gitrepos import git, git_rc


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[GraphStats, dict[str, Any]]]]:
    """Records (stats, keyword arguments) of every connectivity check the object phase runs."""
    calls: list[tuple[GraphStats, dict[str, Any]]] = []
    real = graph_mod.check_connectivity

    def wrapper(*a: Any, **k: Any) -> Any:
        res = real(*a, **k)
        calls.append((res[0], k))
        return res

    monkeypatch.setattr(graph_mod, "check_connectivity", wrapper)
    yield calls


def run(repo: Path, level: Level = Level.STANDARD) -> Report:
    return verify(repo, VerifyOptions(level=level))


def error_codes(r: Report) -> set[str]:
    return {f.code for f in r.errors}


def loose_path(repo: Path, oid: str) -> Path:
    return repo / "objects" / oid[:2] / oid[2:]


def new_loose_branch(repo: Path, name: str = "refs/heads/late", content: bytes = b"late content\n") -> dict[str, str]:
    """A commit on top of main made of loose objects (after the repack: no bitmap covers it)."""
    blob = git("hash-object", "-w", "--stdin", cwd=repo, input=content).strip()
    sub = git("mktree", cwd=repo, input=f"100644 blob {blob}\tinner.txt\n".encode()).strip()
    main_tree = git("rev-parse", "main^{tree}", cwd=repo).strip()
    listing = git("ls-tree", main_tree, cwd=repo)
    tree = git("mktree", cwd=repo, input=(listing + f"040000 tree {sub}\tlate\n").encode()).strip()
    commit = git("commit-tree", tree, "-p", "main", "-m", "late", cwd=repo).strip()
    git("update-ref", name, commit, cwd=repo)
    return {"blob": blob, "sub": sub, "tree": tree, "commit": commit}


def bitmap_file(repo: Path) -> Path:
    found = sorted((repo / "objects/pack").glob("*.bitmap"))
    assert len(found) == 1, found
    return found[0]


def connectivity_fails_in_git(repo: Path) -> bool:
    rc, _out, err = git_rc("fsck", "--connectivity-only", "--no-dangling", cwd=repo)
    return rc != 0 and "missing" in err + _out


# -- the shortcut is taken on sound mirrors --------------------------------------------------------
@pytest.mark.parametrize("config", ["gc_bitmaps", "geometric_midx"])
def test_shortcut_on_sound_mirror(mirrors: Callable[[str], Path], spy: list[tuple[GraphStats, dict[str, Any]]],
                                  config: str) -> None:
    r = run(mirrors(config))
    assert r.verdict == "sound" and r.codes() == []
    stats, kw = spy[-1]
    assert stats.strategy == "bitmap"
    assert kw["cover"] and not kw["cover"].skipped
    assert stats.covered > 0
    # only what no bitmap covers was read: the annotated tags (bitmaps cover commits' closures)
    assert stats.commits == stats.trees == stats.blobs == 0
    assert stats.tags > 0


@pytest.mark.parametrize("config", ["gc_bitmaps", "geometric_midx"])
def test_full_never_uses_the_bitmap(mirrors: Callable[[str], Path], spy: list[tuple[GraphStats, dict[str, Any]]],
                                    config: str) -> None:
    r = run(mirrors(config), Level.FULL)
    assert r.verdict == "sound" and r.codes() == []
    stats, kw = spy[-1]
    assert kw["cover"] is None and kw["graph"] is None
    assert stats.strategy == "scan" and stats.covered == 0
    assert stats.commits > 0 and stats.trees > 0


# -- a ref the bitmap does not cover is walked ---------------------------------------------------------
@pytest.mark.parametrize("config", ["gc_bitmaps", "geometric_midx"])
@pytest.mark.parametrize("victim", ["blob", "sub"])
def test_uncovered_ref_with_missing_object(mirror_copy: Callable[[str], Path],
                                           spy: list[tuple[GraphStats, dict[str, Any]]],
                                           config: str, victim: str) -> None:
    repo = mirror_copy(config)
    made = new_loose_branch(repo)
    assert run(repo).codes() == []  # complete: the late branch is walked and found whole
    stats, _kw = spy[-1]
    assert stats.strategy == "bitmap" and stats.commits == 1 and stats.trees == 2 and stats.blobs >= 1
    loose_path(repo, made[victim]).unlink()
    assert connectivity_fails_in_git(repo)
    r = run(repo)
    assert error_codes(r) == {"objectMissing"}
    assert made[victim] in r.errors[0].message
    assert spy[-1][0].strategy == "bitmap"
    assert error_codes(run(repo, Level.FULL)) == {"objectMissing"}


def test_uncovered_commits_take_links_from_the_commit_graph(mirror_copy: Callable[[str], Path],
                                                            spy: list[tuple[GraphStats, dict[str, Any]]]) -> None:
    """Commits written after the bitmap but listed in a (verified) commit-graph: the walk takes their
    tree and parents from the graph, and still finds a missing tree below them."""
    repo = mirror_copy("gc_bitmaps")
    made = new_loose_branch(repo)
    git("commit-graph", "write", "--reachable", cwd=repo)
    assert run(repo).codes() == []
    _stats, kw = spy[-1]
    assert kw["graph"] is not None and kw["graph"].links(bytes.fromhex(made["commit"])) is not None
    loose_path(repo, made["sub"]).unlink()
    r = run(repo)
    assert error_codes(r) == {"objectMissing"}
    assert made["sub"] in r.errors[0].message


# -- a damaged, stale or absent bitmap: no shortcut, a finding, the same verdict ------------------------
def _damage_trailer(p: Path) -> None:
    d = bytearray(p.read_bytes())
    d[-1] ^= 0x01
    p.write_bytes(bytes(d))


def _retarget(p: Path) -> None:
    """Point the header at another pack, with a consistent trailer: a bitmap written for other objects."""
    d = bytearray(p.read_bytes())
    d[12:32] = hashlib.sha1(b"another pack").digest()
    d[-20:] = hashlib.sha1(bytes(d[:-20])).digest()
    p.write_bytes(bytes(d))


@pytest.mark.parametrize(("damage", "code"), [(_damage_trailer, "bitmapChecksum"), (_retarget, "bitmapTarget")])
def test_damaged_or_stale_bitmap_no_shortcut(mirror_copy: Callable[[str], Path],
                                             spy: list[tuple[GraphStats, dict[str, Any]]],
                                             damage: Callable[[Path], None], code: str) -> None:
    repo = mirror_copy("gc_bitmaps")
    made = new_loose_branch(repo)
    damage(bitmap_file(repo))
    r = run(repo)
    assert error_codes(r) == {code}
    assert spy[-1][1]["cover"] is None and spy[-1][0].strategy == "scan"
    loose_path(repo, made["blob"]).unlink()
    assert connectivity_fails_in_git(repo)
    r = run(repo)
    assert error_codes(r) == {code, "objectMissing"}
    assert spy[-1][0].strategy == "walk"  # the scan saw the hole; the walk decides it is reachable


def test_damaged_midx_bitmap_no_shortcut(mirror_copy: Callable[[str], Path],
                                         spy: list[tuple[GraphStats, dict[str, Any]]]) -> None:
    repo = mirror_copy("geometric_midx")
    made = new_loose_branch(repo)
    _damage_trailer(bitmap_file(repo))
    loose_path(repo, made["sub"]).unlink()
    r = run(repo)
    assert error_codes(r) == {"bitmapChecksum", "objectMissing"}
    assert spy[-1][1]["cover"] is None


def test_absent_bitmap_walks(mirror_copy: Callable[[str], Path], spy: list[tuple[GraphStats, dict[str, Any]]]) -> None:
    repo = mirror_copy("gc_bitmaps")
    made = new_loose_branch(repo)
    bitmap_file(repo).unlink()
    assert run(repo).codes() == []
    assert spy[-1][1]["cover"] is None and spy[-1][0].strategy == "scan"
    loose_path(repo, made["blob"]).unlink()
    assert error_codes(run(repo)) == {"objectMissing"}


def test_pack_missing_an_object_beside_the_bitmap_of_the_whole_pack(
        mirror_copy: Callable[[str], Path], spy: list[tuple[GraphStats, dict[str, Any]]], tmp_path: Path) -> None:
    """A pack written without one blob, next to the bitmap git wrote for the complete pack (copied
    over under the new pack's name).  git would use that bitmap without checking its header and answer
    reachability from it; snapcheck refuses it (its structure no longer fits the pack's object count,
    and it names another pack) and walks, finding the blob missing, as git fsck does."""
    repo = mirror_copy("gc_bitmaps")
    victim = git("rev-parse", "HEAD:run.sh", cwd=repo).strip()
    old_bitmap = bitmap_file(repo).read_bytes()
    everything = git("cat-file", "--batch-all-objects", "--batch-check=%(objectname)", cwd=repo).split()
    keep = "".join(o + "\n" for o in everything if o != victim)
    name = git("pack-objects", "-q", str(tmp_path / "part"), cwd=repo, input=keep.encode()).strip()
    for f in (repo / "objects/pack").glob("pack-*"):
        f.unlink()
    for ext in ("pack", "idx"):
        shutil.copy(tmp_path / f"part-{name}.{ext}", repo / f"objects/pack/pack-{name}.{ext}")
    (repo / f"objects/pack/pack-{name}.bitmap").write_bytes(old_bitmap)
    assert connectivity_fails_in_git(repo)
    r = run(repo)
    codes = error_codes(r)
    assert "objectMissing" in codes
    assert codes - {"objectMissing"} == {"bitmapSize"}  # the name-hash cache is sized for one object more
    assert spy[-1][1]["cover"] is None
    assert any(victim in f.message for f in r.errors if f.code == "objectMissing")
    assert error_codes(run(repo, Level.FULL)) == codes


def test_corrupt_pack_disables_the_shortcut(mirror_copy: Callable[[str], Path],
                                            spy: list[tuple[GraphStats, dict[str, Any]]]) -> None:
    """The bitmap is trusted only over a pack whose trailer hash verified."""
    repo = mirror_copy("gc_bitmaps")
    pack = next((repo / "objects/pack").glob("*.pack"))
    d = bytearray(pack.read_bytes())
    d[-1] ^= 0x01  # the trailer itself: the content is intact, the pack no longer proves it
    pack.write_bytes(bytes(d))
    r = run(repo)
    assert "packChecksumMismatch" in error_codes(r)
    assert spy[-1][1]["cover"] is None
