"""`snapcheck archive`: a consistent snapshot of a live mirror, verified byte for byte as it is uploaded,
published only when sound.

    live mirror ──capture (hard links, refs re-read)──► staging dir ──pax tar + zstd──► sink
                                                                                      │ tee
                                           upload (commit | abort) ◄──────────────────┼──► streaming verifier
                                                                                      └──► baseline guard

Nothing ever tars the live directory: the writer reads the private staging copy, whose packs git never
rewrites, and whose refs were read twice and found unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import __version__
from .archive_writer import build_manifest, write_archive
from .capture import capture_mirror
from .publish import PublishOptions, PublishResult, publish


@dataclass(frozen=True)
class ArchiveOptions:
    publish: PublishOptions = field(default_factory=PublishOptions)
    compression_level: int = 3
    threads: int = 0  # zstd worker threads; 0 = single-threaded
    max_attempts: int = 5
    staging_parent: str | None = None


@dataclass
class ArchiveResult:
    publish: PublishResult
    attempts: int
    files: int


def archive(mirror: str | Path, dest: str, options: ArchiveOptions | None = None) -> ArchiveResult:
    """Capture *mirror* and publish its archive at *dest* (file path, ``-``, ``s3://bucket/key``, local-bucket key)."""
    options = options or ArchiveOptions()
    staging_parent = Path(options.staging_parent) if options.staging_parent else None
    with capture_mirror(Path(mirror), staging_parent, max_attempts=options.max_attempts) as cap:
        manifest = build_manifest(cap, __version__)

        def produce(sink: object) -> None:
            write_archive(cap.staging, manifest, sink, level=options.compression_level,  # type: ignore[arg-type]
                          threads=options.threads)

        result = publish(produce, dest, options.publish, created=manifest.created)
        return ArchiveResult(result, cap.attempts, len(cap.files))
