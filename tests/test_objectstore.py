"""The object store (random access with delta resolution), whole-pack passes and loose objects.

Every configuration built by the real git must read back exactly as ``git cat-file`` shows it and
pass ``full`` with no finding; damage made to real files must give the exact code, and git must
fail on the same file.
"""

from __future__ import annotations

import hashlib
import shutil
import struct
import subprocess
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snapcheck.checks.objectstore import (
    LinkCollector,
    ObjectError,
    ObjectStore,
    PackSource,
    _apply_delta_py,
    _Bad,
    _delta_varint,
    apply_delta,
    scan_pack_links,
    verify_loose_objects,
    verify_pack_objects,
)
from snapcheck.gitformats.common import SHA1, SHA256, HashAlgo
from snapcheck.gitformats.idx import parse_idx
from snapcheck.gitformats.loose_object import check_loose_object, loose_object_type
from snapcheck.gitformats.objects import OBJ_BLOB, OBJ_COMMIT, OBJ_TAG, OBJ_TREE, object_header
from snapcheck.report import Severity

from gitrepos import GIT_ENV, all_objects, git, git_rc

CONFIGS = ["gc_bitmaps", "geometric_midx", "loose", "sha256", "cruft", "many_refs"]
TYPES = {"commit": OBJ_COMMIT, "tree": OBJ_TREE, "blob": OBJ_BLOB, "tag": OBJ_TAG}


# -- helpers (also used by test_graph.py) ------------------------------------------------------------
def repo_algo(repo: Path) -> HashAlgo:
    fmt = subprocess.run(["git", "rev-parse", "--show-object-format"], cwd=repo, capture_output=True,
                         env=GIT_ENV, text=True).stdout.strip()
    return SHA256 if fmt == "sha256" else SHA1


def load_packs(repo: Path, algo: HashAlgo) -> list[PackSource]:
    packs = []
    for p in sorted((repo / "objects/pack").glob("pack-*.pack")):
        idx_path = p.with_suffix(".idx")
        idx, fs = parse_idx(idx_path.read_bytes(), algo, f"objects/pack/{idx_path.name}", verify_checksum=True)
        assert idx is not None and not fs, fs
        packs.append(PackSource(f"objects/pack/{p.name}", p.read_bytes(), idx))
    return packs


def load_loose(repo: Path) -> dict[bytes, tuple[str, Callable[[], bytes]]]:
    loose: dict[bytes, tuple[str, Callable[[], bytes]]] = {}
    for d in sorted((repo / "objects").iterdir()):
        if len(d.name) == 2 and d.is_dir():
            for f in sorted(d.iterdir()):
                loose[bytes.fromhex(d.name + f.name)] = (f"objects/{d.name}/{f.name}", f.read_bytes)
    return loose


def roots_of(repo: Path) -> list[tuple[str, bytes]]:
    out = git("for-each-ref", "--format=%(refname) %(objectname)", cwd=repo)
    roots = [(line.split()[0], bytes.fromhex(line.split()[1])) for line in out.splitlines()]
    rc, head, _err = git_rc("rev-parse", "--verify", "-q", "HEAD", cwd=repo)
    if rc == 0:
        roots.append(("HEAD", bytes.fromhex(head.strip())))
    return roots


def open_store(repo: Path) -> tuple[ObjectStore, HashAlgo]:
    algo = repo_algo(repo)
    return ObjectStore(algo, load_packs(repo, algo), load_loose(repo)), algo


def codes(fs: list) -> set[str]:  # type: ignore[type-arg]
    return {f.code for f in fs}


def git_fsck_fails(repo: Path, *args: str) -> bool:
    rc, _o, _e = git_rc("fsck", "--no-dangling", "--no-progress", *args, cwd=repo)
    return rc != 0


# -- a hand-made pack writer, for shapes git never writes --------------------------------------------
def _entry(typ: int, size: int, extra: bytes, body: bytes) -> bytes:
    c = (typ << 4) | (size & 15)
    size >>= 4
    out = bytearray()
    while size:
        out.append(c | 0x80)
        c = size & 0x7F
        size >>= 7
    out.append(c)
    return bytes(out) + extra + body


def _ofs(dist: int) -> bytes:
    out = [dist & 0x7F]
    dist >>= 7
    while dist:
        dist -= 1
        out.append(0x80 | (dist & 0x7F))
        dist >>= 7
    return bytes(reversed(out))


def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def make_delta(src: bytes, dst: bytes) -> bytes:
    """A valid delta: copy all of *src* when it is a prefix of *dst*, then insert the rest."""
    out = bytearray(_varint(len(src)) + _varint(len(dst)))
    rest = dst
    if src and dst.startswith(src) and len(src) < 0x10000:
        out += bytes([0x80 | 0x10 | 0x20, len(src) & 0xFF, len(src) >> 8])
        rest = dst[len(src):]
    for i in range(0, len(rest), 127):
        chunk = rest[i:i + 127]
        out += bytes([len(chunk)]) + chunk
    return bytes(out)


def write_pack(entries: list[tuple[bytes, bytes]]) -> tuple[bytes, bytes]:
    """entries: (object id the idx gives it, raw entry bytes). Returns (pack, idx v2)."""
    pack = bytearray(b"PACK" + struct.pack(">II", 2, len(entries)))
    rows = []
    for oid, raw in entries:
        rows.append((oid, zlib.crc32(raw), len(pack)))
        pack += raw
    pack += hashlib.sha1(pack).digest()
    rows.sort()
    idx = bytearray(b"\xfftOc" + struct.pack(">I", 2))
    fan = [0] * 256
    for oid, _c, _o in rows:
        fan[oid[0]] += 1
    total = 0
    for i in range(256):
        total += fan[i]
        idx += struct.pack(">I", total)
    for oid, _c, _o in rows:
        idx += oid
    for _oid, c, _o in rows:
        idx += struct.pack(">I", c)
    for _oid, _c, o in rows:
        idx += struct.pack(">I", o)
    idx += pack[-20:]
    idx += hashlib.sha1(idx).digest()
    return bytes(pack), bytes(idx)


def oid_of(typ: int, data: bytes) -> bytes:
    return hashlib.sha1(object_header(typ, len(data)) + data).digest()


def plain(typ: int, data: bytes) -> tuple[bytes, bytes]:
    return oid_of(typ, data), _entry(typ, len(data), b"", zlib.compress(data))


def source(pack: bytes, idx: bytes, label: str = "objects/pack/pack-test.pack") -> PackSource:
    pidx, fs = parse_idx(idx, SHA1, label.replace(".pack", ".idx"), verify_checksum=True)
    assert pidx is not None and not [f for f in fs if f.severity is Severity.ERROR], fs
    return PackSource(label, pack, pidx)


# -- every configuration reads back as git shows it ---------------------------------------------------
@pytest.mark.parametrize("config", CONFIGS)
def test_store_reads_every_object_like_git(mirrors: Callable[[str], Path], config: str) -> None:
    repo = mirrors(config)
    store, algo = open_store(repo)
    objs = all_objects(repo)
    assert len(objs) > 50
    for oid, (typ, data) in objs.items():
        raw = bytes.fromhex(oid)
        assert store.contains(raw)
        assert store.read(raw) == (TYPES[typ], data)
        assert store.type_of(raw) == TYPES[typ]
        assert store.path_of(raw) is not None
    absent = b"\x42" * algo.rawsz
    assert not store.contains(absent) and store.type_of(absent) is None and store.path_of(absent) is None
    with pytest.raises(ObjectError) as e:
        store.read(absent)
    assert e.value.code == "objectMissing"


@pytest.mark.parametrize("config", CONFIGS)
def test_full_pass_is_clean(mirrors: Callable[[str], Path], config: str) -> None:
    repo = mirrors(config)
    algo = repo_algo(repo)
    counts = {t: 0 for t in TYPES.values()}
    for _oid, (typ, _d) in all_objects(repo).items():
        counts[TYPES[typ]] += 1
    seen = {t: 0 for t in TYPES.values()}
    links = LinkCollector(algo)
    for p in load_packs(repo, algo):
        stats, fs = verify_pack_objects(p, algo, check_format=True, links=links)
        assert fs == []
        assert stats.unreadable == 0 and stats.objects == p.idx.count
        assert sum(stats.by_type.values()) == stats.objects
        assert stats.types.count(0) == 0
        for t, n in stats.by_type.items():
            seen[t] += n
        st2, fs2 = scan_pack_links(p, algo, LinkCollector(algo))
        assert fs2 == [] and st2.types == stats.types and st2.deltas == stats.deltas
    lst, fs = verify_loose_objects(load_loose(repo), algo, check_format=True, links=links)
    assert fs == [] and lst.unreadable == 0
    for t, n in lst.by_type.items():
        seen[t] += n
    # duplicates across packs (geometric repacks may keep some) count once per copy
    assert all(seen[t] >= counts[t] for t in counts)
    assert not links.unparseable and links.unreadable == 0
    assert links.expect[OBJ_TREE] and links.expect[OBJ_BLOB] and links.expect[OBJ_COMMIT]


# -- loose objects ----------------------------------------------------------------------------------
def _loose_case(repo: Path, kind: str) -> tuple[Path, bytes]:
    """Damage one reachable loose blob of *repo* in the way *kind* names; returns (file, new bytes)."""
    blob = git("rev-parse", "HEAD:README", cwd=repo).strip()
    f = repo / "objects" / blob[:2] / blob[2:]
    data = f.read_bytes()
    if kind == "empty":
        new = b""
    elif kind == "cut1":
        new = data[:-1]
    elif kind == "half":
        new = data[: len(data) // 2]
    elif kind == "adler":
        new = data[:-1] + bytes([data[-1] ^ 0x01])
    elif kind == "zeropad":
        new = data + b"\x00" * 16
    elif kind == "other":
        new = zlib.compress(b"blob 6\x00other\n")
    elif kind == "badsize":
        new = zlib.compress(b"blob 06\x00hello\n")
    elif kind == "badtype":
        new = zlib.compress(b"blub 6\x00hello\n")
    elif kind == "short":
        new = zlib.compress(b"blob 7\x00hello\n")
    elif kind == "long":
        new = zlib.compress(b"blob 5\x00hello\n")
    elif kind == "notzlib":
        new = b"blob 6\x00hello\n"
    else:
        raise AssertionError(kind)
    f.chmod(0o644)
    f.write_bytes(new)
    return f, new


@pytest.mark.parametrize(("kind", "code"), [
    ("empty", "looseObjectEmpty"),
    ("cut1", "looseObjectTruncated"),
    ("half", "looseObjectTruncated"),
    ("adler", "looseObjectCorrupt"),
    ("zeropad", "looseObjectTrailingGarbage"),
    ("other", "looseObjectHashMismatch"),
    ("badsize", "looseObjectBadHeader"),
    ("badtype", "looseObjectUnknownType"),
    ("short", "looseObjectSizeMismatch"),
    ("long", "looseObjectSizeMismatch"),
    ("notzlib", "looseObjectCorrupt"),
])
def test_loose_object_damage(mirror_copy: Callable[[str], Path], kind: str, code: str) -> None:
    repo = mirror_copy("loose")
    f, data = _loose_case(repo, kind)
    path = f"objects/{f.parent.name}/{f.name}"
    obj, fs = check_loose_object(data, path, SHA1, verify_hash=True)
    assert obj is None
    assert [x.code for x in fs] == [code]
    assert fs[0].severity is Severity.ERROR and fs[0].path == path
    assert git_fsck_fails(repo)
    # the store refuses it too
    store, _algo = open_store(repo)
    with pytest.raises(ObjectError) as e:
        store.read(bytes.fromhex(f.parent.name + f.name))
    assert e.value.code == "looseObjectUnreadable"
    _st, vfs = verify_loose_objects(load_loose(repo), SHA1, check_format=True)
    assert codes(vfs) == {code}


def test_loose_object_good_and_helpers(mirrors: Callable[[str], Path]) -> None:
    repo = mirrors("loose")
    blob = git("rev-parse", "HEAD:README", cwd=repo).strip()
    data = (repo / "objects" / blob[:2] / blob[2:]).read_bytes()
    obj, fs = check_loose_object(data, f"objects/{blob[:2]}/{blob[2:]}", SHA1, verify_hash=True)
    assert fs == [] and obj == (OBJ_BLOB, b"hello\n")
    assert loose_object_type(data) == OBJ_BLOB
    assert loose_object_type(b"junk") is None
    # without the hash check any name will do; with it, a name that is no object id is flagged
    obj, fs = check_loose_object(data, "objects/zz/nothex", SHA1, verify_hash=False)
    assert fs == [] and obj is not None
    obj, fs = check_loose_object(data, "objects/zz/nothex", SHA1, verify_hash=True)
    assert obj is None and codes(fs) == {"looseObjectBadName"}
    # a stream that still inflates in small steps (many tiny deflate blocks) is read whole
    c = zlib.compressobj(level=0)
    big = b"blob 100000\x00" + bytes(range(256)) * 390 + b"x" * 160
    stream = c.compress(big) + c.flush()
    oid = hashlib.sha1(big).hexdigest()
    obj, fs = check_loose_object(stream, f"objects/{oid[:2]}/{oid[2:]}", SHA1, verify_hash=True)
    assert fs == [] and obj is not None and len(obj[1]) == 100000


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.binary(max_size=200).map(zlib.compress),
                 st.tuples(st.sampled_from([b"blob", b"tree", b"commit", b"tag", b"x", b""]),
                           st.sampled_from([b"0", b"5", b"05", b"-1", b"99999999999999999999", b""]),
                           st.binary(max_size=40)).map(lambda t: zlib.compress(t[0] + b" " + t[1] + b"\x00" + t[2]))))
def test_loose_parser_never_raises(data: bytes) -> None:
    obj, fs = check_loose_object(data, "objects/ab/" + "c" * 38, SHA1, verify_hash=True)
    assert (obj is None) == bool(fs)
    loose_object_type(data)


# -- packs: damage to real packs ------------------------------------------------------------------------
def _object_at(repo: Path, want: str) -> tuple[Path, int, int, str]:
    """(pack, offset, size in pack, oid) of the largest object of type *want* (non-delta if possible)."""
    pack = sorted((repo / "objects/pack").glob("pack-*.pack"))[0]
    out = git("verify-pack", "-v", str(pack.with_suffix(".idx")), cwd=repo)
    best: tuple[int, int, str, bool] | None = None
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 5 and len(f[0]) == 40 and f[1] == want:
            is_delta = len(f) > 5
            cand = (int(f[4]), int(f[3]), f[0], not is_delta)
            if best is None or (cand[3], cand[1]) > (best[3], best[1]):
                best = cand
    assert best is not None
    return pack, best[0], best[1], best[2]


@pytest.mark.parametrize("want", ["blob", "tree"])
def test_bit_flip_in_packed_object(mirror_copy: Callable[[str], Path], want: str) -> None:
    repo = mirror_copy("gc_bitmaps")
    pack, off, size_in_pack, oid = _object_at(repo, want)
    data = bytearray(pack.read_bytes())
    data[off + size_in_pack // 2 + 1] ^= 0x10
    pack.chmod(0o644)
    pack.write_bytes(bytes(data))
    algo = SHA1
    [src] = load_packs(repo, algo)
    stats, fs = verify_pack_objects(src, algo, check_format=True)
    got = codes(fs)
    assert "packCrcMismatch" in got
    assert got & {"packObjectCorrupt", "packObjectHashMismatch"}
    assert all(f.severity is Severity.ERROR for f in fs)
    assert any(oid in f.message for f in fs)
    assert stats.unreadable >= 1
    assert git_fsck_fails(repo)
    store = ObjectStore(algo, [src], {})
    try:
        typ, content = store.read(bytes.fromhex(oid))
    except ObjectError as e:
        assert e.code == "packObjectCorrupt"
    else:  # zlib did not notice: then the content cannot hash to the id
        assert oid_of(typ, content).hex() != oid


def test_clean_hand_made_pack_with_deltas() -> None:
    base = b"line\n" * 50
    v2 = base + b"more\n"
    v3 = v2 + b"even more\n"
    e_base = plain(OBJ_BLOB, base)
    raw_ref = _entry(7, len(make_delta(v2, v3)), oid_of(OBJ_BLOB, v2), zlib.compress(make_delta(v2, v3)))
    # pack order: base, v2 (OFS delta on base), v3 (REF delta on v2) and a tree and commit
    pack = bytearray(b"PACK" + struct.pack(">II", 2, 3))
    d2 = make_delta(base, v2)
    off_base = len(pack)
    pack += e_base[1]
    off_v2 = len(pack)
    raw_ofs = _entry(6, len(d2), _ofs(off_v2 - off_base), zlib.compress(d2))
    entries = [e_base, (oid_of(OBJ_BLOB, v2), raw_ofs), (oid_of(OBJ_BLOB, v3), raw_ref)]
    p, i = write_pack(entries)
    src = source(p, i)
    stats, fs = verify_pack_objects(src, SHA1, check_format=True)
    assert fs == [] and stats.deltas == 2 and stats.blobs == 3
    store = ObjectStore(SHA1, [src], {})
    assert store.read(oid_of(OBJ_BLOB, v3)) == (OBJ_BLOB, v3)
    assert store.type_of(oid_of(OBJ_BLOB, v3)) == OBJ_BLOB
    st2, fs2 = scan_pack_links(src, SHA1, LinkCollector(SHA1))
    assert fs2 == [] and st2.types.count(OBJ_BLOB) == 3


def test_ref_delta_base_missing() -> None:
    base = b"the base is not in this pack\n"
    dst = base + b"tail\n"
    d = make_delta(base, dst)
    raw = _entry(7, len(d), oid_of(OBJ_BLOB, base), zlib.compress(d))
    p, i = write_pack([(oid_of(OBJ_BLOB, dst), raw), plain(OBJ_BLOB, b"other\n")])
    src = source(p, i)
    stats, fs = verify_pack_objects(src, SHA1, check_format=True)
    assert codes(fs) == {"packDeltaBaseMissing"} and stats.unreadable == 1
    store = ObjectStore(SHA1, [src], {})
    with pytest.raises(ObjectError) as e:
        store.read(oid_of(OBJ_BLOB, dst))
    assert e.value.code == "packDeltaBaseMissing"
    with pytest.raises(ObjectError):
        store.type_of(oid_of(OBJ_BLOB, dst))
    _st, fs2 = scan_pack_links(src, SHA1, LinkCollector(SHA1))
    assert codes(fs2) == {"packDeltaBaseMissing"}


def test_ref_delta_cycle_and_bad_ofs() -> None:
    a, b = b"aaaa\n" * 10, b"bbbb\n" * 10
    da, db = make_delta(b, a), make_delta(a, b)
    ea = _entry(7, len(da), oid_of(OBJ_BLOB, b), zlib.compress(da))
    eb = _entry(7, len(db), oid_of(OBJ_BLOB, a), zlib.compress(db))
    p, i = write_pack([(oid_of(OBJ_BLOB, a), ea), (oid_of(OBJ_BLOB, b), eb)])
    src = source(p, i)
    stats, fs = verify_pack_objects(src, SHA1, check_format=False)
    assert codes(fs) == {"packObjectCorrupt"} and stats.unreadable == 2
    with pytest.raises(ObjectError) as e:
        ObjectStore(SHA1, [src], {}).read(oid_of(OBJ_BLOB, a))
    assert e.value.code == "packObjectCorrupt"
    # an OFS delta whose base offset is inside another object
    base = plain(OBJ_BLOB, b"base\n" * 20)
    d = make_delta(b"base\n" * 20, b"base\n" * 21)
    ofs = _entry(6, len(d), _ofs(len(base[1]) - 3), zlib.compress(d))
    p, i = write_pack([base, (oid_of(OBJ_BLOB, b"base\n" * 21), ofs)])
    stats, fs = verify_pack_objects(source(p, i), SHA1, check_format=False)
    assert codes(fs) == {"packDeltaBaseMissing"}


def test_junk_between_objects_and_wrong_delta_base_size() -> None:
    e1 = plain(OBJ_BLOB, b"one\n")
    e2 = plain(OBJ_BLOB, b"two\n")
    p, i = write_pack([(e1[0], e1[1] + b"JUNK"), e2])
    src = source(p, i)
    _st, fs = verify_pack_objects(src, SHA1, check_format=False)
    assert codes(fs) == {"packObjectCorrupt"} and "between the end of its zlib stream" in fs[0].message
    # random access and the standard pass do not care (git reads the object fine)
    assert ObjectStore(SHA1, [src], {}).read(e1[0]) == (OBJ_BLOB, b"one\n")
    _st, fs = scan_pack_links(src, SHA1, LinkCollector(SHA1))
    assert fs == []
    # a delta that expects a base of another size
    base = b"base\n" * 20
    d = make_delta(base + b"x", base + b"xy")
    p, i = write_pack([plain(OBJ_BLOB, base), (oid_of(OBJ_BLOB, base + b"xy"),
                                                _entry(7, len(d), oid_of(OBJ_BLOB, base), zlib.compress(d)))])
    _st, fs = verify_pack_objects(source(p, i), SHA1, check_format=False)
    assert codes(fs) == {"packObjectCorrupt"} and "base" in fs[0].message


def test_hash_mismatch_and_format_findings_from_pack() -> None:
    tree = b"040000 d\x00" + b"\x01" * 20  # zero-padded: a warning only
    commit = b"tree " + oid_of(OBJ_TREE, tree).hex().encode() + b"\ncommitter x\n\n"  # missing author: error
    entries = [plain(OBJ_TREE, tree), plain(OBJ_COMMIT, commit)]
    wrong = (b"\x00" * 19 + b"\x01", plain(OBJ_BLOB, b"content\n")[1])  # idx name that is not its hash
    p, i = write_pack([*entries, wrong])
    stats, fs = verify_pack_objects(source(p, i), SHA1, check_format=True)
    assert {(f.code, f.severity) for f in fs} == {
        ("zeroPaddedFilemode", Severity.WARNING), ("missingAuthor", Severity.ERROR),
        ("packObjectHashMismatch", Severity.ERROR)}
    assert stats.unreadable == 1
    _st, fs = verify_pack_objects(source(p, i), SHA1, check_format=False)
    assert codes(fs) == {"packObjectHashMismatch"}


def test_offset_problems() -> None:
    e1 = plain(OBJ_BLOB, b"one\n")
    p, i = write_pack([e1])
    # an idx whose offset points into the trailer
    bad = bytearray(i)
    off_pos = 8 + 1024 + 20 + 4
    struct.pack_into(">I", bad, off_pos, len(p) - 10)
    bad[-20:] = hashlib.sha1(bytes(bad[:-20])).digest()
    stats, fs = verify_pack_objects(source(p, bytes(bad)), SHA1, check_format=False)
    assert codes(fs) == {"packObjectOffsetInvalid"} and stats.unreadable == 1


# -- apply_delta ----------------------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=60), st.binary(max_size=60))
def test_apply_valid_delta(src: bytes, dst: bytes) -> None:
    d = make_delta(src, dst)
    if len(d) < 4:  # git: patch-delta.c refuses deltas shorter than DELTA_SIZE_MIN
        with pytest.raises(_Bad):
            apply_delta(src, d)
        return
    assert apply_delta(src, d) == dst
    _s, pos = _delta_varint(d, 0)
    _n, pos = _delta_varint(d, pos)
    assert _apply_delta_py(src, d, pos, len(dst)) == dst


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=40), st.binary(max_size=40), st.booleans(), st.integers(0, 80))
def test_apply_delta_rust_and_python_agree(src: bytes, tail: bytes, good_src: bool, dst_size: int) -> None:
    delta = _varint(len(src) if good_src else len(src) + 1) + _varint(dst_size) + tail
    try:
        rust = apply_delta(src, delta)
    except _Bad:
        rust = None
    try:
        s, pos = _delta_varint(delta, 0)
        _d, pos = _delta_varint(delta, pos)
        py = _apply_delta_py(src, delta, pos, dst_size) if s == len(src) and len(delta) >= 4 else None
    except _Bad:
        py = None
    assert rust == py


# -- arbitrary damage never raises anything but findings ------------------------------------------------
@pytest.fixture(scope="module")
def small_pack(mirrors: Callable[[str], Path]) -> tuple[bytes, bytes]:
    pack = sorted((mirrors("gc_bitmaps") / "objects/pack").glob("pack-*.pack"))[0]
    return pack.read_bytes(), pack.with_suffix(".idx").read_bytes()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.floats(0.0, 0.9999), st.integers(1, 255)), min_size=1, max_size=4),
       st.integers(0, 64))
def test_damaged_pack_never_raises(small_pack: tuple[bytes, bytes], flips: list[tuple[float, int]],
                                   cut: int) -> None:
    pack, idx = small_pack
    data = bytearray(pack)
    for where, mask in flips:
        k = 12 + int(where * (len(data) - 32))
        data[k] ^= mask
    if cut:
        data = data[: len(data) - 20 - cut] + data[len(data) - 20:]
    src = source(bytes(data), idx)
    stats, fs = verify_pack_objects(src, SHA1, check_format=True)
    assert all(f.code for f in fs)
    assert stats.objects == src.idx.count
    scan_pack_links(src, SHA1, LinkCollector(SHA1))
    store = ObjectStore(SHA1, [src], {})
    for k in range(src.idx.count):
        oid = src.idx.name(k)
        try:
            store.read(oid)
            store.type_of(oid)
        except ObjectError as e:
            assert e.code in ("packObjectCorrupt", "packDeltaBaseMissing")


def test_copy_of_packed_repo_reads_through_cache(mirror_copy: Callable[[str], Path]) -> None:
    """A tiny cache budget still gives the right content (bases are re-read, never stale)."""
    repo = mirror_copy("gc_bitmaps")
    algo = SHA1
    store = ObjectStore(algo, load_packs(repo, algo), {}, cache_bytes=256)
    objs = all_objects(repo)
    for oid, (typ, data) in objs.items():
        assert store.read(bytes.fromhex(oid)) == (TYPES[typ], data)
    shutil.rmtree(repo)


def test_pack_order_from_a_rev_table(mirrors: Callable[[str], Path]) -> None:
    """A .rev table saves the sort; a wrong one is ignored, never trusted."""
    repo = mirrors("gc_bitmaps")
    [src] = load_packs(repo, SHA1)
    rev = src.idx.offsets()
    order = sorted(range(src.idx.count), key=rev.__getitem__)
    rev_file = src.label.replace(".pack", ".rev")
    raw = (repo / rev_file).read_bytes()
    table = list(struct.unpack(f">{src.idx.count}I", raw[12:12 + 4 * src.idx.count]))
    assert table == order  # git's .rev is exactly this table
    base, fs = verify_pack_objects(src, SHA1, check_format=True)
    for rev_table in (table, list(reversed(table)), [0] * len(table), [*table[:-1], 10**9]):
        st, fs2 = verify_pack_objects(src, SHA1, check_format=True, pack_order=rev_table)
        assert fs2 == fs == [] and st.types == base.types
