"""Object parsers and git's fsck format rules (snapcheck.gitformats.objects).

The oracle is the real ``git fsck``: crafted objects (``hash-object --literally``) are judged by git
and by :func:`check_object_format`, and the error/warning verdicts and message ids must agree.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapcheck.gitformats.common import SHA1, SHA256, HashAlgo
from snapcheck.gitformats.objects import (
    _SUSPECT_NAME,
    OBJ_BLOB,
    OBJ_COMMIT,
    OBJ_TAG,
    OBJ_TREE,
    Links,
    _check_special_names,
    _is_hfs_dot,
    _is_ntfs_dot_generic,
    _is_ntfs_dotgit,
    _Reporter,
    _verify_order_exact,
    check_object_format,
    commit_links,
    hash_object,
    object_links,
    tag_target,
    tree_entries,
)
from snapcheck.report import Severity

from gitrepos import GIT_ENV, all_objects, git

NULL = "0" * 40
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


TYPES = {"commit": OBJ_COMMIT, "tree": OBJ_TREE, "blob": OBJ_BLOB, "tag": OBJ_TAG}


# -- links against git's own view ------------------------------------------------------------------
@pytest.mark.parametrize("config", ["gc_bitmaps", "sha256"])
def test_links_match_git(mirrors: Callable[[str], Path], config: str) -> None:
    repo = mirrors(config)
    algo = SHA256 if config == "sha256" else SHA1
    refs = git("for-each-ref", "refs/tags", "--format=%(objectname) %(*objectname) %(*objecttype)", cwd=repo)
    tag_targets = {f[0]: (f[1], f[2]) for f in (line.split() for line in refs.splitlines()) if len(f) == 3}
    commits = {f[0]: (f[1], f[2:]) for f in (line.split() for line in
                                             git("log", "--all", "--format=%H %T %P", cwd=repo).splitlines())}
    seen = {"commit": 0, "tree": 0, "tag": 0, "blob": 0}
    for oid, (typ, data) in all_objects(repo).items():
        seen[typ] += 1
        assert hash_object(algo, TYPES[typ], data).hex() == oid
        if typ == "commit":
            c = commit_links(data, algo)
            assert c is not None
            assert (c[0].hex(), [p.hex() for p in c[1]]) == commits[oid]
        elif typ == "tree":
            e = tree_entries(data, algo)
            assert e is not None
            listing = [line.split(None, 3) for line in git("ls-tree", oid, cwd=repo).splitlines()]
            assert sorted(x.hex() for x in e.subtrees) == sorted(o for _m, k, o, _n in listing if k == "tree")
            assert sorted(x.hex() for x in e.blobs) == sorted(o for _m, k, o, _n in listing if k == "blob")
            assert sorted(x.hex() for x in e.gitlinks) == sorted(o for _m, k, o, _n in listing if k == "commit")
        elif typ == "tag":
            g = tag_target(data, algo)
            assert g is not None
            assert (g[0].hex(), {1: "commit", 2: "tree", 3: "blob", 4: "tag"}[g[1]]) == tag_targets[oid]
        assert check_object_format(TYPES[typ], data, bytes.fromhex(oid), algo, "x") == []
    assert seen["commit"] == len(commits) > 10 and seen["tree"] > 10 and seen["tag"] == len(tag_targets) >= 4
    # the fixture's gitlink (vendor/sub, mode 160000) is listed as a gitlink, never as a tree or blob
    vendor = git("rev-parse", "HEAD:vendor", cwd=repo).strip()
    e = tree_entries(all_objects(repo)[vendor][1], algo)
    assert e is not None and len(e.gitlinks) == 1 and not e.blobs and not e.subtrees


def test_links_dataclass_expected() -> None:
    a, b, c = b"a" * 20, b"b" * 20, b"c" * 20
    lk = Links(tree=a, parents=[b])
    assert lk.expected() == [(a, OBJ_TREE), (b, OBJ_COMMIT)]
    lk = Links(subtrees=[a], blobs=[b], gitlinks=[c])
    assert lk.expected() == [(a, OBJ_TREE), (b, OBJ_BLOB)]
    lk = Links(target=c, target_type=OBJ_TAG)
    assert lk.expected() == [(c, OBJ_TAG)]


def test_commit_links_git_rules() -> None:
    t = b"tree " + EMPTY_TREE.encode() + b"\n"
    p = b"parent " + b"1" * 40 + b"\n"
    assert commit_links(t + b"author x\n", SHA1) == (bytes.fromhex(EMPTY_TREE), [])
    assert commit_links(t + p + p + b"x", SHA1) == (bytes.fromhex(EMPTY_TREE), [b"\x11" * 20] * 2)
    assert commit_links(t.upper().replace(b"TREE", b"tree") + b"x", SHA1) is not None  # git accepts upper-case hex
    assert commit_links(t, SHA1) is None  # nothing after the tree line: "bogus commit object"
    assert commit_links(t + p, SHA1) is None  # nothing after a parent line: "bad parents"
    assert commit_links(t + b"parent zz" + b" " * 40 + b"\nx", SHA1) is None
    assert commit_links(b"tree " + b"1" * 39 + b" \nx" + b" " * 10, SHA1) is None
    assert commit_links(b"", SHA1) is None


def test_tag_target_git_rules() -> None:
    base = b"object " + EMPTY_TREE.encode() + b"\ntype tree\ntag v1\n"
    assert tag_target(base + b"\n", SHA1) == (bytes.fromhex(EMPTY_TREE), OBJ_TREE)
    assert tag_target(base.replace(b"type tree", b"type tre"), SHA1) is None
    assert tag_target(base.replace(b"tag v1\n", b"tag v1"), SHA1) is None
    assert tag_target(base[:30], SHA1) is None


def test_tree_entries_modes() -> None:
    oid = b"\x01" * 20
    data = (b"100644 a\x00" + oid + b"040000 b\x00" + oid + b"160000 c\x00" + oid + b"120000 d\x00" + oid
            + b"40755 e\x00" + oid + b"100664 f\x00" + oid + b"1 g\x00" + oid)
    e = tree_entries(data, SHA1)
    assert e is not None
    assert len(e.subtrees) == 2 and len(e.blobs) == 3 and len(e.gitlinks) == 2
    assert tree_entries(b"", SHA1) == ([], [], [])
    assert tree_entries(data[:-1], SHA1) is None
    assert tree_entries(b" a\x00" + oid, SHA1) is None  # no mode
    assert tree_entries(b"100644 \x00" + oid, SHA1) is None  # empty name
    assert tree_entries(b"100644 a\x00" + oid + b"x", SHA1) is None
    assert object_links(OBJ_BLOB, b"anything", SHA1) == Links()
    assert object_links(9, b"", SHA1) is None


# -- the oracle: git fsck on crafted objects -------------------------------------------------------
_GIT_LINE = re.compile(r"^(error|warning) in (\w+) ([0-9a-f]{40}): (\w+): ")
_GIT_UNPARSEABLE = re.compile(r"^error: ([0-9a-f]{40}): object (?:could not be parsed|corrupt or missing)")
# message ids git 2.39 knows (newer ids such as largePathname or badGpgsig are left out of the oracle)
_GIT239_IDS = {
    "nulInHeader", "unterminatedHeader", "badDate", "badDateOverflow", "badEmail", "badName", "badObjectSha1",
    "badParentSha1", "badTimezone", "badTree", "badTreeSha1", "badType", "duplicateEntries", "missingAuthor",
    "missingCommitter", "missingEmail", "missingNameBeforeEmail", "missingObject", "missingSpaceBeforeDate",
    "missingSpaceBeforeEmail", "missingTag", "missingTagEntry", "missingTree", "missingType", "missingTypeEntry",
    "multipleAuthors", "treeNotSorted", "unknownType", "zeroPaddedDate", "gitmodulesSymlink", "emptyName",
    "fullPathname", "hasDot", "hasDotdot", "hasDotgit", "nullSha1", "zeroPaddedFilemode", "nulInCommit",
    "badFilemode", "gitignoreSymlink", "gitattributesSymlink", "mailmapSymlink", "badTagName", "missingTaggerEntry",
}

# ids of no object; one per role so that git never sees one id used as two types
B = bytes.fromhex("1234567890abcdef1234567890abcdef12345678")  # blobs
TREE_ID = bytes.fromhex("2234567890abcdef1234567890abcdef12345678")
PARENT_ID = bytes.fromhex("3234567890abcdef1234567890abcdef12345678")
IDENT = b"A U Thor <a@example.com> 1700000000 +0000"


def _tree(*entries: tuple[bytes, bytes]) -> bytes:
    return b"".join(mode + b" " + name + b"\x00" + (TREE_ID if int(mode, 8) & 0o170000 == 0o40000 else B)
                    for mode, name in entries)


def _commit(head: bytes, body: bytes = b"\nmsg\n") -> bytes:
    return head + body


_T = b"tree " + EMPTY_TREE.encode() + b"\n"
_A = b"author " + IDENT + b"\n"
_C = b"committer " + IDENT + b"\n"
_O = b"object " + EMPTY_TREE.encode() + b"\ntype tree\n"

CRAFTED: list[tuple[str, bytes]] = [
    # trees
    ("tree", _tree((b"100644", b"a"), (b"100755", b"b"), (b"40000", b"c"))),
    ("tree", _tree((b"040000", b"a"), (b"100644", b"b"))),  # zero-padded: warning only
    ("tree", _tree((b"100664", b"a"))),  # old mode, accepted
    ("tree", _tree((b"100000", b"a"))),  # bad mode: info
    ("tree", _tree((b"100644", b"a"), (b"100644", b"a"))),  # duplicate
    ("tree", _tree((b"100644", b"b"), (b"100644", b"a"))),  # not sorted
    ("tree", _tree((b"100644", b"a"), (b"100644", b"a.c"), (b"40000", b"a"))),  # file/dir duplicate
    ("tree", _tree((b"40000", b"a"), (b"100644", b"a.c"))),  # dir sorts as "a/": not sorted
    ("tree", _tree((b"100644", b"a.c"), (b"40000", b"a"))),  # ... and this is the right order
    ("tree", _tree((b"100644", b"."),)),
    ("tree", _tree((b"100644", b".."),)),
    ("tree", _tree((b"40000", b".git"),)),
    ("tree", _tree((b"40000", b".GIT"),)),
    ("tree", _tree((b"40000", b".git. ."),)),
    ("tree", _tree((b"40000", b"GIT~1"),)),
    ("tree", _tree((b"40000", ".g\u200cit".encode()),)),
    ("tree", _tree((b"40000", b"a\\.git"),)),
    ("tree", _tree((b"100644", b"a/b"),)),
    ("tree", _tree((b"120000", b".gitmodules"),)),
    ("tree", _tree((b"120000", b".GITMODULES"),)),
    ("tree", _tree((b"120000", b"gi7eba~1"),)),
    ("tree", _tree((b"120000", b".gitignore"),)),
    ("tree", _tree((b"120000", b".gitattributes"),)),
    ("tree", _tree((b"120000", b".mailmap"),)),
    ("tree", _tree((b"100644", b".gitignore"), (b"100644", b"main.c"), (b"100644", b"mod.py"))),
    ("tree", b"100644 a\x00" + b"\x00" * 20),  # null sha1
    ("tree", b"100644 a\x00" + B[:10]),  # cut
    ("tree", b"1OO644 a\x00" + B),  # bad mode characters
    # commits
    ("commit", _commit(_T + _A + _C)),
    ("commit", _commit(_T + b"parent " + PARENT_ID.hex().encode() + b"\n" + _A + _C)),
    ("commit", _commit(_T + _C)),  # missing author
    ("commit", _commit(_T + _A + _A + _C)),  # multiple authors
    ("commit", _commit(_T + _A)),  # missing committer
    ("commit", _commit(_T + b"author <a@b> 1 +0000\n" + _C)),
    ("commit", _commit(_T + b"author A a@b> 1 +0000\n" + _C)),
    ("commit", _commit(_T + b"author A<a@b> 1 +0000\n" + _C)),
    ("commit", _commit(_T + b"author A <a@b 1 +0000\n" + _C)),
    ("commit", _commit(_T + b"author A <a@b>1 +0000\n" + _C)),
    ("commit", _commit(_T + b"author A <a@b> x +0000\n" + _C)),
    ("commit", _commit(_T + b"author A <a@b> 01 +0000\n" + _C)),
    ("commit", _commit(_T + b"author A <a@b> 0 +0000\n" + _C)),  # zero itself is fine
    ("commit", _commit(_T + b"author A <a@b> 99999999999999999999 +0000\n" + _C)),
    ("commit", _commit(_T + b"author A <a@b> 1 +000\n" + _C)),
    ("commit", _commit(_T + b"author A <a@b>   1 +0000\n" + _C)),  # extra spaces: allowed
    ("commit", _commit(_T + b"author A > <a@b> 1 +0000\n" + _C)),
    ("commit", _commit(_T + _A + _C, b"\nmsg\x00with nul\n")),
    ("commit", _T + _A + _C.rstrip(b"\n")),  # unterminated header
    ("commit", _T + _A + b"committer A <a\x00> 1 +0000\n\n"),  # NUL in header
    ("commit", b"tree " + b"1" * 39 + b"\n" + _A + _C),  # bad tree: git cannot parse it at all
    # tags
    ("tag", _O + b"tag v1\ntagger " + IDENT + b"\n\nmsg\n"),
    ("tag", _O + b"tag v1\n\nmsg\n"),  # no tagger: info
    ("tag", _O + b"tag v1..x\ntagger " + IDENT + b"\n\nmsg\n"),  # bad tag name: info
    ("tag", _O + b"tag v1\ntagger A <a@b> 01 +0000\n\nmsg\n"),
    ("tag", _O.replace(b"type tree", b"type tre") + b"tag v1\n\n"),
    # blob
    ("blob", b"any content \x00\xff"),
]


def _ours(kind: str, data: bytes, oid: bytes) -> tuple[bool, set[str], set[str]]:
    t = {"commit": OBJ_COMMIT, "tree": OBJ_TREE, "blob": OBJ_BLOB, "tag": OBJ_TAG}[kind]
    fs = check_object_format(t, data, oid, SHA1, "objects/xx")
    errors = {f.code for f in fs if f.severity is Severity.ERROR}
    others = {f.code for f in fs if f.severity is not Severity.ERROR}
    return bool(errors), errors, others


def test_format_checks_agree_with_git_fsck(tmp_path: Path) -> None:
    repo = tmp_path / "crafted.git"
    git("init", "-q", "--bare", str(repo))
    oids = []
    for kind, data in CRAFTED:
        oid = git("hash-object", "-t", kind, "--literally", "-w", "--stdin", cwd=repo, input=data).strip()
        oids.append(oid)
    res = subprocess.run(["git", "fsck", "--no-dangling", "--no-progress"], cwd=repo, capture_output=True,
                         env=GIT_ENV)
    out = (res.stdout + res.stderr).decode(errors="replace")
    git_ids: dict[str, dict[str, set[str]]] = {}
    unparseable: set[str] = set()
    for line in out.splitlines():
        m = _GIT_LINE.match(line)
        if m:
            git_ids.setdefault(m.group(3), {"error": set(), "warning": set()})[m.group(1)].add(m.group(4))
        m2 = _GIT_UNPARSEABLE.match(line)
        if m2:
            unparseable.add(m2.group(1))
    checked = 0
    for (kind, data), oid in zip(CRAFTED, oids, strict=True):
        has_err, errors, others = _ours(kind, data, bytes.fromhex(oid))
        g = git_ids.get(oid, {"error": set(), "warning": set()})
        git_err = bool(g["error"]) or oid in unparseable
        assert has_err == git_err, (kind, data, errors, others, g, oid in unparseable)
        if oid not in unparseable:
            assert errors & _GIT239_IDS == g["error"], (kind, data, errors, g)
            assert others & _GIT239_IDS == g["warning"], (kind, data, others, g)
        checked += 1
    assert checked == len(CRAFTED)
    assert res.returncode != 0  # git did find the errors


def test_severities_follow_git() -> None:
    oid = b"\x02" * 20
    fs = check_object_format(OBJ_TREE, _tree((b"040000", b"a"), (b"100644", b"b")), oid, SHA1, "p")
    assert [(f.code, f.severity) for f in fs] == [("zeroPaddedFilemode", Severity.WARNING)]
    assert "git fsck: warning in tree 0202" in fs[0].message
    fs = check_object_format(OBJ_TAG, _O + b"tag v1\n\nmsg\n", oid, SHA1, "p")
    assert [(f.code, f.severity) for f in fs] == [("missingTaggerEntry", Severity.INFO)]
    fs = check_object_format(OBJ_TREE, _tree((b"100000", b"a")), oid, SHA1, "p")
    assert [(f.code, f.severity) for f in fs] == [("badFilemode", Severity.INFO)]
    fs = check_object_format(OBJ_TREE, _tree((b"100644", b"a" * 5000)), oid, SHA1, "p")
    assert [(f.code, f.severity) for f in fs] == [("largePathname", Severity.WARNING)]
    fs = check_object_format(7, b"", oid, SHA1, "p")
    assert [f.code for f in fs] == ["unknownType"]
    tag = _O + b"tag v1\ntagger " + IDENT + b"\ngpgsig -----BEGIN\n continued\n -----END"
    assert [f.code for f in check_object_format(OBJ_TAG, tag + b"\n\nm", oid, SHA1, "p")] == []
    assert [f.code for f in check_object_format(OBJ_TAG, tag + b"\n", oid, SHA1, "p")] == []
    assert [f.code for f in check_object_format(OBJ_TAG, _O + b"tag v1\ntagger " + IDENT + b"\ngpgsig x",
                                                oid, SHA1, "p")] == ["unterminatedHeader"]


def test_sha256_format() -> None:
    tree = b"100644 a\x00" + b"\x01" * 32 + b"40000 b\x00" + b"\x02" * 32
    assert check_object_format(OBJ_TREE, tree, b"\x03" * 32, SHA256, "p") == []
    e = tree_entries(tree, SHA256)
    assert e is not None and e.subtrees == [b"\x02" * 32]
    commit = b"tree " + b"ab" * 32 + b"\n" + _A + _C + b"\nm\n"
    assert check_object_format(OBJ_COMMIT, commit, b"\x03" * 32, SHA256, "p") == []
    assert [f.code for f in check_object_format(OBJ_COMMIT, commit, b"\x03" * 20, SHA1, "p")] == ["badTreeSha1"]


# -- special names: the prefilter is a superset of git's predicates ----------------------------------
_NAME_ALPHABET = st.sampled_from([b".", b"g", b"G", b"i", b"I", b"t", b"T", b"~", b"1", b"4", b"9", b" ", b":",
                                  b"\\", b"/", b"m", b"a", b"b", b"3", b"0", b"7", b"e", b"d", b"2", b"5",
                                  "\u200c".encode(), "\ufeff".encode(), b"\xff", b"x", b"o", b"u", b"l", b"s",
                                  b"r", b"n", b"p", b"c", b"f"])
_NEEDLES = [(b"gitmodules", b"gi7eba"), (b"gitattributes", b"gi7d29"), (b"gitignore", b"gi250a"),
            (b"mailmap", b"maba30")]


@settings(max_examples=500, deadline=None)
@given(st.lists(_NAME_ALPHABET, min_size=1, max_size=14).map(b"".join))
def test_special_name_prefilter_is_a_superset(name: bytes) -> None:
    flagged = _is_hfs_dot(name, b"git") or _is_ntfs_dotgit(name) or any(
        _is_hfs_dot(name, n) or _is_ntfs_dot_generic(name, n, p) for n, p in _NEEDLES)
    if flagged:
        assert _SUSPECT_NAME.match(name) is not None or b"\\" in name, name


@pytest.mark.parametrize("name", [b".git", b".GiT", b".git ", b".git..", b"git~1", b"GIT~1", b".git:stream",
                                  ".\u200cgit".encode(), ".git\ufeff".encode(), b".git/x", b".git\xff"])
def test_dotgit_spellings(name: bytes) -> None:
    rep = _Reporter(OBJ_TREE, b"\x00" * 20, "p")
    assert _check_special_names([name], [b"40000"], rep) is True


@pytest.mark.parametrize("name", [b".gitx", b"git~2", b"xgit", b".gi", b"gitmodules", b"g.it"])
def test_not_dotgit(name: bytes) -> None:
    rep = _Reporter(OBJ_TREE, b"\x00" * 20, "p")
    assert _check_special_names([name], [b"40000"], rep) is False


@settings(max_examples=250, deadline=None)
@given(st.lists(st.tuples(st.lists(st.sampled_from([b"a", b"b", b".", b"-", b"0"]), min_size=1, max_size=3)
                          .map(b"".join), st.booleans()), max_size=8))
def test_fast_order_check_matches_git_algorithm(entries: list[tuple[bytes, bool]]) -> None:
    names = [n for n, _d in entries]
    modes = [0o40000 if d else 0o100644 for _n, d in entries]
    keys = [n + (b"/" if d else b"\x00") for n, d in entries]
    fast_bad = keys != sorted(keys) or len(set(names)) != len(names)
    unsorted, dups = _verify_order_exact(names, modes)
    assert fast_bad == (unsorted or dups)
    if not unsorted:
        assert dups == (len(set(names)) != len(names))


# -- arbitrary input never raises ----------------------------------------------------------------------
_OBJ_BYTES = st.one_of(
    st.binary(max_size=300),
    st.lists(st.sampled_from([b"tree ", b"parent ", b"author ", b"committer ", b"tagger ", b"object ", b"type ",
                              b"tag ", b"commit", b"gpgsig ", b" ", b"\n", b"\x00", b"<", b">", b"a@b", b"1",
                              b"+0000", b"-", EMPTY_TREE.encode(), b"100644 ", b"40000 ", b"x\x00", B]),
             max_size=30).map(b"".join),
)


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 8), _OBJ_BYTES, st.sampled_from([SHA1, SHA256]))
def test_parsers_never_raise(obj_type: int, data: bytes, algo: HashAlgo) -> None:
    fs = check_object_format(obj_type, data, b"\x05" * algo.rawsz, algo, "objects/pack/x.pack")
    assert all(f.code and f.message for f in fs)
    commit_links(data, algo)
    tag_target(data, algo)
    tree_entries(data, algo)
    object_links(obj_type, data, algo)
