"""Resource limits, end to end.

Two kinds of test:

* **Peak memory** of ``python -m snapcheck verify -`` on hostile archives that are generated on the
  fly into the child's stdin (nothing large is stored): a zstd bomb, a gzip bomb, a tar of 10^6 empty
  members, a member header claiming 10 GB followed by a cut, a ``packed-refs`` of one 100 MB line, an
  idx claiming 2^32 objects.  The child's peak RSS is read from ``os.wait4`` (``ru_maxrss``) and must
  stay under :data:`RSS_LIMIT_MIB`; the verdict must be "corrupt" (exit 1) with the finding that names
  the cause, and stderr must hold no traceback.
* **Every limit of** :class:`snapcheck.options.Limits` is enforced through ``verify_stream`` (the
  whole pipeline: compression, tar, collector, parsers) with the finding code it documents, and a
  real mirror stays sound when a limit only changes *where* bytes are kept (spooled instead of held).
"""

from __future__ import annotations

import io
import itertools
import json
import os
import subprocess
import sys
import tarfile
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pytest

from snapcheck.codes import load_all
from snapcheck.options import Limits, VerifyOptions
from snapcheck.report import Report, code_info
from snapcheck.verifier import verify_stream

ROOT = Path(__file__).resolve().parent.parent
RSS_LIMIT_MIB = 256
Mirrors = Callable[[str], Path]


# ----------------------------------------------------------------------------- hostile streams
def header(name: bytes, size: int, typeflag: bytes = b"0") -> bytes:
    """A ustar header; sizes over 8 GiB use GNU base-256, as GNU tar writes them."""
    h = bytearray(512)
    h[0 : len(name)] = name
    h[100:108] = b"0000644\0"
    h[108:116] = b"0001750\0"
    h[116:124] = b"0001750\0"
    h[124:136] = b"%011o\0" % size if size < 8**11 else b"\x80" + size.to_bytes(11, "big")
    h[136:148] = b"%011o\0" % 1700000000
    h[156:157] = typeflag
    h[257:265] = b"ustar\x0000"
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def member(name: bytes, data: bytes) -> bytes:
    return header(name, len(data)) + data + bytes(-len(data) % 512)


END = bytes(1024)
PACK_NAME = b"./objects/pack/pack-" + b"1" * 40
REPO_HEAD = member(b"./HEAD", b"ref: refs/heads/main\n") + member(b"./config", b"[core]\n\tbare = true\n")


def zstd_rle_bomb(first: bytes, total: int, window_log: int = 17) -> Iterator[bytes]:
    """One zstd frame (no checksum, no content size) of *first* as a raw block, then RLE blocks of
    zeros up to *total* bytes: about 4 compressed bytes per 128 KiB."""
    yield b"\x28\xb5\x2f\xfd" + bytes((0x00, (window_log - 10) << 3))
    for i in range(0, len(first), 1 << 17):
        piece = first[i : i + (1 << 17)]
        yield (len(piece) << 3).to_bytes(3, "little") + piece
    left = total - len(first)
    rle = ((1 << 17) << 3 | 1 << 1).to_bytes(3, "little") + b"\0"
    batch = rle * 4096
    while left > (1 << 17) * 4096:
        yield batch
        left -= (1 << 17) * 4096
    while left > 1 << 17:
        yield rle
        left -= 1 << 17
    yield ((left << 3) | 1 << 1 | 1).to_bytes(3, "little") + b"\0"


def gzip_bomb(first: bytes, total: int) -> Iterator[bytes]:
    """gzip members: *first*, then 64 MiB of zeros compressed once and repeated (ratio about 1030)."""
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    yield c.compress(first) + c.flush()
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = c.compress(bytes(64 << 20)) + c.flush()
    for _ in range(max(1, (total - len(first)) >> 26)):
        yield zeros


def many_empty_members(n: int, prefix: bytes, width: int = 7, batch: int = 8192) -> Iterator[bytes]:
    """*n* empty regular-file members ``prefix + %0{width}d``, then the end marker (a header costs ~1 us)."""
    h = header(prefix + b"0" * width, 0)
    head_sum = sum(h) - sum(h[148:156]) + 8 * 32 - 48 * width
    mid, tail = h[100:148], h[156:]
    digits = [sum(map(int, str(i))) for i in range(10000)]
    fill = bytes(100 - len(prefix) - width)
    fmt = b"%0" + str(width).encode() + b"d"
    out: list[bytes] = []
    for i in range(n):
        chk = head_sum + 48 * width + digits[i // 10000 % 10000] + digits[i % 10000]
        out.append(prefix + fmt % i + fill + mid + b"%06o\0 " % chk + tail)
        if len(out) == batch:
            yield b"".join(out)
            out = []
    yield b"".join(out) + END


def long_line_packed_refs(size: int) -> Iterator[bytes]:
    yield REPO_HEAD + header(b"./packed-refs", size)
    line = b"0" * 40 + b" refs/heads/"
    yield line
    left = size - len(line) - 1
    block = b"x" * (1 << 20)
    while left > 0:
        yield block[: min(left, len(block))]
        left -= len(block)
    yield b"\n" + bytes(-size % 512) + END


def claimed_then_cut(name: bytes, claimed: int, present: int) -> Iterator[bytes]:
    yield REPO_HEAD + header(name, claimed)
    block = bytes(range(256)) * 4096
    while present > 0:
        yield block[: min(present, len(block))]
        present -= len(block)


def idx_claiming(count: int) -> bytes:
    """A v2 .idx whose fan-out claims *count* objects (nothing else is there) and a pack to match."""
    idx = b"\xfftOc" + (2).to_bytes(4, "big") + count.to_bytes(4, "big") * 256 + bytes(40)
    pack = b"PACK" + (2).to_bytes(4, "big") + count.to_bytes(4, "big") + b"1" * 20
    return REPO_HEAD + member(PACK_NAME + b".idx", idx) + member(PACK_NAME + b".pack", pack) + END


# ----------------------------------------------------------------------------- the child process
@dataclass
class Run:
    rc: int
    rss_mib: float
    seconds: float
    stdout: bytes
    stderr: bytes

    @property
    def report(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.stdout)
        return doc

    @property
    def codes(self) -> set[str]:
        return {f["code"] for f in self.report["findings"]}

    def describe(self) -> str:
        return (f"exit {self.rc}, peak RSS {self.rss_mib:.0f} MiB, {self.seconds:.1f} s, "
                f"codes {sorted(self.codes) if self.rc in (0, 1) else '-'}, stderr {self.stderr[-600:]!r}")


# The peak RSS a process reports (ru_maxrss) includes what its parent had resident when it was forked
# (Linux copies the RSS counters with the page tables, and a vfork child's exec charges the parent's
# high-water mark): a child forked straight from pytest would report pytest's size.  So the verifier is
# started by a small launcher, which reads the verifier's own peak with wait4.
LAUNCHER = """
import os, subprocess, sys
p = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(p.pid, 0)
p.returncode = os.waitstatus_to_exitcode(status)
sys.stderr.write(f"\\nPEAK-RSS-KIB {usage.ru_maxrss}\\n")
sys.exit(p.returncode)
"""


def run_verify(chunks: Iterable[bytes], *args: str) -> Run:
    """``python -m snapcheck verify --format json ARGS -`` fed *chunks* on stdin; peak RSS via wait4."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, sys.executable, "-m", "snapcheck", "verify", "--format", "json", *args, "-"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    got: dict[str, bytes] = {}

    def drain(name: str, f: io.BufferedReader) -> None:
        got[name] = f.read()

    readers = [threading.Thread(target=drain, args=("out", proc.stdout)),
               threading.Thread(target=drain, args=("err", proc.stderr))]
    for t in readers:
        t.start()
    try:
        for piece in chunks:
            proc.stdin.write(piece)
        proc.stdin.close()
    except BrokenPipeError:
        pass  # the verifier stopped reading (a limit): that is allowed
    rc = proc.wait()
    for t in readers:
        t.join()
    for f in (proc.stdin, proc.stdout, proc.stderr):
        try:
            f.close()
        except BrokenPipeError:
            pass
    err, _, peak = got["err"].rpartition(b"\nPEAK-RSS-KIB ")
    assert peak, got["err"][-2000:]
    return Run(rc, int(peak) / 1024, time.monotonic() - started, got["out"], err)


def check_run(run: Run, code: str | None) -> None:
    print(run.describe())  # shown with -rP: the measured peak
    assert b"Traceback" not in run.stderr, run.describe()
    assert run.rc == 1, run.describe()
    if code is not None:
        assert code in run.codes, run.describe()
    assert run.rss_mib <= RSS_LIMIT_MIB, run.describe()


# ----------------------------------------------------------------------------- peak memory
BOMB_TARGETS = {
    "pack": PACK_NAME + b".pack",  # streamed and spooled
    "commit-graph": b"./objects/info/commit-graph",  # held: too large, so spooled
    "packed-refs": b"./packed-refs",  # parsed in memory: refused by its size
    "loose-ref": b"./refs/heads/main",  # refused by its size
    "other": b"./description",  # drained
}


@pytest.mark.parametrize("target", sorted(BOMB_TARGETS))
def test_zstd_bomb(target: str) -> None:
    size = 10 << 30
    run = run_verify(zstd_rle_bomb(REPO_HEAD + header(BOMB_TARGETS[target], size), size + 2048))
    check_run(run, "decompressionRatioExceeded")


def test_zstd_bomb_with_the_largest_window_allowed() -> None:
    """A frame that really uses the default window limit (2^27): the decoder's buffer is the cost."""
    size = 10 << 30
    run = run_verify(zstd_rle_bomb(REPO_HEAD + header(PACK_NAME + b".pack", size), size, window_log=27))
    check_run(run, "decompressionRatioExceeded")


def test_zstd_window_over_the_limit_is_refused_before_decoding() -> None:
    run = run_verify(zstd_rle_bomb(REPO_HEAD, 1 << 20, window_log=28))
    check_run(run, "zstdWindowTooLarge")


def test_gzip_bomb() -> None:
    size = 10 << 30
    run = run_verify(gzip_bomb(REPO_HEAD + header(PACK_NAME + b".pack", size), size))
    check_run(run, "decompressionRatioExceeded")


@pytest.mark.slow
def test_a_million_empty_members_in_a_repository() -> None:
    """10^6 empty files inside the repository (after ./HEAD): each is read, counted and recorded.
    About 20 s here (most of it the child's per-member work)."""
    n = 1_000_000
    run = run_verify(itertools.chain([member(b"./HEAD", b"")], many_empty_members(n, b"./objects/info/x")))
    check_run(run, None)
    assert run.report["summary"]["files"] == n + 1, run.describe()


@pytest.mark.slow
def test_a_million_empty_members_and_no_repository() -> None:
    """10^6 empty files and no git directory: none may be kept while the root is looked for."""
    run = run_verify(many_empty_members(1_000_000, b"./work/f"))
    check_run(run, "archiveNoRepository")


@pytest.mark.parametrize(("target", "code"), [
    ("pack", "tarMemberTruncated"),
    ("commit-graph", "tarMemberTruncated"),
    ("packed-refs", "memberTooLarge"),
    ("other", "tarMemberTruncated"),
])
def test_member_claiming_10_gb_then_cut(target: str, code: str) -> None:
    run = run_verify(claimed_then_cut(BOMB_TARGETS[target], 10 * 10**9, 40 << 20))
    check_run(run, code)
    assert "tarMemberTruncated" in run.codes, run.describe()


def test_packed_refs_of_one_100_mb_line() -> None:
    run = run_verify(long_line_packed_refs(100 * 10**6))
    check_run(run, "packedRefsLineTooLong")


@pytest.mark.parametrize("level", ["quick", "standard", "full"])
def test_idx_claiming_2_to_the_32_objects(level: str) -> None:
    run = run_verify([idx_claiming(0xFFFFFFFF)], "--level", level)
    check_run(run, "idxBadSize")


# ----------------------------------------------------------------------------- large good objects
BIG_BLOB = 300 << 20  # inflated; the pattern repeats every 16 KiB, so zlib brings it down to a few MB


@pytest.fixture(scope="module")
def big_blob_tars(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Tars of two mirrors whose one file is a 300 MiB blob: its objects loose (``loose``), and
    packed by git (``packed``).  Sound; the blob is larger than the memory bound."""
    from gitrepos import git

    base = tmp_path_factory.mktemp("bigblob")
    work = base / "work"
    git("init", "-q", "-b", "main", str(work))
    block = bytes((i * 7919 + (i >> 5)) & 0xFF for i in range(16 << 10))
    with (work / "big.bin").open("wb") as f:
        for _ in range(BIG_BLOB // len(block)):
            f.write(block)
    git("add", "big.bin", cwd=work)
    git("commit", "-q", "-m", "one big file", cwd=work)
    loose = base / "loose.git"
    git("init", "-q", "--bare", "-b", "main", str(loose))
    git("push", "-q", str(loose), "main", cwd=work)  # a local push unpacks few objects: loose
    if any((loose / "objects/pack").glob("*.pack")):  # pragma: no cover - git's unpackLimit
        git("unpack-objects", "-q", cwd=loose)
    packed = base / "packed.git"
    git("clone", "-q", "--mirror", "--no-local", str(work), str(packed))
    git("repack", "-adq", cwd=packed)
    # a second version, one line changed: git stores one of the two as a delta of the other
    with (work / "big.bin").open("r+b") as f:
        f.seek(BIG_BLOB // 2)
        f.write(b"a changed line\n")
    git("commit", "-q", "-am", "change one line", cwd=work)
    deltas = base / "delta.git"
    git("clone", "-q", "--mirror", "--no-local", str(work), str(deltas))
    git("repack", "-adfq", cwd=deltas)
    [idx] = (deltas / "objects/pack").glob("*.idx")
    blob_lines = [line.split() for line in git("verify-pack", "-v", str(idx), cwd=deltas).splitlines()
                  if " blob " in line]
    assert sorted(len(f) for f in blob_lines) == [5, 7], blob_lines  # one whole, one delta of it
    (work / "big.bin").unlink()
    out = {"loose": tar_of(loose), "packed": tar_of(packed), "delta": tar_of(deltas)}
    assert len(out["loose"]) < BIG_BLOB // 10 and not list((loose / "objects/pack").glob("*.pack"))
    assert list((packed / "objects/pack").glob("*.pack"))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["loose", "packed", "delta"])
@pytest.mark.parametrize("level", ["standard", "full"])
def test_a_blob_larger_than_the_memory_bound(big_blob_tars: dict[str, bytes], layout: str, level: str) -> None:
    """A good 300 MiB blob, loose or packed, and two versions of it packed as a base and a delta, at
    standard and full: sound, and never held whole (hashed as it inflates; a base that a delta is built
    on is written to a temp file and the delta replayed from there)."""
    run = run_verify(chunked(big_blob_tars[layout]), "--level", level)
    print(run.describe())
    assert b"Traceback" not in run.stderr, run.describe()
    assert run.rc == 0 and run.report["verdict"] == "sound", run.describe()
    assert run.rss_mib <= RSS_LIMIT_MIB, run.describe()


def chunked(data: bytes, size: int = 1 << 20) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


# ----------------------------------------------------------------------------- every limit, in process
def verify_bytes(data: bytes, **limits: int) -> Report:
    return verify_stream(io.BytesIO(data), VerifyOptions(limits=Limits(**limits)), label="t.tar")


def tar_of(mirror: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        tf.add(mirror, arcname=".")
    return buf.getvalue()


def zstd_of(data: bytes, *args: str) -> bytes:
    return subprocess.run(["zstd", "-q", "-c", *args], input=data, capture_output=True, check=True).stdout


def test_every_limit_has_a_flag_and_registered_codes() -> None:
    load_all()
    flags = set()
    for f in fields(Limits):
        assert f.metadata["flag"].startswith("--") and f.metadata["help"], f.name
        flags.add(f.metadata["flag"])
        for code in f.metadata["codes"]:
            code_info(code)  # raises if not registered
    assert len(flags) == len(fields(Limits))


def test_limit_zstd_window(mirrors: Mirrors) -> None:
    data = zstd_of(tar_of(mirrors("gc_bitmaps")), "--long=24", "--no-content-size")
    assert verify_bytes(data).sound
    assert "zstdWindowTooLarge" in verify_bytes(data, zstd_window=1 << 23).codes()


def test_limit_ratio() -> None:
    data = b"".join(zstd_rle_bomb(REPO_HEAD + header(b"./description", 80 << 20), (80 << 20) + 2048))
    assert "decompressionRatioExceeded" in verify_bytes(data, max_ratio=1000).codes()
    assert "decompressionRatioExceeded" not in verify_bytes(data, max_ratio=100_000).codes()


def test_limit_total_bytes(mirrors: Mirrors) -> None:
    data = zstd_of(tar_of(mirrors("gc_bitmaps")))
    n = verify_bytes(data).summary.bytes_read
    assert "decompressionTotalExceeded" in verify_bytes(data, max_total_bytes=n // 2).codes()
    tar = tar_of(mirrors("gc_bitmaps"))
    assert "decompressionTotalExceeded" in verify_bytes(tar, max_total_bytes=len(tar) - 1).codes()
    assert verify_bytes(tar, max_total_bytes=len(tar)).sound


def test_limit_members(mirrors: Mirrors) -> None:
    data = tar_of(mirrors("gc_bitmaps"))
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        members = len(tf.getmembers())
    assert verify_bytes(data, max_members=members).sound
    assert "tarTooManyMembers" in verify_bytes(data, max_members=members - 1).codes()


def test_limit_path_length() -> None:
    deep = b"./objects/info/" + b"d" * 150
    pax = tarfile_member_with_pax_path(deep.decode())
    assert "tarPathTooLong" in verify_bytes(REPO_HEAD + pax + END, max_path_length=100).codes()
    assert "tarPathTooLong" not in verify_bytes(REPO_HEAD + pax + END, max_path_length=200).codes()
    link = tarfile_symlink("./objects/info/l", "x" * 300)
    assert "tarPathTooLong" in verify_bytes(REPO_HEAD + link + END, max_path_length=200).codes()


def tarfile_member_with_pax_path(name: str) -> bytes:
    """One empty member written by Python's tarfile in pax format (the path goes in a pax record)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        tf.addfile(tarfile.TarInfo(name), io.BytesIO(b""))
    return _strip_end(buf.getvalue())


def tarfile_symlink(name: str, target: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        ti = tarfile.TarInfo(name)
        ti.type = tarfile.SYMTYPE
        ti.linkname = target
        tf.addfile(ti)
    return _strip_end(buf.getvalue())


def _strip_end(tar: bytes) -> bytes:
    """A tarfile-written archive without its end marker and padding (whole blocks only)."""
    end = len(tar)
    while end >= 512 and tar[end - 512 : end] == bytes(512):
        end -= 512
    return tar[:end]


def test_limit_ref_line_packed_refs_and_loose(mirrors: Mirrors) -> None:
    mirror = mirrors("many_refs")
    data = tar_of(mirror)
    assert verify_bytes(data).sound
    line = max(len(x) for x in (mirror / "packed-refs").read_bytes().splitlines())
    assert "packedRefsLineTooLong" not in verify_bytes(data, max_ref_line=line + 1).codes()
    r = verify_bytes(data, max_ref_line=line - 1)
    assert "packedRefsLineTooLong" in r.codes() and "looseRefTooLarge" not in r.codes()
    r = verify_bytes(data, max_ref_line=40)  # loose refs are 41 bytes (sha1 hex + LF)
    assert {"looseRefTooLarge", "packedRefsLineTooLong"} <= set(r.codes()) and "headTooLarge" not in r.codes()
    head = len((mirror / "HEAD").read_bytes())
    assert "headTooLarge" in verify_bytes(data, max_ref_line=head - 1).codes()


def test_limit_ref_line_stops_reading_a_long_line_early() -> None:
    """A packed-refs line over the limit is given up at once (the file is not held), over any chunking."""
    data = b"".join(long_line_packed_refs(5 << 20))
    r = verify_bytes(data, max_ref_line=1000)
    (f,) = [f for f in r.findings if f.code == "packedRefsLineTooLong"]
    assert "line 1" in f.message
    prefix = b"# pack-refs with: peeled fully-peeled sorted \n" + (b"1" * 40 + b" refs/heads/a\n") * 3
    body = prefix + b"2" * 40 + b" refs/heads/" + b"y" * 3000 + b"\n"
    r = verify_bytes(REPO_HEAD + member(b"./packed-refs", body) + END, max_ref_line=1000)
    (f,) = [f for f in r.findings if f.code == "packedRefsLineTooLong"]
    assert "line 5" in f.message


def test_limit_refs(mirrors: Mirrors) -> None:
    mirror = mirrors("many_refs")
    data = tar_of(mirror)
    packed = sum(1 for x in (mirror / "packed-refs").read_bytes().splitlines() if x[:1] not in (b"#", b"^"))
    loose = sum(1 for p in (mirror / "refs").rglob("*") if p.is_file())
    assert loose >= 50 and packed >= 3000
    assert verify_bytes(data, max_refs=max(packed, loose)).sound
    assert "packedRefsTooManyRefs" in verify_bytes(data, max_refs=packed - 1).codes()
    r = verify_bytes(data, max_refs=loose - 1)
    assert "refsTooMany" in r.codes()
    assert sum(f.code == "refsTooMany" for f in r.findings) == 1


def test_limit_packed_refs_size(mirrors: Mirrors) -> None:
    mirror = mirrors("many_refs")
    data = tar_of(mirror)
    size = (mirror / "packed-refs").stat().st_size
    assert verify_bytes(data, max_packed_refs=size).sound
    r = verify_bytes(data, max_packed_refs=size - 1)
    assert [f.path for f in r.findings if f.code == "memberTooLarge"] == ["packed-refs"]


@pytest.mark.parametrize("config", ["gc_bitmaps", "geometric_midx", "loose", "sha256"])
def test_limit_memory_member_spools_binaries_without_changing_the_verdict(mirrors: Mirrors, config: str) -> None:
    """Binary files that do not fit are spooled to disk: a real mirror stays sound with a tiny budget
    (the text files are a few hundred bytes; loose refs are raised past the budget in the next test)."""
    data = tar_of(mirrors(config))
    small = verify_bytes(data, max_memory_member=4096)
    assert small.sound, [(f.code, f.message) for f in small.findings if f.severity.value != "info"]
    assert small.summary.objects == verify_bytes(data).summary.objects


def test_limit_memory_member_refuses_texts_and_loose_refs(mirrors: Mirrors) -> None:
    data = tar_of(mirrors("many_refs"))
    r = verify_bytes(data, max_memory_member=1000)  # 50 loose refs of 41 bytes: 2050 bytes together
    bad = [f for f in r.findings if f.code == "memberTooLarge"]
    assert bad and all(f.path.startswith("refs/") for f in bad)
    config = b"[core]\n\tbare = true\n" + b"#" * 5000 + b"\n"
    r = verify_bytes(member(b"./HEAD", b"ref: refs/heads/main\n") + member(b"./config", config) + END,
                     max_memory_member=4096)
    assert [f.path for f in r.findings if f.code == "memberTooLarge"] == ["config"]


def test_consecutive_pax_headers_are_bounded_together() -> None:
    """Each pax header is at most 8 MiB, and so are all those before one member: a chain of them with
    distinct keys cannot make the reader hold more."""
    def pax(i: int) -> bytes:
        rec = b" k%d=" % i + b"v" * (3 << 20) + b"\n"
        body = b"%d" % (len(rec) + 7) + rec  # a 7-digit length
        assert int(body.split(b" ", 1)[0]) == len(body)
        return header(b"./PaxHeader", len(body), b"x") + body + bytes(-len(body) % 512)

    data = REPO_HEAD + pax(1) + pax(2) + member(b"./description", b"x\n") + pax(3) + pax(4) + pax(5) + END
    r = verify_bytes(data)
    bad = [f for f in r.findings if f.code == "tarBadHeader"]
    assert len(bad) == 1 and "add up to more than" in bad[0].message
