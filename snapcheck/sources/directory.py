"""Entries of a snapshot that is a directory on disk (a live or restored mirror).

Walks the tree without following symlinks, in sorted order (so reports are reproducible), and yields
one :class:`Entry` per directory, file, link or special file.  File bytes are not read here: the
entry carries ``local_path`` so checkers may mmap or seek, and ``stream`` is opened lazily by
:func:`open_entry`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

from ..errors import SourceError
from .base import Entry, EntryKind


def walk_directory(root: Path) -> Iterator[Entry]:
    """Yield entries below *root* (paths relative to it); raise SourceError if it cannot be read."""
    root = Path(root)
    try:
        top = root.lstat()
    except OSError as e:
        raise SourceError(f"cannot read {root}: {e.strerror or e}") from e
    if not stat.S_ISDIR(top.st_mode):
        raise SourceError(f"{root} is not a directory")
    stack: list[str] = [""]
    while stack:
        rel = stack.pop()
        here = root / rel if rel else root
        try:
            with os.scandir(here) as it:
                items = sorted(it, key=lambda d: d.name)
        except OSError as e:
            raise SourceError(f"cannot list {here}: {e.strerror or e}") from e
        subdirs: list[str] = []
        for d in items:
            path = f"{rel}/{d.name}" if rel else d.name
            try:
                st = d.stat(follow_symlinks=False)
            except OSError as e:
                raise SourceError(f"cannot stat {d.path}: {e.strerror or e}") from e
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISDIR(st.st_mode):
                yield Entry(path, EntryKind.DIR, 0, mode=mode, local_path=Path(d.path))
                subdirs.append(path)
            elif stat.S_ISREG(st.st_mode):
                yield Entry(path, EntryKind.FILE, st.st_size, mode=mode, local_path=Path(d.path))
            elif stat.S_ISLNK(st.st_mode):
                try:
                    target = os.readlink(d.path)
                except OSError as e:
                    raise SourceError(f"cannot read link {d.path}: {e.strerror or e}") from e
                yield Entry(path, EntryKind.SYMLINK, 0, mode=mode, link_target=target, local_path=Path(d.path))
            else:
                yield Entry(path, EntryKind.OTHER, 0, mode=mode, local_path=Path(d.path))
        stack.extend(reversed(subdirs))
