"""Pack stream checker: real packs written by git, fed whole, in pieces, or header + trailer only;
every kind of damage with its exact finding codes, and what real git says about it."""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapcheck.gitformats.common import SHA1, SHA256, HashAlgo
from snapcheck.gitformats.idx import check_idx_against_pack, parse_idx
from snapcheck.gitformats.pack import PackStreamChecker, PackSummary, parse_pack_name
from snapcheck.report import Finding, Severity

from gitrepos import git_rc

Mirrors = Callable[[str], Path]
PACK_CONFIGS = ["gc_bitmaps", "geometric_midx", "sha256", "cruft"]


def pack_files(mirror: Path) -> list[Path]:
    return sorted((mirror / "objects/pack").glob("pack-*.pack"))


def rel(path: Path) -> str:
    return f"objects/pack/{path.name}"


def check(
    data: bytes, name: str, algo: HashAlgo | None = None, *, hashing: bool = True, chunk: int | None = None
) -> tuple[PackSummary, list[Finding]]:
    c = PackStreamChecker(name, algo, hash_content=hashing)
    if chunk is None:
        c.feed(data)
    else:
        for i in range(0, len(data), chunk):
            c.feed(memoryview(data)[i : i + chunk])
    return c.finish()


def check_quick(data: bytes, name: str, algo: HashAlgo | None = None) -> tuple[PackSummary, list[Finding]]:
    """What a directory source does at level quick: header, skip, trailer."""
    c = PackStreamChecker(name, algo, hash_content=False)
    h = c.algo.rawsz
    size = len(data)
    head = min(12, size)
    c.feed(data[:head])
    tail = max(head, size - h)
    c.skip(tail - head)
    c.feed(data[tail:])
    return c.finish()


def codes(fs: list[Finding]) -> list[str]:
    return sorted(f.code for f in fs)


def errors(fs: list[Finding]) -> list[str]:
    return sorted(f.code for f in fs if f.severity is Severity.ERROR)


# --- names ---------------------------------------------------------------------------------------


def test_parse_pack_name() -> None:
    hex1 = "99a5edd0916e50a6bfd326201d78a0cf9734e073"
    hex2 = "82d17f31f9a62ff6ec48a01df34f0af2448c9af86e4caeaa65a7adff4ac794e5"
    assert parse_pack_name(f"objects/pack/pack-{hex1}.pack") == (bytes.fromhex(hex1), SHA1)
    assert parse_pack_name(f"pack-{hex2}.idx") == (bytes.fromhex(hex2), SHA256)
    assert parse_pack_name(f"x/objects/pack/pack-{hex1}.mtimes") == (bytes.fromhex(hex1), SHA1)
    for bad in (
        f"pack-{hex1.upper()}.pack",
        f"pack-{hex1[:-1]}.pack",
        f"pack-{hex1}0.pack",
        f"tmp_pack_{hex1}",
        f"pack-{hex1}",
        "pack-.pack",
        f"xpack-{hex1}.pack",
        "",
    ):
        assert parse_pack_name(bad) == (None, None), bad


# --- sound packs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("config", PACK_CONFIGS)
def test_real_packs_are_sound(mirrors: Mirrors, config: str) -> None:
    packs = pack_files(mirrors(config))
    assert packs
    for path in packs:
        data = path.read_bytes()
        name_hash, algo = parse_pack_name(path.name)
        assert algo is not None and name_hash is not None
        idx, _ = parse_idx(path.with_suffix(".idx").read_bytes(), algo, "i", verify_checksum=False)
        assert idx is not None
        for chunk in (None, 1, 7, 4096):
            if chunk == 1 and len(data) > 20000:
                continue
            for given_algo in (None, algo):
                s, fs = check(data, rel(path), given_algo, chunk=chunk)
                assert fs == []
                assert s == PackSummary(2, idx.count, name_hash, len(data), name_hash, True)
        s, fs = check_quick(data, rel(path))
        assert fs == []
        assert s == PackSummary(2, idx.count, name_hash, len(data), name_hash, False)
        assert (
            check_idx_against_pack(
                idx, "i", pack_path=rel(path), pack_count=s.count, pack_trailer=s.trailer, pack_size=s.size
            )
            == []
        )


def test_empty_pack_and_version_3(tmp_path: Path) -> None:
    """A pack of zero objects is valid; so is version 3 (git reads both 2 and 3)."""
    body = b"PACK" + struct.pack(">II", 2, 0)
    trailer = SHA1.digest(body)
    name = f"objects/pack/pack-{trailer.hex()}.pack"
    s, fs = check(body + trailer, name)
    assert fs == [] and s.count == 0 and s.hash_verified
    body3 = b"PACK" + struct.pack(">II", 3, 0)
    t3 = SHA1.digest(body3)
    s, fs = check(body3 + t3, f"objects/pack/pack-{t3.hex()}.pack")
    assert fs == [] and s.version == 3


# --- damage --------------------------------------------------------------------------------------


def _damaged(data: bytes, h: int) -> dict[str, tuple[bytes, list[str], list[str]]]:
    """name -> (bytes, codes when hashing, codes at quick (header + trailer only))."""
    mid = len(data) // 2
    out: dict[str, tuple[bytes, list[str], list[str]]] = {}

    def flip(pos: int, mask: int = 1) -> bytes:
        d = bytearray(data)
        d[pos] ^= mask
        return bytes(d)

    both = ["packChecksumMismatch", "packNameMismatch"]
    out["cut1"] = (data[:-1], both, ["packNameMismatch"])
    out["cut_half"] = (data[:mid], both, ["packNameMismatch"])
    out["cut_to_header"] = (data[:12], ["packTooShort"], ["packTooShort"])
    out["cut_in_header"] = (data[:7], ["packTooShort"], ["packTooShort"])
    out["cut_short_of_trailer"] = (data[: 12 + h - 1], ["packTooShort"], ["packTooShort"])
    out["empty"] = (b"", ["packTooShort"], ["packTooShort"])
    out["pad1"] = (data + b"\0", both, ["packNameMismatch"])
    out["pad_block"] = (data + bytes(512), both, ["packNameMismatch"])
    out["zeroed_tail"] = (data[:mid] + bytes(len(data) - mid), both, ["packNameMismatch"])
    out["flip_signature"] = (flip(0), ["packBadSignature", "packChecksumMismatch"], ["packBadSignature"])
    out["version_6"] = (
        flip(7, 4),
        ["packChecksumMismatch", "packUnsupportedVersion"],
        ["packUnsupportedVersion"],
    )
    out["count_high_bit"] = (
        flip(8, 0x80),
        ["packChecksumMismatch", "packCountImplausible"],
        ["packCountImplausible"],
    )
    out["count_low_bit"] = (flip(11), ["packChecksumMismatch"], [])
    out["flip_middle"] = (flip(mid, 0x20), ["packChecksumMismatch"], [])
    out["flip_trailer"] = (flip(len(data) - 3), both, ["packNameMismatch"])
    out["all_zero"] = (
        bytes(len(data)),
        ["packBadSignature", *both],
        ["packBadSignature", "packNameMismatch"],
    )
    return out


@pytest.mark.parametrize("config", ["gc_bitmaps", "sha256"])
def test_damage_gives_exact_codes(mirrors: Mirrors, config: str) -> None:
    path = pack_files(mirrors(config))[0]
    data = path.read_bytes()
    _, algo = parse_pack_name(path.name)
    assert algo is not None
    idx, _ = parse_idx(path.with_suffix(".idx").read_bytes(), algo, "i", verify_checksum=True)
    assert idx is not None
    for name, (bad, want_hash, want_quick) in _damaged(data, algo.rawsz).items():
        s, fs = check(bad, rel(path))
        assert codes(fs) == want_hash, name
        assert not s.hash_verified
        s, fs = check(bad, rel(path), chunk=1000)
        assert codes(fs) == want_hash, name
        sq, fq = check_quick(bad, rel(path))
        assert codes(fq) == want_quick, name
        # with its index, every damaged pack is rejected even at quick (no hashing)
        cross = check_idx_against_pack(
            idx, "i", pack_path=rel(path), pack_count=sq.count, pack_trailer=sq.trailer, pack_size=sq.size
        )
        if name not in ("count_low_bit", "flip_middle"):
            assert errors(fq) or cross, name
        if name == "count_low_bit":
            assert [f.code for f in cross] == ["idxPackCountMismatch"]


def test_damage_severities(mirrors: Mirrors) -> None:
    path = pack_files(mirrors("gc_bitmaps"))[0]
    data = path.read_bytes()
    _, fs = check(data[:-1], rel(path))
    sev = {f.code: f.severity for f in fs}
    assert sev == {"packChecksumMismatch": Severity.ERROR, "packNameMismatch": Severity.WARNING}
    assert any(f"git fsck: error: {rel(path)} pack checksum mismatch" in f.message for f in fs)


def test_renamed_intact_pack_is_only_a_notice(mirrors: Mirrors) -> None:
    """A pack named by git < 1.9 (name != trailer) with intact content: a warning, hash verified."""
    path = pack_files(mirrors("gc_bitmaps"))[0]
    data = path.read_bytes()
    other = "0" * 40
    s, fs = check(data, f"objects/pack/pack-{other}.pack")
    assert s.hash_verified and codes(fs) == ["packNameMismatch"]
    assert fs[0].severity is Severity.WARNING and "older than 1.9" in fs[0].message
    s, fs = check(data, f"objects/pack/pack-{'0' * 64}.pack", SHA1)
    assert s.hash_verified and codes(fs) == ["packNameMismatch"] and "64-digit" in fs[0].message
    s, fs = check(data, "objects/pack/weird.pack")
    assert s.hash_verified and codes(fs) == ["packBadName"] and s.name_hash is None


def test_sha256_pack_needs_its_algorithm(mirrors: Mirrors) -> None:
    path = pack_files(mirrors("sha256"))[0]
    data = path.read_bytes()
    s, fs = check(data, "objects/pack/unnamed.pack", SHA256)
    assert codes(fs) == ["packBadName"] and s.hash_verified
    # told the wrong algorithm, the trailer cannot verify
    s, fs = check(data, "objects/pack/unnamed.pack", SHA1)
    assert "packChecksumMismatch" in codes(fs)


@pytest.mark.parametrize(
    "damage",
    [
        "cut1",
        "cut_half",
        "pad1",
        "flip_middle",
        "flip_trailer",
        "count_low_bit",
        "version_6",
        "flip_signature",
    ],
)
def test_git_rejects_the_same_damage(mirror_copy: Mirrors, damage: str) -> None:
    m = mirror_copy("gc_bitmaps")
    path = pack_files(m)[0]
    data = path.read_bytes()
    bad, want, _ = _damaged(data, 20)[damage]
    path.write_bytes(bad)
    s, fs = check(bad, rel(path))
    assert codes(fs) == want
    rc, _, err = git_rc("fsck", "--no-dangling", cwd=m)
    assert rc != 0, err
    git_words = {
        "cut1": "does not match index",
        "cut_half": "does not match index",
        "pad1": "does not match index",
        "flip_trailer": "does not match index",
        "flip_middle": "pack checksum mismatch",
        "count_low_bit": "claims to have",
        "version_6": "is version 6 and not supported",
        "flip_signature": "is not a GIT packfile",
    }[damage]
    assert git_words in err, err
    ours = " ".join(f.message for f in fs)
    idx, _ = parse_idx(path.with_suffix(".idx").read_bytes(), SHA1, "i", verify_checksum=True)
    assert idx is not None
    ours += " ".join(
        f.message
        for f in check_idx_against_pack(
            idx, "i", pack_path=rel(path), pack_count=s.count, pack_trailer=s.trailer, pack_size=s.size
        )
    )
    assert git_words in ours, ours


def test_misuse_raises() -> None:
    c = PackStreamChecker("objects/pack/x.pack", SHA1, hash_content=True)
    c.feed(b"PACK" + bytes(8))
    with pytest.raises(ValueError):
        c.skip(10)
    c = PackStreamChecker("objects/pack/x.pack", SHA1, hash_content=False)
    c.feed(b"PACK")
    with pytest.raises(ValueError):
        c.skip(10)
    c.skip(0)
    c.feed(bytes(8))
    c.skip(100)
    c.feed(b"short")
    with pytest.raises(ValueError):
        c.finish()
    c = PackStreamChecker("objects/pack/x.pack", SHA1, hash_content=False)
    c.feed(b"PACK" + bytes(8) + bytes(20))
    first = c.finish()
    assert c.finish() is first
    with pytest.raises(ValueError):
        c.feed(b"x")


# --- properties ----------------------------------------------------------------------------------


@pytest.mark.parametrize("config", ["geometric_midx", "sha256"])
def test_every_truncation_is_rejected(mirrors: Mirrors, config: str) -> None:
    """Hashing: every cut is an error on its own.  Quick: every cut is an error with the idx cross-check."""
    path = pack_files(mirrors(config))[0]
    data = path.read_bytes()
    _, algo = parse_pack_name(path.name)
    assert algo is not None
    idx, _ = parse_idx(path.with_suffix(".idx").read_bytes(), algo, "i", verify_checksum=True)
    assert idx is not None
    name = rel(path)
    for cut in range(len(data)):
        d = data[:cut]
        _, fs = check(d, name)
        assert errors(fs), cut
        s, fq = check_quick(d, name)
        cross = check_idx_against_pack(
            idx, "i", pack_path=name, pack_count=s.count, pack_trailer=s.trailer, pack_size=s.size
        )
        assert errors(fq) or cross, cut


@pytest.fixture(scope="module")
def real_pack(mirrors: Mirrors) -> tuple[str, bytes]:
    """A real pack for the property tests (module scope: hypothesis re-runs the test body, not the fixture)."""
    p = pack_files(mirrors("gc_bitmaps"))[0]
    return rel(p), p.read_bytes()


@settings(max_examples=200, deadline=None)
@given(
    blob=st.binary(max_size=300),
    algo=st.sampled_from([None, SHA1, SHA256]),
    hashing=st.booleans(),
    name=st.sampled_from(
        [
            "objects/pack/x.pack",
            "objects/pack/pack-" + "ab" * 20 + ".pack",
            "objects/pack/pack-" + "cd" * 32 + ".pack",
            "",
        ]
    ),
)
def test_arbitrary_bytes_never_raise(blob: bytes, algo: HashAlgo | None, hashing: bool, name: str) -> None:
    s, fs = check(blob, name, algo, hashing=hashing)
    assert s.size == len(blob)
    if len(blob) < 12:
        assert "packTooShort" in codes(fs)


@settings(max_examples=150, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0), max_size=12))
def test_any_chunking_gives_the_same_result(real_pack: tuple[str, bytes], cuts: list[int]) -> None:
    name, data = real_pack
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    c = PackStreamChecker(name, None, hash_content=True)
    for a, b in itertools.pairwise(points):
        c.feed(data[a:b])
    assert c.finish() == check(data, name)
    assert c.finish()[1] == []


@settings(max_examples=200, deadline=None)
@given(bit=st.integers(min_value=0))
def test_bit_flip_anywhere_is_caught_when_hashing(real_pack: tuple[str, bytes], bit: int) -> None:
    name, data = real_pack
    d = bytearray(data)
    bit %= len(d) * 8
    d[bit // 8] ^= 1 << (bit % 8)
    _, fs = check(bytes(d), name)
    assert errors(fs)
