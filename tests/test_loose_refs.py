"""Loose refs and HEAD: the real files git wrote, then damaged ones, judged against real git."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapcheck.gitformats.common import SHA1, SHA256, HashAlgo
from snapcheck.gitformats.loose_refs import LooseRef, parse_head, parse_loose_ref
from snapcheck.report import Finding, Severity

import gitrepos

CONFIGS = list(gitrepos.BUILDERS)
ENV = {**gitrepos.GIT_ENV, "GIT_CEILING_DIRECTORIES": "/"}


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, env=ENV)


def codes(fs: list[Finding], *severities: Severity) -> set[str]:
    return {f.code for f in fs if f.severity in (severities or (Severity.ERROR,))}


def problems(fs: list[Finding]) -> set[str]:
    return codes(fs, Severity.ERROR, Severity.WARNING)


def loose_refs_of(repo: Path) -> dict[str, bytes]:
    return {p.relative_to(repo).as_posix(): p.read_bytes() for p in (repo / "refs").rglob("*") if p.is_file()}


@pytest.mark.parametrize("config", CONFIGS)
def test_real_loose_refs_and_head_are_clean(config: str, mirrors: Callable[[str], Path]) -> None:
    """Every loose ref and HEAD git wrote parses without error or warning, to git's own values."""
    repo = mirrors(config)
    algo = SHA256 if config == "sha256" else SHA1
    listed = dict(
        reversed(line.split(" ", 1))
        for line in _git(repo, "for-each-ref", "--format=%(objectname) %(refname)").stdout.decode().splitlines()
    )
    for name, data in loose_refs_of(repo).items():
        for a in (algo, None):
            ref, fs = parse_loose_ref(data, name, a, name)
            assert problems(fs) == set() and not fs, (name, fs)
            assert ref is not None and ref.name == name and ref.symref is None
            assert ref.oid is not None and ref.oid.hex() == listed[name]
    head, fs = parse_head((repo / "HEAD").read_bytes(), algo)
    assert not fs and head == LooseRef("HEAD", None, "refs/heads/main")
    if config in ("loose", "geometric_midx", "many_refs"):
        assert loose_refs_of(repo)  # these configurations do keep loose refs


@pytest.fixture(scope="module")
def repo(mirrors: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return gitrepos.copy_repo(mirrors("loose"), tmp_path_factory.mktemp("loose-refs") / "m.git")


def main_oid(repo: Path) -> str:
    return (repo / "refs/heads/main").read_text().strip()


def git_lists(repo: Path, name: str, data: bytes) -> tuple[bool, str]:
    """Does ``git for-each-ref`` show the ref *name* whose file holds *data*?  (and git's stderr)"""
    path = repo / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    try:
        res = _git(repo, "for-each-ref", "--format=%(refname)")
    finally:
        path.unlink()
    assert res.returncode == 0
    return name in res.stdout.decode("utf-8", "surrogateescape").split("\n"), res.stderr.decode(errors="replace")


def _cases(oid: str) -> list[tuple[str, bytes, set[str], set[str]]]:
    """(what, content, error codes, warning codes) for refs/heads/x."""
    o = oid.encode()
    return [
        ("as git writes it", o + b"\n", set(), set()),
        ("empty", b"", {"looseRefEmpty"}, set()),
        ("truncated to 20 digits", o[:20], {"looseRefTruncated"}, set()),
        ("truncated to 1 digit", o[:1], {"looseRefTruncated"}, set()),
        ("truncated, with LF", o[:39] + b"\n", {"looseRefTruncated"}, set()),
        ("missing newline", o, set(), set()),  # info only
        ("trailing junk after a space", o + b" junk\n", set(), {"looseRefTrailingGarbage"}),
        ("junk glued to the id", o + b"junk\n", {"looseRefBadContent"}, set()),
        ("41 digits", o + b"a\n", {"looseRefBadContent"}, set()),
        ("extra blank line", o + b"\n\n", set(), set()),  # info only
        ("two ids", o + b"\n" + o + b"\n", set(), {"looseRefTrailingGarbage"}),
        ("upper case", o.upper() + b"\n", set(), {"looseRefOidUpperCase"}),
        ("null id", b"0" * 40 + b"\n", {"looseRefNullOid"}, set()),
        ("not hex", b"z" * 40 + b"\n", {"looseRefBadContent"}, set()),
        ("zero-padded tail", o + b"\n" + b"\0" * 40, set(), {"looseRefZeroPadded"}),
        ("cut then zero-filled", o[:20] + b"\0" * 21, {"looseRefTruncated"}, {"looseRefZeroPadded"}),
        ("NUL then junk", o + b"\n\0junk", {"looseRefNulBytes"}, set()),
        ("symref", b"ref: refs/heads/main\n", set(), set()),
        ("symref without space", b"ref:refs/heads/main\n", set(), set()),
        ("symref missing newline", b"ref: refs/heads/main", set(), {"looseRefSymrefMissingNewline"}),
        ("symref cut short", b"ref: refs/heads/ma", set(), {"looseRefSymrefMissingNewline"}),
        ("symref outside refs/", b"ref: foo/bar\n", set(), {"looseRefSymrefOutsideRefs"}),
        ("symref to HEAD", b"ref: HEAD\n", set(), set()),
        ("symref to a bad name", b"ref: refs/heads/a b\n", {"looseRefBadSymrefTarget"}, set()),
        ("symref to nothing", b"ref: \n", {"looseRefBadContent"}, set()),
        ("CRLF", o + b"\r\n", set(), set()),  # info only
        ("symref, zero-padded (git keeps the LF in the name)", b"ref: refs/heads/main\n\0\0\0",
         {"looseRefBadSymrefTarget"}, {"looseRefZeroPadded"}),
        ("symref without LF, zero-padded", b"ref: refs/heads/main\0\0\0", set(),
         {"looseRefZeroPadded", "looseRefSymrefMissingNewline"}),
    ]


def test_loose_ref_damage_codes_and_git(repo: Path) -> None:
    """Each damaged loose ref gets its exact codes; a ref we return is one git shows (when its target
    exists), a ref we call broken is one git ignores ("ignoring broken ref")."""
    existing = set(loose_refs_of(repo)) | {"HEAD"}
    for what, data, errs, warns in _cases(main_oid(repo)):
        ref, fs = parse_loose_ref(data, "refs/heads/x", SHA1, "refs/heads/x")
        assert codes(fs) == errs, (what, fs)
        assert codes(fs, Severity.WARNING) == warns, (what, fs)
        listed, stderr = git_lists(repo, "refs/heads/x", data)
        resolvable = ref is not None and (ref.oid is not None or ref.symref in existing)
        assert listed == resolvable, (what, ref, stderr)
        if ref is None and not data.startswith(b"ref:"):
            assert "ignoring broken ref refs/heads/x" in stderr, (what, stderr)
            assert any("git: warning: ignoring broken ref refs/heads/x" in f.message for f in fs)


def test_every_cut_of_a_real_loose_ref(repo: Path) -> None:
    """A loose ref cut anywhere: nothing is an error, short ids are truncation errors, the whole id
    without its LF is only an info (the id is intact)."""
    data = (repo / "refs/heads/main").read_bytes()
    for cut in range(len(data) + 1):
        ref, fs = parse_loose_ref(data[:cut], "refs/heads/main", SHA1, "refs/heads/main")
        if cut == 0:
            assert codes(fs) == {"looseRefEmpty"} and ref is None
        elif cut < 40:
            assert codes(fs) == {"looseRefTruncated"} and ref is None
        elif cut == 40:
            assert {f.code for f in fs} == {"looseRefMissingNewline"} and ref is not None
            assert fs[0].severity is Severity.INFO
        else:
            assert not fs and ref is not None and ref.oid is not None and ref.oid.hex() == data.decode().strip()


def test_bad_ref_name(repo: Path) -> None:
    oid = main_oid(repo).encode() + b"\n"
    ref, fs = parse_loose_ref(oid, "refs/heads/a b", SHA1, "refs/heads/a b")
    assert ref is None and codes(fs) == {"looseRefBadName"}
    listed, stderr = git_lists(repo, "refs/heads/a b", oid)
    assert not listed and "ignoring ref with broken name refs/heads/a b" in stderr


def test_over_long_file() -> None:
    ref, fs = parse_loose_ref(b"a" * 40 + b"\n" + b" " * 70000, "refs/heads/x", SHA1, "refs/heads/x")
    assert ref is None and codes(fs) == {"looseRefTooLarge"}
    ref, fs = parse_loose_ref(b"a" * 40 + b"\n" + b" " * 100, "refs/heads/x", SHA1, "refs/heads/x", max_size=64)
    assert ref is None and codes(fs) == {"looseRefTooLarge"}


def test_algorithm_inference_and_mismatch() -> None:
    ref, fs = parse_loose_ref(b"ab" * 32 + b"\n", "refs/heads/x", None, "refs/heads/x")
    assert ref is not None and ref.oid == bytes.fromhex("ab" * 32) and not fs
    ref, fs = parse_loose_ref(b"ab" * 32 + b"\n", "refs/heads/x", SHA1, "refs/heads/x")
    assert ref is None and codes(fs) == {"looseRefBadContent"}
    ref, fs = parse_loose_ref(b"ab" * 20 + b"\n", "refs/heads/x", SHA256, "refs/heads/x")
    assert ref is None and codes(fs) == {"looseRefTruncated"}
    # 50 digits, format unknown: could be a cut sha256 id
    ref, fs = parse_loose_ref(b"ab" * 25 + b"\n", "refs/heads/x", None, "refs/heads/x")
    assert ref is None and codes(fs) == {"looseRefTruncated"}
    ref, fs = parse_loose_ref(b"ab" * 33 + b"\n", "refs/heads/x", None, "refs/heads/x")
    assert ref is None and codes(fs) == {"looseRefBadContent"}


# -- HEAD -----------------------------------------------------------------------------------------------

def git_head(repo: Path, data: bytes) -> tuple[bool, bool, str]:
    """(is it a repository, does HEAD resolve, git's stderr) with *data* as HEAD."""
    orig = (repo / "HEAD").read_bytes()
    (repo / "HEAD").write_bytes(data)
    try:
        gd = _git(repo, "rev-parse", "--git-dir")
        rv = _git(repo, "rev-parse", "--verify", "-q", "HEAD")
    finally:
        (repo / "HEAD").write_bytes(orig)
    return gd.returncode == 0, rv.returncode == 0, gd.stderr.decode(errors="replace")


def test_head_damage_codes_and_git(repo: Path) -> None:
    o = main_oid(repo).encode()
    cases: list[tuple[str, bytes, set[str], set[str]]] = [
        ("branch", b"ref: refs/heads/main\n", set(), set()),
        ("detached", o + b"\n", set(), set()),  # headDetached is info
        ("cut short", b"ref: refs/heads/mas", set(), {"headSymrefMissingNewline"}),
        ("cut in 'refs/'", b"ref: ref", {"headNotRef"}, {"headSymrefMissingNewline"}),
        ("empty", b"", {"headEmpty"}, set()),
        ("truncated id", o[:12], {"headTruncated"}, set()),
        ("a tag", b"ref: refs/tags/v1.0\n", {"headBadTarget"}, set()),
        ("outside refs/", b"ref: foo\n", {"headNotRef"}, set()),
        ("bad target name", b"ref: refs/heads/a b\n", {"headBadTargetName"}, set()),
        ("junk glued to the id", o + b"junk\n", {"headBadContent"}, set()),
        ("garbage", b"hello\n", {"headBadContent"}, set()),
        ("zero-padded (git keeps the LF in the name)", b"ref: refs/heads/main\n\0\0\0\0", {"headBadTargetName"},
         {"headZeroPadded"}),
        ("zero-padded id", o + b"\n\0\0\0\0", set(), {"headZeroPadded"}),
        ("null id", b"0" * 40 + b"\n", {"headNullOid"}, set()),
    ]
    refs = set(loose_refs_of(repo))
    for what, data, errs, warns in cases:
        head, fs = parse_head(data, SHA1)
        assert codes(fs) == errs, (what, fs)
        assert codes(fs, Severity.WARNING) == warns, (what, fs)
        is_repo, resolves, stderr = git_head(repo, data)
        says_not_repo = any("not a git repository" in f.message for f in fs)
        assert says_not_repo == (not is_repo), (what, stderr, fs)
        ours = head is not None and (head.oid is not None or head.symref in refs)
        assert ours == resolves or (what == "null id" and not ours), (what, head, resolves)
    head, fs = parse_head(o + b"\n", SHA1)
    assert head == LooseRef("HEAD", bytes.fromhex(o.decode()), None)
    assert [f.code for f in fs] == ["headDetached"]


# -- properties ---------------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from([SHA1, SHA256, None]),
       st.sampled_from(["refs/heads/main", "refs/heads/a b", "HEAD", "x", "refs/\udcff"]))
def test_arbitrary_bytes_never_raise(data: bytes, algo: HashAlgo | None, name: str) -> None:
    ref, fs = parse_loose_ref(data, name, algo, name)
    assert ref is None or isinstance(ref, LooseRef)
    assert all(isinstance(f, Finding) for f in fs)
    head, fs = parse_head(data, algo)
    assert head is None or head.name == "HEAD"
    if head is None:
        assert codes(fs), (data, fs)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=20, max_size=20), st.integers(0, 41),
       st.sampled_from([b"", b"\n", b" x\n", b"\0\0\0", b"\r\n", b"zz", b"\n\n", b"\t"]))
def test_cut_ids_never_pass_silently(raw: bytes, cut: int, tail: bytes) -> None:
    """An id cut short is an error whatever non-hex material follows it (newline, junk or NULs)."""
    data = raw.hex().encode()[:cut] + tail
    ref, fs = parse_loose_ref(data, "refs/heads/x", SHA1, "refs/heads/x")
    if cut < 40:
        assert ref is None and codes(fs)
    elif ref is not None:
        assert ref.oid == raw
