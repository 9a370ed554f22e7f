"""Git bundles: real bundles from `git bundle create` (v2 SHA-1, v3 SHA-256, full and delta), damaged
the usual ways, each verdict compared with what git itself does (`git bundle list-heads` reads the
header, `git bundle unbundle` into an empty repository runs index-pack over the pack)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapcheck.gitformats.bundle import BundleStreamChecker, check_bundle, is_bundle
from snapcheck.report import Severity

import gitrepos


def git_reads_header(path: Path) -> bool:
    return subprocess.run(["git", "bundle", "list-heads", str(path)], capture_output=True,
                          env=gitrepos.GIT_ENV).returncode == 0  # fmt: skip


def git_unbundles(path: Path, tmp: Path, object_format: str = "sha1") -> bool:
    repo = tmp / f"r-{path.name}"
    gitrepos.git("init", "-q", f"--object-format={object_format}", str(repo))
    return subprocess.run(["git", "bundle", "unbundle", str(path)], cwd=repo, capture_output=True,
                          env=gitrepos.GIT_ENV).returncode == 0  # fmt: skip


def errors(findings: list) -> set[str]:  # type: ignore[type-arg]
    return {f.code for f in findings if f.severity is Severity.ERROR}


@pytest.fixture(scope="module")
def bundles(mirrors: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    tmp = tmp_path_factory.mktemp("bundles")
    out = {}
    m = mirrors("gc_bitmaps")
    gitrepos.git("bundle", "create", "-q", str(tmp / "all"), "--all", cwd=m)
    gitrepos.git("bundle", "create", "-q", str(tmp / "delta"), "main", "^main~3", cwd=m)
    m256 = mirrors("sha256")
    gitrepos.git("bundle", "create", "-q", str(tmp / "all256"), "--all", cwd=m256)
    for name in ("all", "delta", "all256"):
        out[name] = (tmp / name).read_bytes()
    return out


def test_good_bundles(bundles: dict[str, bytes], tmp_path: Path) -> None:
    for name, data in bundles.items():
        summary, findings = check_bundle(data, name)
        assert findings == [], (name, findings)
        assert is_bundle(data)
        h = summary.header
        assert h is not None and summary.pack is not None and summary.pack.hash_verified
        assert h.version == (3 if name == "all256" else 2)
        assert h.algo.name == ("sha256" if name == "all256" else "sha1")
        p = tmp_path / name
        p.write_bytes(data)
        heads = subprocess.run(["git", "bundle", "list-heads", str(p)], capture_output=True, text=True,
                               env=gitrepos.GIT_ENV, check=True).stdout.split("\n")  # fmt: skip
        assert sorted((name_, oid.hex()) for name_, oid in h.references) == sorted(
            (line.split(" ", 1)[1], line.split(" ", 1)[0]) for line in heads if line)
        assert summary.header is not None and summary.size == len(data)
    assert check_bundle(bundles["delta"], "d")[0].header.prerequisites  # type: ignore[union-attr]


def damaged(data: bytes) -> dict[str, tuple[bytes, set[str], bool]]:
    """name -> (bytes, the error codes, whether git's header reader fails too)."""
    pack_at = data.index(b"\n\nPACK") + 2
    first_ref = data.index(b"\n") + 1
    return {
        "cut-1": (data[:-1], {"packChecksumMismatch"}, False),
        "cut-half": (data[: pack_at + (len(data) - pack_at) // 2], {"packChecksumMismatch"}, False),
        "zero-tail": (data + bytes(512), {"packChecksumMismatch"}, False),
        "flip-pack": (data[:-100] + bytes([data[-100] ^ 1]) + data[-99:], {"packChecksumMismatch"}, False),
        "cut-header": (data[: pack_at - 5], {"bundleHeaderTruncated"}, False),
        "no-pack": (data[:pack_at], {"packTooShort"}, False),
        "bad-signature": (b"# v9" + data[4:], {"bundleBadSignature"}, True),
        "bad-oid": (data[:first_ref] + b"g" + data[first_ref + 1:], {"bundleBadHeaderLine"}, True),
        "short-oid": (data[:first_ref] + data[first_ref + 2:], {"bundleBadHeaderLine"}, True),
        "unknown-capability": (b"# v3 git bundle\n@foo=bar\n" + data[16:], {"bundleUnknownCapability"}, True),
        "unknown-format": (b"# v3 git bundle\n@object-format=md5\n" + data[16:], {"bundleUnknownCapability"}, True),
    }


def test_damage_matches_git(bundles: dict[str, bytes], tmp_path: Path) -> None:
    data = bundles["all"]
    for name, (bad, codes, header_fails) in damaged(data).items():
        _summary, findings = check_bundle(bad, name)
        assert errors(findings) == codes, (name, findings)
        p = tmp_path / f"{name}.bundle"
        p.write_bytes(bad)
        # git agrees that every one of them is broken: its header reader, or index-pack
        assert git_reads_header(p) is not header_fails, name
        assert not git_unbundles(p, tmp_path), name
    p = tmp_path / "good.bundle"
    p.write_bytes(data)
    assert git_reads_header(p) and git_unbundles(p, tmp_path)


def test_sha256_bundle_damage(bundles: dict[str, bytes], tmp_path: Path) -> None:
    data = bundles["all256"]
    for cut in (1, 31, 32, 33, len(data) // 3):
        assert errors(check_bundle(data[:-cut], "b")[1]) == {"packChecksumMismatch"}, cut
    p = tmp_path / "cut.bundle"
    p.write_bytes(data[:-1])
    assert not git_unbundles(p, tmp_path, "sha256")


def test_no_references(bundles: dict[str, bytes], tmp_path: Path) -> None:
    data = bundles["all"]
    bad = b"# v2 git bundle\n\n" + data[data.index(b"\n\nPACK") + 2:]
    assert errors(check_bundle(bad, "b")[1]) == {"bundleNoReferences"}
    p = tmp_path / "norefs.bundle"
    p.write_bytes(bad)
    # git's reader takes it, but it lists nothing to fetch (and git never writes one)
    out = subprocess.run(["git", "bundle", "list-heads", str(p)], capture_output=True, env=gitrepos.GIT_ENV)
    assert out.returncode == 0 and out.stdout == b""


def test_quick_level_does_not_hash_the_pack(bundles: dict[str, bytes]) -> None:
    data = bundles["all"]
    flipped = data[:-100] + bytes([data[-100] ^ 1]) + data[-99:]
    checker = BundleStreamChecker("b", hash_content=False)
    checker.feed(flipped)
    summary, findings = checker.finish()
    assert errors(findings) == set() and summary.pack is not None and not summary.pack.hash_verified
    checker = BundleStreamChecker("b", hash_content=False)
    checker.feed(data[:40])
    assert errors(checker.finish()[1]) == {"bundleHeaderTruncated"}


def test_bad_refname_and_limits(bundles: dict[str, bytes]) -> None:
    data = bundles["delta"]
    lines = data.split(b"\n")
    ref_line = next(i for i, line in enumerate(lines) if b" refs/" in line)
    lines[ref_line] = lines[ref_line].replace(b"refs/heads/main", b"refs/heads/ma..in")
    _s, findings = check_bundle(b"\n".join(lines), "b")
    assert {f.code for f in findings} == {"bundleBadRefname"} and not errors(findings)
    checker = BundleStreamChecker("b", hash_content=True, max_line=50)
    checker.feed(data)
    assert errors(checker.finish()[1]) == {"bundleHeaderTooLarge"}
    checker = BundleStreamChecker("b", hash_content=True, max_refs=1)
    checker.feed(data)
    assert errors(checker.finish()[1]) == {"bundleHeaderTooLarge"}


def test_empty_and_not_a_bundle() -> None:
    assert errors(check_bundle(b"", "e")[1]) == {"bundleBadSignature"}
    assert errors(check_bundle(b"PK\x03\x04zip", "z")[1]) == {"bundleBadSignature"}
    assert errors(check_bundle(b"# v2 git bun", "t")[1]) == {"bundleHeaderTruncated"}
    assert not is_bundle(b"# v2 git bundl") and not is_bundle(b"\x28\xb5\x2f\xfd")


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_chunking_never_changes_the_result(bundles: dict[str, bytes], data: st.DataObject) -> None:
    body = bundles[data.draw(st.sampled_from(sorted(bundles)))]
    cut = data.draw(st.integers(0, len(body)))
    sample = body[:cut] + data.draw(st.binary(max_size=40))
    whole = check_bundle(sample, "b")[1]
    checker = BundleStreamChecker("b", hash_content=True)
    pos = 0
    while pos < len(sample):
        n = data.draw(st.integers(1, 200))
        checker.feed(memoryview(sample)[pos:pos + n])
        pos += n
    assert checker.finish()[1] == whole
    if cut < len(body):  # every cut of a real bundle is an error, whatever follows it
        assert errors(whole), cut


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([b"# v2 git bundle\n", b"# v3 git bundle\n", b""]))
def test_arbitrary_bytes_never_raise(tail: bytes, sig: bytes) -> None:
    summary, findings = check_bundle(sig + tail, "x")
    assert summary.size == len(sig) + len(tail)
    assert all(f.path == "x" for f in findings)


@pytest.mark.parametrize("sample", [b"\x00\x00", b"PK\x03\x04zip", b"# v2 gxt bundle\nmore", b"#" + b"x" * 60,
                                    b"# v3 git bundl", b"# v2 git bundle" + b"\x00" * 30])
@pytest.mark.parametrize("piece", [1, 2, 7])
def test_a_wrong_signature_is_reported_alike_in_any_pieces(sample: bytes, piece: int) -> None:
    """The finding quotes the first line (up to 40 bytes): it must not depend on how many bytes had
    come when the signature stopped matching (a stream fed in small pieces found it earlier)."""
    whole = check_bundle(sample, "b")[1]
    checker = BundleStreamChecker("b", hash_content=True)
    for pos in range(0, len(sample), piece):
        checker.feed(sample[pos:pos + piece])
    assert checker.finish()[1] == whole
    assert len(whole) == 1 and whole[0].code in ("bundleBadSignature", "bundleHeaderTruncated")
