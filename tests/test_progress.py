"""The progress bar appears on a terminal and never in a pipe or with --quiet."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
from collections.abc import Callable
from pathlib import Path


def _run_with_tty_stderr(args: list[str]) -> tuple[int, bytes]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    p = subprocess.Popen([sys.executable, "-m", "snapcheck", *args], stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        elif p.poll() is not None:
            break
    os.close(master)
    return p.wait(), out


def _archive(repo: Path, tmp: Path) -> Path:
    out = tmp / "a.tar.zst"
    subprocess.run(f"tar -cpf - -C '{repo}' . | zstd -q -c > '{out}'", shell=True, check=True)
    return out


def test_progress_on_a_terminal_only(mirrors: Callable[[str], Path], tmp_path: Path) -> None:
    archive = _archive(mirrors("gc_bitmaps"), tmp_path)
    rc, err = _run_with_tty_stderr(["verify", str(archive)])
    assert rc == 0
    assert b"B/s" in err and b"%|" in err  # tqdm's bar
    rc, err = _run_with_tty_stderr(["verify", "--quiet", str(archive)])
    assert rc == 0
    assert b"B/s" not in err
    piped = subprocess.run([sys.executable, "-m", "snapcheck", "verify", str(archive)], capture_output=True)
    assert piped.returncode == 0 and b"B/s" not in piped.stderr
