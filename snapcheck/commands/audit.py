"""``snapcheck audit``: the click command (registered by cli.py with ``main.add_command(audit_command, "audit")``).

The command reuses cli.py's option groups (``level_options``, ``verify_policy_options``) and its
``make_options``/``run_guarded``.  cli.py imports this module to register the command, so this module
must not import cli.py while it is itself being imported: ``audit_command`` is built on first access
(a module ``__getattr__``), by which time cli.py has defined its helpers.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
from typing import IO, Any, TextIO

import click

__all__ = ["audit_command"]  # noqa: F822 (built on first access, see __getattr__)

_COMMAND: click.Command | None = None


def __getattr__(name: str) -> click.Command:
    if name == "audit_command":
        global _COMMAND
        if _COMMAND is None:
            _COMMAND = _build()
        return _COMMAND
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _Sink:
    """Where JSON lines go: nothing, stdout (``-``), a local file (appended to when it is also the
    resume file, else written fresh; flushed line by line so an interrupted sweep keeps its
    progress), or an object (``s3://…``: spooled, uploaded when the sweep ends).  With ``atomic`` a
    local file appears only complete (a listing that shards share)."""

    def __init__(self, target: str | None, *, append: bool = False, atomic: bool = False,
                 endpoint_url: str | None = None) -> None:  # fmt: skip
        self.target = target
        self.endpoint_url = endpoint_url
        self._file: TextIO | None = None
        self._tmp: str | None = None
        if target is None:
            return
        if target == "-":
            self._file = sys.stdout
        elif target.startswith("s3://"):
            fd, self._tmp = tempfile.mkstemp(prefix="snapcheck-audit-", suffix=".jsonl")
            self._file = os.fdopen(fd, "w+", encoding="utf-8")
            if append:
                self._prefill(target)
        elif atomic:
            d = os.path.dirname(os.path.abspath(target))
            fd, self._tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp", dir=d)
            self._file = os.fdopen(fd, "w", encoding="utf-8")
        else:
            self._file = open(target, "a" if append else "w", encoding="utf-8")  # noqa: SIM115

    def _prefill(self, target: str) -> None:
        from ..errors import SourceError, UsageError
        from ..storage import open_location

        assert self._file is not None
        storage, key = open_location(target, endpoint_url=self.endpoint_url)
        with contextlib.suppress(SourceError, UsageError):
            if storage.head(key) is None:
                return
            stream, _ = storage.open_read(key)
            with stream:
                while chunk := stream.read(1 << 20):
                    self._file.write(chunk.decode("utf-8", "replace"))

    def write(self, doc: dict[str, Any]) -> None:
        if self._file is not None:
            self._file.write(json.dumps(doc, sort_keys=False) + "\n")
            if self._tmp is None:
                self._file.flush()

    @property
    def stream(self) -> TextIO | None:
        return self._file

    def close(self, *, commit: bool = True) -> None:
        from ..errors import SourceError
        from ..storage import open_location

        f, target = self._file, self.target
        if f is None or target is None or f is sys.stdout:
            if f is sys.stdout:
                f.flush()
            return
        self._file = None
        try:
            if target.startswith("s3://"):
                assert self._tmp is not None
                if not commit:
                    return
                f.flush()
                f.seek(0)
                storage, key = open_location(target, endpoint_url=self.endpoint_url)
                up = storage.begin_upload(key, content_type="application/x-ndjson")
                try:
                    while chunk := f.read(1 << 20):
                        up.write(chunk.encode("utf-8"))
                    up.commit()
                except BaseException:
                    up.abort()
                    raise
            elif self._tmp is not None:
                f.flush()
                os.fsync(f.fileno())
                if commit:
                    os.replace(self._tmp, target)
                    self._tmp = None
            else:
                f.flush()
                with contextlib.suppress(OSError):
                    os.fsync(f.fileno())
        except OSError as e:
            raise SourceError(f"{target}: cannot write: {e.strerror or e}") from e
        finally:
            f.close()
            if self._tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(self._tmp)


def _build() -> click.Command:
    from ..cli import level_options, make_options, run_guarded, verify_policy_options

    @click.command(name="audit")
    @click.argument("location")
    @level_options
    @verify_policy_options
    @click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
                  help="Objects verified at once (default: the number of CPUs; more helps when the store is far away).")
    @click.option("--backend", type=click.Choice(["thread", "process"]), default="thread", show_default=True,
                  help="Run the objects in threads of this process or in spawned worker processes.")
    @click.option("--output", "-o", default=None, metavar="PATH",
                  help="Write one JSON line per object as it finishes (a file, - for stdout, or s3://bucket/key).")
    @click.option("--resume", default=None, metavar="PATH",
                  help="A results file of an earlier run: (key, ETag) pairs it judged sound (or not a snapshot) are "
                       "not read again. With the same PATH as --output, new lines are appended.")
    @click.option("--since", default=None, metavar="TIME",
                  help="Only objects modified at or after TIME: 2026-07-01, 2026-07-01T12:00:00Z, or an age: 36h, 7d.")
    @click.option("--quarantine", default=None, metavar="tag|move:PREFIX",
                  help="For corrupt objects: set S3 tags snapcheck-status=corrupt and snapcheck-finding=<code>, "
                       "or copy them (and a cachew companion) to PREFIX, confirm, then delete. Never for objects "
                       "that could not be read.")
    @click.option("--metrics-file", default=None, type=click.Path(dir_okay=False), metavar="PATH",
                  help="Write Prometheus text-format metrics here at the end (atomically).")
    @click.option("--shard", "shard_spec", default=None, envvar="SNAPCHECK_SHARD", metavar="I/N|N",
                  help="Audit only the objects whose blake2b(key) mod N is I. With N alone, I comes from "
                       "JOB_COMPLETION_INDEX (Kubernetes Indexed Job) or AWS_BATCH_JOB_ARRAY_INDEX; AWS Batch "
                       "array jobs shard themselves without this option. Also SNAPCHECK_SHARD.")
    @click.option("--listing", default=None, metavar="PATH",
                  help="Read the objects from a listing written by --list-only (a file or s3://bucket/key) "
                       "instead of listing the bucket, so that every shard sees the same objects.")
    @click.option("--list-only", is_flag=True,
                  help="List the location to --output (default stdout) as a listing for --listing, then exit.")
    @click.option("--dask-scheduler", default=None, metavar="ADDRESS",
                  help="Run the objects on a Dask cluster (pip install 'snapcheck[dask]'), e.g. tcp://host:8786.")
    @click.option("--endpoint-url", envvar="AWS_ENDPOINT_URL", default=None, help="S3 endpoint (also AWS_ENDPOINT_URL).")
    @click.option("--quiet", "-q", is_flag=True, help="No per-object lines on stderr; the summary table only.")
    def audit_command(location: str, level: str, strict: bool, allow_empty: bool, allow_unborn_head: bool,
                      allow_non_bare: bool, zstd_window: int, spool_dir: str | None, jobs: int | None,
                      backend: str, output: str | None, resume: str | None, since: str | None,
                      quarantine: str | None, metrics_file: str | None, shard_spec: str | None,
                      listing: str | None, list_only: bool, dask_scheduler: str | None,
                      endpoint_url: str | None, quiet: bool) -> None:  # fmt: skip
        """Verify every snapshot under LOCATION (s3://bucket/prefix, or a local directory standing in for a
        bucket): one JSON line per object to --output, a summary table on stderr.

        Exit 0 when every snapshot is sound, 1 when any is corrupt, 3 when any object (or the listing, or a
        quarantine) could not be finished: run again with --resume to pick up where it stopped."""

        def body() -> int:
            options = make_options(level, strict, allow_empty, allow_unborn_head, allow_non_bare, zstd_window,
                                   spool_dir)  # fmt: skip
            if list_only:
                return _list_only(location, output, endpoint_url)
            return _sweep(location, options, jobs=jobs, backend=backend, output=output, resume=resume,
                          since=since, quarantine=quarantine, metrics_file=metrics_file, shard_spec=shard_spec,
                          listing=listing, dask_scheduler=dask_scheduler, endpoint_url=endpoint_url,
                          quiet=quiet)  # fmt: skip

        run_guarded(body)

    return audit_command


def _list_only(location: str, output: str | None, endpoint_url: str | None) -> int:
    from ..audit import list_objects, write_listing

    objects, described = list_objects(location, endpoint_url=endpoint_url)
    sink = _Sink(output or "-", atomic=True, endpoint_url=endpoint_url)
    ok = False
    try:
        assert sink.stream is not None
        n = write_listing(objects, sink.stream, location=described)
        ok = True
    finally:
        sink.close(commit=ok)
    click.echo(f"snapcheck audit: listed {n} objects of {described}" + (f" to {output}" if output else ""), err=True)
    return 0


def _sweep(location: str, verify_options: Any, *, jobs: int | None, backend: str, output: str | None,
           resume: str | None, since: str | None, quarantine: str | None, metrics_file: str | None,
           shard_spec: str | None, listing: str | None, dask_scheduler: str | None,
           endpoint_url: str | None, quiet: bool) -> int:  # fmt: skip
    from ..audit import AuditOptions, AuditSummary, audit, parse_since, resolve_shard, write_atomically
    from ..errors import SourceError
    from ..report import ExitCode

    shard = resolve_shard(shard_spec)
    options = AuditOptions(
        verify=verify_options, jobs=jobs or os.cpu_count() or 1, backend=backend, resume=resume,
        since=parse_since(since) if since else None, quarantine=quarantine, shard=shard, listing=listing,
        endpoint_url=endpoint_url, dask_scheduler=dask_scheduler,
    )  # fmt: skip
    same = resume is not None and output is not None and _same_target(resume, output)
    sink = _Sink(output, append=same, endpoint_url=endpoint_url)
    summary = AuditSummary()
    err: IO[str] = sys.stderr
    interrupted = False
    try:
        for result in audit(location, options=options):
            summary.add(result)
            if not (same and result.resumed):
                sink.write(result.to_json())
            if not quiet and result.verdict in ("corrupt", "incomplete"):
                first = result.first_error
                note = f"  [{result.quarantine}]" if result.quarantine else ""
                click.echo(f"{result.verdict:<10} {result.key}  {first.code if first else ''}{note}", err=True)
    except SourceError as e:
        summary.failures.append(str(e))
    except KeyboardInterrupt:
        interrupted = True
        summary.failures.append("interrupted")
    finally:
        try:
            sink.close()
        except SourceError as e:
            summary.failures.append(str(e))
        summary.finished = time.time()
        err.write(summary.table())
        if metrics_file:
            write_atomically(metrics_file, summary.prometheus(shard=shard, location=location))
    if interrupted:
        return int(ExitCode.INTERRUPTED)
    return int(summary.exit_code)


def _same_target(a: str, b: str) -> bool:
    if a.startswith("s3://") or b.startswith("s3://"):
        return a == b
    return os.path.abspath(a) == os.path.abspath(b)
