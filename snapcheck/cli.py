"""The command line: parse arguments, call the library, pick the format, map the exit code.

Exit codes (every command): 0 sound · 1 corrupt · 2 usage error · 3 could not finish · 130 interrupted.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, TypeVar

import click

from . import __version__
from .errors import SnapcheckError, SourceError, UsageError
from .formats import FORMATS
from .formats.text import render_text
from .options import Limits, VerifyOptions
from .report import ExitCode, Level, Report

if TYPE_CHECKING:
    from .publish import PublishResult

F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"snapcheck: {message}", err=True)
    sys.exit(code)


def level_options(f: F) -> F:
    f = click.option("--level", type=click.Choice([lv.value for lv in Level]), default=Level.STANDARD.value,
                     show_default=True,
                     help="quick: structure and cross-references; standard: + checksums and connectivity; "
                          "full: + every object inflated and hashed.")(f)
    return f


def verify_policy_options(f: F) -> F:
    for opt in reversed([
        click.option("--strict", is_flag=True, help="Warnings reject the snapshot too."),
        click.option("--allow-empty", is_flag=True, help="Accept a mirror with no refs or no objects."),
        click.option("--allow-unborn-head", is_flag=True, help="Accept a HEAD that names a branch that does not exist."),
        click.option("--allow-non-bare", is_flag=True, help="Accept core.bare = false."),
        click.option("--zstd-window", type=int, default=Limits().zstd_window, show_default=True,
                     help="Largest zstd window (bytes) a frame may demand; raise it for archives made with --long."),
        click.option("--spool-dir", type=click.Path(file_okay=False), default=None,
                     help="Where archive members needed by the graph are spooled (default: the system temp dir)."),
    ]):
        f = opt(f)
    return f


def limit_options(f: F) -> F:
    """One option per resource limit other than --zstd-window (docs/security.md), from the Limits fields."""
    defaults = Limits()
    for fld in reversed(dataclasses.fields(Limits)):
        if fld.name == "zstd_window":
            continue
        f = click.option(fld.metadata["flag"], fld.name, type=click.IntRange(1), show_default=True,
                         default=getattr(defaults, fld.name), help=fld.metadata["help"])(f)
    return f


def make_options(level: str, strict: bool, allow_empty: bool, allow_unborn_head: bool, allow_non_bare: bool,
                 zstd_window: int, spool_dir: str | None, quiet: bool = True,
                 limits: dict[str, int] | None = None) -> VerifyOptions:
    if zstd_window < 1 << 10:
        raise UsageError("--zstd-window must be at least 1024")
    return VerifyOptions(level=Level(level), strict=strict, allow_empty=allow_empty,
                         allow_unborn_head=allow_unborn_head, allow_non_bare=allow_non_bare,
                         limits=Limits(zstd_window=zstd_window, **(limits or {})), spool_dir=spool_dir, quiet=quiet)


LIMIT_NAMES = tuple(fld.name for fld in dataclasses.fields(Limits) if fld.name != "zstd_window")


def _limits(kwargs: dict[str, Any]) -> dict[str, int]:
    """Pop the limit options click passed to a command."""
    return {name: kwargs.pop(name) for name in LIMIT_NAMES if name in kwargs}


def run_guarded(fn: Callable[[], int]) -> NoReturn:
    """Run a command body; map exceptions to exit codes with a one-line message, never a traceback."""
    try:
        code = fn()
    except UsageError as e:
        _fail(str(e), ExitCode.USAGE)
    except SnapcheckError as e:
        _fail(str(e), e.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", ExitCode.INTERRUPTED)
    except BrokenPipeError:
        sys.exit(ExitCode.INCOMPLETE)
    except MemoryError:
        _fail("out of memory", ExitCode.INCOMPLETE)
    except OSError as e:
        _fail(f"{e.filename + ': ' if e.filename else ''}{e.strerror or e}", ExitCode.INCOMPLETE)
    except Exception as e:  # a bug: say so plainly, exit "could not finish"
        _fail(f"internal error ({type(e).__name__}: {e}); please report it", ExitCode.INCOMPLETE)
    sys.exit(code)


def _render(report: Report, fmt: str, quiet: bool) -> str:
    if quiet and fmt == "text":
        return render_text(report, show_info=False)
    return FORMATS[fmt](report)


class _Commands(click.Group):
    """The command group; ``audit`` (a module of its own, with its own imports) is loaded only when it is
    named or listed, so that ``snapcheck verify`` does not import it."""

    _LAZY: ClassVar[dict[str, tuple[str, str]]] = {"audit": ("snapcheck.commands.audit", "audit_command")}

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self._LAZY:
            module, attr = self._LAZY[cmd_name]
            import importlib

            self.add_command(getattr(importlib.import_module(module), attr), cmd_name)
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._LAZY))


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="snapcheck")
def main() -> None:
    """Verify, archive, restore and audit git mirror snapshots."""


@main.command()
@click.argument("target")
@level_options
@verify_policy_options
@limit_options
@click.option("--format", "fmt", type=click.Choice(sorted(FORMATS)), default="text", show_default=True)
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors (and the verdict line); no progress bar.")
@click.option("--endpoint-url", envvar="AWS_ENDPOINT_URL", default=None, help="S3 endpoint (also AWS_ENDPOINT_URL).")
def verify(target: str, level: str, strict: bool, allow_empty: bool, allow_unborn_head: bool, allow_non_bare: bool,
           zstd_window: int, spool_dir: str | None, fmt: str, quiet: bool, endpoint_url: str | None, **limit_opts: int) -> None:
    """Verify TARGET: a mirror directory, an archive file (tar, tar.zst, tar.gz), - for stdin, or s3://bucket/key."""
    from .verifier import verify as do_verify

    def body() -> int:
        options = make_options(level, strict, allow_empty, allow_unborn_head, allow_non_bare, zstd_window, spool_dir, quiet,
                               _limits(limit_opts))
        report = do_verify(target, options, endpoint_url=endpoint_url)
        click.echo(_render(report, fmt, quiet), nl=False)
        return int(report.exit_code)

    run_guarded(body)


def publish_options(f: F) -> F:
    for opt in reversed([
        click.option("--baseline", default="auto", show_default=True,
                     help="auto: compare with the snapshot now at DEST; none: no comparison; or a PATH to a snapshot."),
        click.option("--force", is_flag=True, help="Publish even if the baseline guard objects."),
        click.option("--max-ref-loss", type=click.FloatRange(0, 1), default=0.10, show_default=True,
                     help="Largest fraction of refs the new snapshot may lose against the baseline."),
        click.option("--max-object-loss", type=click.FloatRange(0, 1), default=0.10, show_default=True,
                     help="Largest fraction of objects the new snapshot may lose against the baseline."),
        click.option("--format", "fmt", type=click.Choice(sorted(FORMATS)), default="text", show_default=True),
        click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors and the verdict line."),
        click.option("--endpoint-url", envvar="AWS_ENDPOINT_URL", default=None,
                     help="S3 endpoint (also AWS_ENDPOINT_URL)."),
    ]):
        f = opt(f)
    return f


def _report_publish(result: PublishResult, fmt: str, quiet: bool) -> int:
    out = _render(result.report, fmt, quiet)
    click.echo(out, nl=False, err=result.location == "-")
    if result.location == "-":
        verdict = "verified" if result.committed else "FAILED verification (the bytes on stdout must not be used)"
        click.echo(f"streamed {result.size} bytes to stdout: {verdict}", err=True)
    elif result.committed:
        click.echo(f"published {result.location} ({result.size} bytes, sha256 {result.sha256})", err=True)
    else:
        click.echo(f"NOT published: {result.location} left as it was", err=True)
    return int(result.report.exit_code)


@main.command()
@click.argument("mirror", type=click.Path(exists=True, file_okay=False))
@click.argument("dest")
@level_options
@verify_policy_options
@limit_options
@publish_options
@click.option("--compression-level", type=click.IntRange(1, 22), default=3, show_default=True)
@click.option("--threads", type=click.IntRange(0, 256), default=0, show_default=True,
              help="zstd worker threads (0: compress in the calling thread).")
def archive(mirror: str, dest: str, level: str, strict: bool, allow_empty: bool, allow_unborn_head: bool,
            allow_non_bare: bool, zstd_window: int, spool_dir: str | None, baseline: str, force: bool,
            max_ref_loss: float, max_object_loss: float, fmt: str, quiet: bool, endpoint_url: str | None,
            compression_level: int, threads: int, **limit_opts: int) -> None:
    """Capture the live MIRROR consistently (git may keep writing), write a verified .tar.zst with a manifest,
    and publish it at DEST (a file, -, s3://bucket/key, or a key in a local bucket) only if it verifies."""
    from .archive import ArchiveOptions
    from .archive import archive as do_archive
    from .publish import PublishOptions

    def body() -> int:
        vopts = make_options(level, strict, allow_empty, allow_unborn_head, allow_non_bare, zstd_window, spool_dir, quiet,
                             _limits(limit_opts))
        popts = PublishOptions(verify=vopts, baseline=baseline, force=force, max_ref_loss=max_ref_loss,
                               max_object_loss=max_object_loss, endpoint_url=endpoint_url)
        result = do_archive(mirror, dest, ArchiveOptions(publish=popts, compression_level=compression_level,
                                                         threads=threads))
        return _report_publish(result.publish, fmt, quiet)

    run_guarded(body)


@main.command()
@click.argument("source")
@click.argument("dest")
@level_options
@verify_policy_options
@limit_options
@publish_options
@click.option("--expect-ref", "expect_refs", multiple=True, help="A ref that must be present (repeatable).")
@click.option("--min-refs", type=click.IntRange(0), default=0, show_default=True, help="Fewest refs accepted.")
@click.option("--expect-head", default=None, help="The commit HEAD must resolve to.")
@click.option("--cachew-commit-header", is_flag=True,
              help="Also record HEAD's commit as x-cachew-snapshot-commit metadata, as cachew does.")
def put(source: str, dest: str, level: str, strict: bool, allow_empty: bool, allow_unborn_head: bool,
        allow_non_bare: bool, zstd_window: int, spool_dir: str | None, baseline: str, force: bool,
        max_ref_loss: float, max_object_loss: float, fmt: str, quiet: bool, endpoint_url: str | None,
        expect_refs: tuple[str, ...], min_refs: int, expect_head: str | None, cachew_commit_header: bool,
        **limit_opts: int) -> None:
    """Gate an existing pipeline: stream SOURCE (an archive file or - for stdin) once, verifying it as it goes and
    uploading it to DEST as it goes; the upload is committed only if the snapshot verifies (exit 0), otherwise it
    is aborted and nothing appears at DEST (exit 1)."""
    from .publish import PublishOptions, copy_stream, publish

    def body() -> int:
        vopts = make_options(level, strict, allow_empty, allow_unborn_head, allow_non_bare, zstd_window, spool_dir, quiet,
                             _limits(limit_opts))
        popts = PublishOptions(verify=vopts, baseline=baseline, force=force, max_ref_loss=max_ref_loss,
                               max_object_loss=max_object_loss, expect_refs=expect_refs, min_refs=min_refs,
                               expect_head=expect_head, cachew_commit_header=cachew_commit_header,
                               endpoint_url=endpoint_url)
        if source == "-":
            result = publish(copy_stream(sys.stdin.buffer), dest, popts)
        else:
            if os.path.isdir(source):
                raise UsageError(f"{source} is a directory: put takes an archive; use `snapcheck archive` for a mirror")
            try:
                f = open(source, "rb")  # noqa: SIM115 - closed by the with below; open errors must map to exit 3
            except OSError as e:
                raise SourceError(f"cannot open {source}: {e.strerror or e}") from e
            with f:
                result = publish(copy_stream(f), dest, popts)
        return _report_publish(result, fmt, quiet)

    run_guarded(body)


@main.command()
@click.argument("source")
@click.argument("dest_dir", type=click.Path(file_okay=False))
@level_options
@verify_policy_options
@limit_options
@click.option("--replace", is_flag=True, help="If DEST_DIR exists, swap it atomically for the restored snapshot.")
@click.option("--format", "fmt", type=click.Choice(sorted(FORMATS)), default="text", show_default=True)
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors and the verdict line.")
@click.option("--endpoint-url", envvar="AWS_ENDPOINT_URL", default=None, help="S3 endpoint (also AWS_ENDPOINT_URL).")
def restore(source: str, dest_dir: str, level: str, strict: bool, allow_empty: bool, allow_unborn_head: bool,
            allow_non_bare: bool, zstd_window: int, spool_dir: str | None, replace: bool, fmt: str, quiet: bool,
            endpoint_url: str | None, **limit_opts: int) -> None:
    """Verify SOURCE (an archive file, - for stdin, s3://bucket/key, or a key in a local bucket) while extracting
    it into a private sibling of DEST_DIR, then install it atomically. On any failure DEST_DIR is untouched."""
    from .restore import restore as do_restore

    def body() -> int:
        options = make_options(level, strict, allow_empty, allow_unborn_head, allow_non_bare, zstd_window, spool_dir, quiet,
                               _limits(limit_opts))
        result = do_restore(source, dest_dir, options, replace=replace, endpoint_url=endpoint_url)
        click.echo(_render(result.report, fmt, quiet), nl=False)
        if result.installed:
            click.echo(f"restored into {result.dest}", err=True)
        else:
            click.echo(f"not restored: {result.dest} left untouched", err=True)
        return int(result.report.exit_code)

    run_guarded(body)


@main.command()
@click.argument("directory", type=click.Path(file_okay=False), default="demo", required=False)
def demo(directory: str) -> None:
    """Run the main job on an embedded default: build a real mirror, store good and broken snapshots in
    DIRECTORY/bucket (a local directory standing in for S3), verify them all and print the verdicts."""
    from pathlib import Path

    from .demo import run_demo
    from .formats.text import render_text

    def body() -> int:
        results = run_demo(Path(directory))
        for _target, report in results:
            click.echo(render_text(report, show_info=False))
        good = [r for t, r in results if not t.endswith(("-cut.tar.zst", "boundary.tar.zst"))]
        bad = [r for t, r in results if t.endswith(("-cut.tar.zst", "boundary.tar.zst"))]
        ok = all(r.sound for r in good) and not any(r.sound for r in bad)
        click.echo("demo: " + ("the good snapshots verified sound and the broken ones were rejected"
                               if ok else "UNEXPECTED verdicts above"))
        return 0 if ok else 1

    run_guarded(body)


if __name__ == "__main__":
    main()
