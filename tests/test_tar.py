"""The forward-only tar reader (snapcheck.sources.tar).

Archives come from GNU tar (every --format), Python's tarfile (ustar, gnu, pax) and, for damage no
tool writes, from hand-built headers (tests/archives.py).  Each case asserts the exact finding code
and what is (not) yielded.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapcheck.errors import SourceError
from snapcheck.options import Limits
from snapcheck.report import Finding, code_info
from snapcheck.sources.base import EntryKind
from snapcheck.sources.tar import TarStream

from archives import (
    END,
    ChunkedReader,
    M,
    disk_listing,
    gnu_tar_list,
    make_tree,
    member,
    pad,
    pax_member,
    python_tarfile_list,
    raw_header,
    scan,
    tar_dir,
    tarfile_archive,
    zstd,
)

FILE, DIR, SYMLINK, HARDLINK = EntryKind.FILE, EntryKind.DIR, EntryKind.SYMLINK, EntryKind.HARDLINK


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tree") / "m.git"
    make_tree(
        root,
        {
            "HEAD": b"ref: refs/heads/main\n",
            "objects/pack/pack-1.pack": os.urandom(70_000),
            "objects/pack/pack-1.idx": os.urandom(1_200),
            "refs/heads/main": b"%040x\n" % 1,
            "refs/tags/empty": b"",
            ("deep/" * 30) + "long-name-file": b"deep\n",
        },
    )
    os.symlink("HEAD", root / "link-inside")
    os.link(root / "HEAD", root / "HEAD-hardlink")
    return root


def entries_of(data: bytes, **kw: object) -> list[tuple[str, EntryKind, int, str | None, bytes | None, int]]:
    return scan(data, **kw).entries  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- good archives
@pytest.mark.parametrize("fmt", ["gnu", "oldgnu", "posix", "ustar", "v7"])
def test_gnu_tar_formats(tree: Path, fmt: str) -> None:
    if fmt in ("ustar", "v7"):
        # ustar cannot hold the 150-byte name; v7 neither: archive the rest
        names = ["./HEAD", "./objects", "./refs", "./link-inside"]
        data = tar_dir(tree, f"--format={fmt}", members=names)
        expected = {
            p: v
            for p, v in disk_listing(tree).items()
            if p.split("/")[0] in ("HEAD", "objects", "refs", "link-inside")
        }
    else:
        data = tar_dir(tree, f"--format={fmt}")
        expected = disk_listing(tree)
    s = scan(data)
    assert s.bad == set(), s.findings
    assert s.end_marker_seen and len(data) % 10240 == 0
    if "HEAD-hardlink" in expected:
        # the first name of the inode in the archive holds the data, the second is a link member
        first, second = sorted(["HEAD", "HEAD-hardlink"], key=s.paths().index)
        expected[first] = (FILE, (tree / "HEAD").read_bytes())
        expected[second] = (HARDLINK, first)
    assert s.by_path() == expected


def test_fixture_mirror_plain_tar(mirrors: Callable[[str], Path]) -> None:
    mirror = mirrors("gc_bitmaps")
    data = tar_dir(mirror, "--exclude=*.lock")
    s = scan(data, use_chunks=True)
    assert s.bad == set(), s.findings
    assert s.by_path() == disk_listing(mirror)
    modes = {p: mode for p, k, _, _, _, mode in s.entries}
    for p, mode in modes.items():
        assert mode == os.lstat(mirror / p).st_mode & 0o7777 or p == ""


def test_tar_under_one_top_directory(tree: Path) -> None:
    data = tar_dir(tree.parent, members=[tree.name])
    s = scan(data)
    assert s.bad == set()
    assert s.paths()[0] == "m.git"
    assert all(p == "m.git" or p.startswith("m.git/") for p in s.paths())
    assert ("m.git/HEAD", FILE) in [(p, k) for p, k, *_ in s.entries]


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_python_tarfile_formats_with_long_names(fmt: int) -> None:
    long_dir = "refs/pull/" + "x" * 120
    ok_in_ustar = fmt == tarfile.USTAR_FORMAT
    name = f"./{long_dir}/head" if not ok_in_ustar else "./refs/" + "p" * 90 + "/" + "h" * 60
    target = "../" + "t" * 110 if not ok_in_ustar else "../target"
    members = [
        M("./", type=tarfile.DIRTYPE, mode=0o755),
        M(name, b"%040x\n" % 9),
        M("./objects/pack/pack-a.pack", os.urandom(5000), mode=0o444),
        M(f"./{long_dir if not ok_in_ustar else 'refs'}/lnk", type=tarfile.SYMTYPE, linkname=target),
        M("./objects/hl", type=tarfile.LNKTYPE, linkname="./objects/pack/pack-a.pack"),
        M("./objects/empty", b""),
    ]
    if fmt == tarfile.PAX_FORMAT:
        members.append(M("./refs/heads/ünïcode", b"u\n"))
    data = tarfile_archive(members, fmt)
    s = scan(data)
    assert s.bad == set(), s.findings
    got = {p: (k, body if k is FILE else link, mode) for p, k, _, link, body, mode in s.entries}
    assert got[""] == (DIR, None, 0o755)
    assert got[name[2:]] == (FILE, b"%040x\n" % 9, 0o644)
    assert got["objects/pack/pack-a.pack"][0] is FILE and got["objects/pack/pack-a.pack"][2] == 0o444
    lnk = f"{long_dir if not ok_in_ustar else 'refs'}/lnk"
    assert got[lnk][:2] == (SYMLINK, target)
    assert got["objects/hl"][:2] == (HARDLINK, "objects/pack/pack-a.pack")
    assert got["objects/empty"][:2] == (FILE, b"")
    if fmt == tarfile.PAX_FORMAT:
        assert got["refs/heads/ünïcode"][1] == b"u\n"


def test_names_without_dot_slash_and_ustar_prefix() -> None:
    prefix = b"objects/" + b"p" * 100
    data = (
        member(b"HEAD", b"ref: refs/heads/main\n")
        + member(b"dir/", typeflag=b"5")
        + member(b"file-in-prefix", b"abc", prefix=prefix)
        + member(b"old-style-dir/", typeflag=b"0")
        + member(b".", typeflag=b"5")
        + END
    )
    s = scan(data)
    assert s.bad == set()
    assert [(p, k) for p, k, *_ in s.entries] == [
        ("HEAD", FILE),
        ("dir", DIR),
        (prefix.decode() + "/file-in-prefix", FILE),
        ("old-style-dir", DIR),
        ("", DIR),
    ]


def test_odd_but_safe_paths_normalised() -> None:
    data = member(b"./a//b/./c", b"1") + member(b"././x/", typeflag=b"5") + member(b".hidden/./f", b"2") + END
    s = scan(data)
    assert s.bad == set()
    assert s.paths() == ["a/b/c", "x", ".hidden/f"]


def test_gnu_base256_size_and_pax_size() -> None:
    body = os.urandom(1000)
    b256 = b"\x80" + (1000).to_bytes(11, "big")
    data = (
        raw_header(b"./big256", size_field=b256)
        + pad(body)
        + pax_member({b"size": b"1000"})
        + raw_header(b"./paxsize", 0)
        + pad(body)
        + END
    )
    rc, names = gnu_tar_list(data)
    assert rc == 0 and names == ["./big256", "./paxsize"]
    s = scan(data)
    assert s.bad == set(), s.findings
    assert [(p, sz, d) for p, _, sz, _, d, _ in s.entries] == [
        ("big256", 1000, body),
        ("paxsize", 1000, body),
    ]


def test_pax_global_and_local_paths() -> None:
    data = (
        pax_member({b"path": b"./global-name"}, b"g")
        + pax_member({b"path": b"./local-name"})
        + member(b"./ignored", b"1")
        + member(b"./ignored2", b"2")
        + pax_member({b"path": b""}, b"g")
        + member(b"./plain", b"3")
        + END
    )
    s = scan(data)
    assert s.bad == set()
    assert s.paths() == ["local-name", "global-name", "plain"]


def test_no_padding_busybox_style_and_gnu_padding(tree: Path) -> None:
    body = member(b"./HEAD", b"ref: refs/heads/main\n")
    for tail in (END, END + bytes(8192), END + bytes(100)):
        s = scan(body + tail)
        assert s.bad == set() and s.end_marker_seen


# ----------------------------------------------------------------------------- reading member data
def test_unread_data_is_skipped(tree: Path) -> None:
    data = tar_dir(tree)
    s = scan(data, read_data=False)
    assert s.bad == set()
    assert sorted(s.paths()) == sorted(disk_listing(tree))


@pytest.mark.parametrize("sizes", [[1], [7, 512, 3], [513], [100_000]])
@pytest.mark.parametrize("read_sizes", [[1, 2, 4096], [511, 70_000], [3]])
def test_member_read_sizes_across_chunk_boundaries(
    tree: Path, sizes: list[int], read_sizes: list[int]
) -> None:
    data = tar_dir(tree, "--exclude=deep")
    s = scan(data, sizes=sizes, read_sizes=read_sizes)
    assert s.bad == set()
    expected = {p: v for p, v in disk_listing(tree).items() if not p.startswith("deep")}
    got = s.by_path()
    got.pop("HEAD-hardlink")
    expected.pop("HEAD-hardlink")
    got.pop("HEAD")
    expected.pop("HEAD")
    assert got == expected


def test_read_chunk_and_partial_reads(tree: Path) -> None:
    data = zstd(tar_dir(tree))
    s = scan(data, use_chunks=True)
    assert s.bad == set()
    assert s.by_path()["objects/pack/pack-1.pack"][1] == (tree / "objects/pack/pack-1.pack").read_bytes()
    # partial read, then the next entry: the rest is skipped
    findings: list[Finding] = []
    tar = TarStream(
        io.BytesIO(tar_dir(tree, "--exclude=deep")), limits=Limits(), findings=findings, label="x"
    )
    seen = []
    for e in tar.entries():
        if e.stream is not None and e.size > 10:
            head = e.stream.read(5)
            assert len(head) == 5 and e.stream.tell() == 5
        seen.append(e.path)
    assert findings == [] and "objects/pack/pack-1.pack" in seen and tar.end_marker_seen
    assert tar.members == len(seen)


def test_oserror_becomes_source_error(tree: Path) -> None:
    data = tar_dir(tree)
    tar = TarStream(ChunkedReader(data, [4096], fail_after=20_000), limits=Limits(), findings=[], label="x")
    with pytest.raises(SourceError):
        for e in tar.entries():
            if e.stream is not None:
                e.stream.read()


# ----------------------------------------------------------------------------- truncation
def test_missing_end_marker_at_member_boundary(tree: Path) -> None:
    data = tar_dir(tree)
    body = data.rstrip(b"\0")
    body += bytes(-len(body) % 512)  # back to the end of the last member
    rc, names = gnu_tar_list(body)
    assert rc == 0 and len(python_tarfile_list(body)) == len(names)  # both accept it
    s = scan(body)
    assert s.errors == {"tarMissingEndMarker"}
    assert not s.end_marker_seen and len(s.entries) == len(names)


@pytest.mark.parametrize("tail", [bytes(512), bytes(700), bytes(100)])
def test_partial_end_marker(tail: bytes) -> None:
    s = scan(member(b"./a", b"x") + tail)
    assert s.errors == {"tarMissingEndMarker"}


def test_cut_in_header() -> None:
    data = member(b"./a", b"x") + member(b"./b", b"y")
    s = scan(data[: 1024 + 300])
    assert s.errors == {"tarMissingEndMarker"}
    assert s.paths() == ["a"]


def test_member_cut_mid_data(tree: Path) -> None:
    data = tar_dir(tree)
    pack = (tree / "objects/pack/pack-1.pack").read_bytes()
    at = data.index(pack[:64]) + 30_000
    s = scan(data[:at])
    assert s.errors == {"tarMemberTruncated"}
    (f,) = s.findings
    assert f.path == "objects/pack/pack-1.pack" and "30000 of the member's 70000" in f.message
    got = s.by_path()["objects/pack/pack-1.pack"]
    assert got == (FILE, pack[:30_000])


def test_member_cut_in_padding() -> None:
    data = member(b"./a", b"x" * 10)
    s = scan(data[:600])
    assert s.errors == {"tarMissingEndMarker"}
    assert s.by_path() == {"a": (FILE, b"x" * 10)}


def test_cut_in_long_name_and_pax_data() -> None:
    long = tarfile_archive([M("./" + "n" * 700, b"data")], tarfile.GNU_FORMAT)
    assert scan(long[: 512 + 300]).errors == {"tarMemberTruncated"}
    pax = tarfile_archive([M("./" + "n" * 700, b"data")], tarfile.PAX_FORMAT)
    assert scan(pax[: 512 + 300]).errors == {"tarMemberTruncated"}
    paxsize = int(pax[124:136].rstrip(b"\0"), 8)
    member_at = 512 + paxsize + (-paxsize % 512)
    assert scan(pax[:member_at]).errors == {"tarMissingEndMarker"}  # after the pax header, before the member


def test_every_cut_of_a_plain_tar(tree: Path) -> None:
    """Every cut before the end marker is complete is rejected; cuts in GNU tar's zero padding are fine."""
    data = tarfile_archive(
        [
            M("./HEAD", b"ref: refs/heads/main\n"),
            M("./" + "l" * 150, b"y" * 700),
            M("./x", type=tarfile.SYMTYPE, linkname="HEAD"),
        ],
        tarfile.GNU_FORMAT,
    )
    end = len(data.rstrip(b"\0"))
    end += -end % 512 + 1024
    for n in range(0, len(data), 7):
        s = scan(data[:n])
        if n < end:
            assert s.errors, n
        else:
            assert s.bad == set(), n


# ----------------------------------------------------------------------------- unsafe members
@pytest.mark.parametrize(
    ("name", "code"),
    [
        (b"../evil", "tarPathTraversal"),
        (b"./a/../../x", "tarPathTraversal"),
        (b"a/../b", "tarPathTraversal"),
        (b"refs/..", "tarPathTraversal"),
        (b"/etc/passwd", "tarAbsolutePath"),
        (b"//x", "tarAbsolutePath"),
    ],
)
def test_unsafe_paths_not_yielded(name: bytes, code: str) -> None:
    data = member(b"./before", b"1") + member(name, b"evil data" * 100) + member(b"./after", b"2") + END
    s = scan(data)
    assert s.errors == {code}
    assert s.paths() == ["before", "after"]
    assert s.by_path()["after"] == (FILE, b"2")


def test_unsafe_paths_from_python_tarfile() -> None:
    data = tarfile_archive([M("/abs/file", b"x"), M("../up", b"y"), M("ok", b"z")], tarfile.PAX_FORMAT)
    s = scan(data)
    assert s.errors == {"tarAbsolutePath", "tarPathTraversal"}
    assert s.paths() == ["ok"]


@pytest.mark.parametrize(
    ("link", "ok"),
    [
        ("HEAD", True),
        ("../HEAD", True),
        # `..` after a component not known to be a real directory: the kernel could not resolve these
        # (x/ and sub/ do not exist) and they are the raw material of chained-symlink escapes
        ("./../x/../HEAD", False),
        ("sub/../../HEAD", False),
        ("../../etc/passwd", False),
        ("/etc/passwd", False),
        ("../../../..", False),
    ],
)
def test_symlink_escapes(tmp_path: Path, link: str, ok: bool) -> None:
    root = make_tree(tmp_path / "r", {"HEAD": b"x", "refs/heads/main": b"y"})
    os.symlink(link, root / "refs" / "lnk")
    s = scan(tar_dir(root))
    if ok:
        assert s.bad == set() and s.by_path()["refs/lnk"] == (SYMLINK, link)
    else:
        assert s.errors == {"tarLinkEscapes"} and "refs/lnk" not in s.paths()


@pytest.mark.parametrize(
    ("target", "ok"),
    [("./HEAD", True), ("HEAD", True), ("../HEAD", False), ("/etc/passwd", False), ("a/../../x", False)],
)
def test_hardlink_escapes(target: str, ok: bool) -> None:
    data = tarfile_archive([M("./HEAD", b"x"), M("./hl", type=tarfile.LNKTYPE, linkname=target)])
    s = scan(data)
    if ok:
        assert s.bad == set() and s.by_path()["hl"] == (HARDLINK, "HEAD")
    else:
        assert s.errors == {"tarLinkEscapes"} and "hl" not in s.paths()


def test_member_through_symlink() -> None:
    data = tarfile_archive(
        [
            M("./objects", type=tarfile.SYMTYPE, linkname="."),
            M("./objects/pack/x", b"via the link"),
            M("./d/up", type=tarfile.SYMTYPE, linkname=".."),
            M("./esc", type=tarfile.SYMTYPE, linkname="d/up/.."),
            M("./real", b"ok"),
        ]
    )
    s = scan(data)
    assert s.errors == {"tarPathThroughSymlink", "tarLinkEscapes"}
    assert s.paths() == ["objects", "d/up", "real"]


@pytest.mark.parametrize(
    ("type_", "code"),
    [
        (tarfile.CHRTYPE, "tarDeviceMember"),
        (tarfile.BLKTYPE, "tarDeviceMember"),
        (tarfile.FIFOTYPE, "tarFifoMember"),
    ],
)
def test_devices_and_fifos(type_: bytes, code: str) -> None:
    data = tarfile_archive([M("./dev", type=type_), M("./after", b"a")], tarfile.GNU_FORMAT)
    s = scan(data)
    assert s.errors == {code} and s.paths() == ["after"]


def test_fifo_from_gnu_tar(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "r", {"HEAD": b"x"})
    os.mkfifo(root / "pipe")
    s = scan(tar_dir(root))
    assert s.errors == {"tarFifoMember"} and "pipe" not in s.paths()


def test_nul_in_long_names() -> None:
    data = pax_member({b"path": b"./a\0b"}) + member(b"./x", b"1") + member(b"./ok", b"2") + END
    s = scan(data)
    assert s.errors == {"tarNulInName"} and s.paths() == ["ok"]
    longname = member(b"././@LongLink", b"./abc\0def\0", typeflag=b"L")
    s = scan(longname + member(b"./short", b"1") + END)
    assert s.errors == {"tarNulInName"} and s.paths() == []


def test_backslash_is_a_warning() -> None:
    s = scan(member(b"./refs\\heads", b"1") + END)
    assert s.codes == {"tarBackslashPath"} and s.errors == set()
    assert s.paths() == ["refs\\heads"]


def test_path_too_long() -> None:
    limits = Limits(max_path_length=60)
    for name in ("a" * 70, "a" * 150):  # a plain header name; a GNU long-name record
        data = tarfile_archive([M("./" + name, b"1"), M("./short", b"2")], tarfile.GNU_FORMAT)
        s = scan(data, limits)
        assert s.errors == {"tarPathTooLong"} and s.paths() == ["short"]
    data = tarfile_archive([M("./" + "b" * 90, b"1"), M("./short", b"2")], tarfile.USTAR_FORMAT)
    s = scan(data, limits)
    assert s.errors == {"tarPathTooLong"} and s.paths() == ["short"]


def test_too_many_members(tree: Path) -> None:
    s = scan(tar_dir(tree), Limits(max_members=3))
    assert s.errors == {"tarTooManyMembers"} and len(s.entries) == 3


def test_sparse_members_are_unsupported(tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    with open(root / "sparse", "wb") as f:
        f.truncate(1 << 20)
        f.seek(500_000)
        f.write(b"abc")
    (root / "after").write_bytes(b"ok")
    for fmt in ("gnu", "posix"):
        s = scan(tar_dir(root, "-S", f"--format={fmt}", members=["sparse", "after"]))
        assert s.errors == {"tarUnsupportedMember"}, (fmt, s.findings)
        assert "sparse" in s.findings[0].path
        assert s.paths() == ["after"]


@pytest.mark.parametrize("typeflag", [b"1", b"2", b"6"])
def test_sized_links_follow_gnu_tar_and_are_flagged(typeflag: bytes) -> None:
    """A link/fifo header with a size: GNU tar skips the data (symlink, fifo) or ignores the size (hard
    link); we walk the archive as GNU tar does and report the ambiguity."""
    hidden = member(b"./inner", b"x")[:600]
    data = raw_header(b"./l", 600, typeflag, linkname=b"HEAD") + pad(hidden) + member(b"./after", b"y") + END
    rc, names = gnu_tar_list(data)
    assert rc == 0
    s = scan(data)
    assert "tarAmbiguousSize" in s.errors
    assert ["./" + p for p in s.paths() if p != "l"] == [n for n in names if n != "./l"]


def test_directory_by_trailing_slash_skips_its_data() -> None:
    data = raw_header(b"./d/", 600, b"0") + pad(member(b"./inner", b"x")[:600]) + member(b"./after", b"y") + END
    rc, names = gnu_tar_list(data)
    assert rc == 0 and names == ["./d/", "./after"]
    s = scan(data)
    assert s.bad == set() and [(p, k) for p, k, *_ in s.entries] == [("d", DIR), ("after", FILE)]


def test_unknown_type_is_read_as_file() -> None:
    s = scan(member(b"./odd", b"data", typeflag=b"Q") + END)
    assert s.codes == {"tarUnknownType"} and s.errors == set()
    assert s.by_path() == {"odd": (FILE, b"data")}


# ----------------------------------------------------------------------------- damaged headers and tails
def test_header_checksum() -> None:
    data = bytearray(member(b"./a", b"x") + member(b"./b", b"y") + END)
    data[1024 + 5] ^= 0x40  # a letter of the second name
    s = scan(bytes(data))
    assert s.errors == {"tarHeaderChecksum"} and s.paths() == ["a"]


def test_signed_checksum_accepted() -> None:
    h = bytearray(raw_header(b"./\xe9t\xe9", 1))
    h[148:156] = b" " * 8
    signed = sum(b - 256 if b > 127 else b for b in h)
    h[148:156] = b"%06o\0 " % signed
    s = scan(bytes(h) + pad(b"x") + END)
    assert s.bad == set() and s.paths() == ["\udce9t\udce9"]


@pytest.mark.parametrize("size_field", [b"12345678901x", b"\xff" + bytes(11), b"0009\0\0\0\0\0\0\0\0"])
def test_bad_size_field(size_field: bytes) -> None:
    s = scan(raw_header(b"./a", size_field=size_field) + END)
    assert s.errors == {"tarBadHeader"}


def test_bad_pax_records() -> None:
    for body in (b"12 path=abc", b"99 path=x\n", b"x path=y\n", b"4 =\n", b"6 path\n"):
        s = scan(member(b"PaxHeader", body, typeflag=b"x") + member(b"./a", b"1") + END)
        assert s.errors == {"tarBadHeader"}, body
    for size in (b"12a", b"9" * 5000):  # not a number; more digits than int() takes
        s = scan(pax_member({b"size": size}) + member(b"./a", b"1") + END)
        assert s.errors == {"tarBadHeader"}


def test_trailing_data_after_end_marker(tree: Path) -> None:
    data = tar_dir(tree)
    assert scan(data + bytes(4096)).bad == set()
    s = scan(data + b"garbage")
    assert s.errors == {"tarTrailingData"} and s.end_marker_seen
    s = scan(data + member(b"./appended", b"x") + END)
    assert s.errors == {"tarTrailingData"}


def test_lone_zero_block() -> None:
    data = member(b"./a", b"x") + bytes(512) + member(b"./b", b"y") + END
    _, names = gnu_tar_list(data)
    assert names == ["./a"]  # GNU tar stops at the lone zero block (with a warning)
    s = scan(data)
    assert s.errors == {"tarLoneZeroBlock"} and s.paths() == ["a"]


def test_upstream_failure_is_not_reported_twice(tree: Path) -> None:
    data = zstd(tar_dir(tree))
    s = scan(data[: len(data) // 2])
    assert "zstdTruncated" in s.errors and "tarMissingEndMarker" not in s.codes


# ----------------------------------------------------------------------------- hypothesis
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4000))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    findings: list[Finding] = []
    tar = TarStream(io.BytesIO(data), limits=Limits(), findings=findings, label="x")
    for e in tar.entries():
        if e.stream is not None:
            e.stream.read()
    for f in findings:
        assert code_info(f.code).severity is f.severity


_BASE = tarfile_archive(
    [
        M("./HEAD", b"ref: refs/heads/main\n"),
        M("./" + "l" * 150, b"y" * 700),
        M("./x", type=tarfile.SYMTYPE, linkname="HEAD"),
        M("./d", type=tarfile.DIRTYPE),
    ],
    tarfile.PAX_FORMAT,
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, len(_BASE) - 1), st.integers(0, 255)), max_size=4),
    st.integers(0, len(_BASE)),
    st.lists(st.integers(1, 2000), min_size=1, max_size=3),
)
def test_mutated_tar_never_raises(edits: list[tuple[int, int]], cut: int, sizes: list[int]) -> None:
    b = bytearray(_BASE)
    for pos, val in edits:
        b[pos] = val
    s = scan(bytes(b[:cut]), sizes=sizes, read_sizes=[1, 300])
    for f in s.findings:
        assert code_info(f.code).severity is f.severity


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.text("abc/.", min_size=1, max_size=12), st.binary(max_size=1500)), max_size=6),
    st.lists(st.integers(1, 3000), min_size=1, max_size=3),
)
def test_matches_python_tarfile(members: list[tuple[str, bytes]], sizes: list[int]) -> None:
    """Every safe member Python's tarfile writes comes back with its bytes; unsafe ones are reported."""
    data = tarfile_archive([M(name, body) for name, body in members], tarfile.PAX_FORMAT)
    s = scan(data, sizes=sizes, read_sizes=[7, 1000])
    expected = []
    for name, body in members:
        parts = [c for c in name.split("/") if c and c != "."]
        if name.startswith("/") or ".." in parts or name.endswith("/"):
            continue  # reported (unsafe) or a directory by the old trailing-slash convention
        expected.append(("/".join(parts), body))
    got = [(p, d) for p, k, _, _, d, _ in s.entries if k is FILE]
    assert got == [(p, b) for p, b in expected if p]
    assert s.end_marker_seen


def test_registered_codes() -> None:
    for code in (
        "tarMissingEndMarker",
        "tarMemberTruncated",
        "tarHeaderChecksum",
        "tarBadHeader",
        "tarAbsolutePath",
        "tarPathTraversal",
        "tarBackslashPath",
        "tarNulInName",
        "tarLinkEscapes",
        "tarPathThroughSymlink",
        "tarDeviceMember",
        "tarFifoMember",
        "tarTooManyMembers",
        "tarPathTooLong",
        "tarTrailingData",
        "tarLoneZeroBlock",
        "tarUnsupportedMember",
        "tarUnknownType",
    ):
        info = code_info(code)
        assert info.area == "tar" and info.meaning and info.git
