"""packed-refs: real files from ``git pack-refs --all``, damaged the ways snapshots get damaged, and
judged against what the real ``git for-each-ref`` does with the same bytes."""

from __future__ import annotations

import random
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snapcheck.gitformats import packed_refs as pr
from snapcheck.gitformats.common import SHA1, SHA256, HashAlgo
from snapcheck.gitformats.packed_refs import GIT_HEADER, PackedRefs, parse_packed_refs, serialize_packed_refs
from snapcheck.gitformats.refname import check_refname
from snapcheck.report import Finding, Severity

import gitrepos

CONFIGS = list(gitrepos.BUILDERS)


# -- helpers ------------------------------------------------------------------------------------------


@dataclass
class Packed:
    repo: Path  # a private copy whose refs are all packed (safe to overwrite packed-refs in)
    data: bytes  # the pristine packed-refs git wrote
    algo: HashAlgo
    listing: list[tuple[str, str, str]]  # git for-each-ref: (oid, name, peeled or "")


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, env=gitrepos.GIT_ENV)


def _listing(repo: Path) -> list[tuple[str, str, str]]:
    """(oid, name, fully peeled oid or "") of every ref, from ``git show-ref -d`` (which peels tags of
    tags all the way, like packed-refs does)."""
    out = _git(repo, "show-ref", "-d")
    assert out.returncode == 0, out.stderr
    rows: list[tuple[str, str, str]] = []
    for line in out.stdout.decode().splitlines():
        oid, name = line.split(" ", 1)
        if name.endswith("^{}"):
            assert rows[-1][1] == name[:-3]
            rows[-1] = (rows[-1][0], rows[-1][1], oid)
        else:
            rows.append((oid, name, ""))
    return rows


@pytest.fixture(scope="module")
def packed(
    mirrors: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], Packed]:
    """``packed(name)``: a copy of mirror *name* after ``git pack-refs --all`` (peeled tags)."""
    cache: dict[str, Packed] = {}

    def get(name: str) -> Packed:
        if name not in cache:
            repo = gitrepos.copy_repo(mirrors(name), tmp_path_factory.mktemp(f"packed-{name}") / "m.git")
            gitrepos.git("pack-refs", "--all", cwd=repo)
            assert not [p for p in (repo / "refs").rglob("*") if p.is_file()], (
                "pack-refs --all left loose refs"
            )
            data = (repo / "packed-refs").read_bytes()
            algo = SHA256 if name == "sha256" else SHA1
            cache[name] = Packed(repo, data, algo, _listing(repo))
        return cache[name]

    return get


@dataclass
class GitVerdict:
    rc: int
    fatal: str | None  # git's "fatal: ..." line
    names: list[str]


def git_reads(p: Packed, data: bytes) -> GitVerdict:
    """What ``git for-each-ref`` does with *data* as the repository's packed-refs."""
    (p.repo / "packed-refs").write_bytes(data)
    try:
        res = _git(p.repo, "for-each-ref", "--format=%(refname)")
    finally:
        (p.repo / "packed-refs").write_bytes(p.data)
    err = res.stderr.decode("utf-8", "backslashreplace")
    fatal = next(
        (ln for ln in err.split("\n") if ln.startswith("fatal: ")), None
    )  # not splitlines: CR is data
    return GitVerdict(res.returncode, fatal, res.stdout.decode("utf-8", "surrogateescape").splitlines())


def errors(fs: list[Finding]) -> set[str]:
    return {f.code for f in fs if f.severity is Severity.ERROR}


def problems(fs: list[Finding]) -> set[str]:
    return {f.code for f in fs if f.severity is not Severity.INFO}


def git239_diverges(data: bytes) -> bool:
    """Damage on which the local git 2.39 and the git >= 2.50 reader this module models differ:
    2.39 matched the header prefix without its trailing space, and cut names at an embedded NUL
    instead of dying ("packed refname contains embedded NULL")."""
    if data.startswith(b"# pack-refs with:") and not data.startswith(pr.HEADER_PREFIX):
        return True
    body = data.split(b"\n", 1)[1] if data.startswith(b"#") and b"\n" in data else data
    lines = body.split(b"\n")
    return any(b"\0" in ln[41:] and not ln.startswith(b"^") for ln in lines[:-1])


def assert_agrees_with_git(p: Packed, data: bytes, result: PackedRefs, fs: list[Finding]) -> GitVerdict:
    """Where git dies (exit 128) we must say the file is incomplete, with git's very message; where git
    reads the file we must not claim it dies."""
    g = git_reads(p, data)
    assert g.rc in (0, 128), (g, data[-80:])
    if g.rc == 128:
        assert not result.complete, (g.fatal, data[-80:], fs)
        assert result.git_error == g.fatal, (result.git_error, g.fatal)
        assert errors(fs), fs
        assert any(g.fatal in f.message for f in fs if f.severity is Severity.ERROR)
    else:
        assert result.complete, (result.git_error, data[-120:], fs)
        assert result.git_error is None
    return g


def refs_of(r: PackedRefs) -> list[tuple[str, str, str]]:
    return [(x.oid.hex(), x.name, x.peeled.hex() if x.peeled else "") for x in r.refs]


def record_boundaries(data: bytes) -> set[int]:
    """Offsets just after an LF: cutting there leaves a file of whole lines."""
    return {m.end() for m in re.finditer(rb"\n", data)}


# -- the good configurations --------------------------------------------------------------------------


@pytest.mark.parametrize("config", CONFIGS)
def test_pristine_packed_refs_are_clean(config: str, mirrors: Callable[[str], Path]) -> None:
    """Every configuration's packed-refs, as git wrote it, parses with no error and no warning."""
    path = mirrors(config) / "packed-refs"
    if not path.exists():
        assert config in ("loose", "geometric_midx")  # these fixtures keep loose refs only
        return
    algo = SHA256 if config == "sha256" else SHA1
    for a in (algo, None):
        result, fs = parse_packed_refs(path.read_bytes(), a)
        assert problems(fs) == set(), fs
        assert result.complete and result.git_error is None
        assert result.has_header and {"peeled", "fully-peeled", "sorted"} <= result.traits
        assert result.algo == algo
        assert result.refs


@pytest.mark.parametrize("config", CONFIGS)
def test_pack_refs_all_matches_git(config: str, packed: Callable[[str], Packed]) -> None:
    """After ``git pack-refs --all`` every ref (with its peeled value) is exactly what git lists."""
    p = packed(config)
    result, fs = parse_packed_refs(p.data, p.algo)
    assert problems(fs) == set(), fs
    assert refs_of(result) == p.listing
    assert any(x.peeled for x in result.refs)  # annotated tags carry '^' lines
    assert [x.line for x in result.refs] == [
        i + 1 for i, ln in enumerate(p.data.split(b"\n")) if ln and not ln.startswith((b"#", b"^"))
    ]


# -- truncation -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("config", ["gc_bitmaps", "sha256"])
def test_every_truncation_point(config: str, packed: Callable[[str], Packed]) -> None:
    """Every cut of a real packed-refs is rejected, EXCEPT a cut exactly at a line boundary.

    The undetectable case, explicitly: packed-refs has no checksum and no record count, so a file cut
    right after an LF is a well-formed, shorter packed-refs.  Cut after a whole record, it simply lacks
    the refs that followed; cut between a tag's ref line and its '^' line, it lacks the peeled value
    (with the 'fully-peeled' trait git then believes the tag cannot be peeled).  git reads such a file
    without a word (exit 0), and so must a syntax check: only a manifest of the refs (or, for the
    peeled value, the tag object itself) can reveal it.  This test asserts both halves: such cuts parse
    clean (and give exactly the refs before the cut), every other cut gives the exact error code.
    """
    p = packed(config)
    data = p.data
    full = refs_of(parse_packed_refs(data, p.algo)[0])
    boundaries = record_boundaries(data)
    header_end = data.index(b"\n") + 1
    line_starts = sorted({0} | boundaries)
    for cut in range(len(data)):
        result, fs = parse_packed_refs(data[:cut], p.algo)
        if cut == 0:
            assert [f.code for f in fs] == ["packedRefsEmpty"] and result.complete
            continue
        if cut in boundaries:
            assert problems(fs) == set(), (cut, fs)
            assert result.complete
            got = refs_of(result)
            assert got == full[: len(got)] or got[:-1] == full[: len(got) - 1]
            if got and got[-1] != full[len(got) - 1]:  # cut between a ref line and its '^' line
                assert (
                    got[-1][:2] == full[len(got) - 1][:2] and got[-1][2] == "" and data[cut : cut + 1] == b"^"
                )
            continue
        assert not result.complete, cut
        start = max(s for s in line_starts if s <= cut)
        if cut < header_end:
            expected = "packedRefsHeaderUnterminated"
        elif data[start : start + 1] == b"^":
            expected = "packedRefsPeeledUnterminated"
        else:
            expected = "packedRefsUnterminated"
        assert errors(fs) == {expected}, (cut, fs)
        assert result.git_error is not None


def test_truncations_agree_with_git(packed: Callable[[str], Packed]) -> None:
    """At cuts around every line (first byte, middle, last byte before LF, the LF itself) git's verdict
    and message equal ours."""
    p = packed("gc_bitmaps")
    data = p.data
    starts = [0, *sorted(record_boundaries(data))]
    cuts: set[int] = set()
    for a, b in pairwise(starts):
        cuts |= {a + 1, (a + b) // 2, b - 2, b - 1, b}
    died = 0
    for cut in sorted(c for c in cuts if 0 < c < len(data)):
        damaged = data[:cut]
        result, fs = parse_packed_refs(damaged, p.algo)
        g = assert_agrees_with_git(p, damaged, result, fs)
        died += g.rc == 128
        if g.rc == 0:
            assert [x.name for x in result.refs] == g.names
    assert died > 20


# -- the damage snapshots suffer, each with its exact code ------------------------------------------


def _first_line_with(data: bytes, needle: bytes) -> tuple[int, int]:
    i = data.index(needle)
    s = data.rindex(b"\n", 0, i) + 1
    return s, data.index(b"\n", i)


def _cut_mid_name(d: bytes) -> bytes:
    s, _ = _first_line_with(d, b"refs/heads/main")
    return d[: s + 41 + len("refs/hea")]


def _cut_in_peeled(d: bytes) -> bytes:
    i = d.index(b"\n^") + 1
    return d[: i + 10]


def _swap_first_two(d: bytes) -> bytes:
    head, rest = d.split(b"\n", 1)
    lines = rest.split(b"\n")
    lines[0], lines[1] = lines[1], lines[0]
    return head + b"\n" + b"\n".join(lines)


def _duplicate_first(d: bytes) -> bytes:
    head, rest = d.split(b"\n", 1)
    first = rest.split(b"\n", 1)[0]
    return head + b"\n" + first + b"\n" + rest


def _flip(d: bytes, offset: int, bit: int) -> bytes:
    b = bytearray(d)
    b[offset] ^= 1 << bit
    return bytes(b)


def _no_header(d: bytes) -> bytes:
    return d.split(b"\n", 1)[1]


def _oid_of_main(d: bytes) -> int:
    return _first_line_with(d, b"refs/heads/main")[0]


def _upper_main(d: bytes) -> bytes:
    i = _oid_of_main(d)
    return d[:i] + d[i : i + 40].upper() + d[i + 40 :]


CASES: list[tuple[str, Callable[[bytes], bytes], set[str], bool | None]] = [
    # (name, damage, exact error codes, git dies? None: no git comparison)
    ("cut mid-name", _cut_mid_name, {"packedRefsUnterminated"}, True),
    ("cut in ^ line", _cut_in_peeled, {"packedRefsPeeledUnterminated"}, True),
    ("cut in header", lambda d: d[:20], {"packedRefsHeaderUnterminated"}, True),
    ("cut by one byte", lambda d: d[:-1], {"packedRefsPeeledUnterminated"}, True),
    (
        "cut in half",
        lambda d: d[: len(d) // 2] if d[len(d) // 2 - 1] != 10 else d[: len(d) // 2 + 1],
        None,
        True,
    ),  # codes depend on where the half falls; checked below
    ("zero-padded tail", lambda d: d + b"\0" * 512, {"packedRefsZeroPadded"}, True),
    (
        "cut then zero-filled",
        lambda d: _cut_mid_name(d) + b"\0" * (len(d) - len(_cut_mid_name(d))),
        {"packedRefsZeroPadded", "packedRefsUnterminated"},
        True,
    ),
    ("all zeros", lambda d: b"\0" * len(d), {"packedRefsZeroPadded"}, True),
    (
        "oid digit flipped to non-hex",
        lambda d: (
            _flip(d, _oid_of_main(d) + 3, 6)
            if chr(d[_oid_of_main(d) + 3]) in "0123456789"
            else _flip(d, _oid_of_main(d) + 3, 4)
        ),
        {"packedRefsBadOid"},
        True,
    ),
    ("space flipped to NUL", lambda d: _flip(d, _oid_of_main(d) + 40, 5), {"packedRefsNul"}, True),
    (
        "'/' flipped to '?' (still safe)",
        lambda d: _flip(d, _oid_of_main(d) + 51, 4),
        {"packedRefsBadRefName"},
        False,
    ),
    (
        "'/' flipped to '?' (unsafe)",
        lambda d: _flip(d, _oid_of_main(d) + 45, 4),
        {"packedRefsDangerousRefName"},
        True,
    ),
    ("oid in upper case", _upper_main, set(), False),
    ("unsorted", _swap_first_two, {"packedRefsUnsorted"}, False),
    ("duplicate", _duplicate_first, {"packedRefsDuplicate"}, False),
    ("duplicate, no sorted trait", lambda d: _no_header(_duplicate_first(d)), {"packedRefsDuplicate"}, False),
    ("unsorted, no sorted trait", lambda d: _no_header(_swap_first_two(d)), set(), False),
    ("CRLF line ends", lambda d: d.replace(b"\n", b"\r\n"), {"packedRefsCrlf"}, True),
    (
        "dangerous name",
        lambda d: d.replace(b"refs/heads/main", b"refs/heads/../x"),
        {"packedRefsDangerousRefName"},
        True,
    ),
    (
        "double slash",
        lambda d: d.replace(b"refs/heads/main", b"refs/heads//main"),
        {"packedRefsDangerousRefName"},
        True,
    ),
    (
        "name with space",
        lambda d: d.replace(b"refs/heads/main", b"refs/heads/ma n"),
        {"packedRefsBadRefName"},
        False,
    ),
    (
        "name with NUL (git >= 2.50 dies)",
        lambda d: d.replace(b"refs/heads/main", b"refs/heads/ma\0n"),
        {"packedRefsNul"},
        None,
    ),
    (
        "orphan ^ at the start",
        lambda d: d.split(b"\n", 1)[0] + b"\n^" + b"1" * 40 + b"\n" + d.split(b"\n", 1)[1],
        {"packedRefsOrphanPeeled"},
        True,
    ),
    (
        "second ^ line",
        lambda d: d.replace(b"\n^", b"\n^" + b"2" * 40 + b"\n^", 1),
        {"packedRefsOrphanPeeled"},
        True,
    ),
    (
        "^ line too short",
        lambda d: re.sub(rb"\n\^([0-9a-f]{39})[0-9a-f]\n", rb"\n^\1\n", d, count=1),
        {"packedRefsBadPeeled"},
        True,
    ),
    ("bad header", lambda d: b"# junk\n" + _no_header(d), {"packedRefsBadHeader"}, True),
    (
        "empty line",
        lambda d: d[: _oid_of_main(d)] + b"\n" + d[_oid_of_main(d) :],
        {"packedRefsBadLine"},
        True,
    ),
    ("blank line at the end", lambda d: d + b"\n", {"packedRefsBadLine"}, True),
    ("oid alone on a line", lambda d: d.replace(b" refs/heads/main\n", b"\n"), {"packedRefsBadLine"}, True),
    (
        "sha256 oid in a sha1 file",
        lambda d: d[: _oid_of_main(d) + 40] + b"0" * 24 + d[_oid_of_main(d) + 40 :],
        {"packedRefsBadOid"},
        True,
    ),
    (
        "short oid",
        lambda d: d[: _oid_of_main(d) + 30] + d[_oid_of_main(d) + 40 :],
        {"packedRefsBadOid"},
        True,
    ),
    ("TAB after the oid", lambda d: d.replace(b" refs/heads/main", b"\trefs/heads/main"), set(), False),
    ("odd trait (header LF flipped)", lambda d: _flip(d, d.index(b"\n"), 0), set(), False),
    ("no header at all", _no_header, set(), False),
    ("header only", lambda d: GIT_HEADER, set(), False),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_damage(
    case: tuple[str, Callable[[bytes], bytes], set[str] | None, bool | None], packed: Callable[[str], Packed]
) -> None:
    _, damage, expected, git_dies = case
    p = packed("gc_bitmaps")
    damaged = damage(p.data)
    assert damaged != p.data
    result, fs = parse_packed_refs(damaged, p.algo)
    if expected is None:  # "cut in half": whichever record the half falls in, it must be rejected
        assert not result.complete
        assert len(errors(fs)) == 1 and errors(fs) <= {
            "packedRefsUnterminated",
            "packedRefsPeeledUnterminated",
        }
    else:
        assert errors(fs) == expected, fs
    if git_dies is None:
        assert git239_diverges(damaged)
        assert not result.complete and result.git_error is not None
        assert "embedded NULL" in result.git_error
        return
    g = assert_agrees_with_git(p, damaged, result, fs)
    assert (g.rc == 128) == git_dies, g
    if g.rc == 0:
        # git lists exactly the refs we call well-formed (the broken ones it ignores)
        assert sorted(x.name for x in result.refs) == sorted(g.names)


def test_which_damage_git_names_first(packed: Callable[[str], Packed]) -> None:
    """With the 'sorted' trait git dies on the first bad record in file order; without it git first
    sorts the records in memory (dying on any too-short line), then dies on the bad record that sorts
    first.  Our git_error follows the same order."""
    p = packed("gc_bitmaps")
    oid = p.listing[0][0].encode()
    records = [
        oid + b" refs/heads/zzz\n",
        b"x" + oid[1:] + b" refs/heads/bbb\n",  # bad oid
        oid + b" refs/heads/../aaa\n",  # dangerous name, sorts first
    ]
    for header, expected in ((b"# pack-refs with: peeled sorted \n", "unexpected line"),
                             (b"", "packed refname is dangerous: refs/heads/../aaa"),
                             (b"# pack-refs with: peeled \n", "packed refname is dangerous: refs/heads/../aaa")):
        data = header + b"".join(records)
        result, fs = parse_packed_refs(data, p.algo)
        assert result.git_error is not None and expected in result.git_error
        assert_agrees_with_git(p, data, result, fs)
    # without the trait, a short line anywhere is what git names first
    data = b"".join(records) + oid + b" refs/heads/ok\n" + b"short\n" + oid + b" refs/heads/zz2\n"
    result, fs = parse_packed_refs(data, p.algo)
    assert result.git_error == "fatal: unexpected line in ./packed-refs: short"
    assert_agrees_with_git(p, data, result, fs)


def test_messages_read_like_git(packed: Callable[[str], Packed]) -> None:
    p = packed("gc_bitmaps")
    cut = _cut_mid_name(p.data)
    result, fs = parse_packed_refs(cut, p.algo)
    line = cut.split(b"\n")[-1].decode()
    assert result.git_error == f"fatal: unterminated line in ./packed-refs: {line}"
    (f,) = fs
    assert f.path == "packed-refs" and "line 3" in f.message and "refs/hea" in f.message
    assert f"git: fatal: unterminated line in ./packed-refs: {line}" in f.message
    # git shortens excerpts of 80 bytes or more to 75 + "..."
    long_name = b"refs/heads/" + b"x" * 60
    data = GIT_HEADER + b"a" * 40 + b" " + long_name
    result, _ = parse_packed_refs(data, SHA1)
    assert (
        result.git_error
        == "fatal: unterminated line in ./packed-refs: "
        + (b"a" * 40 + b" " + long_name).decode()[:75]
        + "..."
    )
    # the path git prints is the one it opened
    result, _ = parse_packed_refs(data, SHA1, "sub/packed-refs")
    assert result.git_error is not None and "./sub/packed-refs:" in result.git_error


def test_zero_padded_message_is_gits(packed: Callable[[str], Packed]) -> None:
    p = packed("gc_bitmaps")
    result, fs = parse_packed_refs(p.data + b"\0" * 100, p.algo)
    # git prints a C string: the excerpt of a NUL run is empty, and 80 bytes or more get "..."
    assert result.git_error == "fatal: unterminated line in ./packed-refs: ..."
    assert (
        parse_packed_refs(p.data + b"\0" * 79, p.algo)[0].git_error
        == "fatal: unterminated line in ./packed-refs: "
    )
    assert [f.code for f in fs] == ["packedRefsZeroPadded"]
    assert refs_of(result) == p.listing  # the records before the NULs are all intact


def test_many_refs_damage(packed: Callable[[str], Packed]) -> None:
    """The 3000-ref mirror: a cut deep inside (tar's rename race) is caught and says what git says."""
    p = packed("many_refs")
    data = p.data
    at = data.index(b"refs/pull/2345/head") + 12
    result, fs = parse_packed_refs(data[:at], p.algo)
    assert errors(fs) == {"packedRefsUnterminated"}
    g = assert_agrees_with_git(p, data[:at], result, fs)
    assert g.fatal is not None and g.fatal.endswith(" refs/pull/23")
    assert len(result.refs) == sum(1 for x in p.listing if x[1] < "refs/pull/2345/head")


def test_bit_flips_agree_with_git(packed: Callable[[str], Packed]) -> None:
    """Single-bit flips all over a real file: wherever git dies, we say so with its message; wherever
    git reads the file, we do not claim it dies; a file we pass clean is semantically valid."""
    p = packed("gc_bitmaps")
    rng = random.Random(1234)
    picks = {(rng.randrange(len(p.data)), rng.randrange(8)) for _ in range(110)}
    picks |= {
        (p.data.index(b"\n^") + 1, 0),
        (p.data.index(b" refs/"), 5),
        (len(p.data) - 1, 1),
        (0, 0),
        (17, 4),
    }
    compared = died = 0
    for offset, bit in sorted(picks):
        damaged = _flip(p.data, offset, bit)
        result, fs = parse_packed_refs(damaged, p.algo)
        if not errors(fs) and result.complete:
            assert_semantically_valid(result)
        if git239_diverges(damaged):
            continue
        g = assert_agrees_with_git(p, damaged, result, fs)
        compared += 1
        died += g.rc == 128
    assert compared > 80 and died > 20


def assert_semantically_valid(result: PackedRefs) -> None:
    names = [x.name.encode("utf-8", "surrogateescape") for x in result.refs]
    for x, name in zip(result.refs, names, strict=True):
        assert check_refname(name) is None
        assert result.algo is not None and len(x.oid) == result.algo.rawsz
        assert x.peeled is None or len(x.peeled) == result.algo.rawsz
    if "sorted" in result.traits:
        assert all(a < b for a, b in pairwise(names))
    assert len(set(names)) == len(names)


# -- algorithm inference and limits ---------------------------------------------------------------------


def test_infers_object_format(packed: Callable[[str], Packed]) -> None:
    for name, algo in (("gc_bitmaps", SHA1), ("sha256", SHA256)):
        result, fs = parse_packed_refs(packed(name).data, None)
        assert result.algo == algo and problems(fs) == set()
    result, fs = parse_packed_refs(GIT_HEADER + b"xyz refs/heads/main\n", None)
    assert "packedRefsUnknownFormat" in errors(fs) and not result.complete


def test_wrong_algo_is_rejected(packed: Callable[[str], Packed]) -> None:
    result, fs = parse_packed_refs(packed("sha256").data, SHA1)
    # 64-digit ids where 40 are expected: every ref line and every '^' line is bad
    assert (
        {"packedRefsBadOid", "packedRefsBadPeeled"}
        <= errors(fs)
        <= {"packedRefsBadOid", "packedRefsBadPeeled", "packedRefsManyErrors"}
    )
    assert not result.complete and not result.refs


def test_line_limit_is_a_finding_not_unbounded_work() -> None:
    long = b"a" * 40 + b" refs/heads/" + b"x" * 5000 + b"\n"
    data = GIT_HEADER + long + b"b" * 40 + b" refs/heads/y\n"
    result, fs = parse_packed_refs(data, SHA1, max_line=1024)
    assert errors(fs) == {"packedRefsLineTooLong"} and not result.complete
    assert [x.name for x in result.refs] == ["refs/heads/y"]
    # a huge unterminated blob is only scanned, never split into lines
    result, fs = parse_packed_refs(GIT_HEADER + b"z" * 3_000_000, SHA1, max_line=1024)
    assert errors(fs) == {"packedRefsLineTooLong"} or "packedRefsUnterminated" in errors(fs)
    assert not result.complete


def test_ref_limit() -> None:
    refs = [(b"refs/heads/b%05d" % i, bytes([i % 256]) * 20, None) for i in range(50)]
    result, fs = parse_packed_refs(serialize_packed_refs(refs), SHA1, max_refs=10)
    assert errors(fs) == {"packedRefsTooManyRefs"} and not result.complete and len(result.refs) == 10


def test_many_bad_lines_are_counted_not_listed() -> None:
    data = GIT_HEADER + b"".join(b"junk line %d\n" % i for i in range(500))
    result, fs = parse_packed_refs(data, SHA1)
    assert len(fs) < 60 and errors(fs) == {"packedRefsBadOid", "packedRefsManyErrors"}
    assert not result.complete


# -- properties ---------------------------------------------------------------------------------------

_name_chars = st.sampled_from([*"abcxyzAZ09-_.+,=%@{}/", "\u00e9", "\u2603"])
_component = st.text(_name_chars, min_size=1, max_size=8).filter(lambda c: "/" not in c)
_refname = (
    st.lists(_component, min_size=1, max_size=4)
    .map(lambda cs: ("refs/" + "/".join(cs)).encode())
    .filter(lambda n: check_refname(n) is None)
)


@st.composite
def valid_files(draw: st.DrawFn) -> tuple[bytes, HashAlgo, list[tuple[bytes, bytes, bytes | None]]]:
    algo = draw(st.sampled_from([SHA1, SHA256]))
    names = sorted(set(draw(st.lists(_refname, max_size=12))))
    refs = [
        (
            n,
            draw(st.binary(min_size=algo.rawsz, max_size=algo.rawsz)),
            draw(st.none() | st.binary(min_size=algo.rawsz, max_size=algo.rawsz)),
        )
        for n in names
    ]
    header = draw(
        st.sampled_from([GIT_HEADER, b"# pack-refs with: peeled sorted \n", b"# pack-refs with: sorted \n"])
    )
    return serialize_packed_refs(refs, header), algo, refs


@settings(max_examples=250, deadline=None)
@given(st.binary(max_size=400), st.sampled_from([SHA1, SHA256, None]), st.booleans())
def test_arbitrary_bytes_never_raise(data: bytes, algo: HashAlgo | None, with_header: bool) -> None:
    if with_header:
        data = GIT_HEADER + data
    result, fs = parse_packed_refs(data, algo)
    assert isinstance(result, PackedRefs)
    assert all(isinstance(f, Finding) for f in fs)
    if not result.complete:
        assert errors(fs)


@settings(max_examples=60, deadline=None)
@given(valid_files())
def test_round_trip(case: tuple[bytes, HashAlgo, list[tuple[bytes, bytes, bytes | None]]]) -> None:
    data, algo, refs = case
    for a in (algo, None if refs else algo):
        result, fs = parse_packed_refs(data, a)
        assert problems(fs) == set(), fs
        assert result.complete
        assert [(x.name.encode("utf-8", "surrogateescape"), x.oid, x.peeled) for x in result.refs] == refs


def _mutate(data: bytes, rnd: random.Random) -> bytes:
    kind = rnd.randrange(7)
    if not data:
        return b"\n"
    i = rnd.randrange(len(data))
    if kind == 0:
        return data[:i]
    if kind == 1:
        return _flip(data, i, rnd.randrange(8))
    if kind == 2:
        return data[:i] + bytes([rnd.randrange(256)]) + data[i:]
    if kind == 3:
        return data[:i] + data[i + 1 :]
    if kind == 4:
        lines = data.split(b"\n")
        j = rnd.randrange(len(lines))
        return b"\n".join([*lines[:j], lines[j], *lines[j:]])
    if kind == 5:
        return data[:i] + b"\0" * rnd.randrange(1, 64)
    lines = data.split(b"\n")
    rnd.shuffle(lines)
    return b"\n".join(lines)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_files(), st.randoms(use_true_random=False))
def test_mutations_rejected_or_valid(
    case: tuple[bytes, HashAlgo, list[tuple[bytes, bytes, bytes | None]]], rnd: random.Random
) -> None:
    """A mutation of a valid file is rejected (an error finding) or parses to a semantically valid file
    that re-serialises to one that parses the same."""
    data, algo, _ = case
    damaged = _mutate(data, rnd)
    result, fs = parse_packed_refs(damaged, algo)
    if errors(fs) or not result.complete:
        assert errors(fs)
        return
    assert_semantically_valid(result)
    again = serialize_packed_refs(
        [(x.name.encode("utf-8", "surrogateescape"), x.oid, x.peeled) for x in result.refs]
    )
    result2, fs2 = parse_packed_refs(again, algo)
    assert errors(fs2) == set() and problems(fs2) <= problems(fs) and refs_of(result2) == refs_of(result)
    # a cut that is not at a line boundary is never accepted
    if damaged == data[: len(damaged)] and damaged and not damaged.endswith(b"\n"):
        raise AssertionError("a cut inside a line was accepted")


@settings(max_examples=60, deadline=None)
@given(valid_files(), st.randoms(use_true_random=False))
def test_fast_paths_equal_slow_path(
    case: tuple[bytes, HashAlgo, list[tuple[bytes, bytes, bytes | None]]], rnd: random.Random
) -> None:
    """The C-level fast paths (whole body, per record) decide exactly like the byte-by-byte walk."""
    data, algo, _ = case
    for d in (data, _mutate(data, rnd)):
        fast = parse_packed_refs(d, algo)
        original = pr._Walker._take_run, pr._record_re
        try:
            pr._Walker._take_run = lambda self, start, stop: False  # type: ignore[method-assign]
            pr._record_re = lambda hexsz, max_line: re.compile(rb"(?!)")  # type: ignore[assignment]
            slow = parse_packed_refs(d, algo)
        finally:
            pr._Walker._take_run, pr._record_re = original  # type: ignore[method-assign]
        assert refs_of(fast[0]) == refs_of(slow[0])
        assert fast[0].complete == slow[0].complete and fast[0].git_error == slow[0].git_error
        assert sorted(f.code for f in fast[1]) == sorted(f.code for f in slow[1])
