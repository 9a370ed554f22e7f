"""One verifier for every source: directory, archive file, stdin, S3 object.

source ──► entries ──► collector ──► repository checks ──► object phase ──► mirror policy ──► Report
"""

from __future__ import annotations

import os
import stat
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from .checks.blobs import Spool
from .checks.collector import MANIFEST, Collector
from .errors import SourceError, UsageError
from .options import VerifyOptions
from .report import Finding, Report, Summary, finding
from .sources.base import Entry
from .sources.directory import walk_directory

if TYPE_CHECKING:
    from .checks.layout import RootFinder
    from .checks.repository import RepoModel as RepositoryModel

# The modules of the later phases (repository checks, object phase, policy, manifest) and of archive
# sources (tar, compression) are imported where they are first needed: a directory's pack starts
# hashing in the background (checks.collector) while they load, and a directory verify never loads
# the archive machinery.
MANIFEST_PATH = MANIFEST  # == snapcheck.manifest.MANIFEST_PATH


def _run(target: str, entries: Iterable[Entry], options: VerifyOptions, *, embedded: bool | None = None,
         root_finder: RootFinder | None = None, pre_findings: list[Finding] | None = None,
         source_findings: list[Finding] | None = None) -> Report:
    started = time.monotonic()
    report = Report(target=target, strict=options.strict,
                    summary=Summary(level=options.level.value, source=target))
    spool = Spool(options.spool_dir)
    collector = Collector(options, spool)
    try:
        try:
            for entry in entries:
                collector.add(entry)
        except SourceError as e:
            report.add([finding("sourceUnreadable", "", str(e))])
        if source_findings:
            report.add(source_findings)
        if root_finder is not None:
            report.add(root_finder.findings)
        report.add(collector.findings)
        if report.incomplete or (root_finder is not None and root_finder.root is None):
            return _finish(report, collector, started)
        embedded_git = bool(embedded) or bool(root_finder is not None and root_finder.embedded)
        from .checks.objectcheck import check_objects
        from .checks.policy import check_policy
        from .checks.repository import RepositoryChecks

        checks = RepositoryChecks(collector.collected, options)
        model = checks.run()
        report.add(checks.findings)
        phase = check_objects(collector.collected, model, options)
        report.add(phase.findings)
        report.add(check_policy(model, options, embedded_git_dir=embedded_git, head_type=phase.head_type))
        if root_finder is not None:
            report.add(_check_manifest(collector, model))
        s = report.summary
        s.object_format = model.algo.name
        s.refs = len(model.refs)
        s.packs = len(model.indexes)
        s.objects = model.object_count()
        s.loose_objects = len(model.loose_oids)
        s.objects_walked = phase.objects_walked
        s.head_target = model.head_target
        s.head = model.head_oid.hex() if model.head_oid is not None else None
        s.not_checked = list(model.not_checked)
        report.refs = dict(model.refs)
        if collector.manifest is not None:
            s.created = collector.manifest.created
        if root_finder is not None:
            s.repository_root = root_finder.root or "./"
        return _finish(report, collector, started)
    finally:
        collector.collected.close()
        spool.close()


def _check_manifest(collector: Collector, model: RepositoryModel) -> list[Finding]:
    """Archives made by snapcheck carry a manifest as their last member: refs and files must match it."""
    from .manifest import Manifest, compare_manifest

    c = collector.collected
    data = c.texts.get(MANIFEST_PATH)
    if data is None:
        return []
    manifest, findings = Manifest.from_json(data, MANIFEST_PATH)
    if c.files_after_manifest:
        findings.append(finding("manifestNotLast", MANIFEST_PATH,
                                f"{len(c.files_after_manifest)} member(s) follow the manifest, first "
                                f"{c.files_after_manifest[0]}: snapcheck writes the manifest last"))
    if manifest is None:
        return findings
    seen = {f.path: (f.size, c.digests.get(f.path)) for f in c.files if not f.path.startswith(".snapcheck/")}
    findings += compare_manifest(manifest, refs=model.refs, head_target=model.head_target, files_seen=seen)
    collector.manifest = manifest
    return findings


def _finish(report: Report, collector: Collector, started: float) -> Report:
    c = collector.collected
    report.summary.files = len(c.files)
    report.summary.manifest = MANIFEST_PATH in c.texts
    report.summary.bytes_read = c.bytes_read
    report.summary.bytes_checked = c.bytes_hashed
    report.summary.duration_s = round(time.monotonic() - started, 3)
    return report


def verify_directory(path: str | os.PathLike[str], options: VerifyOptions | None = None) -> Report:
    """Verify a mirror directory (or the ``.git`` of a non-bare clone given as its work tree)."""
    options = options or VerifyOptions()
    root = Path(path)
    embedded = False
    git_dir = root / ".git"
    if git_dir.is_dir() and not (root / "HEAD").exists():
        root, embedded = git_dir, True
    elif git_dir.is_file():
        raise UsageError(f"{git_dir} is a gitdir link; verify the directory it points to")
    return _run(str(path), walk_directory(root), options, embedded=embedded)


def verify_stream(stream: BinaryIO, options: VerifyOptions | None = None, *, label: str = "-") -> Report:
    """Verify an archive (tar, tar.zst, tar.gz) read forward-only from *stream*."""
    options = options or VerifyOptions()
    from .sources.progress import ProgressReader, wants_progress

    source_findings: list[Finding] = []
    progress = None
    if wants_progress(options.quiet):
        progress = ProgressReader(stream, total=_size_of(stream), label=label)
        stream = progress  # type: ignore[assignment]
    try:
        return _verify_archive(stream, options, label, source_findings)
    finally:
        if progress is not None:
            progress.close()


def _size_of(stream: object) -> int | None:
    size = getattr(stream, "size", None)
    if isinstance(size, int):
        return size
    try:
        return os.fstat(stream.fileno()).st_size or None  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return None


def _verify_archive(stream: BinaryIO, options: VerifyOptions, label: str, source_findings: list[Finding]) -> Report:
    from .checks.layout import RootFinder
    from .sources.compression import DecompressedStream
    from .sources.tar import TarStream

    dec = DecompressedStream(stream, limits=options.limits, findings=source_findings, label=label)
    tar = TarStream(dec, limits=options.limits, findings=source_findings, label=label)
    finder = RootFinder()
    return _run(label, finder.map(tar.entries()), options, root_finder=finder, source_findings=source_findings)


def verify_file(path: str | os.PathLike[str], options: VerifyOptions | None = None) -> Report:
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed by the with below; open errors must map to exit 3
    except OSError as e:
        raise SourceError(f"cannot open {path}: {e.strerror or e}") from e
    with f:
        return verify_stream(f, options, label=str(path))


def verify(target: str | os.PathLike[str] | BinaryIO, options: VerifyOptions | None = None, *,
           endpoint_url: str | None = None) -> Report:
    """Verify a snapshot: a directory, an archive file, ``-`` (stdin), a binary stream or ``s3://bucket/key``.

    Returns a :class:`~snapcheck.report.Report`; raises :class:`~snapcheck.errors.UsageError` for a
    target that cannot be a snapshot and :class:`~snapcheck.errors.SourceError` when it cannot be read
    at all.
    """
    options = options or VerifyOptions()
    if not isinstance(target, (str, os.PathLike)):
        return verify_stream(target, options, label=getattr(target, "name", "<stream>"))
    t = os.fspath(target)
    if t == "-":
        return verify_stream(sys.stdin.buffer, options, label="-")
    if t.startswith("s3://"):
        from .sources.s3 import open_s3_object

        stream, _info = open_s3_object(t, endpoint_url=endpoint_url)
        with stream:
            return verify_stream(stream, options, label=t)
    try:
        st = os.stat(t)
    except FileNotFoundError:
        raise UsageError(f"{t}: no such file or directory") from None
    except OSError as e:
        raise SourceError(f"cannot stat {t}: {e.strerror or e}") from e
    if stat.S_ISDIR(st.st_mode):
        return verify_directory(t, options)
    return verify_file(t, options)
