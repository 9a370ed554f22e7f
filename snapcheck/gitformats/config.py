"""git's config file syntax: a strict reader that stops where git stops and says what git says.

Syntax (git: config.c ``git_parse_source``, ``get_base_var``, ``get_extended_base_var``,
``get_value``, ``parse_value``; Documentation/config.adoc "Syntax"):

- Bytes are read one by one; CR LF counts as LF; the end of the file acts as a final LF (and, as
  in git, counts one more line); a UTF-8 byte order mark at the very start is skipped, a partial one
  is an error.  Whitespace and comments (``#`` or ``;`` to the end of the line) are skipped.
- ``[section]``: letters, digits, ``-`` and ``.`` (lower-cased; ``[section.sub]`` is the old,
  lower-cased subsection form).  ``[section "subsection"]``: after whitespace a double-quoted
  subsection, case kept, ``\\x`` stands for ``x``; it must close on its line and be followed by
  ``]``.  Text may follow the ``]`` on the same line (``[core] bare = true``).
- ``key``: starts with a letter, then letters, digits and ``-`` (lower-cased); then SP/TAB, then
  either the end of the line (a bare key: boolean true) or ``=`` and a value.
- value: leading whitespace dropped, trailing whitespace outside quotes trimmed, ``"`` toggles
  quoting, ``#``/``;`` outside quotes start a comment, ``\\`` + LF continues the line, escapes
  ``\\n \\t \\b \\\\ \\"`` only; a quote still open at the end of the line is an error.

Any error stops git: "fatal: bad config line N in file ./config" and every git command in the
repository dies (exit 128).  This parser stops at the same byte and reports the same N.  On top of
git's rules it reports, as errors, things git accepts but that mean the file was damaged: NUL bytes
(git reads a value only up to a NUL), a file that ends in a line continuation (git quietly takes
the value as ended), and a key before any section (git: "error: key does not contain a section").
A missing final newline is fine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..report import Finding, Severity, finding, register
from .common import Buffer

__all__ = ["GitConfig", "parse_config", "parse_git_bool", "parse_git_int"]

register(
    "config",
    ("configCutSectionHeader", Severity.ERROR,
     "The file ends inside a '[section]' header: it was cut.",
     "fatal: bad config line N in file ./config (every command dies, exit 128)."),
    ("configBadSection", Severity.ERROR,
     "A section header with a character git does not allow, an empty name, or a subsection that does "
     "not close on its line or lacks ']'.",
     "fatal: bad config line N in file ./config (exit 128)."),
    ("configUnterminatedQuote", Severity.ERROR,
     "A value's double quote is still open at the end of its line (or of the file).",
     "fatal: bad config line N in file ./config (exit 128)."),
    ("configBadEscape", Severity.ERROR,
     "A backslash escape other than `\\n`, `\\t`, `\\b`, `\\\\`, `\\\"` or a line continuation.",
     "fatal: bad config line N in file ./config (exit 128)."),
    ("configBadKey", Severity.ERROR,
     "A variable name that does not start with a letter or holds a character other than letters, digits "
     "and '-', or is not followed by '=' or the end of the line.",
     "fatal: bad config line N in file ./config (exit 128)."),
    ("configBadLine", Severity.ERROR,
     "A line that is neither a section header, a variable, a comment nor blank (or a partial byte order mark).",
     "fatal: bad config line N in file ./config (exit 128)."),
    ("configNulByte", Severity.ERROR,
     "NUL bytes in the file (GNU tar pads a file that shrank with NULs).",
     "fatal: bad config line N where a NUL starts a line; inside a value or comment git silently cuts the value."),
    ("configTrailingBackslash", Severity.ERROR,
     "The file ends in a backslash line continuation: the rest of the value is missing (a cut file).",
     "git accepts it and takes the value as ended."),
    ("configKeyWithoutSection", Severity.ERROR,
     "A variable before any section header.",
     "error: key does not contain a section: <key> (git goes on)."),
)

_EOF = -1
_LF = 0x0A
_CR = 0x0D
_SPACE = frozenset(b" \t\n\r")  # git's isspace (sane_ctype GIT_SPACE)
_ALPHA = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_KEYCHAR = _ALPHA | frozenset(b"0123456789-")
_BOM = b"\xef\xbb\xbf"


@dataclass
class GitConfig:
    """Parsed entries in file order: ``(section lower, subsection or None, key lower, value or None)``;
    a bare key (``[core] bare``) has the value ``None`` (boolean true)."""

    entries: list[tuple[str, str | None, str, str | None]] = field(default_factory=list)
    complete: bool = True  # False when git would die on the file (entries stop there)

    def _match(self, section: str, key: str, subsection: str | None) -> list[str | None]:
        s, k = section.lower(), key.lower()
        return [v for (es, esub, ek, v) in self.entries if es == s and ek == k and esub == subsection]

    def get(self, section: str, key: str, subsection: str | None = None) -> str | None:
        """The last value (git: last one wins); ``None`` when absent or a bare key."""
        values = self._match(section, key, subsection)
        return values[-1] if values else None

    def get_all(self, section: str, key: str, subsection: str | None = None) -> list[str | None]:
        return self._match(section, key, subsection)

    def get_bool(self, section: str, key: str, subsection: str | None = None) -> bool | None:
        """git's boolean reading of the last value; ``None`` when absent or not a valid boolean."""
        values = self._match(section, key, subsection)
        return parse_git_bool(values[-1]) if values else None

    def has(self, section: str, key: str, subsection: str | None = None) -> bool:
        return bool(self._match(section, key, subsection))

    def subsections(self, section: str) -> list[str]:
        """Distinct subsections of *section* in file order (e.g. the remotes)."""
        s = section.lower()
        seen: dict[str, None] = {}
        for es, esub, _, _ in self.entries:
            if es == s and esub is not None:
                seen.setdefault(esub, None)
        return list(seen)


def parse_git_int(value: str | None) -> int | None:
    """git's ``git_parse_int``: C ``strtoimax(value, 0)`` (leading whitespace, sign, 0x hex, 0 octal)
    then an optional unit k/m/g (case-insensitive); must fit a 32-bit int.  ``None`` if invalid."""
    if not value:
        return None
    s = value.lstrip(" \t\n\v\f\r")
    i = 0
    neg = False
    if i < len(s) and s[i] in "+-":
        neg = s[i] == "-"
        i += 1
    base = 10
    if s[i:i + 2] in ("0x", "0X") and i + 2 < len(s) and s[i + 2] in "0123456789abcdefABCDEF":
        base, i = 16, i + 2
    elif s[i:i + 1] == "0":
        base = 8
    digits = "0123456789abcdef"[:base]
    j = i
    while j < len(s) and s[j].lower() in digits:
        j += 1
    if j == i:
        return None  # no conversion: strtoimax sets end = value
    num = int(s[i:j], base)
    if num > (1 << 63) - (0 if neg else 1):
        return None  # ERANGE
    unit = s[j:].lower()
    factor = {"": 1, "k": 1024, "m": 1024 * 1024, "g": 1024 * 1024 * 1024}.get(unit)
    if factor is None:
        return None
    result = -num * factor if neg else num * factor
    if not -(1 << 31) <= result <= (1 << 31) - 1:
        return None
    return result


def parse_git_bool(value: str | None) -> bool | None:
    """git's ``git_parse_maybe_bool``: a bare key is true, an empty value false; true/yes/on and
    false/no/off in any case; else an integer (non-zero is true).  ``None`` when not a valid bool."""
    if value is None:
        return True
    if value == "":
        return False
    low = value.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    n = parse_git_int(value)
    return None if n is None else n != 0


class _Source:
    """git's ``get_next_char``: CR LF reads as LF, the end reads as LF (once more each time asked)."""

    __slots__ = ("buf", "eof", "i", "linenr", "n")

    def __init__(self, buf: bytes) -> None:
        self.buf, self.n, self.i = buf, len(buf), 0
        self.linenr = 1
        self.eof = False

    def next(self) -> int:
        if self.i < self.n:
            c = self.buf[self.i]
            self.i += 1
            if c == _CR and self.i < self.n and self.buf[self.i] == _LF:
                self.i += 1
                c = _LF
            if c == _LF:
                self.linenr += 1
            return c
        self.eof = True
        self.linenr += 1
        return _LF


class _Stop(Exception):
    def __init__(self, code: str, what: str) -> None:
        super().__init__(what)
        self.code, self.what = code, what


def _base_var(src: _Source) -> tuple[bytes, bytes | None]:
    """After '[': the section (lower-cased) and the raw subsection of the extended form, if any."""
    name = bytearray()
    while True:
        c = src.next()
        if src.eof:
            raise _Stop("configCutSectionHeader", "the file ends inside a section header")
        if c == 0x5D:  # ']'
            return bytes(name), None
        if c in _SPACE:
            return bytes(name), _extended_base_var(src, c)
        if c not in _KEYCHAR and c != 0x2E:
            raise _Stop("configNulByte" if c == 0 else "configBadSection",
                        f"character {_char(c)} in a section name")
        name.append(c | 0x20 if 0x41 <= c <= 0x5A else c)


def _extended_base_var(src: _Source, c: int) -> bytes:
    while True:
        if c == _LF:
            src.linenr -= 1
            raise _Stop("configCutSectionHeader" if src.eof else "configBadSection",
                        "the file ends inside a section header" if src.eof
                        else "a section header does not close on its line")
        c = src.next()
        if c not in _SPACE:
            break
    if c != 0x22:  # '"'
        raise _Stop("configBadSection", f"{_char(c)} where a quoted subsection must start")
    sub = bytearray()
    while True:
        c = src.next()
        if c == _LF:
            src.linenr -= 1
            raise _Stop("configCutSectionHeader" if src.eof else "configBadSection",
                        "the file ends inside a subsection name" if src.eof
                        else "a subsection name does not close on its line")
        if c == 0x22:
            break
        if c == 0x5C:  # '\\'
            c = src.next()
            if c == _LF:
                src.linenr -= 1
                raise _Stop("configCutSectionHeader" if src.eof else "configBadSection",
                            "the file ends inside a subsection name" if src.eof
                            else "a subsection name does not close on its line")
        sub.append(c)
    c = src.next()
    if c != 0x5D:
        raise _Stop("configCutSectionHeader" if src.eof else "configBadSection",
                    "the file ends before the ']' of a section header" if src.eof
                    else f"{_char(c)} instead of ']' after a subsection")
    return bytes(sub)


def _value(src: _Source) -> tuple[bytes, bool]:
    """git's ``parse_value``; also tells whether the file ended in a line continuation."""
    value = bytearray()
    quote = comment = False
    trim_len = 0
    continued_at_eof = False
    while True:
        c = src.next()
        if c == _LF:
            if quote:
                src.linenr -= 1
                raise _Stop("configUnterminatedQuote",
                            "the file ends inside a quoted value" if src.eof
                            else "a quoted value is not closed at the end of its line")
            if trim_len:
                del value[trim_len:]
            return bytes(value), continued_at_eof
        if comment:
            continue
        if c in _SPACE and not quote:
            if not trim_len:
                trim_len = len(value)
            if value:
                value.append(c)
            continue
        if not quote and c in (0x3B, 0x23):  # ';' '#'
            comment = True
            continue
        if trim_len:
            trim_len = 0
        if c == 0x5C:
            c = src.next()
            if c == _LF:
                if src.eof:
                    continued_at_eof = True
                continue
            if c == 0x74:  # t
                c = 0x09
            elif c == 0x62:  # b
                c = 0x08
            elif c == 0x6E:  # n
                c = 0x0A
            elif c not in (0x5C, 0x22):
                raise _Stop("configBadEscape", f"unknown escape '\\{_char(c, quoted=False)}' in a value")
            value.append(c)
            continue
        if c == 0x22:
            quote = not quote
            continue
        value.append(c)


def _char(c: int, quoted: bool = True) -> str:
    if c == 0:
        return "NUL"
    if c == _LF:
        return "end of line"
    text = chr(c) if 0x20 < c < 0x7F else f"\\x{c:02x}"
    return f"'{text}'" if quoted else text


def _text(b: bytes) -> str:
    nul = b.find(b"\0")
    return (b[:nul] if nul >= 0 else b).decode("utf-8", "surrogateescape")


def parse_config(data: Buffer, path: str = "config") -> tuple[GitConfig, list[Finding]]:
    """Parse a git config file.  Stops at the first error, exactly where git does.  Never raises."""
    buf = data if isinstance(data, bytes) else bytes(data)
    cfg = GitConfig()
    findings: list[Finding] = []
    src = _Source(buf)
    section: bytes | None = None
    subsection: bytes | None = None
    comment = False
    gpath = "./" + path
    try:
        bom = 0  # bytes of the byte order mark matched so far; 3 once done with it
        while True:
            c = src.next()
            if bom < 3:
                if c == _BOM[bom]:
                    bom += 1
                    continue
                if bom:
                    raise _Stop("configBadLine", "a partial UTF-8 byte order mark at the start")
                bom = 3
            if c == _LF:
                if src.eof:
                    break
                comment = False
                continue
            if comment or c in _SPACE:
                continue
            if c in (0x23, 0x3B):
                comment = True
                continue
            if c == 0x5B:  # '['
                name, sub = _base_var(src)
                if not name and sub is None:
                    raise _Stop("configBadSection", "an empty section name '[]'")
                section, subsection = _split_section(name, sub)
                continue
            if c not in _ALPHA:
                if c == 0:
                    raise _Stop("configNulByte", "a NUL byte where a line should start")
                if c in _KEYCHAR:
                    raise _Stop("configBadKey", f"a variable name must start with a letter, not {_char(c)}")
                raise _Stop("configBadLine", f"{_char(c)} where a section, a variable or a comment should start")
            key = bytearray([c | 0x20 if 0x41 <= c <= 0x5A else c])
            while True:
                c = src.next()
                if src.eof or c not in _KEYCHAR:
                    break
                key.append(c | 0x20 if 0x41 <= c <= 0x5A else c)
            while c in (0x20, 0x09):
                c = src.next()
            value: bytes | None = None
            if c != _LF:
                if c != 0x3D:  # '='
                    raise _Stop("configNulByte" if c == 0 else "configBadKey",
                                f"{_char(c)} after the variable name {key.decode()!r} (expected '=' or the end "
                                "of the line; names hold only letters, digits and '-')")
                value, continued = _value(src)
                if continued:
                    findings.append(finding(
                        "configTrailingBackslash", path,
                        f"{path}: the file ends in a backslash line continuation in the value of "
                        f"{key.decode()!r}: the rest of the value is missing (git accepts it)"))
            if section is None:
                findings.append(finding("configKeyWithoutSection", path,
                                        f"{path} line {src.linenr - 1}: variable {key.decode()!r} before any "
                                        f"section; git: error: key does not contain a section: {key.decode()}"))
                continue
            cfg.entries.append((
                section.decode("ascii", "surrogateescape"),
                None if subsection is None else _text(subsection),
                key.decode("ascii"),
                None if value is None else _text(value),
            ))
    except _Stop as stop:
        cfg.complete = False
        findings.append(finding(stop.code, path,
                                f"{path} line {src.linenr}: {stop.what}; "
                                f"git: fatal: bad config line {src.linenr} in file {gpath}"))
    nuls = buf.count(b"\0")
    if nuls and not any(f.code == "configNulByte" for f in findings):
        first = buf.find(b"\0")
        line = buf.count(b"\n", 0, first) + 1
        findings.append(finding("configNulByte", path,
                                f"{path} line {line}: {nuls} NUL bytes (git reads a value or comment only up to "
                                "a NUL, silently)"))
    return cfg, findings


def _split_section(name: bytes, sub: bytes | None) -> tuple[bytes, bytes | None]:
    """``[a.b.c]`` is section ``a``, subsection ``b.c`` (lower-cased); ``[a.b "c"]`` is ``a`` / ``b.c``."""
    head, dot, rest = name.partition(b".")
    if sub is None:
        return head, rest if dot else None
    return head, (rest + b"." + sub) if dot else sub
