"""Where snapshots are stored: an S3 bucket or a local directory standing in for one.

:func:`open_location` turns what a user typed into a :class:`Storage` and a key (or prefix):

- ``s3://bucket/key-or-prefix`` → :class:`~snapcheck.storage.s3.S3Storage` (boto3's standard
  credential chain; ``endpoint_url`` or ``AWS_ENDPOINT_URL`` for S3-compatible servers);
- ``file:///path`` or a plain path → :class:`~snapcheck.storage.local.LocalStorage`.  The bucket
  root is the nearest enclosing directory that holds snapcheck's ``.snapcheck-meta/`` (so a key
  deep inside a local bucket keeps its full key); without one, an existing directory is itself the
  root (key ``""``) and anything else is a key in its parent directory.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from pathlib import Path

from ..errors import UsageError
from .base import ObjectChanged, ObjectInfo, ObjectNotFound, Storage, Upload
from .local import META_DIR, LocalStorage

__all__ = [
    "LocalStorage",
    "ObjectChanged",
    "ObjectInfo",
    "ObjectNotFound",
    "Storage",
    "Upload",
    "open_location",
]


def open_location(url: str, *, endpoint_url: str | None = None) -> tuple[Storage, str]:
    """``(storage, key-or-prefix)`` for an ``s3://`` URL, a ``file://`` URL or a local path.
    A local directory yields a prefix ending in ``/`` (or ``""`` for the root itself)."""
    if url.startswith("s3://"):
        from .s3 import S3Storage, parse_s3_url

        bucket, key = parse_s3_url(url)
        return S3Storage(bucket, endpoint_url=endpoint_url), key
    if url.startswith("file://"):
        parsed = urllib.parse.urlparse(url)
        if parsed.netloc not in ("", "localhost"):
            raise UsageError(f"file:// URL with a remote host: {url!r}")
        url = urllib.parse.unquote(parsed.path)
    elif re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", url) and not os.path.exists(url):
        raise UsageError(f"unsupported storage URL {url!r} (use s3://bucket/key or a local path)")
    if not url:
        raise UsageError("empty storage location")
    path = Path(os.path.abspath(os.path.expanduser(url)))
    for root in (path, *path.parents):
        if (root / META_DIR).is_dir():
            rel = path.relative_to(root).as_posix()
            key = "" if rel == "." else rel
            if key and path.is_dir():
                key += "/"
            return LocalStorage(root), key
    if path.is_dir():
        return LocalStorage(path), ""
    return LocalStorage(path.parent), path.name
