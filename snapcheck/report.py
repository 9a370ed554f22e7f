"""Findings, reports, the registry of finding codes, and the exit-code mapping.

Every problem snapcheck can report has a stable camelCase *code* (like git's fsck message ids),
registered once with its default severity, one sentence of meaning and what git itself would say
or do with such a file.  Codes are public API: ``docs/findings.md`` is generated from this registry
(``python -m snapcheck.docs``) and a test keeps the two in sync.

Modules that produce findings register their codes at import time with :func:`register`; the
registry is complete once :mod:`snapcheck.codes` (which imports every producer) is imported.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class Level(enum.StrEnum):
    """How deep verification goes (see DESIGN.md "Words")."""

    QUICK = "quick"
    STANDARD = "standard"
    FULL = "full"

    @property
    def rank(self) -> int:
        return {"quick": 0, "standard": 1, "full": 2}[self.value]

    def at_least(self, other: Level) -> bool:
        return self.rank >= other.rank


class ExitCode(enum.IntEnum):
    SOUND = 0
    CORRUPT = 1
    USAGE = 2
    INCOMPLETE = 3  # could not finish: I/O, network, permissions; worth a retry
    INTERRUPTED = 130


@dataclass(frozen=True)
class CodeInfo:
    code: str
    severity: Severity
    meaning: str
    git: str  # what git itself would say or do with such a file
    area: str  # the module/area that produces it, for grouping in the docs


_REGISTRY: dict[str, CodeInfo] = {}


def register(area: str, *codes: tuple[str, Severity, str, str]) -> None:
    """Register finding codes: ``(code, severity, meaning, git)`` tuples, all of one *area*."""
    for code, severity, meaning, git in codes:
        info = CodeInfo(code, severity, meaning, git, area)
        old = _REGISTRY.get(code)
        if old is not None and old != info:
            raise ValueError(f"finding code {code!r} registered twice with different text")
        _REGISTRY[code] = info


def code_info(code: str) -> CodeInfo:
    try:
        return _REGISTRY[code]
    except KeyError:
        raise KeyError(f"unregistered finding code {code!r}") from None


def registry() -> dict[str, CodeInfo]:
    return dict(_REGISTRY)


@dataclass(frozen=True)
class Finding:
    code: str
    severity: Severity
    path: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "severity": self.severity.value, "path": self.path, "message": self.message}


def finding(code: str, path: str, message: str, severity: Severity | None = None) -> Finding:
    """Make a finding with the registered default severity of *code* (unless overridden)."""
    info = code_info(code)
    return Finding(code, severity or info.severity, path, message)


@dataclass
class Summary:
    level: str = Level.STANDARD.value
    source: str = ""
    object_format: str = "sha1"
    refs: int = 0
    packs: int = 0
    objects: int = 0
    loose_objects: int = 0
    files: int = 0
    bytes_checked: int = 0
    bytes_read: int = 0
    objects_walked: int = 0
    duration_s: float = 0.0
    repository_root: str = ""
    manifest: bool = False
    created: str | None = None  # when the snapshot was taken, from its manifest
    head: str | None = None
    head_target: str | None = None
    not_checked: list[str] = field(default_factory=list)


SCHEMA_VERSION = 1
MAX_PER_CODE = 1000  # findings kept per code; the rest are counted (a million damaged refs make one report, not 1 GB)


@dataclass
class Report:
    target: str
    findings: list[Finding] = field(default_factory=list)
    summary: Summary = field(default_factory=Summary)
    strict: bool = False
    refs: dict[str, bytes] = field(default_factory=dict, repr=False)  # every ref (not serialised)
    suppressed: dict[str, int] = field(default_factory=dict)  # code -> findings beyond MAX_PER_CODE, counted
    _per_code: dict[str, int] = field(default_factory=dict, repr=False)

    def add(self, items: Iterable[Finding]) -> None:
        for f in items:
            n = self._per_code.get(f.code, 0) + 1
            self._per_code[f.code] = n
            if n <= MAX_PER_CODE or f.code in _INCOMPLETE_CODES:
                self.findings.append(f)
            else:
                self.suppressed[f.code] = self.suppressed.get(f.code, 0) + 1

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.WARNING]

    @property
    def incomplete(self) -> bool:
        """True when verification could not finish (I/O, network): the verdict is unknown."""
        return any(f.code in _INCOMPLETE_CODES for f in self.findings)

    @property
    def sound(self) -> bool:
        if self.incomplete or self.errors:
            return False
        return not (self.strict and self.warnings)

    @property
    def verdict(self) -> str:
        if self.incomplete:
            return "incomplete"
        return "sound" if self.sound else "corrupt"

    @property
    def exit_code(self) -> ExitCode:
        if self.incomplete:
            return ExitCode.INCOMPLETE
        return ExitCode.SOUND if self.sound else ExitCode.CORRUPT

    def codes(self) -> list[str]:
        return sorted({f.code for f in self.findings})

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "target": self.target,
            "verdict": self.verdict,
            "strict": self.strict,
            "summary": asdict(self.summary),
            "findings": [f.to_dict() for f in self.findings],
            "suppressed": dict(self.suppressed),
        }


# Codes whose presence means "could not finish" rather than "corrupt".
_INCOMPLETE_CODES = {"sourceUnreadable", "sourceInterrupted"}

register(
    "general",
    ("sourceUnreadable", Severity.ERROR,
     "The snapshot could not be read (I/O error, network failure, permission denied); the verdict is unknown.",
     "git would fail with an I/O error of its own; retry the verification."),
    ("sourceInterrupted", Severity.ERROR,
     "Reading the source stopped before its end for a reason outside the data (connection lost and not resumable).",
     "n/a: the bytes never arrived; retry."),
    ("unexpectedError", Severity.ERROR,
     "An internal error stopped a check; the file it names could not be judged and is treated as corrupt.",
     "n/a: please report this as a snapcheck bug with the message."),
)
