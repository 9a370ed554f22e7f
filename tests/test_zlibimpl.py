"""zlib-ng stands in for CPython's zlib when inflating git objects: it must accept, produce and reject
exactly what zlib does (a stream zlib-ng accepted and zlib refused would be a false accept, since git
inflates with zlib).  Compared on damaged streams, on small chunks, and through the whole pack pass on
damaged real packs."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import zlib as std
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_objectstore import load_packs

from snapcheck.checks import objectstore
from snapcheck.checks.objectstore import LinkCollector, scan_pack_links, verify_pack_objects
from snapcheck.gitformats import loose_object, zlibimpl
from snapcheck.gitformats.common import SHA1


def test_zlib_ng_is_the_default_and_can_be_turned_off() -> None:
    # the test environment installs the project's dependencies: zlib-ng must be what runs
    assert zlibimpl.IMPLEMENTATION == "zlib-ng"
    assert objectstore.zlib is zlibimpl.zlib and loose_object.zlib is zlibimpl.zlib
    code = "from snapcheck.gitformats.zlibimpl import IMPLEMENTATION as I, zlib; print(I, zlib.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "SNAPCHECK_ZLIB": "zlib"}).stdout.split()
    assert out == ["zlib", "zlib"]


def _inflate(mod: Any, data: bytes, size: int, chunk: int | None) -> tuple[Any, ...]:
    """What the pack pass looks at: the output (bounded by size + 1), eof, unused data, unconsumed
    input, or the fact that the stream was refused."""
    d = mod.decompressobj()
    try:
        if chunk is None:
            out = d.decompress(data, size + 1)
        else:
            parts = []
            for i in range(0, len(data), chunk):
                parts.append(d.decompress(d.unconsumed_tail + data[i:i + chunk], size + 1))
            out = b"".join(parts)
    except mod.error:
        return ("refused",)
    return ("ok", out, d.eof, d.unused_data, d.unconsumed_tail if chunk is None else b"")


def _damage(rng: random.Random, c: bytes) -> bytes:
    b = bytearray(c)
    op = rng.randrange(5)
    if op == 0 and b:
        b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    elif op == 1:
        del b[rng.randrange(len(b) + 1):]
    elif op == 2:
        b += rng.randbytes(rng.randint(1, 8))
    elif op == 3 and b:
        b[rng.randrange(len(b))] = rng.randrange(256)
    elif b:  # a run of bytes overwritten (a torn write)
        i = rng.randrange(len(b))
        b[i:i + 16] = bytes(min(16, len(b) - i))
    return bytes(b)


@settings(max_examples=150, deadline=None)
@given(content=st.one_of(st.binary(max_size=3000),
                         st.builds(lambda w, k: w * k, st.binary(min_size=1, max_size=12), st.integers(1, 400))),
       level=st.sampled_from([0, 1, 6, 9]), seed=st.integers(0, 2**32 - 1),
       chunk=st.sampled_from([None, 1, 7, 4096]))
def test_same_verdict_and_output_on_damaged_streams(content: bytes, level: int, seed: int,
                                                      chunk: int | None) -> None:
    ng = zlibimpl.zlib
    rng = random.Random(seed)
    c = std.compress(content, level)
    assert _inflate(ng, c, len(content), chunk) == _inflate(std, c, len(content), chunk)
    assert _inflate(ng, c, len(content), chunk)[1] == content
    for _ in range(20):
        bad = _damage(rng, c)
        size = len(content) + rng.choice([0, 0, 0, -1, 1])
        assert _inflate(ng, bad, max(size, 0), chunk) == _inflate(std, bad, max(size, 0), chunk), bad.hex()
    assert ng.crc32(c) == std.crc32(c) and ng.crc32(c, 12345) == std.crc32(c, 12345)


@pytest.mark.parametrize("seed", range(6))
def test_pack_pass_finds_the_same_with_either_zlib(mirror_copy: Callable[[str], Path],
                                                   monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    """Damage a real pack (bit flips, a zeroed run) and run ``full`` and ``standard`` with zlib-ng and
    with CPython's zlib: every finding and every collected link must agree."""
    repo = mirror_copy("gc_bitmaps")
    [pack] = sorted((repo / "objects/pack").glob("pack-*.pack"))
    data = bytearray(pack.read_bytes())
    rng = random.Random(seed)
    for _ in range(3):
        i = rng.randrange(12, len(data) - 20)
        if seed % 2:
            data[i] ^= 1 << rng.randrange(8)
        else:
            data[i:i + 8] = bytes(8)
    pack.chmod(0o644)
    pack.write_bytes(bytes(data))
    [src] = load_packs(repo, SHA1)

    def run(mod: Any) -> tuple[Any, ...]:
        monkeypatch.setattr(objectstore, "zlib", mod)
        st_full, fs_full = verify_pack_objects(src, SHA1, check_format=True, jobs=1)
        links = LinkCollector(SHA1)
        st_std, fs_std = scan_pack_links(src, SHA1, links, jobs=1)
        return (st_full.types, [(f.code, f.message) for f in fs_full], st_std.types,
                [(f.code, f.message) for f in fs_std], links.expect, links.unparseable)

    with_ng = run(zlibimpl.zlib)
    with_std = run(std)
    assert with_ng == with_std
    assert with_ng[1], "the damage must show at full"
