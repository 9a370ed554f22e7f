"""The local-directory bucket: atomic uploads, sidecar metadata and tags, listing order, copy,
delete, a writer killed mid-upload, and open_location's URL handling."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snapcheck.errors import SourceError, UsageError
from snapcheck.storage import (
    LocalStorage,
    ObjectChanged,
    ObjectNotFound,
    Storage,
    Upload,
    open_location,
)
from snapcheck.storage.local import META_DIR, TMP_MARKER
from snapcheck.storage.s3 import S3Storage

REPO = Path(__file__).resolve().parent.parent


def visible_files(root: Path) -> list[str]:
    """Every regular file under *root* outside the sidecar dir (temp files included)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == root and META_DIR in dirnames:
            dirnames.remove(META_DIR)
        out += [os.path.relpath(os.path.join(dirpath, f), root) for f in filenames]
    return sorted(out)


def put(store: LocalStorage, key: str, data: bytes, **kw: object) -> None:
    up = store.begin_upload(key, **kw)  # type: ignore[arg-type]
    up.write(data)
    up.commit()


def test_protocols_hold(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    assert isinstance(store, Storage)
    up = store.begin_upload("k")
    assert isinstance(up, Upload)
    up.abort()


def test_upload_commit_read_back_with_metadata(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "bucket")  # created by the first upload
    data = os.urandom(3 << 20)
    up = store.begin_upload(
        "git/3f/obj", metadata={"Tag": "abc", "Headers": '{"Etag":["x"]}'}, content_type="application/zstd"
    )
    up.write(data[:1000])
    up.write(bytearray(data[1000:5000]))
    up.write(memoryview(data)[5000:])
    # nothing visible before commit: no object, nothing listed, only a hidden temp file on disk
    assert store.head("git/3f/obj") is None
    assert list(store.list()) == []
    on_disk = visible_files(tmp_path / "bucket")
    assert len(on_disk) == 1 and TMP_MARKER in on_disk[0]
    info = up.commit()
    assert info.key == "git/3f/obj" and info.size == len(data)
    assert info.metadata == {"tag": "abc", "headers": '{"Etag":["x"]}'}
    assert visible_files(tmp_path / "bucket") == ["git/3f/obj"]
    head = store.head("git/3f/obj")
    assert head is not None and head.etag == info.etag and head.metadata == info.metadata
    assert store.content_type("git/3f/obj") == "application/zstd"
    f, rinfo = store.open_read("git/3f/obj", etag=info.etag)
    with f:
        assert f.read() == data
    assert rinfo == head
    with pytest.raises(ValueError):
        up.write(b"more")


def test_abort_leaves_nothing_and_keeps_old_object(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    put(store, "k", b"old", metadata={"v": "1"})
    before = store.head("k")
    up = store.begin_upload("k", metadata={"v": "2"})
    up.write(b"new bytes that must never appear")
    up.abort()
    up.abort()  # idempotent
    assert store.head("k") == before
    f, _ = store.open_read("k")
    with f:
        assert f.read() == b"old"
    assert visible_files(tmp_path) == ["k"]
    with pytest.raises(ValueError):
        up.commit()


def test_context_manager_aborts_on_error(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    with pytest.raises(RuntimeError), store.begin_upload("k") as up:
        up.write(b"partial")
        raise RuntimeError("writer failed")
    assert store.head("k") is None and visible_files(tmp_path) == []


def test_killed_writer_leaves_no_visible_object(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    put(store, "snap/obj", b"previous good snapshot")
    old = store.head("snap/obj")
    script = textwrap.dedent(
        f"""
        import os, sys, time
        from snapcheck.storage.local import LocalStorage
        up = LocalStorage({str(tmp_path)!r}).begin_upload("snap/obj")
        up.write(os.urandom(3 << 20))
        up.file.flush()
        up2 = LocalStorage({str(tmp_path)!r}).begin_upload("snap/new")
        up2.write(b"x" * 100000)
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=20)
    assert proc.returncode == -signal.SIGKILL
    # the hidden temp files are on disk ...
    assert sum(TMP_MARKER in f for f in visible_files(tmp_path)) == 2
    # ... but no reader sees them: the old object is intact and the new key does not exist
    assert [o.key for o in store.list()] == ["snap/obj"]
    assert store.head("snap/obj") == old
    assert store.head("snap/new") is None
    with pytest.raises(ObjectNotFound):
        store.open_read("snap/new")
    f, _ = store.open_read("snap/obj", etag=old.etag if old else None)
    with f:
        assert f.read() == b"previous good snapshot"


def test_replacing_object_changes_etag_and_drops_tags(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    put(store, "k", b"one", metadata={"a": "1"})
    store.set_tags("k", {"state": "verified"})
    first = store.head("k")
    reader, _ = store.open_read("k")
    put(store, "k", b"two!", metadata={"b": "2"})
    second = store.head("k")
    assert first is not None and second is not None
    assert second.etag != first.etag and second.metadata == {"b": "2"}
    assert store.get_tags("k") == {}  # a new object has no tags, as on S3
    with pytest.raises(ObjectChanged):
        store.open_read("k", etag=first.etag)
    with reader:  # an open reader keeps reading the version it opened
        assert reader.read() == b"one"


def test_sidecar_of_replaced_file_is_ignored(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    put(store, "k", b"data", metadata={"tag": "t1"})
    store.set_tags("k", {"x": "y"})
    # another tool replaces the file (rename over it): the sidecar no longer describes it
    (tmp_path / "other").write_bytes(b"foreign data")
    os.replace(tmp_path / "other", tmp_path / "k")
    info = store.head("k")
    assert info is not None and info.metadata == {} and info.size == len(b"foreign data")
    assert store.get_tags("k") == {}


def test_tags_round_trip_and_limits(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    put(store, "k", b"x", metadata={"m": "v"})
    store.set_tags("k", {"snapcheck": "ok", "level": "standard"})
    assert store.get_tags("k") == {"snapcheck": "ok", "level": "standard"}
    assert store.head("k").metadata == {"m": "v"}  # type: ignore[union-attr]
    with pytest.raises(UsageError):
        store.set_tags("k", {f"t{i}": "v" for i in range(11)})
    with pytest.raises(UsageError):
        store.set_tags("k", {"": "v"})
    with pytest.raises(ObjectNotFound):
        store.get_tags("missing")
    with pytest.raises(ObjectNotFound):
        store.set_tags("missing", {"a": "b"})


def test_metadata_rules(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    with pytest.raises(UsageError):
        store.begin_upload("k", metadata={"a": "ünïcode"})
    with pytest.raises(UsageError):
        store.begin_upload("k", metadata={"A": "1", "a": "2"})
    with pytest.raises(UsageError):
        store.begin_upload("k", metadata={"big": "x" * 3000})
    assert visible_files(tmp_path) == []


def test_copy_keeps_data_metadata_tags(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    data = os.urandom(1 << 20)
    put(store, "src/a", data, metadata={"tag": "1"}, content_type="application/zstd")
    store.set_tags("src/a", {"k": "v"})
    info = store.copy("src/a", "dst/b")
    assert info.key == "dst/b" and info.size == len(data) and info.metadata == {"tag": "1"}
    assert store.get_tags("dst/b") == {"k": "v"}
    assert store.content_type("dst/b") == "application/zstd"
    f, _ = store.open_read("dst/b")
    with f:
        assert f.read() == data
    put(store, "src/a", b"changed")  # the copy is independent
    f, _ = store.open_read("dst/b")
    with f:
        assert f.read() == data
    with pytest.raises(ObjectNotFound):
        store.copy("nope", "x")
    assert store.head("x") is None


def test_delete_prunes_and_is_idempotent(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    put(store, "a/b/c", b"1")
    put(store, "a/d", b"2")
    store.set_tags("a/b/c", {"t": "v"})
    store.delete("a/b/c")
    assert store.head("a/b/c") is None
    assert not (tmp_path / "a" / "b").exists()  # emptied directory pruned
    assert [o.key for o in store.list()] == ["a/d"]
    store.delete("a/b/c")  # absent: fine, as on S3
    store.delete("never/was")
    put(store, "a/b/c", b"again")
    assert store.get_tags("a/b/c") == {}  # the old sidecar went with the object


@pytest.mark.parametrize(
    "key", ["", "/abs", "../up", "a/../b", "a//b", "./a", f"{META_DIR}/x", "a/.b.snapcheck-tmp-00"]
)
def test_invalid_keys(tmp_path: Path, key: str) -> None:
    store = LocalStorage(tmp_path)
    with pytest.raises(UsageError):
        store.begin_upload(key)
    with pytest.raises(UsageError):
        store.head(key)


def test_missing_root_and_non_regular_files(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "absent")
    with pytest.raises(SourceError):
        list(store.list())
    assert store.head("k") is None
    with pytest.raises(ObjectNotFound):
        store.open_read("k")
    store = LocalStorage(tmp_path)
    (tmp_path / "real").write_bytes(b"r")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    (tmp_path / "dir").mkdir()
    assert [o.key for o in store.list()] == ["real"]
    assert store.head("link") is None and store.head("dir") is None
    with pytest.raises(ObjectNotFound):
        store.open_read("link")


def test_listing_order_prefix_start_after(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    keys = ["a-b", "a.z", "a/b", "a/c/d", "a0", "b", ".hidden", "ü/x", "a/c-e", "ab/z"]
    for k in keys:
        put(store, k, k.encode())
    assert [o.key for o in store.list()] == sorted(keys)
    assert [o.key for o in store.list("a/")] == ["a/b", "a/c-e", "a/c/d"]
    assert [o.key for o in store.list("a/c")] == ["a/c-e", "a/c/d"]
    assert [o.key for o in store.list("a", start_after="a/b")] == ["a/c-e", "a/c/d", "a0", "ab/z"]
    assert [o.key for o in store.list(start_after="a0")] == ["ab/z", "b", "ü/x"]
    with pytest.raises(SourceError):  # a file system cannot hold "a/b" and "a" together
        put(store, "a", b"")
    assert list(store.list("zz")) == [] and list(store.list("../")) == []
    assert list(store.list(META_DIR)) == []
    sizes = {o.key: o.size for o in store.list()}
    assert sizes == {k: len(k.encode()) for k in keys}


_names = st.text(alphabet="ab-0/.", min_size=1, max_size=6)


def _usable(keys: set[str]) -> list[str]:
    """Keys a file system can hold together: valid components, no key that is a prefix dir of another."""
    ok = [
        k for k in keys if all(p not in ("", ".", "..") for p in k.split("/")) and not k.startswith(META_DIR)
    ]
    return sorted(k for k in ok if not any(o.startswith(k + "/") for o in ok))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keys=st.sets(_names, max_size=12), prefix=st.text(alphabet="ab-0/.", max_size=3),
       start=st.one_of(st.none(), st.text(alphabet="ab-0/.", max_size=4)))  # fmt: skip
def test_listing_matches_s3_model(tmp_path_factory: pytest.TempPathFactory, keys: set[str], prefix: str,
                                  start: str | None) -> None:  # fmt: skip
    """list() returns exactly what S3 would: keys with the prefix, after start_after, sorted."""
    store = LocalStorage(tmp_path_factory.mktemp("model"))
    usable = _usable(keys)
    for k in usable:
        put(store, k, b"")
    expected = [k for k in usable if k.startswith(prefix) and (start is None or k > start)]
    assert [o.key for o in store.list(prefix, start_after=start)] == expected


def test_open_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s, key = open_location("s3://bucket/git/3f/abc", endpoint_url="http://127.0.0.1:9")
    assert isinstance(s, S3Storage) and s.bucket == "bucket" and key == "git/3f/abc"
    assert s.describe(key) == "s3://bucket/git/3f/abc"
    s, key = open_location("s3://bucket", endpoint_url="http://127.0.0.1:9")
    assert isinstance(s, S3Storage) and key == ""
    for bad in ("s3://", "s3:///key", "gs://bucket/x", ""):
        with pytest.raises(UsageError):
            open_location(bad)
    # a plain directory is a bucket root; a path inside it is a key in its parent
    s, key = open_location(str(tmp_path))
    assert isinstance(s, LocalStorage) and s.root == tmp_path and key == ""
    s, key = open_location(str(tmp_path / "snap.tar.zst"))
    assert isinstance(s, LocalStorage) and s.root == tmp_path and key == "snap.tar.zst"
    # once snapcheck has written into it, the bucket root is found from any path below it
    put(LocalStorage(tmp_path), "git/3f/abc", b"x", metadata={"a": "b"})
    s, key = open_location(str(tmp_path / "git" / "3f" / "abc"))
    assert isinstance(s, LocalStorage) and s.root == tmp_path and key == "git/3f/abc"
    assert s.head(key) is not None and s.describe(key) == str(tmp_path / "git" / "3f" / "abc")
    s, key = open_location(f"file://{tmp_path}/git")
    assert isinstance(s, LocalStorage) and s.root == tmp_path and key == "git/"
    assert [o.key for o in s.list(key)] == ["git/3f/abc"]
    monkeypatch.chdir(tmp_path)
    s, key = open_location("git/3f/abc")
    assert isinstance(s, LocalStorage) and s.root == tmp_path and key == "git/3f/abc"
