"""The baseline guard: refuse to publish a snapshot that is empty, shrank sharply, or is older than the
snapshot it would replace (the poison cycle: an empty mirror re-uploaded over a good one, forever).

Pure: it compares two :class:`SnapshotFacts`; where the facts come from (the object metadata snapcheck
writes, a manifest, a verification report) is the caller's business.
"""

from __future__ import annotations

from dataclasses import dataclass

from .report import Finding, Severity, finding, register

register(
    "baseline",
    ("baselineNoRefs", Severity.ERROR,
     "The new snapshot has no refs while the one it would replace has some: publishing it would replace a good "
     "mirror with an empty one. Override with --force.",
     "n/a (git would happily serve an empty mirror)."),
    ("baselineRefsShrank", Severity.ERROR,
     "The new snapshot has lost more refs than the threshold allows, against the snapshot it would replace. "
     "Override with --force or raise --max-ref-loss.",
     "n/a: git cannot tell; clones from it would miss branches and tags."),
    ("baselineObjectsShrank", Severity.ERROR,
     "The new snapshot has lost more objects than the threshold allows, against the snapshot it would replace. "
     "Override with --force or raise --max-object-loss.",
     "n/a: git cannot tell; history would be missing."),
    ("baselineOlder", Severity.ERROR,
     "The new snapshot was taken before the snapshot it would replace. Override with --force.",
     "n/a: a stale mirror would be served."),
    ("baselineUnreadable", Severity.WARNING,
     "The snapshot currently at the destination could not be read or judged, so no baseline comparison was made.",
     "n/a."),
)


@dataclass(frozen=True)
class SnapshotFacts:
    refs: int
    objects: int
    created: str | None = None  # RFC 3339 UTC, comparable as strings when both are in that form
    head: str | None = None
    source: str = ""


def check_baseline(new: SnapshotFacts, old: SnapshotFacts | None, *, max_ref_loss: float = 0.10,
                   max_object_loss: float = 0.10, dest: str = "") -> list[Finding]:
    """Findings that make publishing *new* over *old* unsafe (none when *old* is None)."""
    if old is None:
        return []
    out: list[Finding] = []
    where = dest or old.source or "destination"
    if new.refs == 0 and old.refs > 0:
        out.append(finding("baselineNoRefs", where,
                           f"{where}: the new snapshot has no refs; the one it would replace has {old.refs}"))
    elif old.refs and (old.refs - new.refs) / old.refs > max_ref_loss:
        out.append(finding("baselineRefsShrank", where,
                           f"{where}: refs would drop from {old.refs} to {new.refs} "
                           f"({(old.refs - new.refs) / old.refs:.0%} lost, limit {max_ref_loss:.0%})"))
    if old.objects and (old.objects - new.objects) / old.objects > max_object_loss:
        out.append(finding("baselineObjectsShrank", where,
                           f"{where}: objects would drop from {old.objects} to {new.objects} "
                           f"({(old.objects - new.objects) / old.objects:.0%} lost, limit {max_object_loss:.0%})"))
    if new.created and old.created and _norm(new.created) < _norm(old.created):
        out.append(finding("baselineOlder", where,
                           f"{where}: the new snapshot ({new.created}) is older than the one it would replace ({old.created})"))
    return out


def _norm(ts: str) -> str:
    return ts.replace("+00:00", "Z")
