"""Peel lines of packed-refs against the objects: the one record-boundary cut that graph knowledge can see
(a cut between an annotated tag's line and its ``^`` line, under the ``fully-peeled`` trait), and a
recorded peel that is wrong."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from snapcheck.options import VerifyOptions
from snapcheck.report import Level
from snapcheck.verifier import verify

import gitrepos


def _lines(repo: Path) -> list[bytes]:
    return (repo / "packed-refs").read_bytes().split(b"\n")


def test_cut_before_last_peel_line_is_found(mirror_copy: Callable[[str], Path]) -> None:
    repo = mirror_copy("gc_bitmaps")
    lines = _lines(repo)
    last_peel = max(i for i, line in enumerate(lines) if line.startswith(b"^"))
    # a cut exactly at the record boundary before the last ^ line: well-formed, git reads it without a word
    (repo / "packed-refs").write_bytes(b"\n".join(lines[:last_peel]) + b"\n")
    assert subprocess.run(["git", "-C", str(repo), "for-each-ref"], capture_output=True,
                          env=gitrepos.GIT_ENV).returncode == 0
    report = verify(repo, VerifyOptions(level=Level.STANDARD))
    assert "packedRefsMissingPeel" in report.codes()
    assert report.exit_code == 1
    # quick reads no objects, so it cannot know the ref is a tag: documented blind spot of quick
    assert verify(repo, VerifyOptions(level=Level.QUICK)).exit_code == 0


def test_wrong_peel_line_is_found(mirror_copy: Callable[[str], Path]) -> None:
    repo = mirror_copy("gc_bitmaps")
    lines = _lines(repo)
    i = next(i for i, line in enumerate(lines) if line.startswith(b"^"))
    # point the peel at another existing object (the first ref's target)
    other = lines[1].split(b" ")[0]
    assert other != lines[i][1:]
    lines[i] = b"^" + other
    (repo / "packed-refs").write_bytes(b"\n".join(lines))
    report = verify(repo, VerifyOptions(level=Level.STANDARD))
    assert "peeledMismatch" in report.codes()


def test_peel_line_on_a_non_tag_is_found(mirror_copy: Callable[[str], Path]) -> None:
    repo = mirror_copy("gc_bitmaps")
    lines = _lines(repo)
    j = next(i for i, line in enumerate(lines) if line.endswith(b" refs/heads/main"))
    lines.insert(j + 1, b"^" + lines[j].split(b" ")[0])
    (repo / "packed-refs").write_bytes(b"\n".join(lines))
    assert "peeledMismatch" in verify(repo).codes()
