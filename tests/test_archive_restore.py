"""`snapcheck archive` and `snapcheck restore` end to end, on every fixture configuration, to a local
bucket and to the real S3 server.

Every archive verifies with its manifest, restores into a mirror that ``git fsck --full`` accepts and
whose refs are exactly ``git for-each-ref`` of the source.  Restore refuses an existing destination
unless ``--replace`` (exit 2), and ``--replace`` swaps it.  The manifest catches the one damage syntax
cannot see — ``packed-refs`` cut at a record boundary inside an archive snapcheck made — and a
restore of a damaged archive leaves the destination untouched and no temp dir behind.  A temp dir
left by a restore killed with SIGKILL is removed by the next run, never adopted.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard
from conftest import CONFIGS

from snapcheck.archive import ArchiveOptions, archive
from snapcheck.publish import PublishOptions
from snapcheck.restore import restore
from snapcheck.verifier import verify

from gitrepos import build_work, git, git_rc, mirror_of

ROOT = Path(__file__).resolve().parent.parent
TEMP_NAME = re.compile(r"\.(?P<name>.+)\.snapcheck-(?:old-)?[0-9a-f]{16}\Z")


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "snapcheck", *args], capture_output=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def for_each_ref(repo: Path) -> dict[str, str]:
    out = git("for-each-ref", "--format=%(objectname) %(refname)", cwd=repo)
    return {line.split(" ", 1)[1]: line.split(" ", 1)[0] for line in out.splitlines()}


def head_target(repo: Path) -> str | None:
    rc, out, _ = git_rc("symbolic-ref", "-q", "HEAD", cwd=repo)
    return out.strip() if rc == 0 else None


def fsck_full(repo: Path) -> None:
    rc, out, err = git_rc("fsck", "--full", "--strict", "--no-dangling", cwd=repo)
    assert rc == 0, f"git fsck --full failed in {repo}: {out}{err}"


def temp_siblings(parent: Path) -> list[str]:
    """snapcheck's temp dirs (``.<name>.snapcheck-<hex>``) in *parent*."""
    return sorted(p.name for p in parent.iterdir() if TEMP_NAME.match(p.name))


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under *root* with its sha256 (directories as 'dir'): to show it did not change."""
    out: dict[str, str] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def local_bucket(tmp_path: Path) -> Path:
    bucket = tmp_path / "bucket"
    (bucket / ".snapcheck-meta").mkdir(parents=True)  # marks the bucket root: keys keep their folders
    return bucket


def archive_to(mirror: Path, dest: str) -> None:
    res = archive(mirror, dest, ArchiveOptions(publish=PublishOptions(baseline="none")))
    assert res.publish.committed, [(f.code, f.message) for f in res.publish.report.errors]


# --------------------------------------------------------------------------------------------------
# every configuration, local bucket and S3


@pytest.mark.parametrize("where", ["local", "s3"])
@pytest.mark.parametrize("name", CONFIGS)
def test_archive_verify_restore_round_trip(name: str, where: str, mirrors: Callable[[str], Path], tmp_path: Path,
                                           request: pytest.FixtureRequest) -> None:
    mirror = mirrors(name)
    key = f"git/{name}.tar.zst"
    if where == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        dest = bucket.url(key)
    else:
        dest = str(local_bucket(tmp_path) / key)
    res = archive(mirror, dest, ArchiveOptions(publish=PublishOptions(baseline="auto")))
    assert res.publish.committed, [(f.code, f.message) for f in res.publish.report.errors]
    assert res.attempts == 1
    assert res.publish.metadata["snapcheck-refs"] == str(len(for_each_ref(mirror)))

    rep = verify(dest)
    assert rep.sound, [(f.code, f.message) for f in rep.errors]
    assert not rep.warnings, [(f.code, f.message) for f in rep.warnings]
    assert rep.summary.manifest
    assert {n: o.hex() for n, o in rep.refs.items()} == for_each_ref(mirror)

    if where == "s3":
        c = bucket.client
        assert [o["Key"] for o in c.list_objects_v2(Bucket=bucket.name)["Contents"]] == [key]
        assert c.list_multipart_uploads(Bucket=bucket.name).get("Uploads", []) == []
        assert c.head_object(Bucket=bucket.name, Key=key)["Metadata"]["snapcheck-sha256"] == res.publish.sha256
    else:
        data = Path(dest).read_bytes()
        assert hashlib.sha256(data).hexdigest() == res.publish.sha256
        assert sorted(p.name for p in Path(dest).parent.iterdir()) == [f"{name}.tar.zst"]  # no temp file left

    out = tmp_path / "restored" / f"{name}.git"
    out.parent.mkdir()
    rr = restore(dest, out)
    assert rr.installed and rr.report.sound
    fsck_full(out)
    assert for_each_ref(out) == for_each_ref(mirror)
    assert head_target(out) == head_target(mirror)
    assert git("rev-parse", "HEAD", cwd=out) == git("rev-parse", "HEAD", cwd=mirror)
    assert not (out / ".snapcheck").exists()
    assert temp_siblings(out.parent) == []


# --------------------------------------------------------------------------------------------------
# restore: existing destination, --replace


def test_restore_refuses_existing_dest_without_replace_and_replace_swaps(mirrors: Callable[[str], Path],
                                                                        tmp_path: Path) -> None:
    a, b = tmp_path / "a.tar.zst", tmp_path / "b.tar.zst"
    r = cli("archive", "-q", str(mirrors("gc_bitmaps")), str(a))
    assert r.returncode == 0, r.stderr.decode()
    r = cli("archive", "-q", str(mirrors("many_refs")), str(b))
    assert r.returncode == 0, r.stderr.decode()
    parent = tmp_path / "srv"
    parent.mkdir()
    dest = parent / "repo.git"
    r = cli("restore", "-q", str(a), str(dest))
    assert r.returncode == 0, r.stderr.decode()
    assert for_each_ref(dest) == for_each_ref(mirrors("gc_bitmaps"))
    before = tree_digest(dest)

    r = cli("restore", "-q", str(b), str(dest))
    assert r.returncode == 2, (r.returncode, r.stderr.decode())
    assert b"--replace" in r.stderr and b"Traceback" not in r.stderr
    assert tree_digest(dest) == before
    assert temp_siblings(parent) == []

    r = cli("restore", "-q", "--replace", str(b), str(dest))
    assert r.returncode == 0, r.stderr.decode()
    assert for_each_ref(dest) == for_each_ref(mirrors("many_refs"))
    fsck_full(dest)
    assert sorted(p.name for p in parent.iterdir()) == ["repo.git"]  # the old copy is gone


# --------------------------------------------------------------------------------------------------
# the manifest closes the record-boundary blind spot


def rewrite_member(archive_bytes: bytes, path: str, change: Callable[[bytes], bytes], *,
                   drop_manifest: bool = False) -> bytes:
    """Decompress a snapcheck archive, replace the data of member ``./<path>`` (header size adjusted),
    keep every other member and the order, and compress again (zstd with frame checksums)."""
    tar = zstandard.ZstdDecompressor().decompressobj().decompress(archive_bytes)
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as src, \
            tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as dst:
        found = False
        for m in src.getmembers():
            if drop_manifest and m.name.startswith("./.snapcheck"):
                continue
            data = src.extractfile(m).read() if m.isfile() else None  # type: ignore[union-attr]
            if m.name == f"./{path}":
                assert data is not None
                data = change(data)
                m.size = len(data)
                found = True
            dst.addfile(m, io.BytesIO(data) if data is not None else None)
    assert found, path
    return zstandard.ZstdCompressor(write_checksum=True).compress(out.getvalue())


def cut_at_record_boundary(data: bytes) -> bytes:
    """Cut packed-refs at the start of a record near its middle (never before a ``^`` peel line):
    a shorter, perfectly well-formed file."""
    pos = data.index(b"\n", len(data) // 2) + 1
    while data[pos:pos + 1] == b"^":
        pos = data.index(b"\n", pos) + 1
    assert 0 < pos < len(data)
    return data[:pos]


def test_manifest_catches_packed_refs_cut_at_a_record_boundary(mirrors: Callable[[str], Path], tmp_path: Path) -> None:
    mirror = mirrors("many_refs")
    good = tmp_path / "good.tar.zst"
    archive_to(mirror, str(good))
    cut = tmp_path / "cut.tar.zst"
    cut.write_bytes(rewrite_member(good.read_bytes(), "packed-refs", cut_at_record_boundary))

    # without the manifest the cut is invisible: a well-formed, shorter packed-refs
    bare = tmp_path / "cut-no-manifest.tar.zst"
    bare.write_bytes(rewrite_member(good.read_bytes(), "packed-refs", cut_at_record_boundary, drop_manifest=True))
    blind = verify(bare)
    assert blind.sound, [(f.code, f.message) for f in blind.errors]
    assert not blind.summary.manifest
    missing = set(for_each_ref(mirror)) - set(blind.refs)
    assert len(missing) > 100  # refs silently lost

    # with it, verify and restore reject the archive
    rep = verify(cut)
    assert not rep.sound
    codes = {f.code for f in rep.errors}
    assert "manifestRefMissing" in codes and "manifestFileSizeMismatch" in codes, codes
    named = {f.path for f in rep.errors if f.code == "manifestRefMissing" and f.path.startswith("refs/")}
    assert named and named <= missing  # (past 50, one summary finding counts the rest)
    r = cli("verify", "-q", str(cut))
    assert r.returncode == 1 and b"manifestRefMissing" in r.stdout

    parent = tmp_path / "srv"
    parent.mkdir()
    dest = parent / "repo.git"
    r = cli("restore", "-q", str(cut), str(dest))
    assert r.returncode == 1, (r.returncode, r.stderr.decode())
    assert b"manifestRefMissing" in r.stdout and b"not restored" in r.stderr
    assert not dest.exists() and temp_siblings(parent) == []
    # and over an existing destination, with --replace: untouched
    r = cli("restore", "-q", str(good), str(dest))
    assert r.returncode == 0, r.stderr.decode()
    before = tree_digest(dest)
    r = cli("restore", "-q", "--replace", str(cut), str(dest))
    assert r.returncode == 1
    assert tree_digest(dest) == before and sorted(p.name for p in parent.iterdir()) == ["repo.git"]


# --------------------------------------------------------------------------------------------------
# failed restores leave nothing behind


@pytest.mark.parametrize("damage", ["flipped-byte", "truncated", "packed-refs-mid-line"])
def test_restore_of_a_damaged_archive_leaves_dest_untouched(damage: str, mirrors: Callable[[str], Path],
                                                            tmp_path: Path) -> None:
    good = tmp_path / "good.tar.zst"
    archive_to(mirrors("many_refs"), str(good))
    data = good.read_bytes()
    if damage == "flipped-byte":
        pos = len(data) // 2
        bad = data[:pos] + bytes([data[pos] ^ 0x10]) + data[pos + 1:]
    elif damage == "truncated":
        bad = data[: len(data) * 3 // 5]
    else:
        bad = rewrite_member(data, "packed-refs", lambda d: d[: len(d) // 2 + 7])
    src = tmp_path / "bad.tar.zst"
    src.write_bytes(bad)
    parent = tmp_path / "srv"
    parent.mkdir()
    dest = parent / "repo.git"
    archive_to(mirrors("gc_bitmaps"), str(tmp_path / "old.tar.zst"))
    assert restore(str(tmp_path / "old.tar.zst"), dest).installed
    before = tree_digest(dest)
    r = cli("restore", "-q", "--replace", str(src), str(dest))
    assert r.returncode in (1, 3), (r.returncode, r.stderr.decode())
    assert b"Traceback" not in r.stderr
    assert tree_digest(dest) == before
    assert sorted(p.name for p in parent.iterdir()) == ["repo.git"]  # no temp dir left
    for_each_ref(dest)  # git still reads it


# --------------------------------------------------------------------------------------------------
# a killed restore's temp dir is cleaned by the next run


@pytest.fixture(scope="module")
def medium_archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A mirror with a few MiB of incompressible blobs, and its snapcheck archive."""
    base = tmp_path_factory.mktemp("medium")
    work = build_work(base / "work", commits=14)
    for i in range(3):
        (work / f"blob{i}.bin").write_bytes(os.urandom(2 << 20))
    git("add", ".", cwd=work)
    git("commit", "-q", "-m", "blobs", cwd=work)
    m = mirror_of(work, base / "medium.git")
    git("gc", "-q", cwd=m)
    out = base / "medium.tar.zst"
    archive_to(m, str(out))
    return m, out


def test_leftover_of_a_killed_restore_is_cleaned_by_the_next_run(medium_archive: tuple[Path, Path],
                                                                 tmp_path: Path) -> None:
    mirror, src = medium_archive
    data = src.read_bytes()
    parent = tmp_path / "srv"
    parent.mkdir()
    dest = parent / "repo.git"
    proc = subprocess.Popen([sys.executable, "-m", "snapcheck", "restore", "-q", "-", str(dest)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdin is not None
    try:
        proc.stdin.write(data[: len(data) // 2])  # half the archive; the rest never comes
        proc.stdin.flush()
        deadline = time.monotonic() + 60
        leftover: list[str] = []
        while time.monotonic() < deadline:
            leftover = temp_siblings(parent)
            if leftover and any(p.is_file() for p in (parent / leftover[0]).rglob("*")):
                break
            time.sleep(0.05)
        assert leftover, "the restore never made its temp dir"
        time.sleep(0.3)  # let it extract what it has
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdin.close()
    assert proc.returncode == -signal.SIGKILL
    leftover = temp_siblings(parent)
    assert len(leftover) == 1 and not dest.exists()
    partial = parent / leftover[0]
    assert any(p.is_file() for p in partial.rglob("*"))

    r = cli("restore", "-q", str(src), str(dest))
    assert r.returncode == 0, r.stderr.decode()
    assert sorted(p.name for p in parent.iterdir()) == ["repo.git"]  # the leftover is gone
    fsck_full(dest)
    assert for_each_ref(dest) == for_each_ref(mirror)
