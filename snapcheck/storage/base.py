"""The storage interface: a flat key space of immutable objects, as S3 offers it.

Two implementations: :mod:`snapcheck.storage.s3` (a bucket, through boto3) and
:mod:`snapcheck.storage.local` (a local directory standing in for a bucket, for tests, air-gapped
setups and cachew's disk tier).  The rules every implementation keeps:

1. **Nothing half-written is ever visible.**  :meth:`Storage.begin_upload` returns an
   :class:`Upload`; bytes written to it appear at the key only when :meth:`Upload.commit` returns.
   :meth:`Upload.abort` (or a crash of the writer) leaves the key exactly as it was: no object, no
   new version, no leftover multipart upload (S3) or visible temp file (local).
2. **Reads are streams.**  :meth:`Storage.open_read` never loads an object into memory; with
   ``etag=`` the read is pinned to that version and fails with :class:`ObjectChanged` otherwise.
3. **Failures are typed.**  Anything that stops an operation (network, permission, missing bucket)
   raises :class:`~snapcheck.errors.SourceError` (exit 3) with the cause chained; a missing key is
   the subclass :class:`ObjectNotFound`, so a caller can decide what absence means.
4. **Metadata names are lower case** (S3 treats them case-insensitively and returns them lower-cased;
   the local store does the same so both behave alike).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO, Protocol, runtime_checkable

from ..errors import SourceError, UsageError


@dataclass(frozen=True)
class ObjectInfo:
    """What the store says about one object.  ``etag`` is the store's version identifier exactly as
    it gives it (S3: quoted, e.g. ``"9b2c…-3"`` for a multipart upload); it is not a content hash.
    ``metadata`` is the user metadata (lower-case names); listings leave it empty."""

    key: str
    size: int
    etag: str
    last_modified: datetime | None
    metadata: dict[str, str] = field(default_factory=dict)
    version_id: str | None = None


class ObjectNotFound(SourceError):
    """The key does not exist (S3 ``NoSuchKey``/404, or no such file in a local bucket)."""

    def __init__(self, location: str) -> None:
        super().__init__(f"{location}: no such object")
        self.location = location


class ObjectChanged(SourceError):
    """The object was replaced while it was being read (its ETag no longer matches)."""


@runtime_checkable
class Upload(Protocol):
    """One pending write.  Nothing is visible at the key until :meth:`commit` returns."""

    def write(self, data: bytes | bytearray | memoryview) -> None: ...

    def commit(self, metadata: dict[str, str] | None = None) -> ObjectInfo:
        """Make the object visible; *metadata* (merged over what begin_upload was given) is only
        allowed when the upload was begun with ``late_metadata=True`` or is still small."""
        ...

    def abort(self) -> None: ...


@runtime_checkable
class Storage(Protocol):
    """A bucket of objects addressed by key (``/``-separated, no leading ``/``)."""

    def head(self, key: str) -> ObjectInfo | None: ...

    def open_read(self, key: str, *, etag: str | None = None) -> tuple[BinaryIO, ObjectInfo]: ...

    def begin_upload(
        self, key: str, *, metadata: dict[str, str] | None = None, content_type: str | None = None,
        late_metadata: bool = False,
    ) -> Upload:
        """Start a write.  With *late_metadata* the final metadata may be given to ``commit`` (facts
        known only once every byte was seen: a digest, counts); S3 then uploads to a hidden
        ``<key>.snapcheck-incoming-<token>`` object and copies it over the key on commit."""
        ...

    def list(self, prefix: str = "", *, start_after: str | None = None) -> Iterator[ObjectInfo]: ...

    def get_tags(self, key: str) -> dict[str, str]: ...

    def set_tags(self, key: str, tags: dict[str, str]) -> None: ...

    def copy(self, src: str, dst: str, *, metadata: dict[str, str] | None = None) -> ObjectInfo: ...

    def delete(self, key: str) -> None: ...

    def describe(self, key: str) -> str: ...


INCOMING_MARKER = ".snapcheck-incoming-"  # S3 staging objects of late-metadata uploads (never listed as data)


# Limits S3 imposes; the local store enforces the same so that both accept exactly the same things.
MAX_TAGS = 10
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256
MAX_METADATA_BYTES = 2048


def check_metadata(metadata: dict[str, str] | None) -> dict[str, str]:
    """User metadata as S3 stores it: names lower-cased; names and values printable ASCII (they
    travel as HTTP headers), at most 2 KiB in all.  Raises :class:`~snapcheck.errors.UsageError`."""
    out: dict[str, str] = {}
    total = 0
    for name, value in (metadata or {}).items():
        low = name.lower()
        if not low or not _printable_ascii(low) or " " in low or ":" in low:
            raise UsageError(f"invalid metadata name {name!r}: printable ASCII without spaces or ':'")
        if not _printable_ascii(value):
            raise UsageError(f"invalid metadata value for {name!r}: printable ASCII only")
        if low in out:
            raise UsageError(f"metadata name {name!r} given twice (names are case-insensitive)")
        out[low] = value
        total += len(low) + len(value)
    if total > MAX_METADATA_BYTES:
        raise UsageError(f"user metadata is {total} bytes; S3 allows {MAX_METADATA_BYTES}")
    return out


def check_tags(tags: dict[str, str]) -> dict[str, str]:
    """Object tags within S3's limits (10 tags, key 1–128 and value 0–256 characters)."""
    if len(tags) > MAX_TAGS:
        raise UsageError(f"{len(tags)} tags; S3 allows {MAX_TAGS} per object")
    for k, v in tags.items():
        if not 0 < len(k) <= MAX_TAG_KEY:
            raise UsageError(f"tag key {k!r}: 1 to {MAX_TAG_KEY} characters")
        if len(v) > MAX_TAG_VALUE:
            raise UsageError(f"tag {k!r}: value longer than {MAX_TAG_VALUE} characters")
    return dict(tags)


def _printable_ascii(s: str) -> bool:
    return s.isascii() and s.isprintable()
