"""A local directory that stands in for a bucket.

Keys are paths relative to the directory (``/``-separated).  Per-object metadata, content type and
tags live in a JSON sidecar under the hidden ``.snapcheck-meta/`` directory at the root (named by a
hash of the key, so no key can collide with a sidecar); :meth:`LocalStorage.list` never shows it.

Durability and atomicity (what the S3 store gets from multipart uploads):

- an upload writes a hidden temp sibling ``.<name>.snapcheck-tmp-<random>`` next to the target,
  then on :meth:`LocalUpload.commit` fsyncs it, writes the sidecar (temp + fsync + rename), renames
  the data into place and fsyncs the directory.  A writer that dies before the rename leaves only the
  hidden temp file, which :meth:`LocalStorage.list`/``head`` never show.
- the ETag is derived from ``(size, mtime_ns, inode)`` of the data file, which a rename keeps and a
  replacement changes.  A sidecar records the ETag it belongs to; a sidecar whose ETag does not match
  the file (a crash between the two renames, or a file replaced by another tool) is ignored.

Only regular files are objects: symlinks and special files are neither listed nor read.  Unlike
S3, a key cannot be both an object and a "directory" prefix of another key (``a`` and ``a/b``).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import SourceError, UsageError
from .base import ObjectChanged, ObjectInfo, ObjectNotFound, check_metadata, check_tags

META_DIR = ".snapcheck-meta"
TMP_MARKER = ".snapcheck-tmp-"
_BUF = 1 << 20


def _etag(st: os.stat_result) -> str:
    return f'"{st.st_size:x}-{st.st_mtime_ns:x}-{st.st_ino:x}"'


def _is_temp(name: str) -> bool:
    return name.startswith(".") and TMP_MARKER in name


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalStorage:
    """A directory used as a bucket.  Reads of a missing directory fail with ``SourceError`` (like a
    missing bucket); the first upload creates it."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(os.path.abspath(os.fspath(root)))

    # -- keys and sidecars ---------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if (
            not key
            or "\0" in key
            or any(p in ("", ".", "..") for p in parts)
            or parts[0] == META_DIR
            or _is_temp(parts[-1])
        ):
            raise UsageError(f"invalid key {key!r} for a local bucket")
        return self.root.joinpath(*parts)

    def _sidecar(self, key: str) -> Path:
        h = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()
        return self.root / META_DIR / h[:2] / f"{h}.json"

    def _read_sidecar(self, key: str, etag: str) -> dict[str, Any]:
        """The sidecar of *key* if it belongs to the file with *etag*, else an empty record."""
        try:
            with open(self._sidecar(key), "rb") as f:
                rec = json.load(f)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            raise SourceError(f"{self.describe(key)}: cannot read its metadata sidecar: {e}") from e
        if not isinstance(rec, dict) or rec.get("key") != key or rec.get("etag") != etag:
            return {}
        return rec

    def _write_sidecar(self, key: str, rec: dict[str, Any]) -> None:
        path = self._sidecar(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}{TMP_MARKER}{secrets.token_hex(8)}")
        try:
            with open(tmp, "wb") as f:
                f.write(json.dumps(rec, sort_keys=True).encode())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(path.parent)

    def _info(self, key: str, st: os.stat_result, *, with_meta: bool = True) -> ObjectInfo:
        etag = _etag(st)
        meta = self._read_sidecar(key, etag).get("metadata", {}) if with_meta else {}
        return ObjectInfo(
            key=key,
            size=st.st_size,
            etag=etag,
            last_modified=datetime.fromtimestamp(st.st_mtime_ns / 1e9, UTC),
            metadata=dict(meta),
        )

    def _stat(self, key: str) -> os.stat_result | None:
        path = self._path(key)
        try:
            st = os.stat(path, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as e:
            raise SourceError(f"{path}: {e.strerror or e}") from e
        return st if stat.S_ISREG(st.st_mode) else None

    # -- the Storage protocol ------------------------------------------------------------------------

    def describe(self, key: str) -> str:
        return str(self.root.joinpath(*key.split("/"))) if key else str(self.root)

    def head(self, key: str) -> ObjectInfo | None:
        st = self._stat(key)
        return None if st is None else self._info(key, st)

    def content_type(self, key: str) -> str | None:
        """The content type recorded at upload, if any (S3 keeps one per object too)."""
        st = self._stat(key)
        if st is None:
            raise ObjectNotFound(self.describe(key))
        ct = self._read_sidecar(key, _etag(st)).get("content_type")
        return ct if isinstance(ct, str) else None

    def open_read(self, key: str, *, etag: str | None = None) -> tuple[BinaryIO, ObjectInfo]:
        path = self._path(key)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(self.describe(key)) from None
        except OSError as e:
            if e.errno == errno.ELOOP:  # a symlink: never an object
                raise ObjectNotFound(self.describe(key)) from None
            raise SourceError(f"{path}: cannot open: {e.strerror or e}") from e
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise ObjectNotFound(self.describe(key))
            info = self._info(key, st)
            if etag is not None and info.etag != etag:
                raise ObjectChanged(
                    f"{self.describe(key)}: object changed (ETag {info.etag}, expected {etag})"
                )
            f = os.fdopen(fd, "rb", buffering=_BUF)
        except BaseException:
            os.close(fd)
            raise
        return f, info

    def begin_upload(
        self, key: str, *, metadata: dict[str, str] | None = None, content_type: str | None = None,
        late_metadata: bool = False,
    ) -> LocalUpload:
        # the local store writes its metadata sidecar at commit anyway: late metadata costs nothing
        return LocalUpload(self, key, check_metadata(metadata), content_type)

    def list(self, prefix: str = "", *, start_after: str | None = None) -> Iterator[ObjectInfo]:
        """Every object whose key starts with *prefix* (and sorts after *start_after*), in S3's
        order (by key, code point by code point).  Listings carry no metadata."""
        if not self.root.is_dir():
            raise SourceError(f"{self.root}: no such directory (local bucket)")
        # start at the deepest directory the prefix names completely
        dir_part, sep, name_part = prefix.rpartition("/")
        parts = dir_part.split("/") if sep else []
        if any(p in ("", ".", "..") for p in parts) or (parts and parts[0] == META_DIR):
            return  # no key can start with such a prefix
        directory = self.root.joinpath(*parts)
        yield from self._walk(directory, dir_part + sep, name_part, start_after)

    def _walk(
        self, directory: Path, rel: str, name_prefix: str, start_after: str | None
    ) -> Iterator[ObjectInfo]:
        try:
            with os.scandir(directory) as it:
                entries = [(e.name, e.is_dir(follow_symlinks=False), e) for e in it]
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as e:
            raise SourceError(f"{directory}: cannot list: {e.strerror or e}") from e
        # sorting directories as "name/" yields the keys below them in global key order
        entries.sort(key=lambda t: t[0] + "/" if t[1] else t[0])
        for name, is_dir, entry in entries:
            if not name.startswith(name_prefix) or _is_temp(name):
                continue
            key = rel + name
            if not rel and name == META_DIR:
                continue
            if is_dir:
                sub = key + "/"
                if start_after is not None and sub < start_after and not start_after.startswith(sub):
                    continue  # every key below sorts before start_after
                yield from self._walk(Path(entry.path), sub, "", start_after)
                continue
            if start_after is not None and key <= start_after:
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # deleted while listing
            except OSError as e:
                raise SourceError(f"{entry.path}: {e.strerror or e}") from e
            if stat.S_ISREG(st.st_mode):
                yield self._info(key, st, with_meta=False)

    def get_tags(self, key: str) -> dict[str, str]:
        st = self._stat(key)
        if st is None:
            raise ObjectNotFound(self.describe(key))
        return dict(self._read_sidecar(key, _etag(st)).get("tags", {}))

    def set_tags(self, key: str, tags: dict[str, str]) -> None:
        tags = check_tags(tags)
        st = self._stat(key)
        if st is None:
            raise ObjectNotFound(self.describe(key))
        etag = _etag(st)
        rec = self._read_sidecar(key, etag) or {"key": key, "etag": etag, "metadata": {}}
        rec["tags"] = tags
        try:
            self._write_sidecar(key, rec)
        except OSError as e:
            raise SourceError(f"{self.describe(key)}: cannot write tags: {e}") from e

    def copy(self, src: str, dst: str, *, metadata: dict[str, str] | None = None) -> ObjectInfo:
        """Copy data, metadata, content type and tags (as S3's CopyObject does by default);
        *metadata* replaces the metadata (S3's MetadataDirective=REPLACE)."""
        reader, info = self.open_read(src)
        with reader:
            rec = self._read_sidecar(src, info.etag)
            meta = check_metadata(metadata) if metadata is not None else dict(info.metadata)
            up = LocalUpload(self, dst, meta, rec.get("content_type"),
                             tags=dict(rec.get("tags", {})))  # fmt: skip
            try:
                try:
                    shutil.copyfileobj(reader, up.file, _BUF)
                except OSError as e:
                    raise SourceError(f"copy {self.describe(src)} -> {self.describe(dst)}: {e}") from e
                return up.commit()
            finally:
                up.abort()  # no-op after commit

    def delete(self, key: str) -> None:
        """Remove the object and its sidecar (absent keys are fine, as on S3), then prune empty
        directories up to the root."""
        path = self._path(key)
        try:
            os.unlink(path)
        except (FileNotFoundError, NotADirectoryError):
            pass
        except IsADirectoryError:
            return
        except OSError as e:
            raise SourceError(f"{path}: cannot delete: {e.strerror or e}") from e
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._sidecar(key))
        parent = path.parent
        with contextlib.suppress(OSError):
            _fsync_dir(parent)
        while parent != self.root and self.root in parent.parents:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent


class LocalUpload:
    """A pending write to a hidden temp sibling; visible at the key only after :meth:`commit`."""

    def __init__(self, storage: LocalStorage, key: str, metadata: dict[str, str],
                 content_type: str | None, *, tags: dict[str, str] | None = None) -> None:  # fmt: skip
        self.storage = storage
        self.key = key
        self.path = storage._path(key)
        self._metadata = metadata
        self._content_type = content_type
        self._tags = tags or {}
        self._state = "open"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.tmp = self.path.with_name(f".{self.path.name}{TMP_MARKER}{secrets.token_hex(8)}")
            fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except OSError as e:
            raise SourceError(f"{storage.describe(key)}: cannot start upload: {e.strerror or e}") from e
        self.file = os.fdopen(fd, "wb", buffering=_BUF)

    def __enter__(self) -> LocalUpload:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()  # a no-op once committed

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._state != "open":
            raise ValueError(f"upload to {self.key!r} is already {self._state}")
        try:
            self.file.write(data)
        except OSError as e:
            self.abort()
            raise SourceError(f"{self.storage.describe(self.key)}: write failed: {e.strerror or e}") from e

    def commit(self, metadata: dict[str, str] | None = None) -> ObjectInfo:
        if self._state != "open":
            raise ValueError(f"upload to {self.key!r} is already {self._state}")
        if metadata:
            self._metadata = check_metadata({**self._metadata, **metadata})
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            st = os.fstat(self.file.fileno())
            self.file.close()
            info = self.storage._info(self.key, st, with_meta=False)
            rec = {"key": self.key, "etag": info.etag, "metadata": self._metadata, "tags": self._tags}
            if self._content_type is not None:
                rec["content_type"] = self._content_type
            self.storage._write_sidecar(self.key, rec)
            os.replace(self.tmp, self.path)
            _fsync_dir(self.path.parent)
        except OSError as e:
            self.abort()
            raise SourceError(f"{self.storage.describe(self.key)}: commit failed: {e.strerror or e}") from e
        self._state = "committed"
        return ObjectInfo(self.key, info.size, info.etag, info.last_modified, dict(self._metadata))

    def abort(self) -> None:
        if self._state != "open":
            return
        self._state = "aborted"
        with contextlib.suppress(OSError):
            self.file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)
