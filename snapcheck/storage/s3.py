"""An S3 bucket (AWS or any S3-compatible server) through boto3.

Credentials and region come from boto3's standard chain (environment, profile, instance role); the
endpoint from the ``endpoint_url`` argument, else ``AWS_ENDPOINT_URL``/``AWS_ENDPOINT_URL_S3``.
Retries of single requests are botocore's (``AWS_RETRY_MODE``, ``AWS_MAX_ATTEMPTS``).

Uploads are multipart: bytes are buffered into parts (16 MiB, growing to 64 MiB after 2,000 and
4,000 parts so that 10,000 parts reach ~480 GB), each sent with its SHA-256 (``ChecksumSHA256``),
and the upload is completed only in :meth:`S3Upload.commit`.  An object smaller than one part is
sent as a single ``PutObject`` at commit.  :meth:`S3Upload.abort` aborts the multipart upload, so
no object, no new version and no stray upload remain.

Every failure is a :class:`~snapcheck.errors.SourceError` (exit 3) naming the ``s3://`` location
and the cause; a missing key is :class:`~snapcheck.storage.base.ObjectNotFound`, a stale ETag
:class:`~snapcheck.storage.base.ObjectChanged`.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import io
import os
import secrets
import threading
import time
import urllib.parse
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

import boto3
import botocore.exceptions
import botocore.loaders
import botocore.session
import urllib3.exceptions
from botocore.config import Config

from ..errors import SourceError, UsageError
from .base import INCOMING_MARKER, ObjectChanged, ObjectInfo, ObjectNotFound, check_metadata, check_tags

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef, CopySourceTypeDef
else:
    S3Client = Any

MiB = 1 << 20
GiB = 1 << 30
PART_SIZE = 16 * MiB
MAX_PART_SIZE = 64 * MiB
MIN_PART_SIZE = 5 * MiB  # S3's minimum for every part but the last
MAX_PARTS = 10_000
COPY_THRESHOLD = 5 * GiB  # CopyObject's limit; larger objects are copied part by part
COPY_PART_SIZE = 512 * MiB
READ_BUFFER = 1 * MiB

#: exceptions a broken connection or a dead endpoint can raise out of boto3/urllib3
NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    botocore.exceptions.BotoCoreError,
    urllib3.exceptions.HTTPError,
    OSError,
)
_ALL_ERRORS: tuple[type[BaseException], ...] = (botocore.exceptions.ClientError, *NETWORK_ERRORS)


def make_client(endpoint_url: str | None = None) -> S3Client:
    """An S3 client from boto3's standard chain.  With a custom endpoint (argument or
    ``AWS_ENDPOINT_URL[_S3]``) path-style addressing is used, which every S3-compatible server
    understands.  Clients are thread-safe and costly to build, so one is kept per endpoint and
    ``AWS_*`` environment."""
    env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))
    return _cached_client(endpoint_url or None, env)


_LOADER_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def _shared_loader() -> Any:
    """One botocore data loader for every session: the S3 service model is parsed once (each
    fresh session would otherwise hold its own ~35,000-object copy)."""
    return botocore.loaders.create_loader()


@functools.lru_cache(maxsize=8)
def _cached_client(endpoint_url: str | None, env: tuple[tuple[str, str], ...]) -> S3Client:
    endpoint = endpoint_url or dict(env).get("AWS_ENDPOINT_URL_S3") or dict(env).get("AWS_ENDPOINT_URL")
    cfg = Config(
        connect_timeout=10,
        read_timeout=60,
        s3={"addressing_style": "path"} if endpoint else None,
    )
    try:
        with _LOADER_LOCK:  # a fresh session per environment: credentials resolve from that environment
            core = botocore.session.Session()
            core.register_component("data_loader", _shared_loader())
            return boto3.session.Session(botocore_session=core).client(
                "s3", endpoint_url=endpoint_url, config=cfg
            )
    except (botocore.exceptions.BotoCoreError, ValueError) as e:
        raise SourceError(f"cannot create an S3 client: {e}") from e


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/key`` → ``(bucket, key)`` (the key may be empty or a prefix)."""
    if not url.startswith("s3://"):
        raise UsageError(f"not an s3:// URL: {url!r}")
    bucket, _, key = url[5:].partition("/")
    if not bucket:
        raise UsageError(f"no bucket in {url!r}")
    return bucket, key


def error_code(exc: BaseException) -> tuple[str, int]:
    """``(code, http status)`` of a botocore ``ClientError`` (``("", 0)`` for anything else)."""
    if isinstance(exc, botocore.exceptions.ClientError):
        err = exc.response.get("Error", {})
        meta = exc.response.get("ResponseMetadata", {})
        return str(err.get("Code", "")), int(meta.get("HTTPStatusCode", 0) or 0)
    return "", 0


def translate(exc: BaseException, op: str, location: str) -> SourceError:
    """The :class:`SourceError` (or subclass) for an exception boto3 raised during *op*."""
    if isinstance(exc, SourceError):
        return exc
    code, status = error_code(exc)
    if isinstance(exc, botocore.exceptions.ClientError):
        message = exc.response.get("Error", {}).get("Message", "") or str(exc)
        if code in ("NoSuchKey", "NotFound") or (status == 404 and code in ("404", "")):
            return ObjectNotFound(location)
        if code == "PreconditionFailed" or status == 412:
            return ObjectChanged(f"{location}: object changed (its ETag no longer matches): {message}")
        if code == "NoSuchBucket":
            return SourceError(f"{location}: no such bucket")
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403") or status == 403:
            return SourceError(f"{location}: S3 {op}: access denied ({code}: {message})")
        return SourceError(f"{location}: S3 {op} failed: {code or status}: {message}")
    return SourceError(f"{location}: S3 {op} failed: {type(exc).__name__}: {exc}")


@contextlib.contextmanager
def _translated(op: str, location: str) -> Iterator[None]:
    try:
        yield
    except SourceError:
        raise
    except _ALL_ERRORS as e:
        raise translate(e, op, location) from e


def info_from_response(key: str, resp: Any) -> ObjectInfo:
    """ObjectInfo from a HeadObject/GetObject response (for a ranged GET the caller passes the full
    size itself)."""
    version = resp.get("VersionId")
    return ObjectInfo(
        key=key,
        size=int(resp.get("ContentLength", 0)),
        etag=str(resp.get("ETag", "")),
        last_modified=resp.get("LastModified"),
        metadata={str(k).lower(): str(v) for k, v in (resp.get("Metadata") or {}).items()},
        version_id=None if version in (None, "", "null") else str(version),
    )


class S3Storage:
    """One bucket.  ``page_size`` (keys per ListObjectsV2 page), ``part_size``, ``copy_threshold``
    and ``copy_part_size`` are tunable (tests make them small)."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        client: S3Client | None = None,
        part_size: int = PART_SIZE,
        page_size: int = 1000,
        copy_threshold: int = COPY_THRESHOLD,
        copy_part_size: int = COPY_PART_SIZE,
    ) -> None:
        if not MIN_PART_SIZE <= part_size <= 5 * GiB:
            raise UsageError(f"part size {part_size} outside S3's 5 MiB .. 5 GiB")
        if not MIN_PART_SIZE <= copy_part_size <= 5 * GiB:
            raise UsageError(f"copy part size {copy_part_size} outside S3's 5 MiB .. 5 GiB")
        if not 1 <= page_size <= 1000:
            raise UsageError(f"page size {page_size} outside 1 .. 1000")
        self.bucket = bucket
        self.client: S3Client = client if client is not None else make_client(endpoint_url)
        self.part_size = part_size
        self.page_size = page_size
        self.copy_threshold = min(copy_threshold, COPY_THRESHOLD)
        self.copy_part_size = copy_part_size

    def describe(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def head(self, key: str) -> ObjectInfo | None:
        loc = self.describe(key)
        try:
            resp = self.client.head_object(Bucket=self.bucket, Key=key)
        except botocore.exceptions.ClientError as e:
            err = translate(e, "HeadObject", loc)
            if isinstance(err, ObjectNotFound):
                return None
            raise err from e
        except NETWORK_ERRORS as e:
            raise translate(e, "HeadObject", loc) from e
        return info_from_response(key, resp)

    def content_type(self, key: str) -> str | None:
        with _translated("HeadObject", self.describe(key)):
            ct = self.client.head_object(Bucket=self.bucket, Key=key).get("ContentType")
        return str(ct) if ct else None

    def open_read(self, key: str, *, etag: str | None = None) -> tuple[BinaryIO, ObjectInfo]:
        """A buffered stream over a :class:`~snapcheck.sources.s3.ResumableS3Stream` (``.raw``)."""
        from ..sources.s3 import ResumableS3Stream

        raw = ResumableS3Stream(self.client, self.bucket, key, etag=etag)
        return io.BufferedReader(raw, READ_BUFFER), raw.info

    def begin_upload(
        self, key: str, *, metadata: dict[str, str] | None = None, content_type: str | None = None,
        late_metadata: bool = False,
    ) -> S3Upload:
        if late_metadata:
            self._remove_stale_incoming(key)
        return S3Upload(self, key, check_metadata(metadata), content_type, late_metadata=late_metadata)

    def _remove_stale_incoming(self, key: str, max_age_s: float = 6 * 3600) -> None:
        """Remove staging objects of late-metadata uploads to *key* that a killed process left
        (completed but never copied over the key); young ones may belong to a live upload."""
        now = time.time()
        with contextlib.suppress(SourceError):
            for info in self.list(key + INCOMING_MARKER, include_incoming=True):
                age = now - info.last_modified.timestamp() if info.last_modified else max_age_s + 1
                if age > max_age_s:
                    self.delete(info.key)

    def list(self, prefix: str = "", *, start_after: str | None = None,
             include_incoming: bool = False) -> Iterator[ObjectInfo]:
        """Every object under *prefix* after *start_after*, paging through ListObjectsV2.
        Listings carry no metadata.  Staging objects of late-metadata uploads
        (``…snapcheck-incoming-…``) are not data and are left out unless *include_incoming*."""
        loc = self.describe(prefix)
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": self.page_size}
        if start_after:
            kwargs["StartAfter"] = start_after
        while True:
            with _translated("ListObjectsV2", loc):
                page = self.client.list_objects_v2(**kwargs)
            for obj in page.get("Contents", []):
                if not include_incoming and INCOMING_MARKER in obj["Key"]:
                    continue
                yield ObjectInfo(
                    key=obj["Key"],
                    size=int(obj.get("Size", 0)),
                    etag=str(obj.get("ETag", "")),
                    last_modified=obj.get("LastModified"),
                )
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return
            kwargs["ContinuationToken"] = token
            kwargs.pop("StartAfter", None)

    def get_tags(self, key: str) -> dict[str, str]:
        with _translated("GetObjectTagging", self.describe(key)):
            resp = self.client.get_object_tagging(Bucket=self.bucket, Key=key)
        return {t["Key"]: t["Value"] for t in resp.get("TagSet", [])}

    def set_tags(self, key: str, tags: dict[str, str]) -> None:
        tags = check_tags(tags)
        with _translated("PutObjectTagging", self.describe(key)):
            self.client.put_object_tagging(
                Bucket=self.bucket,
                Key=key,
                Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]},
            )

    def copy(self, src: str, dst: str, *, metadata: dict[str, str] | None = None) -> ObjectInfo:
        """Server-side copy with metadata, content type and tags, pinned to the source's ETag;
        part by part (UploadPartCopy) above ``copy_threshold`` (5 GB, CopyObject's limit).
        *metadata* replaces the source's metadata (MetadataDirective=REPLACE)."""
        src_loc = self.describe(src)
        with _translated("HeadObject", src_loc):
            head = self.client.head_object(Bucket=self.bucket, Key=src)
        size, etag = int(head["ContentLength"]), str(head["ETag"])
        source: CopySourceTypeDef = {"Bucket": self.bucket, "Key": src}
        if metadata is not None:
            head = {**head, "Metadata": check_metadata(metadata)}
        if size <= self.copy_threshold:
            extra: dict[str, Any] = {}
            if metadata is not None:
                extra = {"MetadataDirective": "REPLACE", "Metadata": head["Metadata"]}
                if head.get("ContentType"):
                    extra["ContentType"] = head["ContentType"]
            with _translated("CopyObject", f"{src_loc} -> {self.describe(dst)}"):
                self.client.copy_object(
                    Bucket=self.bucket, Key=dst, CopySource=source, CopySourceIfMatch=etag, **extra
                )
        else:
            self._multipart_copy(src, dst, head, size, etag)
        info = self.head(dst)
        if info is None:
            raise SourceError(f"{self.describe(dst)}: copy reported success but the object is missing")
        return info

    def _multipart_copy(self, src: str, dst: str, head: Any, size: int, etag: str) -> None:
        loc = f"{self.describe(src)} -> {self.describe(dst)}"
        tags = self.get_tags(src)
        create: dict[str, Any] = {"Bucket": self.bucket, "Key": dst, "Metadata": head.get("Metadata") or {}}
        for field in ("ContentType", "ContentEncoding", "ContentDisposition", "CacheControl"):
            if head.get(field):
                create[field] = head[field]
        if tags:
            create["Tagging"] = urllib.parse.urlencode(tags)
        with _translated("CreateMultipartUpload", loc):
            upload_id = self.client.create_multipart_upload(**create)["UploadId"]
        part_size = max(self.copy_part_size, -(-size // MAX_PARTS))
        try:
            parts: list[CompletedPartTypeDef] = []
            source: CopySourceTypeDef = {"Bucket": self.bucket, "Key": src}
            for n, start in enumerate(range(0, size, part_size), 1):
                end = min(start + part_size, size) - 1
                with _translated("UploadPartCopy", loc):
                    r = self.client.upload_part_copy(
                        Bucket=self.bucket, Key=dst, UploadId=upload_id, PartNumber=n,
                        CopySource=source,
                        CopySourceRange=f"bytes={start}-{end}", CopySourceIfMatch=etag,
                    )  # fmt: skip
                parts.append({"PartNumber": n, "ETag": r["CopyPartResult"]["ETag"]})
            with _translated("CompleteMultipartUpload", loc):
                self.client.complete_multipart_upload(
                    Bucket=self.bucket, Key=dst, UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                )  # fmt: skip
        except BaseException:
            with contextlib.suppress(SourceError):
                self._abort_multipart(dst, upload_id)
            raise

    def _abort_multipart(self, key: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except botocore.exceptions.ClientError as e:
            if error_code(e)[0] != "NoSuchUpload":
                raise translate(e, "AbortMultipartUpload", self.describe(key)) from e
        except NETWORK_ERRORS as e:
            raise translate(e, "AbortMultipartUpload", self.describe(key)) from e

    def delete(self, key: str) -> None:
        with _translated("DeleteObject", self.describe(key)):
            self.client.delete_object(Bucket=self.bucket, Key=key)


def _b64sha256(data: bytes | memoryview) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


class S3Upload:
    """A pending multipart upload; nothing exists at the key until :meth:`commit` returns."""

    def __init__(
        self, storage: S3Storage, key: str, metadata: dict[str, str], content_type: str | None,
        *, late_metadata: bool = False,
    ) -> None:
        self.storage = storage
        self.final_key = key
        # with late metadata, parts go to a hidden staging object that commit() copies over the key
        self.late_metadata = late_metadata
        self.key = key + INCOMING_MARKER + secrets.token_hex(8) if late_metadata else key
        self._metadata = metadata
        self._content_type = content_type
        self._buf = bytearray()
        self._parts: list[CompletedPartTypeDef] = []
        self._upload_id: str | None = None
        self._part_size = storage.part_size
        self._state = "open"
        self.size = 0

    def __enter__(self) -> S3Upload:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()  # a no-op once committed

    @property
    def upload_id(self) -> str | None:
        return self._upload_id

    def _common(self) -> dict[str, Any]:
        args: dict[str, Any] = {"Bucket": self.storage.bucket, "Key": self.key, "Metadata": self._metadata}
        if self._content_type:
            args["ContentType"] = self._content_type
        return args

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._state != "open":
            raise ValueError(f"upload to {self.key!r} is already {self._state}")
        self._buf += data
        self.size += memoryview(data).nbytes
        try:
            while len(self._buf) >= self._part_size:
                n = self._part_size
                self._send_part(bytes(memoryview(self._buf)[:n]))
                del self._buf[:n]
        except BaseException:
            self._abort_quietly()
            raise

    def _send_part(self, chunk: bytes) -> None:
        client, loc = self.storage.client, self.storage.describe(self.key)
        if self._upload_id is None:
            with _translated("CreateMultipartUpload", loc):
                resp = client.create_multipart_upload(**self._common(), ChecksumAlgorithm="SHA256")
            self._upload_id = resp["UploadId"]
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            raise SourceError(f"{loc}: more than {MAX_PARTS} parts; the object is too large for one upload")
        digest = _b64sha256(chunk)
        with _translated("UploadPart", loc):
            resp2 = client.upload_part(
                Bucket=self.storage.bucket, Key=self.key, UploadId=self._upload_id,
                PartNumber=number, Body=chunk, ChecksumSHA256=digest,
            )  # fmt: skip
        self._parts.append({"PartNumber": number, "ETag": resp2["ETag"], "ChecksumSHA256": digest})
        # grow parts so that 10,000 of them reach ~480 GB: 2,000 x 16 MiB, 2,000 x 32 MiB, then 64 MiB
        if number in (2000, 4000):
            self._part_size = max(self._part_size, min(2 * self._part_size, MAX_PART_SIZE))

    def commit(self, metadata: dict[str, str] | None = None) -> ObjectInfo:
        if self._state != "open":
            raise ValueError(f"upload to {self.final_key!r} is already {self._state}")
        if metadata:
            merged = check_metadata({**self._metadata, **metadata})
            if self._upload_id is not None and not self.late_metadata and merged != self._metadata:
                raise ValueError("metadata given at commit needs begin_upload(late_metadata=True)")
            self._metadata = merged
        client = self.storage.client
        try:
            if self._upload_id is None:
                # small: one PutObject straight to the final key, with the final metadata
                self.key = self.final_key
                loc = self.storage.describe(self.key)
                body = bytes(self._buf)
                with _translated("PutObject", loc):
                    resp: Any = client.put_object(
                        **self._common(), Body=body, ChecksumSHA256=_b64sha256(body)
                    )
            else:
                loc = self.storage.describe(self.key)
                if self._buf:
                    self._send_part(bytes(self._buf))
                    self._buf.clear()
                with _translated("CompleteMultipartUpload", loc):
                    resp = client.complete_multipart_upload(
                        Bucket=self.storage.bucket, Key=self.key, UploadId=self._upload_id,
                        MultipartUpload={"Parts": self._parts},
                    )  # fmt: skip
                if self.key != self.final_key:
                    staging = self.key
                    try:
                        info = self.storage.copy(staging, self.final_key, metadata=self._metadata)
                    finally:
                        with contextlib.suppress(SourceError):
                            self.storage.delete(staging)
                    self._state = "committed"
                    self._buf = bytearray()
                    return info
        except BaseException:
            self._abort_quietly()
            raise
        self._state = "committed"
        self._buf = bytearray()
        version = resp.get("VersionId")
        head_args: dict[str, Any] = {"Bucket": self.storage.bucket, "Key": self.key}
        if version and version != "null":
            head_args["VersionId"] = version
        with _translated("HeadObject", loc):
            head = client.head_object(**head_args)
        return info_from_response(self.key, head)

    def _abort_quietly(self) -> None:
        """Abort after another failure: that failure is the one to report."""
        with contextlib.suppress(SourceError):
            self.abort()

    def abort(self) -> None:
        """Drop the buffered bytes and abort the multipart upload (no object, no version, no
        leftover upload).  Safe to call twice; a no-op after :meth:`commit`."""
        if self._state != "open":
            return
        self._state = "aborted"
        self._buf = bytearray()
        if self._upload_id is not None:
            self.storage._abort_multipart(self.key, self._upload_id)
