"""The fast paths of quick/standard start-up give the answers of the straightforward code: bulk id
lookups in a pack index, the ``.rev`` order check, cached offsets and bounds, the commit-graph OID
order check."""

from __future__ import annotations

import itertools
import operator
import random
from array import array
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import snapcheck.checks.objectstore as objectstore
import snapcheck.gitformats.idx as idxmod
from snapcheck.gitformats import chunks
from snapcheck.gitformats import commit_graph as cg
from snapcheck.gitformats import rev as revmod
from snapcheck.gitformats.common import SHA1, SHA256, HashAlgo
from snapcheck.gitformats.idx import PackIndex, parse_idx
from snapcheck.gitformats.midx import parse_midx


def _index(repo: Path, algo: HashAlgo, *, damage: Callable[[bytearray, int], None] | None = None) -> PackIndex:
    path = max((repo / "objects" / "pack").glob("pack-*.idx"), key=lambda p: p.stat().st_size)
    data = bytearray(path.read_bytes())
    if damage is not None:
        damage(data, algo.rawsz)
    idx, _fs = parse_idx(bytes(data), algo, "x.idx", verify_checksum=False)
    assert idx is not None
    return idx


def _swap_names(data: bytearray, h: int) -> None:
    """Two neighbouring names of the biggest bucket swapped: the index is no longer sorted."""
    a = 1032 + 5 * h
    data[a:a + 2 * h] = data[a + h:a + 2 * h] + data[a:a + h]


class _Plain:
    """An index seen without its own ``find_many`` (as a MIDX is): objectstore.find_many's own search."""

    def __init__(self, idx: PackIndex) -> None:
        self.algo, self.fanout, self.find, self.names_view = idx.algo, idx.fanout, idx.find, idx.names_view


def _queries(idx: PackIndex, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    h = idx.algo.rawsz
    present = [idx.name(i) for i in rng.sample(range(idx.count), min(idx.count, 200))]
    absent = [bytes(rng.randrange(256) for _ in range(h)) for _ in range(100)]
    near = [n[:-1] + bytes([n[-1] ^ 1]) for n in present[:50]]
    return present + absent + near + [b"", b"\0" * (h - 1), present[0] + b"\0"]


@pytest.mark.parametrize(("name", "algo"), [("gc_bitmaps", SHA1), ("sha256", SHA256), ("cruft", SHA1)])
@pytest.mark.parametrize("damaged", [False, True])
@pytest.mark.parametrize("scan_max", [None, 0])
def test_find_many_in_place_equals_bucket_copies(mirrors: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch,
                                             name: str, algo: HashAlgo, damaged: bool, scan_max: int | None) -> None:
    idx = _index(mirrors(name), algo, damage=_swap_names if damaged else None)
    if scan_max is not None:  # every bucket by binary search, in both
        monkeypatch.setattr(chunks, "BUCKET_SCAN_MAX", scan_max)
    qs = _queries(idx, 7)
    got = idx.find_many(qs)
    assert got == objectstore.find_many(_Plain(idx), qs)  # the copy-per-bucket search (MIDX path)
    if not damaged:
        assert got == {o: i for o in qs if (i := idx.find(o)) is not None}
        assert len(got) == min(idx.count, 200)


@pytest.mark.parametrize("scan_max", [None, 0])
def test_midx_find_many_is_find(mirrors: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch,
                                scan_max: int | None) -> None:
    path = mirrors("geometric_midx") / "objects" / "pack" / "multi-pack-index"
    midx, _ = parse_midx(path.read_bytes(), "multi-pack-index", SHA1, verify_checksum=True)
    assert midx is not None and midx.count
    if scan_max is not None:
        monkeypatch.setattr(chunks, "BUCKET_SCAN_MAX", scan_max)
    rng = random.Random(11)
    present = [midx.name(i) for i in rng.sample(range(midx.count), min(midx.count, 200))]
    qs = present + [n[:-1] + bytes([n[-1] ^ 1]) for n in present[:50]] + [bytes(20), b"", present[0][1:] + b"\0"]
    got = midx.find_many(qs)
    assert got == {o: i for o in qs if (i := midx.find(o)) is not None}
    assert len(got) == len(present) and objectstore.find_many(midx, qs) == got


@pytest.mark.parametrize(("name", "algo"), [("gc_bitmaps", SHA1), ("sha256", SHA256)])
def test_find_many_over_a_plain_view(mirrors: Callable[[str], Path], name: str, algo: HashAlgo) -> None:
    """An index over a bytearray (no find() on the buffer) searches a copy of the names."""
    path = max((mirrors(name) / "objects" / "pack").glob("pack-*.idx"), key=lambda p: p.stat().st_size)
    idx, _ = parse_idx(bytearray(path.read_bytes()), algo, "x.idx", verify_checksum=False)
    assert idx is not None
    qs = _queries(idx, 3)
    assert idx.find_many(qs) == objectstore.find_many(idx, qs)


def _reference_order(perm: list[int], offsets: list[int]) -> bool:
    n = len(offsets)
    if any(p >= n for p in perm):
        return False
    vals = [offsets[p] for p in perm]
    return all(a < b for a, b in itertools.pairwise(vals))


@settings(max_examples=150, deadline=None)
@given(offsets=st.lists(st.integers(0, 1 << 40), min_size=1, max_size=40, unique=True), data=st.data(),
       chunk=st.sampled_from([1, 2, 3, 1 << 16]), narrow=st.booleans())
def test_in_offset_order_is_the_definition(offsets: list[int], data: st.DataObject, chunk: int,
                                           narrow: bool) -> None:
    if narrow:  # the table of a v2 index without 64-bit offsets
        offsets = [o & 0x7FFFFFFF for o in offsets]
        offsets = list(dict.fromkeys(offsets))
    n = len(offsets)
    order = sorted(range(n), key=offsets.__getitem__)
    kind = data.draw(st.sampled_from(["sorted", "shuffled", "swap", "out_of_range", "repeat"]))
    perm = list(order)
    if kind == "shuffled":
        perm = data.draw(st.permutations(order))
    elif kind == "swap" and n > 1:
        i = data.draw(st.integers(0, n - 2))
        perm[i], perm[i + 1] = perm[i + 1], perm[i]
    elif kind == "out_of_range":
        perm[data.draw(st.integers(0, n - 1))] = n + data.draw(st.integers(0, 5))
    elif kind == "repeat" and n > 1:
        perm[data.draw(st.integers(1, n - 1))] = perm[0]
    old = revmod._GATHER_CHUNK
    revmod._GATHER_CHUNK = chunk
    try:
        got = revmod._in_offset_order(array("I", perm), array("I" if narrow else "Q", offsets))
    finally:
        revmod._GATHER_CHUNK = old
    assert got == _reference_order(perm, offsets)


@pytest.mark.parametrize(("name", "algo"), [("gc_bitmaps", SHA1), ("sha256", SHA256), ("geometric_midx", SHA1)])
def test_offsets_cached_and_bounds(mirrors: Callable[[str], Path], name: str, algo: HashAlgo) -> None:
    for path in (mirrors(name) / "objects" / "pack").glob("pack-*.idx"):
        idx, _ = parse_idx(path.read_bytes(), algo, "x.idx", verify_checksum=False)
        assert idx is not None
        offs = idx.offsets()
        assert offs is idx.offsets() and offs.typecode == "Q"
        assert list(offs) == [idx.offset(i) for i in range(idx.count)]
        narrow = idx.offsets_u32()
        assert narrow is not None and narrow.itemsize == 4 and list(narrow) == list(offs)  # no 64-bit offsets here
        if idx.count:
            assert idx.offset_bounds() == (min(offs), max(offs))
        rev = path.with_suffix(".rev")
        if rev.exists() and idx.count:
            fresh, _ = parse_idx(path.read_bytes(), algo, "x.idx", verify_checksum=False)
            assert fresh is not None
            assert revmod.parse_rev(rev.read_bytes(), "x.rev", algo, fresh, verify_checksum=True) == []
            # the bounds a sound .rev leaves behind are the offsets' smallest and largest
            assert fresh._bounds == (min(offs), max(offs)) and fresh._distinct


@settings(max_examples=100, deadline=None)
@given(names=st.lists(st.binary(min_size=4, max_size=4), min_size=0, max_size=30), sort=st.booleans(),
       pad=st.integers(0, 3))
def test_oid_order_is_its_definition(names: list[bytes], sort: bool, pad: int) -> None:
    if sort:
        names = sorted(set(names))
    blob = b"x" * pad + b"".join(names)
    want = next((i for i in range(len(names) - 1) if not names[i] < names[i + 1]), None)
    assert chunks.first_unsorted(blob, pad, len(names), 4) == want


@pytest.mark.parametrize("bad", [None, 3, (1 << 16) - 2, (1 << 16) - 1, 1 << 16, 69_000])
def test_oid_order_across_blocks(bad: int | None) -> None:
    """The check compares a block of 65,536 names at a time: a descent inside a block, at its last
    pair, across two blocks and in the second block is each found at its place."""
    names = [i.to_bytes(4, "big") for i in range(0, 2 * 70_000, 2)]
    if bad is not None:
        names[bad + 1] = names[bad]  # equal neighbours: not strictly increasing
    assert chunks.first_unsorted(b"".join(names), 0, len(names), 4) == bad


def test_widen_matches_the_byte_shuffle() -> None:
    rng = random.Random(5)
    vals = [rng.randrange(1 << 32) for _ in range(1000)]
    raw = b"".join(v.to_bytes(4, "big") for v in vals)
    assert list(idxmod._widen_u32_be(memoryview(raw), len(vals))) == vals
    # every other u32 of a v1 entry (stride 24): the general path
    v1 = b"".join(v.to_bytes(4, "big") + bytes(20) for v in vals)
    assert list(idxmod._widen_u32_be(memoryview(v1), len(vals), 24)) == vals
    assert list(idxmod._widen_u32_be(memoryview(b""), 0)) == []
    assert list(map(operator.index, idxmod._widen_u32_be(memoryview(raw[:8]), 2))) == vals[:2]


@settings(max_examples=300, deadline=None)
@given(limit=st.integers(0, 50), octopus_ok=st.booleans(),
       col=st.lists(st.one_of(st.integers(0, 60), st.sampled_from([cg.PARENT_NONE, cg.PARENT_NONE - 1,
                                                                    cg.PARENT_NONE + 1, cg.OCTOPUS,
                                                                    cg.OCTOPUS | 3, 0xFFFFFFFF])),
                    max_size=40))
def test_first_bad_parent_is_its_definition(limit: int, octopus_ok: bool, col: list[int]) -> None:
    want = next((i for i, v in enumerate(col)
                 if v >= limit and v != cg.PARENT_NONE and not (octopus_ok and v & cg.OCTOPUS)), None)
    assert cg._first_bad_parent(array("I", col), limit, octopus_ok=octopus_ok) == want
