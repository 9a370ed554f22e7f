"""commit-graph files and split chains: real files written by git, damaged the ways snapshots damage them."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snapcheck.gitformats import commit_graph as cg
from snapcheck.gitformats.common import SHA1, SHA256, HashAlgo
from snapcheck.report import Severity

from gitrepos import git, git_rc

Mirrors = Callable[[str], Path]
SINGLE = "objects/info/commit-graph"
CHAIN_DIR = "objects/info/commit-graphs"
CHAIN = f"{CHAIN_DIR}/commit-graph-chain"


def algo_of(name: str) -> HashAlgo:
    return SHA256 if name == "sha256" else SHA1


def codes(findings: list) -> set[str]:  # type: ignore[type-arg]
    return {f.code for f in findings}


def graph_files(repo: Path) -> list[Path]:
    files = [repo / SINGLE] if (repo / SINGLE).exists() else []
    return files + sorted((repo / CHAIN_DIR).glob("graph-*.graph"))


def parse(
    data: bytes, rel: str, algo: HashAlgo, verify: bool = True
) -> tuple[cg.CommitGraph | None, set[str]]:
    g, fs = cg.parse_commit_graph(data, rel, algo, verify_checksum=verify)
    return g, codes(fs)


def load_chain(repo: Path, algo: HashAlgo) -> tuple[list[bytes], dict[str, cg.CommitGraph | None], list]:  # type: ignore[type-arg]
    chain, fs = cg.parse_commit_graph_chain((repo / CHAIN).read_bytes(), CHAIN, algo)
    graphs = {}
    for p in sorted((repo / CHAIN_DIR).glob("graph-*.graph")):
        g, gfs = cg.parse_commit_graph(p.read_bytes(), f"{CHAIN_DIR}/{p.name}", algo, verify_checksum=True)
        fs += gfs
        graphs[p.name] = g
    return chain, graphs, fs


# --- good files --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gc_bitmaps", "geometric_midx", "sha256"])
def test_good_graphs_have_no_findings(mirrors: Mirrors, name: str) -> None:
    repo = mirrors(name)
    files = graph_files(repo)
    assert files, "the fixture must hold commit-graph files"
    for p in files:
        rel = str(p.relative_to(repo))
        g, fs = cg.parse_commit_graph(p.read_bytes(), rel, algo_of(name), verify_checksum=True)
        assert g is not None and fs == [], fs
        assert g.algo == algo_of(name)
        assert g.count > 0
        # the file name is the trailer for split layers
        if p.name.startswith("graph-"):
            assert p.name == f"graph-{g.checksum.hex()}.graph"
    # the hash algorithm is read from the header when not given
    g, fs = cg.parse_commit_graph(files[0].read_bytes(), "x", None, verify_checksum=True)
    assert g is not None and not fs and g.algo == algo_of(name)


def test_geometric_chain_has_three_layers_and_checks_clean(mirrors: Mirrors) -> None:
    repo = mirrors("geometric_midx")
    chain, graphs, fs = load_chain(repo, SHA1)
    assert fs == []
    assert len(chain) == 3
    assert cg.check_commit_graph_chain(chain, graphs, CHAIN) == []
    layers = [graphs[f"graph-{h.hex()}.graph"] for h in chain]
    assert [g.num_base for g in layers if g] == [0, 1, 2]
    assert [g.base_hashes for g in layers if g] == [[], chain[:1], chain[:2]]


def _commits_from_git(repo: Path) -> dict[bytes, tuple[bytes, list[bytes], int]]:
    out = git("log", "--all", "--format=%H %T %ct %P", cwd=repo)
    res = {}
    for line in out.splitlines():
        parts = line.split()
        res[bytes.fromhex(parts[0])] = (
            bytes.fromhex(parts[1]),
            [bytes.fromhex(p) for p in parts[3:]],
            int(parts[2]),
        )
    return res


@pytest.mark.parametrize("name", ["gc_bitmaps", "sha256", "geometric_midx"])
def test_commit_data_matches_git(mirrors: Mirrors, name: str) -> None:
    """Tree, parents (across the chain), commit time and generation agree with the commit objects."""
    repo = mirrors(name)
    algo = algo_of(name)
    if (repo / CHAIN).exists() and name == "geometric_midx":
        chain, graphs, _ = load_chain(repo, algo)
        layers = [graphs[f"graph-{h.hex()}.graph"] for h in chain]
    else:
        g, _ = parse((repo / SINGLE).read_bytes(), SINGLE, algo)
        layers = [g]
    names: list[bytes] = []
    records = []
    for g in layers:
        assert g is not None
        for i in range(g.count):
            names.append(g.name(i))
            records.append(g.commit(i))
            assert g.find(g.name(i)) == i
        assert g.find(b"\xff" * algo.rawsz) is None
        assert g.find(b"\x00" * (algo.rawsz - 1)) is None
    truth = _commits_from_git(repo)
    assert set(names) <= set(truth)
    level = {}
    for oid, (tree, parents, level_v1, when) in zip(names, records, strict=True):
        want_tree, want_parents, want_time = truth[oid]
        assert tree == want_tree
        assert [names[p] for p in parents] == want_parents
        assert when == want_time
        level[oid] = level_v1
    for _, parents, lv, _ in records:
        assert lv == 1 + max((level[names[p]] for p in parents), default=0)
    # generation v2: corrected commit dates grow along every edge
    for g in layers:
        assert g is not None and g.has_generation_data
        for i in range(g.count):
            date = g.corrected_date(i)
            assert date is not None and date >= g.commit(i)[3]


# --- damage ------------------------------------------------------------------------------------


def min_size(algo: HashAlgo) -> int:
    return 8 + 4 * 12 + 1024 + algo.rawsz


@pytest.mark.parametrize("name", ["gc_bitmaps", "geometric_midx", "sha256"])
@pytest.mark.parametrize("damage", ["cut1", "half", "cut_trailer"])
def test_truncation_is_an_improper_chunk_offset(mirrors: Mirrors, name: str, damage: str) -> None:
    repo = mirrors(name)
    algo = algo_of(name)
    for p in graph_files(repo):
        data = p.read_bytes()
        cut = {"cut1": data[:-1], "half": data[: len(data) // 2], "cut_trailer": data[: -algo.rawsz]}[damage]
        for verify in (False, True):
            g, found = parse(cut, p.name, algo, verify)
            assert g is None
            want = "commitGraphTooSmall" if len(cut) < min_size(algo) else "commitGraphChunkOffset"
            assert found == {want}, (p.name, damage, found)


@pytest.mark.parametrize("name", ["gc_bitmaps", "geometric_midx"])
def test_zero_tail_and_flipped_bits(mirrors: Mirrors, name: str) -> None:
    repo = mirrors(name)
    for p in graph_files(repo):
        data = bytearray(p.read_bytes())
        layer = p.name.startswith("graph-")
        zero = bytes(data[:-16]) + b"\0" * 16
        g, found = parse(zero, p.name, SHA1)
        assert g is not None
        assert found == (
            {"commitGraphChecksum", "commitGraphNameMismatch"} if layer else {"commitGraphChecksum"}
        )
        # quick level: no hashing, but a split layer's name still catches it
        assert parse(zero, p.name, SHA1, verify=False)[1] == ({"commitGraphNameMismatch"} if layer else set())
        # a flipped bit in a commit time (inside CDAT): only the checksum can tell
        g0, _ = parse(bytes(data), p.name, SHA1)
        assert g0 is not None
        cdat = g0.chunks[cg.CDAT][0]
        flipped = bytearray(data)
        flipped[cdat + 20 + 15] ^= 0x01
        assert parse(bytes(flipped), p.name, SHA1)[1] == {"commitGraphChecksum"}
        # a flipped high bit in the chunk table sends an offset out of the file
        bad = bytearray(data)
        bad[8 + 4] ^= 0x80  # first chunk's offset, most significant byte
        assert parse(bytes(bad), p.name, SHA1)[1] == {"commitGraphChunkOffset"}


def test_chunk_table_rules(mirrors: Mirrors) -> None:
    data = (mirrors("gc_bitmaps") / SINGLE).read_bytes()
    n = data[6]
    size = len(data)

    def toc(i: int) -> tuple[bytes, int]:
        cid, off = struct.unpack_from(">4sQ", data, 8 + 12 * i)
        return cid, off

    def with_entry(i: int, cid: bytes, off: int) -> bytes:
        b = bytearray(data)
        struct.pack_into(">4sQ", b, 8 + 12 * i, cid, off)
        return bytes(b)

    # a chunk offset out of bounds
    cid, _ = toc(1)
    assert parse(with_entry(1, cid, size + 100), "cg", SHA1)[1] == {"commitGraphChunkOffset"}
    # pointing back into the table of contents
    assert parse(with_entry(0, toc(0)[0], 8), "cg", SHA1)[1] == {"commitGraphChunkOffset"}
    # terminator early, terminator non-zero, duplicate id
    assert parse(with_entry(1, b"\0\0\0\0", toc(1)[1]), "cg", SHA1)[1] == {"commitGraphChunkTable"}
    assert parse(with_entry(n, b"XXXX", toc(n)[1]), "cg", SHA1)[1] == {"commitGraphChunkTable"}
    assert parse(with_entry(1, toc(0)[0], toc(1)[1]), "cg", SHA1)[1] == {"commitGraphChunkTable"}
    # a bytes appended after the trailer: the last chunk no longer ends at the trailer
    assert parse(data + b"\0" * 8, "cg", SHA1, verify=False)[1] == {"commitGraphChunkTableEnd"}
    # a required chunk renamed away
    ids = [toc(i)[0] for i in range(n)]
    i = ids.index(b"CDAT")
    assert parse(with_entry(i, b"ZZZZ", toc(i)[1]), "cg", SHA1)[1] == {"commitGraphChunkMissing"}


def test_header_rules(mirrors: Mirrors) -> None:
    data = (mirrors("gc_bitmaps") / SINGLE).read_bytes()
    assert parse(b"CGPX" + data[4:], "cg", SHA1)[1] == {"commitGraphSignature"}
    assert parse(data[:4] + b"\2" + data[5:], "cg", SHA1)[1] == {"commitGraphVersion"}
    assert parse(data, "cg", SHA256)[1] == {"commitGraphHashVersion"}
    assert parse(data[:5] + b"\7" + data[6:], "cg", None)[1] == {"commitGraphHashVersion"}
    assert parse(data[:7] + b"\1" + data[8:], "cg", SHA1)[1] == {"commitGraphBase"}
    assert parse(b"", "cg", SHA1)[1] == {"commitGraphTooSmall"}


def _rehash(data: bytes, algo: HashAlgo = SHA1) -> bytes:
    body = data[: -algo.rawsz]
    return body + algo.digest(body)


def test_semantic_damage_with_a_valid_checksum(mirrors: Mirrors) -> None:
    """Damage a careless writer could make (the checksum is recomputed): the structure checks catch it."""
    data = (mirrors("gc_bitmaps") / SINGLE).read_bytes()
    g, _ = parse(data, SINGLE, SHA1)
    assert g is not None
    h = 20
    oidl, cdat = g.chunks[cg.OIDL][0], g.chunks[cg.CDAT][0]
    # an OID moved into its predecessor's fanout bucket (fanout adjusted), below its predecessor
    names = [g.name(i) for i in range(g.count)]
    b1, b2 = names[3][0], names[4][0]
    assert b1 < b2
    b = bytearray(data)
    b[oidl + 4 * h : oidl + 5 * h] = bytes([b1]) + b"\0" * (h - 1)
    fan = g.chunks[cg.OIDF][0]
    for k in range(b1, b2):
        struct.pack_into(">I", b, fan + 4 * k, struct.unpack_from(">I", b, fan + 4 * k)[0] + 1)
    assert parse(_rehash(bytes(b)), SINGLE, SHA1)[1] == {"commitGraphOidOrder"}
    assert parse(_rehash(bytes(b)), SINGLE, SHA1, verify=False)[1] == set()  # order is a verify-level check
    # an OID moved to another fanout bucket
    b = bytearray(data)
    b[oidl] = (b[oidl] + 0x80) & 0xFF
    assert parse(_rehash(bytes(b)), SINGLE, SHA1)[1] == {"commitGraphFanout"}
    # a parent position past the end of the graph
    b = bytearray(data)
    struct.pack_into(">I", b, cdat + h, g.count + 5)
    assert parse(_rehash(bytes(b)), SINGLE, SHA1)[1] == {"commitGraphParent"}
    # an octopus pointer with no EDGE chunk
    b = bytearray(data)
    struct.pack_into(">I", b, cdat + h + 4, 0x80000000)
    assert parse(_rehash(bytes(b)), SINGLE, SHA1)[1] == {"commitGraphParent"}
    # a generation overflow pointer with no GDO2 chunk
    b = bytearray(data)
    struct.pack_into(">I", b, g.chunks[cg.GDA2][0], 0x80000001)
    assert parse(_rehash(bytes(b)), SINGLE, SHA1)[1] == {"commitGraphGenerationData"}
    # a fanout that decreases
    b = bytearray(data)
    fan = g.chunks[cg.OIDF][0]
    struct.pack_into(">I", b, fan + 4 * 10, 0xFFFF)
    assert parse(_rehash(bytes(b)), SINGLE, SHA1)[1] == {"commitGraphFanout"}
    # an OID count that disagrees with the chunk sizes
    b = bytearray(data)
    struct.pack_into(">I", b, fan + 4 * 255, g.count + 1)
    assert parse(_rehash(bytes(b)), SINGLE, SHA1)[1] == {"commitGraphChunkSize"}


def test_git_agrees_a_cut_commit_graph_is_broken(mirror_copy: Mirrors) -> None:
    repo = mirror_copy("gc_bitmaps")
    assert git_rc("commit-graph", "verify", cwd=repo)[0] == 0
    p = repo / SINGLE
    data = p.read_bytes()
    p.write_bytes(data[:-1])
    rc, _, err = git_rc("commit-graph", "verify", cwd=repo)
    _g, fs = cg.parse_commit_graph(data[:-1], SINGLE, SHA1, verify_checksum=True)
    assert rc != 0 and "improper chunk offset" in err
    assert [f.code for f in fs] == ["commitGraphChunkOffset"]
    # our message carries git's own words and offsets
    assert err.strip().splitlines()[0].split("error: ")[1] in fs[0].message


# --- chains ------------------------------------------------------------------------------------


def test_chain_file_rules(mirrors: Mirrors) -> None:
    repo = mirrors("geometric_midx")
    data = (repo / CHAIN).read_bytes()
    good, fs = cg.parse_commit_graph_chain(data, CHAIN, SHA1)
    assert fs == [] and len(good) == 3

    chain, fs = cg.parse_commit_graph_chain(data[:-1], CHAIN, SHA1)
    assert codes(fs) == {"commitGraphChainNewline"} and chain == good
    chain, fs = cg.parse_commit_graph_chain(data[:50], CHAIN, SHA1)
    assert codes(fs) == {"commitGraphChainNewline", "commitGraphChainFormat"} and chain == good[:1]
    chain, fs = cg.parse_commit_graph_chain(b"", CHAIN, SHA1)
    assert codes(fs) == {"commitGraphChainEmpty"} and fs[0].severity is Severity.WARNING
    chain, fs = cg.parse_commit_graph_chain(data.upper(), CHAIN, SHA1)
    assert codes(fs) == {"commitGraphChainFormat"}
    chain, fs = cg.parse_commit_graph_chain(data + data[:41], CHAIN, SHA1)
    assert codes(fs) == {"commitGraphChainFormat"}
    chain, fs = cg.parse_commit_graph_chain(data, CHAIN, SHA256)
    assert codes(fs) == {"commitGraphChainFormat"}
    chain, fs = cg.parse_commit_graph_chain(data, CHAIN, None)
    assert fs == [] and chain == good


def test_chain_cross_checks(mirrors: Mirrors) -> None:
    repo = mirrors("geometric_midx")
    chain, graphs, _ = load_chain(repo, SHA1)
    missing = dict(graphs)
    del missing[f"graph-{chain[1].hex()}.graph"]
    assert codes(cg.check_commit_graph_chain(chain, missing, CHAIN)) == {"commitGraphChainMissing"}
    # layers listed in the wrong order: each BASE chunk disagrees
    swapped = [chain[1], chain[0], chain[2]]
    assert codes(cg.check_commit_graph_chain(swapped, graphs, CHAIN)) == {"commitGraphChainMismatch"}
    # a chain that forgot its top layer leaves that file unlisted (info only)
    fs = cg.check_commit_graph_chain(chain[:2], graphs, CHAIN)
    assert codes(fs) == {"commitGraphUnlisted"} and all(f.severity is Severity.INFO for f in fs)
    # a chain naming a file that is not there
    ghost = [*chain, b"\x12" * 20]
    assert codes(cg.check_commit_graph_chain(ghost, graphs, CHAIN)) == {"commitGraphChainMissing"}
    # a layer that failed to parse is not reported again
    broken = dict(graphs)
    broken[f"graph-{chain[0].hex()}.graph"] = None
    assert cg.check_commit_graph_chain(chain, broken, CHAIN) == []


def test_chain_parent_positions_checked_across_layers(mirrors: Mirrors) -> None:
    repo = mirrors("geometric_midx")
    chain, graphs, _ = load_chain(repo, SHA1)
    top_name = f"graph-{chain[2].hex()}.graph"
    top = graphs[top_name]
    assert top is not None
    data = bytearray((repo / CHAIN_DIR / top_name).read_bytes())
    total = sum(g.count for g in graphs.values() if g)
    struct.pack_into(">I", data, top.chunks[cg.CDAT][0] + 20, total)  # one past the last commit
    g, fs = cg.parse_commit_graph(bytes(data), top_name, SHA1, verify_checksum=False)
    assert g is not None and fs == []  # a layer alone cannot know how many commits lie below
    fixed = dict(graphs)
    fixed[top_name] = g
    assert codes(cg.check_commit_graph_chain(chain, fixed, CHAIN)) == {"commitGraphParent"}


def test_layer_damage_in_chain_real_files(mirror_copy: Mirrors) -> None:
    """The matrix from the reference: cut layer, chain without final LF, chain naming a missing file."""
    repo = mirror_copy("geometric_midx")
    chain_bytes = (repo / CHAIN).read_bytes()
    layer = sorted((repo / CHAIN_DIR).glob("graph-*.graph"))[0]
    data = layer.read_bytes()
    layer.write_bytes(data[:-1])
    g, fs = cg.parse_commit_graph(data[:-1], layer.name, SHA1, verify_checksum=False)
    assert g is None and codes(fs) == {"commitGraphChunkOffset"}
    _rc, _, err = git_rc("commit-graph", "verify", cwd=repo)
    assert "improper chunk offset" in err  # git 2.39 prints it (and may still exit 0)
    layer.write_bytes(data)
    (repo / CHAIN).write_bytes(chain_bytes[:-1])
    assert codes(cg.parse_commit_graph_chain(chain_bytes[:-1], CHAIN, SHA1)[1]) == {"commitGraphChainNewline"}
    layer.unlink()
    chain, graphs, _ = load_chain(repo, SHA1)
    assert codes(cg.check_commit_graph_chain(chain, graphs, CHAIN)) == {"commitGraphChainMissing"}


# --- properties --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gc_bitmaps", "geometric_midx"])
def test_every_truncation_point_is_rejected(mirrors: Mirrors, name: str) -> None:
    """Structure alone (no hashing) rejects a commit-graph cut at any byte."""
    for p in graph_files(mirrors(name)):
        data = p.read_bytes()
        for n in range(len(data)):
            g, fs = cg.parse_commit_graph(data[:n], p.name, SHA1, verify_checksum=False)
            assert g is None or any(f.severity is Severity.ERROR for f in fs), n
            assert any(f.severity is Severity.ERROR for f in fs), n


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=3000), st.sampled_from([None, SHA1, SHA256]), st.booleans())
def test_arbitrary_bytes_never_raise(data: bytes, algo: HashAlgo | None, prefix: bool) -> None:
    if prefix:
        data = b"CGPH\1\1" + data
    g, fs = cg.parse_commit_graph(data, "cg", algo, verify_checksum=True)
    assert g is not None or fs
    cg.parse_commit_graph_chain(data, "chain", algo)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_random_corruption_of_a_real_graph(mirrors: Mirrors, data: st.DataObject) -> None:
    """Any corrupted byte is rejected (with the checksum) and nothing ever raises, even on accessors."""
    raw = bytearray((mirrors("gc_bitmaps") / SINGLE).read_bytes())
    pos = data.draw(st.integers(0, len(raw) - 1))
    val = data.draw(st.integers(0, 255).filter(lambda v: v != raw[pos]))
    raw[pos] = val
    g, fs = cg.parse_commit_graph(bytes(raw), SINGLE, SHA1, verify_checksum=True)
    assert any(f.severity is Severity.ERROR for f in fs)
    g, fs = cg.parse_commit_graph(bytes(raw), SINGLE, SHA1, verify_checksum=False)
    if g is not None and not fs:
        for i in range(g.count):
            g.commit(i)
            g.corrected_date(i)
