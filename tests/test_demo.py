"""The README's first command: `snapcheck demo DIR` on a fresh directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_demo_runs_the_main_job(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "snapcheck", "demo", str(tmp_path / "demo")], capture_output=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    out = r.stdout.decode()
    assert "the good snapshots verified sound and the broken ones were rejected" in out
    assert "tarMissingEndMarker" in out and "packedRefsPeeledUnterminated" in out
    bucket = tmp_path / "demo" / "bucket"
    assert (bucket / "git" / "archived-by-snapcheck.tar.zst").is_file()
    assert (tmp_path / "demo" / "restored.git" / "HEAD").is_file()
    # a second run refuses to overwrite a non-empty directory (exit 2, no traceback)
    again = subprocess.run([sys.executable, "-m", "snapcheck", "demo", str(tmp_path / "demo")], capture_output=True,
                           timeout=120)
    assert again.returncode == 2 and b"Traceback" not in again.stderr
