"""The manifest snapcheck writes as the last member of its archives, and its comparison with a snapshot.

Why it exists (DESIGN.md "The archive format snapcheck writes"): ``packed-refs`` and loose refs carry
no checksum, so a ``packed-refs`` cut exactly at a record boundary is a well-formed, shorter file that
git reads without a word (git-integrity-anchors.md §2.2: "Undetectable by syntax").  The manifest
records, at capture time, every ref with its object id, where HEAD points, and every file with its
size and sha256.  Comparing a snapshot with it turns the undetectable cut into
``manifestRefMissing``.  Because the manifest is the archive's **last** member, an archive cut
anywhere also lacks its manifest.

Rules :func:`compare_manifest` enforces, in this order (each an error: the archive is snapcheck's own
product, so any difference from what was captured means it is not what was captured):

1. every ref in the manifest is in the snapshot (``manifestRefMissing``) with the same object id
   (``manifestRefMismatch``); a symbolic ref that the snapshot's ref list omits is not reported
   missing (its target is itself a ref and is compared);
2. the snapshot has no ref the manifest lacks (``manifestExtraRef``);
3. HEAD names the same target (``manifestHeadMismatch``);
4. every file in the manifest is in the snapshot (``manifestFileMissing``) with the same size
   (``manifestFileSizeMismatch``) and, where the caller hashed it, the same sha256
   (``manifestFileDigestMismatch``); the snapshot has no file the manifest lacks
   (``manifestExtraFile``; the manifest itself and anything under ``.snapcheck/`` excepted).

:meth:`Manifest.from_json` is strict: anything but a well-formed document of this schema is
``manifestCorrupt``.  ``manifestNotLast`` is registered here for the archive reader, which alone
knows the member order.

The document is canonical JSON (sorted keys, no insignificant whitespace, one final LF), so the same
capture gives the same bytes.  Ref names and paths are ``str`` holding the name's bytes decoded as
UTF-8 with ``surrogateescape`` (any byte string round-trips; JSON escapes lone surrogates).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .report import Finding, Severity, finding, register

__all__ = [
    "MANIFEST_DIR",
    "MANIFEST_PATH",
    "SCHEMA",
    "Manifest",
    "compare_manifest",
]

MANIFEST_DIR = ".snapcheck"
MANIFEST_PATH = ".snapcheck/manifest.json"  # repository-relative; archive member ./.snapcheck/manifest.json
SCHEMA = 1
MAX_FINDINGS_PER_CODE = 50  # then one summary finding of the same code

register(
    "manifest",
    ("manifestCorrupt", Severity.ERROR,
     "The snapcheck manifest (.snapcheck/manifest.json) is not a well-formed manifest of a known schema; "
     "the snapshot cannot be compared with what was captured.",
     "n/a: git ignores .snapcheck/; the archive is not trustworthy as snapcheck's own output."),
    ("manifestNotLast", Severity.ERROR,
     "Archive members follow the manifest: snapcheck writes it as the last member, so something was "
     "appended to or mixed into the archive.",
     "n/a: git would see whatever the extra members contain."),
    ("manifestRefMissing", Severity.ERROR,
     "A ref recorded in the manifest is absent from the snapshot: typically packed-refs cut exactly at "
     "a record boundary (well-formed, so only the manifest can tell) or a lost loose ref file.",
     "git works and silently lacks the ref: for-each-ref does not list it, fetches of it fail."),
    ("manifestRefMismatch", Severity.ERROR,
     "A ref points to another object than the manifest recorded.",
     "git works and serves the other commit."),
    ("manifestExtraRef", Severity.ERROR,
     "The snapshot has a ref the manifest does not list.",
     "git works and serves a ref that was not captured."),
    ("manifestHeadMismatch", Severity.ERROR,
     "HEAD names another target than the manifest recorded.",
     "git works; clones check out another branch."),
    ("manifestFileMissing", Severity.ERROR,
     "A file recorded in the manifest is absent from the snapshot.",
     "depends on the file: a missing pack or idx loses objects (git: missing <type> <oid>)."),
    ("manifestFileSizeMismatch", Severity.ERROR,
     "A file's size differs from the size the manifest recorded (cut or padded on the way).",
     "depends on the file: most git binary files then fail their size or checksum checks."),
    ("manifestFileDigestMismatch", Severity.ERROR,
     "A file's sha256 differs from the digest the manifest recorded (same size, other bytes).",
     "depends on the file: packs and indexes fail their trailing checksum; refs silently differ."),
    ("manifestExtraFile", Severity.ERROR,
     "The snapshot has a file the manifest does not list.",
     "git may use it (an extra pack or ref file changes what git serves)."),
)

_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_HEX = {"sha1": re.compile(r"[0-9a-f]{40}\Z"), "sha256": re.compile(r"[0-9a-f]{64}\Z")}
_RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z\Z")
_KEYS = frozenset({
    "schema", "tool_version", "created", "object_format", "head_target", "head_oid",
    "refs", "symrefs", "files", "object_count", "pack_count",
})


@dataclass
class Manifest:
    """What a capture recorded.  Object ids are lower-case hex; ``created`` is RFC 3339 UTC
    (``2024-05-01T12:00:00Z``).  ``refs`` maps every ref under ``refs/`` to the object id it resolves
    to (symbolic refs included, resolved, exactly as ``git for-each-ref`` lists them); ``symrefs``
    maps each symbolic ref to its target.  ``files`` maps every regular file of the snapshot
    (repository-relative path) to ``(size, sha256 hex)``.  ``object_count`` is the sum of the pack
    indexes' object counts plus the loose objects (an object stored twice counts twice);
    ``pack_count`` the number of packs."""

    schema: int
    tool_version: str
    created: str
    object_format: str
    head_target: str | None
    head_oid: str | None
    refs: dict[str, str] = field(default_factory=dict)
    symrefs: dict[str, str] = field(default_factory=dict)
    files: dict[str, tuple[int, str]] = field(default_factory=dict)
    object_count: int = 0
    pack_count: int = 0

    def to_json(self) -> bytes:
        doc: dict[str, Any] = {
            "schema": self.schema,
            "tool_version": self.tool_version,
            "created": self.created,
            "object_format": self.object_format,
            "head_target": self.head_target,
            "head_oid": self.head_oid,
            "refs": self.refs,
            "symrefs": self.symrefs,
            "files": {p: [size, digest] for p, (size, digest) in self.files.items()},
            "object_count": self.object_count,
            "pack_count": self.pack_count,
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii") + b"\n"

    @classmethod
    def from_json(cls, data: bytes, path: str = MANIFEST_PATH) -> tuple[Manifest | None, list[Finding]]:
        """Parse and validate a manifest.  Returns ``(None, [manifestCorrupt])`` for anything that is not
        a well-formed manifest of this schema; never raises."""
        try:
            return cls._from_json(data, path), []
        except _Corrupt as e:
            return None, [finding("manifestCorrupt", path, f"{path}: {e}; the snapshot cannot be compared "
                                  "with what snapcheck captured")]

    @classmethod
    def _from_json(cls, data: bytes, path: str) -> Manifest:
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as e:
            raise _Corrupt(f"not UTF-8 (byte {e.start})") from None
        try:
            doc = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
        except (ValueError, RecursionError) as e:
            raise _Corrupt(f"not valid JSON ({_short(str(e))})") from None
        if not isinstance(doc, dict):
            raise _Corrupt(f"top level is a JSON {type(doc).__name__}, not an object")
        schema = doc.get("schema")
        if type(schema) is not int:
            raise _Corrupt("no integer 'schema'")
        if schema != SCHEMA:
            raise _Corrupt(f"schema {schema}, this snapcheck reads schema {SCHEMA} only")
        missing = sorted(_KEYS - doc.keys())
        if missing:
            raise _Corrupt(f"missing key(s) {', '.join(missing)}")
        extra = sorted(doc.keys() - _KEYS)
        if extra:
            raise _Corrupt(f"unknown key(s) {', '.join(_short(k) for k in extra[:5])}")
        fmt = _str(doc, "object_format")
        if fmt not in _HEX:
            raise _Corrupt(f"object_format {_short(fmt)!r} is neither sha1 nor sha256")
        oid_re = _HEX[fmt]
        created = _str(doc, "created")
        if not _RFC3339_UTC.match(created) or _epoch(created) is None:
            raise _Corrupt(f"created {_short(created)!r} is not an RFC 3339 UTC time")
        head_target = doc["head_target"]
        if head_target is not None and (not isinstance(head_target, str) or not head_target):
            raise _Corrupt("head_target is neither null nor a ref name")
        head_oid = doc["head_oid"]
        if head_oid is not None and (not isinstance(head_oid, str) or not oid_re.match(head_oid)):
            raise _Corrupt(f"head_oid is neither null nor a {fmt} object id")
        refs = _str_map(doc, "refs")
        for name, oid in refs.items():
            if not name or not oid_re.match(oid):
                raise _Corrupt(f"ref {_short(name)!r}: {_short(oid)!r} is not a {fmt} object id")
        symrefs = _str_map(doc, "symrefs")
        for name, target in symrefs.items():
            if not name or not target:
                raise _Corrupt(f"symref {_short(name)!r} has an empty name or target")
        raw_files = doc["files"]
        if not isinstance(raw_files, dict):
            raise _Corrupt("files is not an object")
        files: dict[str, tuple[int, str]] = {}
        for p, v in raw_files.items():
            if (not isinstance(v, list) or len(v) != 2 or type(v[0]) is not int or v[0] < 0
                    or not isinstance(v[1], str) or not _HEX64.match(v[1])):
                raise _Corrupt(f"file {_short(p)!r}: {_short(repr(v))} is not [size, sha256 hex]")
            if not p or p.startswith("/") or ".." in p.split("/"):
                raise _Corrupt(f"file path {_short(p)!r} is not a safe relative path")
            files[p] = (v[0], v[1])
        counts = []
        for key in ("object_count", "pack_count"):
            v = doc[key]
            if type(v) is not int or v < 0:
                raise _Corrupt(f"{key} is not a non-negative integer")
            counts.append(v)
        return cls(SCHEMA, _str(doc, "tool_version"), created, fmt, head_target, head_oid,
                   refs, symrefs, files, counts[0], counts[1])

    def created_epoch(self) -> int | None:
        """``created`` as whole seconds since the epoch (the mtime of the members snapcheck adds to an
        archive); None when it is not an RFC 3339 UTC time."""
        return _epoch(self.created) if _RFC3339_UTC.match(self.created) else None


def _epoch(created: str) -> int | None:
    try:
        return int(datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp())
    except (ValueError, OverflowError):
        return None


class _Corrupt(Exception):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {_short(k)!r}")
        out[k] = v
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _short(s: str, limit: int = 80) -> str:
    return s if len(s) <= limit else s[:limit] + "..."


def _str(doc: dict[str, Any], key: str) -> str:
    v = doc[key]
    if not isinstance(v, str):
        raise _Corrupt(f"{key} is not a string")
    return v


def _str_map(doc: dict[str, Any], key: str) -> dict[str, str]:
    v = doc[key]
    if not isinstance(v, dict) or not all(isinstance(x, str) for x in v.values()):
        raise _Corrupt(f"{key} is not an object of strings")
    return dict(v)


class _Capped:
    """Collects findings, at most MAX_FINDINGS_PER_CODE per code, then one summary per code."""

    def __init__(self) -> None:
        self.items: list[Finding] = []
        self.over: dict[str, int] = {}
        self.count: dict[str, int] = {}

    def add(self, code: str, path: str, message: str) -> None:
        n = self.count.get(code, 0) + 1
        self.count[code] = n
        if n <= MAX_FINDINGS_PER_CODE:
            self.items.append(finding(code, path, message))
        else:
            self.over[code] = self.over.get(code, 0) + 1

    def result(self, manifest_path: str) -> list[Finding]:
        for code, n in self.over.items():
            self.items.append(finding(code, manifest_path, f"{n} more {code} finding(s) not listed one by one"))
        return self.items


def compare_manifest(
    m: Manifest,
    *,
    refs: dict[str, bytes],
    head_target: str | None,
    files_seen: dict[str, tuple[int, str | None]],
    manifest_path: str = MANIFEST_PATH,
) -> list[Finding]:
    """Compare a snapshot with its manifest.  *refs* maps every ref the snapshot holds (as git resolves
    them: loose over packed, symbolic refs resolved) to its raw object id; *head_target* is HEAD's
    target (``None`` when detached or unreadable); *files_seen* maps every regular file of the snapshot
    (repository-relative) to ``(size, sha256 hex or None when it was not hashed)``."""
    out = _Capped()
    for name in sorted(m.refs):
        want = m.refs[name]
        got = refs.get(name)
        if got is None:
            if name in m.symrefs:
                continue  # a symref the caller's ref list omits; its target is compared on its own
            out.add("manifestRefMissing", name,
                    f"{name}: recorded in the manifest at {want} but absent from the snapshot "
                    "(packed-refs cut at a record boundary, or a lost loose ref file); "
                    "git works and silently lacks this ref")
        elif got.hex() != want:
            out.add("manifestRefMismatch", name,
                    f"{name}: the snapshot has {got.hex()}, the manifest recorded {want}")
    for name in sorted(refs.keys() - m.refs.keys()):
        out.add("manifestExtraRef", name,
                f"{name}: in the snapshot at {refs[name].hex()} but not in the manifest")
    if head_target != m.head_target:
        out.add("manifestHeadMismatch", "HEAD",
                f"HEAD: points to {head_target or '(no branch)'}, the manifest recorded "
                f"{m.head_target or '(no branch)'}")
    for p in sorted(m.files):
        size, digest = m.files[p]
        seen = files_seen.get(p)
        if seen is None:
            out.add("manifestFileMissing", p,
                    f"{p}: recorded in the manifest ({size} bytes) but absent from the snapshot")
            continue
        got_size, got_digest = seen
        if got_size != size:
            out.add("manifestFileSizeMismatch", p,
                    f"{p}: {got_size} bytes in the snapshot, {size} bytes in the manifest "
                    f"({_delta(got_size, size)})")
        elif got_digest is not None and got_digest != digest:
            out.add("manifestFileDigestMismatch", p,
                    f"{p}: sha256 {got_digest} in the snapshot, {digest} in the manifest (same size, other bytes)")
    for p in sorted(files_seen.keys() - m.files.keys()):
        if p == MANIFEST_DIR or p.startswith(MANIFEST_DIR + "/"):
            continue
        out.add("manifestExtraFile", p, f"{p}: in the snapshot ({files_seen[p][0]} bytes) but not in the manifest")
    return out.result(manifest_path)


def _delta(got: int, want: int) -> str:
    d = got - want
    return f"{d} byte(s) too many" if d > 0 else f"{-d} byte(s) missing"
