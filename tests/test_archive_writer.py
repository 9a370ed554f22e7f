"""The archive writer (snapcheck.archive_writer): a pax tar under ./, zstd with checksums, the manifest
as the last member, end blocks, deterministic bytes, bounded memory; checked with the real zstd and
GNU tar binaries, Python's tarfile, and git fsck on the extracted mirror."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zstandard

from snapcheck.archive_writer import ArchiveStats, ArchiveWriteError, build_manifest, write_archive
from snapcheck.capture import Capture, capture_mirror
from snapcheck.manifest import MANIFEST_PATH, Manifest

from gitrepos import GIT_ENV, git, git_rc

CREATED = "2024-05-01T12:00:00Z"


@pytest.fixture
def captured(mirrors: Callable[[str], Path]) -> Iterator[Capture]:
    with capture_mirror(mirrors("geometric_midx")) as c:
        yield c


def write(staging: Path, manifest: Manifest, path: Path, **kw: int) -> ArchiveStats:
    with open(path, "wb") as f:
        return write_archive(staging, manifest, f, **kw)


def run(cmd: str, **kw: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(cmd, shell=True, capture_output=True, env=GIT_ENV, **kw)  # type: ignore[call-overload, no-any-return]


def test_archive_of_a_capture(captured: Capture, tmp_path: Path) -> None:
    manifest = build_manifest(captured, "0.1.0", created=CREATED)
    path = tmp_path / "a.tar.zst"
    stats = write(captured.staging, manifest, path)
    data = path.read_bytes()
    assert stats.compressed_bytes == len(data)
    assert stats.sha256 == hashlib.sha256(data).hexdigest()
    assert stats.files == len(captured.files) + 1
    assert data[:4] == b"\x28\xb5\x2f\xfd"  # a zstd frame
    frame = zstandard.get_frame_parameters(data)
    assert frame.has_checksum and frame.content_size == zstandard.CONTENTSIZE_UNKNOWN

    res = run(f"zstd -t '{path}'")
    assert res.returncode == 0, res.stderr
    tar_bytes = zstandard.ZstdDecompressor().decompressobj().decompress(data)
    assert len(tar_bytes) == stats.tar_bytes and len(tar_bytes) % 512 == 0
    assert tar_bytes[-1024:] == bytes(1024) and tar_bytes[-1536:-1024] != bytes(512)

    # GNU tar: every member under ./, numeric owner 0/0, the manifest last
    res = run(f"zstd -dc '{path}' | tar -tv --numeric-owner -f -")
    assert res.returncode == 0, res.stderr
    listing = res.stdout.decode().splitlines()
    names = [line.split()[-1] for line in listing]
    assert names[0] == "./" and all(n.startswith("./") for n in names)
    assert names[-1] == "./" + MANIFEST_PATH
    assert all(line.split()[1] == "0/0" for line in listing)
    dirs = [n for n in names if n.endswith("/")]
    assert names[: len(dirs)] == dirs  # directories first
    files = names[len(dirs):-1]
    assert files == sorted(files)
    assert {n[2:] for n in files} == set(captured.files)

    # Python's tarfile reads it; contents, modes and sizes match the staging directory and the manifest
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tf:
        members = tf.getmembers()
        assert [m.name for m in members][-1] == "./" + MANIFEST_PATH
        for m in members:
            assert m.uid == 0 and m.gid == 0 and m.uname == "" and m.gname == ""
            if not m.isfile() or m.name == "./" + MANIFEST_PATH:
                continue
            rel = m.name[2:]
            st = (captured.staging / rel).stat()
            assert m.size == st.st_size == captured.files[rel][0]
            assert m.mode == st.st_mode & 0o7777 and m.mtime == int(st.st_mtime)
            f = tf.extractfile(m)
            assert f is not None
            assert hashlib.sha256(f.read()).hexdigest() == captured.files[rel][1]
        mf = tf.extractfile("./" + MANIFEST_PATH)
        assert mf is not None
        back, findings = Manifest.from_json(mf.read())
        assert findings == [] and back == manifest

    # extracted by the real tools, it is the mirror git knows
    out = tmp_path / "x"
    out.mkdir()
    res = run(f"zstd -dc '{path}' | tar -x -C '{out}'")
    assert res.returncode == 0, res.stderr
    rc, o, e = git_rc("fsck", "--no-dangling", cwd=out)
    assert rc == 0, o + e
    assert captured.mirror is not None
    assert git("for-each-ref", cwd=out) == git("for-each-ref", cwd=captured.mirror)


def test_streams_into_a_pipe(captured: Capture, tmp_path: Path) -> None:
    """The sink can be a pipe into `zstd -dc | tar -x` (no seeks, no size known in advance)."""
    out = tmp_path / "x"
    out.mkdir()
    proc = subprocess.Popen(f"zstd -dc | tar -x -C '{out}'", shell=True, stdin=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=GIT_ENV)
    assert proc.stdin is not None
    write_archive(captured.staging, build_manifest(captured, "t", created=CREATED), proc.stdin, threads=2)
    proc.stdin.close()
    assert proc.wait() == 0
    rc, o, e = git_rc("fsck", cwd=out)
    assert rc == 0, o + e
    assert (out / MANIFEST_PATH).is_file()


def test_deterministic(captured: Capture, tmp_path: Path) -> None:
    manifest = build_manifest(captured, "0.1.0", created=CREATED)
    a = write(captured.staging, manifest, tmp_path / "a")
    b = write(captured.staging, manifest, tmp_path / "b")
    assert a == b and (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()
    # multi-threaded compression: other frames, the same tar stream
    c = write(captured.staging, manifest, tmp_path / "c", threads=2, level=5)
    assert c.tar_bytes == a.tar_bytes
    dctx = zstandard.ZstdDecompressor()
    assert (dctx.decompressobj().decompress((tmp_path / "c").read_bytes())
            == dctx.decompressobj().decompress((tmp_path / "a").read_bytes()))
    # the created time is in the manifest only
    later = build_manifest(captured, "0.1.0", created="2025-01-01T00:00:00Z")
    assert write(captured.staging, later, tmp_path / "d").sha256 != a.sha256


# --------------------------------------------------------------------------------------------------
# synthetic staging directories: bounded memory and refusals


def make_staging(root: Path, files: dict[str, bytes]) -> Manifest:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return Manifest(
        schema=1, tool_version="t", created=CREATED, object_format="sha1", head_target=None, head_oid=None,
        refs={}, symrefs={}, files={rel: (len(d), hashlib.sha256(d).hexdigest()) for rel, d in files.items()},
    )


class CountingSink(io.RawIOBase):
    def __init__(self) -> None:
        self.total = 0
        self.writes = 0
        self.largest = 0
        self.hash = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, b: object) -> int:
        mv = memoryview(b)  # type: ignore[arg-type]
        self.total += mv.nbytes
        self.writes += 1
        self.largest = max(self.largest, mv.nbytes)
        self.hash.update(mv)
        return mv.nbytes


def test_bounded_memory(tmp_path: Path) -> None:
    big = os.urandom(24 << 20)  # incompressible: the compressed stream is as large as the data
    manifest = make_staging(tmp_path / "s", {"objects/pack/pack-1.pack": big, "HEAD": b"ref: refs/heads/main\n"})
    del big
    sink = CountingSink()
    tracemalloc.start()
    try:
        stats = write_archive(tmp_path / "s", manifest, sink)  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stats.compressed_bytes == sink.total > 24 << 20
    assert stats.sha256 == sink.hash.hexdigest()
    assert sink.writes > 20 and sink.largest <= 2 << 20
    assert peak < 8 << 20, f"peak Python allocation {peak} bytes while archiving 24 MiB"


def test_refuses_a_staging_that_does_not_match_its_manifest(tmp_path: Path) -> None:
    s = tmp_path / "s"
    big = os.urandom(3 << 20)
    manifest = make_staging(s, {"HEAD": b"ref: refs/heads/main\n", "objects/a": b"abc", "objects/big": big})
    (s / "extra").write_bytes(b"x")
    with pytest.raises(ArchiveWriteError, match="not in the manifest 1: extra"):
        write_archive(s, manifest, io.BytesIO())
    (s / "extra").unlink()
    (s / "objects/a").unlink()
    with pytest.raises(ArchiveWriteError, match="missing 1: objects/a"):
        write_archive(s, manifest, io.BytesIO())
    (s / "objects/a").write_bytes(b"abc")
    (s / "objects/big").write_bytes(big + b"!")  # grew after the capture recorded it
    sink = io.BytesIO()
    with pytest.raises(ArchiveWriteError, match=f"larger than the {3 << 20} bytes"):
        write_archive(s, manifest, sink)
    # what reached the sink does not look finished: the zstd frame is not ended
    assert len(sink.getvalue()) > 1 << 20
    dobj = zstandard.ZstdDecompressor().decompressobj()
    assert len(dobj.decompress(sink.getvalue())) > 1 << 20 and not dobj.eof
    res = subprocess.run(["zstd", "-t"], input=sink.getvalue(), capture_output=True)
    assert res.returncode != 0
    (s / "objects/big").write_bytes(big)
    (s / "objects/a").write_bytes(b"ab")
    with pytest.raises(ArchiveWriteError, match="ended after 2 of 3 bytes"):
        write_archive(s, manifest, io.BytesIO())
    (s / "objects/a").write_bytes(b"abc")
    os.symlink("HEAD", s / "link")
    with pytest.raises(ArchiveWriteError, match="neither a directory nor a regular file"):
        write_archive(s, manifest, io.BytesIO())
    (s / "link").unlink()
    (s / ".snapcheck").mkdir()
    with pytest.raises(ArchiveWriteError, match=r"its own \.snapcheck"):
        write_archive(s, manifest, io.BytesIO())
    (s / ".snapcheck").rmdir()
    with pytest.raises(ArchiveWriteError, match="created time"):
        write_archive(s, Manifest(**{**manifest.__dict__, "created": "2024-02-30T00:00:00Z"}), io.BytesIO())
    assert write_archive(s, manifest, io.BytesIO()).files == 4


def test_long_and_non_ascii_names_use_pax(tmp_path: Path) -> None:
    long = "refs/pull/" + "x" * 150 + "/head"
    odd = "refs/tags/caf\udcc3"  # a ref name that is not UTF-8 (surrogateescape)
    s = tmp_path / "s"
    s.mkdir()
    manifest = make_staging(s, {long: b"1" * 41, "refs/tags/ok": b"2" * 41})
    (s / odd).write_bytes(b"3" * 41)
    manifest.files[odd] = (41, hashlib.sha256(b"3" * 41).hexdigest())
    buf = io.BytesIO()
    write_archive(s, manifest, buf)
    tar_bytes = zstandard.ZstdDecompressor().decompressobj().decompress(buf.getvalue())
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), encoding="utf-8", errors="surrogateescape") as tf:
        names = tf.getnames()
    assert "./" + long in names and "./" + odd in names and names[-1] == "./" + MANIFEST_PATH
