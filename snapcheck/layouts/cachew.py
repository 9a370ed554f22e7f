"""block/cachew's cache layout in a bucket, and the rules an entry must follow.

Sources: ``/work/shared/reference/cachew-snapshots.md`` §1 (artifacts), §3 (archive layouts) and §4
(storage), which read cachew's ``internal/cache/s3.go`` and ``internal/strategy/git/snapshot.go``.

**Keys.** A cache key is 64 lower-case hex (sha256 of the cache key string); its data object is
``<namespace>/<hex[0:2]>/<hex>`` with a namespace matching ``^[a-zA-Z0-9][a-zA-Z0-9_-]*$`` (the git
strategy uses ``git``), and its *companion* is ``<data key>.meta``, a JSON document
``{"headers": {<Name>: [<value>, …]}, "expires_at": "<RFC 3339>", "tag": "<32 hex>"}``.

**Data-object user metadata** (S3 returns the names lower-cased): ``tag`` (16 random bytes as hex,
the same as the companion's ``tag`` since cachew #369) and ``headers`` (JSON of the HTTP headers cachew
serves: ``Content-Type``, ``Content-Disposition``, ``Etag``, for workstation snapshots
``X-Cachew-Snapshot-Commit``).  Header names are Go-canonical (``Etag``); they are looked up here
without regard to case.

**What the git strategy stores** (§1): mirror snapshots (``<repo>.tar.zst``), workstation snapshots
(``base.tar.zst`` + ``X-Cachew-Snapshot-Commit``, a non-bare clone), LFS snapshots (``lfs.tar.zst``,
members ``lfs/objects/<oid[0:2]>/<oid[2:4]>/<oid>`` with oid = sha256 of the content), delta
bundles (``application/x-git-bundle``).  Other namespaces hold whatever ``cachew save`` or a
caching strategy put there.

**The rules** (each a finding code registered below):

1. the companion exists.  cachew writes the data object first and the companion second, and its
   reader (``statAndHeaders``) reports a *miss* while the data object is younger than 15 minutes
   (``s3CompanionGrace``) and has no companion, or when its ``Headers`` carry no ETag; after the
   grace it serves the object with the object's own metadata (#390).  So a missing companion is
   ``info`` inside the grace (a write in progress) and a ``warning`` after it: the bytes are served
   (or, without an ETag, the entry is dead weight that is never served nor expired), but nothing is
   wrong with the snapshot itself, so it is not a reason to reject it (``cachewCompanionMissing``);
2. the companion is a JSON object of the documented shape (``cachewCompanionInvalid``), and the data
   object's ``headers`` metadata is JSON of a header map (``cachewHeadersInvalid``): cachew fails to
   open an entry whose metadata it cannot parse;
3. the data object's ``tag`` equals the companion's ``tag`` (``cachewTagMismatch``): unequal tags
   mean two writers interleaved (#369) and the companion (ETag, expiry) describes another write.
   Inside the grace that is a write in progress (``info``), after it an ``error``;
4. with equal tags, the ETag in both header maps is the same (``cachewEtagMismatch``, a warning:
   one of them was rewritten outside cachew);
5. ``expires_at`` has not passed (``cachewExpired``, info: cachew deletes the entry on its next
   read, so a restore misses; it is not damage);
6. the declared ``Content-Type`` agrees with the bytes: ``application/zstd`` must start with a zstd
   frame (cachew's clients run ``zstd -dc``), ``application/x-git-bundle`` with a bundle signature
   (``cachewContentTypeMismatch``);
7. ``X-Cachew-Snapshot-Commit`` is the commit the archive's HEAD resolves to
   (``cachewSnapshotCommitMismatch``): workstations restore it and then fast-forward from it;
8. an LFS object's sha256 equals the oid in its path (``lfsObjectHashMismatch``) and it sits at
   ``lfs/objects/<oid[0:2]>/<oid[2:4]>/<oid>`` (``lfsObjectMisplaced``: git-lfs would not find it).

A companion whose data object does not exist is reported as ``cachewCompanionOrphan`` (info).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from ..report import Finding, Severity, finding, register

register(
    "cachew",
    ("cachewCompanionMissing", Severity.WARNING,
     "A cachew data object has no '<key>.meta' companion.  Within cachew's 15-minute grace after the data "
     "object was written this is a write in progress (reported as info); after it cachew serves the object "
     "with its own metadata (#390), or never, when its Headers carry no ETag.",
     "n/a (cachew): a miss during the grace, then served without a companion; its expiry cannot be refreshed."),
    ("cachewCompanionInvalid", Severity.ERROR,
     "The '<key>.meta' companion is not the JSON object cachew writes ({\"headers\": {…}, \"expires_at\": …, "
     "\"tag\": …}).",
     "n/a (cachew): opening the entry fails while decoding its companion."),
    ("cachewCompanionOrphan", Severity.INFO,
     "A '<key>.meta' companion whose data object does not exist.",
     "n/a (cachew): a miss; the companion is a leftover."),
    ("cachewHeadersInvalid", Severity.ERROR,
     "The data object's 'headers' user metadata is not JSON of a header map (name → list of values).",
     "n/a (cachew): opening the entry fails while decoding its headers."),
    ("cachewTagMismatch", Severity.ERROR,
     "The data object's 'tag' metadata differs from its companion's 'tag': two writers interleaved (cachew #369) "
     "and the companion describes another write.  Within the 15-minute grace it is a write in progress (info).",
     "n/a (cachew): a miss within the grace; afterwards served with the object's own metadata (#390)."),
    ("cachewEtagMismatch", Severity.WARNING,
     "The data object and its companion carry the same tag but different ETags in their headers: one of them "
     "was rewritten outside cachew.",
     "n/a (cachew): clients pinning the served ETag may see the entry change under them."),
    ("cachewExpired", Severity.INFO,
     "The companion's expires_at has passed: cachew deletes the entry on its next read, so restores miss.",
     "n/a (cachew): the entry is a miss and is deleted when read."),
    ("cachewContentTypeMismatch", Severity.ERROR,
     "The Content-Type cachew serves for the entry (application/zstd, application/x-git-bundle) does not match "
     "the object's first bytes.",
     "cachew's clients run `zstd -dc` (or `git fetch <bundle>`) on it: zstd: unknown header / "
     "git: does not look like a v2 or v3 bundle file."),
    ("cachewSnapshotCommitMismatch", Severity.ERROR,
     "X-Cachew-Snapshot-Commit is not the commit the archive's HEAD resolves to.",
     "n/a: a workstation restore checks out another commit than the one advertised and its fast-forward "
     "from a bundle based on the advertised commit fails."),
    ("lfsObjectHashMismatch", Severity.ERROR,
     "An LFS object's sha256 differs from the oid its path names.",
     "git-lfs: Error downloading object … (expected OID …, got …); git lfs fsck: corruptObject."),
    ("lfsObjectMisplaced", Severity.WARNING,
     "A file under lfs/objects/ is not at lfs/objects/<oid[0:2]>/<oid[2:4]>/<oid>.",
     "git-lfs does not find it there and downloads the object again."),
)

NAMESPACE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]*$")
_DATA_KEY = re.compile(r"^(?P<ns>[a-zA-Z0-9][a-zA-Z0-9_-]*)/(?P<h2>[0-9a-f]{2})/(?P<hex>[0-9a-f]{64})$")
COMPANION_SUFFIX = ".meta"
COMPANION_GRACE = timedelta(minutes=15)  # cachew's s3CompanionGrace
GIT_NAMESPACE = "git"
CONTENT_TYPE_ZSTD = "application/zstd"
CONTENT_TYPE_BUNDLE = "application/x-git-bundle"
COMMIT_HEADER = "X-Cachew-Snapshot-Commit"
_HEX_COMMIT = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$"
)
_LFS_PATH = re.compile(r"^(?:.*/)?lfs/objects/(?P<a>[^/]+)/(?P<b>[^/]+)/(?P<oid>[^/]+)$")
_OID = re.compile(r"^[0-9a-f]{64}$")
_FILENAME = re.compile(r"""filename\s*=\s*"?([^";]+)"?""", re.IGNORECASE)

Headers = dict[str, list[str]]

__all__ = [
    "COMMIT_HEADER",
    "COMPANION_GRACE",
    "COMPANION_SUFFIX",
    "CONTENT_TYPE_BUNDLE",
    "CONTENT_TYPE_ZSTD",
    "CachewKey",
    "Companion",
    "EntryCheck",
    "check_content_type",
    "check_entry",
    "check_lfs_object",
    "check_snapshot_commit",
    "classify",
    "companion_data_key",
    "get_header",
    "lfs_oid",
    "parse_companion",
    "parse_data_key",
    "parse_headers",
    "parse_rfc3339",
]


@dataclass(frozen=True)
class CachewKey:
    """A data object's key: ``<namespace>/<hex[0:2]>/<hex>``."""

    key: str
    namespace: str
    hex: str

    @property
    def companion(self) -> str:
        return self.key + COMPANION_SUFFIX


def parse_data_key(key: str) -> CachewKey | None:
    """The :class:`CachewKey` of a data object's key, or None when *key* is not one."""
    m = _DATA_KEY.match(key)
    if m is None or m.group("h2") != m.group("hex")[:2]:
        return None
    return CachewKey(key, m.group("ns"), m.group("hex"))


def companion_data_key(key: str) -> str | None:
    """The data key a companion key (``<data key>.meta``) belongs to, or None."""
    if not key.endswith(COMPANION_SUFFIX):
        return None
    data = key[: -len(COMPANION_SUFFIX)]
    return data if parse_data_key(data) is not None else None


def parse_rfc3339(text: str) -> datetime | None:
    """An RFC 3339 timestamp (Go's RFC3339Nano: up to 9 fraction digits) as an aware datetime."""
    m = _RFC3339.match(text)
    if m is None:
        return None
    y, mo, d, h, mi, s, frac, z, sign, oh, om = m.groups()
    try:
        micro = int((frac or "0").ljust(6, "0")[:6])
        if z:
            tz = UTC
        else:
            off = timedelta(hours=int(oh), minutes=int(om))
            tz = timezone(-off if sign == "-" else off)
        return datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), micro, tzinfo=tz)
    except ValueError:
        return None


def _header_map(doc: Any) -> Headers | None:
    if not isinstance(doc, dict):
        return None
    out: Headers = {}
    for k, v in doc.items():
        if not isinstance(k, str):
            return None
        if isinstance(v, str):  # tolerated: a single value
            v = [v]
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            return None
        out[k] = list(v)
    return out


def get_header(headers: Headers | None, name: str) -> str | None:
    """The first value of header *name* (case-insensitive), or None."""
    if not headers:
        return None
    low = name.lower()
    for k, v in headers.items():
        if k.lower() == low and v:
            return v[0]
    return None


def parse_headers(value: str | None, path: str) -> tuple[Headers | None, list[Finding]]:
    """The data object's ``headers`` user metadata (JSON), or None when absent or invalid."""
    if value is None:
        return None, []
    try:
        doc = json.loads(value)
    except ValueError as e:
        return None, [finding("cachewHeadersInvalid", path, f"{path}: the 'headers' metadata is not JSON ({e})")]
    headers = _header_map(doc)
    if headers is None:
        return None, [finding("cachewHeadersInvalid", path,
                              f"{path}: the 'headers' metadata is not a map of header names to lists of values")]
    return headers, []


@dataclass(frozen=True)
class Companion:
    headers: Headers
    expires_at: datetime | None  # None: absent, or Go's zero time (no expiry)
    tag: str | None


def parse_companion(data: bytes, path: str) -> tuple[Companion | None, list[Finding]]:
    """A companion document, or None and a ``cachewCompanionInvalid`` finding."""

    def bad(why: str) -> tuple[Companion | None, list[Finding]]:
        return None, [finding("cachewCompanionInvalid", path, f"{path}: {why}")]

    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        return bad(f"not JSON ({e})")
    if not isinstance(doc, dict):
        return bad("not a JSON object")
    raw_headers = doc.get("headers", {})
    headers = _header_map(raw_headers if raw_headers is not None else {})
    if headers is None:
        return bad("'headers' is not a map of header names to lists of values")
    tag = doc.get("tag")
    if tag is not None and not isinstance(tag, str):
        return bad("'tag' is not a string")
    expires: datetime | None = None
    raw_exp = doc.get("expires_at")
    if raw_exp is not None:
        if not isinstance(raw_exp, str):
            return bad("'expires_at' is not a string")
        expires = parse_rfc3339(raw_exp)
        if expires is None:
            return bad(f"'expires_at' {raw_exp[:60]!r} is not an RFC 3339 time")
        if expires.year == 1:  # Go's zero time: no expiry recorded
            expires = None
    return Companion(headers, expires, tag or None), []


def classify(key: CachewKey, headers: Headers | None) -> str | None:
    """What the entry holds, from its headers: ``mirror``, ``workstation``, ``lfs``, ``bundle``,
    ``archive`` (a ``cachew save`` of any directory) — or None when the headers do not say."""
    ctype = (get_header(headers, "Content-Type") or "").split(";")[0].strip().lower()
    if get_header(headers, COMMIT_HEADER) is not None:
        return "workstation"
    if ctype == CONTENT_TYPE_BUNDLE:
        return "bundle"
    disposition = get_header(headers, "Content-Disposition") or ""
    m = _FILENAME.search(disposition)
    filename = m.group(1).strip() if m else ""
    if key.namespace == GIT_NAMESPACE:
        if filename == "lfs.tar.zst":
            return "lfs"
        if filename == "base.tar.zst":
            return "workstation"
        if ctype == CONTENT_TYPE_ZSTD or filename.endswith(".tar.zst"):
            return "mirror"
        return None
    if ctype == CONTENT_TYPE_ZSTD or filename.endswith(".tar.zst"):
        return "archive"
    return None


@dataclass
class EntryCheck:
    """The result of :func:`check_entry`."""

    key: CachewKey
    headers: Headers | None
    companion: Companion | None
    kind: str | None  # classify() of the headers (the data object's, else the companion's)
    expired: bool
    findings: list[Finding] = field(default_factory=list)


def check_entry(key: CachewKey, *, metadata: dict[str, str], companion_body: bytes | None,
                last_modified: datetime | None, now: datetime, path: str | None = None) -> EntryCheck:  # fmt: skip
    """Rules 1-5 for one data object: its user *metadata* (lower-case names), the body of its
    companion (None: there is none), when it was written and the time to judge expiry and grace at."""
    where = path or key.key
    findings: list[Finding] = []
    headers, hf = parse_headers(metadata.get("headers"), where)
    findings += hf
    within_grace = last_modified is not None and now - last_modified < COMPANION_GRACE
    age = _age(now, last_modified)
    companion: Companion | None = None
    if companion_body is None:
        if within_grace:
            findings.append(finding("cachewCompanionMissing", where,
                                    f"{where}: no {key.companion} yet; the data object is {age} old, within "
                                    f"cachew's 15-minute grace: a write in progress (cachew reports a miss)",
                                    severity=Severity.INFO))
        else:
            served = ("cachew serves it with its own metadata (#390)" if get_header(headers, "Etag")
                      else "its headers carry no ETag, so cachew reports a miss for it forever")
            findings.append(finding("cachewCompanionMissing", where,
                                    f"{where}: no companion {key.companion} ({age} after the data object was "
                                    f"written); {served}; its expiry cannot be refreshed"))
    else:
        companion, cf = parse_companion(companion_body, where + COMPANION_SUFFIX)
        findings += cf
    expired = False
    if companion is not None:
        data_tag = metadata.get("tag") or None
        if data_tag != companion.tag:
            msg = (f"{where}: data object tag {data_tag or '(none)'} but companion tag "
                   f"{companion.tag or '(none)'}")
            if within_grace:
                findings.append(finding("cachewTagMismatch", where,
                                        msg + f"; the data object is {age} old, within cachew's 15-minute grace: "
                                              "a write in progress", severity=Severity.INFO))
            else:
                findings.append(finding("cachewTagMismatch", where,
                                        msg + ": two writers interleaved (cachew #369); the companion's ETag and "
                                              "expiry describe another write"))
        else:
            e1, e2 = get_header(headers, "Etag"), get_header(companion.headers, "Etag")
            if e1 is not None and e2 is not None and e1 != e2:
                findings.append(finding("cachewEtagMismatch", where,
                                        f"{where}: same tag but ETag {e1} in the object's headers and {e2} in "
                                        f"its companion"))
        if companion.expires_at is not None and companion.expires_at <= now:
            expired = True
            findings.append(finding("cachewExpired", where,
                                    f"{where}: expired at {companion.expires_at.isoformat()} "
                                    f"({_age(now, companion.expires_at)} ago); cachew deletes it on its next read"))
    if headers is None and companion is not None and companion.headers:
        kind = classify(key, companion.headers)
    else:
        kind = classify(key, headers)
    return EntryCheck(key, headers, companion, kind, expired, findings)


def check_content_type(headers: Headers | None, content: str, path: str) -> list[Finding]:
    """Rule 6: *content* is what the first bytes are (``zstd``, ``gzip``, ``tar``, ``bundle``,
    ``empty`` or ``unknown``)."""
    ctype = (get_header(headers, "Content-Type") or "").split(";")[0].strip().lower()
    want = {CONTENT_TYPE_ZSTD: "zstd", CONTENT_TYPE_BUNDLE: "bundle"}.get(ctype)
    if want is None or content == want:
        return []
    what = {"empty": "no bytes at all", "unknown": "bytes of no archive format"}.get(content, f"a {content} stream")
    tool = "`zstd -dc` fails: unknown header" if want == "zstd" else "git: does not look like a v2 or v3 bundle file"
    return [finding("cachewContentTypeMismatch", path,
                    f"{path}: served as {ctype} but the object holds {what}; {tool}")]


def check_snapshot_commit(headers: Headers | None, head: str | None, path: str) -> list[Finding]:
    """Rule 7: *head* is the hex commit the archive's HEAD resolves to (None: it does not resolve)."""
    value = get_header(headers, COMMIT_HEADER)
    if value is None:
        return []
    v = value.strip()
    if not _HEX_COMMIT.match(v):
        return [finding("cachewSnapshotCommitMismatch", path,
                        f"{path}: {COMMIT_HEADER} is {value[:80]!r}, not a commit id")]
    if head is None:
        return [finding("cachewSnapshotCommitMismatch", path,
                        f"{path}: {COMMIT_HEADER} is {v} but HEAD does not resolve in the archive")]
    if head != v:
        return [finding("cachewSnapshotCommitMismatch", path,
                        f"{path}: {COMMIT_HEADER} is {v} but HEAD resolves to {head} in the archive")]
    return []


def lfs_oid(member: str) -> tuple[str, bool] | None:
    """For a member under ``lfs/objects/``: ``(oid, placed right)``; None for anything else.  The oid
    is the file name (None too when the name is not 64 lower-case hex, e.g. a temp file)."""
    m = _LFS_PATH.match(member)
    if m is None or not _OID.match(m.group("oid")):
        return None
    oid = m.group("oid")
    return oid, (m.group("a") == oid[:2] and m.group("b") == oid[2:4])


def check_lfs_object(member: str, sha256_hex: str, path: str) -> list[Finding]:
    """Rule 8 for one member of an LFS snapshot, given the sha256 of its content."""
    got = lfs_oid(member)
    if got is None:
        return []
    oid, placed = got
    out: list[Finding] = []
    if not placed:
        out.append(finding("lfsObjectMisplaced", path,
                           f"{path}: {member} is not at lfs/objects/{oid[:2]}/{oid[2:4]}/{oid}"))
    if sha256_hex != oid:
        out.append(finding("lfsObjectHashMismatch", path,
                           f"{path}: {member} hashes to {sha256_hex}, not its oid; git-lfs: expected OID {oid}, "
                           f"got {sha256_hex}"))
    return out


def _age(now: datetime, then: datetime | None) -> str:
    if then is None:
        return "an unknown time"
    secs = int(abs((now - then).total_seconds()))
    if secs < 120:
        return f"{secs} s"
    if secs < 7200:
        return f"{secs // 60} min"
    if secs < 172800:
        return f"{secs // 3600} h"
    return f"{secs // 86400} days"
