"""The command line: parse arguments, call the library, pick the format, map the exit code.

Exit codes (every command): 0 sound · 1 corrupt · 2 usage error · 3 could not finish · 130 interrupted.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from . import __version__
from .errors import SnapcheckError, UsageError
from .formats import FORMATS
from .options import Limits, VerifyOptions
from .report import ExitCode, Level

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


def make_options(level: str, strict: bool, allow_empty: bool, allow_unborn_head: bool, allow_non_bare: bool,
                 zstd_window: int, spool_dir: str | None, quiet: bool = True) -> VerifyOptions:
    if zstd_window < 1 << 10:
        raise UsageError("--zstd-window must be at least 1024")
    return VerifyOptions(level=Level(level), strict=strict, allow_empty=allow_empty,
                         allow_unborn_head=allow_unborn_head, allow_non_bare=allow_non_bare,
                         limits=Limits(zstd_window=zstd_window), spool_dir=spool_dir, quiet=quiet)


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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="snapcheck")
def main() -> None:
    """Verify, archive, restore and audit git mirror snapshots."""


@main.command()
@click.argument("target")
@level_options
@verify_policy_options
@click.option("--format", "fmt", type=click.Choice(sorted(FORMATS)), default="text", show_default=True)
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors (and the verdict line); no progress bar.")
@click.option("--endpoint-url", envvar="AWS_ENDPOINT_URL", default=None, help="S3 endpoint (also AWS_ENDPOINT_URL).")
def verify(target: str, level: str, strict: bool, allow_empty: bool, allow_unborn_head: bool, allow_non_bare: bool,
           zstd_window: int, spool_dir: str | None, fmt: str, quiet: bool, endpoint_url: str | None) -> None:
    """Verify TARGET: a mirror directory, an archive file (tar, tar.zst, tar.gz), - for stdin, or s3://bucket/key."""
    from .verifier import verify as do_verify

    def body() -> int:
        options = make_options(level, strict, allow_empty, allow_unborn_head, allow_non_bare, zstd_window,
                               spool_dir, quiet)
        report = do_verify(target, options, endpoint_url=endpoint_url)
        out = FORMATS[fmt](report)
        if quiet and fmt == "text":
            from .formats.text import render_text

            out = render_text(report, show_info=False)
        click.echo(out, nl=False)
        return int(report.exit_code)

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
