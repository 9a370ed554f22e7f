"""Objects too large to hold: loose objects inflated a window at a time; at ``full``, large packed
blobs hashed as they inflate (``_PackPass._stream_blob``), written to a mapped temp file when deltas
are built on them, and their deltas replayed from there (``_PackPass._blob_delta``); delta chains
that hold two contents, not their depth.

The windowed code must give the verdicts of one call over the whole input (property tests with tiny
windows on damaged streams; the wording may differ only for the double faults listed in
``_same_verdict_other_words``, and not at all for files no larger than a window), take the streaming
path only where it applies, find the same damage in a real pack, and never hold a large object's
content.
"""

from __future__ import annotations

import random
import subprocess
import sys
import tracemalloc
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_objectstore import _entry, _ofs, _varint, oid_of, source, write_pack

import snapcheck.checks.objectstore as objectstore
import snapcheck.gitformats.loose_object as loose_object
from snapcheck.checks.objectstore import (
    PackSource,
    _apply_delta_to,
    _Bad,
    _delta_header,
    _inflate,
    _inflate_to,
    _PackPass,
    _Spill,
    apply_delta,
    verify_loose_objects,
    verify_pack_objects,
)
from snapcheck.gitformats.common import SHA1
from snapcheck.gitformats.idx import parse_idx
from snapcheck.gitformats.loose_object import check_loose_object
from snapcheck.gitformats.objects import OBJ_BLOB

from archives import tar_dir, zstd
from gitrepos import GIT_ENV, git, git_rc

FIXTURES = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
BIG = 3 << 20  # the large blobs of the test repository (STREAM_MIN is lowered to 1 MiB below)


@contextmanager
def patched(module: Any, **values: int) -> Iterator[None]:
    """Module constants set for the duration (usable inside hypothesis examples, unlike monkeypatch)."""
    old = {k: getattr(module, k) for k in values}
    for k, v in values.items():
        setattr(module, k, v)
    try:
        yield
    finally:
        for k, v in old.items():
            setattr(module, k, v)


def _big_text(seed: int, size: int) -> bytes:
    """Compressible but not trivially so: numbered lines of pseudo-random words."""
    rnd = random.Random(seed)
    words = [f"w{i:x}" for i in range(4096)]
    out: list[str] = []
    n = 0
    k = 0
    while n < size:
        line = f"{k:08d} " + " ".join(rnd.choice(words) for _ in range(12)) + "\n"
        out.append(line)
        n += len(line)
        k += 1
    return "".join(out).encode()[:size]


@pytest.fixture(scope="module")
def big_repo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A work tree with a 3 MiB incompressible blob, a 3 MiB text blob, a second version of another
    text blob (so one large blob is a delta base) and small files; its mirror packed by git
    (``packed``) and a mirror whose objects are all loose (``loose``)."""
    base = tmp_path_factory.mktemp("big")
    work = base / "work"
    git("init", "-q", "-b", "main", str(work))
    rnd = random.Random(7)
    (work / "random.bin").write_bytes(rnd.randbytes(BIG))
    (work / "text.txt").write_bytes(_big_text(1, BIG))
    versioned = _big_text(2, BIG)
    (work / "versioned.txt").write_bytes(versioned)
    (work / "small.txt").write_text("hello\n")
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "big files", cwd=work)
    (work / "versioned.txt").write_bytes(versioned[:BIG // 2] + b"a changed line\n" + versioned[BIG // 2:])
    git("commit", "-q", "-am", "change one line", cwd=work)
    loose = base / "loose.git"
    git("clone", "-q", "--bare", "--no-local", str(work), str(loose))
    # a clone receives a pack: unpack it into loose objects (unpack-objects writes nothing already present)
    packs = sorted((loose / "objects/pack").glob("*.pack"))
    moved = [p.rename(base / p.name) for p in packs]
    for p in sorted((loose / "objects/pack").iterdir()):
        p.unlink()
    for p in moved:
        with p.open("rb") as f:
            subprocess.run(["git", "unpack-objects", "-q"], stdin=f, cwd=loose, env=GIT_ENV, check=True)
    packed = base / "packed.git"
    git("clone", "-q", "--mirror", "--no-local", str(work), str(packed))
    git("repack", "-adfq", cwd=packed)
    return {"work": work, "loose": loose, "packed": packed}


def _load_pack(repo: Path, data: bytes | None = None) -> PackSource:
    [p] = sorted((repo / "objects/pack").glob("pack-*.pack"))
    idx_path = p.with_suffix(".idx")
    idx, fs = parse_idx(idx_path.read_bytes(), SHA1, f"objects/pack/{idx_path.name}", verify_checksum=True)
    assert idx is not None and not fs, fs
    return PackSource(f"objects/pack/{p.name}", p.read_bytes() if data is None else data, idx)


def _verify_pack(repo: Path, data: bytes | None = None, *, stream_min: int) -> tuple[Any, list[tuple[str, str]]]:
    # deltas replayed in Python either way (the spilled path replays in Python; Rust words its refusals
    # differently), so that the two runs can be compared finding for finding
    with patched(objectstore, STREAM_MIN=stream_min, _RUST_DELTA_LIMIT=-1):
        stats, fs = verify_pack_objects(_load_pack(repo, data), SHA1, check_format=True)
    return stats, [(f.code, f.message) for f in fs]


def _loose_files(repo: Path) -> dict[str, Path]:
    return {f"objects/{f.parent.name}/{f.name}": f for f in sorted((repo / "objects").glob("??/*"))}


def _loose_check(data: bytes, path: str, window: int, chunk: int, **kw: Any) -> tuple[Any, list[tuple[str, str]]]:
    with patched(loose_object, _WINDOW=window, _CHUNK=chunk):
        obj, fs = check_loose_object(data, path, SHA1, verify_hash=True, **kw)
    return obj, [(f.code, f.message) for f in fs]


def _damage(raw: bytes, data: st.DataObject) -> bytes:
    b = bytearray(raw)
    how = data.draw(st.sampled_from(["flip", "cut", "append", "overwrite", "none"]))
    pos = data.draw(st.integers(0, max(0, len(b) - 1)))
    if how == "flip" and b:
        b[pos] ^= 1 << data.draw(st.integers(0, 7))
    elif how == "cut":
        del b[pos:]
    elif how == "append":
        b += data.draw(st.binary(min_size=1, max_size=64))
    elif how == "overwrite" and b:
        junk = data.draw(st.binary(min_size=1, max_size=16))
        b[pos:pos + len(junk)] = junk
    return bytes(b)


# -- loose objects: windows change nothing ----------------------------------------------------------
WHOLE = 1 << 40  # one window, one chunk: the whole input in one call, as before windows existed


def _damaged_small_loose(big_repo: dict[str, Path], data: st.DataObject) -> tuple[str, bytes]:
    """One of the repository's small loose objects (path, file bytes), damaged or not."""
    files = {p: f for p, f in _loose_files(big_repo["loose"]).items() if f.stat().st_size < 4096}
    path = data.draw(st.sampled_from(sorted(files)), label="object")
    return path, _damage(files[path].read_bytes(), data)


@settings(max_examples=150, deadline=None, suppress_health_check=FIXTURES)
@given(st.data())
def test_loose_windows_give_the_whole_call_verdict(big_repo: dict[str, Path], data: st.DataObject) -> None:
    path, raw = _damaged_small_loose(big_repo, data)
    window, chunk = data.draw(st.sampled_from([(1, 1), (2, 7), (7, 3), (64, 5), (4096, 1 << 20)]))
    want = _loose_check(raw, path, WHOLE, WHOLE)
    got = _loose_check(raw, path, window, chunk)
    if got != want:
        _same_verdict_other_words(got[1], want[1])
    # the content is kept unless the caller declines a blob's
    obj, fs = _loose_check(raw, path, window, chunk, keep_blob=False)
    assert fs == got[1]
    if obj is not None:
        assert obj == (want[0][0], b"" if want[0][0] == OBJ_BLOB else want[0][1])


def _same_verdict_other_words(got: list[tuple[str, str]], want: list[tuple[str, str]]) -> None:
    """How windows smaller than the file may change a rejection's wording, and only that: zlib stops
    at the output bound, but given the whole input it still reads on to damage that needs no more
    output (an end of block, the checksum), where a window may not hold those bytes yet.  So a
    stream both longer than declared and damaged after that point may be called either, and damage
    just after the 32 header bytes is a zlib error (``looseObjectCorrupt``, as git's header read
    reports it) with the whole input but may surface as a bad header or a later zlib error in
    windows.  Either way the object is rejected.  Files no larger than a window are not affected
    (``test_loose_default_window_changes_nothing``)."""
    assert got and want, (got, want)
    if any("content is longer than" in m for _c, m in got + want):
        return
    assert [c for c, _m in want] == ["looseObjectCorrupt"], (got, want)


@settings(max_examples=150, deadline=None, suppress_health_check=FIXTURES)
@given(st.data())
def test_loose_default_window_changes_nothing(big_repo: dict[str, Path], data: st.DataObject) -> None:
    path, raw = _damaged_small_loose(big_repo, data)
    assert len(raw) <= loose_object._WINDOW
    assert _loose_check(raw, path, loose_object._WINDOW, loose_object._CHUNK) == _loose_check(raw, path, WHOLE, WHOLE)


@pytest.mark.parametrize("name", ["random.bin", "text.txt"])
def test_large_loose_blob_in_windows(big_repo: dict[str, Path], name: str) -> None:
    oid = git("rev-parse", f"HEAD:{name}", cwd=big_repo["loose"]).strip()
    path = f"objects/{oid[:2]}/{oid[2:]}"
    raw = (big_repo["loose"] / path).read_bytes()
    want = _loose_check(raw, path, WHOLE, WHOLE)
    assert want[1] == [] and want[0][0] == OBJ_BLOB and len(want[0][1]) == BIG
    assert _loose_check(raw, path, 4096, 65536) == want
    for cut in (len(raw) // 3, len(raw) - 1):
        assert _loose_check(raw[:cut], path, 4096, 65536) == _loose_check(raw[:cut], path, WHOLE, WHOLE)
        assert _loose_check(raw[:cut], path, 4096, 65536)[1][0][0] == "looseObjectTruncated"
    garbage = _loose_check(raw + b"\0" * 5000, path, 4096, 65536)
    assert garbage == _loose_check(raw + b"\0" * 5000, path, WHOLE, WHOLE)
    assert garbage[1] == [("looseObjectTrailingGarbage", garbage[1][0][1])] and "5000 byte(s)" in garbage[1][0][1]


def test_large_loose_blob_is_not_held(big_repo: dict[str, Path]) -> None:
    """A loose blob is hashed as it inflates: what is allocated meanwhile is a few windows, not the
    object (allocation accounting, not time)."""
    loose = {}
    for path, f in _loose_files(big_repo["loose"]).items():
        loose[bytes.fromhex(f.parent.name + f.name)] = (path, f.read_bytes)
    blobs = {bytes.fromhex(git("rev-parse", f"HEAD:{n}", cwd=big_repo["loose"]).strip())
             for n in ("random.bin", "text.txt", "versioned.txt")}
    raw = {oid: load() for oid, (_p, load) in loose.items()}
    held = {oid: (p, (lambda b=raw[oid]: b)) for oid, (p, _l) in loose.items()}
    tracemalloc.start()
    try:
        with patched(loose_object, _WINDOW=64 << 10, _CHUNK=64 << 10):
            stats, fs = verify_loose_objects(held, SHA1, check_format=True)
        _cur, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert fs == [] and stats.objects == len(loose) and stats.by_type[OBJ_BLOB] >= len(blobs)
    assert peak < BIG // 8, peak
    # a blob read for its content keeps it
    oid = bytes.fromhex(git("rev-parse", "HEAD:random.bin", cwd=big_repo["loose"]).strip())
    obj, fs2 = check_loose_object(raw[oid], loose[oid][0], SHA1, verify_hash=True)
    assert fs2 == [] and obj is not None and len(obj[1]) == BIG


# -- packs: the streaming inflater gives _inflate's verdicts ----------------------------------------
@settings(max_examples=300, deadline=None)
@given(content=st.binary(max_size=3000), level=st.sampled_from([0, 1, 9]), data=st.data(),
       size_delta=st.sampled_from([0, 0, 0, -1, 1, -100]), trailer=st.binary(max_size=20),
       window=st.sampled_from([1, 3, 64, 1 << 20]), chunk=st.sampled_from([1, 5, 100, 1 << 20]))
def test_streaming_inflate_agrees_with_inflate(content: bytes, level: int, data: st.DataObject, size_delta: int,
                                               trailer: bytes, window: int, chunk: int) -> None:
    stream = _damage(zlib.compress(content, level), data) + trailer
    lead = b"\x01\x02\x03"
    mv = memoryview(lead + stream)
    size = max(0, len(content) + size_delta)
    try:
        want: Any = _inflate(mv, len(lead), len(mv), size, exact=True)
    except _Bad as e:
        want = (e.code, e.text)
    parts: list[bytes] = []
    calls = [0]

    def after() -> None:
        calls[0] += 1

    with patched(objectstore, _STREAM_WINDOW=window, _STREAM_CHUNK=chunk):
        try:
            left = _inflate_to(mv, len(lead), len(mv), size, parts.append, after)
            got: Any = (b"".join(parts), left)
        except _Bad as e:
            got = (e.code, e.text)
    if got != want:
        assert isinstance(got[0], str) and isinstance(want[0], str), (got, want)  # both rejected
        assert "more than the" in got[1] + want[1], (got, want)  # see _same_verdict_other_words
    assert all(len(p) <= chunk for p in parts)
    assert calls[0] <= len(stream) // window


# -- packs at full: which blobs stream, and the same findings either way ---------------------------
def _delta_facts(repo: Path) -> tuple[dict[str, tuple[str, int, int, int]], set[str], set[str]]:
    """oid -> (type, size, offset, size in pack) for every entry; the deltas; the oids deltas are built on."""
    [idx] = sorted((repo / "objects/pack").glob("pack-*.idx"))
    out = git("verify-pack", "-v", str(idx), cwd=repo)
    entries: dict[str, tuple[str, int, int, int]] = {}
    deltas: set[str] = set()
    bases: set[str] = set()
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 5 and len(f[0]) == 40 and f[1] in ("commit", "tree", "blob", "tag"):
            entries[f[0]] = (f[1], int(f[2]), int(f[4]), int(f[3]))
            if len(f) == 7:  # "<oid> <type> <size> <size in pack> <offset> <depth> <base>"
                deltas.add(f[0])
                bases.add(f[6])
    return entries, deltas, bases


def test_full_streams_exactly_the_large_whole_blobs(big_repo: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    repo = big_repo["packed"]
    entries, deltas, bases = _delta_facts(repo)
    streamed: dict[str, bool] = {}
    spilled: list[str] = []
    orig_stream, orig_delta = _PackPass._stream_blob, _PackPass._blob_delta

    def spy_stream(self: _PackPass, p: int, *, keep: bool = False) -> Any:
        streamed[self._oid(p).hex()] = keep
        return orig_stream(self, p, keep=keep)

    def spy_delta(self: _PackPass, c: int, base: Any, inflate: Any, visit: Any) -> Any:
        res = orig_delta(self, c, base, inflate, visit)
        if isinstance(base, _Spill):
            spilled.append(self._oid(c).hex())
        return res

    monkeypatch.setattr(_PackPass, "_stream_blob", spy_stream)
    monkeypatch.setattr(_PackPass, "_blob_delta", spy_delta)
    stats, fs = _verify_pack(repo, stream_min=1 << 20)
    assert fs == []
    # streamed: a blob of at least STREAM_MIN bytes that is a whole entry; kept (spilled to a temp file)
    # exactly when deltas are built on it, and those deltas are applied to the spilled copy
    expected = {oid: oid in bases for oid, (t, size, _o, _s) in entries.items()
                if t == "blob" and size >= 1 << 20 and oid not in deltas}
    assert streamed == expected and len(expected) >= 3 and any(expected.values())
    assert spilled and set(spilled) <= deltas
    streamed.clear()
    stats2, fs2 = _verify_pack(repo, stream_min=1 << 62)
    assert streamed == {} and fs2 == [] and stats2.types == stats.types and stats2.inflated_bytes == stats.inflated_bytes


@pytest.mark.parametrize("where", ["flip-start", "flip-middle", "flip-end", "cut-middle"])
@pytest.mark.parametrize("which", ["whole", "base", "delta"])
def test_damaged_large_blob_same_findings_streamed_or_not(big_repo: dict[str, Path], tmp_path: Path,
                                                          where: str, which: str) -> None:
    """A large whole blob, a large blob deltas are built on, a delta of it: damage anywhere in the
    entry gives the same findings streamed (and spilled) or held, and git refuses the pack too."""
    repo = big_repo["packed"]
    entries, deltas, bases = _delta_facts(repo)
    versions = [git("rev-parse", f"HEAD{rev}:versioned.txt", cwd=repo).strip() for rev in ("", "~1")]
    oid = {"whole": git("rev-parse", "HEAD:random.bin", cwd=repo).strip(),
           "base": next(v for v in versions if v in bases), "delta": next(v for v in versions if v in deltas)}[which]
    _t, _size, off, in_pack = entries[oid]
    [pack] = sorted((repo / "objects/pack").glob("pack-*.pack"))
    b = bytearray(pack.read_bytes())
    if where == "cut-middle":
        # the blob's stream loses its second half; what followed it moves up
        del b[off + in_pack // 2: off + in_pack]
    else:
        at = {"flip-start": off + 3, "flip-middle": off + in_pack // 2, "flip-end": off + in_pack - 2}[where]
        b[at] ^= 0x40
    damaged = bytes(b)
    _st1, streamed = _verify_pack(repo, damaged, stream_min=1 << 20)
    _st2, whole = _verify_pack(repo, damaged, stream_min=1 << 62)
    assert streamed == whole
    got = {c for c, _m in streamed}
    assert got & {"packObjectCorrupt", "packObjectHashMismatch", "packCrcMismatch", "packObjectOffsetInvalid"}
    assert any(oid in m for _c, m in streamed)
    # git refuses the same pack
    copy = tmp_path / "r.git"
    subprocess.run(["cp", "-a", str(repo), str(copy)], check=True)
    [cpack] = sorted((copy / "objects/pack").glob("pack-*.pack"))
    cpack.chmod(0o644)
    cpack.write_bytes(damaged)
    rc, _o, _e = git_rc("fsck", "--full", "--no-dangling", "--no-progress", cwd=copy)
    assert rc != 0


def test_large_packed_blob_is_not_held(big_repo: dict[str, Path]) -> None:
    src = _load_pack(big_repo["packed"])
    tracemalloc.start()
    try:
        with patched(objectstore, STREAM_MIN=1 << 20, _STREAM_WINDOW=64 << 10, _STREAM_CHUNK=64 << 10):
            _stats, fs = verify_pack_objects(src, SHA1, check_format=True, jobs=1)
        _cur, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert fs == []
    # no large blob is held: whole ones are hashed as they inflate, the delta base is written to a
    # temp file and its delta replayed from there (allocation accounting, not time)
    assert peak < BIG // 2, peak


# -- end to end ---------------------------------------------------------------------------------------
def test_cli_full_on_large_objects(big_repo: dict[str, Path], tmp_path: Path) -> None:
    archive = tmp_path / "loose.tar.zst"
    archive.write_bytes(zstd(tar_dir(big_repo["loose"])))
    for target in (big_repo["loose"], archive, big_repo["packed"]):
        for level in ("standard", "full"):
            r = subprocess.run([sys.executable, "-m", "snapcheck", "verify", str(target), "--level", level],
                               capture_output=True, timeout=300)
            assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
            assert b"SOUND" in r.stdout


def test_hash_of_streamed_blob_is_checked(big_repo: dict[str, Path]) -> None:
    """A streamed blob whose content does not hash to its idx name is found (same as unstreamed)."""
    repo = big_repo["packed"]
    oid = git("rev-parse", "HEAD:text.txt", cwd=repo).strip()
    src = _load_pack(repo)
    i = src.idx.find(bytes.fromhex(oid))
    assert i is not None
    # the pass compares with a copy of the idx names in which this one is zeros
    names = bytearray(src.idx.names_view())
    results = []
    for stream_min in (1 << 20, 1 << 62):
        pp = _PackPass(src, SHA1, full=True, check_format=True, links=None, jobs=1)
        pp.names = memoryview(bytes(names[:20 * i]) + b"\x00" * 20 + bytes(names[20 * i + 20:]))
        with patched(objectstore, STREAM_MIN=stream_min):
            _stats, fs = pp.run()
        results.append([(f.code, f.message) for f in fs])
    assert results[0] == results[1]
    assert [c for c, _m in results[0]] == ["packObjectHashMismatch"] and oid in results[0][0][1]


# -- delta chains: a chain of any depth holds two contents, not its depth ----------------------------
def _copy_all_but_last(src: bytes, last: bytes) -> bytes:
    """A delta giving ``src[:-1] + last``: copy ops of at most 64 KiB, then one insert."""
    out = bytearray(_varint(len(src)) + _varint(len(src)))
    n = len(src) - 1
    for off in range(0, n, 0x10000):
        size = min(0x10000, n - off)
        out += bytes([0x80 | 0x0F | 0x30]) + off.to_bytes(4, "little") + (size & 0xFFFF).to_bytes(2, "little")
    out += bytes([1]) + last
    return bytes(out)


def _chain_pack(depth: int, size: int, *, break_at: int | None = None) -> tuple[bytes, bytes]:
    """A blob and *depth* OFS deltas, each on the one before (a linear chain, as ``--depth`` lets git
    write).  *break_at*: that delta names a base one byte too short (it cannot apply)."""
    content = random.Random(3).randbytes(size)
    entries: list[tuple[bytes, bytes]] = [(oid_of(OBJ_BLOB, content), _entry(OBJ_BLOB, size, b"", zlib.compress(content, 1)))]
    offsets = [12]
    pos = 12 + len(entries[0][1])
    for k in range(depth):
        new = content[:-1] + bytes([k & 0xFF])
        delta = _copy_all_but_last(content, new[-1:])
        if k == break_at:
            delta = _varint(len(content) - 1) + delta[len(_varint(len(content))):]
        raw = _entry(6, len(delta), _ofs(pos - offsets[-1]), zlib.compress(delta, 1))
        entries.append((oid_of(OBJ_BLOB, new), raw))
        offsets.append(pos)
        pos += len(raw)
        content = new
    return write_pack(entries)


def test_linear_delta_chain_holds_two_contents() -> None:
    depth, size = 40, 512 << 10
    src = source(*_chain_pack(depth, size))
    tracemalloc.start()
    try:
        stats, fs = verify_pack_objects(src, SHA1, check_format=True, jobs=1)
        _cur, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert fs == [] and stats.blobs == depth + 1 and stats.deltas == depth
    # before: every base on the way down stayed on the stack (depth x size, 20 MiB here)
    assert peak < 8 * size, peak


def test_broken_link_in_a_chain_fails_what_is_built_on_it() -> None:
    depth = 12
    src = source(*_chain_pack(depth, 4096, break_at=5))
    stats, fs = verify_pack_objects(src, SHA1, check_format=True, jobs=1)
    assert [f.code for f in fs] == ["packObjectCorrupt"]
    assert "6 delta(s) built on it cannot be resolved either" in fs[0].message
    assert stats.blobs == 5 + 1 and stats.unreadable == depth - 5


# -- the streaming delta replay gives _apply_delta_py's verdicts -----------------------------------
@settings(max_examples=300, deadline=None)
@given(src=st.one_of(st.binary(max_size=600), st.integers(0, 20000).map(lambda n: random.Random(n).randbytes(n))),
       ops=st.lists(st.one_of(
    st.tuples(st.just("copy"), st.integers(0, 700), st.integers(0, 300)),
    st.tuples(st.just("copy"), st.integers(0, 20000), st.integers(3000, 12000)),  # handed on as views
    st.tuples(st.just("insert"), st.binary(min_size=1, max_size=130)),
    st.tuples(st.just("raw"), st.binary(min_size=1, max_size=6))), max_size=12),
    size_delta=st.sampled_from([0, 0, 0, -1, 1, 50]), chunk=st.sampled_from([1, 7, 64, 5000, 1 << 20]))
def test_streaming_delta_replay_agrees(src: bytes, ops: list[tuple[Any, ...]], size_delta: int, chunk: int) -> None:
    body = bytearray()
    out_len = 0
    for op in ops:
        if op[0] == "copy":
            off, size = op[1], op[2]
            body += bytes([0x80 | 0x01 | 0x02 | 0x10 | 0x20]) + off.to_bytes(2, "little") + size.to_bytes(2, "little")
            out_len += size or 0x10000
        elif op[0] == "insert":
            data = op[1][:127]
            body += bytes([len(data)]) + data
            out_len += len(data)
        else:
            body += op[1]  # anything, opcode 0 included
    dst_size = max(0, out_len + size_delta)
    delta = _varint(len(src)) + _varint(dst_size) + bytes(body)
    # the oracle: dulwich's Rust applier (it words its refusals otherwise: only the verdicts compare)
    try:
        rust: bytes | None = apply_delta(src, delta)
    except _Bad:
        rust = None
    parts: list[bytes] = []
    calls = [0]

    def every() -> None:
        calls[0] += 1

    def replay(piece: int, sink: Any, after: Any = None) -> Any:
        with patched(objectstore, _STREAM_CHUNK=piece):
            try:
                size, pos = _delta_header(delta, len(src))
                _apply_delta_to(src, delta, pos, size, sink, after)
            except _Bad as e:
                return (e.code, e.text)
        return None

    refused = replay(chunk, lambda b: parts.append(bytes(b)), every)
    got = refused if refused is not None else b"".join(parts)
    assert (refused is None) == (rust is not None), (refused, rust is None)
    if rust is not None:
        assert got == rust
    # the pieces change nothing: the same result, or the same refusal, in one piece
    whole: list[bytes] = []
    again = replay(1 << 30, lambda b: whole.append(bytes(b)))
    assert (again if again is not None else b"".join(whole)) == got
    assert calls[0] == len(parts) and all(len(p) < chunk + 4096 for p in parts)


# -- a tag of a large blob ------------------------------------------------------------------------------
def test_peeling_a_tag_of_a_large_blob_does_not_read_the_blob(big_repo: dict[str, Path], tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """packed-refs records what a tag peels to; checking that reads the tag, and only types its
    target.  A peel line naming another object is still found."""
    repo = tmp_path / "tagged.git"
    subprocess.run(["cp", "-a", str(big_repo["packed"]), str(repo)], check=True)
    blob = git("rev-parse", "HEAD:random.bin", cwd=repo).strip()
    env = {"GIT_COMMITTER_NAME": "T", "GIT_COMMITTER_EMAIL": "t@example.com"}
    subprocess.run(["git", "tag", "-a", "-m", "a blob", "blob-tag", blob], cwd=repo, env={**GIT_ENV, **env}, check=True)
    git("pack-refs", "--all", cwd=repo)
    packed_refs = (repo / "packed-refs").read_text()
    assert f"^{blob}" in packed_refs
    reads: list[str] = []
    orig = objectstore.ObjectStore.read

    def spy(self: objectstore.ObjectStore, oid: bytes) -> Any:
        reads.append(oid.hex())
        return orig(self, oid)

    monkeypatch.setattr(objectstore.ObjectStore, "read", spy)
    import snapcheck

    report = snapcheck.verify(str(repo))
    assert report.exit_code == 0, [f.message for f in report.findings]
    assert blob not in reads and reads  # the tag was read, the blob it names was not
    # a peel line that names another object is a finding
    other = git("rev-parse", "HEAD", cwd=repo).strip()
    (repo / "packed-refs").write_text(packed_refs.replace(f"^{blob}", f"^{other}"))
    report = snapcheck.verify(str(repo))
    assert "peeledMismatch" in {f.code for f in report.findings}
    assert blob not in reads


def test_spill_that_cannot_be_written_is_an_environment_error(big_repo: dict[str, Path], tmp_path: Path) -> None:
    """A large base that deltas are built on needs a temp file: where none can be made, the run stops
    with a SourceError naming the place (exit 3 from the CLI), not a traceback or a finding."""
    from snapcheck.errors import SourceError

    missing = tmp_path / "no-such-dir"
    with patched(objectstore, STREAM_MIN=1 << 20), pytest.raises(SourceError) as e:
        verify_pack_objects(_load_pack(big_repo["packed"]), SHA1, check_format=True, jobs=1,
                            spool_dir=str(missing))
    assert str(missing) in str(e.value) and "--spool-dir" in str(e.value)
