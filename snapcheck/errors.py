"""Typed exceptions, one base class.  Data problems are findings, not exceptions: these are for
usage mistakes and for environments that stop a run (I/O, network, permissions)."""

from __future__ import annotations


class SnapcheckError(Exception):
    """Base of every exception snapcheck raises on purpose."""

    exit_code = 3


class UsageError(SnapcheckError):
    """The caller asked for something that cannot be done (bad target, bad option)."""

    exit_code = 2


class SourceError(SnapcheckError):
    """The snapshot's bytes could not be read (I/O, network, permission): worth a retry."""

    exit_code = 3


class LimitExceeded(SnapcheckError):
    """A configured resource limit was hit; reported as a finding by the caller."""

    exit_code = 1

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
