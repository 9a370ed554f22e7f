"""Damage every file kind of real mirrors and assert the exact finding code, for the directory AND for a
`tar | pzstd` archive of the same damaged mirror (one verifier serves every source), and compare with
what `git fsck` thinks of the damaged repository.

Each case: (configuration, file, damage) -> expected error code at ``standard`` and at ``quick``.
``None`` at quick means the damage is, by design, only visible to hashing (DESIGN.md: quick does no
bulk hashing), and quick must then report no error at all (not a wrong one).  Removing an optional
acceleration file (.rev, .bitmap, commit-graph, .mtimes, a midx bitmap) leaves a valid repository: it
must verify clean, as git agrees.
"""

from __future__ import annotations

import glob
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from snapcheck.options import VerifyOptions
from snapcheck.report import Level, Report
from snapcheck.verifier import verify, verify_file

import gitrepos

Damage = Callable[[Path], None]


def cut(n: int) -> Damage:
    def f(p: Path) -> None:
        p.write_bytes(p.read_bytes()[:-n])
    return f


def half(p: Path) -> None:
    d = p.read_bytes()
    p.write_bytes(d[: len(d) // 2])


def zero_tail(n: int) -> Damage:
    def f(p: Path) -> None:
        d = p.read_bytes()
        p.write_bytes(d[:-n] + b"\0" * n)
    return f


def flip(frac: float) -> Damage:
    def f(p: Path) -> None:
        d = bytearray(p.read_bytes())
        d[int(len(d) * frac)] ^= 0x10
        p.write_bytes(bytes(d))
    return f


def delete(p: Path) -> None:
    p.unlink()


DAMAGES: dict[str, Damage] = {"cut1": cut(1), "half": half, "zero8": zero_tail(8), "flip50": flip(0.5),
                              "flip10": flip(0.1), "delete": delete}

# (config, file glob, damage): (code expected at standard, code expected at quick or None)
CASES: dict[tuple[str, str, str], tuple[str | None, str | None]] = {
    # packed-refs: git dies on all of these except a flip that keeps the syntax
    ("gc_bitmaps", "packed-refs", "cut1"): ("packedRefsPeeledUnterminated", "packedRefsPeeledUnterminated"),
    ("gc_bitmaps", "packed-refs", "half"): ("packedRefsUnterminated", "packedRefsUnterminated"),
    ("gc_bitmaps", "packed-refs", "zero8"): ("packedRefsZeroPadded", "packedRefsZeroPadded"),
    ("gc_bitmaps", "packed-refs", "flip50"): ("packedRefsUnsorted", "packedRefsUnsorted"),
    ("gc_bitmaps", "packed-refs", "flip10"): ("packedRefsBadOid", "packedRefsBadOid"),
    ("gc_bitmaps", "packed-refs", "delete"): ("mirrorNoRefs", "mirrorNoRefs"),
    ("sha256", "packed-refs", "cut1"): ("packedRefsPeeledUnterminated", "packedRefsPeeledUnterminated"),
    ("sha256", "packed-refs", "half"): ("packedRefsUnterminated", "packedRefsUnterminated"),
    ("sha256", "packed-refs", "flip10"): ("packedRefsBadOid", "packedRefsBadOid"),
    # pack
    ("gc_bitmaps", "objects/pack/*.pack", "cut1"): ("packChecksumMismatch", "idxPackMismatch"),
    ("gc_bitmaps", "objects/pack/*.pack", "half"): ("idxOffsetOutOfRange", "idxOffsetOutOfRange"),
    ("gc_bitmaps", "objects/pack/*.pack", "zero8"): ("packChecksumMismatch", "idxPackMismatch"),
    ("gc_bitmaps", "objects/pack/*.pack", "flip50"): ("packChecksumMismatch", None),
    ("gc_bitmaps", "objects/pack/*.pack", "flip10"): ("packChecksumMismatch", None),
    ("gc_bitmaps", "objects/pack/*.pack", "delete"): ("mirrorNoObjects", "mirrorNoObjects"),
    ("sha256", "objects/pack/*.pack", "cut1"): ("packChecksumMismatch", "idxPackMismatch"),
    ("sha256", "objects/pack/*.pack", "flip50"): ("packChecksumMismatch", None),
    # idx
    ("gc_bitmaps", "objects/pack/*.idx", "cut1"): ("idxBadSize", "idxBadSize"),
    ("gc_bitmaps", "objects/pack/*.idx", "half"): ("idxBadSize", "idxBadSize"),
    ("gc_bitmaps", "objects/pack/*.idx", "zero8"): ("idxChecksumMismatch", None),
    ("gc_bitmaps", "objects/pack/*.idx", "flip50"): ("idxChecksumMismatch", None),
    ("gc_bitmaps", "objects/pack/*.idx", "flip10"): ("idxFanoutNotMonotonic", "idxFanoutNotMonotonic"),
    ("gc_bitmaps", "objects/pack/*.idx", "delete"): ("refTargetMissing", "refTargetMissing"),
    ("sha256", "objects/pack/*.idx", "cut1"): ("idxBadSize", "idxBadSize"),
    ("sha256", "objects/pack/*.idx", "zero8"): ("idxChecksumMismatch", None),
    # rev, bitmap, mtimes: git < 2.41 ignores their damage, newer git rejects it; so do we
    ("gc_bitmaps", "objects/pack/*.rev", "cut1"): ("revBadSize", "revBadSize"),
    ("gc_bitmaps", "objects/pack/*.rev", "half"): ("revBadSize", "revBadSize"),
    ("gc_bitmaps", "objects/pack/*.rev", "zero8"): ("revChecksumMismatch", None),
    ("gc_bitmaps", "objects/pack/*.rev", "flip50"): ("revBadPosition", "revBadPosition"),
    ("gc_bitmaps", "objects/pack/*.rev", "delete"): (None, None),
    ("gc_bitmaps", "objects/pack/*.bitmap", "cut1"): ("bitmapSize", "bitmapSize"),
    ("gc_bitmaps", "objects/pack/*.bitmap", "half"): ("bitmapSize", "bitmapSize"),
    ("gc_bitmaps", "objects/pack/*.bitmap", "zero8"): ("bitmapChecksum", None),
    ("gc_bitmaps", "objects/pack/*.bitmap", "flip50"): ("bitmapChecksum", None),
    ("gc_bitmaps", "objects/pack/*.bitmap", "delete"): (None, None),
    ("cruft", "objects/pack/*.mtimes", "cut1"): ("mtimesBadSize", "mtimesBadSize"),
    ("cruft", "objects/pack/*.mtimes", "half"): ("mtimesTooSmall", "mtimesTooSmall"),
    ("cruft", "objects/pack/*.mtimes", "zero8"): ("mtimesChecksumMismatch", None),
    ("cruft", "objects/pack/*.mtimes", "flip50"): ("mtimesPackMismatch", "mtimesPackMismatch"),
    ("cruft", "objects/pack/*.mtimes", "delete"): (None, None),
    # commit-graph, split chains
    ("gc_bitmaps", "objects/info/commit-graph", "cut1"): ("commitGraphChunkOffset", "commitGraphChunkOffset"),
    ("gc_bitmaps", "objects/info/commit-graph", "half"): ("commitGraphChunkOffset", "commitGraphChunkOffset"),
    ("gc_bitmaps", "objects/info/commit-graph", "zero8"): ("commitGraphChecksum", None),
    ("gc_bitmaps", "objects/info/commit-graph", "flip50"): ("commitGraphChecksum", None),
    ("gc_bitmaps", "objects/info/commit-graph", "delete"): (None, None),
    ("geometric_midx", "objects/info/commit-graphs/commit-graph-chain", "cut1"): ("commitGraphChainNewline", "commitGraphChainNewline"),
    ("geometric_midx", "objects/info/commit-graphs/commit-graph-chain", "half"): ("commitGraphChainFormat", "commitGraphChainFormat"),
    ("geometric_midx", "objects/info/commit-graphs/commit-graph-chain", "flip50"): ("commitGraphChainFormat", "commitGraphChainFormat"),
    ("geometric_midx", "objects/info/commit-graphs/graph-*.graph", "cut1"): ("commitGraphChunkOffset", "commitGraphChunkOffset"),
    ("geometric_midx", "objects/info/commit-graphs/graph-*.graph", "half"): ("commitGraphTooSmall", "commitGraphTooSmall"),
    ("geometric_midx", "objects/info/commit-graphs/graph-*.graph", "zero8"): ("commitGraphChecksum", "commitGraphNameMismatch"),
    ("geometric_midx", "objects/info/commit-graphs/graph-*.graph", "delete"): ("commitGraphChainMissing", "commitGraphChainMissing"),
    # multi-pack-index and its bitmap
    ("geometric_midx", "objects/pack/multi-pack-index", "cut1"): ("midxChunkOffset", "midxChunkOffset"),
    ("geometric_midx", "objects/pack/multi-pack-index", "half"): ("midxChunkOffset", "midxChunkOffset"),
    ("geometric_midx", "objects/pack/multi-pack-index", "zero8"): ("midxChecksum", None),
    ("geometric_midx", "objects/pack/multi-pack-index", "flip50"): ("midxChecksum", None),
    ("geometric_midx", "objects/pack/multi-pack-index", "flip10"): ("midxFanout", "midxFanout"),
    ("geometric_midx", "objects/pack/multi-pack-index-*.bitmap", "cut1"): ("bitmapSize", "bitmapSize"),
    ("geometric_midx", "objects/pack/multi-pack-index-*.bitmap", "zero8"): ("bitmapChecksum", None),
    ("geometric_midx", "objects/pack/multi-pack-index-*.bitmap", "delete"): (None, None),
    # loose refs, HEAD, config
    ("geometric_midx", "refs/heads/main", "half"): ("looseRefTruncated", "looseRefTruncated"),
    ("geometric_midx", "refs/heads/main", "zero8"): ("looseRefTruncated", "looseRefTruncated"),
    ("geometric_midx", "refs/heads/main", "flip10"): ("looseRefBadContent", "looseRefBadContent"),
    ("geometric_midx", "refs/heads/main", "delete"): ("headUnborn", "headUnborn"),
    ("gc_bitmaps", "HEAD", "half"): ("headBadTargetName", "headBadTargetName"),
    ("gc_bitmaps", "HEAD", "flip10"): ("headBadContent", "headBadContent"),
    ("gc_bitmaps", "HEAD", "delete"): ("notAGitDirectory", "notAGitDirectory"),
    ("gc_bitmaps", "config", "zero8"): ("configNulByte", "configNulByte"),
    ("gc_bitmaps", "config", "delete"): ("configMissing", "configMissing"),
    # loose objects: quick checks their zlib stream and header, standard also the graph
    ("loose", "objects/1a/*", "cut1"): ("looseObjectTruncated", "looseObjectTruncated"),
    ("loose", "objects/1a/*", "half"): ("looseObjectTruncated", "looseObjectTruncated"),
    ("loose", "objects/1a/*", "flip50"): ("looseObjectCorrupt", "looseObjectCorrupt"),
    ("loose", "objects/1a/*", "delete"): ("objectMissing", None),
}


# Cases we reject that git 2.39 (installed here) accepts, and why.  Everything else we reject, git rejects too.
GIT_239_ACCEPTS = {
    ("gc_bitmaps", "packed-refs", "flip50"): "unsorted under the `sorted` trait: git >= 2.50 fsck reports packedRefUnsorted",
    ("gc_bitmaps", "packed-refs", "delete"): "policy: a mirror with no refs (git: notice: No default references)",
    ("geometric_midx", "refs/heads/main", "delete"): "policy: HEAD names a missing branch (git: notice only)",
    ("gc_bitmaps", "config", "delete"): "git runs on defaults; the mirror's remote configuration is gone",
    ("gc_bitmaps", "objects/pack/*.rev", "*"): "git >= 2.41 verifies .rev files; 2.39 ignores them",
    ("gc_bitmaps", "objects/pack/*.bitmap", "*"): "git >= 2.41 verifies bitmap checksums; 2.39 ignores them",
    ("geometric_midx", "objects/pack/multi-pack-index-*.bitmap", "*"): "as above, for the midx bitmap",
    ("cruft", "objects/pack/*.mtimes", "*"): "no git version checks .mtimes in fsck; its loader does",
    ("geometric_midx", "objects/info/commit-graphs/commit-graph-chain", "*"): "git >= 2.55 fails on a damaged chain",
    **{("geometric_midx", "objects/info/commit-graphs/graph-*.graph", d):
       "git 2.39 prints errors for a cut or missing split layer but exits 0; 2.55 exits 16"
       for d in ("cut1", "half", "delete")},
}


def _git_accepts(case: tuple[str, str, str]) -> bool:
    return case in GIT_239_ACCEPTS or (case[0], case[1], "*") in GIT_239_ACCEPTS


def _damaged(mirror_copy: Callable[[str], Path], cfg: str, pattern: str, damage: str) -> Path:
    repo = mirror_copy(cfg)
    matches = sorted(glob.glob(str(repo / pattern)))
    assert matches, f"{pattern} not in the {cfg} fixture"
    DAMAGES[damage](Path(matches[0]))
    return repo


def _tar_pzstd(repo: Path, out: Path) -> Path:
    subprocess.run(f"tar -cpf - -C '{repo}' . | pzstd -q -c -p2 > '{out}'", shell=True, check=True)
    return out


def _assert_verdict(report: Report, expected: str | None, what: str) -> None:
    errors = sorted({f.code for f in report.errors})
    if expected is None:
        assert errors == [], f"{what}: expected sound, got {errors}"
        assert report.exit_code == 0
    else:
        assert expected in errors, f"{what}: expected {expected}, got {errors}"
        assert report.exit_code == 1
        assert any(f.path and f.message for f in report.errors)


@pytest.mark.parametrize("case", sorted(CASES), ids=lambda c: f"{c[0]}:{c[1]}:{c[2]}")
def test_damage_directory_and_archive(case: tuple[str, str, str], mirror_copy: Callable[[str], Path],
                                      tmp_path: Path) -> None:
    cfg, pattern, damage = case
    at_standard, at_quick = CASES[case]
    repo = _damaged(mirror_copy, cfg, pattern, damage)
    _assert_verdict(verify(repo, VerifyOptions(level=Level.STANDARD)), at_standard, f"directory standard {case}")
    _assert_verdict(verify(repo, VerifyOptions(level=Level.QUICK)), at_quick, f"directory quick {case}")
    archive = _tar_pzstd(repo, tmp_path / "snap.tar.zst")
    _assert_verdict(verify_file(archive, VerifyOptions(level=Level.STANDARD)), at_standard, f"archive standard {case}")
    if at_standard is not None:
        rc = subprocess.run(["git", "-C", str(repo), "fsck", "--no-dangling"], capture_output=True,
                            env=gitrepos.GIT_ENV).returncode
        if _git_accepts(case):
            assert rc == 0, f"git 2.39 now rejects {case}: update GIT_239_ACCEPTS"
        else:
            assert rc != 0, f"git fsck accepted {case}, which we reject"


@pytest.mark.parametrize("cfg", sorted(gitrepos.BUILDERS))
@pytest.mark.parametrize("level", list(Level))
def test_good_configurations_verify_clean(cfg: str, level: Level, mirrors: Callable[[str], Path], tmp_path: Path) -> None:
    repo = mirrors(cfg)
    report = verify(repo, VerifyOptions(level=level))
    assert report.findings == [] or all(f.severity.value == "info" for f in report.findings), report.findings
    assert report.exit_code == 0
    assert report.summary.refs > 0 and report.summary.objects > 0
    archive = _tar_pzstd(repo, tmp_path / "good.tar.zst")
    areport = verify_file(archive, VerifyOptions(level=level))
    assert [f for f in areport.findings if f.severity.value != "info"] == []
    assert areport.summary.refs == report.summary.refs
    assert areport.summary.objects == report.summary.objects


def test_quick_reads_no_pack_data(mirrors: Callable[[str], Path]) -> None:
    repo = mirrors("gc_bitmaps")
    pack_bytes = sum(os.path.getsize(p) for p in glob.glob(str(repo / "objects/pack/*.pack")))
    report = verify(repo, VerifyOptions(level=Level.QUICK))
    assert report.summary.bytes_checked == 0
    assert report.summary.bytes_read < pack_bytes
