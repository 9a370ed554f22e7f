"""`snapcheck verify s3://…` and stdin against the real S3 server: good and damaged archives, a
connection cut mid-stream (resumed, right verdict), and network failure (exit 3, not 1)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from s3server import CuttingProxy, S3Bucket

pytestmark = pytest.mark.s3


def snapcheck(*args: str, stdin: Any = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "snapcheck", *args], stdin=stdin, capture_output=True,
                          timeout=300, env={**os.environ, **(env or {})})


def tar_pzstd(repo: Path, out: Path) -> Path:
    subprocess.run(f"tar -cpf - -C '{repo}' . | pzstd -q -c -p2 > '{out}'", shell=True, check=True)
    return out


def upload(bucket: S3Bucket, key: str, path: Path) -> None:
    bucket.client.upload_file(str(path), bucket.name, key)  # boto3 goes multipart above 8 MiB


@pytest.fixture
def archives(mirrors: Callable[[str], Path], mirror_copy: Callable[[str], Path], tmp_path: Path) -> dict[str, Path]:
    good = tar_pzstd(mirrors("gc_bitmaps"), tmp_path / "good.tar.zst")
    damaged = mirror_copy("gc_bitmaps")
    pr = damaged / "packed-refs"
    pr.write_bytes(pr.read_bytes()[:-30])
    cut_refs = tar_pzstd(damaged, tmp_path / "cutrefs.tar.zst")
    frame_cut = tmp_path / "framecut.tar.zst"
    frame_cut.write_bytes(good.read_bytes()[:-50])
    return {"good": good, "cutrefs": cut_refs, "framecut": frame_cut}


def test_verify_s3_objects(s3_bucket: S3Bucket, archives: dict[str, Path]) -> None:
    for name, path in archives.items():
        upload(s3_bucket, f"git/{name}", path)
    r = snapcheck("verify", s3_bucket.url("git/good"))
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    r = snapcheck("verify", s3_bucket.url("git/cutrefs"), "--format", "json")
    assert r.returncode == 1
    assert b'"packedRefsPeeledUnterminated"' in r.stdout or b'"packedRefsUnterminated"' in r.stdout
    r = snapcheck("verify", s3_bucket.url("git/framecut"))
    assert r.returncode == 1 and b"zstdTruncated" in r.stdout


def test_missing_object_and_bucket_are_exit_3(s3_bucket: S3Bucket) -> None:
    r = snapcheck("verify", s3_bucket.url("git/absent"))
    assert r.returncode == 3, r.stderr.decode()
    assert b"no such object" in r.stderr and b"Traceback" not in r.stderr
    r = snapcheck("verify", "s3://no-such-bucket-here/x")
    assert r.returncode == 3 and b"Traceback" not in r.stderr


def test_large_multipart_object_with_connection_cut_resumes(s3_bucket: S3Bucket, s3_proxy: CuttingProxy,
                                                            tmp_path: Path, mirrors: Callable[[str], Path]) -> None:
    # a mirror plus 24 MiB of incompressible data: a multipart object, long enough to cut mid-stream
    repo = tmp_path / "m.git"
    subprocess.run(["cp", "-a", str(mirrors("gc_bitmaps")), str(repo)], check=True)
    (repo / "objects" / "info" / "padding.bin").write_bytes(os.urandom(24 << 20))
    archive = tar_pzstd(repo, tmp_path / "big.tar.zst")
    upload(s3_bucket, "git/big", archive)
    # cut the GET response after 5 MiB, twice: the stream resumes with ranged GETs pinned to the ETag
    s3_proxy.cut(f"GET /{s3_bucket.name}/git/big".encode(), after=5 << 20, times=2)
    r = snapcheck("verify", s3_bucket.url("git/big"), env={"AWS_ENDPOINT_URL": s3_proxy.endpoint})
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    assert b"SOUND" in r.stdout
    assert s3_proxy.cuts == 2  # both cuts happened, and the verdict is still right


def test_server_down_is_exit_3_not_corrupt(s3_bucket: S3Bucket, s3_proxy: CuttingProxy,
                                            archives: dict[str, Path]) -> None:
    upload(s3_bucket, "git/good", archives["good"])
    s3_proxy.down()
    r = snapcheck("verify", s3_bucket.url("git/good"), env={"AWS_ENDPOINT_URL": s3_proxy.endpoint,
                                                           "AWS_MAX_ATTEMPTS": "1"})
    assert r.returncode == 3
    assert b"Traceback" not in r.stderr


def test_stdin(archives: dict[str, Path]) -> None:
    with open(archives["good"], "rb") as f:
        assert snapcheck("verify", "-", stdin=f).returncode == 0
    with open(archives["framecut"], "rb") as f:
        r = snapcheck("verify", "-", stdin=f)
    assert r.returncode == 1 and b"zstdTruncated" in r.stdout
