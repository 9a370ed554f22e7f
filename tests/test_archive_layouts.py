"""Where the repository sits inside an archive, and which tools wrote it: cachew's mirror snapshots
(`./…`), its workstation snapshots (a non-bare clone: `./.git/…` beside a work tree), one top directory,
GNU tar, Python tarfile in every format, gzip and plain tar — all verify the same repository."""

from __future__ import annotations

import io
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard

from snapcheck.options import VerifyOptions
from snapcheck.restore import restore
from snapcheck.verifier import verify_file

import gitrepos


def sh(cmd: str) -> None:
    subprocess.run(cmd, shell=True, check=True)


@pytest.fixture(scope="module")
def workstation(tmp_path_factory: pytest.TempPathFactory, mirrors: Callable[[str], Path]) -> Path:
    """A cachew-style workstation snapshot source: `git clone <mirror>` with a checked-out work tree."""
    base = tmp_path_factory.mktemp("ws")
    clone = base / "base"
    gitrepos.git("clone", "-q", str(mirrors("gc_bitmaps")), str(clone))
    gitrepos.git("remote", "set-url", "origin", "https://example.com/org/repo", cwd=clone)
    return clone


def test_workstation_snapshot_verifies_its_git_dir(workstation: Path, tmp_path: Path) -> None:
    out = tmp_path / "base.tar.zst"
    sh(f"tar -cpf - -C '{workstation}' . | pzstd -q -c -p2 > '{out}'")
    report = verify_file(out)
    assert report.exit_code == 0, report.findings
    assert report.summary.repository_root == ".git/"
    assert report.summary.refs > 0
    head = gitrepos.git("rev-parse", "HEAD", cwd=workstation).strip()
    assert report.summary.head == head
    # restore installs the whole work tree with its .git
    dest = tmp_path / "restored"
    result = restore(str(out), dest)
    assert result.installed
    assert (dest / "README").exists() and (dest / ".git" / "HEAD").exists()
    assert gitrepos.git_rc("fsck", cwd=dest)[0] == 0
    assert gitrepos.git("status", "--porcelain", cwd=dest) == ""


def test_workstation_snapshot_with_damaged_git_dir(workstation: Path, tmp_path: Path) -> None:
    copy = tmp_path / "clone"
    sh(f"cp -a '{workstation}' '{copy}'")
    pack = next((copy / ".git/objects/pack").glob("*.pack"))
    pack.write_bytes(pack.read_bytes()[:-1])
    out = tmp_path / "bad.tar.zst"
    sh(f"tar -cpf - -C '{copy}' . | pzstd -q -c -p2 > '{out}'")
    report = verify_file(out)
    assert "packChecksumMismatch" in report.codes()
    assert all(f.path.startswith("objects/") for f in report.errors)


def test_top_directory_and_formats(mirrors: Callable[[str], Path], tmp_path: Path) -> None:
    repo = mirrors("geometric_midx")
    expected = verify_file(_gnu(repo, tmp_path / "plain.tar")).summary
    assert expected.refs > 0
    variants = {
        "top-dir.tar.zst": f"tar -cpf - -C '{repo.parent}' '{repo.name}' | zstd -q -c",
        "gzip.tar.gz": f"tar -cpf - -C '{repo}' . | gzip -c",
        "zstd-T2.tar.zst": f"tar -cpf - -C '{repo}' . | zstd -q -T2 -c",
        "posix.tar": f"tar --format=posix -cpf - -C '{repo}' .",
        "oldgnu.tar": f"tar --format=oldgnu -cpf - -C '{repo}' .",
    }
    for name, cmd in variants.items():
        out = tmp_path / name
        sh(f"{cmd} > '{out}'")
        s = verify_file(out).summary
        assert (s.refs, s.objects, s.head) == (expected.refs, expected.objects, expected.head), name
    for fmt in (tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        out = tmp_path / f"py{fmt}.tar.zst"
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
            tar.add(str(repo), arcname=".")
        out.write_bytes(zstandard.ZstdCompressor(write_checksum=True).compress(buf.getvalue()))
        r = verify_file(out, VerifyOptions())
        assert r.exit_code == 0, (fmt, r.findings)
        assert (r.summary.refs, r.summary.objects) == (expected.refs, expected.objects)


def _gnu(repo: Path, out: Path) -> Path:
    sh(f"tar -cpf - -C '{repo}' . > '{out}'")
    return out


def test_two_repositories_in_one_archive_is_an_error(mirrors: Callable[[str], Path], tmp_path: Path) -> None:
    a, b = mirrors("gc_bitmaps"), mirrors("sha256")
    d = tmp_path / "two"
    d.mkdir()
    sh(f"cp -a '{a}' '{d}/a.git' && cp -a '{b}' '{d}/b.git'")
    out = tmp_path / "two.tar.zst"
    sh(f"tar -cpf - -C '{d}' a.git b.git | zstd -q -c > '{out}'")
    assert "archiveMultipleRepositories" in verify_file(out).codes()


def test_not_a_repository(tmp_path: Path) -> None:
    d = tmp_path / "files"
    d.mkdir()
    (d / "hello.txt").write_text("hi\n")
    out = tmp_path / "files.tar.zst"
    sh(f"tar -cpf - -C '{d}' . | zstd -q -c > '{out}'")
    report = verify_file(out)
    assert report.codes() == ["archiveNoRepository"]
    assert report.exit_code == 1
