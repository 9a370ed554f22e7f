"""Reachability bitmaps: real pack and MIDX bitmaps written by git, decoded, cross-checked and damaged."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snapcheck.gitformats import bitmap as bm
from snapcheck.gitformats import midx as mx
from snapcheck.gitformats.common import SHA1, SHA256, HashAlgo
from snapcheck.gitformats.idx import PackIndex, parse_idx
from snapcheck.report import Severity

from gitrepos import git

Mirrors = Callable[[str], Path]


def codes(findings: list) -> set[str]:  # type: ignore[type-arg]
    return {f.code for f in findings}


def algo_of(name: str) -> HashAlgo:
    return SHA256 if name == "sha256" else SHA1


def rehash(data: bytes | bytearray, algo: HashAlgo = SHA1) -> bytes:
    body = bytes(data[: -algo.rawsz])
    return body + algo.digest(body)


def pack_bitmap(repo: Path, algo: HashAlgo) -> tuple[Path, bytes, PackIndex]:
    paths = sorted((repo / "objects/pack").glob("pack-*.bitmap"))
    assert len(paths) == 1
    p = paths[0]
    idx, fs = parse_idx(p.with_suffix(".idx").read_bytes(), algo, p.name, verify_checksum=True)
    assert idx is not None and not fs
    return p, p.read_bytes(), idx


def parse(
    data: bytes, count: int | None, algo: HashAlgo = SHA1, verify: bool = True
) -> tuple[bm.BitmapInfo | None, set[str]]:
    info, fs = bm.parse_bitmap(data, "x.bitmap", algo, object_count=count, verify_checksum=verify)
    return info, codes(fs)


def pack_order(idx: PackIndex) -> list[bytes]:
    """Object ids in pack order (the bit order of a pack bitmap)."""
    offs = idx.offsets()
    return [idx.name(i) for i in sorted(range(idx.count), key=lambda i: offs[i])]


def reachable(repo: Path, commit: bytes) -> set[bytes]:
    out = git("rev-list", "--objects", commit.hex(), cwd=repo)
    return {bytes.fromhex(line.split()[0]) for line in out.splitlines()}


def types(repo: Path) -> dict[bytes, str]:
    out = git("cat-file", "--batch-all-objects", "--batch-check=%(objectname) %(objecttype)", cwd=repo)
    return {bytes.fromhex(a): b for a, b in (line.split() for line in out.splitlines())}


def check_semantics(
    repo: Path, info: bm.BitmapInfo, data: bytes, order: list[bytes], position_name: Callable[[int], bytes]
) -> None:
    """Type bitmaps match the objects' types; every commit bitmap is exactly what git reaches."""
    kinds = types(repo)
    tb = info.type_bitmaps(data)
    for kind, bits in zip(("commit", "tree", "blob", "tag"), tb, strict=True):
        assert {order[k] for k in range(len(order)) if bits >> k & 1} == {
            o for o in order if kinds[o] == kind
        }
    assert len(list(info.commit_bitmaps(data))) == info.entry_count > 0
    for pos, bits in info.commit_bitmaps(data):
        commit = position_name(pos)
        assert kinds[commit] == "commit"
        have = {order[k] for k in range(len(order)) if bits >> k & 1}
        assert have == reachable(repo, commit) & set(order)


# --- good files --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gc_bitmaps", "sha256", "cruft"])
def test_pack_bitmaps_parse_clean_and_mean_what_git_means(mirrors: Mirrors, name: str) -> None:
    repo = mirrors(name)
    algo = algo_of(name)
    p, data, idx = pack_bitmap(repo, algo)
    info, fs = bm.parse_bitmap(data, p.name, algo, object_count=idx.count, verify_checksum=True)
    assert info is not None and fs == []
    assert info.version == 1 and info.flags & bm.OPT_FULL_DAG
    assert info.has_hash_cache and info.hash_cache_offset == len(data) - algo.rawsz - 4 * idx.count
    assert info.trailer == data[-algo.rawsz :]
    assert bm.check_bitmap_target(info, p.name, expected_checksum=idx.pack_checksum, target="pack") == []
    # without the object count the hash cache tells it
    info2, fs = bm.parse_bitmap(data, p.name, algo, object_count=None, verify_checksum=True)
    assert info2 is not None and fs == [] and info2.object_count == idx.count
    check_semantics(repo, info, data, pack_order(idx), idx.name)


def test_midx_bitmap_parses_clean_and_means_what_git_means(mirrors: Mirrors) -> None:
    repo = mirrors("geometric_midx")
    mdata = (repo / "objects/pack/multi-pack-index").read_bytes()
    m, fs = mx.parse_midx(mdata, "multi-pack-index", SHA1, verify_checksum=True)
    assert m is not None and not fs
    (p,) = sorted((repo / "objects/pack").glob("multi-pack-index-*.bitmap"))
    data = p.read_bytes()
    rel = f"objects/pack/{p.name}"
    info, fs = bm.parse_bitmap(data, rel, SHA1, object_count=m.count, verify_checksum=True)
    assert info is not None and fs == []
    assert bm.check_bitmap_target(info, rel, expected_checksum=m.checksum, target="midx") == []
    # bit k is the object at MIDX position RIDX[k] (pseudo-pack order)
    ridx_off = m.chunks[mx.RIDX][0]
    ridx = struct.unpack_from(f">{m.count}I", mdata, ridx_off)
    order = [m.name(r) for r in ridx]
    check_semantics(repo, info, data, order, m.name)


def test_lookup_table_written_by_git(mirror_copy: Mirrors) -> None:
    repo = mirror_copy("gc_bitmaps")
    git("-c", "pack.writeBitmapLookupTable=true", "repack", "-adb", "-q", cwd=repo)
    _p, data, idx = pack_bitmap(repo, SHA1)
    info, found = parse(data, idx.count)
    assert info is not None and found == set()
    assert (
        info.has_lookup_table and info.lookup_table_offset == info.hash_cache_offset - 16 * info.entry_count
    )
    info2, found = parse(data, None)
    assert info2 is not None and found == set() and info2.lookup_table_offset == info.lookup_table_offset
    check_semantics(repo, info, data, pack_order(idx), idx.name)
    lt = info.lookup_table_offset
    # triplets out of order
    b = bytearray(data)
    b[lt : lt + 32] = b[lt + 16 : lt + 32] + b[lt : lt + 16]
    assert parse(rehash(b), idx.count)[1] == {"bitmapLookupTable"}
    # a triplet pointing at no entry
    b = bytearray(data)
    struct.pack_into(">Q", b, lt + 4, 3)
    assert parse(rehash(b), idx.count)[1] == {"bitmapLookupTable"}
    # an XOR row past the table
    b = bytearray(data)
    struct.pack_into(">I", b, lt + 12, info.entry_count + 7)
    assert parse(rehash(b), idx.count)[1] == {"bitmapLookupTable"}


def test_pseudo_merge_section_is_measured_from_the_end(mirrors: Mirrors) -> None:
    """A pseudo-merge section built by the spec (git 2.39 cannot write one) is skipped exactly."""
    _, data, idx = pack_bitmap(mirrors("gc_bitmaps"), SHA1)
    info, _ = parse(data, idx.count)
    assert info is not None and info.hash_cache_offset is not None
    cut = info.hash_cache_offset
    ewah = struct.pack(">II", 64, 1) + struct.pack(">Q", 1 << 33 | 0) + struct.pack(">I", 0)  # empty-ish
    bitmaps = ewah + ewah
    lookup = struct.pack(">IQ", 0, cut)
    positions = struct.pack(">Q", cut)
    body = bitmaps + lookup + positions
    meta = struct.pack(">II", 1, 1) + struct.pack(">Q", len(bitmaps)) + struct.pack(">Q", len(body) + 24)
    raw = bytearray(data[:cut] + body + meta + data[cut:])
    struct.pack_into(">H", raw, 6, info.flags | bm.OPT_PSEUDO_MERGES)
    got, found = parse(rehash(raw), idx.count)
    assert got is not None and found == set() and got.has_pseudo_merges
    # its length field says more than the file holds
    bad = bytearray(raw)
    struct.pack_into(">Q", bad, cut + len(body) + 16, len(raw))
    assert parse(rehash(bad), idx.count)[1] == {"bitmapSize"}
    # without the object count the section cannot be located: accepted, not measured
    got, found = parse(rehash(raw), None)
    assert got is not None and found == set()


# --- targets -----------------------------------------------------------------------------------


def test_check_bitmap_target(mirrors: Mirrors) -> None:
    p, data, idx = pack_bitmap(mirrors("gc_bitmaps"), SHA1)
    info, _ = parse(data, idx.count)
    assert info is not None
    other = bytes(20)
    fs = bm.check_bitmap_target(info, p.name, expected_checksum=other, target="objects/pack/x.pack")
    assert codes(fs) == {"bitmapTarget"} and "does not check" in fs[0].message
    fs = bm.check_bitmap_target(
        info,
        f"multi-pack-index-{info.checksum.hex()}.bitmap",
        expected_checksum=other,
        target="objects/pack/multi-pack-index",
    )
    assert codes(fs) == {"bitmapStale"} and fs[0].severity is Severity.WARNING
    fs = bm.check_bitmap_target(
        info, f"multi-pack-index-{other.hex()}.bitmap", expected_checksum=other, target="midx"
    )
    assert codes(fs) == {"bitmapTarget"} and "checksum doesn't match in MIDX and bitmap" in fs[0].message


# --- damage ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gc_bitmaps", "sha256"])
@pytest.mark.parametrize("damage", ["cut1", "half", "cut_trailer", "cut_header", "append4"])
def test_cut_or_extended_is_a_size_error(mirrors: Mirrors, name: str, damage: str) -> None:
    algo = algo_of(name)
    _, data, idx = pack_bitmap(mirrors(name), algo)
    h = algo.rawsz
    cut = {
        "cut1": data[:-1],
        "half": data[: len(data) // 2],
        "cut_trailer": data[:-h],
        "cut_header": data[:20],
        "append4": data + b"\0" * 4,
    }[damage]
    for verify in (False, True):
        info, found = parse(cut, idx.count, algo, verify)
        assert info is None and found == {"bitmapSize"}, (damage, found)


def test_zero_tail_and_flipped_bits(mirrors: Mirrors) -> None:
    _, data, idx = pack_bitmap(mirrors("gc_bitmaps"), SHA1)
    info, _ = parse(data, idx.count)
    assert info is not None
    assert parse(data[:-16] + b"\0" * 16, idx.count)[1] == {"bitmapChecksum"}
    assert parse(data[:-16] + b"\0" * 16, idx.count, verify=False)[1] == set()  # needs the hash
    # a flipped bit in an entry's XOR offset
    b = bytearray(data)
    b[info.entry_offsets[0] + 4] ^= 0x08
    assert parse(bytes(b), idx.count)[1] == {"bitmapEntry"}
    # a flipped bit in the header's pack checksum: fine alone, wrong for its pack
    b = bytearray(data)
    b[12] ^= 0x01
    got, found = parse(bytes(b), idx.count)
    assert got is not None and found == {"bitmapChecksum"}
    assert codes(
        bm.check_bitmap_target(got, "x.bitmap", expected_checksum=idx.pack_checksum, target="pack")
    ) == {"bitmapTarget"}
    # a flipped bit in an EWAH's word count: the structure no longer adds up
    b = bytearray(data)
    b[info.type_offsets[1] + 4] ^= 0x10
    assert parse(bytes(b), idx.count, verify=False)[1] == {"bitmapSize"}


def test_header_and_entry_rules(mirrors: Mirrors) -> None:
    _, data, idx = pack_bitmap(mirrors("gc_bitmaps"), SHA1)
    info, _ = parse(data, idx.count)
    assert info is not None
    assert parse(b"BITX" + data[4:], idx.count)[1] == {"bitmapSignature"}
    assert parse(data[:4] + b"\0\2" + data[6:], idx.count)[1] == {"bitmapVersion"}
    assert parse(data[:6] + b"\0\4" + data[8:], idx.count)[1] == {"bitmapFlags"}
    b = bytearray(data)
    struct.pack_into(">H", b, 6, info.flags | 0x100)
    got, found = parse(rehash(b), idx.count)
    assert got is not None and found == {"bitmapUnknownFlags"}
    # entry names an object past the pack
    b = bytearray(data)
    struct.pack_into(">I", b, info.entry_offsets[2], idx.count)
    assert parse(rehash(b), idx.count)[1] == {"bitmapEntry"}
    # two entries for one commit
    b = bytearray(data)
    struct.pack_into(">I", b, info.entry_offsets[2], info.entry_positions[1])
    assert parse(rehash(b), idx.count)[1] == {"bitmapEntry"}
    # the last-RLW pointer of a type bitmap outside its words
    b = bytearray(data)
    _bit_size, nwords = struct.unpack_from(">II", data, info.type_offsets[0])
    struct.pack_into(">I", b, info.type_offsets[0] + 8 + 8 * nwords, nwords)
    assert parse(rehash(b), idx.count)[1] == {"bitmapEwah"}
    # more bits than objects
    b = bytearray(data)
    struct.pack_into(">I", b, info.type_offsets[0], idx.count + 64)
    assert parse(rehash(b), idx.count)[1] == {"bitmapEwah"}
    # the object count disagrees with the hash cache: the layout no longer adds up
    assert parse(data, idx.count + 1)[1] == {"bitmapSize"}


# --- EWAH --------------------------------------------------------------------------------------


def ewah_encode(bits: int, nbits: int) -> bytes:
    """A straightforward EWAH writer from the format description (one RLW per literal run)."""
    nw = (nbits + 63) // 64
    words = [(bits >> (64 * i)) & (2**64 - 1) for i in range(nw)]
    out: list[int] = []
    i = 0
    last_rlw = 0
    while i < nw:
        run_bit = 1 if words[i] == 2**64 - 1 else 0
        run = 0
        while (
            i < nw
            and words[i] in (0, 2**64 - 1)
            and (words[i] == 2**64 - 1) == bool(run_bit)
            and run < 2**32 - 1
        ):
            run += 1
            i += 1
        lits = []
        while i < nw and words[i] not in (0, 2**64 - 1) and len(lits) < 2**31 - 1:
            lits.append(words[i])
            i += 1
        last_rlw = len(out)
        out.append(run_bit | run << 1 | len(lits) << 33)
        out.extend(lits)
    if not out:
        out = [0]
    body = b"".join(struct.pack(">Q", w) for w in out)
    return struct.pack(">II", nbits, len(out)) + body + struct.pack(">I", last_rlw)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 2000).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, 2**n - 1 if n else 0))),
    st.binary(max_size=8),
)
def test_ewah_round_trip(nb: tuple[int, int], prefix: bytes) -> None:
    nbits, bits = nb
    enc = ewah_encode(bits, nbits)
    got, used = bm.ewah_decode(prefix + enc + b"tail", len(prefix))
    assert got == bits and used == len(enc)


def test_ewah_errors() -> None:
    enc = ewah_encode(0b1011 << 70, 80)
    with pytest.raises(bm.EwahError):
        bm.ewah_decode(enc[:-1], 0)
    with pytest.raises(bm.EwahError):
        bm.ewah_decode(enc[:5], 0)
    bad = bytearray(enc)
    struct.pack_into(">Q", bad, 8, 5 << 33)  # claims 5 literal words, 1 follows
    with pytest.raises(bm.EwahError):
        bm.ewah_decode(bytes(bad), 0)
    run = struct.pack(">II", 64, 1) + struct.pack(">Q", 1 | (10**6) << 1) + struct.pack(">I", 0)
    with pytest.raises(bm.EwahError):
        bm.ewah_decode(run, 0)  # a run far longer than its bit count
    with pytest.raises(bm.EwahError):
        bm.ewah_decode(enc, 0, max_bits=10)


# --- properties --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gc_bitmaps", "geometric_midx"])
def test_every_truncation_point_is_rejected(mirrors: Mirrors, name: str) -> None:
    repo = mirrors(name)
    if name == "geometric_midx":
        (p,) = sorted((repo / "objects/pack").glob("multi-pack-index-*.bitmap"))
        m, _ = mx.parse_midx(
            (repo / "objects/pack/multi-pack-index").read_bytes(), "m", SHA1, verify_checksum=False
        )
        assert m is not None
        data, count = p.read_bytes(), m.count
    else:
        _, data, idx = pack_bitmap(repo, SHA1)
        count = idx.count
    for n in range(len(data)):
        info, fs = bm.parse_bitmap(data[:n], "x.bitmap", SHA1, object_count=count, verify_checksum=False)
        assert info is None and any(f.severity is Severity.ERROR for f in fs), n


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=3000),
    st.sampled_from([SHA1, SHA256]),
    st.one_of(st.none(), st.integers(0, 500)),
    st.booleans(),
)
def test_arbitrary_bytes_never_raise(data: bytes, algo: HashAlgo, count: int | None, prefix: bool) -> None:
    if prefix:
        data = b"BITM\0\1" + data
    info, fs = bm.parse_bitmap(data, "x.bitmap", algo, object_count=count, verify_checksum=True)
    assert info is not None or fs


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_random_corruption_of_a_real_bitmap(mirrors: Mirrors, data: st.DataObject) -> None:
    _, raw0, idx = pack_bitmap(mirrors("gc_bitmaps"), SHA1)
    raw = bytearray(raw0)
    pos = data.draw(st.integers(0, len(raw) - 1))
    raw[pos] = data.draw(st.integers(0, 255).filter(lambda v: v != raw0[pos]))
    count = data.draw(st.sampled_from([idx.count, None]))
    info, fs = bm.parse_bitmap(bytes(raw), "x.bitmap", SHA1, object_count=count, verify_checksum=True)
    assert any(f.severity is Severity.ERROR for f in fs)
    info, fs = bm.parse_bitmap(rehash(raw), "x.bitmap", SHA1, object_count=count, verify_checksum=True)
    if info is not None:
        try:
            info.type_bitmaps(raw)
            for _ in info.commit_bitmaps(raw):
                pass
        except bm.EwahError:
            pass  # the documented failure of the decoders on corrupt words
