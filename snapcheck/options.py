"""Options and limits, as frozen dataclasses: what a caller may ask of a verification."""

from __future__ import annotations

from dataclasses import dataclass, field

from .report import Level

MiB = 1 << 20
GiB = 1 << 30


@dataclass(frozen=True)
class Limits:
    """Resource limits; each is enforced with a finding (see docs/security.md)."""

    zstd_window: int = 1 << 27  # largest zstd window a frame may demand
    max_ratio: int = 1000  # decompressed bytes per compressed byte, averaged over the stream so far
    max_total_bytes: int = 1 << 42  # decompressed bytes in one archive (4 TiB)
    max_members: int = 10_000_000  # tar members in one archive
    max_path_length: int = 4096  # bytes in one member path
    max_ref_line: int = 64 * 1024  # bytes in one line of packed-refs or a loose ref
    max_refs: int = 10_000_000
    max_packed_refs: int = 512 * MiB  # packed-refs is parsed in memory: ~7M refs fit
    max_memory_member: int = 64 * MiB  # larger members are spooled to a private temp dir, never held in memory


@dataclass(frozen=True)
class VerifyOptions:
    level: Level = Level.STANDARD
    strict: bool = False
    allow_empty: bool = False
    allow_unborn_head: bool = False
    allow_non_bare: bool = False
    limits: Limits = field(default_factory=Limits)
    spool_dir: str | None = None  # where archive members are spooled (a private temp dir is made inside)
    quiet: bool = True
