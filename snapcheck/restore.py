"""`snapcheck restore`: verify a snapshot while extracting it into a private sibling temp dir, then install
it atomically.  Never in place: on any failure DEST is untouched and the temp dir is gone.

    source ──► decompress ──► tar entries ──► safe extraction (tee) ──► root finder ──► verifier
                                                   │                                      │
                                          .<name>.snapcheck-XXXX/  ◄── install only if sound ──┘
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .checks.layout import RootFinder
from .errors import SnapcheckError, UsageError
from .extract import SafeExtractor
from .install import discard, install, make_temp_sibling
from .manifest import MANIFEST_DIR
from .options import VerifyOptions
from .report import Finding, Report
from .sources.compression import DecompressedStream
from .sources.tar import TarStream
from .storage import open_location
from .verifier import _run


@dataclass
class RestoreResult:
    report: Report
    installed: bool
    dest: Path


@contextlib.contextmanager
def open_source(source: str, *, endpoint_url: str | None = None) -> Iterator[tuple[BinaryIO, str]]:
    """A readable stream for a snapshot source: ``-``, ``s3://bucket/key``, a local-bucket key or a file."""
    import sys

    if source == "-":
        yield sys.stdin.buffer, "-"
        return
    if source.startswith("s3://"):
        from .sources.s3 import open_s3_object

        s3stream, _info = open_s3_object(source, endpoint_url=endpoint_url)
        with s3stream:
            yield s3stream, source
        return
    if os.path.isdir(source):
        raise UsageError(f"{source} is a directory: restore takes an archive (file, -, s3://bucket/key)")
    storage, key = open_location(source)
    if not key or key.endswith("/"):
        raise UsageError(f"{source}: not an object")
    stream, _info = storage.open_read(key)
    with stream:
        yield stream, storage.describe(key)


def restore_stream(stream: BinaryIO, dest: str | os.PathLike[str], options: VerifyOptions | None = None, *,
                   replace: bool = False, label: str = "-") -> RestoreResult:
    """Verify and extract *stream* into a temp sibling of *dest*; install it only when sound."""
    options = options or VerifyOptions()
    dest_path = Path(os.path.abspath(dest))
    if dest_path.exists() and not replace and not (dest_path.is_dir() and not any(dest_path.iterdir())):
        raise UsageError(f"{dest_path} exists; use --replace to swap it atomically for the restored snapshot")
    temp = make_temp_sibling(dest_path)
    try:
        findings: list[Finding] = []
        dec = DecompressedStream(stream, limits=options.limits, findings=findings, label=label)
        tar = TarStream(dec, limits=options.limits, findings=findings, label=label)
        extractor = SafeExtractor(temp, limits=options.limits, findings=findings)
        finder = RootFinder()
        with extractor:
            report = _run(label, finder.map(extractor.wrap(tar.entries())), options, root_finder=finder,
                          source_findings=findings)
            if extractor.error is not None:
                raise extractor.error
            extractor.finish()
        if not report.sound:
            discard(temp)
            return RestoreResult(report, False, dest_path)
        repo_root = temp / (finder.root or "")
        if finder.embedded:
            repo_root = repo_root.parent  # the work tree of a clone is restored with its .git
        shutil.rmtree(repo_root / MANIFEST_DIR, ignore_errors=True)  # the manifest describes the archive, not the mirror
        if repo_root != temp:
            # the repository sits under a top directory of the archive: install just that directory
            inner = make_temp_sibling(dest_path)
            os.rmdir(inner)
            os.rename(repo_root, inner)
            discard(temp)
            temp = inner
        install(temp, dest_path, replace=replace)
        return RestoreResult(report, True, dest_path)
    except BaseException:
        with contextlib.suppress(Exception):
            discard(temp)
        raise


def restore(source: str, dest: str | os.PathLike[str], options: VerifyOptions | None = None, *,
            replace: bool = False, endpoint_url: str | None = None) -> RestoreResult:
    """Restore *source* (a file, ``-``, ``s3://bucket/key`` or a local-bucket key) into *dest*."""
    with open_source(source, endpoint_url=endpoint_url) as (stream, label):
        return restore_stream(stream, dest, options, replace=replace, label=label)


__all__ = ["RestoreResult", "SnapcheckError", "open_source", "restore", "restore_stream"]
