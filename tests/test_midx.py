"""multi-pack-index: a real MIDX written by git (geometric repack), damaged the ways snapshots damage it."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snapcheck.gitformats import midx as mx
from snapcheck.gitformats.common import SHA1, SHA256, HashAlgo
from snapcheck.gitformats.idx import PackIndex, parse_idx
from snapcheck.report import Severity

from gitrepos import git_rc

Mirrors = Callable[[str], Path]
MIDX = "objects/pack/multi-pack-index"


def codes(findings: list) -> set[str]:  # type: ignore[type-arg]
    return {f.code for f in findings}


def parse(
    data: bytes, algo: HashAlgo | None = SHA1, verify: bool = True
) -> tuple[mx.MultiPackIndex | None, set[str]]:
    m, fs = mx.parse_midx(data, MIDX, algo, verify_checksum=verify)
    return m, codes(fs)


def rehash(data: bytes | bytearray) -> bytes:
    body = bytes(data[:-20])
    return body + SHA1.digest(body)


def indexes(repo: Path) -> dict[str, PackIndex]:
    out = {}
    for p in sorted((repo / "objects/pack").glob("*.idx")):
        idx, fs = parse_idx(p.read_bytes(), SHA1, p.name, verify_checksum=True)
        assert idx is not None and not fs
        out[p.name] = idx
    return out


@pytest.fixture
def real(mirrors: Mirrors) -> tuple[Path, bytes]:
    repo = mirrors("geometric_midx")
    return repo, (repo / MIDX).read_bytes()


# --- good --------------------------------------------------------------------------------------


def test_good_midx_parses_clean_and_matches_the_idx_files(real: tuple[Path, bytes]) -> None:
    repo, data = real
    m, fs = mx.parse_midx(data, MIDX, SHA1, verify_checksum=True)
    assert m is not None and fs == []
    assert m.algo == SHA1 and m.version == 1
    assert len(m.pack_names) == 2 and all(n.startswith("pack-") and n.endswith(".idx") for n in m.pack_names)
    assert m.pack_names == sorted(m.pack_names)
    assert m.checksum == data[-20:]
    assert m.has_rev_index
    idxs = indexes(repo)
    assert set(m.pack_names) == set(idxs)
    assert mx.check_midx_against_packs(m, MIDX, idxs, deep=True) == []
    assert mx.check_midx_against_packs(m, MIDX, idxs, deep=False) == []
    # every object: found at its position, and located where its pack's idx says
    union = set()
    for idx in idxs.values():
        union |= {idx.name(i) for i in range(idx.count)}
    assert m.count == len(union)
    offsets = m.offsets()
    for i in range(m.count):
        oid = m.name(i)
        assert m.find(oid) == i
        pack, off = m.location(i)
        assert off == offsets[i]
        idx = idxs[m.pack_names[pack]]
        j = idx.find(oid)
        assert j is not None and idx.offset(j) == off
    assert m.find(b"\x00" * 20) is None and m.find(b"\xff" * 19) is None
    # the header's hash version is used when no algorithm is given
    m2, fs = mx.parse_midx(data, MIDX, None, verify_checksum=True)
    assert m2 is not None and fs == [] and m2.algo == SHA1


def test_git_verifies_the_fixture(real: tuple[Path, bytes]) -> None:
    repo, _ = real
    rc, _, err = git_rc("multi-pack-index", "verify", cwd=repo)
    assert rc == 0, err


# --- damage ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "damage,want",
    [
        ("cut1", {"midxChunkOffset"}),
        ("half", {"midxChunkOffset"}),
        ("cut_trailer", {"midxChunkOffset"}),
        ("header_only", {"midxChunkTable"}),
        ("tiny", {"midxTooSmall"}),
        ("empty", {"midxTooSmall"}),
        ("append", {"midxChunkTableEnd"}),
    ],
)
def test_cut_or_extended(real: tuple[Path, bytes], damage: str, want: set[str]) -> None:
    _, data = real
    cut = {
        "cut1": data[:-1],
        "half": data[: len(data) // 2],
        "cut_trailer": data[:-20],
        "header_only": data[:40],
        "tiny": data[:20],
        "empty": b"",
        "append": data + b"\0" * 4,
    }[damage]
    for verify in (False, True):
        m, found = parse(cut, verify=verify)
        assert m is None and found == want


def test_zero_tail_and_flipped_bits(real: tuple[Path, bytes]) -> None:
    _, data = real
    m0, _ = parse(data)
    assert m0 is not None
    zero = data[:-16] + b"\0" * 16
    assert parse(zero)[1] == {"midxChecksum"}
    # a flipped bit in an object offset: the checksum tells
    b = bytearray(data)
    b[m0.chunks[mx.OOFF][0] + 8 * 5 + 7] ^= 0x04
    assert parse(bytes(b))[1] == {"midxChecksum"}
    # a flipped high bit in the table of contents: an offset out of the file
    b = bytearray(data)
    b[12 + 12 * 2 + 4] ^= 0x80
    assert parse(bytes(b))[1] == {"midxChunkOffset"}


def test_chunk_offset_out_of_bounds_and_git_agrees(mirror_copy: Mirrors) -> None:
    repo = mirror_copy("geometric_midx")
    p = repo / MIDX
    data = bytearray(p.read_bytes())
    cid, _ = struct.unpack_from(">4sQ", data, 12 + 12 * 1)
    struct.pack_into(">4sQ", data, 12 + 12 * 1, cid, len(data) + 4096)
    m, fs = mx.parse_midx(bytes(data), MIDX, SHA1, verify_checksum=True)
    assert m is None and codes(fs) == {"midxChunkOffset"}
    p.write_bytes(bytes(data))
    rc, _, err = git_rc("multi-pack-index", "verify", cwd=repo)
    assert rc != 0 and "improper chunk offset" in err
    assert err.splitlines()[0].split("error: ")[1] in fs[0].message


def test_header_rules(real: tuple[Path, bytes]) -> None:
    _, data = real
    assert parse(b"MIDY" + data[4:])[1] == {"midxSignature"}
    assert parse(data[:4] + b"\3" + data[5:])[1] == {"midxVersion"}
    assert parse(data, SHA256)[1] == {"midxHashVersion"}
    assert parse(data[:5] + b"\x09" + data[6:], None)[1] == {"midxHashVersion"}
    assert parse(rehash(data[:7] + b"\1" + data[8:]))[1] == {"midxBaseCount"}
    # version 2 is accepted (pack names may then be in any order)
    m, found = parse(rehash(data[:4] + b"\2" + data[5:]))
    assert m is not None and found == set() and m.version == 2


def test_chunk_rules(real: tuple[Path, bytes]) -> None:
    _, data = real
    n = data[6]
    toc = [struct.unpack_from(">4sQ", data, 12 + 12 * i) for i in range(n + 1)]
    ids = [t[0] for t in toc]

    def with_entry(i: int, cid: bytes, off: int) -> bytes:
        b = bytearray(data)
        struct.pack_into(">4sQ", b, 12 + 12 * i, cid, off)
        return rehash(b)

    for required in (b"PNAM", b"OIDF", b"OIDL", b"OOFF"):
        i = ids.index(required)
        assert parse(with_entry(i, b"ZZZZ", toc[i][1]))[1] == {"midxChunkMissing"}
    i = ids.index(b"OIDL")
    assert parse(with_entry(i, b"OIDL", toc[i][1] + 2))[1] == {"midxChunkTable"}  # misaligned
    assert parse(with_entry(i, b"OIDL", toc[i][1] + 4))[1] == {"midxChunkSize"}
    assert parse(with_entry(1, ids[0], toc[1][1]))[1] == {"midxChunkTable"}  # duplicate id


def test_semantic_damage_with_a_valid_checksum(real: tuple[Path, bytes]) -> None:
    _, data = real
    m, _ = parse(data)
    assert m is not None
    oidl, ooff, fan, pnam = (m.chunks[c][0] for c in (mx.OIDL, mx.OOFF, mx.OIDF, mx.PNAM))
    names = [m.name(i) for i in range(m.count)]
    # two OIDs of one fanout bucket swapped
    i = next(k for k in range(m.count - 1) if names[k][0] == names[k + 1][0])
    b = bytearray(data)
    b[oidl + 20 * i : oidl + 20 * (i + 2)] = names[i + 1] + names[i]
    assert parse(rehash(b))[1] == {"midxOidOrder"}
    assert parse(rehash(b), verify=False)[1] == set()
    # an OID moved to another bucket
    b = bytearray(data)
    b[oidl] ^= 0x80
    assert parse(rehash(b))[1] == {"midxFanout"}
    # a decreasing fanout
    b = bytearray(data)
    struct.pack_into(">I", b, fan + 4 * 3, 0xFFFF)
    assert parse(rehash(b))[1] == {"midxFanout"}
    # a pack int id past the pack list
    b = bytearray(data)
    struct.pack_into(">I", b, ooff + 8 * 7, 2)
    assert parse(rehash(b))[1] == {"midxPackIntId"}
    # pack names out of order (version 1) / not terminated / not an idx name
    first, second = m.pack_names
    b = bytearray(data)
    b[pnam : pnam + len(first) + len(second) + 2] = (second + "\0" + first + "\0").encode()
    assert parse(rehash(b))[1] == {"midxPackNames"}
    b = bytearray(data)
    b[pnam + len(first)] = ord("x")
    assert parse(rehash(b))[1] == {"midxPackNames"}
    b = bytearray(data)
    b[pnam + len(first) - 3 : pnam + len(first)] = b"pak"
    assert parse(rehash(b))[1] == {"midxPackNames"}
    b = bytearray(data)
    struct.pack_into(">I", b, 8, 3)  # three packs claimed, two named
    assert parse(rehash(b))[1] == {"midxPackNames"}
    # RIDX naming an object past the end
    b = bytearray(data)
    ridx = m.chunks[mx.RIDX][0]
    struct.pack_into(">I", b, ridx + 8, m.count)
    assert parse(rehash(b))[1] == {"midxRevIndex"}


def test_cross_check_against_packs(mirror_copy: Mirrors) -> None:
    repo = mirror_copy("geometric_midx")
    p = repo / MIDX
    data = p.read_bytes()
    m, _ = parse(data)
    assert m is not None
    idxs = indexes(repo)
    # a pack's idx missing from the snapshot
    one = dict(idxs)
    gone = m.pack_names[0]
    del one[gone]
    assert codes(mx.check_midx_against_packs(m, MIDX, one, deep=True)) == {"midxPackMissing"}
    # an object offset changed (and the checksum recomputed): only the deep check can see it
    b = bytearray(data)
    pos = 9
    pack, off = m.location(pos)
    struct.pack_into(">I", b, m.chunks[mx.OOFF][0] + 8 * pos + 4, off + 1)
    bad, fs = mx.parse_midx(rehash(b), MIDX, SHA1, verify_checksum=True)
    assert bad is not None and fs == []
    assert mx.check_midx_against_packs(bad, MIDX, idxs, deep=False) == []
    deep = mx.check_midx_against_packs(bad, MIDX, idxs, deep=True)
    assert codes(deep) == {"midxOffsetMismatch"} and m.name(pos).hex() in deep[0].message
    p.write_bytes(rehash(b))
    rc, _, err = git_rc("multi-pack-index", "verify", cwd=repo)
    assert rc != 0 and "incorrect object offset" in err
    # an object attributed to the other pack
    b = bytearray(data)
    struct.pack_into(">I", b, m.chunks[mx.OOFF][0] + 8 * pos, 1 - pack)
    bad, fs = mx.parse_midx(rehash(b), MIDX, SHA1, verify_checksum=True)
    assert bad is not None and fs == []
    assert codes(mx.check_midx_against_packs(bad, MIDX, idxs, deep=True)) == {"midxObjectNotInPack"}
    # every object attributed to the small pack: more than its idx holds, seen without the deep check
    b = bytearray(data)
    small = min(range(2), key=lambda k: idxs[m.pack_names[k]].count)
    for k in range(m.count):
        struct.pack_into(">I", b, m.chunks[mx.OOFF][0] + 8 * k, small)
    bad, _ = mx.parse_midx(rehash(b), MIDX, SHA1, verify_checksum=True)
    assert bad is not None
    assert codes(mx.check_midx_against_packs(bad, MIDX, idxs, deep=False)) == {"midxObjectNotInPack"}


def test_large_offsets() -> None:
    """A hand-built MIDX with a LOFF chunk (git writes one only for packs over 2 GiB)."""
    oids = sorted(SHA1.digest(bytes([i])) for i in range(5))
    name = b"pack-" + b"1" * 40 + b".idx\0"
    pnam = name + b"\0" * (-len(name) % 4)
    fan = bytearray(1024)
    for b in range(256):
        struct.pack_into(">I", fan, 4 * b, sum(1 for o in oids if o[0] <= b))
    oidl = b"".join(oids)
    big = 5 << 32
    ooff = b"".join(struct.pack(">II", 0, 0x80000000 if i == 2 else 12 + i) for i in range(5))
    loff = struct.pack(">Q", big)
    chunks = [(b"PNAM", pnam), (b"OIDF", bytes(fan)), (b"OIDL", oidl), (b"OOFF", ooff), (b"LOFF", loff)]
    header = b"MIDX" + bytes([1, 1, len(chunks), 0]) + struct.pack(">I", 1)
    off = 12 + 12 * (len(chunks) + 1)
    toc = b""
    for cid, body in chunks:
        toc += cid + struct.pack(">Q", off)
        off += len(body)
    toc += b"\0\0\0\0" + struct.pack(">Q", off)
    raw = rehash(header + toc + b"".join(body for _, body in chunks) + b"\0" * 20)
    m, found = parse(raw)
    assert m is not None and found == set()
    assert m.location(2) == (0, big) and m.location(3) == (0, 15)
    assert m.offsets()[2] == big
    # a large-offset reference past LOFF
    bad = raw.replace(struct.pack(">II", 0, 0x80000000), struct.pack(">II", 0, 0x80000001))
    assert parse(rehash(bad))[1] == {"midxLargeOffset"}


# --- properties --------------------------------------------------------------------------------


def test_every_truncation_point_is_rejected(real: tuple[Path, bytes]) -> None:
    _, data = real
    for n in range(len(data)):
        m, fs = mx.parse_midx(data[:n], MIDX, SHA1, verify_checksum=False)
        assert m is None and any(f.severity is Severity.ERROR for f in fs), n


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.sampled_from([None, SHA1, SHA256]), st.booleans())
def test_arbitrary_bytes_never_raise(data: bytes, algo: HashAlgo | None, prefix: bool) -> None:
    if prefix:
        data = b"MIDX\1\1" + data
    m, fs = mx.parse_midx(data, MIDX, algo, verify_checksum=True)
    assert m is not None or fs


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_random_corruption_of_the_real_midx(real: tuple[Path, bytes], data: st.DataObject) -> None:
    repo, raw0 = real
    raw = bytearray(raw0)
    pos = data.draw(st.integers(0, len(raw) - 1))
    raw[pos] = data.draw(st.integers(0, 255).filter(lambda v: v != raw0[pos]))
    m, fs = mx.parse_midx(bytes(raw), MIDX, SHA1, verify_checksum=True)
    assert any(f.severity is Severity.ERROR for f in fs)
    # with the checksum made right again, nothing raises, not even the accessors and cross-check
    m, fs = mx.parse_midx(rehash(raw), MIDX, SHA1, verify_checksum=True)
    if m is not None:
        for i in range(m.count):
            m.location(i)
            m.find(m.name(i))
        mx.check_midx_against_packs(m, MIDX, indexes(repo), deep=True)
