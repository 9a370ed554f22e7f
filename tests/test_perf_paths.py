"""The fast paths give the answers of the plain ones.

* whole-pack passes shared out over worker processes (fork, a queue of runs) find exactly what one
  process finds — on sound packs, on damaged packs (flipped bytes anywhere), and when a worker dies;
* a directory's pack hashed by a background thread reports its damage and keeps a bitmap from
  being trusted until the hash is known;
* the kind-sorting tree scan, the combined fsck-and-links tree check, the bulk id lookup and the
  EWAH decoder of the bitmap shortcut agree with the exact (slow) code they stand in for.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_objectstore import CONFIGS, load_packs, repo_algo, source

import snapcheck.checks.collector as collector_mod
import snapcheck.checks.graph as graph_mod
import snapcheck.checks.objectstore as objectstore
import snapcheck.gitformats.chunks as chunks
from snapcheck.checks.graph import BitmapCoverage, _ewah_int
from snapcheck.checks.objectstore import (
    LinkCollector,
    PackSource,
    find_many,
    scan_pack_links,
    verify_pack_objects,
)
from snapcheck.gitformats.bitmap import ewah_decode, parse_bitmap
from snapcheck.gitformats.common import SHA1, SHA256
from snapcheck.gitformats.idx import parse_idx
from snapcheck.gitformats.objects import (
    OBJ_TREE,
    check_object_format,
    fsck_tree,
    tree_entries,
    tree_links_into,
)
from snapcheck.options import VerifyOptions
from snapcheck.report import Finding, Level
from snapcheck.verifier import verify


@pytest.fixture
def everything_fast(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Small repositories take the paths big ones take: two workers, background hashing."""
    monkeypatch.setattr(objectstore, "PARALLEL_MIN_OBJECTS", 0)
    monkeypatch.setattr(collector_mod, "BACKGROUND_HASH_MIN", 0)
    monkeypatch.setenv("SNAPCHECK_JOBS", "2")
    yield


def _key(fs: list[Finding]) -> list[tuple[str, str, str]]:
    return sorted((f.code, f.path, f.message) for f in fs)


def _links(lc: LinkCollector) -> tuple[Any, ...]:
    return ({t: sorted(s) for t, s in lc.expect.items()}, sorted(lc.unparseable), lc.unreadable,
            sorted(lc.reported), dict(lc.counts))


def _both(src: PackSource, algo: Any, full: bool) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """(one process, two processes) results of one pass over *src*: stats, findings, links."""
    out = []
    for jobs in (1, 2):
        links = LinkCollector(algo)
        if full:
            st, fs = verify_pack_objects(src, algo, check_format=True, links=links, jobs=jobs)
        else:
            st, fs = scan_pack_links(src, algo, links, jobs=jobs)
        # findings in order: the runs' findings are put back in run order, as one process reports them
        out.append((st.types, st.unreadable, st.deltas, st.inflated_bytes, [(f.code, f.message) for f in fs],
                    _links(links)))
    return out[0], out[1]


# -- worker processes ---------------------------------------------------------------------------------
@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("full", [False, True])
def test_parallel_pass_equals_serial(mirrors: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch,
                                     config: str, full: bool) -> None:
    monkeypatch.setattr(objectstore, "PARALLEL_MIN_OBJECTS", 0)
    repo = mirrors(config)
    algo = repo_algo(repo)
    for src in load_packs(repo, algo):
        one, two = _both(src, algo, full)
        assert one == two
        assert one[1] == 0 and one[4] == []  # sound packs: every object read, nothing found


@pytest.fixture(scope="module")
def pack_and_idx(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    import gitrepos

    repo = gitrepos.build_gc_bitmaps(tmp_path_factory.mktemp("perfpaths"))
    pack = sorted((repo / "objects/pack").glob("pack-*.pack"))[0]
    return pack.read_bytes(), pack.with_suffix(".idx").read_bytes()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.floats(0.0, 0.9999), st.integers(1, 255)), min_size=1, max_size=3),
       st.booleans())
def test_parallel_pass_equals_serial_on_damage(pack_and_idx: tuple[bytes, bytes],
                                               flips: list[tuple[float, int]], full: bool) -> None:
    pack, idx = pack_and_idx
    data = bytearray(pack)
    for where, mask in flips:
        data[12 + int(where * (len(data) - 32))] ^= mask
    old = objectstore.PARALLEL_MIN_OBJECTS
    objectstore.PARALLEL_MIN_OBJECTS = 0
    try:
        one, two = _both(source(bytes(data), idx), SHA1, full)
    finally:
        objectstore.PARALLEL_MIN_OBJECTS = old
    assert one == two


def test_a_dead_worker_is_replaced(mirrors: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker that dies (here: raises in the child) delivers nothing; the parent does its runs."""
    monkeypatch.setattr(objectstore, "PARALLEL_MIN_OBJECTS", 0)
    [src] = load_packs(mirrors("gc_bitmaps"), SHA1)
    one, _ = _both(src, SHA1, True)
    pid = os.getpid()
    real = objectstore._PackPass._share

    def dying(self: Any, groups: Any, queue: int) -> bytes:
        if os.getpid() != pid:
            raise RuntimeError("worker killed")
        return real(self, groups, queue)

    monkeypatch.setattr(objectstore._PackPass, "_share", dying)
    links = LinkCollector(SHA1)
    st, fs = verify_pack_objects(src, SHA1, check_format=True, links=links, jobs=2)
    assert (st.types, st.unreadable, st.deltas, st.inflated_bytes, [(f.code, f.message) for f in fs],
            _links(links)) == one


def test_worker_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNAPCHECK_JOBS", "3")
    assert objectstore.worker_count() == 3
    monkeypatch.setenv("SNAPCHECK_JOBS", "junk")
    assert 1 <= objectstore.worker_count() <= 8
    monkeypatch.delenv("SNAPCHECK_JOBS")
    assert 1 <= objectstore.worker_count() <= 8


# -- the whole verifier on the fast paths ---------------------------------------------------------------
@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("level", [Level.STANDARD, Level.FULL])
def test_sound_mirrors_on_fast_paths(mirrors: Callable[[str], Path], everything_fast: None,
                                     config: str, level: Level) -> None:
    r = verify(mirrors(config), VerifyOptions(level=level))
    assert r.verdict == "sound", r.findings
    assert [f for f in r.findings if f.severity.value != "info"] == []


def _flip_object(repo: Path) -> None:
    pack = sorted((repo / "objects/pack").glob("pack-*.pack"))[0]
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0x20
    pack.write_bytes(bytes(data))


def _spy_connectivity(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The keyword arguments of every ``check_connectivity`` call the object phase makes."""
    calls: list[dict[str, Any]] = []
    real = graph_mod.check_connectivity

    def spy(*a: Any, **k: Any) -> Any:
        calls.append(k)
        return real(*a, **k)

    monkeypatch.setattr(graph_mod, "check_connectivity", spy)
    return calls


@pytest.mark.parametrize("level", [Level.STANDARD, Level.FULL])
def test_background_hash_reports_damage(mirror_copy: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch,
                                        level: Level) -> None:
    """The same findings whether the pack is hashed inline or in the background, and a bitmap over a
    pack whose hash fails is not used."""
    repo = mirror_copy("gc_bitmaps")
    _flip_object(repo)
    inline = verify(repo, VerifyOptions(level=level))
    assert "packChecksumMismatch" in inline.codes()
    monkeypatch.setattr(collector_mod, "BACKGROUND_HASH_MIN", 0)
    calls = _spy_connectivity(monkeypatch)
    background = verify(repo, VerifyOptions(level=level))
    assert _key(background.findings) == _key(inline.findings)
    assert not calls[-1]["cover"]


def test_background_hash_keeps_the_shortcut_on_a_sound_pack(mirrors: Callable[[str], Path],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(collector_mod, "BACKGROUND_HASH_MIN", 0)
    calls = _spy_connectivity(monkeypatch)
    r = verify(mirrors("gc_bitmaps"), VerifyOptions())
    assert r.codes() == []
    assert calls[-1]["cover"]


def test_background_hash_joined_when_the_run_stops_early(mirrors: Callable[[str], Path],
                                                         monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Nothing waits for the object phase: closing the collected files joins the thread."""
    monkeypatch.setattr(collector_mod, "BACKGROUND_HASH_MIN", 0)
    from snapcheck.checks.blobs import Spool
    from snapcheck.sources.directory import walk_directory

    c = collector_mod.Collector(VerifyOptions(), Spool(str(tmp_path)))
    for e in walk_directory(mirrors("gc_bitmaps")):
        c.add(e)
    pending = [r.pending for r in c.collected.packs.values() if r.pending is not None]
    assert pending
    c.collected.close()
    assert all(r.pending is None for r in c.collected.packs.values())


# -- the fast helpers agree with the exact code ----------------------------------------------------------
_MODES = [b"40000", b"100644", b"100755", b"120000", b"160000", b"040000", b"100664", b"644", b"1"]


@st.composite
def tree_bytes(draw: st.DrawFn) -> bytes:
    n = draw(st.integers(0, 8))
    out = b""
    for _ in range(n):
        mode = draw(st.sampled_from(_MODES))
        name = draw(st.binary(min_size=1, max_size=6).filter(lambda b: b"\0" not in b))
        oid = draw(st.binary(min_size=20, max_size=20))
        out += mode + b" " + name + b"\0" + oid
    if draw(st.booleans()):  # damage: cut, or a stray byte
        cut = draw(st.integers(0, max(0, len(out))))
        out = out[:cut] + draw(st.binary(max_size=3))
    return out


@settings(max_examples=300, deadline=None)
@given(tree_bytes())
def test_tree_scan_agrees_with_tree_entries(data: bytes) -> None:
    trees: set[bytes] = set()
    blobs: set[bytes] = set()
    ok = tree_links_into(data, SHA1, trees, blobs)
    ents = tree_entries(data, SHA1)
    assert ok == (ents is not None)
    if ents is not None:
        assert trees == set(ents.subtrees) and blobs == set(ents.blobs)
    else:
        assert trees == set() and blobs == set()


@settings(max_examples=300, deadline=None)
@given(tree_bytes())
def test_fsck_tree_agrees_with_format_check_and_links(data: bytes) -> None:
    oid = b"\x01" * 20
    trees: set[bytes] = set()
    blobs: set[bytes] = set()
    fs, parsed = fsck_tree(data, oid, SHA1, "p", trees, blobs)
    assert _key(fs) == _key(check_object_format(OBJ_TREE, data, oid, SHA1, "p"))
    t2: set[bytes] = set()
    b2: set[bytes] = set()
    assert parsed == tree_links_into(data, SHA1, t2, b2)
    assert (trees, blobs) == (t2, b2)


@pytest.mark.parametrize("config", ["gc_bitmaps", "sha256", "many_refs"])
def test_find_many_agrees_with_find(mirrors: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch,
                                    config: str) -> None:
    repo = mirrors(config)
    algo = repo_algo(repo)
    idx_path = sorted((repo / "objects/pack").glob("pack-*.idx"))[0]
    idx, _ = parse_idx(idx_path.read_bytes(), algo, "x.idx", verify_checksum=False)
    assert idx is not None
    present = [idx.name(i) for i in range(idx.count)]
    absent = [bytes([b]) + bytes(algo.rawsz - 1) for b in range(256)]
    # ids that contain a present id's bytes shifted across a name boundary must not match
    shifted = [present[0][1:] + present[1][:1]] if len(present) > 1 else []
    want = {o: idx.find(o) for o in present + absent + shifted}
    for limit in (chunks.BUCKET_SCAN_MAX, 0):  # the substring search, and idx.find for big buckets
        monkeypatch.setattr(chunks, "BUCKET_SCAN_MAX", limit)
        got = find_many(idx, want)
        assert got == {o: i for o, i in want.items() if i is not None}


@pytest.mark.parametrize("config", ["gc_bitmaps", "geometric_midx", "sha256"])
def test_ewah_decoder_agrees_with_the_parser(mirrors: Callable[[str], Path], config: str) -> None:
    repo = mirrors(config)
    algo = SHA256 if config == "sha256" else SHA1
    files = sorted((repo / "objects/pack").glob("*.bitmap"))
    for f in files:
        buf = f.read_bytes()
        info, fs = parse_bitmap(buf, f.name, algo, object_count=None, verify_checksum=True)
        assert info is not None and not [x for x in fs if x.severity.value == "error"]
        mv = memoryview(buf)
        for off in [*info.type_offsets, *(o + 6 for o in info.entry_offsets)]:
            assert _ewah_int(mv, off) == ewah_decode(buf, off)[0]


def test_coverage_refuses_a_midx_order_that_is_not_pseudo_pack_order(mirrors: Callable[[str], Path]) -> None:
    """The MIDX bitmap's bit order is checked before use: a shuffled reverse index is refused."""
    from snapcheck.checks.blobs import Spool
    from snapcheck.checks.repository import RepositoryChecks
    from snapcheck.sources.directory import walk_directory

    c = collector_mod.Collector(VerifyOptions(), Spool(None))
    for e in walk_directory(mirrors("geometric_midx")):
        c.add(e)
    try:
        model = RepositoryChecks(c.collected, VerifyOptions()).run()
        [vb] = [b for b in model.bitmaps if b.midx is not None]
        good = BitmapCoverage()
        assert good.add_midx(vb.path, vb.info, vb.buf, vb.order, vb.midx) and not good.skipped
        bad_order = list(vb.order)
        bad_order[0], bad_order[-1] = bad_order[-1], bad_order[0]
        bad = BitmapCoverage()
        assert not bad.add_midx(vb.path, vb.info, vb.buf, bad_order, vb.midx)
        assert bad.skipped and not bad
    finally:
        c.collected.close()


# -- import-time laziness ----------------------------------------------------------------------------------
def test_verify_imports_only_what_it_uses(mirrors: Callable[[str], Path]) -> None:
    """The CLI's verify at quick and at standard with a bitmap imports neither dulwich (no delta is
    applied) nor pickle (no worker is started)."""
    import subprocess
    import sys

    code = ("import sys, runpy\n"
            "sys.argv = ['snapcheck', 'verify', '--quiet', '--level', sys.argv[1], sys.argv[2]]\n"
            "try:\n    runpy.run_module('snapcheck', run_name='__main__')\n"
            "except SystemExit as e:\n    assert e.code == 0, e.code\n"
            "print('MODULES:' + ' '.join(m for m in ('dulwich', 'pickle') if m in sys.modules))\n")
    for level in ("quick", "standard"):
        out = subprocess.run([sys.executable, "-c", code, level, str(mirrors("gc_bitmaps"))], capture_output=True,
                             text=True, check=True, cwd=Path(__file__).parent.parent)
        [loaded] = [line for line in out.stdout.splitlines() if line.startswith("MODULES:")]
        assert loaded == "MODULES:", out.stdout


@st.composite
def tree_entries_lists(draw: st.DrawFn) -> list[tuple[bytes, bytes]]:
    alphabet = st.sampled_from([b"a", b"b", b"-", b".", b"/", b"\x01", b"z"])
    names = draw(st.lists(st.lists(alphabet, min_size=1, max_size=3).map(b"".join), max_size=6))
    if draw(st.booleans()):
        names = sorted(names)
    modes = [draw(st.sampled_from([b"40000", b"100644", b"100755", b"160000"])) for _ in names]
    return list(zip(modes, names, strict=True))


@settings(max_examples=400, deadline=None)
@given(tree_entries_lists())
def test_tree_order_checks_agree_with_gits_algorithm(entries: list[tuple[bytes, bytes]]) -> None:
    """treeNotSorted / duplicateEntries come out as git's verify_ordered decides them, whichever fast
    path the check takes (no directories; directories; names with '/')."""
    from snapcheck.gitformats.objects import _raw_mode, _verify_order_exact

    data = b"".join(m + b" " + n + b"\0" + bytes(20) for m, n in entries)
    got = {f.code for f in check_object_format(OBJ_TREE, data, b"\x01" * 20, SHA1, "p")}
    unsorted, dups = _verify_order_exact([n for _m, n in entries], [_raw_mode(m) for m, _n in entries])
    assert ("treeNotSorted" in got) == unsorted
    assert ("duplicateEntries" in got) == dups


@pytest.mark.parametrize("damage", [False, True])
def test_streamed_pack_spooled_by_a_thread(mirror_copy: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path, damage: bool) -> None:
    """An archive's pack hashed and spooled by a second thread gives the report the reading thread
    alone gives (sound, and with a damaged pack)."""
    from archives import cachew_archive

    repo = mirror_copy("gc_bitmaps")
    if damage:
        _flip_object(repo)
    archive = tmp_path / "a.tar.zst"
    archive.write_bytes(cachew_archive(repo))
    reports = []
    for limit in (1 << 60, 0):
        monkeypatch.setattr(collector_mod, "BACKGROUND_HASH_MIN", limit)
        reports.append(verify(archive, VerifyOptions()))
    inline, threaded = reports
    assert _key(threaded.findings) == _key(inline.findings)
    assert ("packChecksumMismatch" in inline.codes()) == damage
    assert inline.verdict == ("corrupt" if damage else "sound")


def test_spool_thread_errors_reach_the_reader() -> None:
    """A failing spool write (disk full) in the second thread is raised in the reading thread as the
    SourceError the inline path raises; a failing read stops the thread too."""
    import io

    from snapcheck.errors import SourceError
    from snapcheck.gitformats.pack import PackStreamChecker

    class Full(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, b: Any) -> int:
            raise OSError(28, "No space left on device")

    data = io.BytesIO(b"PACK" + bytes(8 << 20))
    with pytest.raises(SourceError, match="No space left"):
        collector_mod._pump(data, PackStreamChecker("objects/pack/x.pack", SHA1, hash_content=True),
                            Full(), Path("spool"), threaded=True)

    class Broken(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, b: Any) -> int:
            raise SourceError("connection lost")

    sink = io.BytesIO()
    with pytest.raises(SourceError, match="connection lost"):
        collector_mod._pump(Broken(), PackStreamChecker("objects/pack/x.pack", SHA1, hash_content=True),
                            sink, Path("spool"), threaded=True)
