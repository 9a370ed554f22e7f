"""Reference names: git's ``check-ref-format`` rules and its notion of a *safe* name.

The rules (git: refs.c ``check_refname_component`` / ``check_or_sanitize_refname``; documented in
``git help check-ref-format``), for a name given as bytes:

1. no byte below 0x20, no DEL (0x7f), none of ``SP : ? [ \\ ^ ~ *`` (``*`` only in refspec patterns,
   which this module does not accept);
2. no ``..`` and no ``@{``; the name is not the single character ``@``;
3. no empty component: no leading ``/``, no trailing ``/``, no ``//``; the name is not empty;
4. no component begins with ``.`` and no component ends with ``.lock``;
5. the name does not end with ``.``;
6. unless one-level names are allowed, at least two components (``refs/x``, ``foo/bar``).

Bytes 0x80..0xff are allowed (git treats names as byte strings).  A NUL is never allowed: git's C
strings would silently cut the name there.

*Safe* (git: refs.c ``refname_is_safe``) is the weaker property git requires before it will even
represent a broken name: under ``refs/`` every component is non-empty and neither ``.`` nor ``..``
(nothing can climb out of ``refs/``); outside ``refs/`` the name is made only of ``A-Z`` and ``_``
(``HEAD``, ``FETCH_HEAD``).  git dies with "packed refname is dangerous" on a packed ref that is
neither valid nor safe.
"""

from __future__ import annotations

import re

__all__ = ["check_refname", "is_root_ref", "is_safe_refname"]

# One search finds any violation of rules 1-5 (cheap for the common, valid case); the group that
# matched names the rule.
_BAD = re.compile(
    rb"(?P<char>[\x00-\x20\x7f:?\[\\^~*])"  # rule 1
    rb"|(?P<dotdot>\.\.)|(?P<atbrace>@\{)"  # rule 2
    rb"|(?P<empty>\A/|/\Z|//)"  # rule 3
    rb"|(?P<dotstart>(?:\A|/)\.)"  # rule 4: a component starts with '.'
    rb"|(?P<lock>\.lock(?:/|\Z))"  # rule 4: a component ends with '.lock'
    rb"|(?P<dotend>\.\Z)"  # rule 5
)

_REASONS = {
    "dotdot": "contains '..'",
    "atbrace": "contains '@{'",
    "empty": "empty component (leading, trailing or double '/')",
    "dotstart": "a component begins with '.'",
    "lock": "a component ends with '.lock'",
    "dotend": "ends with '.'",
}

_CHAR_NAMES = {
    0x00: "NUL", 0x09: "TAB", 0x0A: "LF", 0x0D: "CR", 0x20: "space", 0x7F: "DEL",
}


def _describe_char(c: int) -> str:
    if c in _CHAR_NAMES:
        return _CHAR_NAMES[c]
    if c < 0x20:
        return f"control character 0x{c:02x}"
    return repr(chr(c))


def check_refname(name: bytes, *, allow_onelevel: bool = False) -> str | None:
    """``None`` if *name* is a valid reference name per ``git check-ref-format``, else a short reason.

    By default a full name with at least two components is required (git's flags 0, as used by
    ``git fsck``/``git refs verify``); ``allow_onelevel=True`` is what git's packed-refs reader
    applies before it calls a name broken.
    """
    if not name:
        return "empty name"
    if name == b"@":
        return "the name '@' alone"
    m = _BAD.search(name)
    if m is not None:
        kind = m.lastgroup or "char"
        if kind == "char":
            return f"contains {_describe_char(m.group()[0])}"
        return _REASONS[kind]
    if not allow_onelevel and b"/" not in name:
        return "only one component (a full name needs at least two, like refs/x)"
    return None


def is_safe_refname(name: bytes) -> bool:
    """git's ``refname_is_safe``: the name cannot escape ``refs/`` (see the module docstring)."""
    if b"\0" in name:
        return False
    if name.startswith(b"refs/"):
        rest = name[5:]
        if not rest:
            return False
        return all(comp not in (b"", b".", b"..") for comp in rest.split(b"/"))
    return bool(name) and all(c == 0x5F or 0x41 <= c <= 0x5A for c in name)


_ROOT_SYNTAX = re.compile(rb"[A-Z_-]+")
_IRREGULAR_ROOT = frozenset(
    {b"HEAD", b"AUTO_MERGE", b"BISECT_EXPECTED_REV", b"NOTES_MERGE_PARTIAL", b"NOTES_MERGE_REF", b"MERGE_AUTOSTASH"}
)


def is_root_ref(name: bytes) -> bool:
    """git's ``is_root_ref``: ``HEAD``, ``*_HEAD`` (but not the pseudorefs ``FETCH_HEAD``/``MERGE_HEAD``)
    and a few fixed upper-case names that live at the top of the repository."""
    if _ROOT_SYNTAX.fullmatch(name) is None or name in (b"FETCH_HEAD", b"MERGE_HEAD"):
        return False
    return name.endswith(b"_HEAD") or name in _IRREGULAR_ROOT
