"""Audit sweep: verify every snapshot in a bucket (or a local directory standing in for one).

    storage list (or a shared listing) ──► filter (--since, --shard, resume) ──► workers: read + verify each
                                                                                    │ (threads, processes, Dask)
                              results (one per object, as it finishes) ◄── quarantine (driver) ◄──┘

:func:`audit` yields one :class:`AuditResult` per listed object, in the order they finish.  What each
object is, is decided by its content and metadata, never by its name alone:

1. a cachew **companion** (``<namespace>/<hh>/<hex64>.meta``) is not an archive: ``skipped``
   (``cachewCompanionOrphan`` when its data object is gone);
2. the first bytes decide (:func:`snapcheck.sources.compression.detect`): a git **bundle** signature
   (header + pack checked by :mod:`snapcheck.gitformats.bundle`), zstd, gzip or tar (an **archive**),
   anything else is **not an archive** (``auditNotAnArchive``, info, verdict ``skipped``).  A zstd or
   gzip stream whose first decompressed block is not a tar header is not an archive either, unless
   the object's metadata declares it a snapshot;
3. the metadata says whose it is: **snapcheck**'s own objects (``snapcheck-version`` …) are verified
   and their ``snapcheck-sha256`` must be the sha256 of the bytes read (computed while streaming),
   their ``snapcheck-refs``/``-objects``/``-head`` must agree with the archive and the manifest must be
   there; **cachew** entries (:mod:`snapcheck.layouts.cachew`: key shape, companion, tag, headers)
   are verified as a mirror, a workstation clone (``X-Cachew-Snapshot-Commit`` must be HEAD), an LFS
   snapshot (archive layer + every object's sha256), a bundle, or — in other namespaces — an archive
   of any directory (archive layer only); anything else that holds a mirror is a plain **tar**.  A
   complete archive that holds no git repository and that no metadata declares a snapshot is not
   judged (``auditNotASnapshot``).

Verdicts: ``sound``, ``corrupt`` (an error finding; warnings too with ``strict``), ``incomplete``
(the bytes could not all be read: network, permissions — never ``corrupt``), ``skipped`` (not a
snapshot, resumed objects aside).  Quarantine acts on ``corrupt`` only, in the driver, and only
while the object still has the ETag that was judged.

Parallelism: threads by default.  The work per object is zstd decompression, zlib inflation and
hashing, which release the GIL, interleaved with Python parsing, which does not.  Measured on the
2-core development machine (docs/audit.md), two threads beat one and beat two or four spawned
processes at both ``standard`` and ``full`` (processes pay for spawning and importing; threads share
one S3 client), so ``backend="thread"``.  ``backend="process"`` is there for many-core hosts; Dask
(``dask_scheduler``) spreads very uneven archive sizes over a cluster.  Listing, quarantine and
results stay in the driver; workers only read and verify.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import contextlib
import hashlib
import io
import json
import os
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO, cast

from .errors import SnapcheckError, SourceError, UsageError
from .gitformats.bundle import BundleStreamChecker, is_bundle
from .layouts import cachew
from .options import VerifyOptions
from .report import ExitCode, Finding, Level, Report, Severity, finding, register
from .sources.base import EntryKind
from .sources.compression import detect
from .storage import ObjectChanged, ObjectInfo, ObjectNotFound, Storage, open_location

register(
    "audit",
    ("auditNotAnArchive", Severity.INFO,
     "The object is neither a tar archive (plain, zstd or gzip) nor a git bundle: not a snapshot, not judged.",
     "n/a"),
    ("auditNotASnapshot", Severity.INFO,
     "A complete archive that holds no git repository, and whose metadata does not declare it a snapshot: "
     "not judged.",
     "n/a: after extraction, git: fatal: not a git repository."),
    ("auditObjectGone", Severity.INFO,
     "The object was listed but no longer exists when it was to be read (deleted or expired meanwhile).",
     "n/a"),
    ("snapcheckSha256Mismatch", Severity.ERROR,
     "The sha256 in the object's snapcheck-sha256 metadata differs from the sha256 of its bytes: the object "
     "changed after snapcheck verified and uploaded it.",
     "n/a: git may or may not notice, depending on which bytes changed."),
    ("snapcheckMetadataMismatch", Severity.ERROR,
     "The object's snapcheck-refs, snapcheck-objects or snapcheck-head metadata disagrees with the archive.",
     "n/a: clients trusting the metadata expect another snapshot."),
    ("snapcheckManifestMissing", Severity.ERROR,
     "The object carries snapcheck's metadata but its archive holds no .snapcheck/manifest.json (snapcheck "
     "always writes one, as the last member).",
     "n/a: git does not read the manifest; its absence means the archive is not what snapcheck wrote."),
)

__all__ = [
    "LAYOUTS",
    "VERDICTS",
    "AuditOptions",
    "AuditResult",
    "AuditSummary",
    "audit",
    "audit_object",
    "in_shard",
    "list_objects",
    "load_results",
    "parse_since",
    "quarantine",
    "read_listing",
    "resolve_shard",
    "write_atomically",
    "write_listing",
]

VERDICTS = ("sound", "corrupt", "incomplete", "skipped")
LAYOUTS = ("snapcheck", "cachew-mirror", "cachew-workstation", "cachew-lfs", "cachew-bundle", "cachew-archive",
           "cachew-other", "cachew-companion", "tar", "bundle", "archive", "other", "unknown")
HEAD_BYTES = 256 << 10  # enough compressed bytes to decompress the first tar header of any stream
COMPANION_MAX = 1 << 20  # companions are a few hundred bytes
CHUNK = 1 << 20
SNAPCHECK_META = "snapcheck-"
LISTING_FORMAT = 1
STATUS_TAG = "snapcheck-status"
FINDING_TAG = "snapcheck-finding"
_ARCHIVES = ("zstd", "gzip", "tar")


# --------------------------------------------------------------------------------------------------
# options and results


@dataclass(frozen=True)
class AuditOptions:
    """What an audit does.  ``level`` (when given) overrides ``verify.level``; afterwards both agree.

    ``quarantine``: ``"tag"`` or ``"move:PREFIX"`` (or None).  ``shard``: ``(index, count)``.
    ``listing``: a file (or ``s3://`` object) written by :func:`write_listing`, read instead of
    listing the bucket.  ``resume``: a results file; ``(key, etag)`` pairs it judged sound — or
    found not to be a snapshot at all (``skipped``; an object gone meanwhile excepted) — are not
    read again: an object's bytes do not change while its ETag stays.  ``now``: the time cachew's expiry and grace are judged at (default: the clock).
    ``backend``: ``"thread"`` or ``"process"``; ``dask_scheduler`` (an address) runs the objects on a
    Dask cluster instead.  ``max_inflight``: objects handed to workers ahead of the results (default
    ``2 * jobs``)."""

    verify: VerifyOptions = field(default_factory=VerifyOptions)
    level: Level | None = None
    jobs: int = 1
    backend: str = "thread"
    resume: str | None = None
    since: datetime | None = None
    quarantine: str | None = None
    shard: tuple[int, int] | None = None
    listing: str | None = None
    endpoint_url: str | None = None
    dask_scheduler: str | None = None
    now: datetime | None = None
    max_inflight: int | None = None

    def __post_init__(self) -> None:
        if self.level is not None and self.level != self.verify.level:
            object.__setattr__(self, "verify", replace(self.verify, level=Level(self.level)))
        object.__setattr__(self, "level", self.verify.level)
        if self.jobs < 1:
            raise UsageError(f"jobs must be at least 1, not {self.jobs}")
        if self.backend not in ("thread", "process"):
            raise UsageError(f"backend must be 'thread' or 'process', not {self.backend!r}")
        if self.quarantine is not None:
            q = self.quarantine
            if q != "tag" and not (q.startswith("move:") and q[5:].strip("/")):
                raise UsageError(f"quarantine must be 'tag' or 'move:PREFIX', not {q!r}")
        if self.shard is not None:
            i, n = self.shard
            if not (n >= 1 and 0 <= i < n):
                raise UsageError(f"shard {i}/{n}: need 0 <= I < N")
        if self.since is not None and self.since.tzinfo is None:
            object.__setattr__(self, "since", self.since.replace(tzinfo=UTC))

    @property
    def quarantine_prefix(self) -> str | None:
        if self.quarantine is None or not self.quarantine.startswith("move:"):
            return None
        p = self.quarantine[5:].lstrip("/")
        return p if p.endswith("/") else p + "/"


@dataclass(frozen=True)
class AuditResult:
    """One object's verdict.  ``quarantine``: what was done (``tagged``, ``moved:<key>``,
    ``failed: …``, ``not done: …``) or None.  ``resumed``: judged by an earlier run (same key and
    ETag) sound or not a snapshot, not read again; the earlier result is carried forward."""

    key: str
    etag: str
    size: int
    layout: str
    verdict: str
    findings: tuple[Finding, ...] = ()
    duration: float = 0.0
    bytes_read: int = 0
    last_modified: str | None = None
    refs: int | None = None
    objects: int | None = None
    head: str | None = None
    quarantine: str | None = None
    resumed: bool = False

    @property
    def codes(self) -> list[str]:
        return sorted({f.code for f in self.findings})

    @property
    def bytes_per_s(self) -> float:
        return self.bytes_read / self.duration if self.duration > 0 else 0.0

    @property
    def first_error(self) -> Finding | None:
        for f in self.findings:
            if f.severity is Severity.ERROR:
                return f
        return next((f for f in self.findings if f.severity is Severity.WARNING), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key, "etag": self.etag, "size": self.size, "last_modified": self.last_modified,
            "layout": self.layout, "verdict": self.verdict, "codes": self.codes,
            "findings": [f.to_dict() for f in self.findings],
            "duration_s": round(self.duration, 4), "bytes_read": self.bytes_read,
            "bytes_per_s": round(self.bytes_per_s, 1),
            "refs": self.refs, "objects": self.objects, "head": self.head,
            "quarantine": self.quarantine, "resumed": self.resumed,
        }  # fmt: skip

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> AuditResult:
        findings = tuple(
            Finding(str(f["code"]), Severity(f["severity"]), str(f.get("path", "")), str(f.get("message", "")))
            for f in doc.get("findings") or ()
        )
        return cls(
            key=str(doc["key"]), etag=str(doc["etag"]), size=int(doc.get("size") or 0),
            layout=str(doc.get("layout") or "unknown"), verdict=str(doc["verdict"]), findings=findings,
            duration=float(doc.get("duration_s") or 0.0), bytes_read=int(doc.get("bytes_read") or 0),
            last_modified=doc.get("last_modified"), refs=doc.get("refs"), objects=doc.get("objects"),
            head=doc.get("head"), quarantine=doc.get("quarantine"), resumed=bool(doc.get("resumed")),
        )  # fmt: skip


def _iso(t: datetime | None) -> str | None:
    if t is None:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_time(s: Any) -> datetime | None:
    if not isinstance(s, str) or not s:
        return None
    return cachew.parse_rfc3339(s)


# --------------------------------------------------------------------------------------------------
# shards, --since, listings, resume


def in_shard(key: str, shard: tuple[int, int] | None) -> bool:
    """Whether *key* belongs to shard ``(index, count)``: blake2b(key) mod count == index."""
    if shard is None:
        return True
    i, n = shard
    h = hashlib.blake2b(key.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(h, "big") % n == i


def resolve_shard(spec: str | None, environ: Mapping[str, str] | None = None) -> tuple[int, int] | None:
    """``(index, count)`` from ``I/N``, or from ``N`` with the index from ``JOB_COMPLETION_INDEX``
    (Kubernetes Indexed Job) or ``AWS_BATCH_JOB_ARRAY_INDEX``; without a spec, from AWS Batch's
    ``AWS_BATCH_JOB_ARRAY_INDEX`` + ``AWS_BATCH_JOB_ARRAY_SIZE``.  A Kubernetes index without a count
    is a usage error (the Job's completions are not in the environment)."""
    env = os.environ if environ is None else environ

    def num(text: str, what: str) -> int:
        if not re.fullmatch(r"\d+", text.strip()):
            raise UsageError(f"{what} must be a non-negative integer, not {text!r}")
        return int(text)

    def checked(i: int, n: int) -> tuple[int, int]:
        if n < 1 or not 0 <= i < n:
            raise UsageError(f"shard {i}/{n}: need N >= 1 and 0 <= I < N")
        return i, n

    env_index = env.get("JOB_COMPLETION_INDEX") or env.get("AWS_BATCH_JOB_ARRAY_INDEX")
    if spec is not None and spec.strip():
        s = spec.strip()
        if "/" in s:
            a, _, b = s.partition("/")
            return checked(num(a, "shard index"), num(b, "shard count"))
        n = num(s, "shard count")
        if env_index is None:
            raise UsageError(f"--shard {s}: no shard index (JOB_COMPLETION_INDEX or AWS_BATCH_JOB_ARRAY_INDEX); "
                             f"give it as I/{s}")
        return checked(num(env_index, "the shard index from the environment"), n)
    batch_i, batch_n = env.get("AWS_BATCH_JOB_ARRAY_INDEX"), env.get("AWS_BATCH_JOB_ARRAY_SIZE")
    if batch_i is not None and batch_n is not None:
        return checked(num(batch_i, "AWS_BATCH_JOB_ARRAY_INDEX"), num(batch_n, "AWS_BATCH_JOB_ARRAY_SIZE"))
    if env.get("JOB_COMPLETION_INDEX") is not None:
        raise UsageError("JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job) but no shard count: pass "
                         "--shard N with the Job's completions (or --shard 0/1 to audit everything)")
    return None


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``--since``: an RFC 3339 time, a date (``2026-07-01``, midnight UTC), or an age such as
    ``36h``, ``7d``, ``90m`` (s, m, h, d, w) before *now*."""
    t = text.strip()
    m = _DURATION.match(t)
    if m:
        unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]
        return (now or datetime.now(UTC)) - timedelta(seconds=float(m.group(1)) * unit)
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", t):
        t += "T00:00:00Z"
    parsed = cachew.parse_rfc3339(t) or cachew.parse_rfc3339(t + "Z")
    if parsed is None:
        raise UsageError(f"--since {text!r}: not a time (2026-07-01, 2026-07-01T12:00:00Z) nor an age (36h, 7d)")
    return parsed


def _open_storage(location: str, endpoint_url: str | None) -> tuple[Storage, str]:
    return open_location(location, endpoint_url=endpoint_url)


def _read_text(location: str, endpoint_url: str | None, *, missing_ok: bool = False) -> Iterator[str]:
    """Lines of a local file or an ``s3://`` object (none when it is absent and *missing_ok*)."""
    if location.startswith("s3://"):
        storage, key = _open_storage(location, endpoint_url)
        try:
            stream, _ = storage.open_read(key)
        except ObjectNotFound:
            if missing_ok:
                return
            raise
        with stream:
            wrapper = io.TextIOWrapper(stream, encoding="utf-8", errors="replace")
            yield from wrapper
        return
    try:
        with open(location, encoding="utf-8", errors="replace") as f:
            yield from f
    except FileNotFoundError:
        if missing_ok:
            return
        raise UsageError(f"{location}: no such file") from None
    except OSError as e:
        raise SourceError(f"{location}: {e.strerror or e}") from e


def write_listing(objects: Iterable[ObjectInfo], out: Any, *, location: str) -> int:
    """Write a listing (JSON lines: a header, one ``{key, etag, size, last_modified}`` per object, an
    end record with the count) to the text stream *out*; returns the count.  A listing without its
    end record is refused by :func:`read_listing` (a cut listing would silently drop objects)."""
    out.write(json.dumps({"snapcheck_listing": LISTING_FORMAT, "location": location,
                          "created": _iso(datetime.now(UTC))}) + "\n")  # fmt: skip
    n = 0
    for o in objects:
        out.write(json.dumps({"key": o.key, "etag": o.etag, "size": o.size,
                              "last_modified": _iso(o.last_modified)}) + "\n")  # fmt: skip
        n += 1
    out.write(json.dumps({"snapcheck_listing_end": n}) + "\n")
    return n


def read_listing(location: str, *, endpoint_url: str | None = None, expect_location: str | None = None,
                 ) -> Iterator[ObjectInfo]:  # fmt: skip
    """The objects of a listing written by :func:`write_listing` (see there).  Raises
    :class:`SourceError` for a cut or malformed listing and :class:`UsageError` when it lists
    another location than *expect_location*."""
    header_seen = False
    n = 0
    for lineno, line in enumerate(_read_text(location, endpoint_url), 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except ValueError as e:
            raise SourceError(f"{location}:{lineno}: not a JSON line ({e})") from e
        if not isinstance(doc, dict):
            raise SourceError(f"{location}:{lineno}: not a JSON object")
        if not header_seen:
            if doc.get("snapcheck_listing") != LISTING_FORMAT:
                raise SourceError(f"{location}: not a snapcheck listing (write one with --list-only)")
            if expect_location is not None and doc.get("location") != expect_location:
                raise UsageError(f"{location} lists {doc.get('location')!r}, not {expect_location!r}")
            header_seen = True
            continue
        if "snapcheck_listing_end" in doc:
            if doc["snapcheck_listing_end"] != n:
                raise SourceError(f"{location}: the end record says {doc['snapcheck_listing_end']} objects, "
                                  f"the listing holds {n}")
            return
        try:
            info = ObjectInfo(key=str(doc["key"]), size=int(doc["size"]), etag=str(doc["etag"]),
                              last_modified=_parse_time(doc.get("last_modified")))  # fmt: skip
        except (KeyError, TypeError, ValueError) as e:
            raise SourceError(f"{location}:{lineno}: not a listing record ({e})") from e
        n += 1
        yield info
    raise SourceError(f"{location}: the listing ends without its end record after {n} objects "
                      f"(cut while written?); write it again with --list-only")


def list_objects(location: str, *, endpoint_url: str | None = None, storage: Storage | None = None,
                 ) -> tuple[Iterator[ObjectInfo], str]:  # fmt: skip
    """``(objects, description)`` of everything under *location* (a bucket prefix or a local
    directory); the description is what a listing records and checks."""
    st, prefix = (storage, _prefix_of(location)) if storage is not None else _open_storage(location, endpoint_url)
    return st.list(prefix), st.describe(prefix)


def _prefix_of(location: str) -> str:
    if location.startswith("s3://"):
        return location[5:].partition("/")[2]
    return ""


def load_results(location: str, *, endpoint_url: str | None = None) -> dict[tuple[str, str], AuditResult]:
    """The results of earlier runs (JSON lines, as the CLI writes them), by ``(key, etag)``; the last
    line for a pair wins.  Lines that are not results (a cut last line, other records) are ignored.
    A results file that does not exist yet is an empty one (the first run of a retried job)."""
    out: dict[tuple[str, str], AuditResult] = {}
    for line in _read_text(location, endpoint_url, missing_ok=True):
        try:
            doc = json.loads(line)
            if not isinstance(doc, dict) or "key" not in doc or "verdict" not in doc:
                continue
            r = AuditResult.from_json(doc)
        except (ValueError, KeyError, TypeError):
            continue
        out[(r.key, r.etag)] = r
    return out


# --------------------------------------------------------------------------------------------------
# reading one object


class _Tap(io.RawIOBase):
    """The object's bytes, counted and (for snapcheck objects) hashed as they pass; the first bytes
    can be looked at before anything is handed on (:meth:`peek`)."""

    def __init__(self, stream: BinaryIO, *, sha256: bool) -> None:
        super().__init__()
        self._s = stream
        self._prefix = b""
        self._ppos = 0
        self.count = 0
        self.eof = False
        self.sha = hashlib.sha256() if sha256 else None

    def readable(self) -> bool:
        return True

    def _raw(self, n: int) -> bytes:
        if self.eof:
            return b""
        data = self._s.read(n)
        if not data:
            self.eof = True
            return b""
        self.count += len(data)
        if self.sha is not None:
            self.sha.update(data)
        return data

    def peek_head(self, n: int) -> bytes:
        """At least *n* bytes from the start (fewer only at the end); they are read again later."""
        parts = [self._prefix]
        have = len(self._prefix)
        while have < n:
            data = self._raw(n - have)
            if not data:
                break
            parts.append(data)
            have += len(data)
        self._prefix = b"".join(parts)
        return self._prefix

    def read(self, size: int | None = -1, /) -> bytes:
        if self._ppos < len(self._prefix):
            if size is None or size < 0:
                out = self._prefix[self._ppos:] + self.readall_rest()
                self._ppos = len(self._prefix)
                return out
            out = self._prefix[self._ppos:self._ppos + size]
            self._ppos += len(out)
            if self._ppos >= len(self._prefix):
                self._prefix, self._ppos = b"", 0
            return out
        if size is None or size < 0:
            return self.readall_rest()
        return self._raw(size)

    def readall_rest(self) -> bytes:
        parts: list[bytes] = []
        while True:
            d = self._raw(CHUNK)
            if not d:
                return b"".join(parts)
            parts.append(d)

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        self._prefix, self._ppos = b"", 0
        while self._raw(CHUNK):
            pass


def _content(head: bytes) -> str:
    if not head:
        return "empty"
    if is_bundle(head):
        return "bundle"
    kind = detect(head)
    return kind if kind in ("zstd", "gzip", "tar") else "unknown"


def _inner_is_tar(head: bytes, kind: str, window: int) -> bool | None:
    """Whether the first decompressed bytes of a zstd/gzip *head* are a tar header; None when the
    head does not tell (a damaged or cut first frame, too little output): the verifier decides."""
    try:
        if kind == "gzip":
            gz = zlib.decompressobj(31)
            out = gz.decompress(head, 1024)
            ended = gz.eof
        else:
            import zstandard

            pos = 0
            while len(head) - pos >= 8:
                magic = int.from_bytes(head[pos:pos + 4], "little")
                if (magic & 0xFFFFFFF0) != 0x184D2A50:
                    break
                pos += 8 + int.from_bytes(head[pos + 4:pos + 8], "little")
            zd = zstandard.ZstdDecompressor(max_window_size=window).decompressobj()
            out = zd.decompress(head[pos:])[:1024]
            ended = bool(zd.eof)
    except Exception:  # zlib.error, zstandard.ZstdError, MemoryError: a damaged start, for the verifier
        return None
    if len(out) >= 512:
        return detect(out[:512]) == "tar"
    if ended:
        return False  # a whole frame (or gzip member) of less than one tar block: not a tar
    return None


@dataclass
class _Task:
    location: str
    endpoint_url: str | None
    key: str
    etag: str
    size: int
    last_modified: datetime | None
    verify: VerifyOptions
    now: datetime | None
    data_listed: bool | None = None  # for a companion: its data object was listed just before it


_STORAGES: dict[tuple[str, str | None], tuple[Storage, str]] = {}
_STORAGES_LOCK = threading.Lock()


def _storage_for(location: str, endpoint_url: str | None) -> Storage:
    """The storage of *location*, opened once per process (workers of the process and Dask backends)."""
    k = (location, endpoint_url)
    with _STORAGES_LOCK:
        got = _STORAGES.get(k)
        if got is None:
            got = _STORAGES[k] = _open_storage(location, endpoint_url)
    return got[0]


def audit_object(task: _Task, storage: Storage | None = None) -> AuditResult:
    """Judge one object (the unit of work every backend runs).  Never raises for the object's sake:
    read failures make an ``incomplete`` result, a bug an ``unexpectedError`` finding."""
    started = time.monotonic()
    st = storage if storage is not None else _storage_for(task.location, task.endpoint_url)
    label = st.describe(task.key)
    job = _Job(st, task, label)
    try:
        job.run()
    except SnapcheckError as e:
        job.findings.append(finding("sourceUnreadable", label, f"{label}: {e}"))
    except Exception as e:
        if _is_network_error(e):
            job.findings.append(finding("sourceUnreadable", label, f"{label}: {type(e).__name__}: {e}"))
        else:
            job.findings.append(finding("unexpectedError", label,
                                        f"{label}: internal error while auditing ({type(e).__name__}: {e}); "
                                        "please report it"))
    return job.result(time.monotonic() - started)


def _is_network_error(e: BaseException) -> bool:
    if isinstance(e, OSError):
        return True
    try:
        import botocore.exceptions
        import urllib3.exceptions
    except ImportError:  # pragma: no cover - boto3 is a dependency
        return False
    return isinstance(e, (botocore.exceptions.BotoCoreError, urllib3.exceptions.HTTPError))


class _Job:
    """The state of one object's audit (see :func:`audit_object`)."""

    def __init__(self, storage: Storage, task: _Task, label: str) -> None:
        self.st = storage
        self.task = task
        self.label = label
        self.etag = task.etag
        self.size = task.size
        self.last_modified = task.last_modified
        self.layout = "unknown"
        self.findings: list[Finding] = []
        self.judged = False  # the content was verified (else the verdict is at most 'skipped')
        self.declared = False  # metadata declares a snapshot: never downgrade to 'not a snapshot'
        self.report: Report | None = None
        self.tap: _Tap | None = None

    # -- the verdict -----------------------------------------------------------------------------------

    def result(self, duration: float) -> AuditResult:
        verdict = Report(self.label, findings=list(self.findings), strict=self.task.verify.strict).verdict
        if verdict == "sound" and not self.judged:
            verdict = "skipped"
        s = self.report.summary if self.report is not None else None
        return AuditResult(
            key=self.task.key, etag=self.etag, size=self.size, layout=self.layout, verdict=verdict,
            findings=tuple(self.findings), duration=duration,
            bytes_read=self.tap.count if self.tap is not None else 0,
            last_modified=_iso(self.last_modified),
            refs=s.refs if s is not None and s.repository_root else None,
            objects=s.objects if s is not None and s.repository_root else None,
            head=s.head if s is not None else None,
        )  # fmt: skip

    # -- the steps -------------------------------------------------------------------------------------

    def run(self) -> None:
        key = self.task.key
        data_key = cachew.companion_data_key(key)
        if data_key is not None:
            self.layout = "cachew-companion"
            present = self.task.data_listed or self.st.head(data_key) is not None
            if not present:
                self.findings.append(finding("cachewCompanionOrphan", self.label,
                                             f"{self.label}: companion of {data_key}, which does not exist"))
            return
        try:
            stream, info = self._open()
        except ObjectNotFound:
            self.findings.append(finding("auditObjectGone", self.label,
                                         f"{self.label}: listed, but gone when it was to be read"))
            return
        with stream:
            self._audit_stream(stream, info)

    def _open(self) -> tuple[BinaryIO, ObjectInfo]:
        try:
            stream, info = self.st.open_read(self.task.key, etag=self.task.etag or None)
        except ObjectChanged:
            # replaced since it was listed: judge the object that is there now (its ETag is recorded)
            stream, info = self.st.open_read(self.task.key)
        self.etag, self.size = info.etag, info.size
        if info.last_modified is not None:
            self.last_modified = info.last_modified
        return stream, info

    def _companion(self, ck: cachew.CachewKey) -> bytes | None:
        try:
            stream, _ = self.st.open_read(ck.companion)
        except ObjectNotFound:
            return None
        with stream:
            data = stream.read(COMPANION_MAX + 1)
        return bytes(data)

    def _audit_stream(self, stream: BinaryIO, info: ObjectInfo) -> None:
        meta = info.metadata
        ck = cachew.parse_data_key(self.task.key)
        entry: cachew.EntryCheck | None = None
        if ck is not None:
            body = self._companion(ck)
            now = self.task.now or datetime.now(UTC)
            entry = cachew.check_entry(ck, metadata=meta, companion_body=body, last_modified=self.last_modified,
                                       now=now, path=self.label)  # fmt: skip
            self.findings += entry.findings
        snapcheck_meta = ck is None and SNAPCHECK_META + "version" in meta
        kind = entry.kind if entry is not None else None
        if ck is not None:
            self.declared = kind in ("mirror", "workstation", "lfs", "bundle", "archive")
            self.layout = f"cachew-{kind}" if kind else "cachew-other"
        elif snapcheck_meta:
            self.declared = True
            self.layout = "snapcheck"
        tap = self.tap = _Tap(stream, sha256=snapcheck_meta)
        head = tap.peek_head(HEAD_BYTES)
        content = _content(head)
        if entry is not None:
            self.findings += cachew.check_content_type(entry.headers, content, self.label)

        if (not self.declared and content in ("zstd", "gzip")
                and _inner_is_tar(head, content, self.task.verify.limits.zstd_window) is False):  # fmt: skip
            self._not_an_archive(f"a {content} stream that does not hold a tar archive")
            return
        if content == "bundle" or kind == "bundle":
            if ck is None:
                self.layout = "snapcheck" if snapcheck_meta else "bundle"
            self._bundle(tap)
        elif kind in ("lfs", "archive") or (
            ck is not None and kind is None and ck.namespace != cachew.GIT_NAMESPACE and content in _ARCHIVES
        ):
            self.layout = f"cachew-{kind or 'archive'}"
            self._container(tap, lfs=kind == "lfs")
        elif content in _ARCHIVES or self.declared:
            self._verify(tap, ck, entry, snapcheck_meta)
        else:
            self._not_an_archive("no bytes at all" if content == "empty" else "no archive format")
            return
        if snapcheck_meta:
            self._check_snapcheck(meta)

    def _not_an_archive(self, what: str) -> None:
        if self.layout == "unknown":
            self.layout = "other"
        self.findings.append(finding("auditNotAnArchive", self.label,
                                     f"{self.label}: {what}: not a snapshot, not judged"))

    def _bundle(self, tap: _Tap) -> None:
        limits = self.task.verify.limits
        checker = BundleStreamChecker(self.label, hash_content=self.task.verify.level.at_least(Level.STANDARD),
                                      max_line=limits.max_ref_line, max_refs=limits.max_refs)  # fmt: skip
        while True:
            data = tap.read(CHUNK)
            if not data:
                break
            checker.feed(data)
        _summary, findings = checker.finish()
        self.findings += findings
        self.judged = True

    def _container(self, tap: _Tap, *, lfs: bool) -> None:
        """The archive layer only (compression complete, tar complete and safe), plus LFS oids."""
        from .sources.compression import DecompressedStream
        from .sources.tar import TarStream

        limits = self.task.verify.limits
        found: list[Finding] = []
        dec = DecompressedStream(tap, limits=limits, findings=found, label=self.label)
        tar = TarStream(dec, limits=limits, findings=found, label=self.label)
        try:
            for e in tar.entries():
                if not lfs or e.kind is not EntryKind.FILE or e.stream is None or cachew.lfs_oid(e.path) is None:
                    continue
                h = hashlib.sha256()
                got = 0
                while True:
                    piece = e.stream.read(CHUNK)
                    if not piece:
                        break
                    h.update(piece)
                    got += len(piece)
                if got == e.size:  # a cut member is reported by the tar layer
                    found += cachew.check_lfs_object(e.path, h.hexdigest(), self.label)
        except SourceError as err:
            found.append(finding("sourceUnreadable", self.label, f"{self.label}: {err}"))
        self.findings += found
        self.judged = True

    def _verify(self, tap: _Tap, ck: cachew.CachewKey | None, entry: cachew.EntryCheck | None,
                snapcheck_meta: bool) -> None:  # fmt: skip
        from .verifier import verify_stream

        report = self.report = verify_stream(cast(BinaryIO, tap), self.task.verify, label=self.label)
        found = list(report.findings)
        self.judged = True
        embedded = report.summary.repository_root.endswith(".git/")
        if ck is not None:
            if entry is not None and entry.kind is None:
                self.layout = "cachew-workstation" if embedded else "cachew-mirror"
            if entry is not None and not report.incomplete:
                found += cachew.check_snapshot_commit(entry.headers, report.summary.head, self.label)
        elif not snapcheck_meta:
            self.layout = "tar"
            errors = {f.code for f in found if f.severity is Severity.ERROR}
            if errors == {"archiveNoRepository"}:
                # a complete archive of something else: not ours to judge
                self.judged = False
                self.layout = "archive"
                found = [f for f in found if f.code != "archiveNoRepository"]
                found.append(finding("auditNotASnapshot", self.label,
                                     f"{self.label}: a complete archive that holds no git repository; not judged"))
        self.findings += found

    def _check_snapcheck(self, meta: dict[str, str]) -> None:
        tap, report = self.tap, self.report
        assert tap is not None
        if any(f.code in ("sourceUnreadable", "sourceInterrupted") for f in self.findings):
            return
        clean = not any(f.severity is Severity.ERROR for f in self.findings)
        if clean and not tap.eof:
            tap.drain()  # the verifier stops at the end of the archive; the hash needs every byte
        want = meta.get(SNAPCHECK_META + "sha256")
        if tap.eof and tap.sha is not None and want is not None and tap.sha.hexdigest() != want.lower():
            self.findings.append(finding("snapcheckSha256Mismatch", self.label,
                                         f"{self.label}: snapcheck-sha256 is {want} but the {tap.count} bytes read "
                                         f"hash to {tap.sha.hexdigest()}"))
        if not clean or report is None:
            return
        s = report.summary
        if not s.manifest:
            self.findings.append(finding("snapcheckManifestMissing", self.label,
                                         f"{self.label}: carries snapcheck metadata but holds no "
                                         ".snapcheck/manifest.json"))
        for name, got in (("refs", str(s.refs)), ("objects", str(s.objects)), ("head", s.head)):
            recorded = meta.get(SNAPCHECK_META + name)
            if recorded is not None and recorded != got:
                self.findings.append(finding("snapcheckMetadataMismatch", self.label,
                                             f"{self.label}: snapcheck-{name} is {recorded} but the archive has "
                                             f"{got}"))


# --------------------------------------------------------------------------------------------------
# backends


class _Backend:
    def submit(self, task: _Task) -> Any:
        raise NotImplementedError

    def wait_any(self, pending: set[Any]) -> tuple[set[Any], set[Any]]:
        done, rest = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
        return set(done), set(rest)

    def window(self) -> int:
        return 1

    def close(self) -> None:
        pass


class _Inline(_Backend):
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def submit(self, task: _Task) -> Any:
        fut: cf.Future[AuditResult] = cf.Future()
        try:
            fut.set_result(audit_object(task, self.storage))
        except BaseException as e:  # KeyboardInterrupt and friends
            fut.set_exception(e)
        return fut


class _Pool(_Backend):
    def __init__(self, pool: cf.Executor, fn: Callable[[_Task], AuditResult], window: int) -> None:
        self.pool = pool
        self.fn = fn
        self._window = window

    def submit(self, task: _Task) -> Any:
        return self.pool.submit(self.fn, task)

    def window(self) -> int:
        return self._window

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class _Dask(_Backend):
    def __init__(self, address: str, window: int | None) -> None:
        import importlib

        try:
            distributed: Any = importlib.import_module("distributed")
        except ImportError:
            raise UsageError("--dask-scheduler needs Dask: pip install 'snapcheck[dask]'") from None
        self._distributed = distributed
        try:
            self.client = distributed.Client(address, set_as_default=False, timeout=30)
        except (OSError, TimeoutError) as e:
            raise SourceError(f"cannot reach the Dask scheduler at {address}: {e}") from e
        threads = sum(self.client.nthreads().values()) or 1
        self._window = window or max(32, 4 * threads)  # every wait is a round trip to the scheduler

    def submit(self, task: _Task) -> Any:
        return self.client.submit(audit_object, task, pure=False)

    def wait_any(self, pending: set[Any]) -> tuple[set[Any], set[Any]]:
        # distributed.wait() uses the default client; this client is not made the default (a library
        # must not change the caller's Dask context), so call what wait() calls, on this client
        import importlib

        wait = importlib.import_module("distributed.client")._wait
        res = self.client.sync(wait, list(pending), return_when="FIRST_COMPLETED")
        return set(res.done), set(res.not_done)

    def window(self) -> int:
        return self._window

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()


def _backend(options: AuditOptions, storage: Storage) -> _Backend:
    window = options.max_inflight or 2 * options.jobs
    if options.dask_scheduler:
        return _Dask(options.dask_scheduler, options.max_inflight)
    if options.backend == "process":
        import multiprocessing

        pool = cf.ProcessPoolExecutor(max_workers=options.jobs, mp_context=multiprocessing.get_context("spawn"))
        return _Pool(pool, audit_object, window)
    if options.jobs == 1:
        return _Inline(storage)
    threads = cf.ThreadPoolExecutor(max_workers=options.jobs, thread_name_prefix="snapcheck-audit")
    return _Pool(threads, lambda t: audit_object(t, storage), window)


# --------------------------------------------------------------------------------------------------
# the sweep


def audit(location: str, *, options: AuditOptions | None = None, storage: Storage | None = None,
          ) -> Iterator[AuditResult]:  # fmt: skip
    """Audit every object under *location* (``s3://bucket/prefix`` or a local directory standing in
    for a bucket); yield one :class:`AuditResult` per object as it finishes (resumed objects first,
    as they are met in the listing).

    *storage* (optional) is used for listing, quarantine and — with the thread backend — reads, in
    place of opening *location* (tests pass a tuned :class:`~snapcheck.storage.s3.S3Storage`); other
    backends open *location* in their workers.  A listing that fails midway raises
    :class:`SourceError` after the objects already listed have been judged."""
    options = options or AuditOptions()
    if storage is not None:
        st, prefix = storage, _prefix_of(location)
    else:
        st, prefix = _open_storage(location, options.endpoint_url)
    prior = load_results(options.resume, endpoint_url=options.endpoint_url) if options.resume else {}
    if options.listing:
        listing: Iterator[ObjectInfo] = read_listing(options.listing, endpoint_url=options.endpoint_url,
                                                     expect_location=st.describe(prefix))  # fmt: skip
    else:
        listing = st.list(prefix)
    backend = _backend(options, st)
    tasks: dict[Any, _Task] = {}
    pending: set[Any] = set()
    listing_error: SourceError | None = None
    planned = _plan(listing, options)
    try:
        exhausted = False
        while True:
            while not exhausted and len(pending) < backend.window():
                try:
                    obj, data_listed = next(planned)
                except StopIteration:
                    exhausted = True
                    break
                except SourceError as e:
                    listing_error, exhausted = e, True
                    break
                old = prior.get((obj.key, obj.etag))
                if old is not None and _final(old):
                    yield replace(old, resumed=True, quarantine=None)
                    continue
                task = _Task(location, options.endpoint_url, obj.key, obj.etag, obj.size, obj.last_modified,
                             options.verify, options.now, data_listed)  # fmt: skip
                try:
                    fut = backend.submit(task)
                except (KeyboardInterrupt, SystemExit):
                    raise
                except Exception as e:  # e.g. a broken process pool: a worker died
                    failed: cf.Future[AuditResult] = cf.Future()
                    failed.set_exception(e)
                    fut = failed
                tasks[fut] = task
                pending.add(fut)
            if not pending:
                break
            done, pending = backend.wait_any(pending)
            for fut in _in_submission_order(done, tasks):
                task = tasks.pop(fut)
                result = _outcome(fut, task, st)
                if options.quarantine and result.verdict == "corrupt":
                    result = quarantine(st, result, options.quarantine)
                yield result
    finally:
        backend.close()
    if listing_error is not None:
        raise listing_error


def _final(r: AuditResult) -> bool:
    """Whether an earlier result stands for the same (key, ETag): sound, or not a snapshot.  Corrupt
    and unreadable objects are judged again (quarantine may be pending, the reader may succeed)."""
    return r.verdict == "sound" or (r.verdict == "skipped" and "auditObjectGone" not in r.codes)


def _in_submission_order(done: set[Any], tasks: dict[Any, _Task]) -> list[Any]:
    order = {f: i for i, f in enumerate(tasks)}
    return sorted(done, key=lambda f: order.get(f, 0))


def _outcome(fut: Any, task: _Task, st: Storage) -> AuditResult:
    try:
        result: AuditResult = fut.result()
        return result
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # the worker died (process killed, Dask worker lost): verdict unknown
        label = st.describe(task.key)
        return AuditResult(key=task.key, etag=task.etag, size=task.size, layout="unknown", verdict="incomplete",
                           findings=(finding("sourceUnreadable", label,
                                             f"{label}: the worker auditing it failed: {type(e).__name__}: {e}"),),
                           last_modified=_iso(task.last_modified))  # fmt: skip


def _plan(listing: Iterator[ObjectInfo], options: AuditOptions) -> Iterator[tuple[ObjectInfo, bool | None]]:
    """The listed objects this run audits, each with (for a companion) whether its data object was
    listed right before it (S3 lists ``<key>`` just before ``<key>.meta``)."""
    recent: collections.deque[str] = collections.deque(maxlen=8)
    qprefix = options.quarantine_prefix
    for obj in listing:
        data_key = cachew.companion_data_key(obj.key)
        data_listed = (data_key in recent) if data_key is not None else None
        recent.append(obj.key)
        if qprefix is not None and obj.key.startswith(qprefix):
            continue
        if options.since is not None and obj.last_modified is not None and obj.last_modified < options.since:
            continue
        if not in_shard(obj.key, options.shard):
            continue
        yield obj, data_listed


# --------------------------------------------------------------------------------------------------
# quarantine


def quarantine(storage: Storage, result: AuditResult, mode: str) -> AuditResult:
    """Tag (``tag``) or move (``move:PREFIX``) a corrupt object — only while it still has the ETag
    that was judged; returns the result with ``quarantine`` saying what was done."""
    if result.verdict != "corrupt":
        return result
    key = result.key
    first = result.first_error
    code = first.code if first is not None else "corrupt"
    try:
        current = storage.head(key)
        if current is None:
            return replace(result, quarantine="not done: the object is gone")
        if current.etag != result.etag:
            return replace(result, quarantine=f"not done: the object changed since it was judged ({current.etag})")
        if mode == "tag":
            tags = {k: v for k, v in storage.get_tags(key).items() if k not in (STATUS_TAG, FINDING_TAG)}
            keep = dict(list(tags.items())[:8])  # S3 allows 10 tags per object
            keep.update({STATUS_TAG: "corrupt", FINDING_TAG: code})
            storage.set_tags(key, keep)
            return replace(result, quarantine="tagged")
        prefix = mode[5:].lstrip("/")
        prefix = prefix if prefix.endswith("/") else prefix + "/"
        dst = prefix + key
        _move(storage, key, dst, current)
        ck = cachew.parse_data_key(key)
        if ck is not None:
            comp = storage.head(ck.companion)
            if comp is not None:
                _move(storage, ck.companion, prefix + ck.companion, comp)
        return replace(result, quarantine=f"moved:{dst}")
    except SnapcheckError as e:
        return replace(result, quarantine=f"failed: {e}")


def _move(storage: Storage, key: str, dst: str, judged: ObjectInfo) -> None:
    """Copy (multipart above 5 GB), confirm the copy, then delete the source if it is unchanged."""
    copied = storage.copy(key, dst)
    there = storage.head(dst)
    if there is None or there.size != judged.size or there.etag != copied.etag:
        raise SourceError(f"{storage.describe(dst)}: the copy is not there as written "
                          f"(size {there.size if there else None}, expected {judged.size}); source kept")
    again = storage.head(key)
    if again is None:
        return
    if again.etag != judged.etag:
        raise SourceError(f"{storage.describe(key)}: replaced during the move; the new object is kept, "
                          f"the judged copy is at {storage.describe(dst)}")
    storage.delete(key)


# --------------------------------------------------------------------------------------------------
# summary and metrics


_BUCKETS = (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


@dataclass
class AuditSummary:
    """Totals over a sweep: the table on stderr, the Prometheus metrics and the exit code."""

    by_verdict: collections.Counter[str] = field(default_factory=collections.Counter)
    by_layout: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    findings: collections.Counter[str] = field(default_factory=collections.Counter)
    bytes_read: int = 0
    bytes_verified: int = 0
    resumed: int = 0
    quarantined: int = 0
    quarantine_failed: int = 0
    duration_buckets: list[int] = field(default_factory=lambda: [0] * (len(_BUCKETS) + 1))
    duration_sum: float = 0.0
    duration_count: int = 0
    corrupt: list[tuple[str, str]] = field(default_factory=list)
    incomplete: list[tuple[str, str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # listing or output failures: the sweep is unfinished
    started: float = field(default_factory=time.time)
    finished: float | None = None

    def add(self, r: AuditResult) -> None:
        self.by_verdict[r.verdict] += 1
        self.by_layout[(r.layout, r.verdict)] += 1
        if r.resumed:
            self.resumed += 1
            return
        for c in r.codes:
            self.findings[c] += 1
        self.bytes_read += r.bytes_read
        if r.verdict in ("sound", "corrupt"):
            self.bytes_verified += r.bytes_read
            self.duration_sum += r.duration
            self.duration_count += 1
            for i, b in enumerate(_BUCKETS):
                if r.duration <= b:
                    self.duration_buckets[i] += 1
                    break
            else:
                self.duration_buckets[-1] += 1
        first = r.first_error
        if r.verdict == "corrupt":
            self.corrupt.append((r.key, first.code if first else ""))
        elif r.verdict == "incomplete":
            self.incomplete.append((r.key, first.message if first else ""))
        if r.quarantine is not None:
            if r.quarantine.startswith(("tagged", "moved:")):
                self.quarantined += 1
            else:
                self.quarantine_failed += 1

    @property
    def exit_code(self) -> ExitCode:
        """3 when anything could not be finished (an object unread, a quarantine or the listing
        failed: worth a retry with --resume), else 1 when any object is corrupt, else 0."""
        if self.by_verdict["incomplete"] or self.quarantine_failed or self.failures:
            return ExitCode.INCOMPLETE
        if self.by_verdict["corrupt"]:
            return ExitCode.CORRUPT
        return ExitCode.SOUND

    def table(self, *, limit: int = 20) -> str:
        elapsed = (self.finished or time.time()) - self.started
        layouts = sorted({lay for lay, _ in self.by_layout})
        w = max([len("layout"), *(len(x) for x in layouts)])
        lines = [f"{'layout':<{w}}  " + "  ".join(f"{v:>10}" for v in VERDICTS)]
        for lay in layouts:
            lines.append(f"{lay:<{w}}  " + "  ".join(f"{self.by_layout[(lay, v)]:>10}" for v in VERDICTS))
        lines.append(f"{'total':<{w}}  " + "  ".join(f"{self.by_verdict[v]:>10}" for v in VERDICTS))
        rate = self.bytes_read / elapsed if elapsed > 0 else 0.0
        lines.append(f"{sum(self.by_verdict.values())} objects ({self.resumed} resumed), "
                     f"{_human(self.bytes_read)} read in {elapsed:.1f} s ({_human(rate)}/s); "
                     f"quarantined {self.quarantined}, quarantine failed {self.quarantine_failed}")  # fmt: skip
        for title, items in (("corrupt", self.corrupt), ("could not read", self.incomplete)):
            if items:
                lines.append(f"{title}:")
                lines += [f"  {k}  {why[:160]}" for k, why in items[:limit]]
                if len(items) > limit:
                    lines.append(f"  … and {len(items) - limit} more (see the results file)")
        lines += [f"sweep not finished: {f}" for f in self.failures]
        return "\n".join(lines) + "\n"

    def prometheus(self, *, shard: tuple[int, int] | None = None, location: str = "") -> str:
        """Prometheus text exposition format (for node_exporter's textfile collector or a push)."""
        base = {"location": location}
        if shard is not None:
            base["shard"] = f"{shard[0]}/{shard[1]}"

        def labels(**extra: str) -> str:
            items = {**base, **extra}
            return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in items.items()) + "}"

        out: list[str] = []

        def metric(name: str, kind: str, help_: str, rows: list[tuple[str, float]]) -> None:
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(f"{name}{lab} {_num(v)}" for lab, v in rows)

        metric("snapcheck_audit_objects", "gauge", "Objects in the last audit sweep, by verdict.",
               [(labels(verdict=v), self.by_verdict[v]) for v in VERDICTS])
        metric("snapcheck_audit_objects_by_layout", "gauge", "Objects in the last audit sweep, by layout and verdict.",
               [(labels(layout=lay, verdict=v), n) for (lay, v), n in sorted(self.by_layout.items())])
        metric("snapcheck_audit_resumed_objects", "gauge", "Objects judged by an earlier run (sound, or not a snapshot) and not read again.",
               [(labels(), self.resumed)])
        metric("snapcheck_audit_bytes_read", "gauge", "Bytes read from storage in the last sweep.",
               [(labels(), self.bytes_read)])
        metric("snapcheck_audit_bytes_verified", "gauge", "Bytes of objects that were verified (sound or corrupt).",
               [(labels(), self.bytes_verified)])
        metric("snapcheck_audit_findings", "gauge", "Objects with a finding of this code in the last sweep.",
               [(labels(code=c), n) for c, n in sorted(self.findings.items())])
        metric("snapcheck_audit_quarantined_objects", "gauge", "Corrupt objects tagged or moved.",
               [(labels(), self.quarantined)])
        metric("snapcheck_audit_quarantine_failures", "gauge", "Corrupt objects whose quarantine failed.",
               [(labels(), self.quarantine_failed)])
        rows: list[tuple[str, float]] = []
        cumulative = 0
        for b, n in zip(_BUCKETS, self.duration_buckets, strict=False):
            cumulative += n
            rows.append((labels(le=_num(b)), cumulative))
        rows.append((labels(le="+Inf"), self.duration_count))
        out.append("# HELP snapcheck_audit_object_duration_seconds Time to verify one object.")
        out.append("# TYPE snapcheck_audit_object_duration_seconds histogram")
        out.extend(f"snapcheck_audit_object_duration_seconds_bucket{lab} {_num(v)}" for lab, v in rows)
        out.append(f"snapcheck_audit_object_duration_seconds_sum{labels()} {_num(round(self.duration_sum, 6))}")
        out.append(f"snapcheck_audit_object_duration_seconds_count{labels()} {self.duration_count}")
        elapsed = (self.finished or time.time()) - self.started
        metric("snapcheck_audit_duration_seconds", "gauge", "Wall time of the last sweep.",
               [(labels(), round(elapsed, 3))])
        metric("snapcheck_audit_exit_code", "gauge", "Exit code of the last sweep (0 sound, 1 corrupt, 3 unfinished).",
               [(labels(), int(self.exit_code))])
        metric("snapcheck_audit_last_run_timestamp_seconds", "gauge", "When the last sweep finished (Unix time).",
               [(labels(), round(self.finished or time.time(), 3))])
        return "\n".join(out) + "\n"


def write_atomically(path: str, text: str) -> None:
    """Write *text* to *path* through a temp file in the same directory, fsync, rename."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise SourceError(f"{path}: cannot write: {e.strerror or e}") from e


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(v: float) -> str:
    if isinstance(v, int) or float(v).is_integer():
        return str(int(v))
    return repr(float(v))


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
