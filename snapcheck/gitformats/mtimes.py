"""Cruft pack modification times (``objects/pack/pack-<hash>.mtimes``).

Layout (git: Documentation/gitformat-pack.adoc, "pack-*.mtimes files"): ``MTME`` | u32 version = 1
| u32 hash id | N x u32 mtimes (index order) | pack checksum (H) | checksum of all of the above (H).

Rules (git: pack-mtimes.c ``load_pack_mtimes_file``; git reads the file only when it needs an
object's mtime, in a cruft repack (``git gc`` / ``git repack --cruft``), which then dies with
"fatal: could not load cruft pack .mtimes"; git fsck never checks it and exits 0):

1. size >= 12 + 2H; git: "mtimes file <path> is too small" (under 12 bytes) or "… is corrupt"
                                                                                    (mtimesTooSmall)
2. ``MTME``, version 1, hash id 1 or 2 and the repository's                        (mtimesBadSignature,
                                                                                    mtimesUnsupportedVersion, mtimesBadHashId)
3. size == 12 + 4N + 2H, else git: "mtimes file <path> is corrupt"                 (mtimesBadSize)
4. pack checksum equals the index's                                                (mtimesPackMismatch)
5. with ``verify_checksum``: own checksum (git never verifies it)                  (mtimesChecksumMismatch)
"""

from __future__ import annotations

from ..report import Finding, Severity, register
from .common import Buffer, HashAlgo
from .idx import PackIndex
from .rev import check_sidecar

register(
    "mtimes",
    ("mtimesTooSmall", Severity.ERROR,
     "The cruft pack's .mtimes is shorter than its 12-byte header and two trailing checksums.",
     "error: mtimes file <path> is too small / is corrupt, then git gc / repack --cruft: fatal: could not load "
     "cruft pack .mtimes (git fsck exits 0)"),
    ("mtimesBadSignature", Severity.ERROR,
     "The .mtimes file does not start with MTME.",
     "error: mtimes file <path> has unknown signature (git gc / repack --cruft then dies)"),
    ("mtimesUnsupportedVersion", Severity.ERROR,
     "The .mtimes file's version is not 1.",
     "error: mtimes file <path> has unsupported version N (git gc / repack --cruft then dies)"),
    ("mtimesBadHashId", Severity.ERROR,
     "The .mtimes file's hash id is not 1 (SHA-1) or 2 (SHA-256), or not the repository's.",
     "error: mtimes file <path> has unsupported hash id N (git gc / repack --cruft then dies)"),
    ("mtimesBadSize", Severity.ERROR,
     "The .mtimes size differs from 12 + 4 x objects + 2 x hash length.",
     "error: mtimes file <path> is corrupt, then git gc / repack --cruft: fatal: could not load cruft pack "
     ".mtimes (git fsck never loads it and exits 0)"),
    ("mtimesPackMismatch", Severity.ERROR,
     "The pack checksum recorded in the .mtimes file differs from the one in the pack index.",
     "not compared by git; the object mtimes would belong to another pack"),
    ("mtimesChecksumMismatch", Severity.ERROR,
     "The .mtimes file's trailing checksum does not match its contents.",
     "never verified by git (wrong mtimes silently change when cruft objects expire)"),
)

MTIMES_SIGNATURE = b"MTME"


def parse_mtimes(buf: Buffer, path: str, algo: HashAlgo | None, idx: PackIndex | None, *,
                 verify_checksum: bool) -> list[Finding]:
    """Check a ``.mtimes`` file (alone, or against its pack index when *idx* is given)."""
    mv = memoryview(buf)
    if mv.format != "B" or mv.ndim != 1:
        mv = mv.cast("B")
    _, _, findings = check_sidecar(mv, path, algo, idx, verify_checksum=verify_checksum, kind="mtimes",
                                   signature=MTIMES_SIGNATURE, label="mtimes file", git_checks_checksum=False)
    return findings


__all__ = ["MTIMES_SIGNATURE", "parse_mtimes"]
