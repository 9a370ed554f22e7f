"""``packed-refs``: a strict parser that also predicts whether git itself would die reading the file.

Format (git: refs/packed-backend.c, ``write_packed_entry`` and ``PACKED_REFS_HEADER``; Documentation
``gitrepository-layout``)::

    # pack-refs with: peeled fully-peeled sorted \\n      optional header, first byte '#'
    <hex oid> SP <refname> LF                             one record per ref
    ^<hex oid> LF                                         optional peeled value of the record above

Rules this module enforces, and what git does when they are broken (git 2.50+ reader, the version
the messages quote; ``git for-each-ref`` reads every record, so its verdict is the reader's):

1. The header is recognised only when the first byte is ``#`` and must start with
   ``# pack-refs with: ``; traits are split on spaces, unknown traits are ignored.  No LF in it →
   git dies "unterminated line"; another prefix → git dies "unexpected line".
2. Every line is LF-terminated.  git checks the *last record* (a ref line plus its ``^`` line)
   before anything else (``verify_buffer_safe``): the file must end in LF and the last record must
   be at least hexsz+2 bytes, else git dies "unterminated line in <path>: <excerpt>" when the record
   has no LF at all, "unexpected line in <path>: <first line of the record>" otherwise (so a cut
   inside a ``^`` line names the ref line above it).  Excerpts are cut at 75 bytes + "..." when
   the text is 80 bytes or longer, and, since git prints C strings, at the first NUL.
3. Without the ``sorted`` trait git sorts the records in memory first and dies "unexpected line" on
   any record line shorter than hexsz+2 bytes.
4. Each record: exactly hexsz hex digits (git accepts upper case; it never writes it), one
   whitespace byte (git writes SP and accepts TAB/CR/LF), the refname up to LF.  A NUL in the name
   → git dies "packed refname contains embedded NULL" (2.50+; 2.39 silently cut the name); a name
   that is invalid (``check_refname`` one-level rules) *and* unsafe → git dies "packed refname is
   dangerous"; invalid but safe (e.g. a CR from CRLF line ends) → git ignores the ref ("ignoring
   ref with broken name").  A following ``^`` line must be exactly ``^<hex>\\n`` else git dies
   "unexpected line"; a ``^`` line that follows no ref line is "unexpected line" too.
5. With the ``sorted`` trait the names must strictly increase, bytewise unsigned (git's
   ``cmp_packed_refname``; ``git fsck`` reports packedRefUnsorted).  git does not die, but its
   binary search then misses refs.  Duplicates (found with or without the trait) are reported
   separately from order violations.
6. An empty file is the same as no file (git fsck: emptyPackedRefsFile, info).

The file has no checksum: a cut exactly at a record boundary leaves a well-formed, shorter file
that no syntax check can tell from the original (only a manifest of the refs can).

``PackedRefs.refs`` holds every well-formed record in file order (also those after a point where
git would die, so a caller can compare them with a manifest); ``complete`` is False when git would
die reading the file (or a limit stopped the parse), and then no git command works in the
repository until the file is repaired.
"""

from __future__ import annotations

import binascii
import functools
import gc
import operator
import re
from dataclasses import dataclass
from itertools import accumulate, islice

from ..report import Finding, Severity, finding, register
from .common import SHA1, Buffer, HashAlgo, algo_for_hexlen
from .refname import check_refname, is_safe_refname

__all__ = ["PackedRef", "PackedRefs", "git_excerpt", "parse_packed_refs", "serialize_packed_refs"]

HEADER_PREFIX = b"# pack-refs with: "
GIT_HEADER = b"# pack-refs with: peeled fully-peeled sorted \n"

register(
    "packed-refs",
    ("packedRefsEmpty", Severity.INFO,
     "packed-refs is empty (0 bytes); git treats it like a missing file.",
     "git fsck: emptyPackedRefsFile (info); every command works."),
    ("packedRefsHeaderUnterminated", Severity.ERROR,
     "The file ends inside its '# pack-refs with:' header line: it was cut before the first record.",
     "fatal: unterminated line in ./packed-refs: # pack-refs with: ... (every command dies, exit 128)."),
    ("packedRefsBadHeader", Severity.ERROR,
     "The first line starts with '#' but not with '# pack-refs with: '.",
     "fatal: unexpected line in ./packed-refs: <line> (exit 128); git fsck: badPackedRefHeader."),
    ("packedRefsUnterminated", Severity.ERROR,
     "The last line has no LF: the file was cut inside a record (the classic 'tar read a file that was "
     "renamed over' damage).",
     "fatal: unterminated line in ./packed-refs: <excerpt> (exit 128); git fsck: packedRefEntryNotTerminated."),
    ("packedRefsPeeledUnterminated", Severity.ERROR,
     "The file ends inside a '^<oid>' peeled line: it was cut after a tag's ref line.",
     "fatal: unexpected line in ./packed-refs: <the ref line above> (exit 128)."),
    ("packedRefsZeroPadded", Severity.ERROR,
     "The file ends in a run of NUL bytes (what GNU tar writes when a file shrank while it was archived).",
     "fatal: unterminated line in ./packed-refs: ... (exit 128)."),
    ("packedRefsNul", Severity.ERROR,
     "A NUL byte inside a line.",
     "fatal: packed refname contains embedded NULL (git >= 2.50; older git cut the name silently), or "
     "fatal: unexpected line when the NUL is in the oid."),
    ("packedRefsBadLine", Severity.ERROR,
     "A line that is not a record: empty, too short, no separator after the oid, or the oid alone.",
     "fatal: unexpected line in ./packed-refs: <line> (exit 128); git fsck: badPackedRefEntry."),
    ("packedRefsBadOid", Severity.ERROR,
     "A record's object id is not exactly the repository's hash length of hex digits.",
     "fatal: unexpected line in ./packed-refs: <line> (exit 128); git fsck: badPackedRefEntry."),
    ("packedRefsOidUpperCase", Severity.WARNING,
     "An object id in upper-case hex: git reads it, but never writes it (a flipped bit 5 does).",
     "git reads the ref; git fsck does not complain."),
    ("packedRefsOddSeparator", Severity.WARNING,
     "The oid is followed by TAB or CR instead of the single space git writes.",
     "git reads the ref (it accepts any whitespace byte there)."),
    ("packedRefsBadRefName", Severity.ERROR,
     "A ref name that git check-ref-format rejects; git ignores the ref.",
     "warning: ignoring ref with broken name <name> (the ref is invisible); git fsck: badRefName."),
    ("packedRefsDangerousRefName", Severity.ERROR,
     "A ref name that is invalid and could escape refs/ (empty components, '.', '..').",
     "fatal: packed refname is dangerous: <name> (exit 128)."),
    ("packedRefsOutsideRefs", Severity.WARNING,
     "A valid ref name that is not under refs/ (git itself only packs refs/...).",
     "git reads it; most commands never look at it."),
    ("packedRefsCrlf", Severity.ERROR,
     "Lines end in CR LF (the file was converted to DOS line ends): every name carries a CR.",
     "warning: ignoring ref with broken name <name>\\r for ref lines; fatal: unexpected line for '^' lines."),
    ("packedRefsBadPeeled", Severity.ERROR,
     "A '^' line that is not exactly '^<hex oid>'.",
     "fatal: unexpected line in ./packed-refs: ^... (exit 128); git fsck: badPackedRefEntry."),
    ("packedRefsOrphanPeeled", Severity.ERROR,
     "A '^' peeled line that does not follow a ref line (at the start, or a second '^' line).",
     "fatal: unexpected line in ./packed-refs: ^... (exit 128)."),
    ("packedRefsUnsorted", Severity.ERROR,
     "The header promises 'sorted' but a name is smaller than the one before it.",
     "git's binary search misses refs (lookups fail, updates may lose refs); git fsck: packedRefUnsorted."),
    ("packedRefsDuplicate", Severity.ERROR,
     "The same ref name appears in more than one record.",
     "git reads both records and lookups return either; git fsck (sorted trait): packedRefUnsorted."),
    ("packedRefsOddTrait", Severity.WARNING,
     "A header trait that is not a plain lower-case word (git writes peeled, fully-peeled, sorted): a damaged "
     "header, e.g. its LF turned into another byte so that the first record was swallowed.",
     "git ignores unknown traits (and the swallowed record)."),
    ("packedRefsNoHeader", Severity.INFO,
     "No '# pack-refs with:' header (written by very old git): refs are not known to be sorted or peeled.",
     "git sorts the file in memory on every read."),
    ("packedRefsUnknownFormat", Severity.ERROR,
     "The object format could not be inferred: no record starts with 40 or 64 hex digits.",
     "fatal: unexpected line in ./packed-refs: <line> (exit 128)."),
    ("packedRefsLineTooLong", Severity.ERROR,
     "A line is longer than the configured limit; it was skipped unparsed (the verdict on it is unknown).",
     "git has no such limit; it would read the line."),
    ("packedRefsTooManyRefs", Severity.ERROR,
     "More records than the configured limit; the rest of the file was not parsed.",
     "git has no such limit."),
    ("packedRefsManyErrors", Severity.ERROR,
     "More damaged lines than are listed one by one; the count is in the message.",
     "as for the listed ones."),
)

_MAX_LISTED = 50  # per-line error findings listed one by one; the rest are counted


@dataclass(frozen=True, slots=True)
class PackedRef:
    name: str  # the name's bytes decoded as UTF-8 with surrogateescape (round-trips any bytes)
    oid: bytes  # raw, 20 or 32 bytes
    peeled: bytes | None  # raw value of the record's '^' line, if it has one
    line: int  # 1-based line number of the ref line


@dataclass
class PackedRefs:
    has_header: bool
    traits: frozenset[str]
    refs: list[PackedRef]  # file order, only well-formed records
    complete: bool  # False when git would die reading this file (or a limit stopped the parse)
    git_error: str | None = None  # what git dies with ("fatal: ..."), when it does
    algo: HashAlgo | None = None  # the object format used (given or inferred)
    broken: int = 0  # records git reads but ignores (invalid but safe names)

    def by_name(self) -> dict[str, PackedRef]:
        return {r.name: r for r in self.refs}


# -- how git prints lines in its messages -------------------------------------------------------------

def _cstr(seg: bytes) -> bytes:
    """A C string: git's printf stops at the first NUL."""
    nul = seg.find(b"\0")
    return seg[:nul] if nul >= 0 else seg


def _excerpt(buf: bytes, p: int, length: int) -> bytes:
    """git's ``%.*s`` of *length* < 80 bytes at *p*, else ``%.75s...`` (``die_unterminated_line``)."""
    if length < 80:
        return _cstr(buf[p:p + length])
    return _cstr(buf[p:p + 75]) + b"..."


_CNTRL = bytes(range(0, 9)) + b"\x0b\x0c\x0d" + bytes(range(0x0E, 0x20)) + b"\x7f"
_CNTRL_TO_Q = bytes.maketrans(_CNTRL, b"?" * len(_CNTRL))


def git_message(kind: bytes, text: bytes) -> str:
    """A ``die()`` line as git writes it to stderr: ``fatal: `` + the message, control characters other
    than TAB and LF shown as '?' and the whole cut to git's 4 KiB buffer (git: usage.c vfreportf)."""
    raw = (kind + text)[:4095].translate(_CNTRL_TO_Q)
    return raw.decode("utf-8", "backslashreplace")


def git_excerpt(buf: bytes, p: int, length: int) -> str:
    """The excerpt git prints for a bad line (for messages of callers)."""
    return git_message(b"", _excerpt(buf, p, length))


def _git_invalid_line(gpath: bytes, buf: bytes, p: int, end: int) -> str:
    """What git's ``die_invalid_line(path, p, end - p)`` prints."""
    eol = buf.find(b"\n", p, end)
    if eol < 0:
        return git_message(b"fatal: ", b"unterminated line in %s: %s" % (gpath, _excerpt(buf, p, end - p)))
    return git_message(b"fatal: ", b"unexpected line in %s: %s" % (gpath, _excerpt(buf, p, eol - p)))


def _git_name_death(what: bytes, name: bytes) -> str:
    return git_message(b"fatal: ", b"packed refname %s: %s" % (what, _cstr(name)))


def _shown(seg: bytes, limit: int = 100) -> str:
    """Our own rendering of a line, quoted, with NUL/CR/non-ASCII visible."""
    text = repr(bytes(seg[:limit]))[1:]
    return text[:-1] + "...'" if len(seg) > limit else text


# -- patterns -----------------------------------------------------------------------------------------

_NOT_HEX = re.compile(rb"[^0-9a-fA-F]")
_UPPER = re.compile(rb"[A-F]")
_FIELD_END = re.compile(rb"[ \t\r\n]")
_TRAIT = re.compile(rb"[a-z0-9][a-z0-9-]*")
_SPACE = frozenset(b" \t\r\n")  # git's isspace() (sane_ctype GIT_SPACE)


@functools.lru_cache(maxsize=16)
def _record_re(hexsz: int, max_line: int) -> re.Pattern[bytes]:
    """One record as git writes it: lower-case hex, SP, a name under refs/ made of plain bytes, LF,
    an optional well-formed '^' line.  The name still needs the structural refname check."""
    name_max = max(1, max_line - hexsz - 6)
    return re.compile(
        rb"([0-9a-f]{%d}) (refs/[^\x00-\x20\x7f:?\[\\^~*]{1,%d})\n(?:\^([0-9a-f]{%d})\n)?" % (hexsz, name_max, hexsz)
    )


@functools.lru_cache(maxsize=16)
def _body_re(hexsz: int, max_line: int) -> re.Pattern[bytes]:
    """A run of such records, matched in one C-level pass (possessive: no backtracking)."""
    name_max = max(1, max_line - hexsz - 6)
    return re.compile(
        rb"(?:[0-9a-f]{%d} refs/[^\x00-\x20\x7f:?\[\\^~*]{1,%d}\n(?:\^[0-9a-f]{%d}\n)?)*+" % (hexsz, name_max, hexsz)
    )


# Structural refname faults (check_refname rules 2-5) looked for over a whole body of such records
# at once: these byte sequences can only occur inside names.
_BODY_NAME_FAULTS = (b"..", b"@{", b"/.", b".lock\n", b".lock/", b"//", b"/\n", b".\n")


def _zero_tail_start(buf: bytes) -> int:
    """Offset where a trailing run of NUL bytes starts (len(buf) if none), copying only small pieces."""
    end = len(buf)
    while end > 0:
        lo = max(0, end - 65536)
        kept = len(buf[lo:end].rstrip(b"\0"))
        if kept:
            return lo + kept
        end = lo
    return 0


def _find_start_of_record(buf: bytes, start: int, p: int) -> int:
    """git's ``find_start_of_record``: the start of the line holding *p*, moving back over '^' lines."""
    while True:
        i = buf.rfind(b"\n", start, p)
        if i < 0:
            return start
        if buf[i + 1] != 0x5E:  # '^'
            return i + 1
        p = i


def _infer_algo(buf: bytes, start: int, end: int) -> HashAlgo | None:
    """The object format from the first record line that starts with 40 or 64 hex digits + whitespace."""
    pos = start
    for _ in range(16):
        if pos >= end:
            return None
        eol = buf.find(b"\n", pos, min(end, pos + 256))
        line = buf[pos:eol if eol >= 0 else min(end, pos + 256)]
        if not line.startswith(b"^"):
            for hexsz in (40, 64):
                if len(line) > hexsz and line[hexsz] in _SPACE and _NOT_HEX.search(line, 0, hexsz) is None:
                    return algo_for_hexlen(hexsz)
        if eol < 0:
            return None
        pos = eol + 1
    return None


# -- the parser ---------------------------------------------------------------------------------------

def parse_packed_refs(
    data: Buffer,
    algo: HashAlgo | None,
    path: str = "packed-refs",
    *,
    max_line: int = 65536,
    max_refs: int = 10_000_000,
) -> tuple[PackedRefs, list[Finding]]:
    """Parse and check a ``packed-refs`` file (the rules are in the module docstring).

    *algo* ``None`` infers the object format from the first record.  Never raises on any input.
    """
    buf = data if isinstance(data, bytes) else bytes(data)
    n = len(buf)
    findings: list[Finding] = []
    gpath = ("./" + path).encode("utf-8", "surrogateescape")
    if n == 0:
        findings.append(finding("packedRefsEmpty", path, f"{path} is empty (git treats it like a missing file)"))
        return PackedRefs(False, frozenset(), [], True, None, algo), findings

    z = _zero_tail_start(buf) if buf[-1] == 0 else n  # records end where a NUL tail starts
    git_error: str | None = None
    limited = False

    # -- header (git: create_snapshot) ----------------------------------------------------------------
    has_header = buf[0] == 0x23  # '#'
    traits: frozenset[str] = frozenset()
    start = 0
    if has_header:
        eol = buf.find(b"\n")
        if eol < 0 or eol >= z:
            git_error = git_message(b"fatal: ", b"unterminated line in %s: %s" % (gpath, _excerpt(buf, 0, n)))
            code = "packedRefsZeroPadded" if z < n else "packedRefsHeaderUnterminated"
            what = (f"{n - z} NUL bytes at the end, after a cut header line" if z < n
                    else "the file ends inside its header line (cut before the first record)")
            findings.append(finding(code, path, f"{path}: {what}: {_shown(buf[:z])}; git: {git_error}"))
            return PackedRefs(True, frozenset(), [], False, git_error, algo), findings
        start = eol + 1
        if not buf.startswith(HEADER_PREFIX):
            git_error = _git_invalid_line(gpath, buf, 0, n)
            findings.append(finding("packedRefsBadHeader", path,
                                    f"{path} line 1: header {_shown(buf[:eol])} does not start with "
                                    f"'# pack-refs with: '; git: {git_error}"))
        elif eol > max_line:
            limited = True
            findings.append(finding("packedRefsLineTooLong", path,
                                    f"{path} line 1: header longer than {max_line} bytes; traits not read"))
        else:
            raw_traits = [t for t in buf[len(HEADER_PREFIX):eol].split(b" ") if t]
            traits = frozenset(t.decode("utf-8", "backslashreplace") for t in raw_traits)
            odd = [t for t in raw_traits if _TRAIT.fullmatch(t) is None]
            if odd:
                findings.append(finding("packedRefsOddTrait", path,
                                        f"{path} line 1: header trait {_shown(odd[0])} is not a plain word "
                                        "(a damaged header?)"))
    else:
        findings.append(finding("packedRefsNoHeader", path,
                                f"{path} has no '# pack-refs with:' header (written by a very old git)"))

    if z < n:
        findings.append(finding("packedRefsZeroPadded", path,
                                f"{path}: {n - z} NUL bytes at the end, from offset {z} "
                                "(GNU tar pads a file that shrank while it was read)"))

    inferred = algo
    if inferred is None and start < z:
        inferred = _infer_algo(buf, start, z)
        if inferred is None:
            findings.append(finding("packedRefsUnknownFormat", path,
                                    f"{path}: no record starts with 40 or 64 hex digits; the object format "
                                    "is unknown (parsed as sha1)"))
    hexsz = inferred.hexsz if inferred is not None else SHA1.hexsz

    # -- git's safety check of the last record (verify_buffer_safe), before anything else ---------------
    if git_error is None and start < n:
        last = _find_start_of_record(buf, start, n - 1)
        if buf[n - 1] != 0x0A or n - last < hexsz + 2:
            git_error = _git_invalid_line(gpath, buf, last, n)

    # -- the records ----------------------------------------------------------------------------------
    w = _Walker(buf, start, z, hexsz, path, gpath, "sorted" in traits, max_line, max_refs)
    w.run()
    if git_error is None:
        git_error = w.git_error()
    findings.extend(w.findings)
    if w.unlisted:
        findings.append(finding("packedRefsManyErrors", path,
                                f"{path}: {w.unlisted} more damaged lines not listed one by one"))
    for code, (count, first, what) in w.aggregate.items():
        more = f" ({count} lines in all)" if count > 1 else ""
        findings.append(finding(code, path, f"{path} line {first}: {what}{more}"))
    findings.extend(_order_findings(w.names, w.name_lines, "sorted" in traits, path))
    if git_error is not None:
        findings = _attach_git_message(findings, git_error)

    complete = git_error is None and not (limited or w.limited)
    return PackedRefs(has_header, traits, w.refs, complete, git_error, inferred, w.broken), findings


# Codes for damage that makes git die: the first such finding carries git's message.
_FATAL_CODES = frozenset({
    "packedRefsHeaderUnterminated", "packedRefsBadHeader", "packedRefsUnterminated", "packedRefsPeeledUnterminated",
    "packedRefsZeroPadded", "packedRefsNul", "packedRefsBadLine", "packedRefsBadOid", "packedRefsDangerousRefName",
    "packedRefsCrlf", "packedRefsBadPeeled", "packedRefsOrphanPeeled", "packedRefsUnknownFormat",
})


def _attach_git_message(items: list[Finding], git_error: str) -> list[Finding]:
    """Append what git says to the first finding of a fatal kind (else the first error) that does not
    quote git yet."""
    out = list(items)
    if any(f.code in _FATAL_CODES and "git: " in f.message for f in out):
        return out
    candidates = [i for i, f in enumerate(out) if f.code in _FATAL_CODES] or [
        i for i, f in enumerate(out) if f.severity is Severity.ERROR]
    if candidates:
        f = out[candidates[0]]
        out[candidates[0]] = Finding(f.code, f.severity, f.path, f"{f.message}; git: {git_error}")
    return out


def _order_findings(names: list[bytes], lines: list[int], is_sorted: bool, path: str) -> list[Finding]:
    """Duplicates (always) and order violations (with the 'sorted' trait), as distinct codes."""
    if all(map(operator.lt, names, islice(names, 1, None))):
        return []
    out: list[Finding] = []
    seen: dict[bytes, int] = {}
    dups = unsorted = 0
    first_dup: tuple[int, int, bytes] | None = None
    first_unsorted: tuple[int, bytes, bytes] | None = None
    prev: bytes | None = None
    for name, line in zip(names, lines, strict=True):
        before = seen.get(name)
        if before is not None:
            dups += 1
            if first_dup is None:
                first_dup = (line, before, name)
        else:
            seen[name] = line
            if is_sorted and prev is not None and name < prev:
                unsorted += 1
                if first_unsorted is None:
                    first_unsorted = (line, name, prev)
        prev = name
    if first_dup is not None:
        line, before, name = first_dup
        more = f" ({dups} duplicate records in all)" if dups > 1 else ""
        out.append(finding("packedRefsDuplicate", path,
                           f"{path} line {line}: ref {_shown(name)} already appeared on line {before}{more}; "
                           "git lookups return either value"))
    if first_unsorted is not None:
        line, name, prev_name = first_unsorted
        more = f" ({unsorted} out-of-order records in all)" if unsorted > 1 else ""
        out.append(finding("packedRefsUnsorted", path,
                           f"{path} line {line}: refname {_shown(name)} is less than the previous refname "
                           f"{_shown(prev_name)} although the header says 'sorted'{more}; "
                           "git's binary search misses refs (git fsck: packedRefUnsorted)"))
    return out


class _Walker:
    """Walks the records the way git's ``next_record`` does, collecting well-formed refs and findings,
    and remembers where git would die first: in file order with the 'sorted' trait; without it git
    sorts the records in memory (dying on any record line shorter than hexsz+2 bytes) and then dies
    on the first bad record in sorted order."""

    def __init__(self, buf: bytes, start: int, end: int, hexsz: int, path: str, gpath: bytes,
                 is_sorted: bool, max_line: int, max_refs: int) -> None:
        self.buf, self.pos, self.end, self.hexsz = buf, start, end, hexsz
        self.path, self.gpath, self.is_sorted = path, gpath, is_sorted
        self.max_line, self.max_refs = max_line, max_refs
        self.line = 2 if start else 1
        self.refs: list[PackedRef] = []
        self.names: list[bytes] = []
        self.name_lines: list[int] = []
        self.broken = 0
        self.limited = False
        self.findings: list[Finding] = []
        self.listed = 0
        self.unlisted = 0
        self.aggregate: dict[str, tuple[int, int, str]] = {}
        self._short_fatal: str | None = None
        self._iter_fatal: tuple[bytes, str] | None = None

    # -- bookkeeping ------------------------------------------------------------------------------------
    def _error(self, code: str, line: int, message: str) -> None:
        if self.listed < _MAX_LISTED:
            self.listed += 1
            self.findings.append(finding(code, self.path, f"{self.path} line {line}: {message}"))
        else:
            self.unlisted += 1

    def _agg(self, code: str, line: int, what: str) -> None:
        count, first, text = self.aggregate.get(code, (0, line, what))
        self.aggregate[code] = (count + 1, first, text)

    def _fatal(self, key: bytes, message: str) -> None:
        if self._iter_fatal is None or (not self.is_sorted and key < self._iter_fatal[0]):
            self._iter_fatal = (key, message)

    def git_error(self) -> str | None:
        if self._short_fatal is not None:
            return self._short_fatal
        return self._iter_fatal[1] if self._iter_fatal is not None else None

    def _add(self, name: bytes, oid_hex: bytes, peeled_hex: bytes | None, line: int) -> None:
        self.refs.append(PackedRef(name.decode("utf-8", "surrogateescape"), bytes.fromhex(oid_hex.decode()),
                                   bytes.fromhex(peeled_hex.decode()) if peeled_hex else None, line))
        self.names.append(name)
        self.name_lines.append(line)

    # -- the walk -------------------------------------------------------------------------------------
    def run(self) -> None:
        """Runs of well-formed records are converted in bulk (C-level regex passes); only the records
        that break the pattern go through the byte-level diagnosis.  Linear in the file size: the lines
        with refname faults are found once up front, and each run is matched once."""
        buf, end = self.buf, self.end
        body = _body_re(self.hexsz, self.max_line)
        rec = _record_re(self.hexsz, self.max_line)
        bad = self._fault_lines()
        bi = 0
        while self.pos < end:
            if len(self.refs) >= self.max_refs:
                self._limit()
                return
            pos = self.pos
            while bi < len(bad) and bad[bi] < pos:
                bi += 1
            stop = bad[bi] if bi < len(bad) else end
            if stop > pos:
                m = body.match(buf, pos, stop)
                if m is not None and m.end() > pos and self._take_run(pos, m.end()):
                    continue
            m = rec.match(buf, pos, end)
            if m is not None and check_refname(m.group(2)) is None:
                peeled_hex = m.group(3)
                mend = m.end()
                if peeled_hex is not None or mend >= end or buf[mend] != 0x5E:
                    self._add(m.group(2), m.group(1), peeled_hex, self.line)
                    self.line += 1 if peeled_hex is None else 2
                    self.pos = mend
                    continue
                # a '^' line follows that the pattern did not accept: the slow path diagnoses it
            self._slow_record()

    def _limit(self) -> None:
        self.limited = True
        self.findings.append(finding("packedRefsTooManyRefs", self.path,
                                     f"{self.path}: more than {self.max_refs} records; the rest "
                                     f"(from line {self.line}) was not parsed"))
        self.pos = self.end

    def _fault_lines(self) -> list[int]:
        """Start offsets of the lines holding a structural refname fault (check_refname rules 2-5):
        such byte sequences can only occur inside names, so a few memmem scans find them all."""
        buf, start, end = self.buf, self.pos, self.end
        starts: set[int] = set()
        for fault in _BODY_NAME_FAULTS:
            i = buf.find(fault, start, end)
            while i >= 0:
                line_start = buf.rfind(b"\n", start, i) + 1 or start
                starts.add(max(line_start, start))
                nxt = buf.find(b"\n", i, end)
                if nxt < 0:
                    break
                i = buf.find(fault, nxt + 1, end)
        return sorted(starts)

    def _take_run(self, start: int, stop: int) -> bool:
        """Convert the well-formed records in [start, stop) in bulk; False if there is none to take."""
        buf, hexsz = self.buf, self.hexsz
        found = _record_re(hexsz, self.max_line).findall(buf, start, stop)
        if found and stop < self.end and buf[stop] == 0x5E and not found[-1][2]:
            # the last record's '^' line is broken: leave that record to the slow path
            stop -= hexsz + len(found[-1][1]) + 2
            found.pop()
        if not found:
            return False
        room = self.max_refs - len(self.refs)
        if len(found) > room:
            found = found[:room]
            stop = start + sum(hexsz + len(n) + 2 + (hexsz + 2 if p else 0) for _, n, p in found)
        first = self.line
        steps = [2 if p else 1 for _, _, p in found]
        lines = list(accumulate(steps[:-1], initial=first))
        unhex = binascii.unhexlify
        gc_was_on = gc.isenabled()
        gc.disable()  # millions of small objects: generational collections would dominate
        try:
            self.refs.extend([
                PackedRef(name.decode("utf-8", "surrogateescape"), unhex(o), unhex(p) if p else None, ln)
                for (o, name, p), ln in zip(found, lines, strict=True)
            ])
            self.names.extend([name for _, name, _ in found])
        finally:
            if gc_was_on:
                gc.enable()
        self.name_lines.extend(lines)
        self.line = first + sum(steps)
        self.pos = stop
        return True

    def _line_end(self) -> int:
        """Index of the LF ending the line at self.pos, self.end if the line is unterminated,
        -1 if the line is longer than max_line."""
        buf, pos, end = self.buf, self.pos, self.end
        eol = buf.find(b"\n", pos, min(end, pos + self.max_line + 1))
        if eol >= 0:
            return eol
        return end if end - pos <= self.max_line else -1

    def _skip_long_line(self) -> None:
        eol = self.buf.find(b"\n", self.pos, self.end)
        self._error("packedRefsLineTooLong", self.line, f"longer than {self.max_line} bytes; not parsed")
        self.limited = True
        self.pos = self.end if eol < 0 else eol + 1
        self.line += 1

    def _slow_record(self) -> None:
        """Diagnose one record at self.pos: a ref line and its optional '^' line."""
        buf, end, hexsz = self.buf, self.end, self.hexsz
        pos, line_no = self.pos, self.line
        eol = self._line_end()
        if eol < 0:
            self._skip_long_line()
            if self.pos < end and buf[self.pos] == 0x5E:
                self._peeled_line(b"")
            return
        line = buf[pos:eol]
        if eol >= end:  # the file (or its part before a NUL tail) ends inside this line
            what = "the file ends inside this record" + (" (it holds NUL bytes)" if b"\0" in line else "")
            self._error("packedRefsUnterminated", line_no, f"{what}: {_shown(line)} has no LF")
            self.pos, self.line = end, line_no + 1
            return
        self.pos, self.line = eol + 1, line_no + 1

        if not self.is_sorted and len(line) < hexsz + 2 and self._short_fatal is None:
            self._short_fatal = _git_invalid_line(self.gpath, buf, pos, len(buf))
        key = line[hexsz + 1:]

        if line.startswith(b"^"):
            self._fatal(key, _git_invalid_line(self.gpath, buf, pos, len(buf)))
            self._error("packedRefsOrphanPeeled", line_no, f"peeled line {_shown(line)} does not follow a ref line")
            return

        name: bytes | None = None
        ok = False
        hex_ok = len(line) >= hexsz and _NOT_HEX.search(line, 0, hexsz) is None
        if not line:
            self._fatal(key, _git_invalid_line(self.gpath, buf, pos, len(buf)))
            self._error("packedRefsBadLine", line_no, "empty line")
        elif hex_ok and len(line) == hexsz:
            # the oid alone: git takes the LF for the separator and reads the *next line* as the name
            if self.is_sorted:
                n_eol = buf.find(b"\n", self.pos, end)
                if n_eol >= 0:
                    self._name_fatal(buf[self.pos:n_eol])
                    self.pos, self.line = n_eol + 1, self.line + 1
            self._error("packedRefsBadLine", line_no, f"the oid {_shown(line)} stands alone (no ref name)")
        elif not hex_ok or line[hexsz] not in _SPACE:
            self._fatal(key, _git_invalid_line(self.gpath, buf, pos, len(buf)))
            m = _FIELD_END.search(line)
            field = line[:m.start()] if m else line
            if b"\0" in line[:hexsz + 1]:
                self._error("packedRefsNul", line_no, f"NUL byte in the oid of {_shown(line)}")
            elif _NOT_HEX.search(field) is None:
                self._error("packedRefsBadOid", line_no,
                            f"oid {_shown(field)} has {len(field)} hex digits, not {hexsz}")
            elif hex_ok:
                self._error("packedRefsBadLine", line_no, f"no space after the oid in {_shown(line)}")
            else:
                self._error("packedRefsBadOid", line_no, f"oid {_shown(field[:hexsz + 8])} is not {hexsz} hex digits")
        else:
            if _UPPER.search(line, 0, hexsz) is not None:
                self._agg("packedRefsOidUpperCase", line_no, "object id in upper-case hex (git writes lower case)")
            if line[hexsz] != 0x20:
                self._agg("packedRefsOddSeparator", line_no,
                          f"the oid is followed by {'TAB' if line[hexsz] == 9 else 'CR'} instead of a space")
            name = line[hexsz + 1:]
            ok = self._check_name(name, line_no)

        peeled = self._peeled_line(key)
        if ok and name is not None and peeled is not _BAD and len(self.refs) < self.max_refs:
            self._add(name, line[:hexsz], peeled if isinstance(peeled, bytes) else None, line_no)

    def _name_fatal(self, name: bytes) -> bool:
        """Record git's death on a name (NUL; invalid and unsafe); True if git dies."""
        if b"\0" in name:
            self._fatal(name, _git_name_death(b"contains embedded NULL", name))
            return True
        if check_refname(name, allow_onelevel=True) is not None and not is_safe_refname(name):
            self._fatal(name, _git_name_death(b"is dangerous", name))
            return True
        return False

    def _check_name(self, name: bytes, line_no: int) -> bool:
        """Findings for a record's name; True when the record is usable (git reads it)."""
        if self._name_fatal(name):
            if b"\0" in name:
                self._error("packedRefsNul", line_no, f"NUL byte in ref name {_shown(name)}")
            else:
                self._error("packedRefsDangerousRefName", line_no,
                            f"ref name {_shown(name)} is invalid ({check_refname(name, allow_onelevel=True)}) "
                            "and could escape refs/")
            return False
        reason = check_refname(name, allow_onelevel=True)
        if reason is not None:
            self.broken += 1
            if name.endswith(b"\r") and check_refname(name[:-1], allow_onelevel=True) is None:
                self._agg("packedRefsCrlf", line_no,
                          "lines end in CR LF; git ignores such refs ('ignoring ref with broken name')")
            else:
                self._error("packedRefsBadRefName", line_no,
                            f"invalid ref name {_shown(name)} ({reason}); git ignores the ref")
            return False
        full = check_refname(name)
        if full is not None:
            self._error("packedRefsBadRefName", line_no,
                        f"invalid ref name {_shown(name)} ({full}); git fsck: badRefName")
        elif not name.startswith(b"refs/"):
            self._agg("packedRefsOutsideRefs", line_no, f"ref {_shown(name)} is not under refs/")
        return True

    def _peeled_line(self, key: bytes) -> bytes | object | None:
        """Consume the '^' line at self.pos if there is one: its hex digits, _BAD, or None if absent."""
        buf, pos, end, hexsz = self.buf, self.pos, self.end, self.hexsz
        if pos >= end or buf[pos] != 0x5E:
            return None
        line_no = self.line
        eol = self._line_end()
        if eol < 0:
            self._skip_long_line()
            return _BAD
        line = buf[pos:eol]
        if eol >= end:
            self._error("packedRefsPeeledUnterminated", line_no,
                        f"the file ends inside the peeled line {_shown(line)} of the record above")
            self.pos, self.line = end, line_no + 1
            return _BAD
        self.pos, self.line = eol + 1, line_no + 1
        body = line[1:]
        if len(body) == hexsz and _NOT_HEX.search(body) is None:
            if _UPPER.search(body) is not None:
                self._agg("packedRefsOidUpperCase", line_no, "object id in upper-case hex (git writes lower case)")
            return body
        self._fatal(key, _git_invalid_line(self.gpath, buf, pos, len(buf)))
        if len(body) == hexsz + 1 and body.endswith(b"\r") and _NOT_HEX.search(body, 0, hexsz) is None:
            self._agg("packedRefsCrlf", line_no, "lines end in CR LF; git dies on a '^' line with a CR")
        elif b"\0" in body:
            self._error("packedRefsNul", line_no, f"NUL byte in the peeled line {_shown(line)}")
        else:
            self._error("packedRefsBadPeeled", line_no, f"peeled line {_shown(line)} is not '^' + {hexsz} hex digits")
        return _BAD


_BAD = object()


def serialize_packed_refs(refs: list[tuple[bytes, bytes, bytes | None]], header: bytes | None = GIT_HEADER) -> bytes:
    """Write records the way git does (``write_packed_entry``): ``(name, raw oid, raw peeled or None)``
    in the order given (git writes them sorted), after *header* (git's own by default)."""
    out = [header] if header else []
    for name, oid, peeled in refs:
        out.append(b"%s %s\n" % (oid.hex().encode(), name))
        if peeled is not None:
            out.append(b"^%s\n" % peeled.hex().encode())
    return b"".join(out)
