"""A mirror of many small files under a low limit of open files.

Every mapping of a file keeps a file descriptor open (CPython's mmap holds its own), so mapping each
loose object ran out of descriptors with ``ulimit -n 1024`` once a mirror had about a thousand loose
objects (exit 3, "Too many open files").  Small files are now read into memory (a directory) or read
again when needed (an archive member spooled past the memory budget).  The verifier runs here under
a soft limit of 256 descriptors on 600 loose objects and 300 small packs.
"""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

from snapcheck.checks import blobs
from snapcheck.checks.blobs import SMALL_FILE, Held, Spool, map_file, read_stream

from archives import tar_dir, zstd
from gitrepos import GIT_ENV, git

FD_LIMIT = 256
FILES = 600


def _low_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(FD_LIMIT, hard), hard))


def verify_limited(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "snapcheck", "verify", *args], capture_output=True,
                          timeout=300, preexec_fn=_low_fd_limit)


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``loose``: a bare mirror whose commit and its FILES blobs are loose objects (``git add`` into a
    bare repository writes them loose); ``packs``: a mirror of 300 commits fetched one by one with
    ``fetch.unpackLimit=1`` and no auto gc, so that each fetch leaves a small pack."""
    base = tmp_path_factory.mktemp("many")
    loose = base / "loose.git"
    git("init", "-q", "--bare", "-b", "main", str(loose))
    work = base / "work"
    work.mkdir()
    for i in range(FILES):
        (work / f"f{i:04d}.txt").write_text(f"file {i}\n")
    env = {**GIT_ENV, "GIT_DIR": str(loose), "GIT_WORK_TREE": str(work)}
    subprocess.run(["git", "add", "-A"], cwd=work, env=env, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "many files"], cwd=work, env=env, check=True)
    assert not list((loose / "objects/pack").glob("*.pack"))
    assert len(list((loose / "objects").glob("??/*"))) > FILES

    src = base / "src"
    git("init", "-q", "-b", "main", str(src))
    packs = base / "packs.git"
    git("init", "-q", "--bare", "-b", "main", str(packs))
    git("config", "fetch.unpackLimit", "1", cwd=packs)
    git("config", "gc.auto", "0", cwd=packs)  # (auto gc would pack the packs together at 50)
    for i in range(300):
        (src / "f.txt").write_text(f"version {i}\n")
        git("add", "f.txt", cwd=src)
        git("commit", "-q", "-m", f"v{i}", cwd=src)
        git("fetch", "-q", str(src), "main:main", cwd=packs)
    assert len(list((packs / "objects/pack").glob("*.pack"))) >= 300
    return {"loose": loose, "packs": packs}


@pytest.mark.parametrize("which", ["loose", "packs"])
def test_many_small_files_under_a_low_fd_limit(many: dict[str, Path], tmp_path: Path, which: str) -> None:
    repo = many[which]
    r = verify_limited(str(repo))
    assert r.returncode == 0, r.stdout.decode()[-2000:] + r.stderr.decode()[-2000:]
    assert b"SOUND" in r.stdout
    # the same as an archive, with a memory budget so small that every member past the first is spooled
    archive = tmp_path / "a.tar.zst"
    archive.write_bytes(zstd(tar_dir(repo)))
    r = verify_limited("--max-memory-member", "1024", str(archive))
    assert r.returncode == 0, r.stdout.decode()[-2000:] + r.stderr.decode()[-2000:]
    assert b"SOUND" in r.stdout


def test_small_files_are_read_large_ones_mapped(tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.write_bytes(b"x" * SMALL_FILE)
    large = tmp_path / "large"
    large.write_bytes(b"y" * (SMALL_FILE + 1))
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    h = map_file(small)
    assert isinstance(h.buf, bytes) and h.size == SMALL_FILE
    h2 = map_file(large)
    assert not isinstance(h2.buf, bytes) and bytes(h2.buf[:3]) == b"yyy" and h2.size == SMALL_FILE + 1
    h3 = map_file(empty)
    assert h3.buf == b"" and h3.size == 0
    for x in (h, h2, h3):
        x.close()
        with pytest.raises(ValueError):
            _ = x.buf


def test_spooled_small_member_is_read_again_not_held(tmp_path: Path) -> None:
    import io

    spool = Spool(str(tmp_path))
    try:
        h = read_stream(io.BytesIO(b"z" * 1000), 1000, spool=spool, hint="objects/ab/cd", max_memory=10)
        assert h.disk_path is not None and h.size == 1000
        assert h.buf == b"z" * 1000 and h.buf is not h.buf  # read on each use, not kept
        big = read_stream(io.BytesIO(b"w" * (SMALL_FILE + 5)), SMALL_FILE + 5, spool=spool, hint="p", max_memory=10)
        assert not isinstance(big.buf, bytes) and big.size == SMALL_FILE + 5
        big.close()
        h.close()
        with pytest.raises(ValueError):
            _ = h.buf
        assert isinstance(Held(b"in memory", 9), blobs.Held)
    finally:
        spool.close()
