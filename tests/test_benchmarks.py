"""The benchmark script runs end to end (on a small mirror, one run per row): every row is measured,
snapcheck exits 0 on every sound variant it derives, and the markdown table lands between the markers
of a document without touching the rest."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def test_benchmark_runs_every_row(mirrors: Callable[[str], Path], tmp_path: Path) -> None:
    repo = tmp_path / "base.git"
    shutil.copytree(mirrors("gc_bitmaps"), repo, symlinks=True)
    doc = tmp_path / "perf.md"
    doc.write_text("# head\n\n<!-- benchmark table: start -->\nold\n<!-- benchmark table: end -->\n\ntail text\n")
    r = subprocess.run([sys.executable, "-m", "benchmarks", "--work", str(tmp_path / "work"), "--repo", str(repo),
                        "--runs", "1", "--markdown", str(doc)],
                       cwd=PROJECT, capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 0, r.stderr
    rows = {line.split("|")[1].strip(): line for line in r.stdout.splitlines()
            if line.startswith("| ") and not line.startswith("| row")}
    assert set(rows) == {"quick", "standard-bitmap", "standard-plain", "full", "archive-standard"}
    assert all(line.rstrip().endswith("| [0] |") for line in rows.values()), rows
    text = doc.read_text()
    assert text.startswith("# head\n") and text.endswith("tail text\n") and "old" not in text
    assert "objects inflated with zlib-ng" in text and "`python -S -c pass`" in text
    for name in rows:
        assert f"| {name} |" in text
