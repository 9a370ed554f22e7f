"""Pack files (``objects/pack/pack-<hash>.pack``), checked as they stream past.

Layout (git: Documentation/gitformat-pack.adoc, "pack-*.pack files"): ``PACK`` | u32 version (2 or
3) | u32 object count | the objects | trailer = hash (H bytes) of everything before it.  Since git
1.9 a pack is named after its trailer: ``pack-<hex(trailer)>.pack``.

Rules enforced (messages quote git: packfile.c ``open_packed_git_1``, builtin/index-pack.c,
pack-check.c ``verify_packfile``):

1. at least 12 bytes, else git: "file <pack> is far too short to be a packfile"    (packTooShort)
2. signature ``PACK``, else git: "file <pack> is not a GIT packfile"               (packBadSignature)
3. version 2 or 3, else git: "packfile <pack> is version N and not supported"      (packUnsupportedVersion)
4. room for the trailer (size >= 12 + H) and for the objects the header promises
   (each takes at least ``MIN_OBJECT_BYTES``); git index-pack: "premature end of pack file"
                                                                                      (packTooShort, packCountImplausible)
5. with ``hash_content``: trailer == hash of everything before it; git fsck:
   "<pack> pack checksum mismatch", index-pack: "pack is corrupted (SHA1 mismatch)" (packChecksumMismatch)
6. trailer == the hash in the file name (packNameMismatch: a warning, because packs written by
   git before 1.9 were named differently; a damaged trailer also fails the idx cross-check)
7. the name is ``pack-<40 or 64 lower-case hex>.pack``                              (packBadName)

The checker keeps O(1) memory: the 12-byte header and the last H bytes seen.
"""

from __future__ import annotations

import posixpath
import re
import struct
from dataclasses import dataclass
from typing import Any

from ..report import Finding, Severity, finding, register
from .common import SHA1, HashAlgo, algo_for_hexlen

register(
    "pack",
    ("packTooShort", Severity.ERROR,
     "The pack is shorter than its 12-byte header plus the trailing checksum.",
     "error: file <pack> is far too short to be a packfile / index-pack: fatal: premature end of pack file"),
    ("packBadSignature", Severity.ERROR,
     "The pack does not start with the signature PACK.",
     "error: file <pack> is not a GIT packfile (index-pack: fatal: pack signature mismatch)"),
    ("packUnsupportedVersion", Severity.ERROR,
     "The pack header's version is neither 2 nor 3.",
     "error: packfile <pack> is version N and not supported (try upgrading GIT to a newer version)"),
    ("packCountImplausible", Severity.ERROR,
     "The pack header promises more objects than the pack has bytes for.",
     "index-pack: fatal: premature end of pack file; other commands: packfile … does not match index"),
    ("packChecksumMismatch", Severity.ERROR,
     "The pack's trailing checksum differs from the hash of its contents: it was cut, padded or altered.",
     "git fsck: error: <pack> pack checksum mismatch; index-pack: fatal: pack is corrupted (SHA1 mismatch)"),
    ("packNameMismatch", Severity.WARNING,
     "The pack's trailer differs from the hash in its file name (damage, or a pack named by git older than 1.9).",
     "git does not compare them; a damaged trailer shows as: error: packfile <pack> does not match index"),
    ("packBadName", Severity.WARNING,
     "The pack's file name is not pack-<hash>.pack, so its trailer cannot be checked against its name.",
     "git uses any pack that has an .idx, whatever its name"),
)

PACK_SIGNATURE = b"PACK"
PACK_HEADER = struct.Struct(">4sII")
# The smallest packed object: a 1-byte type/size header and the shortest zlib stream git could
# write (2-byte header, a 2-byte empty final block, 4-byte Adler-32) is 9 bytes; 3 is a safe floor.
MIN_OBJECT_BYTES = 3

_NAME = re.compile(r"^pack-([0-9a-f]{40}|[0-9a-f]{64})\.[a-z]+$")


def parse_pack_name(path: str) -> tuple[bytes | None, HashAlgo | None]:
    """``objects/pack/pack-<hex>.<ext>`` → (raw hash, its algorithm), or (None, None)."""
    m = _NAME.match(posixpath.basename(path))
    if m is None:
        return None, None
    hexname = m.group(1)
    return bytes.fromhex(hexname), algo_for_hexlen(len(hexname))


@dataclass
class PackSummary:
    """What a pack's stream showed: header fields, trailer, size, name hash, whether hashed and sound."""

    version: int | None
    count: int | None
    trailer: bytes | None
    size: int
    name_hash: bytes | None
    hash_verified: bool


class PackStreamChecker:
    """Fed a pack's bytes in order (``feed``; ``skip`` past the middle when not hashing), then
    ``finish()`` gives the :class:`PackSummary` and the findings.  O(1) memory."""

    def __init__(self, path: str, algo: HashAlgo | None, *, hash_content: bool) -> None:
        self.path = path
        self.hash_content = hash_content
        self._findings: list[Finding] = []
        self._name_hash, name_algo = parse_pack_name(path)
        if self._name_hash is None:
            self._findings.append(finding(
                "packBadName", path,
                f"{path}: not named pack-<40 or 64 hex>.pack; its trailer cannot be checked against its name"))
        if algo is None:
            algo = name_algo if name_algo is not None else SHA1
        self.algo = algo
        self._h = algo.rawsz
        self._header = b""
        self._tail = b""
        self._size = 0
        self._skipped = False
        self._hasher: Any = algo.new() if hash_content else None
        self._result: tuple[PackSummary, list[Finding]] | None = None

    @property
    def size(self) -> int:
        """Bytes seen (fed or skipped) so far."""
        return self._size

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self._result is not None:
            raise ValueError("feed() after finish()")
        mv = memoryview(data)
        if mv.format != "B" or mv.ndim != 1:
            mv = mv.cast("B")
        n = len(mv)
        if not n:
            return
        if self._size < 12:
            self._header += bytes(mv[: 12 - self._size])
        self._size += n
        h = self._h
        hasher = self._hasher
        if n >= h:
            if hasher is not None:
                if self._tail:
                    hasher.update(self._tail)
                hasher.update(mv[: n - h])
            self._tail = bytes(mv[n - h:])
        else:
            t = self._tail + bytes(mv)
            if len(t) > h:
                if hasher is not None:
                    hasher.update(t[: len(t) - h])
                t = t[len(t) - h:]
            self._tail = t

    def skip(self, n: int) -> None:
        """Advance *n* bytes without their data (only without ``hash_content``, and never over
        the 12-byte header or into the last H bytes, which must be fed)."""
        if n < 0:
            raise ValueError("skip() by a negative count")
        if n == 0:
            return
        if self.hash_content:
            raise ValueError("skip() while hashing the pack's content")
        if self._size < 12:
            raise ValueError("skip() over the pack header")
        self._size += n
        self._tail = b""
        self._skipped = True

    def finish(self) -> tuple[PackSummary, list[Finding]]:
        if self._result is not None:
            return self._result
        path, h, size = self.path, self._h, self._size
        findings = list(self._findings)
        version: int | None = None
        count: int | None = None
        trailer: bytes | None = None
        verified = False
        if size < 12:
            findings.append(finding(
                "packTooShort", path,
                f"{path}: {size} bytes, shorter than the 12-byte pack header; "
                f"git: error: file {path} is far too short to be a packfile"))
        else:
            sig, ver, cnt = PACK_HEADER.unpack(self._header)
            header_ok = True
            if sig != PACK_SIGNATURE:
                header_ok = False
                findings.append(finding(
                    "packBadSignature", path,
                    f"{path}: starts with {sig!r}, not b'PACK'; git: error: file {path} is not a GIT packfile"))
            elif ver not in (2, 3):
                header_ok = False
                findings.append(finding(
                    "packUnsupportedVersion", path,
                    f"{path}: pack version {ver}; git: error: packfile {path} is version {ver} and not supported "
                    "(try upgrading GIT to a newer version)"))
            if header_ok:
                version, count = ver, cnt
            if size < 12 + h:
                findings.append(finding(
                    "packTooShort", path,
                    f"{path}: {size} bytes, no room for the 12-byte header and the {h}-byte {self.algo.name} "
                    f"trailer; git index-pack: fatal: premature end of pack file"))
            else:
                if self._skipped and len(self._tail) < h:
                    raise ValueError("skip() went into the pack trailer: the last bytes must be fed")
                trailer = self._tail
                room = size - 12 - h
                if header_ok and cnt * MIN_OBJECT_BYTES > room:
                    findings.append(finding(
                        "packCountImplausible", path,
                        f"{path}: the header promises {cnt} objects but only {room} bytes of object data "
                        f"follow; git index-pack: fatal: premature end of pack file"))
                if self._hasher is not None:
                    got = self._hasher.digest()
                    verified = got == trailer
                    if not verified:
                        findings.append(finding(
                            "packChecksumMismatch", path,
                            f"{path}: trailer {trailer.hex()} but the {size - h} bytes before it hash to "
                            f"{got.hex()}; git fsck: error: {path} pack checksum mismatch"))
                if self._name_hash is not None and self._name_hash != trailer:
                    if len(self._name_hash) != h:
                        why = (f"the name holds a {len(self._name_hash) * 2}-digit hash but the repository "
                               f"uses {self.algo.name}")
                    elif verified:
                        why = "the content is intact, so the pack was renamed or named by git older than 1.9"
                    else:
                        why = ("a damaged trailer, or a pack named by git older than 1.9; git: error: packfile "
                               f"{path} does not match index when its .idx holds the name's hash")
                    findings.append(finding(
                        "packNameMismatch", path,
                        f"{path}: trailer {trailer.hex()} differs from the hash in the file name ({why})"))
        summary = PackSummary(version, count, trailer, size, self._name_hash, verified)
        self._result = (summary, findings)
        return self._result


__all__ = ["MIN_OBJECT_BYTES", "PACK_SIGNATURE", "PackStreamChecker", "PackSummary", "parse_pack_name"]
