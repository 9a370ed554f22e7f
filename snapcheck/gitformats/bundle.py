"""Git bundles (``git bundle create``): a text header, then a pack, checked as they stream past.

Layout (git: Documentation/gitformat-bundle.adoc)::

    v2: "# v2 git bundle" LF  *("-" oid [SP comment] LF)  *(oid SP refname LF)  LF  pack
    v3: "# v3 git bundle" LF  *("@" key ["=" value] LF)  ...the same...          LF  pack

Rules enforced, in the order git's reader (bundle.c ``read_bundle_header_fd``) applies them:

1. the first line is exactly one of the two signatures, else git: "'<file>' does not look like a v2
   or v3 bundle file"                                                          (bundleBadSignature)
2. v3 capability lines ``@key[=value]``: ``object-format=sha1|sha256`` picks the hash (the default
   is SHA-1); ``filter=…`` is known; anything else makes git abort: "unknown capability '<cap>'"
   (or "unrecognized bundle hash algorithm: <name>")                      (bundleUnknownCapability)
3. every other line, trailing white space removed, is ``-<oid>[ <comment>]`` (a prerequisite) or
   ``<oid> <refname>`` (a reference) with an oid of the bundle's hash length; else git:
   "unrecognized header: <line> (<len>)"                                      (bundleBadHeaderLine)
4. the header ends with an empty line; a stream that ends before it has no pack at all
                                                                              (bundleHeaderTruncated)
5. at least one reference: git never writes a bundle without one ("Refusing to create empty
   bundle.") and a fetch from it finds nothing                                  (bundleNoReferences)
6. reference names follow ``git check-ref-format`` (one-level names such as ``HEAD`` allowed:
   ``git bundle create --all`` lists HEAD)                                        (bundleBadRefname)
7. what follows the empty line is a pack: :class:`~snapcheck.gitformats.pack.PackStreamChecker`
   checks its header, that the object count fits and, with ``hash_content``, its trailing checksum
   (``pack…`` codes).  A bundle's pack has no file name, so the name rules do not apply.
8. resource limits: a header line longer than ``max_line`` or more than ``max_refs`` lines
                                                                               (bundleHeaderTooLarge)

Pure: bytes in, findings out.  Memory is bounded by the header (held line by line) and O(1) for the
pack.  Prerequisites cannot be checked without the repository they refer to (``git bundle verify``
needs it), so they are only parsed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..report import Finding, Severity, finding, register
from .common import SHA1, SHA256, Buffer, HashAlgo
from .pack import PackStreamChecker, PackSummary
from .refname import check_refname

register(
    "bundle",
    ("bundleBadSignature", Severity.ERROR,
     "The file does not start with the line '# v2 git bundle' or '# v3 git bundle'.",
     "error: '<file>' does not look like a v2 or v3 bundle file"),
    ("bundleUnknownCapability", Severity.ERROR,
     "A v3 bundle names a capability git does not know (or an unknown object-format).",
     "error: unknown capability '<capability>' / error: unrecognized bundle hash algorithm: <name>"),
    ("bundleBadHeaderLine", Severity.ERROR,
     "A header line is neither a prerequisite ('-<oid> [comment]') nor a reference ('<oid> <refname>') "
     "with an object id of the bundle's hash length.",
     "error: unrecognized header: <line> (<length>)"),
    ("bundleHeaderTruncated", Severity.ERROR,
     "The bundle ends inside its header (before the empty line that precedes the pack): it was cut.",
     "git reads the header, then index-pack fails: fatal: early EOF / premature end of pack file"),
    ("bundleNoReferences", Severity.ERROR,
     "The bundle header lists no reference: there is nothing to fetch from it.",
     "git bundle create refuses to write one: 'Refusing to create empty bundle.'; git fetch finds no refs"),
    ("bundleBadRefname", Severity.WARNING,
     "A reference in the bundle header is not a valid ref name (git check-ref-format).",
     "git fetch refuses to create a local ref of that name"),
    ("bundleHeaderTooLarge", Severity.ERROR,
     "A bundle header line, or the number of header lines, exceeds the configured limit; the rest was not read.",
     "n/a: git reads header lines of any length"),
)

V2_SIGNATURE = b"# v2 git bundle\n"
V3_SIGNATURE = b"# v3 git bundle\n"
_SIGNATURES = {V2_SIGNATURE: 2, V3_SIGNATURE: 3}
_SIG_LEN = len(V2_SIGNATURE)
_QUOTE = 40  # bytes of a wrong signature line quoted in the finding
_CAP_KEY = re.compile(rb"^[A-Za-z0-9-]+$")
_HEX = b"0123456789abcdefABCDEF"
_SPACE = b" \t\n\v\f\r"
_IGNORED_PACK_CODES = {"packBadName", "packNameMismatch"}  # a bundle's pack has no file name

__all__ = [
    "V2_SIGNATURE",
    "V3_SIGNATURE",
    "BundleHeader",
    "BundleStreamChecker",
    "BundleSummary",
    "check_bundle",
    "is_bundle",
]


def is_bundle(head: bytes) -> bool:
    """Whether the first bytes of a stream are a bundle signature line."""
    return head[:_SIG_LEN] in _SIGNATURES


@dataclass
class BundleHeader:
    """What the header says.  ``references`` are ``(refname, oid)`` in file order."""

    version: int
    algo: HashAlgo = SHA1
    capabilities: dict[str, str | None] = field(default_factory=dict)
    prerequisites: list[bytes] = field(default_factory=list)
    references: list[tuple[str, bytes]] = field(default_factory=list)
    size: int = 0  # bytes of the header, the empty line included


@dataclass
class BundleSummary:
    header: BundleHeader | None  # None when the signature was wrong
    pack: PackSummary | None  # None when the header never ended
    size: int


class BundleStreamChecker:
    """Fed a bundle's bytes in order (``feed``), then ``finish()`` gives the
    :class:`BundleSummary` and the findings (all with path *path*)."""

    def __init__(self, path: str, *, hash_content: bool, max_line: int = 64 * 1024,
                 max_refs: int = 10_000_000) -> None:  # fmt: skip
        self.path = path
        self.hash_content = hash_content
        self.max_line = max_line
        self.max_lines = max_refs
        self._findings: list[Finding] = []
        self._buf = bytearray()
        self._state = "signature"  # signature | header | pack | dead
        self._header: BundleHeader | None = None
        self._pack: PackStreamChecker | None = None
        self._size = 0
        self._lines = 0
        self._result: tuple[BundleSummary, list[Finding]] | None = None

    @property
    def size(self) -> int:
        return self._size

    def feed(self, data: Buffer) -> None:
        if self._result is not None:
            raise ValueError("feed() after finish()")
        mv = memoryview(data)
        if mv.format != "B" or mv.ndim != 1:
            mv = mv.cast("B")
        if not len(mv):
            return
        self._size += len(mv)
        if self._state == "pack":
            assert self._pack is not None
            self._pack.feed(mv)
            return
        if self._state == "dead":
            return
        self._buf += mv
        if self._state == "signature":
            self._signature()
        if self._state == "header":
            self._header_lines()

    # -- header --------------------------------------------------------------------------------------

    def _note(self, code: str, message: str) -> None:
        self._findings.append(finding(code, self.path, f"{self.path}: {message}"))

    def _die(self, code: str, message: str) -> None:
        self._note(code, message)
        self._state = "dead"
        self._buf = bytearray()

    def _signature(self) -> None:
        buf = self._buf
        nl = buf.find(b"\n", 0, _SIG_LEN)
        if nl >= 0 or len(buf) >= _SIG_LEN:
            line = bytes(buf[: nl + 1]) if nl >= 0 else bytes(buf[:_SIG_LEN])
            version = _SIGNATURES.get(line)
            if version is not None:
                self._header = BundleHeader(version=version)
                del buf[:_SIG_LEN]
                self._state = "header"
                return
        elif self._maybe_signature():
            return
        # not a bundle: the finding quotes the first line (its first _QUOTE bytes), whatever the
        # pieces the bytes came in, so it waits for them (finish() reports a shorter input)
        if b"\n" in buf or len(buf) >= _QUOTE:
            self._bad_signature()

    def _maybe_signature(self) -> bool:
        """Is what came so far the start of a signature line?"""
        return any(sig.startswith(bytes(self._buf)) for sig in _SIGNATURES)

    def _bad_signature(self) -> None:
        first = bytes(self._buf.split(b"\n", 1)[0][:_QUOTE])
        self._die("bundleBadSignature", f"starts with {first!r}, not '# v2 git bundle' or '# v3 git bundle'; "
                                        f"git: error: '{self.path}' does not look like a v2 or v3 bundle file")

    def _header_lines(self) -> None:
        assert self._header is not None
        buf = self._buf
        pos = 0
        while self._state == "header":
            nl = buf.find(b"\n", pos)
            if nl < 0:
                if len(buf) - pos > self.max_line:
                    self._die("bundleHeaderTooLarge", f"a header line is longer than {self.max_line} bytes")
                    return
                break
            start, pos = pos, nl + 1
            if nl == start:  # the empty line: the pack follows
                self._header.size = self._size - (len(buf) - pos)
                self._start_pack(memoryview(buf)[pos:])
                return
            if nl - start > self.max_line:
                self._die("bundleHeaderTooLarge", f"a header line is longer than {self.max_line} bytes")
                return
            self._lines += 1
            if self._lines > self.max_lines:
                self._die("bundleHeaderTooLarge", f"more than {self.max_lines} header lines")
                return
            self._line(bytes(buf[start:nl]))
        if self._state == "header":
            del buf[:pos]

    def _line(self, raw: bytes) -> None:
        header = self._header
        assert header is not None
        line = raw.rstrip(_SPACE)
        if header.version == 3 and line.startswith(b"@"):
            self._capability(line[1:])
            return
        prereq = line.startswith(b"-")
        body = line[1:] if prereq else line
        hexsz = header.algo.hexsz
        oid_hex = body[:hexsz]
        rest = body[hexsz:]
        ok = len(oid_hex) == hexsz and not oid_hex.translate(None, _HEX)
        if ok and rest and rest[0] not in _SPACE:
            ok = False
        if ok and not prereq and not rest:
            ok = False
        if not ok:
            shown = line.decode("utf-8", "backslashreplace")
            self._die("bundleBadHeaderLine", f"header line {self._lines + 1} is {shown[:120]!r}: not "
                                             f"'-<oid> [comment]' nor '<oid> <refname>' with a {hexsz}-digit "
                                             f"{header.algo.name} id; git: error: unrecognized header: "
                                             f"{shown[:120]} ({len(line)})")
            return
        oid = bytes.fromhex(oid_hex.decode("ascii"))
        if prereq:
            header.prerequisites.append(oid)
            return
        name = rest[1:]
        reason = check_refname(name, allow_onelevel=True)  # git bundle create --all lists HEAD
        refname = name.decode("utf-8", "surrogateescape")
        if reason is not None:
            self._note("bundleBadRefname", f"reference {name.decode('utf-8', 'backslashreplace')!r} is not a "
                                           f"valid ref name ({reason})")
        header.references.append((refname, oid))

    def _capability(self, cap: bytes) -> None:
        header = self._header
        assert header is not None
        key, eq, value = cap.partition(b"=")
        text = cap.decode("utf-8", "backslashreplace")
        if not _CAP_KEY.match(key):
            self._die("bundleUnknownCapability", f"capability {text!r} is not '@key[=value]'; "
                                                 f"git: error: unknown capability '{text}'")
            return
        k = key.decode("ascii")
        v = value.decode("utf-8", "surrogateescape") if eq else None
        if k == "object-format":
            algo = {b"sha1": SHA1, b"sha256": SHA256}.get(value) if eq else None
            if algo is None:
                self._die("bundleUnknownCapability", f"object-format {value.decode('utf-8', 'backslashreplace')!r}; "
                                                     f"git: error: unrecognized bundle hash algorithm: "
                                                     f"{value.decode('utf-8', 'backslashreplace')}")
                return
            header.algo = algo
        elif k != "filter":
            self._die("bundleUnknownCapability", f"git: error: unknown capability '{text}'")
            return
        header.capabilities[k] = v

    def _start_pack(self, rest: memoryview) -> None:
        assert self._header is not None
        self._state = "pack"
        self._pack = PackStreamChecker(self.path, self._header.algo, hash_content=self.hash_content)
        if len(rest):
            self._pack.feed(rest)
        rest.release()
        self._buf = bytearray()

    # -- the end -------------------------------------------------------------------------------------

    def finish(self) -> tuple[BundleSummary, list[Finding]]:
        if self._result is not None:
            return self._result
        findings = list(self._findings)
        pack_summary: PackSummary | None = None
        if self._state == "signature":
            if self._size == 0:
                self._state = "dead"
                findings.append(finding("bundleBadSignature", self.path,
                                        f"{self.path}: empty; git: error: '{self.path}' does not look like a "
                                        f"v2 or v3 bundle file"))
            elif not self._maybe_signature():  # short, and no bundle (see _signature)
                self._bad_signature()
                findings = list(self._findings)
            else:
                findings.append(finding("bundleHeaderTruncated", self.path,
                                        f"{self.path}: ends after {self._size} bytes, inside the signature line"))
        elif self._state == "header":
            findings.append(finding("bundleHeaderTruncated", self.path,
                                    f"{self.path}: ends after {self._size} bytes, inside the header (no empty "
                                    f"line, no pack); git: fatal: early EOF"))
        if self._pack is not None:
            pack_summary, pack_findings = self._pack.finish()
            findings += [f for f in pack_findings if f.code not in _IGNORED_PACK_CODES]
        header = self._header
        if header is not None and self._state == "pack" and not header.references:
            findings.append(finding("bundleNoReferences", self.path,
                                    f"{self.path}: the header lists no reference (git refuses to create such a "
                                    f"bundle: 'Refusing to create empty bundle.')"))
        self._result = (BundleSummary(header, pack_summary, self._size), findings)
        return self._result


def check_bundle(data: Buffer, path: str, *, hash_content: bool = True) -> tuple[BundleSummary, list[Finding]]:
    """Check a whole bundle held in memory (see :class:`BundleStreamChecker`)."""
    checker = BundleStreamChecker(path, hash_content=hash_content)
    checker.feed(data)
    return checker.finish()
