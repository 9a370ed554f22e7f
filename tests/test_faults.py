"""Faults against the real S3 server and a real full disk.

* ``snapcheck archive`` killed with SIGKILL in the middle of its multipart upload publishes nothing:
  no object at the key, no staging object, no version.  A killed process cannot abort its upload, so
  the *incomplete multipart upload* stays on the server until an ``AbortIncompleteMultipartUpload``
  lifecycle rule (or an operator) removes it; the test shows exactly what remains and that it is on
  the hidden staging key, never a readable object.
* the connection cut during ``UploadPart`` (a proxy that breaks every UploadPart response, so boto3's
  retries fail too) publishes nothing, leaves no upload behind (the process is alive and aborts) and
  exits 3 with a one-line message.
* the disk filling up during ``snapcheck restore`` (a 1 MiB tmpfs) leaves the destination untouched,
  no temp dir, and exits 3 with a clear message and no traceback.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from snapcheck.archive import ArchiveOptions, archive
from snapcheck.publish import PublishOptions
from snapcheck.restore import restore

from gitrepos import build_work, git, mirror_of
from s3server import CuttingProxy, S3Bucket, S3Server

pytestmark = pytest.mark.s3

ROOT = Path(__file__).resolve().parent.parent
TEMP_NAME = re.compile(r"\..+\.snapcheck-(?:old-)?[0-9a-f]{16}\Z")


def cli_args(*args: str) -> list[str]:
    return [sys.executable, "-m", "snapcheck", *args]


def cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(cli_args(*args), capture_output=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def tree_digest(root: Path) -> dict[str, bytes | None]:
    return {p.relative_to(root).as_posix(): None if p.is_dir() else p.read_bytes() for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def big_mirror(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A mirror whose archive spans three 16 MiB multipart parts (incompressible blobs)."""
    base = tmp_path_factory.mktemp("faults-big")
    work = build_work(base / "work", commits=14)
    for i in range(3):
        (work / f"blob{i}.bin").write_bytes(os.urandom(14 << 20))
    git("add", ".", cwd=work)
    git("commit", "-q", "-m", "big blobs", cwd=work)
    m = mirror_of(work, base / "big.git")
    git("gc", "-q", cwd=m)
    return m


def objects_in(bucket: S3Bucket) -> list[str]:
    return [o["Key"] for o in bucket.client.list_objects_v2(Bucket=bucket.name).get("Contents", [])]


def uploads_in(bucket: S3Bucket) -> list[dict[str, Any]]:
    return list(bucket.client.list_multipart_uploads(Bucket=bucket.name).get("Uploads", []))


def no_object_at(bucket: S3Bucket, key: str) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as err:
        bucket.client.head_object(Bucket=bucket.name, Key=key)
    assert err.value.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound")
    assert objects_in(bucket) == []  # neither the key nor a completed staging object
    with pytest.raises(botocore.exceptions.ClientError):
        bucket.client.get_object(Bucket=bucket.name, Key=key)


def capture_leftovers(mirror: Path) -> list[str]:
    return sorted(p.name for p in mirror.resolve().parent.iterdir() if ".snapcheck-capture-" in p.name)


# --------------------------------------------------------------------------------------------------
# SIGKILL mid-upload


def test_archive_killed_mid_upload_publishes_nothing(s3_env: S3Server, big_mirror: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    bucket = S3Bucket(s3_env, s3_env.new_bucket(versioning=True))
    key = "git/killed.tar.zst"
    staged_before = capture_leftovers(big_mirror)
    proc = subprocess.Popen(cli_args("archive", "-q", str(big_mirror), bucket.url(key)), cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    parts: list[dict[str, Any]] = []
    upload: dict[str, Any] | None = None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            ups = uploads_in(bucket)
            if ups:
                upload = ups[0]
                parts = bucket.client.list_parts(Bucket=bucket.name, Key=upload["Key"],
                                                 UploadId=upload["UploadId"]).get("Parts", [])
                if parts:
                    break
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)  # a killed process runs no cleanup at all
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the archive finished before it could be killed mid-upload"
    assert upload is not None and parts, "no part had been uploaded when the process was killed"

    no_object_at(bucket, key)
    versions = bucket.client.list_object_versions(Bucket=bucket.name)
    assert versions.get("Versions", []) == [] and versions.get("DeleteMarkers", []) == []
    # What remains: the incomplete multipart upload of the hidden staging key (late-metadata uploads
    # go to <key>.snapcheck-incoming-<hex> and are copied over the key on commit).  It is not an
    # object (no listing, HEAD or GET shows it); only an AbortIncompleteMultipartUpload lifecycle rule
    # or an operator removes it, since the killed process could not.
    left = uploads_in(bucket)
    assert [u["Key"] for u in left] == [upload["Key"]]
    assert re.fullmatch(re.escape(key) + r"\.snapcheck-incoming-[0-9a-f]{16}", upload["Key"]), upload["Key"]
    staged_after = capture_leftovers(big_mirror)
    with capsys.disabled():
        print(f"\n[faults] after SIGKILL mid-upload: no object at {key}; incomplete multipart upload(s) left: "
              f"{[(u['Key'], len(parts)) for u in left]} (parts uploaded before the kill: {len(parts)}); "
              f"capture staging dirs left beside the mirror: {sorted(set(staged_after) - set(staged_before))}")

    # the next run is not disturbed by the leftovers and publishes
    r = cli("archive", "-q", str(big_mirror), bucket.url(key))
    assert r.returncode == 0, r.stderr.decode()
    assert objects_in(bucket) == [key]
    assert [u["Key"] for u in uploads_in(bucket)] == [upload["Key"]]  # still only the killed one
    for name in set(capture_leftovers(big_mirror)) - set(staged_before):  # tidy up after the killed run
        subprocess.run(["rm", "-rf", str(big_mirror.resolve().parent / name)], check=True)
    bucket.client.abort_multipart_upload(Bucket=bucket.name, Key=upload["Key"], UploadId=upload["UploadId"])


# --------------------------------------------------------------------------------------------------
# connection cut mid-upload


def test_connection_cut_during_upload_part_publishes_nothing(s3_bucket: S3Bucket, s3_proxy: CuttingProxy,
                                                            big_mirror: Path) -> None:
    key = "git/cut.tar.zst"
    s3_proxy.cut(b"partNumber=", after=0, times=1000)  # every UploadPart response breaks, retries too
    r = cli("archive", "-q", "--endpoint-url", s3_proxy.endpoint, str(big_mirror), s3_bucket.url(key))
    err = r.stderr.decode()
    assert r.returncode == 3, (r.returncode, err)
    assert s3_proxy.cuts >= 1
    assert "Traceback" not in err
    assert err.startswith("snapcheck: ") and "UploadPart" in err, err
    no_object_at(s3_bucket, key)
    assert uploads_in(s3_bucket) == []  # the live process aborted its multipart upload
    assert capture_leftovers(big_mirror) == []

    # the same command straight to the server (AWS_ENDPOINT_URL) publishes
    r = cli("archive", "-q", str(big_mirror), s3_bucket.url(key))
    assert r.returncode == 0, r.stderr.decode()
    assert objects_in(s3_bucket) == [key] and uploads_in(s3_bucket) == []


# --------------------------------------------------------------------------------------------------
# disk full during restore


@contextlib.contextmanager
def tiny_tmpfs(directory: Path, size: str = "1m") -> Iterator[None]:
    directory.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)], capture_output=True)
    assert res.returncode == 0, f"cannot mount a tmpfs (this test needs root): {res.stderr.decode()}"
    try:
        yield
    finally:
        subprocess.run(["umount", str(directory)], check=True)


@pytest.fixture(scope="module")
def big_archive(big_mirror: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("faults-archive") / "big.tar.zst"
    res = archive(big_mirror, str(out), ArchiveOptions(publish=PublishOptions(baseline="none")))
    assert res.publish.committed
    return out


def test_disk_full_during_restore_leaves_dest_untouched(big_archive: Path, mirrors: Callable[[str], Path],
                                                        tmp_path: Path) -> None:
    small = tmp_path / "small.tar.zst"
    assert archive(mirrors("gc_bitmaps"), str(small),
                   ArchiveOptions(publish=PublishOptions(baseline="none"))).publish.committed
    fs = tmp_path / "fs"
    with tiny_tmpfs(fs):
        dest = fs / "repo.git"
        assert restore(str(small), dest).installed  # the current copy fits
        before = tree_digest(dest)
        for replace in (True, False):
            target = dest if replace else fs / "new.git"
            r = cli("restore", "-q", *(["--replace"] if replace else []), str(big_archive), str(target))
            err = r.stderr.decode()
            assert r.returncode == 3, (r.returncode, err)
            assert "No space left on device" in err, err
            assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
            assert tree_digest(dest) == before
            assert sorted(p.name for p in fs.iterdir()) == ["repo.git"]  # no temp dir, nothing new
        assert not any(TEMP_NAME.match(p.name) for p in fs.iterdir())


# --------------------------------------------------------------------------------------------------
# a killed capture's staging directory


def test_next_archive_removes_the_staging_dir_of_a_killed_capture(mirror_copy: Callable[[str], Path],
                                                                  tmp_path: Path) -> None:
    m = mirror_copy("gc_bitmaps")
    flag = tmp_path / "between-phases"
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from snapcheck.capture import capture_mirror\n"
        "def hold():\n"
        "    Path(sys.argv[2]).write_text('x')\n"
        "    time.sleep(120)\n"
        "capture_mirror(Path(sys.argv[1]), _between_phases=hold)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(m), str(flag)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 60
        while not flag.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert flag.exists(), "the capture never reached its second phase"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    left = capture_leftovers(m)
    assert len(left) == 1  # the killed capture's staging dir, full of hard links
    r = cli("archive", "-q", "--baseline", "none", str(m), str(tmp_path / "a.tar.zst"))
    assert r.returncode == 0, r.stderr.decode()
    assert capture_leftovers(m) == [], f"still there after the next archive: {left}"


def test_a_live_capture_staging_dir_is_left_alone(mirror_copy: Callable[[str], Path]) -> None:
    """The clean-up removes only staging dirs no live process holds (flock), never a running capture's."""
    from snapcheck.capture import capture_mirror, remove_stale_staging

    m = mirror_copy("gc_bitmaps")
    with capture_mirror(m) as live:
        prefix = f".{m.name}.snapcheck-capture-"
        assert remove_stale_staging(m.parent, prefix) == []
        assert live.staging.is_dir()
    assert not live.staging.exists()
