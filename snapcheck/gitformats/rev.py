"""Pack reverse indexes (``objects/pack/pack-<hash>.rev``).

Layout (git: Documentation/gitformat-pack.adoc, "pack-*.rev files"): ``RIDX`` | u32 version = 1 |
u32 hash id (1 = SHA-1, 2 = SHA-256) | N x u32 index positions, in pack-offset order | pack
checksum (H) | checksum of all of the above (H).

Rules enforced (git: pack-revindex.c ``load_revindex_from_disk``, ``verify_pack_revindex``):

1. size >= 12 + 2H, else git: "reverse-index file <path> is too small"           (revTooSmall)
2. signature, version 1, hash id 1 or 2 (git: "… has unknown signature", "… has unsupported
   version N", "… has unsupported hash id N"); a hash id that is valid but not the repository's
   is reported too (git ignores it, but git never writes one)                      (revBadSignature,
                                                                                    revUnsupportedVersion, revBadHashId)
3. size == 12 + 4N + 2H with N the index's object count, else git: "reverse-index file <path>
   is corrupt"                                                                       (revBadSize)
4. the pack checksum equals the index's (git does not compare them)                (revPackMismatch)
5. with ``verify_checksum``: own checksum, git fsck (2.41+): "invalid checksum"    (revChecksumMismatch)
6. the positions are a permutation of 0..N-1 that lists the index entries by increasing pack
   offset; git fsck (2.41+): "invalid rev-index position at i: a != b"             (revBadPosition)

:func:`check_sidecar` applies rules 1-5 to any file of this shape (``.mtimes`` shares it).
"""

from __future__ import annotations

import itertools
import operator
import struct
from array import array

from ..report import Finding, Severity, finding, register
from .chunks import be32_array
from .common import Buffer, HashAlgo, algo_for_format_id
from .idx import PackIndex

register(
    "rev",
    ("revTooSmall", Severity.ERROR,
     "The reverse index is shorter than its 12-byte header and two trailing checksums.",
     "error: reverse-index file <path> is too small (git falls back to computing the reverse index)"),
    ("revBadSignature", Severity.ERROR,
     "The reverse index does not start with RIDX.",
     "error: reverse-index file <path> has unknown signature"),
    ("revUnsupportedVersion", Severity.ERROR,
     "The reverse index's version is not 1.",
     "error: reverse-index file <path> has unsupported version N"),
    ("revBadHashId", Severity.ERROR,
     "The reverse index's hash id is not 1 (SHA-1) or 2 (SHA-256), or not the repository's.",
     "error: reverse-index file <path> has unsupported hash id N (a valid id of the other algorithm is not "
     "checked by git)"),
    ("revBadSize", Severity.ERROR,
     "The reverse index's size differs from 12 + 4 x objects + 2 x hash length: it was cut, padded or "
     "belongs to another pack.",
     "error: reverse-index file <path> is corrupt (git 2.55 fsck: exit 64)"),
    ("revPackMismatch", Severity.ERROR,
     "The pack checksum recorded in the reverse index differs from the one in the pack index.",
     "not compared by git; positions from another pack's reverse index mislead bitmap and object-size lookups"),
    ("revChecksumMismatch", Severity.ERROR,
     "The reverse index's trailing checksum does not match its contents.",
     "git fsck (2.41+): error: invalid checksum"),
    ("revBadPosition", Severity.ERROR,
     "The reverse index's positions are not the index entries ordered by pack offset.",
     "git fsck (2.41+): error: invalid rev-index position at I: A != B; older git reads the wrong objects "
     "(git 2.39 cat-file --batch-check='%(objectsize:disk)' crashed on a flipped position)"),
)

REV_SIGNATURE = b"RIDX"
_HEADER = struct.Struct(">4sII")


def check_sidecar(mv: memoryview, path: str, algo: HashAlgo | None, idx: PackIndex | None, *,
                  verify_checksum: bool, kind: str, signature: bytes, label: str,
                  git_checks_checksum: bool) -> tuple[HashAlgo | None, int, list[Finding]]:
    """Header, exact size, pack checksum and own checksum of a ``.rev``-shaped file.

    *kind* prefixes the finding codes (``rev``/``mtimes``); *label* is how git names the file in
    its messages ("reverse-index file", "mtimes file").  Returns (algo, entry count, findings);
    the count is -1 when the structure could not be trusted (further checks are pointless)."""
    findings: list[Finding] = []
    size = len(mv)
    if algo is None and idx is not None:
        algo = idx.algo
    sig, version, hash_id = _HEADER.unpack_from(mv) if size >= 12 else (bytes(mv[:4]), None, None)
    header_algo = algo_for_format_id(hash_id) if hash_id is not None else None
    eff = algo or header_algo
    if eff is None and size >= 12 and sig == signature and version == 1:
        findings.append(finding(
            f"{kind}BadHashId", path,
            f"{path}: hash id {hash_id} (1 = sha1, 2 = sha256); git: error: {label} {path} has unsupported "
            f"hash id {hash_id}"))
        return None, -1, findings
    h = eff.rawsz if eff is not None else 20
    if size < 12 + 2 * h:
        git = (f"git: error: {label} {path} is too small" if kind == "rev" or size < 12
               else f"git: error: {label} {path} is corrupt")
        findings.append(finding(
            f"{kind}TooSmall", path,
            f"{path}: {size} bytes, less than the {12 + 2 * h}-byte header and trailer; {git}"))
        return eff, -1, findings
    assert version is not None and hash_id is not None
    if sig != signature:
        findings.append(finding(
            f"{kind}BadSignature", path,
            f"{path}: starts with {bytes(sig)!r}, not {signature!r}; git: error: {label} {path} has unknown signature"))
        return eff, -1, findings
    if version != 1:
        findings.append(finding(
            f"{kind}UnsupportedVersion", path,
            f"{path}: version {version}; git: error: {label} {path} has unsupported version {version}"))
        return eff, -1, findings
    if header_algo is None:
        findings.append(finding(
            f"{kind}BadHashId", path,
            f"{path}: hash id {hash_id} (1 = sha1, 2 = sha256); git: error: {label} {path} has unsupported "
            f"hash id {hash_id}"))
        return eff, -1, findings
    if algo is not None and header_algo != algo:
        findings.append(finding(
            f"{kind}BadHashId", path,
            f"{path}: hash id {hash_id} ({header_algo.name}) beside a {algo.name} pack; git never writes one "
            "(and sizes it by the wrong hash length)"))
        return eff, -1, findings
    assert eff is not None
    body = size - 12 - 2 * h
    if idx is not None:
        want = 12 + 4 * idx.count + 2 * h
        if size != want:
            findings.append(finding(
                f"{kind}BadSize", path,
                f"{path}: {size} bytes but {idx.count} objects need exactly {want}; "
                f"git: error: {label} {path} is corrupt"))
            return eff, -1, findings
    elif body % 4:
        findings.append(finding(
            f"{kind}BadSize", path,
            f"{path}: {size} bytes, not 12 + 4 x objects + {2 * h}; git: error: {label} {path} is corrupt"))
        return eff, -1, findings
    n = body // 4
    pack_sum = bytes(mv[size - 2 * h: size - h])
    if idx is not None and pack_sum != idx.pack_checksum:
        findings.append(finding(
            f"{kind}PackMismatch", path,
            f"{path}: written for pack {pack_sum.hex()} but the pack index is for {idx.pack_checksum.hex()}; "
            "git does not compare them"))
    if verify_checksum:
        got = eff.digest(mv[: size - h])
        stored = bytes(mv[size - h:])
        if got != stored:
            git = "git fsck: error: invalid checksum" if git_checks_checksum else "git never verifies it"
            findings.append(finding(
                f"{kind}ChecksumMismatch", path,
                f"{path}: trailing checksum {stored.hex()} but the contents hash to {got.hex()}; {git}"))
    return eff, n, findings


_GATHER_CHUNK = 1 << 16  # positions looked up per step (bounds the transient list of ints)


def _in_offset_order(perm: array[int], offsets: array[int]) -> bool:
    """Do the positions *perm* list *offsets* in strictly increasing order (all of them in range)?
    One gather and one comparison pass at C speed per chunk, no Python loop per entry."""
    get = offsets.__getitem__
    lt = operator.lt
    prev = -1
    try:
        for start in range(0, len(perm), _GATHER_CHUNK):
            vals = list(map(get, perm[start: start + _GATHER_CHUNK]))
            if not (prev < vals[0] and all(map(lt, vals, itertools.islice(vals, 1, None)))):
                return False
            prev = vals[-1]
    except IndexError:  # a position beyond the index
        return False
    return True


def _check_positions(mv: memoryview, path: str, idx: PackIndex) -> list[Finding]:
    n = idx.count
    if not n:
        return []
    perm = be32_array(mv, 12, n)
    narrow = idx.offsets_u32()  # the same values, without widening them, when none needs 64 bits
    table = narrow if narrow is not None else idx.offsets()
    if _in_offset_order(perm, table):
        # a permutation with strictly increasing offsets: the index's offsets are distinct too, and
        # the first and last are the smallest and largest
        idx._distinct = True
        idx._bounds = (table[perm[0]], table[perm[-1]])
        return []
    offsets = idx.offsets()
    top = max(perm)
    if top >= n:
        i = next(i for i, p in enumerate(perm) if p >= n)
        return [finding(
            "revBadPosition", path,
            f"{path}: entry {i} names index position {perm[i]} but the pack has {n} objects; "
            f"git fsck: error: invalid rev-index position at {i}")]
    # slow path (damaged file, or an index with duplicate offsets): the expected order
    expected = array("I", sorted(range(n), key=offsets.__getitem__))
    if expected == perm:
        return []
    i = next(i for i in range(n) if expected[i] != perm[i])
    repeated = n - len(set(perm))
    extra = f"; {repeated} position(s) repeated, so it is not a permutation" if repeated else ""
    return [finding(
        "revBadPosition", path,
        f"{path}: entry {i} is index position {perm[i]} but the object at the {i}-th pack offset is "
        f"position {expected[i]}{extra}; git fsck: error: invalid rev-index position at {i}: "
        f"{expected[i]} != {perm[i]}")]


def parse_rev(buf: Buffer, path: str, algo: HashAlgo | None, idx: PackIndex | None, *,
              verify_checksum: bool) -> list[Finding]:
    """Check a ``.rev`` file (alone, or against its pack index when *idx* is given)."""
    mv = memoryview(buf)
    if mv.format != "B" or mv.ndim != 1:
        mv = mv.cast("B")
    _, n, findings = check_sidecar(mv, path, algo, idx, verify_checksum=verify_checksum, kind="rev",
                                   signature=REV_SIGNATURE, label="reverse-index file", git_checks_checksum=True)
    if n >= 0 and idx is not None:
        findings.extend(_check_positions(mv, path, idx))
    return findings


__all__ = ["REV_SIGNATURE", "check_sidecar", "parse_rev"]
