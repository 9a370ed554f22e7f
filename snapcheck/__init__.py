"""snapcheck: verify, archive, restore and audit git mirror snapshots.

The public API::

    import snapcheck
    report = snapcheck.verify("/srv/mirrors/repo.git")          # a directory
    report = snapcheck.verify("snap.tar.zst", snapcheck.VerifyOptions(level=snapcheck.Level.FULL))
    report = snapcheck.verify("s3://bucket/key")                 # an S3 object, streamed
    report.verdict, report.exit_code, report.findings, report.summary
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import SnapcheckError, SourceError, UsageError
from .options import Limits, VerifyOptions
from .report import ExitCode, Finding, Level, Report, Severity, Summary

_LAZY = {"verify", "verify_directory", "verify_file", "verify_stream"}


def __getattr__(name: str) -> object:
    # The verifier pulls in every format module; import it on first use so that importing one parser
    # (snapcheck.gitformats.x) stays light.
    if name in _LAZY:
        from . import verifier as _verify_module

        return getattr(_verify_module, name)
    raise AttributeError(f"module 'snapcheck' has no attribute {name!r}")

__all__ = [
    "ExitCode",
    "Finding",
    "Level",
    "Limits",
    "Report",
    "Severity",
    "SnapcheckError",
    "SourceError",
    "Summary",
    "UsageError",
    "VerifyOptions",
    "__version__",
    "verify",
    "verify_directory",
    "verify_file",
    "verify_stream",
]
