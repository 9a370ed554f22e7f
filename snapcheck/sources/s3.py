"""An S3 object as a forward-only byte stream that survives broken connections.

:class:`ResumableS3Stream` issues one streaming ``GetObject``.  If the connection breaks in the
middle (reset, early EOF, read timeout), it resumes where it stopped with a ranged GET
(``Range: bytes=N-``) pinned to the object's ETag (``If-Match``) and, on a versioned bucket, to its
version id, at most ``max_resumes`` times.  The rules it enforces:

1. the bytes handed out are exactly the object's bytes: every resumed response must start at the
   requested offset (``Content-Range: bytes N-…/size``), carry the same ETag and the same total
   size; anything else is a :class:`~snapcheck.errors.SourceError`;
2. the object must not change while it is read: a ``412 Precondition Failed`` (or a different
   ETag) on a resume raises :class:`~snapcheck.storage.base.ObjectChanged` ("object changed while
   reading");
3. the total read equals the object's size: a stream that still ends short after the last allowed
   resume raises ``SourceError`` — never a silent EOF;
4. network failures that outlast the resumes (server down) raise ``SourceError`` (exit 3) with the
   cause chained.

The stream never seeks and holds no more than the caller's read buffer.
"""

from __future__ import annotations

import io
import time
from typing import TYPE_CHECKING, Any, BinaryIO

import botocore.exceptions

from ..errors import SourceError, UsageError
from ..storage.base import ObjectChanged, ObjectInfo, ObjectNotFound
from ..storage.s3 import (
    NETWORK_ERRORS,
    error_code,
    info_from_response,
    make_client,
    parse_s3_url,
    translate,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CHUNK = 1 << 20


class ResumableS3Stream(io.RawIOBase, BinaryIO):
    """A streaming GET of ``s3://bucket/key`` that resumes with ranged GETs pinned to the ETag.

    ``resumes`` counts the resumed GETs so far, ``position`` the bytes handed out, ``info`` describes
    the object as the first GET saw it.  With ``etag=`` even the first GET is pinned (a stale ETag
    raises :class:`ObjectChanged`).  ``backoff`` is the first pause between resume attempts (it
    doubles, up to 2 s; the first resume is immediate)."""

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        key: str,
        *,
        etag: str | None = None,
        version_id: str | None = None,
        max_resumes: int = 5,
        backoff: float = 0.1,
    ) -> None:
        super().__init__()
        self._client = client
        self.bucket = bucket
        self.key = key
        self.location = f"s3://{bucket}/{key}"
        self.max_resumes = max_resumes
        self.backoff = backoff
        self.resumes = 0
        self.position = 0
        self._body: Any = None
        self._version_id = version_id
        try:
            resp = self._get(None, etag, "GetObject")
        except NETWORK_ERRORS as e:  # the first GET has no resume: botocore's retries were its chance
            raise translate(e, "GetObject", self.location) from e
        self.info = info_from_response(key, resp)
        self.size = self.info.size
        self.etag = self.info.etag
        if self.info.version_id:
            self._version_id = self.info.version_id
        self._body = resp["Body"]
        if self.size == 0:
            self._close_body()

    # -- requests ------------------------------------------------------------------------------------

    def _get(self, start: int | None, etag: str | None, op: str) -> Any:
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key}
        if start is not None:
            args["Range"] = f"bytes={start}-"
        if etag:
            args["IfMatch"] = etag
        if self._version_id:
            args["VersionId"] = self._version_id
        try:
            return self._client.get_object(**args)
        except botocore.exceptions.ClientError as e:
            code, status = error_code(e)
            if code in ("PreconditionFailed",) or status == 412:
                if start is None:
                    raise ObjectChanged(f"{self.location}: object changed (ETag is no longer {etag})") from e
                raise ObjectChanged(
                    f"{self.location}: object changed while reading (ETag {etag} no longer matches "
                    f"after {start} of {self.size} bytes)"
                ) from e
            err = translate(e, op, self.location)
            if start is not None and isinstance(err, ObjectNotFound):
                raise ObjectChanged(
                    f"{self.location}: object deleted while reading (after {start} of {self.size} bytes)"
                ) from e
            raise err from e

    def _finish(self) -> None:
        """All bytes are in: one more read lets botocore check the length and, when the server
        sent a full-object checksum (``x-amz-checksum-*``, only on an unranged GET), verify it."""
        try:
            extra = self._body.readinto(bytearray(1))
        except botocore.exceptions.FlexibleChecksumError as e:
            raise SourceError(f"{self.location}: the bytes read do not match the stored checksum: {e}") from e
        except NETWORK_ERRORS:
            extra = 0  # every byte has arrived; a failing tail read changes nothing
        finally:
            self._close_body()
        if extra:
            raise SourceError(f"{self.location}: server sent more bytes than the object's {self.size}")

    def _close_body(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            try:
                body.close()
            except NETWORK_ERRORS:
                pass

    def _resume(self, cause: BaseException | None) -> None:
        """Reopen the stream at ``position`` with a ranged GET pinned to the ETag (and version)."""
        self._close_body()
        why = f"{type(cause).__name__}: {cause}" if cause is not None else "the stream ended early"
        while True:
            if self.resumes >= self.max_resumes:
                raise SourceError(
                    f"{self.location}: read {self.position} of {self.size} bytes; the connection broke "
                    f"and {self.resumes} resume(s) did not complete it ({why})"
                ) from cause
            if self.resumes:
                time.sleep(min(self.backoff * 2 ** (self.resumes - 1), 2.0))
            self.resumes += 1
            try:
                resp = self._get(self.position, self.etag, "GetObject (resume)")
            except SourceError:
                raise
            except NETWORK_ERRORS as e:
                cause, why = e, f"{type(e).__name__}: {e}"
                continue
            self._check_resumed(resp)
            self._body = resp["Body"]
            return

    def _check_resumed(self, resp: Any) -> None:
        etag = str(resp.get("ETag", ""))
        if etag != self.etag:
            resp["Body"].close()
            raise ObjectChanged(
                f"{self.location}: object changed while reading (ETag {self.etag} became {etag} after "
                f"{self.position} of {self.size} bytes)"
            )
        expected = f"bytes {self.position}-{self.size - 1}/{self.size}"
        got = str(resp.get("ContentRange", ""))
        length = int(resp.get("ContentLength", -1))
        if got != expected or length != self.size - self.position:
            resp["Body"].close()
            raise SourceError(
                f"{self.location}: resumed GET returned Content-Range {got!r} and {length} bytes; "
                f"expected {expected!r}"
            )

    # -- io.RawIOBase ----------------------------------------------------------------------------------

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self.position

    def readinto(self, buffer: Any) -> int:
        if self.closed:
            raise ValueError("I/O operation on closed stream")
        view = memoryview(buffer).cast("B")
        want = min(len(view), self.size - self.position)
        if want <= 0:
            return 0
        while True:
            if self._body is None:
                self._resume(None)
            try:
                n: int = self._body.readinto(view[:want])
            except NETWORK_ERRORS as e:
                self._resume(e)
                continue
            if not n:  # ended before the object's size: resume (or fail), never a silent EOF
                self._resume(None)
                continue
            self.position += n
            if self.position == self.size:
                self._finish()
            return n

    def readall(self) -> bytes:
        out = bytearray(self.size - self.position)
        view = memoryview(out)
        got = 0
        while got < len(out):
            n = self.readinto(view[got : got + CHUNK])
            if not n:
                break
            got += n
        return bytes(out[:got]) if got < len(out) else bytes(out)

    def close(self) -> None:
        if not self.closed:
            self._close_body()
        super().close()


def open_s3_object(
    url_or_bucket_key: str | tuple[str, str],
    *,
    endpoint_url: str | None = None,
    max_resumes: int = 5,
    etag: str | None = None,
    client: S3Client | None = None,
) -> tuple[ResumableS3Stream, ObjectInfo]:
    """Open ``s3://bucket/key`` (or ``"bucket/key"``, or ``(bucket, key)``) for streaming.

    Raises :class:`~snapcheck.storage.base.ObjectNotFound` for a missing key, ``SourceError`` for
    everything else that stops the read (exit 3)."""
    if isinstance(url_or_bucket_key, tuple):
        bucket, key = url_or_bucket_key
    elif url_or_bucket_key.startswith("s3://"):
        bucket, key = parse_s3_url(url_or_bucket_key)
    else:
        bucket, _, key = url_or_bucket_key.partition("/")
    if not bucket or not key:
        raise UsageError(f"an S3 object needs a bucket and a key: {url_or_bucket_key!r}")
    c = client if client is not None else make_client(endpoint_url)
    stream = ResumableS3Stream(c, bucket, key, etag=etag, max_resumes=max_resumes)
    return stream, stream.info
