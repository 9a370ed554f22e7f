"""Fuzz target: the pack stream checker (snapcheck.gitformats.pack): header, count, trailer, name.

Run: ``python fuzz/fuzz_pack.py [corpus_dir] -max_total_time=N`` (see fuzz/README.md).
The same bytes fed whole, in odd-sized pieces, or with the middle skipped must give the same summary.
"""

from __future__ import annotations

from _harness import ALGOS, check, main, rehashed

from snapcheck.gitformats.pack import PackStreamChecker


def _run(data: bytes, path: str, algo: object, pieces: tuple[int, ...], hashing: bool) -> tuple[object, list[str]]:
    c = PackStreamChecker(path, algo, hash_content=hashing)  # type: ignore[arg-type]
    pos, i = 0, 0
    while pos < len(data):
        k = pieces[i % len(pieces)]
        c.feed(data[pos:pos + k])
        pos += k
        i += 1
    summary, findings = c.finish()
    check(findings)
    assert summary.size == len(data)
    return (summary.count, summary.trailer, summary.size), sorted(f.code for f in findings)


def TestOneInput(data: bytes) -> None:
    for algo in ALGOS:
        buf = rehashed(data, algo)
        named = f"objects/pack/pack-{buf[-algo.rawsz:].hex()}.pack" if len(buf) >= algo.rawsz else "x.pack"
        for path in ("objects/pack/pack-" + "0" * algo.hexsz + ".pack", named):
            for given in (None, algo):
                whole = _run(buf, path, given, (len(buf) or 1,), True)
                assert _run(buf, path, given, (1, 7, 4096), True) == whole
                _run(data, path, given, (3, 11), False)
        if len(buf) > 12 + algo.rawsz:  # quick level: header and trailer only, the middle skipped
            c = PackStreamChecker(named, algo, hash_content=False)
            c.feed(buf[:12])
            c.skip(len(buf) - 12 - algo.rawsz)
            c.feed(buf[-algo.rawsz:])
            summary, findings = c.finish()
            check(findings)
            streamed = _run(buf, named, algo, (len(buf),), False)[0]
            assert (summary.count, summary.trailer, summary.size) == streamed


if __name__ == "__main__":
    main(TestOneInput)
