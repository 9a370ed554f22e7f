"""Things every git format parser shares: the hash algorithm and object ids."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

# Anything the buffer protocol accepts: bytes, bytearray, memoryview, mmap.
Buffer = bytes | bytearray | memoryview | Any


@dataclass(frozen=True)
class HashAlgo:
    """A git object format: ``sha1`` (20-byte ids) or ``sha256`` (32-byte ids)."""

    name: str
    rawsz: int
    format_id: int  # the "hash version"/"hash id" used in rev, mtimes, midx, commit-graph headers

    @property
    def hexsz(self) -> int:
        return self.rawsz * 2

    def new(self, data: bytes = b"") -> Any:
        return hashlib.new(self.name, data)

    def digest(self, data: Buffer) -> bytes:
        return hashlib.new(self.name, data).digest()

    def null_oid(self) -> bytes:
        return b"\0" * self.rawsz


SHA1 = HashAlgo("sha1", 20, 1)
SHA256 = HashAlgo("sha256", 32, 2)
ALGOS = {"sha1": SHA1, "sha256": SHA256}


def algo_for_hexlen(n: int) -> HashAlgo | None:
    return {40: SHA1, 64: SHA256}.get(n)


def algo_for_rawlen(n: int) -> HashAlgo | None:
    return {20: SHA1, 32: SHA256}.get(n)


def algo_for_format_id(n: int) -> HashAlgo | None:
    """Hash id as stored in rev/mtimes headers (1 = sha1, 2 = sha256)."""
    return {1: SHA1, 2: SHA256}.get(n)


_HEX = frozenset(b"0123456789abcdef")


def is_hex_oid(s: bytes, algo: HashAlgo) -> bool:
    """Lower-case hex of exactly the algorithm's length (git writes lower case only)."""
    return len(s) == algo.hexsz and all(c in _HEX for c in s)


def short(data: bytes, limit: int = 75) -> str:
    """Render bytes for a message the way git's die_unterminated_line does (cut at 75 + '...')."""
    text = data.decode("utf-8", "backslashreplace")
    if len(data) > 80:
        return text[:limit] + "..."
    return text
