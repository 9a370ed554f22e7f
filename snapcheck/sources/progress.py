"""A progress bar (tqdm, on stderr) over a byte stream, shown only when stderr is a terminal."""

from __future__ import annotations

import sys
from typing import Any


class ProgressReader:
    """Wraps a readable stream; counts the bytes read into a tqdm bar (closed at EOF or ``close``)."""

    def __init__(self, raw: Any, *, total: int | None, label: str) -> None:
        import shutil

        from tqdm import tqdm

        self._raw = raw
        cols = shutil.get_terminal_size((100, 20)).columns or 100  # a pty of unknown size reports 0
        self._bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=label[-40:],
                         file=sys.stderr, leave=False, ncols=min(cols, 120), mininterval=0.5)

    def read(self, n: int = -1, /) -> bytes:
        b: bytes = self._raw.read(n)
        if b:
            self._bar.update(len(b))
        return b

    def readinto(self, buf: Any) -> int:
        n: int = self._raw.readinto(buf)
        if n:
            self._bar.update(n)
        return n

    def close(self) -> None:
        self._bar.close()


def wants_progress(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()
