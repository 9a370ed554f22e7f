"""Ref names: check_refname against ``git check-ref-format``; git's notions of safe and root refs."""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapcheck.gitformats.refname import check_refname, is_root_ref, is_safe_refname

import gitrepos


def git_accepts(name: bytes, onelevel: bool = False) -> bool:
    args = ["git", "check-ref-format", *(["--allow-onelevel"] if onelevel else []), name.decode("utf-8", "surrogateescape")]
    return subprocess.run(args, capture_output=True, env=gitrepos.GIT_ENV).returncode == 0


VALID = [b"refs/heads/main", b"refs/tags/v1.0", b"refs/pull/123/head", b"refs/heads/a@b", b"refs/heads/a.b/c",
         b"refs/heads/caf\xc3\xa9", b"refs/heads/\xff", b"refs/heads/a./b", b"foo/bar", b"refs/heads/-x",
         b"refs/heads/a{b}", b"refs/heads/x.loc", b"refs/heads/lock"]
INVALID = {
    b"": "empty name",
    b"@": "the name '@' alone",
    b"refs/heads/a b": "contains space",
    b"refs/heads/a\tb": "contains TAB",
    b"refs/heads/a\x7f": "contains DEL",
    b"refs/heads/a\x01": "contains control character 0x01",
    b"refs/heads/a:b": "contains ':'",
    b"refs/heads/a?b": "contains '?'",
    b"refs/heads/a[b": "contains '['",
    b"refs/heads/a\\b": "contains '\\\\'",
    b"refs/heads/a^b": "contains '^'",
    b"refs/heads/a~b": "contains '~'",
    b"refs/heads/a*b": "contains '*'",
    b"refs/heads/a..b": "contains '..'",
    b"refs/heads/a@{b": "contains '@{'",
    b"/refs/heads/a": "empty component (leading, trailing or double '/')",
    b"refs/heads/a/": "empty component (leading, trailing or double '/')",
    b"refs//heads": "empty component (leading, trailing or double '/')",
    b"refs/heads/.a": "a component begins with '.'",
    b"refs/heads/a.lock": "a component ends with '.lock'",
    b"refs/heads/a.lock/b": "a component ends with '.lock'",
    b"refs/heads/a.": "ends with '.'",
    b"main": "only one component (a full name needs at least two, like refs/x)",
}


@pytest.mark.parametrize("name", VALID)
def test_valid(name: bytes) -> None:
    assert check_refname(name) is None
    assert git_accepts(name)


@pytest.mark.parametrize("name", list(INVALID))
def test_invalid_with_reason(name: bytes) -> None:
    assert check_refname(name) == INVALID[name]
    if name:  # git check-ref-format cannot be handed an empty argument meaningfully
        assert not git_accepts(name)


def test_onelevel_and_nul() -> None:
    assert check_refname(b"main", allow_onelevel=True) is None and git_accepts(b"main", onelevel=True)
    assert check_refname(b"HEAD", allow_onelevel=True) is None
    assert check_refname(b"refs/heads/a\0b") == "contains NUL"


_chars = st.sampled_from([*"ab/.-@{}*?[\\^~: ", "lock", "\t", "\x7f", "\u00e9"])


@settings(max_examples=150, deadline=None)
@given(st.lists(_chars, max_size=12).map(lambda cs: ("refs/" + "".join(cs)).encode()), st.booleans())
def test_agrees_with_git_check_ref_format(name: bytes, onelevel: bool) -> None:
    assert (check_refname(name, allow_onelevel=onelevel) is None) == git_accepts(name, onelevel), name


@settings(max_examples=100, deadline=None)
@given(st.lists(_chars, min_size=1, max_size=10).map(lambda cs: "".join(cs).encode()), st.booleans())
def test_agrees_with_git_outside_refs(name: bytes, onelevel: bool) -> None:
    if name.startswith(b"-"):
        return  # git would take it for an option
    assert (check_refname(name, allow_onelevel=onelevel) is None) == git_accepts(name, onelevel), name


def test_safe() -> None:
    safe = [b"refs/heads/main", b"refs/heads/a b", b"refs/heads/a..b", b"refs/x\r", b"HEAD", b"FETCH_HEAD", b"A_B"]
    unsafe = [b"refs/", b"refs//a", b"refs/a/", b"refs/heads/../x", b"refs/heads/./x", b"refs/..", b"refs/a/.",
              b"head", b"foo/bar", b"HEAD:", b"", b"refs/a\0b"]
    assert all(is_safe_refname(n) for n in safe)
    assert not any(is_safe_refname(n) for n in unsafe)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40))
def test_safe_names_cannot_climb(name: bytes) -> None:
    """A safe name under refs/ has no empty, '.' or '..' component; outside refs/ it is A-Z and '_'."""
    if is_safe_refname(name):
        if name.startswith(b"refs/"):
            assert all(c not in (b"", b".", b"..") for c in name[5:].split(b"/"))
        else:
            assert name and set(name) <= set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ_")
    assert isinstance(check_refname(name), (str, type(None)))


def test_root_refs() -> None:
    assert all(is_root_ref(n) for n in (b"HEAD", b"ORIG_HEAD", b"CHERRY_PICK_HEAD", b"AUTO_MERGE"))
    assert not any(is_root_ref(n) for n in (b"FETCH_HEAD", b"MERGE_HEAD", b"refs/heads/x", b"head", b"FOO"))
