"""The baseline guard compares a new snapshot with the one it would replace."""

from __future__ import annotations

from snapcheck.baseline import SnapshotFacts, check_baseline


def codes(new: SnapshotFacts, old: SnapshotFacts | None, **kw: float) -> list[str]:
    return [f.code for f in check_baseline(new, old, **kw)]


def test_no_previous_snapshot_passes() -> None:
    assert codes(SnapshotFacts(0, 0), None) == []


def test_empty_over_good_is_refused() -> None:
    assert codes(SnapshotFacts(0, 0), SnapshotFacts(120, 5000)) == ["baselineNoRefs", "baselineObjectsShrank"]


def test_small_loss_passes_large_loss_refused() -> None:
    old = SnapshotFacts(1000, 100_000)
    assert codes(SnapshotFacts(950, 99_000), old) == []
    assert codes(SnapshotFacts(899, 99_000), old) == ["baselineRefsShrank"]
    assert codes(SnapshotFacts(1000, 80_000), old) == ["baselineObjectsShrank"]
    assert codes(SnapshotFacts(899, 99_000), old, max_ref_loss=0.2) == []


def test_growth_passes() -> None:
    assert codes(SnapshotFacts(2000, 200_000), SnapshotFacts(1000, 100_000)) == []


def test_older_snapshot_refused() -> None:
    old = SnapshotFacts(10, 10, created="2026-11-25T10:00:00Z")
    assert codes(SnapshotFacts(10, 10, created="2026-11-25T09:00:00Z"), old) == ["baselineOlder"]
    assert codes(SnapshotFacts(10, 10, created="2026-11-25T11:00:00+00:00"), old) == []
