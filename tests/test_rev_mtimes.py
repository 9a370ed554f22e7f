"""Reverse indexes (.rev) and cruft-pack mtimes (.mtimes): real files written by git, every kind of
damage with its exact finding codes, and what real git says about the same damage."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapcheck.gitformats.common import SHA1, SHA256, HashAlgo
from snapcheck.gitformats.idx import PackIndex, check_idx_against_pack, parse_idx
from snapcheck.gitformats.mtimes import parse_mtimes
from snapcheck.gitformats.pack import parse_pack_name
from snapcheck.gitformats.rev import parse_rev
from snapcheck.report import Finding, Severity

from gitrepos import git_rc

Mirrors = Callable[[str], Path]


def side_files(mirror: Path, ext: str) -> list[Path]:
    return sorted((mirror / "objects/pack").glob(f"pack-*.{ext}"))


def load_idx(path: Path) -> tuple[PackIndex, HashAlgo]:
    _, algo = parse_pack_name(path.name)
    assert algo is not None
    idx, fs = parse_idx(path.with_suffix(".idx").read_bytes(), algo, "i", verify_checksum=True)
    assert idx is not None and fs == []
    return idx, algo


def codes(fs: list[Finding]) -> list[str]:
    return sorted(f.code for f in fs)


def rehash(d: bytearray | bytes, algo: HashAlgo) -> bytes:
    h = algo.rawsz
    return bytes(d[:-h]) + algo.digest(bytes(d[:-h]))


# --- sound files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("config", ["gc_bitmaps", "geometric_midx", "sha256"])
def test_real_rev_files_are_sound(mirrors: Mirrors, config: str) -> None:
    revs = side_files(mirrors(config), "rev")
    assert revs
    for path in revs:
        idx, algo = load_idx(path)
        data = path.read_bytes()
        assert len(data) == 12 + 4 * idx.count + 2 * algo.rawsz
        for given_algo in (algo, None):
            assert parse_rev(data, str(path), given_algo, idx, verify_checksum=True) == []
            assert parse_rev(data, str(path), given_algo, None, verify_checksum=True) == []
        # the positions really are the index entries in pack order
        offs = idx.offsets()
        perm = struct.unpack(f">{idx.count}I", data[12 : 12 + 4 * idx.count])
        assert list(perm) == sorted(range(idx.count), key=offs.__getitem__)


def test_a_sound_rev_proves_distinct_offsets(mirrors: Mirrors, monkeypatch: pytest.MonkeyPatch) -> None:
    """Checked first, a sound .rev spares check_idx_against_pack its sort for duplicate offsets."""
    from snapcheck.gitformats import idx as idxmod

    path = side_files(mirrors("gc_bitmaps"), "rev")[0]
    idx, fs = parse_idx(path.with_suffix(".idx").read_bytes(), SHA1, "i", verify_checksum=False)
    assert idx is not None and fs == [] and not idx.checksum_verified
    assert parse_rev(path.read_bytes(), str(path), SHA1, idx, verify_checksum=False) == []

    def no_sort(offsets: object) -> None:
        raise AssertionError("distinctness was already proven by the .rev")

    monkeypatch.setattr(idxmod, "_find_duplicate", no_sort)
    pack = path.with_suffix(".pack").read_bytes()
    assert check_idx_against_pack(idx, "i", pack_path="p", pack_count=idx.count, pack_trailer=pack[-20:],
                                  pack_size=len(pack)) == []


def test_real_mtimes_are_sound(mirrors: Mirrors) -> None:
    files = side_files(mirrors("cruft"), "mtimes")
    assert len(files) == 1
    path = files[0]
    idx, algo = load_idx(path)
    data = path.read_bytes()
    assert len(data) == 12 + 4 * idx.count + 2 * algo.rawsz
    for given_algo in (algo, None):
        assert parse_mtimes(data, str(path), given_algo, idx, verify_checksum=True) == []
        assert parse_mtimes(data, str(path), given_algo, None, verify_checksum=True) == []


def test_sha256_mtimes_written_by_git(tmp_path: Path) -> None:
    """A cruft pack in a SHA-256 repository: hash id 2, 32-byte checksums."""
    from gitrepos import git

    work = tmp_path / "w"
    git("init", "-q", "--object-format=sha256", str(work))
    (work / "f").write_text("x\n")
    git("add", "f", cwd=work)
    git("commit", "-q", "-m", "one", cwd=work)
    git("checkout", "-q", "-b", "tmp", cwd=work)
    (work / "g").write_text("doomed\n")
    git("add", "g", cwd=work)
    git("commit", "-q", "-m", "two", cwd=work)
    git("checkout", "-q", "main" if "main" in git("branch", cwd=work) else "master", cwd=work)
    git("branch", "-D", "tmp", cwd=work)
    git("reflog", "expire", "--expire=all", "--all", cwd=work)
    git("repack", "-q", "-d", "--cruft", "--cruft-expiration=never", cwd=work)
    files = side_files(work / ".git", "mtimes")
    assert len(files) == 1
    idx, algo = load_idx(files[0])
    data = files[0].read_bytes()
    assert algo is SHA256 and data[8:12] == b"\0\0\0\2"
    assert parse_mtimes(data, "m", SHA256, idx, verify_checksum=True) == []
    assert codes(parse_mtimes(data, "m", SHA1, None, verify_checksum=True)) == ["mtimesBadHashId"]


# --- damage --------------------------------------------------------------------------------------


def _cases(data: bytes, algo: HashAlgo, n: int, kind: str) -> dict[str, tuple[bytes, list[str]]]:
    """name -> (damaged bytes, codes with the idx and verify_checksum=True)."""
    h = algo.rawsz
    p = kind

    def flip(pos: int, mask: int = 1) -> bytes:
        d = bytearray(data)
        d[pos] ^= mask
        return bytes(d)

    out = {
        "cut1": (data[:-1], [f"{p}BadSize"]),
        "cut_half": (
            data[: len(data) // 2],
            [f"{p}BadSize"] if len(data) // 2 >= 12 + 2 * h else [f"{p}TooSmall"],
        ),
        "cut_to_header": (data[:12], [f"{p}TooSmall"]),
        "empty": (b"", [f"{p}TooSmall"]),
        "pad1": (data + b"\0", [f"{p}BadSize"]),
        "pad4": (data + bytes(4), [f"{p}BadSize"]),
        "flip_signature": (flip(0), [f"{p}BadSignature"]),
        "flip_version": (flip(7), [f"{p}UnsupportedVersion"]),
        "hash_id_3": (flip(11, 2), [f"{p}BadHashId"]),
        "flip_pack_checksum": (flip(len(data) - 2 * h + 1), [f"{p}ChecksumMismatch", f"{p}PackMismatch"]),
        "flip_checksum": (flip(len(data) - 1, 0x40), [f"{p}ChecksumMismatch"]),
        "all_zero": (bytes(len(data)), [f"{p}BadSignature"]),
    }
    other = 2 if algo is SHA1 else 1
    d = bytearray(data)
    d[8:12] = struct.pack(">I", other)
    out["other_hash_id"] = (bytes(d), [f"{p}BadHashId"])
    if kind == "rev" and n >= 3:
        perm = list(struct.unpack(f">{n}I", data[12 : 12 + 4 * n]))
        swapped = perm[:]
        swapped[1], swapped[2] = swapped[2], swapped[1]
        dup = perm[:]
        dup[2] = dup[1]
        high = perm[:]
        high[0] = n
        for name, pp in (
            ("swap_positions", swapped),
            ("duplicate_position", dup),
            ("position_out_of_range", high),
        ):
            body = data[:12] + struct.pack(f">{n}I", *pp) + data[12 + 4 * n :]
            out[name] = (body, ["revBadPosition", "revChecksumMismatch"])
            out[name + "_rehashed"] = (rehash(body, algo), ["revBadPosition"])
    if kind == "mtimes":
        d = bytearray(data)
        d[12:16] = b"\xff\xff\xff\xff"
        out["flip_mtime"] = (bytes(d), ["mtimesChecksumMismatch"])
    return out


@pytest.mark.parametrize(
    ("config", "kind"),
    [("gc_bitmaps", "rev"), ("sha256", "rev"), ("geometric_midx", "rev"), ("cruft", "mtimes")],
)
def test_damage_gives_exact_codes(mirrors: Mirrors, config: str, kind: str) -> None:
    parse = parse_rev if kind == "rev" else parse_mtimes
    for path in side_files(mirrors(config), kind):
        idx, algo = load_idx(path)
        data = path.read_bytes()
        cases = _cases(data, algo, idx.count, kind)
        for name, (bad, want) in cases.items():
            fs = parse(bad, str(path), algo, idx, verify_checksum=True)
            assert codes(fs) == want, (path.name, name, [f.message for f in fs])
            assert all(f.severity is Severity.ERROR for f in fs)
            quick = [c for c in want if not c.endswith("ChecksumMismatch")]
            assert codes(parse(bad, str(path), algo, idx, verify_checksum=False)) == quick, name
            # without an idx: everything that needs no object count is still caught
            alone = codes(parse(bad, str(path), algo, None, verify_checksum=True))
            # (a rehashed wrong permutation is only visible against the idx)
            assert bool(alone) != name.endswith("_rehashed"), name
            assert set(alone) <= set(want) | {f"{kind}BadSize", f"{kind}ChecksumMismatch"}, name


def test_rev_of_another_pack(mirrors: Mirrors) -> None:
    """geometric_midx has two packs: each .rev checked against the other's index."""
    a, b = side_files(mirrors("geometric_midx"), "rev")
    ia, _ = load_idx(a)
    ib, _ = load_idx(b)
    assert ia.count != ib.count
    assert codes(parse_rev(a.read_bytes(), "r", SHA1, ib, verify_checksum=True)) == ["revBadSize"]
    # same size, wrong pack: forge a .rev of ib's size carrying ia's pack checksum
    body = b"RIDX" + struct.pack(">II", 1, 1) + b.read_bytes()[12 : 12 + 4 * ib.count] + ia.pack_checksum
    forged = body + SHA1.digest(body)
    assert codes(parse_rev(forged, "r", SHA1, ib, verify_checksum=True)) == ["revPackMismatch"]


def test_position_message_quotes_git(mirrors: Mirrors) -> None:
    path = side_files(mirrors("gc_bitmaps"), "rev")[0]
    idx, algo = load_idx(path)
    bad, _ = _cases(path.read_bytes(), algo, idx.count, "rev")["swap_positions_rehashed"]
    fs = parse_rev(bad, str(path), algo, idx, verify_checksum=True)
    assert "invalid rev-index position at 1" in fs[0].message


REV_GIT = {
    "cut1": "is corrupt",
    "pad4": "is corrupt",
    "flip_signature": "has unknown signature",
    "flip_version": "has unsupported version 0",
    "hash_id_3": "has unsupported hash id 3",
    "empty": "is too small",
}


@pytest.mark.parametrize("name", sorted(REV_GIT))
def test_git_reports_the_same_rev_damage(mirror_copy: Mirrors, name: str) -> None:
    """git 2.39 does not fail on a bad .rev, but any command that loads it prints the same error."""
    m = mirror_copy("gc_bitmaps")
    path = side_files(m, "rev")[0]
    idx, algo = load_idx(path)
    bad, want = _cases(path.read_bytes(), algo, idx.count, "rev")[name]
    path.write_bytes(bad)
    rel = f"./objects/pack/{path.name}"
    fs = parse_rev(bad, rel, algo, idx, verify_checksum=True)
    assert codes(fs) == want
    _, _, err = git_rc("cat-file", "--batch-all-objects", "--batch-check=%(objectsize:disk)", cwd=m)
    line = f"reverse-index file {rel} {REV_GIT[name]}"
    assert line in err, err
    assert any(line in f.message for f in fs), [f.message for f in fs]


MTIMES_GIT = {
    "cut1": "is corrupt",
    "pad4": "is corrupt",
    "flip_signature": "has unknown signature",
    "flip_version": "has unsupported version 0",
    "hash_id_3": "has unsupported hash id 3",
    "empty": "is too small",
}


@pytest.mark.parametrize("name", sorted(MTIMES_GIT))
def test_git_gc_dies_on_the_same_mtimes_damage(mirror_copy: Mirrors, name: str) -> None:
    """git fsck never reads .mtimes; the next cruft repack (git gc) dies on it."""
    m = mirror_copy("cruft")
    path = side_files(m, "mtimes")[0]
    idx, algo = load_idx(path)
    bad, want = _cases(path.read_bytes(), algo, idx.count, "mtimes")[name]
    path.write_bytes(bad)
    rel = f"./objects/pack/{path.name}"
    fs = parse_mtimes(bad, rel, algo, idx, verify_checksum=True)
    assert codes(fs) == want
    rc, _, err = git_rc("repack", "-q", "-d", "--cruft", "--cruft-expiration=never", cwd=m)
    line = f"mtimes file {rel} {MTIMES_GIT[name]}"
    assert rc != 0 and line in err, err
    assert any(line in f.message for f in fs), [f.message for f in fs]


# --- properties ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("config", "kind"), [("sha256", "rev"), ("cruft", "mtimes")])
def test_every_truncation_and_byte_flip_is_rejected(mirrors: Mirrors, config: str, kind: str) -> None:
    parse = parse_rev if kind == "rev" else parse_mtimes
    path = side_files(mirrors(config), kind)[0]
    idx, algo = load_idx(path)
    data = path.read_bytes()
    for cut in range(len(data)):
        fs = parse(data[:cut], "f", algo, idx, verify_checksum=False)
        assert codes(fs) in ([f"{kind}TooSmall"], [f"{kind}BadSize"]), cut
    for pos in range(len(data)):
        for mask in (1, 0x80):
            d = bytearray(data)
            d[pos] ^= mask
            assert parse(bytes(d), "f", algo, idx, verify_checksum=True), (pos, mask)


@pytest.fixture(scope="module")
def real_rev(mirrors: Mirrors) -> tuple[bytes, PackIndex]:
    path = side_files(mirrors("gc_bitmaps"), "rev")[0]
    idx, _ = load_idx(path)
    return path.read_bytes(), idx


@settings(max_examples=300, deadline=None)
@given(
    blob=st.binary(max_size=700),
    algo=st.sampled_from([None, SHA1, SHA256]),
    with_idx=st.booleans(),
    verify=st.booleans(),
    keep_header=st.booleans(),
)
def test_arbitrary_bytes_never_raise(
    real_rev: tuple[bytes, PackIndex],
    blob: bytes,
    algo: HashAlgo | None,
    with_idx: bool,
    verify: bool,
    keep_header: bool,
) -> None:
    data, idx = real_rev
    if keep_header:
        blob = data[:12] + blob
    for parse in (parse_rev, parse_mtimes):
        parse(blob, "f", algo, idx if with_idx else None, verify_checksum=verify)


@settings(max_examples=200, deadline=None)
@given(
    positions=st.lists(st.integers(min_value=0, max_value=200), min_size=1, max_size=1),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_rehashed_wrong_positions_are_caught(
    real_rev: tuple[bytes, PackIndex], positions: list[int], seed: int
) -> None:
    """Any permutation other than git's (checksum recomputed, so only the order check can tell)."""
    import random

    data, idx = real_rev
    n = idx.count
    perm = list(struct.unpack(f">{n}I", data[12 : 12 + 4 * n]))
    rng = random.Random(seed)
    new = perm[:]
    if positions[0] % 2:
        rng.shuffle(new)
    else:
        i, j = rng.randrange(n), rng.randrange(n)
        new[i] = new[j]
    body = data[:12] + struct.pack(f">{n}I", *new) + data[12 + 4 * n :]
    fs = parse_rev(rehash(body, SHA1), "f", SHA1, idx, verify_checksum=True)
    assert codes(fs) == ([] if new == perm else ["revBadPosition"])
