"""The snapcheck manifest (snapcheck.manifest): round trip, strict parsing, and comparison with a
snapshot, on real mirrors damaged the ways the manifest exists to catch: above all a packed-refs cut
exactly at a record boundary, which git reads without a word and no syntax check can see."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapcheck.archive_writer import build_manifest
from snapcheck.capture import capture_mirror
from snapcheck.gitformats.common import SHA1
from snapcheck.gitformats.packed_refs import parse_packed_refs
from snapcheck.manifest import MANIFEST_PATH, MAX_FINDINGS_PER_CODE, Manifest, compare_manifest
from snapcheck.report import Severity, code_info

from gitrepos import git, git_rc

CREATED = "2024-05-01T12:00:00Z"
CODES = [
    "manifestCorrupt", "manifestNotLast", "manifestRefMissing", "manifestRefMismatch", "manifestExtraRef",
    "manifestHeadMismatch", "manifestFileMissing", "manifestFileSizeMismatch", "manifestFileDigestMismatch",
    "manifestExtraFile",
]


def sample(n_refs: int = 3) -> Manifest:
    return Manifest(
        schema=1, tool_version="0.1.0", created=CREATED, object_format="sha1",
        head_target="refs/heads/main", head_oid="a" * 40,
        refs={f"refs/heads/b{i}": f"{i:040x}" for i in range(n_refs)} | {"refs/heads/main": "a" * 40},
        symrefs={}, files={"HEAD": (21, "0" * 64), "objects/pack/pack-x.pack": (1234, "f" * 64)},
        object_count=10, pack_count=1,
    )


# --------------------------------------------------------------------------------------------------
# the document


def test_codes_registered_as_errors() -> None:
    for code in CODES:
        assert code_info(code).severity is Severity.ERROR
    assert MANIFEST_PATH == ".snapcheck/manifest.json"


def test_round_trip_and_canonical_bytes() -> None:
    m = sample()
    m.symrefs = {"refs/remotes/origin/HEAD": "refs/heads/main"}
    m.refs["refs/remotes/origin/HEAD"] = "a" * 40
    m.refs["refs/tags/caf\udcc3"] = "b" * 40  # a non-UTF-8 ref name (surrogateescape) survives
    data = m.to_json()
    assert data.endswith(b"\n") and data.isascii()
    back, findings = Manifest.from_json(data)
    assert findings == [] and back == m
    assert back is not None and back.to_json() == data
    # canonical: key order of the input does not matter
    shuffled = Manifest(**{**m.__dict__, "refs": dict(reversed(list(m.refs.items())))})
    assert shuffled.to_json() == data
    assert back.created_epoch() == 1714564800
    assert Manifest(**{**m.__dict__, "created": "2024-05-01T12:00:00.25Z"}).created_epoch() == 1714564800
    assert Manifest(**{**m.__dict__, "created": "2024-05-01"}).created_epoch() is None


def _corrupt(data: bytes) -> list[str]:
    m, findings = Manifest.from_json(data, "x/.snapcheck/manifest.json")
    assert m is None
    assert [f.path for f in findings] == ["x/.snapcheck/manifest.json"]
    return [f.code for f in findings]


def _doc(**changes: object) -> bytes:
    doc = json.loads(sample().to_json())
    for k, v in changes.items():
        if v is KeyError:
            del doc[k]
        else:
            doc[k] = v
    return json.dumps(doc).encode()


@pytest.mark.parametrize("data", [
    b"", b"{", b"[]", b"null", b"\xff\xfe", b'{"schema": 1}',
    _doc(schema=2), _doc(schema="1"), _doc(schema=True), _doc(refs=KeyError), _doc(extra=1),
    _doc(object_format="md5"), _doc(created="yesterday"), _doc(created="2024-05-01T12:00:00+02:00"),
    _doc(created="2024-13-01T12:00:00Z"), _doc(created="2024-02-30T12:00:00Z"),
    _doc(head_oid="A" * 40), _doc(head_oid="a" * 64), _doc(head_target=""), _doc(refs={"refs/heads/x": "zz"}),
    _doc(refs=[]), _doc(symrefs={"a": 1}), _doc(files={"HEAD": [21]}), _doc(files={"HEAD": [-1, "0" * 64]}),
    _doc(files={"HEAD": [1.5, "0" * 64]}), _doc(files={"../etc/passwd": [1, "0" * 64]}),
    _doc(files={"/abs": [1, "0" * 64]}), _doc(files={"HEAD": [1, "0" * 63]}), _doc(object_count=-1),
    _doc(pack_count=None), _doc(tool_version=3),
    b'{"schema": 1, "schema": 1}', b'{"schema": NaN}', b"[" * 100000 + b"]" * 100000,
], ids=lambda d: repr(d[:40]))
def test_corrupt_manifests(data: bytes) -> None:
    assert _corrupt(data) == ["manifestCorrupt"]


def test_cut_manifest_is_corrupt() -> None:
    data = sample().to_json()
    # the final LF is the only byte a cut may lose unseen (JSON whitespace); the tar member size tells
    assert Manifest.from_json(data[:-1])[0] == sample()
    for cut in (2, 10, len(data) // 2, len(data) - 1):
        assert _corrupt(data[:-cut]) == ["manifestCorrupt"]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    m, findings = Manifest.from_json(data)
    assert (m is None) == bool(findings)
    assert all(f.code == "manifestCorrupt" for f in findings)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_manifests_never_raise(data: st.DataObject) -> None:
    raw = bytearray(sample().to_json())
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    m, findings = Manifest.from_json(bytes(raw))
    if m is None:
        assert [f.code for f in findings] == ["manifestCorrupt"]
    else:
        assert findings == [] and Manifest.from_json(m.to_json())[0] == m


# --------------------------------------------------------------------------------------------------
# comparison, pure


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_compare_finds_exactly_the_dropped_and_changed_refs(data: st.DataObject) -> None:
    m = sample(n_refs=data.draw(st.integers(0, 30)))
    names = sorted(m.refs)
    dropped = set(data.draw(st.lists(st.sampled_from(names), unique=True)))
    changed = set(data.draw(st.lists(st.sampled_from(names), unique=True))) - dropped
    refs = {n: bytes.fromhex(o) for n, o in m.refs.items() if n not in dropped}
    for n in changed:
        refs[n] = bytes(20) if refs[n] != bytes(20) else b"\1" * 20
    files = {p: (size, digest) for p, (size, digest) in m.files.items()}
    findings = compare_manifest(m, refs=refs, head_target=m.head_target, files_seen=dict(files))
    got = {(f.code, f.path) for f in findings}
    want = {("manifestRefMissing", n) for n in dropped} | {("manifestRefMismatch", n) for n in changed}
    assert got == want
    assert len(findings) == len(want)


def test_compare_caps_findings_per_code() -> None:
    m = sample(n_refs=MAX_FINDINGS_PER_CODE + 30)
    findings = compare_manifest(m, refs={}, head_target="refs/heads/main", files_seen={})
    missing = [f for f in findings if f.code == "manifestRefMissing"]
    assert len(missing) == MAX_FINDINGS_PER_CODE + 1
    assert "31 more" in missing[-1].message and missing[-1].path == MANIFEST_PATH
    assert {f.code for f in findings} == {"manifestRefMissing", "manifestFileMissing"}


def test_compare_symrefs_and_snapcheck_dir() -> None:
    m = sample()
    m.symrefs = {"refs/remotes/origin/HEAD": "refs/heads/main"}
    m.refs["refs/remotes/origin/HEAD"] = "a" * 40
    refs = {n: bytes.fromhex(o) for n, o in m.refs.items()}
    files: dict[str, tuple[int, str | None]] = {p: (s, None) for p, (s, _) in m.files.items()}
    files[MANIFEST_PATH] = (100, None)  # the manifest itself is not an extra file
    assert compare_manifest(m, refs=refs, head_target="refs/heads/main", files_seen=files) == []
    del refs["refs/remotes/origin/HEAD"]  # a caller that lists no symrefs: not a missing ref
    assert compare_manifest(m, refs=refs, head_target="refs/heads/main", files_seen=files) == []
    refs["refs/remotes/origin/HEAD"] = b"\1" * 20
    assert [f.code for f in compare_manifest(m, refs=refs, head_target="refs/heads/main",
                                             files_seen=files)] == ["manifestRefMismatch"]


# --------------------------------------------------------------------------------------------------
# comparison with real, damaged snapshots


def walk_files(root: Path) -> Iterator[Path]:
    for p in sorted(root.rglob("*")):
        if p.is_file():
            yield p


def snapshot_view(root: Path) -> tuple[dict[str, bytes], str | None, dict[str, tuple[int, str | None]]]:
    """What a verifier sees in a snapshot directory, here taken from git itself."""
    out = git("for-each-ref", "--format=%(objectname) %(refname)", cwd=root)
    refs = {line.split(" ", 1)[1]: bytes.fromhex(line.split(" ", 1)[0]) for line in out.splitlines()}
    rc, head, _ = git_rc("symbolic-ref", "-q", "HEAD", cwd=root)
    files: dict[str, tuple[int, str | None]] = {
        p.relative_to(root).as_posix(): (p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in walk_files(root)
    }
    return refs, head.strip() if rc == 0 else None, files


@pytest.fixture
def snap(mirror_copy: Callable[[str], Path], tmp_path: Path) -> tuple[Manifest, Path]:
    """A capture of a mirror (packed refs plus a few loose ones), its manifest, and a private copy of
    the staged snapshot."""
    m = mirror_copy("gc_bitmaps")
    revs = git("rev-list", "--all", cwd=m).split()
    lines = "".join(f"create refs/pull/loose{i}/head {revs[i % len(revs)]}\n" for i in range(5))
    git("update-ref", "--stdin", cwd=m, input=lines.encode())
    with capture_mirror(m) as c:
        manifest = build_manifest(c, "test", created=CREATED)
        dest = tmp_path / "snapshot.git"
        shutil.copytree(c.staging, dest)  # real copies: safe to damage
    for p in walk_files(dest):
        p.chmod(0o644)
    return manifest, dest


def compare(manifest: Manifest, root: Path) -> set[tuple[str, str]]:
    refs, head, files = snapshot_view(root)
    return {(f.code, f.path) for f in compare_manifest(manifest, refs=refs, head_target=head, files_seen=files)}


def test_pristine_snapshot_matches(snap: tuple[Manifest, Path]) -> None:
    manifest, root = snap
    assert compare(manifest, root) == set()
    assert len(manifest.refs) == len(snapshot_view(root)[0]) > 10


def test_packed_refs_cut_at_a_record_boundary(snap: tuple[Manifest, Path]) -> None:
    """The case no syntax check can see: drop the last record of packed-refs (a tag with its peeled
    line).  git reads the file without a word; only the manifest knows the tag existed."""
    manifest, root = snap
    data = (root / "packed-refs").read_bytes()
    lines = data.splitlines(keepends=True)
    last = max(i for i, line in enumerate(lines) if not line.startswith(b"^"))
    dropped = lines[last].split(b" ", 1)[1].strip().decode()
    cut = b"".join(lines[:last])
    (root / "packed-refs").write_bytes(cut)
    parsed, findings = parse_packed_refs(cut, SHA1, "packed-refs")
    assert parsed.complete and not [f for f in findings if f.severity is Severity.ERROR]
    rc, _, err = git_rc("for-each-ref", cwd=root)
    assert rc == 0 and err == ""
    assert compare(manifest, root) == {
        ("manifestRefMissing", dropped),
        ("manifestFileSizeMismatch", "packed-refs"),
    }


def test_changed_extra_and_missing_refs(snap: tuple[Manifest, Path]) -> None:
    manifest, root = snap
    other = git("rev-parse", "refs/heads/dev", cwd=root).strip()
    (root / "refs/pull/loose0/head").write_text(other + "\n")  # same size, another commit
    (root / "refs/heads/extra").write_text(other + "\n")
    os.unlink(root / "refs/pull/loose1/head")
    got = compare(manifest, root)
    assert got == {
        ("manifestRefMismatch", "refs/pull/loose0/head"),
        ("manifestFileDigestMismatch", "refs/pull/loose0/head"),
        ("manifestExtraRef", "refs/heads/extra"),
        ("manifestExtraFile", "refs/heads/extra"),
        ("manifestRefMissing", "refs/pull/loose1/head"),
        ("manifestFileMissing", "refs/pull/loose1/head"),
    }


def test_head_and_object_files(snap: tuple[Manifest, Path]) -> None:
    manifest, root = snap
    git("symbolic-ref", "HEAD", "refs/heads/dev", cwd=root)
    pack = next((root / "objects/pack").glob("pack-*.pack"))
    idx = pack.with_suffix(".idx")
    graph = root / "objects/info/commit-graph"
    data = bytearray(idx.read_bytes())
    data[len(data) // 2] ^= 0x10  # flipped bit: same size
    idx.write_bytes(bytes(data))
    pack.write_bytes(pack.read_bytes()[:-1])  # cut by one byte
    graph.unlink()
    (root / "objects/pack/stray").write_bytes(b"x")
    rel = lambda p: p.relative_to(root).as_posix()  # noqa: E731
    assert compare(manifest, root) == {
        ("manifestHeadMismatch", "HEAD"),
        ("manifestFileSizeMismatch", "HEAD"),
        ("manifestFileDigestMismatch", rel(idx)),
        ("manifestFileSizeMismatch", rel(pack)),
        ("manifestFileMissing", rel(graph)),
        ("manifestExtraFile", "objects/pack/stray"),
    }
