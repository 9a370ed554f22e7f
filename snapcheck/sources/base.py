"""The entry: one file (or directory, link, ...) of a snapshot, as any source yields it."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO


class EntryKind(enum.StrEnum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    OTHER = "other"  # device, fifo, socket: never part of a sound mirror


@dataclass
class Entry:
    """One member of a snapshot.

    ``path`` is relative to the snapshot root, POSIX separators, no leading ``./`` (the repository
    root is found later).  For a FILE, ``stream`` yields its bytes; a source whose data ends early
    (a cut tar member) yields fewer than ``size`` bytes and reports that itself.  ``local_path`` is
    set when the bytes already lie on disk (directory source): checkers may then seek or mmap
    instead of streaming.  The stream must be consumed (or abandoned) before the next entry is
    requested from a forward-only source.
    """

    path: str
    kind: EntryKind
    size: int
    stream: BinaryIO | None = None
    local_path: Path | None = None
    link_target: str | None = None
    mode: int = 0o644
