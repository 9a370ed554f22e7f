"""Loose objects (``objects/xx/yyyy…``): one zlib stream of ``<type> <size>\\0<content>``.

Rules, as git reads a loose object (git: object-file.c ``unpack_loose_header``,
``parse_loose_header``, ``unpack_loose_rest``, ``read_loose_object``; builtin/fsck.c):

1. the file is not empty ("object file … is empty")                             (looseObjectEmpty)
2. it is one complete zlib stream (header, deflate data, Adler-32): a cut stream is
   ``looseObjectTruncated``, any other inflate error ``looseObjectCorrupt``
   ("corrupt loose object '<oid>'", "unable to unpack header of …")
3. nothing follows the end of the stream ("garbage at end of loose object")   (looseObjectTrailingGarbage)
4. the header is ``<type> <size>\\0`` within the first 32 inflated bytes, the size in canonical
   decimal (no leading zero, no sign) ("unable to parse header of …")              (looseObjectBadHeader)
5. the type is commit, tree, blob or tag ("unable to parse type from header")   (looseObjectUnknownType)
6. the content is exactly *size* bytes                                          (looseObjectSizeMismatch)
7. with ``verify_hash``: the hash of header + content equals the id the path names
   (git fsck: "<oid>: hash-path mismatch, found at: <path>")                     (looseObjectHashMismatch)

Inflating is bounded by the size the header declares (a small file cannot make us allocate more
than it claims plus one byte).  The stream is fed in windows of ``_WINDOW`` bytes and inflated in
chunks of ``_CHUNK`` bytes, so an object of any size is checked in bounded memory (its content is
only kept when the caller asks for it) and in time linear in its size.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ..report import Finding, Severity, finding, register
from .common import Buffer, HashAlgo
from .objects import OBJ_BLOB, TYPE_BY_NAME, TYPE_NAMES
from .zlibimpl import zlib

register(
    "looseObject",
    ("looseObjectEmpty", Severity.ERROR,
     "A loose object file is empty.",
     "error: object file <path> is empty; git fsck: object corrupt or missing"),
    ("looseObjectTruncated", Severity.ERROR,
     "A loose object's zlib stream ends before its end (the file was cut).",
     "error: corrupt loose object '<oid>' / unable to unpack contents of <path>; git fsck: object corrupt or missing"),
    ("looseObjectCorrupt", Severity.ERROR,
     "A loose object is not a valid zlib stream (bad header, bad deflate data or bad Adler-32).",
     "error: inflate: data stream error / unable to unpack header of <path>; git fsck: object corrupt or missing"),
    ("looseObjectTrailingGarbage", Severity.ERROR,
     "Bytes follow the end of a loose object's zlib stream.",
     "error: garbage at end of loose object '<oid>'"),
    ("looseObjectBadHeader", Severity.ERROR,
     "A loose object does not start with `<type> <size>\\0` (canonical decimal size, within 32 bytes).",
     "error: unable to parse header of <path>"),
    ("looseObjectUnknownType", Severity.ERROR,
     "A loose object's header names a type other than commit, tree, blob or tag.",
     "error: unable to parse type from header '<header>' of <path>"),
    ("looseObjectSizeMismatch", Severity.ERROR,
     "A loose object's content is longer or shorter than its header says.",
     "error: corrupt loose object '<oid>' (or a hash mismatch for a short one)"),
    ("looseObjectHashMismatch", Severity.ERROR,
     "A loose object's content does not hash to the object id its path names.",
     "git fsck: error: <oid>: hash-path mismatch, found at: <path>"),
    ("looseObjectBadName", Severity.WARNING,
     "A file in a loose-object directory whose path is not objects/<2 hex>/<rest of an object id>.",
     "git ignores it (git fsck: garbage found / bad sha1 file)"),
)

MAX_HEADER_LEN = 32  # git: object-file.h MAX_HEADER_LEN
_HEADER_RE = re.compile(rb"([^ \x00]*) (0|[1-9][0-9]*)\x00")
_LOWER_HEX = re.compile(r"[0-9a-f]*")
_CHUNK = 1 << 20  # content inflated per call
_WINDOW = 1 << 20  # compressed bytes fed per call (zlib copies what a call leaves unconsumed)


def oid_from_path(path: str, algo: HashAlgo) -> bytes | None:
    """The object id named by ``…/objects/xx/yyyy`` (lower-case hex, as git writes), or None."""
    parts = path.rsplit("/", 2)
    if len(parts) < 2:
        return None
    hexoid = parts[-2] + parts[-1]
    if len(parts[-2]) != 2 or len(hexoid) != algo.hexsz or _LOWER_HEX.fullmatch(hexoid) is None:
        return None
    return bytes.fromhex(hexoid)


def _inflate_header(d: Any, mv: memoryview, after_window: Callable[[], object] | None = None
                    ) -> tuple[bytes, Buffer, int]:
    """The first ``MAX_HEADER_LEN`` inflated bytes of *mv* (fewer if the stream ends or the input runs
    out first), fed a window at a time: ``(head, unconsumed input of the last window, bytes of mv fed)``.
    Raises ``zlib.error`` as one whole-buffer call would."""
    n = len(mv)
    tail: Buffer = mv[:_WINDOW]
    pos = len(tail)
    head = b""
    while True:
        head += d.decompress(tail, MAX_HEADER_LEN - len(head))
        rest = d.unconsumed_tail
        if len(head) >= MAX_HEADER_LEN or d.eof:
            return head, rest, pos
        if not rest:
            if pos >= n:
                return head, rest, pos  # the input is exhausted
            if after_window is not None:
                after_window()
            rest = mv[pos:pos + _WINDOW]
            pos += len(rest)
        elif len(rest) == len(tail):  # pragma: no cover - zlib always progresses on input
            return head, rest, pos
        tail = rest


def check_loose_object(data: Buffer, path: str, algo: HashAlgo, *, verify_hash: bool,
                       keep_content: bool = True, keep_blob: bool = True,
                       after_window: Callable[[], object] | None = None
                       ) -> tuple[tuple[int, bytes] | None, list[Finding]]:
    """Inflate and check one loose object.  Returns ``((type, content), findings)``, or
    ``(None, findings)`` when the file does not hold the object its path names.  With
    *keep_content* False (or *keep_blob* False and the object is a blob) the content is hashed as
    it inflates and not kept (``content`` is ``b""``): memory stays bounded whatever the object
    inflates to.  *after_window* is called each time another window of *data* is about to be fed
    (the caller may let the pages of a mapped file go)."""
    out: list[Finding] = []
    mv = memoryview(data)
    if mv.ndim != 1 or mv.format != "B":
        mv = mv.cast("B")
    n = len(mv)
    oid = oid_from_path(path, algo)
    label = oid.hex() if oid is not None else path
    if n == 0:
        out.append(finding("looseObjectEmpty", path,
                           f"{path}: empty file; git: error: object file {path} is empty"))
        return None, out
    d = zlib.decompressobj()
    try:
        head, tail, pos = _inflate_header(d, mv, after_window)
    except zlib.error as e:
        out.append(finding("looseObjectCorrupt", path,
                           f"{path}: not a valid zlib stream ({e}); git: error: unable to unpack header of {path}"))
        return None, out
    m = _HEADER_RE.match(head)
    if m is None:
        if b"\x00" not in head and len(head) < MAX_HEADER_LEN and not d.eof and not tail and pos >= n:
            out.append(finding("looseObjectTruncated", path,
                               f"{path}: the zlib stream ends after {n} bytes, inside the object header "
                               f"(the file was cut); git: error: unable to unpack header of {path}"))
        else:
            out.append(finding("looseObjectBadHeader", path,
                               f"{path}: header {head[:MAX_HEADER_LEN]!r} is not '<type> <size>\\0'; "
                               f"git: error: unable to parse header of {path}"))
        return None, out
    tname, size_text = m.group(1), m.group(2)
    obj_type = TYPE_BY_NAME.get(tname)
    if obj_type is None:
        out.append(finding("looseObjectUnknownType", path,
                           f"{path}: unknown object type {tname!r} in header; git: error: unable to parse type "
                           f"from header '{m.group(0)[:-1].decode('latin-1')}' of {path}"))
        return None, out
    size = int(size_text)
    hasher = algo.new(m.group(0)) if verify_hash else None
    keep = keep_content and (keep_blob or obj_type != OBJ_BLOB)
    first = head[m.end():]
    parts = [first] if keep else []
    if hasher is not None:
        hasher.update(first)
    have = len(first)
    try:
        while not d.eof and have <= size:
            if not tail and pos < n:
                if after_window is not None:
                    after_window()
                tail = mv[pos:pos + _WINDOW]
                pos += len(tail)
            # with the input used up, empty calls still drain what an output-bound call left pending
            chunk = d.decompress(tail, min(size + 1 - have, _CHUNK))
            rest = d.unconsumed_tail
            if keep:
                parts.append(chunk)
            if hasher is not None:
                hasher.update(chunk)
            have += len(chunk)
            if not chunk and len(rest) == len(tail):  # nothing out, nothing taken: the input is exhausted
                break
            tail = rest
    except zlib.error as e:
        out.append(finding("looseObjectCorrupt", path,
                           f"{path}: zlib stream is corrupt within its content ({e}); "
                           f"git: error: corrupt loose object '{label}'"))
        return None, out
    if have > size:
        out.append(finding("looseObjectSizeMismatch", path,
                           f"{path}: content is longer than the {size} bytes its header declares; "
                           f"git: error: corrupt loose object '{label}'"))
        return None, out
    if not d.eof:
        out.append(finding("looseObjectTruncated", path,
                           f"{path}: the zlib stream ends early ({n} bytes, {have} of {size} content bytes "
                           f"inflated): the file was cut; git: error: corrupt loose object '{label}'"))
        return None, out
    garbage = len(d.unused_data) + n - pos  # after the stream: in the last window, and never fed
    if garbage:
        out.append(finding("looseObjectTrailingGarbage", path,
                           f"{path}: {garbage} byte(s) after the end of the zlib stream; "
                           f"git: error: garbage at end of loose object '{label}'"))
        return None, out
    if have != size:
        out.append(finding("looseObjectSizeMismatch", path,
                           f"{path}: content is {have} bytes but its header declares {size}; "
                           f"git: error: corrupt loose object '{label}'"))
        return None, out
    content = b"".join(parts)
    if hasher is not None:
        if oid is None:
            out.append(finding("looseObjectBadName", path,
                               f"{path}: not objects/<2 hex>/<{algo.hexsz - 2} hex>: the object id cannot be "
                               f"checked and git does not see this file as an object"))
            return None, out
        got = hasher.digest()
        if got != oid:
            out.append(finding("looseObjectHashMismatch", path,
                               f"{path}: the {TYPE_NAMES[obj_type]} it holds hashes to {got.hex()}, not to "
                               f"{oid.hex()}; git fsck: error: {got.hex()}: hash-path mismatch, found at: {path}"))
            return None, out
    return (obj_type, content), out


def loose_object_type(data: Buffer) -> int | None:
    """The type in a loose object's header, inflating only the header (None if unreadable)."""
    mv = memoryview(data)
    if mv.ndim != 1 or mv.format != "B":
        mv = mv.cast("B")
    try:
        head = _inflate_header(zlib.decompressobj(), mv)[0]
    except zlib.error:
        return None
    m = _HEADER_RE.match(head)
    return None if m is None else TYPE_BY_NAME.get(m.group(1))


__all__ = ["MAX_HEADER_LEN", "check_loose_object", "loose_object_type", "oid_from_path"]
