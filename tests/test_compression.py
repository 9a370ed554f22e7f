"""The compression layer (snapcheck.sources.compression): zstd frame chains, pzstd, gzip, none.

Archives are made with the real binaries (``tar``, ``zstd``, ``pzstd``, ``gzip``), damaged byte by
byte, and the exact finding code is asserted; the real tools are asked what they make of the same
bytes where the point is that they accept them.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snapcheck.errors import SourceError
from snapcheck.options import Limits
from snapcheck.report import Finding, code_info
from snapcheck.sources.compression import DecompressedStream, detect

from archives import (
    ChunkedReader,
    cachew_archive,
    disk_listing,
    gnu_tar_list,
    gzip,
    iter_pieces,
    make_tree,
    python_tarfile_list,
    pzstd,
    pzstd_layout,
    run,
    scan,
    tar_dir,
    zstd,
    zstd_dc,
)


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def small_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("small") / "repo.git"
    rnd = os.urandom(300_000)
    make_tree(
        root,
        {
            "HEAD": b"ref: refs/heads/main\n",
            "config": b"[core]\n\tbare = true\n",
            "packed-refs": b"".join(b"%040x refs/pull/%d/head\n" % (i * 7919, i) for i in range(2000)),
            "objects/pack/pack-1.pack": rnd,
            "refs/heads/main": b"%040x\n" % 5,
            "packed-refs.lock": b"must be excluded\n",
        },
    )
    return root


@pytest.fixture(scope="module")
def small_tar(small_tree: Path) -> bytes:
    return tar_dir(small_tree, "--exclude=*.lock")


@pytest.fixture(scope="module")
def big_tar(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A tar over 8 MiB of small files whose members are 64 KiB each (header + 65024 bytes), so pzstd
    writes 2 frames and the first frame boundary (8 MiB of tar) is a member boundary: the cut
    nothing else detects."""
    root = tmp_path_factory.mktemp("many") / "objects"
    names = [f"./{i:02x}/{i:038x}" for i in range(140)]
    make_tree(root, {n[2:]: os.urandom(65024) for n in names})
    data = tar_dir(root, members=names)
    assert len(data) > 8 << 20
    return data


@pytest.fixture(scope="module")
def big_tzst(big_tar: bytes) -> bytes:
    return pzstd(big_tar)


def flip(data: bytes, pos: int, bit: int = 0) -> bytes:
    b = bytearray(data)
    b[pos] ^= 1 << bit
    return bytes(b)


def assert_registered(findings: list[Finding]) -> None:
    for f in findings:
        assert code_info(f.code).severity is f.severity
        assert f.message


# ----------------------------------------------------------------------------- detect
@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"\x28\xb5\x2f\xfd\x04\x58", "zstd"),
        (b"\x50\x2a\x4d\x18\x04\x00\x00\x00", "zstd"),
        (b"\x5e\x2a\x4d\x18\x04\x00\x00\x00", "zstd"),
        (b"\x1f\x8b\x08\x00", "gzip"),
        (bytes(512), "tar"),
        (b"PK\x03\x04" + bytes(600), "unknown"),
        (b"\x28\xb5\x2f", "unknown"),
        (b"", "unknown"),
        (b"x" * 512, "unknown"),
    ],
)
def test_detect_magic(head: bytes, kind: str) -> None:
    assert detect(head) == kind


def test_detect_real_archives(small_tar: bytes) -> None:
    assert detect(small_tar[:512]) == "tar"
    assert detect(zstd(small_tar)[:512]) == "zstd"
    assert detect(pzstd(small_tar)[:512]) == "zstd"
    assert detect(gzip(small_tar)[:512]) == "gzip"
    # a tar's first block must carry a valid checksum
    assert detect(flip(small_tar, 0)[:512]) == "unknown"


# ----------------------------------------------------------------------------- good archives
@pytest.mark.parametrize("config", ["gc_bitmaps", "loose"])
def test_cachew_archive_of_fixture_mirror(mirrors: Callable[[str], Path], config: str) -> None:
    """tar -cpf - -C mirror --exclude='*.lock' . | pzstd -c -p2: every member, bytes equal, no findings."""
    mirror = mirrors(config)
    data = cachew_archive(mirror)
    assert data[:4] == b"\x50\x2a\x4d\x18"
    s = scan(data)
    assert s.bad == set(), s.findings
    assert s.kind == "zstd" and s.end_marker_seen
    assert s.frames == len(pzstd_layout(data))
    assert s.by_path() == disk_listing(mirror)
    assert all(p == "" or not p.startswith(("./", "/")) for p in s.paths())


@pytest.mark.parametrize(
    "how", ["zstd", "zstd-T2", "zstd-19", "pzstd", "pzstd-p1", "gzip", "gzip-multi", "tar"]
)
def test_every_compression_gives_the_same_entries(small_tree: Path, small_tar: bytes, how: str) -> None:
    makers: dict[str, Callable[[bytes], bytes]] = {
        "zstd": lambda t: zstd(t),
        "zstd-fcs": lambda t: zstd(t, f"--stream-size={len(t)}"),  # single segment, content size
        "zstd-T2": lambda t: zstd(t, "-T2"),
        "zstd-19": lambda t: zstd(t, "-19"),
        "pzstd": lambda t: pzstd(t),
        "pzstd-p1": lambda t: pzstd(t, 1),
        "gzip": lambda t: gzip(t),
        "gzip-multi": lambda t: gzip(t[:100_000]) + gzip(t[100_000:]),
        "tar": lambda t: t,
    }
    data = makers[how](small_tar)
    s = scan(data)
    assert s.bad == set(), s.findings
    assert s.kind == {"gzip": "gzip", "gzip-multi": "gzip", "tar": "none"}.get(how, "zstd")
    if how == "gzip-multi":
        assert s.frames == 2
    assert (small_tree / "packed-refs.lock").exists() and "packed-refs.lock" not in s.paths()
    assert s.by_path() == disk_listing(small_tree)


def test_zstd_multi_frame_from_concatenation(small_tar: bytes) -> None:
    """Plain zstd frames one after another (zstd -c a; zstd -c b) are one stream, like zstd -d says."""
    data = zstd(small_tar[:200_000]) + zstd(small_tar[200_000:])
    assert zstd_dc(data) == (0, small_tar)
    s = scan(data)
    assert s.bad == set() and s.frames == 2


def test_decompressed_bytes_equal_zstd_dc(big_tzst: bytes, big_tar: bytes) -> None:
    rc, out = zstd_dc(big_tzst)
    assert rc == 0 and out == big_tar
    findings: list[Finding] = []
    dec = DecompressedStream(io.BytesIO(big_tzst), limits=Limits(), findings=findings, label="x")
    assert dec.read() == big_tar
    assert findings == []
    assert dec.kind == "zstd" and dec.frames == 2 == len(pzstd_layout(big_tzst))
    assert dec.compressed_bytes == len(big_tzst) and dec.decompressed_bytes == len(big_tar)


def test_read_semantics_across_tiny_raw_reads(small_tar: bytes) -> None:
    """read(n) gives exactly n bytes (or the rest) whatever the raw stream's read sizes; readinto too."""
    data = pzstd(small_tar)
    dec = DecompressedStream(ChunkedReader(data, [1, 7, 3, 1000, 5]), limits=Limits(), findings=[], label="x")
    got = bytearray()
    sizes = [1, 511, 4096, 3, 70_000]
    i = 0
    while True:
        want = sizes[i % len(sizes)]
        i += 1
        piece = dec.read(want)
        if not piece:
            break
        assert len(piece) == want or len(got) + len(piece) == len(small_tar)
        got += piece
    assert bytes(got) == small_tar
    dec2 = DecompressedStream(io.BytesIO(data), limits=Limits(), findings=[], label="x")
    buf = bytearray(1000)
    n = dec2.readinto(buf)
    assert 0 < n <= 1000 and bytes(buf[:n]) == small_tar[:n]
    assert dec2.readable()


def test_output_pieces_are_bounded() -> None:
    """Bounded memory: a frame is fed whole blocks at a time, so no piece exceeds 32 x 128 KiB."""
    zeros = zstd(bytes(60 << 20))  # ~2 KiB that decode to 60 MiB
    assert len(zeros) < 10_000
    pieces = [len(p) for p in iter_pieces(zeros)]
    assert sum(pieces) == 60 << 20
    assert max(pieces) <= 4 << 20


def test_other_skippable_frames_are_skipped(small_tar: bytes) -> None:
    z = zstd(small_tar)
    data = struct.pack("<II", 0x184D2A5E, 5) + b"hello" + z + struct.pack("<II", 0x184D2A51, 0)
    assert zstd_dc(data) == (0, small_tar)
    s = scan(data)
    assert s.bad == set() and s.frames == 1


def test_frame_without_checksum_is_only_info(small_tar: bytes) -> None:
    s = scan(zstd(small_tar, "--no-check"))
    assert s.bad == set()
    assert s.codes == {"zstdNoChecksum"}


# ----------------------------------------------------------------------------- the cut nobody sees
def test_cut_at_pzstd_frame_boundary_is_tarMissingEndMarker(big_tzst: bytes, big_tar: bytes) -> None:
    layout = pzstd_layout(big_tzst)
    assert len(layout) >= 2
    off, size = layout[0]
    cut = big_tzst[: off + size]
    # zstd, GNU tar and Python's tarfile all accept the cut archive as complete
    rc, out = zstd_dc(cut)
    assert rc == 0 and len(out) == 8 << 20 and out == big_tar[: 8 << 20]
    rc, names = gnu_tar_list(out)
    assert rc == 0 and len(names) == 128
    assert len(python_tarfile_list(out)) == len(names)
    # we do not
    s = scan(cut)
    assert s.errors == {"tarMissingEndMarker"}, s.findings
    assert not s.end_marker_seen
    assert s.members == len(names)


def test_cut_between_pzstd_header_and_frame(big_tzst: bytes) -> None:
    off, _ = pzstd_layout(big_tzst)[1]
    s = scan(big_tzst[:off])
    assert "zstdTruncated" in s.errors
    assert "tarMissingEndMarker" not in s.codes  # the root cause is reported once


# ----------------------------------------------------------------------------- damaged zstd
@pytest.mark.parametrize("where", [0.1, 0.5, 0.9])
def test_zstd_cut_mid_frame(small_tar: bytes, where: float) -> None:
    data = zstd(small_tar)
    cut = data[: int(len(data) * where)]
    assert zstd_dc(cut)[0] != 0
    s = scan(cut)
    assert "zstdTruncated" in s.errors


@pytest.mark.parametrize("back", [1, 4, 5])
def test_zstd_cut_in_last_block_or_checksum(small_tar: bytes, back: int) -> None:
    data = pzstd(small_tar)
    s = scan(data[:-back])
    assert "zstdTruncated" in s.errors


def test_zstd_cut_in_pzstd_header(big_tzst: bytes) -> None:
    off, _ = pzstd_layout(big_tzst)[1]
    for k in (1, 3, 4, 7, 11):
        s = scan(big_tzst[: off - 12 + k])
        assert "zstdTruncated" in s.errors, k


def test_flipped_bit_in_raw_block_is_checksum_mismatch(tmp_path: Path) -> None:
    """Random data is stored in raw blocks: a flipped bit changes only content, caught by XXH64."""
    tree = make_tree(tmp_path / "r", {"pack": os.urandom(1 << 20)})
    data = pzstd(tar_dir(tree))
    bad = flip(data, len(data) // 2, 3)
    assert zstd_dc(bad)[0] != 0
    s = scan(bad)
    assert "zstdChecksumMismatch" in s.errors


def test_flipped_checksum_byte(small_tar: bytes) -> None:
    data = zstd(small_tar)
    s = scan(flip(data, len(data) - 2))
    assert s.errors & {"zstdChecksumMismatch"}


def test_flipped_bits_anywhere_are_rejected(small_tar: bytes) -> None:
    data = pzstd(small_tar)
    step = max(1, len(data) // 97)
    for pos in range(0, len(data), step):
        bit = pos % 8
        bad = flip(data, pos, bit)
        s = scan(bad)
        if pos == 0 and bit < 4:
            # 0x184D2A50 -> 0x184D2A5x: still a skippable frame (one zstd also skips), content intact
            assert zstd_dc(bad) == (0, small_tar) and s.bad == set()
            continue
        assert s.errors, f"flip at {pos} of {len(data)} accepted"


def test_reserved_block_type_is_frame_corrupt(small_tar: bytes) -> None:
    data = zstd(small_tar)
    fhd = data[4]
    assert fhd & 0x20 == 0  # not single segment: window descriptor present
    hsize = 6 + (0, 2, 4, 8)[fhd >> 6] + (0, 1, 2, 4)[fhd & 3]
    b = bytearray(data)
    b[hsize] |= 0b110  # block type 3
    s = scan(bytes(b))
    assert "zstdFrameCorrupt" in s.errors


def test_reserved_header_bit_is_frame_corrupt(small_tar: bytes) -> None:
    s = scan(flip(zstd(small_tar), 4, 3))
    assert "zstdFrameCorrupt" in s.errors


@pytest.mark.parametrize("tail", [b"garbage!", b"\0\0\0\0", b"\0", b"xy", bytes(5000)])
def test_zstd_trailing_garbage(small_tar: bytes, tail: bytes) -> None:
    data = pzstd(small_tar) + tail
    assert zstd_dc(data)[0] != 0
    s = scan(data)
    assert "zstdTrailingGarbage" in s.errors
    assert s.end_marker_seen  # the tar itself was complete


def test_zstd_trailing_magic_prefix_is_truncation(small_tar: bytes) -> None:
    s = scan(zstd(small_tar) + b"\x28\xb5")
    assert "zstdTruncated" in s.errors


@pytest.mark.parametrize("delta", [1, -1, 1000])
def test_pzstd_skippable_size_mismatch(big_tzst: bytes, delta: int) -> None:
    off, size = pzstd_layout(big_tzst)[0]
    b = bytearray(big_tzst)
    struct.pack_into("<I", b, off - 4, size + delta)
    bad = bytes(b)
    assert zstd_dc(bad)[0] == 0  # zstd -d ignores the announcement
    assert run(["pzstd", "-q", "-dc"], input=bad, check=False).returncode != 0
    s = scan(bad)
    assert s.errors == {"zstdSkippableSizeMismatch"}, s.findings


def test_pzstd_header_followed_by_skippable(small_tar: bytes) -> None:
    data = pzstd(small_tar)
    bad = data[:12] + struct.pack("<II", 0x184D2A5E, 0) + data[12:]
    s = scan(bad)
    assert "zstdSkippableSizeMismatch" in s.errors


def test_window_too_large_real_long31(small_tar: bytes) -> None:
    data = zstd(small_tar[:50_000], "--long=31")
    assert data[5] >> 3 == 31 - 10  # window descriptor: 2^31
    s = scan(data)
    assert "zstdWindowTooLarge" in s.errors
    (f,) = [f for f in s.findings if f.code == "zstdWindowTooLarge"]
    assert "--zstd-window" in f.message and str(1 << 31) in f.message


def test_window_limit_is_configurable(small_tar: bytes) -> None:
    """A crafted window descriptor (2^24, the content still decodes): over a 2^23 cap, fine under 2^24."""
    data = bytearray(zstd(small_tar))
    assert data[4] & 0x20 == 0
    data[5] = (24 - 10) << 3
    assert scan(bytes(data), Limits(zstd_window=1 << 23)).errors == {"zstdWindowTooLarge"}
    assert scan(bytes(data), Limits(zstd_window=1 << 24)).bad == set()


def test_decompression_bomb_ratio() -> None:
    bomb = zstd(bytes(100 << 20))
    findings: list[Finding] = []
    dec = DecompressedStream(io.BytesIO(bomb), limits=Limits(), findings=findings, label="bomb.zst")
    total = 0
    while piece := dec.read_chunk():
        total += len(piece)
    assert [f.code for f in findings] == ["decompressionRatioExceeded"]
    assert total < 100 << 20 and dec.failed
    # a higher limit lets it through
    findings2: list[Finding] = []
    dec2 = DecompressedStream(
        io.BytesIO(bomb), limits=Limits(max_ratio=100_000), findings=findings2, label="b"
    )
    while dec2.read_chunk():
        pass
    assert findings2 == [] and dec2.decompressed_bytes == 100 << 20


def test_decompression_total_limit(small_tar: bytes) -> None:
    s = scan(pzstd(small_tar), Limits(max_total_bytes=100_000))
    assert "decompressionTotalExceeded" in s.errors
    assert "tarMissingEndMarker" not in s.codes


# ----------------------------------------------------------------------------- gzip
def test_gzip_cut(small_tar: bytes) -> None:
    data = gzip(small_tar)
    for cut in (len(data) // 2, len(data) - 1, len(data) - 8, 11):
        assert "gzipTruncated" in scan(data[:cut]).errors, cut


@pytest.mark.parametrize("back", [8, 5, 4, 1])  # CRC32 bytes, ISIZE bytes
def test_gzip_trailer_mismatch(small_tar: bytes, back: int) -> None:
    data = gzip(small_tar)
    bad = flip(data, len(data) - back)
    assert run(["gzip", "-t"], input=bad, check=False).returncode != 0
    assert "gzipCorrupt" in scan(bad).errors


def test_gzip_corrupt_body(small_tar: bytes) -> None:
    data = gzip(small_tar)
    s = scan(flip(data, len(data) // 2))
    assert s.errors & {"gzipCorrupt"}


def test_gzip_trailing(small_tar: bytes) -> None:
    data = gzip(small_tar)
    assert scan(data + bytes(3000)).bad == set()  # gzip: "trailing zero bytes ignored"
    assert scan(data + b"\0\0junk").errors == {"gzipTrailingGarbage"}
    assert scan(data + b"\x1f").errors == {"gzipTruncated"}  # the first byte of another member
    assert scan(data + b"\x1f\x8b\x08").errors == {"gzipTruncated"}


# ----------------------------------------------------------------------------- empty, unknown, I/O errors
def test_empty_object() -> None:
    s = scan(b"")
    assert s.errors == {"archiveEmpty"} and s.entries == []


@pytest.mark.parametrize("data", [b"PK\x03\x04hello", b"x" * 5000, b"\x00", b"BZh91AY&SY" + bytes(600)])
def test_unknown_format(data: bytes) -> None:
    s = scan(data)
    assert s.errors == {"archiveUnknownFormat"} and s.entries == []


def test_oserror_becomes_source_error(small_tar: bytes) -> None:
    data = pzstd(small_tar)
    for fail_after in (0, 100, len(data) // 2):
        findings: list[Finding] = []
        dec = DecompressedStream(
            ChunkedReader(data, [50_000], fail_after=fail_after),
            limits=Limits(),
            findings=findings,
            label="x",
        )
        with pytest.raises(SourceError):
            while dec.read_chunk():
                pass
        assert findings == []


# ----------------------------------------------------------------------------- every truncation point
@pytest.mark.parametrize("how", ["pzstd", "zstd", "zstd-fcs", "gzip"])
def test_every_truncation_point_is_rejected(tmp_path: Path, how: str) -> None:
    tree = make_tree(
        tmp_path / "t",
        {
            "HEAD": b"ref: refs/heads/main\n",
            "refs/heads/main": b"%040x\n" % 7,
            "objects/ab/cdef": os.urandom(700),
            "packed-refs": b"# pack-refs\n" * 40,
        },
    )
    tar = tar_dir(tree)
    makers: dict[str, Callable[[bytes], bytes]] = {
        "pzstd": pzstd, "zstd": zstd, "gzip": gzip, "zstd-fcs": lambda t: zstd(t, f"--stream-size={len(t)}")}
    data = makers[how](tar)
    if how == "zstd-fcs":
        assert data[4] & 0x20  # single segment: the window is the content size
    assert scan(data).bad == set()
    for n in range(len(data)):
        s = scan(data[:n])
        assert s.errors, f"{how}: cut at {n} of {len(data)} accepted"


# ----------------------------------------------------------------------------- hypothesis
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    for prefix in (b"", b"\x28\xb5\x2f\xfd", b"\x50\x2a\x4d\x18\x04\0\0\0", b"\x1f\x8b\x08"):
        s = scan(prefix + data)
        assert_registered(s.findings)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_mutated_real_archive_never_raises(data: st.DataObject) -> None:
    base = _SMALL_ARCHIVES[data.draw(st.sampled_from(sorted(_SMALL_ARCHIVES)))]
    b = bytearray(base)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(b) - 1))
        b[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(b)))
    s = scan(bytes(b[:cut]), sizes=data.draw(st.sampled_from([[1 << 20], [1, 13, 512], [4096]])))
    assert_registered(s.findings)
    if cut < len(b):
        assert s.errors  # every cut of these archives is visible


def _small_archives() -> dict[str, bytes]:
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for i, size in enumerate((0, 10, 600, 3000)):
            ti = tarfile.TarInfo(f"./objects/pack/{'x' * (30 * i)}/file{i}")
            ti.size = size
            tf.addfile(ti, io.BytesIO(os.urandom(size)))
    tar = buf.getvalue()
    return {"zstd": zstd(tar), "pzstd": pzstd(tar), "gzip": gzip(tar)}


_SMALL_ARCHIVES = _small_archives()


def test_registered_codes() -> None:
    for code in (
        "archiveEmpty",
        "archiveUnknownFormat",
        "zstdTruncated",
        "zstdFrameCorrupt",
        "zstdChecksumMismatch",
        "zstdTrailingGarbage",
        "zstdSkippableSizeMismatch",
        "zstdWindowTooLarge",
        "zstdNoChecksum",
        "gzipTruncated",
        "gzipCorrupt",
        "gzipTrailingGarbage",
        "decompressionRatioExceeded",
        "decompressionTotalExceeded",
    ):
        info = code_info(code)
        assert info.area == "compression" and info.meaning and info.git


def test_kind_before_read(small_tar: bytes) -> None:
    dec = DecompressedStream(io.BytesIO(gzip(small_tar)), limits=Limits(), findings=[], label="x")
    assert dec.kind == "gzip"
    assert dec.read() == small_tar
