"""The human-readable report: one line per finding, then a verdict line."""

from __future__ import annotations

from ..report import Report, Severity

_ORDER = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def render_text(report: Report, *, show_info: bool = True) -> str:
    lines: list[str] = []
    for f in sorted(report.findings, key=lambda f: _ORDER[f.severity]):
        if f.severity is Severity.INFO and not show_info:
            continue
        lines.append(f"{f.severity.value}: [{f.code}] {f.message}")
    for code, n in sorted(report.suppressed.items()):
        lines.append(f"... and {n} more [{code}] finding(s) not shown")
    s = report.summary
    head = f"HEAD -> {s.head_target or '(detached)'} {s.head[:12] if s.head else '(unresolved)'}"
    lines.append(
        f"{report.target}: {report.verdict.upper()} at level {s.level} — "
        f"{len(report.errors)} error(s), {len(report.warnings)} warning(s); "
        f"{s.refs} refs, {s.packs} packs, {s.objects} objects ({s.object_format}), {head}; "
        f"{_size(s.bytes_read)} read in {s.duration_s:.2f} s"
    )
    for note in s.not_checked:
        lines.append(f"note: not checked: {note}")
    return "\n".join(lines) + "\n"
