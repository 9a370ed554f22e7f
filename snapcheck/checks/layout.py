"""Finding the repository inside an archive, in one forward pass.

An archive may hold the repository at its root (``HEAD``), under ``./`` (cachew: ``./HEAD``; the tar
reader already strips ``./``), under one top directory (``repo.git/HEAD``), or as the ``.git`` of a
non-bare clone (``.git/HEAD``, ``top/.git/HEAD``: cachew's workstation snapshots).  The root is decided
by the first member that only a git directory has (``HEAD``, ``packed-refs``, ``objects/pack/…``,
``objects/xx/<hex>``, ``objects/info/…``, ``refs/heads|tags/…``) or by the first ``.git/`` path
component, whichever comes first; a ``.git`` root wins over a guess made from a work-tree file.
Members seen before the decision are replayed once it is made when they fall under the root: directories
always, small files (``config`` often comes before ``HEAD`` in directory-read order) up to a bounded
total held in memory; larger early files are work-tree files of a clone.  A marker for a *different* root later is a second
repository: an error.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator

from ..report import Finding, Severity, finding, register
from ..sources.base import Entry, EntryKind

register(
    "archive-layout",
    ("archiveNoRepository", Severity.ERROR,
     "No git repository was found in the archive (no HEAD, objects/ or refs/ at its root, under ./, under one top "
     "directory, or as the .git of a clone).",
     "After extraction, git: `fatal: not a git repository`."),
    ("archiveMultipleRepositories", Severity.ERROR,
     "The archive holds git files under more than one root: it is not the snapshot of one mirror.",
     "git sees only the directory it is pointed at; the rest is silently ignored."),
)

_MARKER = re.compile(
    r"^(?:HEAD|packed-refs|objects/pack/[^/]+|objects/info/[^/]+|objects/[0-9a-f]{2}/[0-9a-f]{38,62}|refs/(?:heads|tags)/.+)$"
)


def _candidate(path: str) -> tuple[str, bool] | None:
    """(root prefix, is a .git dir) when *path* marks a repository root, else None."""
    parts = path.split("/")
    # a .git component at depth 0 or 1
    for depth in (0, 1):
        if len(parts) > depth + 1 and parts[depth] == ".git":
            return "/".join(parts[: depth + 1]) + "/", True
    for depth in (0, 1):
        rest = "/".join(parts[depth:])
        if len(parts) > depth and _MARKER.match(rest):
            return ("/".join(parts[:depth]) + "/") if depth else "", False
    return None


PENDING_FILE_MAX = 1 << 20  # early files larger than this are never repository files we must see again
PENDING_TOTAL_MAX = 16 << 20
PENDING_ENTRY_COST = 512  # charged per held member (the Entry, its path, its stream object)


class RootFinder:
    def __init__(self) -> None:
        self.root: str | None = None
        self.embedded = False  # the repository is the .git of a non-bare clone
        self.findings: list[Finding] = []
        self.outside = 0  # members outside the repository (a clone's work tree)
        self._pending: list[Entry] = []
        self._pending_bytes = 0
        self._other_roots: set[str] = set()

    def map(self, entries: Iterable[Entry]) -> Iterator[Entry]:
        """Yield the repository's entries with repository-relative paths."""
        for e in entries:
            if self.root is None:
                cand = _candidate(e.path)
                if cand is None:
                    self._hold_early(e)
                    continue
                self.root, self.embedded = cand
                for d in self._pending:
                    rel = self._relative(d.path)
                    if rel is not None:
                        d.path = rel
                        yield d
                    else:
                        self.outside += 1
                self._pending.clear()
            rel = self._relative(e.path)
            if rel is None:
                cand = _candidate(e.path)
                if cand is not None and cand[0] not in self._other_roots and not self._inside_root(cand[0]):
                    self._other_roots.add(cand[0])
                    self.findings.append(finding(
                        "archiveMultipleRepositories", e.path,
                        f"{e.path}: git files under a second root {cand[0] or './'!r} besides {self.root or './'!r}"))
                self.outside += 1
                continue
            e.path = rel
            yield e
        if self.root is None:
            self.findings.append(finding("archiveNoRepository", "",
                                         "no git repository found in the archive (no HEAD, objects/ or refs/ at its root, "
                                         "under ./, under one top directory, or in a .git directory)"))

    def _hold_early(self, e: Entry) -> None:
        """Keep a member seen before the root is known, so it can be replayed (bounded in bytes and,
        through a charge per member, in count: a million empty members must not pile up)."""
        cost = PENDING_ENTRY_COST
        if e.kind is EntryKind.FILE and e.stream is not None and e.local_path is None:
            if e.size > PENDING_FILE_MAX or self._pending_bytes + e.size + cost > PENDING_TOTAL_MAX:
                self.outside += 1
                return  # too large to be a file we must see again; its data is skipped by the source
            data = e.stream.read(e.size + 1)
            self._pending_bytes += len(data)
            e.stream = io.BytesIO(data)
        elif self._pending_bytes + cost > PENDING_TOTAL_MAX:
            self.outside += 1
            return
        self._pending_bytes += cost
        self._pending.append(e)

    def _inside_root(self, cand_root: str) -> bool:
        assert self.root is not None
        return cand_root.startswith(self.root)

    def _relative(self, path: str) -> str | None:
        assert self.root is not None
        if self.root == "":
            return path
        if path == self.root.rstrip("/"):
            return ""
        if path.startswith(self.root):
            return path[len(self.root):]
        return None
