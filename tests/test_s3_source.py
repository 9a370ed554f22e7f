"""ResumableS3Stream against a real S3 server, with a loopback proxy that breaks GET responses
after N bytes: resumes give exactly the object's bytes; a changed object, too many breaks, a dead
server or a missing key end in SourceError (exit 3), never in short data."""

from __future__ import annotations

import io
import os
import socket
from typing import TYPE_CHECKING, Any

import pytest

from snapcheck.errors import SourceError
from snapcheck.sources.s3 import ResumableS3Stream, open_s3_object
from snapcheck.storage import ObjectChanged, ObjectNotFound
from snapcheck.storage.s3 import S3Storage

if TYPE_CHECKING:
    from s3server import CuttingProxy, S3Bucket, S3Server

pytest_plugins = ("s3server",)  # s3_server, s3_env, s3_bucket, s3_proxy

pytestmark = pytest.mark.s3

SIZE = 3 << 20


@pytest.fixture
def obj(s3_bucket: S3Bucket) -> tuple[S3Bucket, str, bytes]:
    data = os.urandom(SIZE)
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key="snap/obj.tar.zst", Body=data)
    return s3_bucket, "snap/obj.tar.zst", data


@pytest.fixture
def proxy(s3_proxy: CuttingProxy) -> CuttingProxy:
    return s3_proxy


def via(proxy: CuttingProxy, server: S3Server) -> Any:
    """A client that talks to the server through the proxy, one attempt per request."""
    return server.client(proxy.endpoint, max_attempts=1)


def get_line(b: S3Bucket, key: str) -> bytes:
    return f"GET /{b.name}/{key}".encode()


def read_in_chunks(stream: io.RawIOBase, n: int) -> bytes:
    out = bytearray()
    buf = bytearray(n)
    while got := stream.readinto(buf):
        out += buf[:got]
    return bytes(out)


def test_plain_read(obj: tuple[S3Bucket, str, bytes]) -> None:
    b, key, data = obj
    stream, info = open_s3_object(b.url(key))  # endpoint and credentials from the standard chain
    with stream:
        assert info.size == SIZE and info.etag and stream.readable() and not stream.seekable()
        assert read_in_chunks(stream, 100_000) == data
        assert stream.resumes == 0 and stream.tell() == SIZE
        assert stream.read(10) == b""
    stream, _ = open_s3_object(f"{b.name}/{key}")
    with io.BufferedReader(stream, 1 << 20) as r:
        assert r.read() == data


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
@pytest.mark.parametrize("cuts", [1, 3])
def test_resumes_after_broken_connections(
    obj: tuple[S3Bucket, str, bytes], proxy: CuttingProxy, s3_server: S3Server, cuts: int, reset: bool
) -> None:
    b, key, data = obj
    # the first GET and the first cuts-1 resumed GETs each break after 200 kB of response
    proxy.cut(get_line(b, key), after=200_000, times=cuts, reset=reset)
    stream, info = open_s3_object((b.name, key), client=via(proxy, s3_server), max_resumes=5)
    with stream:
        got = read_in_chunks(stream, 64 * 1024)
    assert got == data and len(got) == info.size
    assert stream.resumes == cuts and proxy.cuts == cuts


def test_resumed_readall(obj: tuple[S3Bucket, str, bytes], proxy: CuttingProxy, s3_server: S3Server) -> None:
    b, key, data = obj
    proxy.cut(get_line(b, key), after=1_000_000, times=2)
    stream, _ = open_s3_object((b.name, key), client=via(proxy, s3_server))
    with stream:
        assert stream.readall() == data
    assert stream.resumes == 2


def test_storage_open_read_resumes(
    obj: tuple[S3Bucket, str, bytes], proxy: CuttingProxy, s3_server: S3Server
) -> None:
    b, key, data = obj
    proxy.cut(get_line(b, key), after=300_000)
    f, _ = S3Storage(b.name, client=via(proxy, s3_server)).open_read(key)
    with f:
        assert f.read() == data
        raw = getattr(f, "raw", None)
        assert isinstance(raw, ResumableS3Stream) and raw.resumes == 1


def test_too_many_breaks_is_source_error(
    obj: tuple[S3Bucket, str, bytes], proxy: CuttingProxy, s3_server: S3Server
) -> None:
    b, key, data = obj
    proxy.cut(get_line(b, key), after=150_000, times=10)
    stream, _ = open_s3_object((b.name, key), client=via(proxy, s3_server), max_resumes=2)
    got = bytearray()
    buf = bytearray(65536)
    with (
        pytest.raises(SourceError, match=r"of 3145728 bytes; the connection broke and 2 resume") as e,
        stream,
    ):
        while n := stream.readinto(buf):
            got += buf[:n]
    assert e.value.exit_code == 3 and not isinstance(e.value, ObjectChanged)
    assert stream.resumes == 2 and 0 < len(got) < SIZE
    assert bytes(got) == data[: len(got)]  # what was handed out is exactly the object's prefix


def test_object_replaced_between_attempts(
    obj: tuple[S3Bucket, str, bytes], proxy: CuttingProxy, s3_server: S3Server
) -> None:
    b, key, _ = obj
    proxy.cut(get_line(b, key), after=200_000)
    stream, _ = open_s3_object((b.name, key), client=via(proxy, s3_server))
    b.client.put_object(Bucket=b.name, Key=key, Body=os.urandom(SIZE))  # same size, new ETag
    with pytest.raises(ObjectChanged, match="object changed while reading") as e, stream:
        stream.readall()
    assert isinstance(e.value, SourceError) and e.value.exit_code == 3
    assert stream.resumes == 1


def test_object_deleted_between_attempts(
    obj: tuple[S3Bucket, str, bytes], proxy: CuttingProxy, s3_server: S3Server
) -> None:
    b, key, _ = obj
    proxy.cut(get_line(b, key), after=200_000)
    stream, _ = open_s3_object((b.name, key), client=via(proxy, s3_server))
    b.client.delete_object(Bucket=b.name, Key=key)
    with pytest.raises(ObjectChanged, match="deleted while reading"), stream:
        stream.readall()


def test_versioned_bucket_resume_reads_the_pinned_version(s3_env: S3Server, proxy: CuttingProxy) -> None:
    """On a versioned bucket the resume is pinned to the version id too: an overwrite during the
    read does not disturb it, the bytes are still exactly the version that was opened."""
    bucket = s3_env.new_bucket(versioning=True)
    data = os.urandom(SIZE)
    s3_env.client().put_object(Bucket=bucket, Key="k", Body=data)
    proxy.cut(f"GET /{bucket}/k".encode(), after=200_000)
    stream, info = open_s3_object((bucket, "k"), client=via(proxy, s3_env))
    assert info.version_id
    s3_env.client().put_object(Bucket=bucket, Key="k", Body=b"newer version")
    with stream:
        assert stream.readall() == data
    assert stream.resumes == 1


def test_server_down_mid_stream(
    obj: tuple[S3Bucket, str, bytes], proxy: CuttingProxy, s3_server: S3Server
) -> None:
    b, key, _ = obj
    proxy.cut(get_line(b, key), after=200_000)
    stream, _ = open_s3_object((b.name, key), client=via(proxy, s3_server), max_resumes=3)
    proxy.down()  # the break comes, and every resume finds the endpoint refusing connections
    with pytest.raises(SourceError, match="Could not connect") as e, stream:
        stream.readall()
    assert e.value.exit_code == 3 and stream.resumes == 3


def test_server_down_at_open(s3_env: S3Server) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(SourceError, match="Could not connect") as e:
        open_s3_object("s3://bucket/key", client=s3_env.client(dead, max_attempts=1))
    assert e.value.exit_code == 3


def test_missing_and_stale(obj: tuple[S3Bucket, str, bytes]) -> None:
    b, key, _ = obj
    with pytest.raises(ObjectNotFound):
        open_s3_object(b.url("missing"))
    with pytest.raises(SourceError, match="no such bucket"):
        open_s3_object("s3://no-such-bucket-snapcheck/k")
    with pytest.raises(ObjectChanged):
        open_s3_object(b.url(key), etag='"0123456789abcdef0123456789abcdef"')
    stream, info = open_s3_object(b.url(key), etag=None)
    stream.close()
    pinned, _ = open_s3_object(b.url(key), etag=info.etag)
    with pinned:
        assert pinned.info.etag == info.etag


def test_empty_object(s3_bucket: S3Bucket) -> None:
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key="empty", Body=b"")
    stream, info = open_s3_object(s3_bucket.url("empty"))
    with stream:
        assert info.size == 0 and stream.readall() == b"" and stream.read(5) == b""


def test_flipped_bit_fails_the_stored_checksum(
    s3_bucket: S3Bucket, proxy: CuttingProxy, s3_server: S3Server
) -> None:
    """An object stored with a full-object SHA-256 (a single-put upload) is checked against it at
    the end of an unbroken read: a bit flipped on the wire is a SourceError, not silent bad data."""
    data = os.urandom(SIZE)
    up = S3Storage(s3_bucket.name).begin_upload("summed")
    up.write(data)
    up.commit()
    proxy.flip(get_line(s3_bucket, "summed"), offset=100_000)  # inside the body
    stream, _ = open_s3_object((s3_bucket.name, "summed"), client=via(proxy, s3_server))
    with pytest.raises(SourceError, match="do not match the stored checksum") as e, stream:
        stream.readall()
    assert proxy.flips == 1 and e.value.exit_code == 3
    stream, _ = open_s3_object((s3_bucket.name, "summed"), client=via(proxy, s3_server))
    with stream:  # the same read without the flip passes the check
        assert stream.readall() == data
