"""`snapcheck put`: the pre-upload gate, against the real S3 server.

A good `tar | pzstd` stream is published with its snapcheck-* metadata; a stream whose producer is
killed mid-way, a stream whose packed-refs is cut mid-line and an empty-mirror stream are each refused
with nothing published (no object, no new version, no leftover multipart upload); a baseline
regression is refused unless --force.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import gitrepos
from s3server import S3Bucket

pytestmark = pytest.mark.s3


def snapcheck(*args: str, stdin: Any = None, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "snapcheck", *args], stdin=stdin, input=input,
                          capture_output=True, timeout=300)


def tar_pzstd(repo: Path, out: Path) -> Path:
    subprocess.run(f"tar -cpf - -C '{repo}' --exclude='*.lock' . | pzstd -q -c -p2 > '{out}'", shell=True, check=True)
    return out


@pytest.fixture(scope="module")
def big_mirror(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A mirror whose archive spans several 16 MiB multipart parts (incompressible blobs)."""
    base = tmp_path_factory.mktemp("bigmirror")
    work = gitrepos.build_work(base / "work", commits=14)
    for i in range(3):
        (work / f"blob{i}.bin").write_bytes(os.urandom(14 << 20))
    gitrepos.git("add", ".", cwd=work)
    gitrepos.git("commit", "-q", "-m", "big blobs", cwd=work)
    m = gitrepos.mirror_of(work, base / "big.git")
    gitrepos.git("gc", "-q", cwd=m)
    return m


def _nothing_published(bucket: S3Bucket, key: str) -> None:
    c = bucket.client
    listed = c.list_objects_v2(Bucket=bucket.name).get("Contents", [])
    assert [o["Key"] for o in listed if o["Key"].startswith(key)] == []
    assert c.list_multipart_uploads(Bucket=bucket.name).get("Uploads", []) == []


def test_good_stream_is_published_with_metadata(s3_bucket: S3Bucket, mirrors: Callable[[str], Path],
                                                tmp_path: Path) -> None:
    archive = tar_pzstd(mirrors("gc_bitmaps"), tmp_path / "a.tar.zst")
    key = "git/3f/good"
    r = snapcheck("put", str(archive), s3_bucket.url(key), "--expect-ref", "refs/heads/main", "--cachew-commit-header")
    assert r.returncode == 0, r.stderr.decode()
    head = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key=key)
    meta = head["Metadata"]
    assert meta["snapcheck-sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert meta["snapcheck-refs"] == "8"
    assert int(meta["snapcheck-objects"]) > 100
    main = gitrepos.git("rev-parse", "HEAD", cwd=mirrors("gc_bitmaps")).strip()
    assert meta["snapcheck-head"] == main
    assert meta["x-cachew-snapshot-commit"] == main
    body = s3_bucket.client.get_object(Bucket=s3_bucket.name, Key=key)["Body"].read()
    assert body == archive.read_bytes()
    # nothing but the object: no staging leftovers, no open uploads
    keys = [o["Key"] for o in s3_bucket.client.list_objects_v2(Bucket=s3_bucket.name)["Contents"]]
    assert keys == [key]
    assert s3_bucket.client.list_multipart_uploads(Bucket=s3_bucket.name).get("Uploads", []) == []


def test_multipart_good_stream_from_stdin(s3_bucket: S3Bucket, big_mirror: Path, tmp_path: Path) -> None:
    archive = tar_pzstd(big_mirror, tmp_path / "big.tar.zst")
    assert archive.stat().st_size > 32 << 20  # several parts
    with open(archive, "rb") as f:
        r = snapcheck("put", "-", s3_bucket.url("git/big"), stdin=f)
    assert r.returncode == 0, r.stderr.decode()
    head = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key="git/big")
    assert head["ContentLength"] == archive.stat().st_size
    assert head["Metadata"]["snapcheck-sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert [o["Key"] for o in s3_bucket.client.list_objects_v2(Bucket=s3_bucket.name)["Contents"]] == ["git/big"]


def test_killed_producer_publishes_nothing(s3_env: Any, big_mirror: Path, tmp_path: Path) -> None:
    bucket = S3Bucket(s3_env, s3_env.new_bucket(versioning=True))
    archive = tar_pzstd(big_mirror, tmp_path / "big.tar.zst")
    size = archive.stat().st_size
    # the producer writes 60% of the archive (past the first multipart parts), then dies by SIGKILL
    producer = subprocess.Popen(
        [sys.executable, "-c",
         "import os,signal,sys; d=open(sys.argv[1],'rb').read(); n=int(len(d)*0.6); "
         "sys.stdout.buffer.write(d[:n]); sys.stdout.buffer.flush(); os.kill(os.getpid(), signal.SIGKILL)",
         str(archive)], stdout=subprocess.PIPE)
    r = snapcheck("put", "-", bucket.url("git/killed"), stdin=producer.stdout)
    producer.wait()
    assert producer.returncode == -9
    assert r.returncode == 1, r.stderr.decode()
    assert b"NOT published" in r.stderr
    assert b"zstdTruncated" in r.stdout or b"tarMissingEndMarker" in r.stdout or b"tarMemberTruncated" in r.stdout
    _nothing_published(bucket, "git/killed")
    versions = bucket.client.list_object_versions(Bucket=bucket.name)
    assert versions.get("Versions", []) == [] and versions.get("DeleteMarkers", []) == []
    assert size > 0


def test_packed_refs_cut_mid_line_is_refused(s3_bucket: S3Bucket, mirror_copy: Callable[[str], Path],
                                             tmp_path: Path) -> None:
    repo = mirror_copy("many_refs")
    pr = repo / "packed-refs"
    data = pr.read_bytes()
    pr.write_bytes(data[: len(data) // 2 + 7])  # cut mid-line, as a stat-then-read tar racing a rename leaves it
    archive = tar_pzstd(repo, tmp_path / "cut.tar.zst")
    r = snapcheck("put", str(archive), s3_bucket.url("git/cut"))
    assert r.returncode == 1
    assert b"packedRefsUnterminated" in r.stdout
    assert b"unterminated line in ./packed-refs" in r.stdout  # what git would say
    _nothing_published(s3_bucket, "git/cut")


def test_empty_mirror_is_refused(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    empty = tmp_path / "empty.git"
    gitrepos.git("init", "-q", "--bare", str(empty))
    archive = tar_pzstd(empty, tmp_path / "empty.tar.zst")
    r = snapcheck("put", str(archive), s3_bucket.url("git/empty"))
    assert r.returncode == 1
    assert b"mirrorNoRefs" in r.stdout
    _nothing_published(s3_bucket, "git/empty")


def test_baseline_regression_refused_unless_forced(s3_bucket: S3Bucket, mirrors: Callable[[str], Path],
                                                   mirror_copy: Callable[[str], Path], tmp_path: Path) -> None:
    good = tar_pzstd(mirrors("many_refs"), tmp_path / "good.tar.zst")
    assert snapcheck("put", str(good), s3_bucket.url("git/repo")).returncode == 0
    before = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key="git/repo")["ETag"]
    # a valid mirror that lost most of its refs (refs/pull/* gone)
    shrunk = mirror_copy("many_refs")
    gitrepos.git("for-each-ref", "--format=delete %(refname)", "refs/pull", cwd=shrunk)
    lines = gitrepos.git("for-each-ref", "--format=delete %(refname)", "refs/pull", cwd=shrunk)
    gitrepos.git("update-ref", "--stdin", cwd=shrunk, input=lines.encode())
    small = tar_pzstd(shrunk, tmp_path / "small.tar.zst")
    r = snapcheck("put", str(small), s3_bucket.url("git/repo"))
    assert r.returncode == 1
    assert b"baselineRefsShrank" in r.stdout
    assert s3_bucket.client.head_object(Bucket=s3_bucket.name, Key="git/repo")["ETag"] == before
    r = snapcheck("put", str(small), s3_bucket.url("git/repo"), "--force")
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    assert s3_bucket.client.head_object(Bucket=s3_bucket.name, Key="git/repo")["Metadata"]["snapcheck-refs"] == "8"


def test_expect_ref_and_min_refs(s3_bucket: S3Bucket, mirrors: Callable[[str], Path], tmp_path: Path) -> None:
    archive = tar_pzstd(mirrors("gc_bitmaps"), tmp_path / "a.tar.zst")
    r = snapcheck("put", str(archive), s3_bucket.url("git/x"), "--expect-ref", "refs/heads/nope")
    assert r.returncode == 1 and b"putExpectedRefMissing" in r.stdout
    r = snapcheck("put", str(archive), s3_bucket.url("git/x"), "--min-refs", "9")
    assert r.returncode == 1 and b"putTooFewRefs" in r.stdout
    _nothing_published(s3_bucket, "git/x")


def test_put_to_local_bucket_and_file(mirrors: Callable[[str], Path], tmp_path: Path) -> None:
    archive = tar_pzstd(mirrors("gc_bitmaps"), tmp_path / "a.tar.zst")
    dest = tmp_path / "out" / "snap.tar.zst"
    dest.parent.mkdir()
    r = snapcheck("put", str(archive), str(dest))
    assert r.returncode == 0, r.stderr.decode()
    assert dest.read_bytes() == archive.read_bytes()
    cut = tmp_path / "cut.tar.zst"
    cut.write_bytes(archive.read_bytes()[:-100])
    r = snapcheck("put", str(cut), str(tmp_path / "out" / "bad.tar.zst"))
    assert r.returncode == 1
    assert not (tmp_path / "out" / "bad.tar.zst").exists()
    assert [p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".snapcheck-meta")] == ["snap.tar.zst"]
