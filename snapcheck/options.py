"""Options and limits, as frozen dataclasses: what a caller may ask of a verification."""

from __future__ import annotations

from dataclasses import dataclass, field

from .report import Level

MiB = 1 << 20
GiB = 1 << 30


def _limit(default: int, flag: str, codes: str, help: str) -> int:
    """A limit field: its default, its command-line flag, the finding codes that enforce it, its help text
    (``dataclasses.fields(Limits)[i].metadata``; docs/security.md lists the same)."""
    meta = {"flag": flag, "codes": tuple(codes.split()), "help": help}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Limits:
    """Resource limits; each is enforced with a finding (see docs/security.md)."""

    zstd_window: int = _limit(
        1 << 27, "--zstd-window", "zstdWindowTooLarge",
        "Largest zstd window (bytes) a frame may demand; raise it for archives made with --long.")
    max_ratio: int = _limit(
        1000, "--max-ratio", "decompressionRatioExceeded",
        "Largest decompressed-to-compressed ratio, averaged over the stream once 64 MiB came out (a bomb).")
    max_total_bytes: int = _limit(
        1 << 42, "--max-total-bytes", "decompressionTotalExceeded extractLimit",
        "Largest number of decompressed bytes in one archive (and bytes a restore writes).")
    max_members: int = _limit(
        10_000_000, "--max-members", "tarTooManyMembers extractLimit",
        "Largest number of tar members in one archive.")
    max_path_length: int = _limit(
        4096, "--max-path-length", "tarPathTooLong extractLimit",
        "Longest member path or link target, in bytes.")
    max_ref_line: int = _limit(
        64 * 1024, "--max-ref-line", "packedRefsLineTooLong looseRefTooLarge headTooLarge",
        "Longest line of packed-refs, and largest loose ref or HEAD file, in bytes.")
    max_refs: int = _limit(
        10_000_000, "--max-refs", "packedRefsTooManyRefs refsTooMany",
        "Largest number of records in packed-refs, and of loose refs.")
    max_packed_refs: int = _limit(
        512 * MiB, "--max-packed-refs", "memberTooLarge",
        "Largest packed-refs file (it is parsed in memory: about 7 million refs fit in 512 MiB).")
    max_memory_member: int = _limit(
        64 * MiB, "--max-memory-member", "memberTooLarge",
        "Bytes of archive members held in memory: no text file (config, manifest, ...) may be larger, nor "
        "the loose refs together; binary files beyond it, one by one or together, are spooled to disk.")


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
