"""``fsck_tree``'s fast path (a C-speed match for trees git's fsck has nothing to say about) must give
exactly what the exact path gives: the same findings and the same links, on trees that look like what
git writes and on the near misses the fast path must hand over (names like '.git', '.', '..', 'a/b',
a backslash, a null id, duplicates, a file and a directory of the same name, bad order, odd modes)."""

from __future__ import annotations

from hypothesis import event, given, settings
from hypothesis import strategies as st

from snapcheck.gitformats import objects
from snapcheck.gitformats.common import SHA1, SHA256, HashAlgo
from snapcheck.gitformats.objects import OBJ_TREE, check_object_format, fsck_tree, tree_links_into

_PLAIN_NAMES = st.text(alphabet="abcdefgh-_.0123", min_size=1, max_size=6).map(str.encode)
_ODD_NAMES = (
    st.sampled_from([b".git", b".GIT", b".gitmodules", b".gitattributes", b".gitignore", b".mailmap", b"git~1",
                     b"GIT~1", b".", b"..", b"a/b", b"a\\b", b".g\xe2\x80\x8cit", b"\xef\xbb\xbfx", b"gi7eba~1",
                     b"~x", b".m", b"a" * 5000, b".profile", b"Makefile", b"a-b", b"a.b", b"a0"])
)
_MODES = [b"40000", b"100644", b"100755", b"120000", b"160000", b"040000", b"100664"]


@st.composite
def near_git_trees(draw: st.DrawFn, rawsz: int) -> bytes:
    """Entries sorted as git sorts them (usually), with plausible and suspicious names and modes."""
    n = draw(st.integers(0, 10))
    ents = []
    for _ in range(n):
        mode = draw(st.sampled_from(_MODES[:4]) if draw(st.integers(0, 9)) else st.sampled_from(_MODES))
        name = draw(_PLAIN_NAMES if draw(st.integers(0, 19)) else _ODD_NAMES)
        oid = draw(st.just(bytes(rawsz)) if not draw(st.integers(0, 60))
                   else st.binary(min_size=rawsz, max_size=rawsz))
        ents.append((mode, name, oid))
    if draw(st.integers(0, 4)):  # git's order: a directory as "name/"
        ents.sort(key=lambda e: e[1] + (b"/" if e[0] in (b"40000", b"040000") else b""))
    if ents and not draw(st.integers(0, 10)):  # a duplicate
        ents.insert(draw(st.integers(0, len(ents))), ents[draw(st.integers(0, len(ents) - 1))])
    return b"".join(m + b" " + nm + b"\0" + o for m, nm, o in ents)


def _agree(data: bytes, algo: HashAlgo) -> bool:
    oid = b"\x07" * algo.rawsz
    trees: set[bytes] = set()
    blobs: set[bytes] = set()
    fs, parsed = fsck_tree(data, oid, algo, "p", trees, blobs)
    exact = check_object_format(OBJ_TREE, data, oid, algo, "p")
    assert [(f.code, f.message) for f in fs] == [(f.code, f.message) for f in exact]
    t2: set[bytes] = set()
    b2: set[bytes] = set()
    assert parsed == tree_links_into(data, algo, t2, b2)
    assert (trees, blobs) == (t2, b2)
    fast = objects._fsck_clean_tree(data, algo.rawsz, None, None)
    if fast:
        assert fs == [] and parsed
    return fast


@settings(max_examples=600, deadline=None)
@given(near_git_trees(20))
def test_fast_path_agrees_with_the_exact_checks_sha1(data: bytes) -> None:
    event("fast path" if _agree(data, SHA1) else "exact path")


@settings(max_examples=200, deadline=None)
@given(near_git_trees(32))
def test_fast_path_agrees_with_the_exact_checks_sha256(data: bytes) -> None:
    event("fast path" if _agree(data, SHA256) else "exact path")


def test_fast_path_takes_ordinary_trees_and_hands_over_the_rest() -> None:
    z = b"\x11" * 20

    def tree(*ents: tuple[bytes, bytes]) -> bytes:
        return b"".join(m + b" " + n + b"\0" + z for m, n in ents)

    ordinary = tree((b"100644", b".gitignore-not"), (b"100644", b"Makefile"), (b"40000", b"src"),
                    (b"100644", b"src.c"), (b"120000", b"zlink"))
    # ".gitignore-not" starts like a special name: handed over (and clean on the exact path too)
    assert not _agree(ordinary, SHA1)
    ordinary = tree((b"100644", b"Makefile"), (b"100644", b"a-b"), (b"40000", b"a"), (b"100755", b"run"))
    assert _agree(ordinary, SHA1)
    assert _agree(b"", SHA1)
    for bad in (tree((b"100644", b"b"), (b"100644", b"a")),  # order
                tree((b"100644", b"a"), (b"40000", b"a")),  # file and directory of one name
                tree((b"100644", b"a"), (b"100644", b"a")),
                tree((b"100644", b".")), tree((b"100644", b"..")), tree((b"40000", b".git")),
                tree((b"100644", b"a/b")), tree((b"100644", b"a\\b")), tree((b"160000", b"sub")),
                tree((b"100664", b"old")), tree((b"040000", b"pad")), tree((b"100644", b"a" * 5000)),
                b"100644 a\0" + bytes(20), b"100644 a\0" + z[:5]):
        assert not _agree(bad, SHA1), bad[:40]
    # and the exact path then names what git's fsck says
    for bad, code in ((tree((b"100644", b"b"), (b"100644", b"a")), "treeNotSorted"),
                      (tree((b"100644", b"a"), (b"40000", b"a")), "duplicateEntries"),
                      (tree((b"100644", b".")), "hasDot"), (tree((b"40000", b".git")), "hasDotgit"),
                      (tree((b"100644", b"a/b")), "fullPathname"), (tree((b"040000", b"pad")), "zeroPaddedFilemode"),
                      (tree((b"100644", b"a" * 5000)), "largePathname"), (b"100644 a\0" + bytes(20), "nullSha1"),
                      (b"100644 a\0" + z[:5], "badTree")):
        assert code in {f.code for f in check_object_format(OBJ_TREE, bad, b"\x07" * 20, SHA1, "p")}, code
