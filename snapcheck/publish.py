"""Publishing a snapshot: stream it once, verify it as it goes, upload it as it goes, and commit the
upload only when the verification passed and the baseline guard agrees.  Otherwise the upload is
aborted: no object, no new version, no leftover multipart upload, no half-written file.

Used by `snapcheck put` (bytes from a file or a pipe) and `snapcheck archive` (bytes from the writer).
Why snapcheck must own the upload: a verifying `tee` into `aws s3 cp -` cannot stop the uploader, which
completes the object on EOF whatever the verifier decides.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import BinaryIO

from . import __version__
from .baseline import SnapshotFacts, check_baseline
from .errors import SnapcheckError, SourceError, UsageError
from .options import VerifyOptions
from .report import Finding, Report, Severity, finding, register
from .storage import open_location
from .storage.base import ObjectInfo, Storage, Upload
from .tee import VerifyingTee
from .verifier import verify_stream

register(
    "publish",
    ("putExpectedRefMissing", Severity.ERROR,
     "A ref given with --expect-ref is not in the snapshot.",
     "git: `fatal: couldn't find remote ref …` for clients that fetch it."),
    ("putTooFewRefs", Severity.ERROR,
     "The snapshot has fewer refs than --min-refs.",
     "n/a: git serves whatever refs there are."),
    ("putHeadMismatch", Severity.ERROR,
     "HEAD does not resolve to the commit given with --expect-head.",
     "n/a: clients would check out another commit."),
)

META_PREFIX = "snapcheck-"
CHUNK = 1 << 20


@dataclass(frozen=True)
class PublishOptions:
    verify: VerifyOptions = field(default_factory=VerifyOptions)
    baseline: str = "auto"  # "auto" | "none" | a path to a snapshot or a manifest
    force: bool = False
    max_ref_loss: float = 0.10
    max_object_loss: float = 0.10
    expect_refs: tuple[str, ...] = ()
    min_refs: int = 0
    expect_head: str | None = None
    cachew_commit_header: bool = False
    content_type: str = "application/zstd"
    endpoint_url: str | None = None


@dataclass
class PublishResult:
    report: Report
    committed: bool
    location: str
    info: ObjectInfo | None = None
    sha256: str = ""
    size: int = 0
    baseline: SnapshotFacts | None = None
    metadata: dict[str, str] = field(default_factory=dict)


def facts_from_metadata(meta: dict[str, str], source: str) -> SnapshotFacts | None:
    try:
        return SnapshotFacts(int(meta[META_PREFIX + "refs"]), int(meta[META_PREFIX + "objects"]),
                             meta.get(META_PREFIX + "created"), meta.get(META_PREFIX + "head"), source)
    except (KeyError, ValueError):
        return None


def facts_from_report(report: Report, created: str | None = None) -> SnapshotFacts:
    s = report.summary
    return SnapshotFacts(s.refs, s.objects, created, s.head, report.target)


def read_baseline(storage: Storage, key: str, options: PublishOptions, findings: list[Finding]) -> SnapshotFacts | None:
    """Facts about the snapshot currently at the destination: from snapcheck's metadata when it has
    some, otherwise by verifying it (quick level, streamed)."""
    where = storage.describe(key)
    if options.baseline == "none":
        return None
    if options.baseline != "auto":
        rep = _verify_path_quick(options.baseline, options)
        if rep.incomplete:
            findings.append(finding("baselineUnreadable", options.baseline,
                                    f"{options.baseline}: baseline could not be read; no comparison made"))
            return None
        return facts_from_report(rep, _manifest_created(rep))
    info = storage.head(key)
    if info is None:
        return None
    facts = facts_from_metadata(info.metadata, where)
    if facts is not None:
        return facts
    try:
        stream, _ = storage.open_read(key, etag=info.etag)
        with stream:
            rep = verify_stream(stream, _quick(options.verify), label=where)
    except SnapcheckError as e:
        findings.append(finding("baselineUnreadable", where, f"{where}: could not read the current snapshot: {e}"))
        return None
    if rep.incomplete or (rep.summary.refs == 0 and rep.errors):
        findings.append(finding("baselineUnreadable", where,
                                f"{where}: the current snapshot is itself unreadable or corrupt; no baseline comparison"))
        return None
    return facts_from_report(rep, _manifest_created(rep))


def _quick(v: VerifyOptions) -> VerifyOptions:
    from dataclasses import replace

    from .report import Level

    return replace(v, level=Level.QUICK, allow_empty=True, allow_unborn_head=True, strict=False)


def _verify_path_quick(path: str, options: PublishOptions) -> Report:
    from .verifier import verify

    return verify(path, _quick(options.verify), endpoint_url=options.endpoint_url)


def _manifest_created(rep: Report) -> str | None:
    return rep.summary.created


def _gate_findings(report: Report, options: PublishOptions) -> list[Finding]:
    out: list[Finding] = []
    refs = report.refs
    for name in options.expect_refs:
        if name not in refs:
            out.append(finding("putExpectedRefMissing", name, f"{name}: required by --expect-ref but not in the snapshot"))
    if report.summary.refs < options.min_refs:
        out.append(finding("putTooFewRefs", "packed-refs",
                           f"the snapshot has {report.summary.refs} refs, fewer than --min-refs {options.min_refs}"))
    if options.expect_head and report.summary.head != options.expect_head:
        out.append(finding("putHeadMismatch", "HEAD",
                           f"HEAD resolves to {report.summary.head}, not {options.expect_head} (--expect-head)"))
    return out


class _Sink:
    """What a producer writes to: every byte goes to the digest, the upload and the verifier."""

    def __init__(self, upload: Upload | None, tee: VerifyingTee, out: BinaryIO | None = None) -> None:
        self.upload = upload
        self.tee = tee
        self.out = out
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        n = len(data)
        self.digest.update(data)
        self.size += n
        if self.upload is not None:
            self.upload.write(data)
        if self.out is not None:
            self.out.write(data)
        self.tee.write(data)
        return n

    def flush(self) -> None:
        if self.out is not None:
            self.out.flush()


Producer = Callable[[_Sink], None]


def publish(produce: Producer, dest: str, options: PublishOptions, *, created: str | None = None) -> PublishResult:
    """Run *produce* (it writes the archive bytes to the sink it is given) while uploading the bytes to
    *dest* and verifying them; commit only if sound (see the module docstring).

    *dest* ``-`` streams to stdout instead: nothing can be withheld there, so the verdict is only the
    exit code (a consumer must honour it)."""
    if dest == "-":
        import sys

        return _publish_stdout(produce, sys.stdout.buffer, options, created)
    storage, key = open_location(dest, endpoint_url=options.endpoint_url)
    if not key or key.endswith("/"):
        raise UsageError(f"{dest}: a destination names one object (a key or a file), not a prefix or directory")
    where = storage.describe(key)
    pre: list[Finding] = []
    old = read_baseline(storage, key, options, pre)
    upload = storage.begin_upload(key, metadata={}, content_type=options.content_type, late_metadata=True)
    tee = VerifyingTee(lambda s: verify_stream(s, options.verify, label=where))
    sink = _Sink(upload, tee)
    try:
        produce(sink)
        report = tee.close()
        report.add(pre)
        report.add(_gate_findings(report, options))
        if not options.force:
            report.add(check_baseline(facts_from_report(report, created or report.summary.created), old,
                                      max_ref_loss=options.max_ref_loss, max_object_loss=options.max_object_loss,
                                      dest=where))
        meta = _metadata(report, sink.digest.hexdigest(), created or report.summary.created, options)
        info = None
        if report.sound:
            info = upload.commit(metadata=meta)
        else:
            upload.abort()
        return PublishResult(report, info is not None, where, info, sink.digest.hexdigest(), sink.size, old, meta)
    except BaseException:
        with contextlib.suppress(Exception):
            upload.abort()
        with contextlib.suppress(Exception):
            tee.abort()
        raise


def _publish_stdout(produce: Producer, out: BinaryIO, options: PublishOptions, created: str | None) -> PublishResult:
    tee = VerifyingTee(lambda s: verify_stream(s, options.verify, label="-"))
    sink = _Sink(None, tee, out)
    try:
        produce(sink)
        sink.flush()
    except BaseException:
        with contextlib.suppress(Exception):
            tee.abort()
        raise
    report = tee.close()
    report.add(_gate_findings(report, options))
    meta = _metadata(report, sink.digest.hexdigest(), created or report.summary.created, options)
    return PublishResult(report, report.sound, "-", None, sink.digest.hexdigest(), sink.size, None, meta)


def copy_stream(stream: BinaryIO) -> Producer:
    """A producer that copies a readable stream (a file or stdin) to the sink."""

    def produce(sink: _Sink) -> None:
        for chunk in read_chunks(stream):
            sink.write(chunk)

    return produce


def _metadata(report: Report, sha256: str, created: str | None, options: PublishOptions) -> dict[str, str]:
    s = report.summary
    meta = {
        META_PREFIX + "version": __version__,
        META_PREFIX + "level": s.level,
        META_PREFIX + "sha256": sha256,
        META_PREFIX + "refs": str(s.refs),
        META_PREFIX + "objects": str(s.objects),
        META_PREFIX + "object-format": s.object_format,
    }
    if s.head:
        meta[META_PREFIX + "head"] = s.head
    if created:
        meta[META_PREFIX + "created"] = created
    if options.cachew_commit_header and s.head:
        meta["x-cachew-snapshot-commit"] = s.head
    return meta


def read_chunks(stream: BinaryIO) -> Iterable[bytes]:
    while True:
        try:
            b = stream.read(CHUNK)
        except OSError as e:
            raise SourceError(f"reading the snapshot failed: {e.strerror or e}") from e
        if not b:
            return
        yield b
