"""The command line: exit codes and messages for bad input, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "snapcheck", *args], capture_output=True, input=input, timeout=120)


def test_missing_target_is_usage_error(tmp_path: Path) -> None:
    r = run("verify", str(tmp_path / "nope"))
    assert r.returncode == 2
    assert b"no such file or directory" in r.stderr
    assert b"Traceback" not in r.stderr


def test_unknown_option_is_usage_error() -> None:
    r = run("verify", "--level", "extreme", ".")
    assert r.returncode == 2
    assert b"Traceback" not in r.stderr


def test_unreadable_directory_is_could_not_finish(tmp_path: Path) -> None:
    d = tmp_path / "locked"
    d.mkdir()
    (d / "HEAD").write_text("ref: refs/heads/main\n")
    sub = d / "objects"
    sub.mkdir()
    sub.chmod(0)
    try:
        # as root the permission bits do not stop us; then the directory simply is not a mirror (exit 1)
        r = run("verify", str(d))
        assert r.returncode in (1, 3)
        assert b"Traceback" not in r.stderr
    finally:
        sub.chmod(0o755)


def test_empty_stdin_is_rejected() -> None:
    r = run("verify", "-", input=b"")
    assert r.returncode == 1
    assert b"Traceback" not in r.stderr


def test_version() -> None:
    r = run("--version")
    assert r.returncode == 0
    assert b"snapcheck" in r.stdout
