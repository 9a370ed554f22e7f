"""Git objects: commits, trees and tags, read for their links and checked with git's fsck rules.

Two kinds of readers live here, and they answer different questions:

* **Links** (:func:`commit_links`, :func:`tree_entries`, :func:`tag_target`, :func:`object_links`)
  are what the connectivity walk follows.  They accept exactly what git's own object parsers
  accept when it walks a repository (git: commit.c ``parse_commit_buffer``, tag.c
  ``parse_tag_buffer``, tree-walk.c ``decode_tree_entry``) and return ``None`` where git fails to
  parse the object.  Trees are scanned in place with one regular-expression split (no object per
  entry beyond the ids themselves).  Tree entry kinds follow git's walk (``canon_mode``): a mode
  with the directory type bits is a tree, regular-file and symlink types are blobs, anything
  else is a gitlink, which is never followed.
* **Format checks** (:func:`check_object_format`) are git's fsck message ids (git: fsck.c,
  Documentation/fsck-msgids.adoc) **with git's default severities**: what git reports as an error
  is an error here, what git only warns about (``zeroPaddedFilemode``, ``hasDotgit``, ``nullSha1``
  …) is a warning, and git's "info" ids (``badFilemode``, ``missingTaggerEntry``, ``badTagName``
  …) are info.  Ids git ignores by default (``extraHeaderEntry``) are not reported.  Rules:

  1. commit and tag headers end in ``\\n\\n`` or at least in ``\\n``, with no NUL before
     (``verify_headers``: ``nulInHeader``, ``unterminatedHeader``); git stops there;
  2. commit: ``tree <hex>``, then ``parent <hex>`` lines, exactly one ``author``, a
     ``committer``, each ident ``Name <email> <digits> <+|-hhmm>`` (``fsck_ident``); git stops
     at the first error; a NUL in the body is a warning;
  3. tag: ``object <hex>``, ``type <commit|tree|blob|tag>``, ``tag <name>`` (a bad name is
     info), ``tagger`` ident (absent: info, as in git v0.99 tags), ``gpgsig`` continuation lines;
  4. tree: entries ``<octal mode> <name>\\0<id>`` back to back (else ``badTree``); entries in
     git's path order with directories sorted as ``name/`` and no duplicate names
     (``treeNotSorted``, ``duplicateEntries``: errors); modes, null ids, ``.``/``..``/``.git``
     names (HFS+ and NTFS spellings), ``/`` in names, zero-padded modes, over-long names: the
     warnings and infos git gives; a ``.gitmodules`` that is a symlink is an error.

  The ``.gitmodules``/``.gitattributes`` *blob content* checks of ``fsck_finish`` are not done.

dulwich's ``ShaFile.check()`` is deliberately not used: it rejects objects git accepts (zero-padded
modes, tags without a tagger).
"""

from __future__ import annotations

import itertools
import operator
import re
from dataclasses import dataclass, field
from itertools import compress
from typing import NamedTuple

from ..report import Finding, Severity, finding, register
from .common import HashAlgo

OBJ_COMMIT = 1
OBJ_TREE = 2
OBJ_BLOB = 3
OBJ_TAG = 4
# pack entry types (gitformat-pack.adoc); never the type of an object itself
OBJ_OFS_DELTA = 6
OBJ_REF_DELTA = 7

TYPE_NAMES: dict[int, str] = {OBJ_COMMIT: "commit", OBJ_TREE: "tree", OBJ_BLOB: "blob", OBJ_TAG: "tag"}
TYPE_BY_NAME: dict[bytes, int] = {v.encode(): k for k, v in TYPE_NAMES.items()}

# (id, git's default severity, meaning, git text)
_FSCK_IDS: list[tuple[str, Severity, str, str]] = [
    ("nulInHeader", Severity.ERROR, "A NUL byte inside the header lines of a commit or tag.",
     "git fsck: error in <type> <oid>: nulInHeader: unterminated header: NUL at offset N (fatal level)"),
    ("unterminatedHeader", Severity.ERROR, "The header lines of a commit or tag do not end with a newline.",
     "git fsck: error in <type> <oid>: unterminatedHeader: unterminated header (fatal level)"),
    ("missingTree", Severity.ERROR, "A commit does not start with a `tree` line.",
     "git fsck: error in commit <oid>: missingTree: invalid format - expected 'tree' line"),
    ("badTreeSha1", Severity.ERROR, "The `tree` line of a commit does not hold a valid object id.",
     "git fsck: error in commit <oid>: badTreeSha1: invalid 'tree' line format - bad sha1"),
    ("badParentSha1", Severity.ERROR, "A `parent` line of a commit does not hold a valid object id.",
     "git fsck: error in commit <oid>: badParentSha1: invalid 'parent' line format - bad sha1"),
    ("missingAuthor", Severity.ERROR, "A commit has no `author` line after its tree and parents.",
     "git fsck: error in commit <oid>: missingAuthor: invalid format - expected 'author' line"),
    ("multipleAuthors", Severity.ERROR, "A commit has more than one `author` line.",
     "git fsck: error in commit <oid>: multipleAuthors: invalid format - multiple 'author' lines"),
    ("missingCommitter", Severity.ERROR, "A commit has no `committer` line after its author.",
     "git fsck: error in commit <oid>: missingCommitter: invalid format - expected 'committer' line"),
    ("nulInCommit", Severity.WARNING, "A NUL byte in the message of a commit.",
     "git fsck: warning in commit <oid>: nulInCommit: NUL byte in the commit object body"),
    ("missingNameBeforeEmail", Severity.ERROR, "An author/committer/tagger line starts with `<`.",
     "git fsck: error: missingNameBeforeEmail: invalid author/committer line - missing space before email"),
    ("missingEmail", Severity.ERROR, "An author/committer/tagger line has no `<email>`.",
     "git fsck: error: missingEmail: invalid author/committer line - missing email"),
    ("badName", Severity.ERROR, "An author/committer/tagger name contains `>`.",
     "git fsck: error: badName: invalid author/committer line - bad name"),
    ("missingSpaceBeforeEmail", Severity.ERROR, "No space between the name and `<email>` of an ident line.",
     "git fsck: error: missingSpaceBeforeEmail: invalid author/committer line - missing space before email"),
    ("badEmail", Severity.ERROR, "The email of an ident line is not closed by `>` on its line.",
     "git fsck: error: badEmail: invalid author/committer line - bad email"),
    ("missingSpaceBeforeDate", Severity.ERROR, "No space after the `>` of an ident line.",
     "git fsck: error: missingSpaceBeforeDate: invalid author/committer line - missing space before date"),
    ("badDate", Severity.ERROR, "The timestamp of an ident line is not a number followed by a space.",
     "git fsck: error: badDate: invalid author/committer line - bad date"),
    ("zeroPaddedDate", Severity.ERROR, "The timestamp of an ident line has a leading zero.",
     "git fsck: error: zeroPaddedDate: invalid author/committer line - zero-padded date"),
    ("badDateOverflow", Severity.ERROR, "The timestamp of an ident line does not fit a signed 64-bit time.",
     "git fsck: error: badDateOverflow: invalid author/committer line - date causes integer overflow"),
    ("badTimezone", Severity.ERROR, "The time zone of an ident line is not `+hhmm`/`-hhmm` at the end of the line.",
     "git fsck: error: badTimezone: invalid author/committer line - bad time zone"),
    ("missingObject", Severity.ERROR, "A tag does not start with an `object` line.",
     "git fsck: error in tag <oid>: missingObject: invalid format - expected 'object' line"),
    ("badObjectSha1", Severity.ERROR, "The `object` line of a tag does not hold a valid object id.",
     "git fsck: error in tag <oid>: badObjectSha1: invalid 'object' line format - bad sha1"),
    ("missingTypeEntry", Severity.ERROR, "A tag has no `type` line after its object line.",
     "git fsck: error in tag <oid>: missingTypeEntry: invalid format - expected 'type' line"),
    ("missingType", Severity.ERROR, "A tag ends inside its `type` line.",
     "git fsck: error in tag <oid>: missingType: invalid format - unexpected end after 'type' line"),
    ("badType", Severity.ERROR, "The `type` line of a tag names no object type.",
     "git fsck: error in tag <oid>: badType: invalid 'type' value"),
    ("missingTagEntry", Severity.ERROR, "A tag has no `tag` (name) line after its type line.",
     "git fsck: error in tag <oid>: missingTagEntry: invalid format - expected 'tag' line"),
    ("missingTag", Severity.ERROR, "A tag ends inside its `tag` line.",
     "git fsck: error in tag <oid>: missingTag: invalid format - unexpected end after 'type' line"),
    ("badTagName", Severity.INFO, "The name in a tag's `tag` line is not a valid ref name component.",
     "git fsck (info, shown as a warning): badTagName: invalid 'tag' name"),
    ("missingTaggerEntry", Severity.INFO, "A tag has no `tagger` line (tags made by git before 2005 have none).",
     "git fsck (info, shown as a warning): missingTaggerEntry: invalid format - expected 'tagger' line"),
    ("badGpgsig", Severity.ERROR, "A tag ends inside its `gpgsig` line.",
     "git fsck: error in tag <oid>: badGpgsig: invalid format - unexpected end after 'gpgsig' line"),
    ("badHeaderContinuation", Severity.ERROR, "A tag ends inside a continuation line of its signature header.",
     "git fsck: error in tag <oid>: badHeaderContinuation: unexpected end in 'gpgsig' continuation line"),
    ("badTree", Severity.ERROR, "A tree is not a sequence of `<mode> <name>\\0<id>` entries.",
     "git fsck: error in tree <oid>: badTree: cannot be parsed as a tree"),
    ("duplicateEntries", Severity.ERROR, "A tree has two entries of the same name.",
     "git fsck: error in tree <oid>: duplicateEntries: contains duplicate file entries"),
    ("treeNotSorted", Severity.ERROR, "The entries of a tree are not in git's path order.",
     "git fsck: error in tree <oid>: treeNotSorted: not properly sorted"),
    ("nullSha1", Severity.WARNING, "A tree entry points to the all-zero object id.",
     "git fsck: warning in tree <oid>: nullSha1: contains entries pointing to null sha1"),
    ("fullPathname", Severity.WARNING, "A tree entry name contains `/`.",
     "git fsck: warning in tree <oid>: fullPathname: contains full pathnames"),
    ("hasDot", Severity.WARNING, "A tree entry is named `.`.",
     "git fsck: warning in tree <oid>: hasDot: contains '.'"),
    ("hasDotdot", Severity.WARNING, "A tree entry is named `..`.",
     "git fsck: warning in tree <oid>: hasDotdot: contains '..'"),
    ("hasDotgit", Severity.WARNING, "A tree entry is named `.git` (or an HFS+/NTFS spelling of it).",
     "git fsck: warning in tree <oid>: hasDotgit: contains '.git'"),
    ("zeroPaddedFilemode", Severity.WARNING, "A tree entry mode has a leading zero (written by old tools).",
     "git fsck: warning in tree <oid>: zeroPaddedFilemode: contains zero-padded file modes"),
    ("badFilemode", Severity.INFO, "A tree entry mode is none of 100644, 100755, 120000, 40000, 160000 (100664).",
     "git fsck (info, shown as a warning): badFilemode: contains bad file modes"),
    ("largePathname", Severity.WARNING, "A tree entry name is longer than 4096 bytes.",
     "git fsck: warning in tree <oid>: largePathname: contains excessively large pathname"),
    ("gitmodulesSymlink", Severity.ERROR, "A tree entry named `.gitmodules` (or a spelling of it) is a symlink.",
     "git fsck: error in tree <oid>: gitmodulesSymlink: .gitmodules is a symbolic link"),
    ("gitattributesSymlink", Severity.INFO, "A tree entry named `.gitattributes` is a symlink.",
     "git fsck (info, shown as a warning): gitattributesSymlink: .gitattributes is a symlink"),
    ("gitignoreSymlink", Severity.INFO, "A tree entry named `.gitignore` is a symlink.",
     "git fsck (info, shown as a warning): gitignoreSymlink: .gitignore is a symlink"),
    ("mailmapSymlink", Severity.INFO, "A tree entry named `.mailmap` is a symlink.",
     "git fsck (info, shown as a warning): mailmapSymlink: .mailmap is a symlink"),
    ("unknownType", Severity.ERROR, "An object whose type is not commit, tree, blob or tag.",
     "git fsck: error: unknownType: unknown type (the object cannot be used)"),
]
register("objects", *_FSCK_IDS)
_SEVERITY = {code: sev for code, sev, _m, _g in _FSCK_IDS}

_GIT_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "warning"}


def type_name(obj_type: int) -> str:
    """git's name of an object type (``commit``, ``tree``, ``blob``, ``tag``), or ``unknown``."""
    return TYPE_NAMES.get(obj_type, "unknown")


def object_header(obj_type: int, size: int) -> bytes:
    """The ``<type> <size>\\0`` prefix that is hashed with an object's content."""
    return b"%s %d\x00" % (TYPE_NAMES[obj_type].encode(), size)


def hash_object(algo: HashAlgo, obj_type: int, data: bytes | memoryview) -> bytes:
    """The object id of *data* as an object of *obj_type*."""
    h = algo.new(object_header(obj_type, len(data)))
    h.update(data)
    digest: bytes = h.digest()
    return digest


# --------------------------------------------------------------------------------------------------
# links: what the walk follows
# --------------------------------------------------------------------------------------------------
@dataclass(slots=True)
class Links:
    """Outgoing links of one commit, tree or tag.

    commit: ``tree`` and ``parents``; tree: ``subtrees``, ``blobs`` (files and symlinks) and
    ``gitlinks`` (submodule commits, never followed); tag: ``target`` of declared ``target_type``.
    """

    tree: bytes | None = None
    parents: list[bytes] = field(default_factory=list)
    subtrees: list[bytes] = field(default_factory=list)
    blobs: list[bytes] = field(default_factory=list)
    gitlinks: list[bytes] = field(default_factory=list)
    target: bytes | None = None
    target_type: int = 0

    def expected(self) -> list[tuple[bytes, int]]:
        """Every followed link as ``(oid, type the referrer expects)`` (gitlinks excluded)."""
        out: list[tuple[bytes, int]] = []
        if self.tree is not None:
            out.append((self.tree, OBJ_TREE))
        out.extend((p, OBJ_COMMIT) for p in self.parents)
        out.extend((t, OBJ_TREE) for t in self.subtrees)
        out.extend((b, OBJ_BLOB) for b in self.blobs)
        if self.target is not None:
            out.append((self.target, self.target_type))
        return out


class TreeEntries(NamedTuple):
    subtrees: list[bytes]
    blobs: list[bytes]
    gitlinks: list[bytes]


_HEXDIGITS = re.compile(rb"[0-9a-fA-F]*")


def _unhex(s: bytes, hexsz: int) -> bytes | None:
    """git's ``get_oid_hex``: exactly *hexsz* hex digits (either case)."""
    if len(s) != hexsz or _HEXDIGITS.fullmatch(s) is None:
        return None
    return bytes.fromhex(s.decode("ascii"))


def commit_links(data: bytes, algo: HashAlgo) -> tuple[bytes, list[bytes]] | None:
    """``(tree, parents)`` of a commit as git's ``parse_commit_buffer`` reads them, or None where
    git fails ("bogus commit object", "bad tree pointer", "bad parents")."""
    hx = algo.hexsz
    tail = len(data)
    tree_len = hx + 5
    if tail <= tree_len + 1 or not data.startswith(b"tree ") or data[tree_len] != 0x0A:
        return None
    tree = _unhex(data[5:tree_len], hx)
    if tree is None:
        return None
    pos = tree_len + 1
    plen = hx + 7
    parents: list[bytes] = []
    while pos + plen < tail and data.startswith(b"parent ", pos):
        if tail <= pos + plen + 1 or data[pos + plen] != 0x0A:
            return None
        p = _unhex(data[pos + 7:pos + plen], hx)
        if p is None:
            return None
        parents.append(p)
        pos += plen + 1
    return tree, parents


def tag_target(data: bytes, algo: HashAlgo) -> tuple[bytes, int] | None:
    """``(object id, declared type)`` of a tag as git's ``parse_tag_buffer`` reads it, or None."""
    hx = algo.hexsz
    tail = len(data)
    if tail < hx + 24 or not data.startswith(b"object "):
        return None
    oid = _unhex(data[7:7 + hx], hx)
    if oid is None or data[7 + hx] != 0x0A:
        return None
    pos = 8 + hx
    if not data.startswith(b"type ", pos):
        return None
    pos += 5
    nl = data.find(b"\n", pos)
    if nl < 0 or nl - pos >= 20:
        return None
    t = TYPE_BY_NAME.get(data[pos:nl])
    if t is None:
        return None
    pos = nl + 1
    if not (pos + 4 < tail and data.startswith(b"tag ", pos)):
        return None
    if data.find(b"\n", pos + 4) < 0:
        return None
    return oid, t


# One tree entry: mode digits, space, a non-empty name, NUL, the raw id.  ``split`` with this
# pattern yields [gap, mode, oid, gap, mode, oid, ..., gap]: the tree is well formed exactly when
# every gap is empty (git: tree-walk.c decode_tree_entry + parse_mode).
_TREE_LINK_RE: dict[int, re.Pattern[bytes]] = {}
_TREE_FULL_RE: dict[int, re.Pattern[bytes]] = {}


def _tree_link_re(rawsz: int) -> re.Pattern[bytes]:
    p = _TREE_LINK_RE.get(rawsz)
    if p is None:
        p = _TREE_LINK_RE[rawsz] = re.compile(rb"([0-7]+) [^\x00]+\x00(.{%d})" % rawsz, re.S)
    return p


def _tree_full_re(rawsz: int) -> re.Pattern[bytes]:
    p = _TREE_FULL_RE.get(rawsz)
    if p is None:
        p = _TREE_FULL_RE[rawsz] = re.compile(rb"([0-7]+) ([^\x00]+)\x00(.{%d})" % rawsz, re.S)
    return p


_K_TREE, _K_BLOB, _K_GITLINK = 0, 1, 2
# canonical mode strings -> kind in git's walk; anything else is computed by _mode_kind
_MODE_KIND: dict[bytes, int] = {b"40000": _K_TREE, b"100644": _K_BLOB, b"100755": _K_BLOB,
                                b"120000": _K_BLOB, b"160000": _K_GITLINK, b"100664": _K_BLOB}
_PLAIN_MODES = frozenset((b"40000", b"100644", b"100755", b"120000"))
_TREE_MODE = b"40000"


def _raw_mode(mode: bytes) -> int:
    """git's parse_mode result: the octal value kept in 16 bits."""
    return int(mode, 8) & 0xFFFF


def _mode_kind(mode: bytes) -> int:
    """git's canon_mode as the walk uses it: directory, regular file or symlink, else gitlink."""
    k = _MODE_KIND.get(mode)
    if k is not None:
        return k
    fmt = _raw_mode(mode) & 0o170000
    if fmt == 0o040000:
        return _K_TREE
    if fmt in (0o100000, 0o120000):
        return _K_BLOB
    return _K_GITLINK


def tree_entries(data: bytes, algo: HashAlgo) -> TreeEntries | None:
    """Subtrees, blobs and gitlinks named by a tree, or None where git cannot parse the tree."""
    parts = _tree_link_re(algo.rawsz).split(data)
    if any(parts[::3]):
        return None
    modes = parts[1::3]
    oids = parts[2::3]
    kinds = set(modes)
    if kinds <= _PLAIN_MODES:
        if b"40000" not in kinds:
            return TreeEntries([], oids, [])
        if len(kinds) == 1:
            return TreeEntries(oids, [], [])
        return TreeEntries([o for m, o in zip(modes, oids, strict=True) if m == b"40000"],
                           [o for m, o in zip(modes, oids, strict=True) if m != b"40000"], [])
    out: tuple[list[bytes], list[bytes], list[bytes]] = ([], [], [])
    kind_of = {m: _mode_kind(m) for m in kinds}
    for m, o in zip(modes, oids, strict=True):
        out[kind_of[m]].append(o)
    return TreeEntries(*out)


_TREE_SORT_RE: dict[int, re.Pattern[bytes]] = {}


def tree_sort_re(rawsz: int) -> re.Pattern[bytes]:
    """One tree entry, sorted by kind as it is matched: group 1 the id of a ``40000`` entry, group 2 the
    id of a ``100644``/``100755``/``120000`` entry, group 3 any other entry whole (the same extent the
    link pattern matches, so ``split`` tiles a tree exactly when that one does)."""
    p = _TREE_SORT_RE.get(rawsz)
    if p is None:
        tail = rb" [^\x00]+\x00(.{%d})" % rawsz
        p = _TREE_SORT_RE[rawsz] = re.compile(
            rb"(?:40000" + tail + rb"|(?:100644|100755|120000)" + tail + rb"|([0-7]+ [^\x00]+\x00.{%d}))" % rawsz,
            re.S)
    return p


def tree_links_into(data: bytes, algo: HashAlgo, trees: set[bytes], blobs: set[bytes]) -> bool:
    """Add a tree's subtrees to *trees* and its blobs to *blobs* (gitlinks to neither); False,
    adding nothing, when git cannot parse the tree.  The bulk form of :func:`tree_entries`."""
    parts = tree_sort_re(algo.rawsz).split(data)
    if any(parts[::4]):
        return False
    if not any(parts[3::4]):  # only the plain modes: the ids come out sorted by kind
        trees.update(parts[1::4])
        blobs.update(parts[2::4])
        trees.discard(None)
        blobs.discard(None)
        return True
    parts = _tree_link_re(algo.rawsz).split(data)
    if any(parts[::3]):
        return False
    modes = parts[1::3]
    oids = parts[2::3]
    kinds = set(modes)
    if kinds <= _PLAIN_MODES:
        if b"40000" in kinds:
            trees.update(compress(oids, map(_TREE_MODE.__eq__, modes)))
            blobs.update(compress(oids, map(_TREE_MODE.__ne__, modes)))
        else:
            blobs.update(oids)
        return True
    kind_of = {m: _mode_kind(m) for m in kinds}
    for m, o in zip(modes, oids, strict=True):
        k = kind_of[m]
        if k == _K_TREE:
            trees.add(o)
        elif k == _K_BLOB:
            blobs.add(o)
    return True


def object_links(obj_type: int, data: bytes, algo: HashAlgo) -> Links | None:
    """The links of a commit, tree or tag (an empty :class:`Links` for a blob), or None when git
    could not parse the object."""
    if obj_type == OBJ_COMMIT:
        c = commit_links(data, algo)
        return None if c is None else Links(tree=c[0], parents=c[1])
    if obj_type == OBJ_TREE:
        t = tree_entries(data, algo)
        return None if t is None else Links(subtrees=t.subtrees, blobs=t.blobs, gitlinks=t.gitlinks)
    if obj_type == OBJ_TAG:
        g = tag_target(data, algo)
        return None if g is None else Links(target=g[0], target_type=g[1])
    if obj_type == OBJ_BLOB:
        return Links()
    return None


# --------------------------------------------------------------------------------------------------
# format checks: git's fsck rules and severities
# --------------------------------------------------------------------------------------------------
class _Reporter:
    __slots__ = ("findings", "obj_type", "oid", "path")

    def __init__(self, obj_type: int, oid: bytes, path: str) -> None:
        self.obj_type = obj_type
        self.oid = oid
        self.path = path
        self.findings: list[Finding] = []

    def __call__(self, code: str, text: str) -> bool:
        """Report; True when git would stop checking this object (an error)."""
        sev = _SEVERITY[code]
        where = f"{type_name(self.obj_type)} {self.oid.hex()}"
        self.findings.append(finding(
            code, self.path,
            f"{where} in {self.path}: {text} (git fsck: {_GIT_LEVEL[sev]} in {where}: {code}: {text})"))
        return sev is Severity.ERROR


def _verify_headers(data: bytes, rep: _Reporter) -> bool:
    """True when the header is acceptable (git: fsck.c verify_headers)."""
    end = data.find(b"\n\n")
    head = data if end < 0 else data[:end]
    nul = head.find(b"\x00")
    if nul >= 0:
        rep("nulInHeader", f"unterminated header: NUL at offset {nul}")
        return False
    if end >= 0 or data.endswith(b"\n"):
        return True
    rep("unterminatedHeader", "unterminated header")
    return False


def _parse_oid_line(data: bytes, pos: int, hexsz: int) -> int:
    """Position after ``<hex>\\n`` at *pos*, or -1 (git: parse_oid_hex_algop + ``*p != '\\n'``)."""
    end = pos + hexsz
    if _unhex(data[pos:end], hexsz) is None or data[end:end + 1] != b"\n":
        return -1
    return end + 1


_TWO63 = 1 << 63


# a valid ident line by fsck_ident's rules: name (may be empty) and a space, <email>, a space, any
# blanks, a timestamp without leading zero, a space, +hhmm or -hhmm, newline
_GOOD_IDENT = re.compile(rb"[^<>\n]* <[^<>\n]*> [ \t]*(0|[1-9][0-9]{0,18}) [+-][0-9]{4}\n")


def _check_ident(data: bytes, pos: int, rep: _Reporter) -> tuple[int, bool]:
    """Check one ident (after ``author ``/``committer ``/``tagger ``).  Returns (position after
    its line, stop) following git's fsck_ident."""
    m = _GOOD_IDENT.match(data, pos)
    if m is not None and (len(m.group(1)) < 19 or int(m.group(1)) < _TWO63):
        return m.end(), False
    nl = data.find(b"\n", pos)
    after = len(data) if nl < 0 else nl + 1
    end = len(data)

    def at(i: int) -> int:
        return data[i] if i < end else 0

    p = pos
    if at(p) == 0x3C:  # '<'
        return after, rep("missingNameBeforeEmail", "invalid author/committer line - missing space before email")
    while True:
        c = at(p) if p < end else -1
        if c in (-1, 0x0A):
            return after, rep("missingEmail", "invalid author/committer line - missing email")
        if c == 0x3E:  # '>'
            return after, rep("badName", "invalid author/committer line - bad name")
        if c == 0x3C:
            break
        p += 1
    if p == 0 or data[p - 1] != 0x20:
        return after, rep("missingSpaceBeforeEmail", "invalid author/committer line - missing space before email")
    p += 1
    while True:
        c = at(p) if p < end else -1
        if c in (-1, 0x3C, 0x0A):
            return after, rep("badEmail", "invalid author/committer line - bad email")
        if c == 0x3E:
            break
        p += 1
    p += 1
    if at(p) != 0x20:
        return after, rep("missingSpaceBeforeDate", "invalid author/committer line - missing space before date")
    p += 1
    while at(p) in (0x20, 0x09):
        p += 1
    if not 0x30 <= at(p) <= 0x39:
        return after, rep("badDate", "invalid author/committer line - bad date")
    if at(p) == 0x30 and at(p + 1) != 0x20:
        return after, rep("zeroPaddedDate", "invalid author/committer line - zero-padded date")
    q = p
    while q < end and 0x30 <= data[q] <= 0x39:
        q += 1
    if q - p > 23 or int(data[p:q]) >= _TWO63:
        return after, rep("badDateOverflow", "invalid author/committer line - date causes integer overflow")
    p = q
    if at(p) != 0x20:
        return after, rep("badDate", "invalid author/committer line - bad date")
    p += 1
    tz = data[p:p + 6]
    if (len(tz) < 6 or tz[0] not in (0x2B, 0x2D) or not tz[1:5].isdigit() or tz[5] != 0x0A):
        return after, rep("badTimezone", "invalid author/committer line - bad time zone")
    return after, False


def _check_commit(data: bytes, algo: HashAlgo, rep: _Reporter) -> None:
    if not _verify_headers(data, rep):
        return
    hx = algo.hexsz
    end = len(data)
    if not data.startswith(b"tree "):
        rep("missingTree", "invalid format - expected 'tree' line")
        return
    pos = _parse_oid_line(data, 5, hx)
    if pos < 0:
        rep("badTreeSha1", "invalid 'tree' line format - bad sha1")
        return
    while pos < end and data.startswith(b"parent ", pos):
        pos = _parse_oid_line(data, pos + 7, hx)
        if pos < 0:
            rep("badParentSha1", "invalid 'parent' line format - bad sha1")
            return
    authors = 0
    while pos < end and data.startswith(b"author ", pos):
        authors += 1
        pos, stop = _check_ident(data, pos + 7, rep)
        if stop:
            return
    if authors < 1:
        rep("missingAuthor", "invalid format - expected 'author' line")
        return
    if authors > 1:
        rep("multipleAuthors", "invalid format - multiple 'author' lines")
        return
    if pos >= end or not data.startswith(b"committer ", pos):
        rep("missingCommitter", "invalid format - expected 'committer' line")
        return
    _pos, stop = _check_ident(data, pos + 10, rep)
    if stop:
        return
    if b"\x00" in data:
        rep("nulInCommit", "NUL byte in the commit object body")


def _tag_name_ok(name: bytes) -> bool:
    """git: check_refname_format("refs/tags/<name>", 0)."""
    try:
        from .refname import check_refname
    except ImportError:  # pragma: no cover - refname.py ships with the package
        return True
    return check_refname(b"refs/tags/" + name) is None


def _check_tag(data: bytes, algo: HashAlgo, rep: _Reporter) -> None:
    if not _verify_headers(data, rep):
        return
    hx = algo.hexsz
    end = len(data)
    if not data.startswith(b"object "):
        rep("missingObject", "invalid format - expected 'object' line")
        return
    pos = _parse_oid_line(data, 7, hx)
    if pos < 0:
        rep("badObjectSha1", "invalid 'object' line format - bad sha1")
        return
    if pos >= end or not data.startswith(b"type ", pos):
        rep("missingTypeEntry", "invalid format - expected 'type' line")
        return
    pos += 5
    eol = data.find(b"\n", pos)
    if eol < 0:
        rep("missingType", "invalid format - unexpected end after 'type' line")
        return
    if data[pos:eol] not in TYPE_BY_NAME:
        rep("badType", "invalid 'type' value")
        return
    pos = eol + 1
    if pos >= end or not data.startswith(b"tag ", pos):
        rep("missingTagEntry", "invalid format - expected 'tag' line")
        return
    pos += 4
    eol = data.find(b"\n", pos)
    if eol < 0:
        rep("missingTag", "invalid format - unexpected end after 'type' line")
        return
    name = data[pos:eol]
    if not _tag_name_ok(name):
        rep("badTagName", f"invalid 'tag' name: {name.decode('utf-8', 'backslashreplace')}")
    pos = eol + 1
    if pos >= end or not data.startswith(b"tagger ", pos):
        rep("missingTaggerEntry", "invalid format - expected 'tagger' line")
    else:
        pos, _stop = _check_ident(data, pos + 7, rep)
    if pos < end and (data.startswith(b"gpgsig ", pos) or data.startswith(b"gpgsig-sha256 ", pos)):
        eol = data.find(b"\n", pos)
        if eol < 0:
            rep("badGpgsig", "invalid format - unexpected end after 'gpgsig' or 'gpgsig-sha256' line")
            return
        pos = eol + 1
        while pos < end and data.startswith(b" ", pos):
            eol = data.find(b"\n", pos)
            if eol < 0:
                rep("badHeaderContinuation",
                    "invalid format - unexpected end in 'gpgsig' or 'gpgsig-sha256' continuation line")
                return
            pos = eol + 1
    # extraHeaderEntry is ignored by git by default: not reported


# --- special names: git's is_hfs_dot* (utf8.c) and is_ntfs_dot* (path.c) ---------------------------
_HFS_IGNORED = frozenset((0x200C, 0x200D, 0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E,
                          0x206A, 0x206B, 0x206C, 0x206D, 0x206E, 0x206F, 0xFEFF))


def _utf8_char(s: bytes, i: int) -> tuple[int, int]:
    """(code point, next index) as git's pick_one_utf8_char reads it; (0, -1) when invalid."""
    n = len(s)
    if i >= n:
        return 0, i  # the terminating NUL
    c = s[i]

    def cont(k: int) -> bool:
        return i + k < n and (s[i + k] & 0xC0) == 0x80

    if c < 0x80:
        return c, i + 1
    if (c & 0xE0) == 0xC0:
        if not cont(1) or (c & 0xFE) == 0xC0:
            return 0, -1
        return ((c & 0x1F) << 6) | (s[i + 1] & 0x3F), i + 2
    if (c & 0xF0) == 0xE0:
        if (not cont(1) or not cont(2) or (c == 0xE0 and (s[i + 1] & 0xE0) == 0x80)
                or (c == 0xED and (s[i + 1] & 0xE0) == 0xA0)
                or (c == 0xEF and s[i + 1] == 0xBF and (s[i + 2] & 0xFE) == 0xBE)):
            return 0, -1
        return ((c & 0x0F) << 12) | ((s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F), i + 3
    if (c & 0xF8) == 0xF0:
        if (not cont(1) or not cont(2) or not cont(3) or (c == 0xF0 and (s[i + 1] & 0xF0) == 0x80)
                or (c == 0xF4 and s[i + 1] > 0x8F) or c > 0xF4):
            return 0, -1
        return (((c & 0x07) << 18) | ((s[i + 1] & 0x3F) << 12) | ((s[i + 2] & 0x3F) << 6)
                | (s[i + 3] & 0x3F)), i + 4
    return 0, -1


def _is_hfs_dot(name: bytes, needle: bytes) -> bool:
    i = 0

    def nxt() -> int:
        nonlocal i
        while True:
            if i < 0:
                return 0
            c, i = _utf8_char(name, i)
            if i < 0:
                return 0
            if c not in _HFS_IGNORED:
                return c

    if nxt() != 0x2E:
        return False
    for ch in needle:
        c = nxt()
        if c > 127 or (c | 0x20 if 0x41 <= c <= 0x5A else c) != ch:
            return False
    c = nxt()
    return not (c and c != 0x2F)


def _is_ntfs_dotgit(name: bytes) -> bool:
    low = name.lower()
    if low.startswith(b".git"):
        i = 4
    elif low.startswith(b"git~1"):
        i = 5
    else:
        return False
    while True:
        c = name[i] if i < len(name) else 0
        i += 1
        if c in (0, 0x2F, 0x5C, 0x3A):
            return True
        if c not in (0x2E, 0x20):
            return False


def _only_spaces_and_periods(name: bytes, i: int) -> bool:
    while True:
        c = name[i] if i < len(name) else 0
        i += 1
        if c in (0, 0x3A):
            return True
        if c not in (0x20, 0x2E):
            return False


def _is_ntfs_dot_generic(name: bytes, needle: bytes, short_prefix: bytes) -> bool:
    n = len(name)
    ln = len(needle)
    if name[:1] == b"." and name[1:1 + ln].lower() == needle and n >= 1 + ln:
        return _only_spaces_and_periods(name, ln + 1)
    if name[:6].lower() == needle[:6] and n >= 8 and name[6] == 0x7E and 0x31 <= name[7] <= 0x34:
        return _only_spaces_and_periods(name, 8)
    saw_tilde = False
    i = 0
    while i < 8:
        c = name[i] if i < n else 0
        if c == 0:
            return False
        if saw_tilde:
            if not 0x30 <= c <= 0x39:
                return False
        elif c == 0x7E:
            i += 1
            c2 = name[i] if i < n else 0
            if not 0x31 <= c2 <= 0x39:
                return False
            saw_tilde = True
        elif i >= 6 or c & 0x80 or (c | 0x20 if 0x41 <= c <= 0x5A else c) != short_prefix[i]:
            return False
        i += 1
    return _only_spaces_and_periods(name, i)


def _is_special(name: bytes, needle: bytes, short_prefix: bytes) -> bool:
    return _is_hfs_dot(name, needle) or _is_ntfs_dot_generic(name, needle, short_prefix)


_S_IFMT = 0o170000
_S_IFDIR = 0o040000
_S_IFLNK = 0o120000
_GOOD_MODES = frozenset((0o100755, 0o100644, 0o120000, 0o040000, 0o160000, 0o100664))
_MAX_TREE_ENTRY_LEN = 4096


def _check_special_names(names: list[bytes], modes: list[bytes], rep: _Reporter) -> bool:
    """hasDotgit and the .gitmodules/.gitattributes/.gitignore/.mailmap symlink rules (only for
    names that could be such a spelling).  Returns has_dotgit."""
    has_dotgit = False
    gm_symlink = ga_symlink = gi_symlink = mm_symlink = False
    for name, mode in zip(names, modes, strict=True):
        if _SUSPECT_NAME.match(name) is None and b"\\" not in name:
            continue
        is_link = (_raw_mode(mode) & _S_IFMT) == _S_IFLNK
        if _is_hfs_dot(name, b"git") or _is_ntfs_dotgit(name):
            has_dotgit = True
        if _is_special(name, b"gitmodules", b"gi7eba") and is_link:
            gm_symlink = True
        if _is_special(name, b"gitattributes", b"gi7d29") and is_link:
            ga_symlink = True
        if is_link:
            if _is_special(name, b"gitignore", b"gi250a"):
                gi_symlink = True
            if _is_special(name, b"mailmap", b"maba30"):
                mm_symlink = True
        bs = name.find(b"\\")
        while bs >= 0:
            rest = name[bs + 1:]
            if _is_ntfs_dotgit(rest):
                has_dotgit = True
            if is_link and _is_ntfs_dot_generic(rest, b"gitmodules", b"gi7eba"):
                gm_symlink = True
            bs = name.find(b"\\", bs + 1)
    if gm_symlink:
        rep("gitmodulesSymlink", ".gitmodules is a symbolic link")
    if ga_symlink:
        rep("gitattributesSymlink", ".gitattributes is a symlink")
    if gi_symlink:
        rep("gitignoreSymlink", ".gitignore is a symlink")
    if mm_symlink:
        rep("mailmapSymlink", ".mailmap is a symlink")
    return has_dotgit


# A superset of the names _check_special_names can flag: HFS-ignored code points (0xE2.., 0xEF..),
# "." followed by g/m or an ignored code point, "git~1", an NTFS 8.3 short name made of a prefix of
# one of git's short-name prefixes (gi7eba, gi7d29, gi250a, maba30) and "~", or a backslash anywhere.
_SHORT_NAME = rb"(?:g(?:i(?:7(?:e(?:ba?)?|d(?:29?)?)?|2(?:50?a?)?)?)?|m(?:a(?:b(?:a(?:30?)?)?)?)?)~"
_SUSPECT_BODY = rb"(?:[~\xe2\xef]|\.[gGmM\xe2\xef]|(?i:git~1|" + _SHORT_NAME + rb"))"
_SUSPECT_NAME = re.compile(_SUSPECT_BODY)
# the same test over NUL + the NUL-joined names of a tree (a literal first byte: a fast scan)
_SUSPECT_FIRST_RE = re.compile(rb"\x00" + _SUSPECT_BODY)


def _less_than_slash(c: int) -> bool:
    return 0 < c < 0x2F


def _verify_order_exact(names: list[bytes], modes: list[int]) -> tuple[bool, bool]:
    """(not properly sorted, has duplicates) by git's verify_ordered over adjacent entries, with
    its stack of file names that a later directory of the same name would duplicate."""
    unsorted = dups = False
    stack: list[bytes] = []
    for k in range(1, len(names)):
        n1, n2 = names[k - 1], names[k]
        ln = min(len(n1), len(n2))
        if n1[:ln] < n2[:ln]:
            continue
        if n1[:ln] > n2[:ln]:
            unsorted = True
            continue
        c1 = n1[ln] if ln < len(n1) else 0
        c2 = n2[ln] if ln < len(n2) else 0
        if not c1 and not c2:
            dups = True
            continue
        if not c1 and (modes[k - 1] & _S_IFMT) == _S_IFDIR:
            c1 = 0x2F
        if not c2 and (modes[k] & _S_IFMT) == _S_IFDIR:
            c2 = 0x2F
        if not c1 and _less_than_slash(c2):
            stack.append(n1)
        elif c2 == 0x2F and _less_than_slash(c1):
            while stack:
                f = stack.pop()
                if not n2.startswith(f):
                    continue
                rest = n2[len(f):]
                if not rest:
                    dups = True
                    break
                if _less_than_slash(rest[0]):
                    stack.append(f)
                    break
        if c1 >= c2:
            unsorted = True
    return unsorted, dups


_NULL_OIDS = {20: b"\x00" * 20, 32: b"\x00" * 32}
# the modes git writes: their 16-bit values and their sort terminators
_PLAIN_RAW = {m: _raw_mode(m) for m in _PLAIN_MODES}
_PLAIN_TERM = {m: (b"/" if m == _TREE_MODE else b"\x00") for m in _PLAIN_MODES}


def _check_tree(data: bytes, algo: HashAlgo, rep: _Reporter) -> None:
    _check_tree_parts(_tree_full_re(algo.rawsz).split(data), algo, rep)


def _check_tree_parts(parts: list[bytes], algo: HashAlgo, rep: _Reporter) -> bool:
    """git's tree checks over the split of a tree by ``_tree_full_re``; False when it does not parse."""
    if any(parts[::4]):
        rep("badTree", "cannot be parsed as a tree")
        return False
    modes: list[bytes] = parts[1::4]
    names: list[bytes] = parts[2::4]
    oids: list[bytes] = parts[3::4]
    if not names:
        return True
    mode_set = set(modes)
    joined = b"\x00".join(names)
    has_dotgit = False
    if (_SUSPECT_FIRST_RE.search(joined) is not None or _SUSPECT_NAME.match(names[0]) is not None
            or b"\\" in joined):
        has_dotgit = _check_special_names(names, modes, rep)
    # reported in git's order (fsck_tree)
    if (_NULL_OIDS.get(algo.rawsz) or algo.null_oid()) in oids:
        rep("nullSha1", "contains entries pointing to null sha1")
    has_slash = b"/" in joined
    if has_slash:
        rep("fullPathname", "contains full pathnames")
    nameset = set(names)
    if b"." in nameset:
        rep("hasDot", "contains '.'")
    if b".." in nameset:
        rep("hasDotdot", "contains '..'")
    if has_dotgit:
        rep("hasDotgit", "contains '.git'")
    if mode_set <= _PLAIN_MODES:
        raw, term = _PLAIN_RAW, _PLAIN_TERM
    else:
        if any(m.startswith(b"0") for m in mode_set):
            rep("zeroPaddedFilemode", "contains zero-padded file modes")
        raw = {m: _raw_mode(m) for m in mode_set}
        if any(v not in _GOOD_MODES for v in raw.values()):
            rep("badFilemode", "contains bad file modes")
        term = {m: (b"/" if (v & _S_IFMT) == _S_IFDIR else b"\x00") for m, v in raw.items()}
    # path order: a directory sorts as "name/", anything else as "name\0"; equal names are duplicates.
    # Without directories every name gets the same "\0" (which no name holds), so strictly increasing
    # names say both "sorted" and "no duplicates"
    if all(term[m] != b"/" for m in mode_set):
        suspect = has_slash or not all(map(operator.lt, names, itertools.islice(names, 1, None)))
    else:
        keys = list(map(bytes.__add__, names, map(term.__getitem__, modes)))
        suspect = has_slash or keys != sorted(keys) or len(nameset) != len(names)
    if suspect:
        # something is off (or names hold '/', where the fast comparison is not git's): decide
        # the codes with git's own pairwise algorithm
        unsorted, dups = _verify_order_exact(names, [raw[m] for m in modes])
        if dups:
            rep("duplicateEntries", "contains duplicate file entries")
        if unsorted:
            rep("treeNotSorted", "not properly sorted")
    if len(joined) > _MAX_TREE_ENTRY_LEN and max(map(len, names)) > _MAX_TREE_ENTRY_LEN:
        rep("largePathname", "contains excessively large pathname")
    return True


# One entry of a tree no rule of git's fsck can object to, bar its order: one of the four modes git
# writes, a name that cannot be '.' or '..', holds no '/' or '\\' and does not start like anything
# _check_special_names looks at.  ``split`` with it leaves an empty gap between entries exactly when
# every entry is such an entry (a gap holds whatever did not match); anything else takes the exact path.
_CLEAN_SPLIT_RE: dict[int, re.Pattern[bytes]] = {}


def _clean_split_re(rawsz: int) -> re.Pattern[bytes]:
    p = _CLEAN_SPLIT_RE.get(rawsz)
    if p is None:
        p = _CLEAN_SPLIT_RE[rawsz] = re.compile(
            rb"(40000|100644|100755|120000) (?!" + _SUSPECT_BODY
            + (rb")(?!\.\.?\x00)([^\x00/\\]+)\x00(.{%d})" % rawsz), re.S)
    return p


def _fsck_clean_tree(data: bytes, rawsz: int, trees: set[bytes] | None, blobs: set[bytes] | None) -> bool:
    """The common case of :func:`fsck_tree`: True when *data* is a tree git's fsck has nothing to say
    about (its links then added), False when the exact path must decide (nothing added)."""
    if _NULL_OIDS[rawsz] in data:
        return False
    parts = _clean_split_re(rawsz).split(data)
    if any(parts[::4]):
        return False
    modes: list[bytes] = parts[1::4]
    names: list[bytes] = parts[2::4]
    oids: list[bytes] = parts[3::4]
    if len(data) > _MAX_TREE_ENTRY_LEN and max(map(len, names), default=0) > _MAX_TREE_ENTRY_LEN:
        return False
    if _TREE_MODE in modes:
        # a directory sorts as "name/", a file as "name" followed by NUL (no name holds one)
        keys = list(map(bytes.__add__, names, map(_PLAIN_TERM.__getitem__, modes)))
        if not all(map(operator.lt, keys, itertools.islice(keys, 1, None))) or len(set(names)) != len(names):
            return False
        if trees is not None and blobs is not None:
            trees.update(compress(oids, map(_TREE_MODE.__eq__, modes)))
            blobs.update(compress(oids, map(_TREE_MODE.__ne__, modes)))
        return True
    if not all(map(operator.lt, names, itertools.islice(names, 1, None))):
        return False
    if blobs is not None:
        blobs.update(oids)
    return True


def fsck_tree(data: bytes, oid: bytes, algo: HashAlgo, path: str,
              trees: set[bytes] | None = None, blobs: set[bytes] | None = None) -> tuple[list[Finding], bool]:
    """``check_object_format`` of a tree and, when it parses, its links added to *trees* and *blobs*
    (as :func:`tree_links_into` would): one scan of the tree for both.  Returns (findings, parsed)."""
    if algo.rawsz in _NULL_OIDS and _fsck_clean_tree(data, algo.rawsz, trees, blobs):
        return [], True
    rep = _Reporter(OBJ_TREE, oid, path)
    parts = _tree_full_re(algo.rawsz).split(data)
    if not _check_tree_parts(parts, algo, rep):
        return rep.findings, False
    if trees is not None and blobs is not None:
        modes = parts[1::4]
        oids = parts[3::4]
        kinds = set(modes)
        if kinds <= _PLAIN_MODES:
            if _TREE_MODE in kinds:
                trees.update(compress(oids, map(_TREE_MODE.__eq__, modes)))
                blobs.update(compress(oids, map(_TREE_MODE.__ne__, modes)))
            else:
                blobs.update(oids)
        else:
            kind_of = {m: _mode_kind(m) for m in kinds}
            for m, o in zip(modes, oids, strict=True):
                k = kind_of[m]
                if k == _K_TREE:
                    trees.add(o)
                elif k == _K_BLOB:
                    blobs.add(o)
    return rep.findings, True


def check_object_format(obj_type: int, data: bytes, oid: bytes, algo: HashAlgo, path: str) -> list[Finding]:
    """git fsck's checks of one object's content (git: fsck.c ``fsck_buffer``), with git's
    severities.  *path* is where the object lives (its pack or loose file)."""
    rep = _Reporter(obj_type, oid, path)
    data = bytes(data)
    if obj_type == OBJ_COMMIT:
        _check_commit(data, algo, rep)
    elif obj_type == OBJ_TREE:
        _check_tree(data, algo, rep)
    elif obj_type == OBJ_TAG:
        _check_tag(data, algo, rep)
    elif obj_type != OBJ_BLOB:
        rep("unknownType", f"unknown type '{obj_type}' (internal fsck error)")
    return rep.findings


__all__ = [
    "OBJ_BLOB", "OBJ_COMMIT", "OBJ_OFS_DELTA", "OBJ_REF_DELTA", "OBJ_TAG", "OBJ_TREE", "TYPE_BY_NAME",
    "TYPE_NAMES", "Links", "TreeEntries", "check_object_format", "commit_links", "fsck_tree", "hash_object",
    "object_header", "object_links", "tag_target", "tree_entries", "tree_links_into", "tree_sort_re", "type_name",
]
