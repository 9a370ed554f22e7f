"""Errors through the command line: the environment's failures exit 3 and say why (permission denied,
S3 unreachable, access denied, disk full); damage in the data exits 1; never a traceback on stderr.

Every case runs ``python -m snapcheck verify|restore`` in a child process.  Unreadable files are made
with ``chmod 000``; as root (whose CAP_DAC_OVERRIDE reads anything) the child runs with every
capability dropped (``setpriv --bounding-set=-all --inh-caps=-all``), so the kernel refuses it like any
other user.  A full disk is a 1 MiB tmpfs when mount is permitted, else a file-size limit (EFBIG).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from archives import cachew_archive

ROOT = Path(__file__).resolve().parent.parent
Mirrors = Callable[[str], Path]

S3_ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
          "AWS_MAX_ATTEMPTS": "2", "AWS_RETRY_MODE": "standard"}


def snapcheck(*args: str, input: bytes | None = None, unprivileged: bool = False,
              env: dict[str, str] | None = None, fsize: int | None = None) -> subprocess.CompletedProcess[bytes]:
    cmd = [sys.executable, "-m", "snapcheck", *args]
    if unprivileged and os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "setpriv (util-linux) is needed to drop root's capabilities"
        cmd = [setpriv, "--bounding-set=-all", "--inh-caps=-all", *cmd]

    def limit_file_size() -> None:
        import resource

        assert fsize is not None
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    res = subprocess.run(cmd, input=input, capture_output=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
                         preexec_fn=limit_file_size if fsize is not None else None)
    assert b"Traceback" not in res.stderr, res.stderr.decode(errors="replace")
    return res


def stderr(res: subprocess.CompletedProcess[bytes]) -> str:
    return res.stderr.decode(errors="replace")


@pytest.fixture(scope="module")
def archive(mirrors: Mirrors, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real mirror as cachew ships it (tar | pzstd), about 100 KB."""
    p = tmp_path_factory.mktemp("archive") / "mirror.tar.zst"
    p.write_bytes(cachew_archive(mirrors("gc_bitmaps")))
    return p


def test_the_archive_itself_is_sound(archive: Path, tmp_path: Path) -> None:
    assert snapcheck("verify", "-q", str(archive)).returncode == 0
    res = snapcheck("restore", "-q", str(archive), str(tmp_path / "dest"))
    assert res.returncode == 0, stderr(res)
    assert (tmp_path / "dest" / "HEAD").is_file()


# ----------------------------------------------------------------------------- permission denied
def test_unreadable_archive_file(archive: Path, tmp_path: Path) -> None:
    p = tmp_path / "locked.tar.zst"
    shutil.copy(archive, p)
    p.chmod(0)
    for cmd in (["verify", str(p)], ["restore", str(p), str(tmp_path / "dest")]):
        res = snapcheck(*cmd, unprivileged=True)
        assert res.returncode == 3, stderr(res)
        assert "Permission denied" in stderr(res) and str(p) in stderr(res), stderr(res)
    assert not (tmp_path / "dest").exists()


def test_unreadable_file_inside_a_mirror_directory(mirror_copy: Mirrors) -> None:
    m = mirror_copy("gc_bitmaps")
    (idx,) = (m / "objects" / "pack").glob("*.idx")
    idx.chmod(0)
    res = snapcheck("verify", "--format", "json", str(m), unprivileged=True)
    assert res.returncode == 3, stderr(res)
    assert b'"verdict": "incomplete"' in res.stdout
    assert b"sourceUnreadable" in res.stdout and b"Permission denied" in res.stdout, res.stdout[-2000:]


def test_unreadable_directory_inside_a_mirror(mirror_copy: Mirrors) -> None:
    m = mirror_copy("gc_bitmaps")
    (m / "refs" / "tags").chmod(0)
    res = snapcheck("verify", "--format", "json", str(m), unprivileged=True)
    assert res.returncode == 3, stderr(res) + res.stdout.decode()[-2000:]
    assert b"Permission denied" in res.stdout + res.stderr


def test_unreadable_mirror_directory(mirror_copy: Mirrors) -> None:
    m = mirror_copy("gc_bitmaps")
    m.chmod(0)
    try:
        res = snapcheck("verify", str(m), unprivileged=True)
    finally:
        m.chmod(0o755)
    assert res.returncode == 3, stderr(res)
    assert "Permission denied" in stderr(res) + res.stdout.decode(), stderr(res)


def test_restore_destination_not_writable(archive: Path, tmp_path: Path) -> None:
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    res = snapcheck("restore", str(archive), str(parent / "dest"), unprivileged=True)
    assert res.returncode == 3, stderr(res)
    assert "Permission denied" in stderr(res), stderr(res)
    assert list(parent.iterdir()) == []


# ----------------------------------------------------------------------------- S3
def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_s3_endpoint_refusing_connections(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    for cmd in (["verify", "s3://bucket/mirror.tar.zst"], ["restore", "s3://bucket/mirror.tar.zst", str(tmp_path / "d")]):
        res = snapcheck(*cmd, "--endpoint-url", url, env=S3_ENV)
        assert res.returncode == 3, stderr(res)
        err = stderr(res)
        assert "s3://bucket/mirror.tar.zst" in err and ("onnect" in err or "refused" in err), err
    assert not (tmp_path / "d").exists()


class _Deny(BaseHTTPRequestHandler):
    """An S3 endpoint that answers every request 403 AccessDenied, as S3 does for a missing permission."""

    def _deny(self) -> None:
        body = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
                b"<Message>Access Denied</Message><RequestId>1</RequestId></Error>")
        self.send_response(403)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)) if self.command != "HEAD" else "0")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_PUT = do_POST = _deny

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def denying_endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Deny)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_s3_access_denied(denying_endpoint: str, tmp_path: Path) -> None:
    for cmd in (["verify", "s3://bucket/mirror.tar.zst"], ["restore", "s3://bucket/mirror.tar.zst", str(tmp_path / "d")]):
        res = snapcheck(*cmd, "--endpoint-url", denying_endpoint, env=S3_ENV)
        assert res.returncode == 3, stderr(res)
        assert "s3://bucket/mirror.tar.zst" in stderr(res) and "denied" in stderr(res).lower(), stderr(res)
    assert not (tmp_path / "d").exists()


# ----------------------------------------------------------------------------- disk full
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[tuple[Path, int | None]]:
    """(directory on a 1 MiB file system, None) when mounting is permitted, else (a directory, a
    file-size limit of 1 MiB for the child: writes past it fail with EFBIG)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True)
    if res.returncode != 0:
        yield mnt, 1 << 20
        return
    try:
        yield mnt, None
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True)


@pytest.fixture(scope="module")
def big_mirror_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import gitrepos

    base = tmp_path_factory.mktemp("big")
    work = base / "work"
    work.mkdir()
    gitrepos.git("init", "-q", "-b", "main", str(work))
    (work / "blob.bin").write_bytes(os.urandom(3 << 20))
    gitrepos.git("add", "blob.bin", cwd=work)
    gitrepos.git("commit", "-q", "-m", "big", cwd=work)
    mirror = gitrepos.mirror_of(work, base / "big.git")
    gitrepos.git("gc", "-q", cwd=mirror)
    p = base / "big.tar.zst"
    p.write_bytes(cachew_archive(mirror))
    return p


def test_disk_full_during_restore(big_mirror_archive: Path, small_disk: tuple[Path, int | None]) -> None:
    mnt, fsize = small_disk
    res = snapcheck("restore", str(big_mirror_archive), str(mnt / "dest"), fsize=fsize)
    assert res.returncode == 3, stderr(res)
    assert ("No space left on device" if fsize is None else "File too large") in stderr(res), stderr(res)
    assert list(mnt.iterdir()) == [], "the temp dir of a failed restore must be removed"


def test_disk_full_in_the_spool_dir(big_mirror_archive: Path, small_disk: tuple[Path, int | None]) -> None:
    mnt, fsize = small_disk
    res = snapcheck("verify", "--spool-dir", str(mnt), str(big_mirror_archive), fsize=fsize)
    assert res.returncode == 3, stderr(res)
    said = stderr(res) + res.stdout.decode(errors="replace")
    assert f"cannot write spool file {mnt}/snapcheck-spool-" in said, said
    assert ("No space left on device" if fsize is None else "File too large") in said, said
    assert list(mnt.iterdir()) == []


# ----------------------------------------------------------------------------- damaged data
def test_corrupt_archive_exits_1(archive: Path, tmp_path: Path) -> None:
    data = archive.read_bytes()
    cut = tmp_path / "cut.tar.zst"
    cut.write_bytes(data[: len(data) // 2])
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0x40
    bad = tmp_path / "flipped.tar.zst"
    bad.write_bytes(bytes(flipped))
    for p in (cut, bad):
        res = snapcheck("verify", str(p))
        assert res.returncode == 1, stderr(res) + res.stdout.decode()[-1000:]
        res = snapcheck("restore", str(p), str(tmp_path / "dest"))
        assert res.returncode == 1, stderr(res)
        assert not (tmp_path / "dest").exists()
    res = snapcheck("verify", "-", input=data[:-7])
    assert res.returncode == 1, stderr(res)
    res = snapcheck("verify", "-", input=b"not an archive at all\n" * 40)
    assert res.returncode == 1 and b"archiveUnknownFormat" in res.stdout, stderr(res)
