"""A forward-only tar reader: GNU, ustar and pax archives, one pass, no seeks, bounded memory.

:class:`TarStream` turns a byte stream (usually a :class:`~snapcheck.sources.compression.DecompressedStream`)
into :class:`~snapcheck.sources.base.Entry` objects.  It reads in big chunks and hands member data
out as slices of them.  What it enforces, in order (POSIX pax/ustar as in IEEE 1003.1, GNU tar's
``L``/``K`` long names and base-256 numbers):

1. **Headers**: every 512-byte header's checksum (unsigned, or the historic signed sum)
   (``tarHeaderChecksum``); numeric fields are octal or base-256 (``tarBadHeader``); pax records are
   well formed, pax/long-name data bounded.  Data blocks follow a header exactly where GNU tar
   expects them (every type but directories and hard links); a link, device or fifo header with a
   non-zero size is read that way but reported, since other readers disagree (``tarAmbiguousSize``).
2. **Completeness**: every member's data is all there (``tarMemberTruncated``); the archive ends
   with its end-of-archive marker, two zero blocks (``tarMissingEndMarker``: a zstd chain cut at a
   frame boundary that is also a member boundary shows nowhere else - ``zstd -dc``, GNU tar and
   Python's ``tarfile`` all accept it); a single zero block followed by more members stops GNU tar
   (``tarLoneZeroBlock``); after the marker only zero padding may follow (``tarTrailingData``;
   GNU tar pads to 10240 bytes, BusyBox does not).
3. **Safe paths** (these members are reported and NOT yielded, their data skipped): no absolute
   path (``tarAbsolutePath``), no ``..`` component (``tarPathTraversal``), no NUL inside a long name
   (``tarNulInName``), no path over ``Limits.max_path_length`` (``tarPathTooLong``), no member below
   an earlier symlink member (``tarPathThroughSymlink``), no symlink or hard link whose target
   leaves the archive root (``tarLinkEscapes``: absolute, too many ``..``, through a symlink member,
   or a ``..`` after a component not yet known to be a real directory, the extractor's rule; a
   symlink member may not replace a directory either), no link target over
   ``Limits.max_path_length`` (``tarPathTooLong``), no device or fifo (``tarDeviceMember``,
   ``tarFifoMember``), no GNU sparse/multi-volume member (``tarUnsupportedMember``).  A backslash
   in a path is only a warning (``tarBackslashPath``).  At most ``Limits.max_members`` members
   (``tarTooManyMembers``).

A FILE entry's ``stream`` reads exactly the member's data (``read(n)`` returns ``n`` bytes unless the
data ends); ``read_chunk(limit=-1)`` hands out the next piece as a ``memoryview`` of the chunk in
hand, without copying, for hashing.  Data not read is skipped when the next entry is asked for.

Entry paths are normalised: leading ``./`` removed (``./`` itself is ``""``), no trailing slash,
no empty or ``.`` components.  Hard links get their target normalised the same way.

When the underlying stream reports ``failed`` (the compression layer already reported why the bytes
stop), a missing end marker is not reported again; a member cut short still is, because it names
the file.  An ``OSError`` from the stream is raised as :class:`~snapcheck.errors.SourceError`.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, BinaryIO, cast

from ..errors import SourceError
from ..options import Limits
from ..report import Finding, Severity, finding, register
from .base import Entry, EntryKind
from .compression import Readable

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = ["TarStream"]

BLOCK = 512
CHUNK = 1 << 20
PAX_MAX = 8 << 20  # bytes of one pax header we are willing to hold
ZERO_BLOCK = bytes(BLOCK)

REGULAR = frozenset((b"0", b"\0", b"7"))
META = frozenset((b"L", b"K", b"x", b"g"))
_NO_DATA = frozenset((b"1", b"5"))  # GNU tar reads no data after these, whatever the size
_AMBIGUOUS = frozenset((b"1", b"2", b"3", b"4", b"6"))  # POSIX: no data; a non-zero size is ambiguous
_TYPE_NAMES = {b"1": "hard link", b"2": "symlink", b"3": "character device", b"4": "block device", b"6": "fifo"}
_TOO_LONG = b"\0too long\0"  # marker object for a long name over the limit

register(
    "tar",
    ("tarMissingEndMarker", Severity.ERROR,
     "The tar stream ends without its end-of-archive marker (two 512-byte zero blocks): the archive "
     "was cut, possibly exactly at a member boundary where nothing else can tell.",
     "n/a: GNU tar and Python tarfile accept an archive cut at a member boundary; the restored mirror "
     "silently lacks every later file."),
    ("tarMemberTruncated", Severity.ERROR,
     "The tar stream ends inside a member's data (or inside a long-name or pax header).",
     "tar: Unexpected EOF in archive; the extracted file is short."),
    ("tarHeaderChecksum", Severity.ERROR,
     "A tar header block's checksum does not match its bytes; nothing after it can be trusted.",
     "tar: Skipping to next header / This does not look like a tar archive."),
    ("tarBadHeader", Severity.ERROR,
     "A tar header (or pax extended header) holds a field that cannot be parsed: a non-octal number, "
     "a negative size, a malformed pax record, an empty name, an oversized pax header.",
     "tar: Archive contains '…' where numeric value expected / Malformed extended header."),
    ("tarAbsolutePath", Severity.ERROR,
     "A member has an absolute path; it is not extracted into the snapshot directory.",
     "tar: Removing leading '/' from member names (GNU tar), others write outside the target."),
    ("tarPathTraversal", Severity.ERROR,
     "A member path has a '..' component: it could climb out of the extraction directory.",
     "tar: Removing leading '../' / skipping member name containing '..'."),
    ("tarBackslashPath", Severity.WARNING,
     "A member path contains a backslash, a directory separator on Windows; git never writes one in "
     "a repository's own files.",
     "n/a: POSIX tar extracts it as one name; a Windows extractor splits it."),
    ("tarNulInName", Severity.ERROR,
     "A long name (GNU 'L'/'K' record or pax path/linkpath) contains a NUL byte before its end.",
     "n/a: extractors cut the name at the NUL and write a different file."),
    ("tarLinkEscapes", Severity.ERROR,
     "A symlink or hard link member points outside the archive root (absolute target, too many '..', "
     "or through another symlink).",
     "tar: extraction would create a link out of the snapshot directory."),
    ("tarPathThroughSymlink", Severity.ERROR,
     "A member's path passes through an earlier symlink member: extraction would write where the link "
     "points.",
     "n/a: a classic tar-slip; GNU tar replaces the link only with --unlink-first."),
    ("tarDeviceMember", Severity.ERROR,
     "A character or block device member; never part of a git mirror.",
     "n/a: tar -x creates a device node (as root)."),
    ("tarFifoMember", Severity.ERROR,
     "A fifo member; never part of a git mirror.",
     "n/a: tar -x creates a named pipe."),
    ("tarTooManyMembers", Severity.ERROR,
     "The archive holds more members than the configured limit; reading stopped.",
     "n/a: a resource limit of snapcheck."),
    ("tarPathTooLong", Severity.ERROR,
     "A member path is longer than the configured limit.",
     "n/a: the file system refuses names over PATH_MAX (4096)."),
    ("tarTrailingData", Severity.ERROR,
     "Non-zero bytes follow the end-of-archive marker (a second archive appended, or garbage).",
     "n/a: tar stops at the marker and ignores them (without -i)."),
    ("tarLoneZeroBlock", Severity.ERROR,
     "A single zero block is followed by more member headers: GNU tar stops reading there, so the "
     "members after it are never extracted.",
     "tar: A lone zero block at N (the rest of the archive is ignored)."),
    ("tarUnsupportedMember", Severity.ERROR,
     "A GNU sparse, multi-volume or old-style long-name member: its data is not a plain copy of the "
     "file, so it cannot be verified (a git mirror never needs one).",
     "n/a: GNU tar can extract it; other extractors cannot."),
    ("tarAmbiguousSize", Severity.ERROR,
     "A hard link, symlink, device or fifo member has a non-zero size: GNU tar and other readers "
     "(Python's tarfile, libarchive) disagree on whether data blocks follow, so they see different members.",
     "n/a: GNU tar ignores the size of a hard link and skips the data of the others; tarfile skips none."),
    ("tarUnknownType", Severity.WARNING,
     "A member has a type flag no tar standard defines; it is read as a regular file, as GNU tar "
     "extracts it.",
     "tar: Unknown file type 'X', extracted as normal file."),
)


def _num(field: bytes) -> int | None:
    """A numeric header field: octal text (NUL/space terminated) or GNU base-256; None if invalid."""
    s = field.split(b"\0", 1)[0]
    if s.isdigit():  # the usual case: digits only (int() rejects 8 and 9)
        try:
            return int(s, 8)
        except ValueError:
            return None
    if field and field[0] & 0x80:
        if field[0] == 0xFF:
            return None  # negative
        return int.from_bytes(bytes((field[0] & 0x7F,)) + field[1:], "big")
    s = s.strip(b" ")
    if not s:
        return 0
    if s.translate(None, b"01234567"):
        return None
    return int(s, 8)


def _signed_sum(block: bytes) -> int:
    return sum(b - 256 if b > 127 else b for b in block)


def _parse_pax(data: bytes) -> dict[bytes, bytes] | None:
    """pax extended header records (``"<len> <key>=<value>\\n"``); None if malformed."""
    out: dict[bytes, bytes] = {}
    pos, n = 0, len(data)
    while pos < n:
        if data[pos] == 0:  # some writers pad with NULs
            return out if data.count(0, pos) == n - pos else None
        sp = data.find(b" ", pos, pos + 24)
        if sp < 0:
            return None
        lenfield = data[pos:sp]
        if not lenfield.isdigit():
            return None
        end = pos + int(lenfield)
        if end <= sp + 1 or end > n or data[end - 1] != 0x0A:
            return None
        eq = data.find(b"=", sp + 1, end)
        if eq <= sp + 1:
            return None
        out[data[sp + 1:eq]] = data[eq + 1:end - 1]
        pos = end
    return out


def _components(path: str) -> list[str]:
    return [c for c in path.split("/") if c and c != "."]


class TarStream:
    """Members of the tar archive in *stream*, read forward-only (see the module docstring)."""

    def __init__(self, stream: Readable, *, limits: Limits, findings: list[Finding], label: str) -> None:
        self._stream = stream
        self._limits = limits
        self._findings = findings
        self._label = label
        rc = getattr(stream, "read_chunk", None)
        self._read_fn: Callable[[], bytes] = rc if callable(rc) else (lambda: stream.read(CHUNK) or b"")
        self._buf = b""  # current chunk; self._buf[self._pos:] not consumed yet
        self._pos = 0
        self._view = memoryview(b"")
        self._base = 0  # stream offset of self._buf[0]
        self._eof = False
        self._member: _MemberReader | None = None
        self._cut_reported = False
        self._symlinks: set[str] = set()
        self._dirs: set[str] = set()  # directories known to be real: directory members and parents of members
        self._last_dir = ""
        self.members = 0
        self.end_marker_seen = False

    # ------------------------------------------------------------------ reading
    def _chunk(self) -> bytes:
        if self._eof:
            return b""
        try:
            data = self._read_fn()
        except SourceError:
            raise
        except OSError as e:
            raise SourceError(f"{self._label}: read failed at tar offset {self._offset()}: "
                              f"{e.strerror or e}") from e
        if not data:
            self._eof = True
            return b""
        return data if type(data) is bytes else bytes(data)

    def _replace(self, chunk: bytes, pos: int) -> None:
        self._base += len(self._buf)
        self._buf = chunk
        self._view = memoryview(chunk)
        self._pos = pos

    def _offset(self) -> int:
        return self._base + self._pos

    def _take(self, n: int) -> bytes:
        """The next *n* bytes (fewer only at the end of the stream)."""
        buf, pos = self._buf, self._pos
        end = pos + n
        if end <= len(buf):
            self._pos = end
            return buf[pos:end]
        parts = [buf[pos:]]
        got = len(buf) - pos
        self._pos = len(buf)
        while got < n:
            chunk = self._chunk()
            if not chunk:
                break
            k = min(n - got, len(chunk))
            parts.append(chunk if k == len(chunk) else chunk[:k])
            got += k
            self._replace(chunk, k)
        return b"".join(parts)

    def _skip(self, n: int) -> int:
        """Consume *n* bytes without keeping them; return how many there were."""
        avail = len(self._buf) - self._pos
        if n <= avail:
            self._pos += n
            return n
        skipped = avail
        self._pos = len(self._buf)
        while skipped < n:
            chunk = self._chunk()
            if not chunk:
                break
            k = min(n - skipped, len(chunk))
            skipped += k
            self._replace(chunk, k)
        return skipped

    def _drain(self) -> None:
        """Read to the end of the stream, so the layer below checks all of it."""
        self._pos = len(self._buf)
        while self._chunk():
            pass

    # ------------------------------------------------------------------ findings
    def _note(self, code: str, path: str, message: str) -> None:
        where = f"{self._label}: {path}: " if path else f"{self._label}: "
        self._findings.append(finding(code, path or self._label, where + message))

    def _upstream_failed(self) -> bool:
        return bool(getattr(self._stream, "failed", False))

    def _missing_end(self, message: str) -> None:
        if not self._upstream_failed():
            self._note("tarMissingEndMarker", "", message + " (GNU tar and Python's tarfile accept this "
                       "silently when the cut is at a member boundary)")

    def _cut(self, path: str, size: int, got: int) -> None:
        if not self._cut_reported:
            self._cut_reported = True
            self._note("tarMemberTruncated", path,
                       f"the archive ends after {got} of the member's {size} bytes "
                       "(tar: Unexpected EOF in archive)")

    # ------------------------------------------------------------------ members
    def _finish_member(self) -> bool:
        """Skip what is left of the previous member; False if the archive ended inside it."""
        m = self._member
        if m is None:
            return not self._cut_reported
        self._member = None
        left, m._left = m._left, 0
        if self._cut_reported:
            return False
        if left:
            got = self._skip(left)
            if got < left:
                self._cut(m._path, m._size, m._size - left + got)
                return False
        if m._pad:
            got = self._skip(m._pad)
            if got < m._pad:
                self._missing_end(f"the archive ends inside the block padding after {m._path!r}")
                return False
        return True

    def _new_data(self, size: int, path: str) -> _MemberReader:
        m = _MemberReader(self, size, path)
        self._member = m
        return m

    def _check_symlink_prefix(self, parts: list[str], upto: int) -> str | None:
        """The first of the leading *upto* components' paths that is a symlink member, if any."""
        if not self._symlinks:
            return None
        for i in range(1, upto + 1):
            p = "/".join(parts[:i])
            if p in self._symlinks:
                return p
        return None

    def entries(self) -> Iterator[Entry]:
        """Yield the archive's members in order; each entry's data must be read before asking for the next."""
        limits = self._limits
        max_path = limits.max_path_length
        adler = zlib.adler32
        gpax: dict[bytes, bytes] = {}
        pax: dict[bytes, bytes] | None = None
        longname: bytes | None = None
        longlink: bytes | None = None
        long_too_long = False
        meta_bytes = 0  # data of the long-name/pax headers since the last member (bounded by PAX_MAX)
        while True:
            m = self._member
            if m is not None:
                # fast path: the rest of the member and its padding lie in the current chunk
                rest = m._left + m._pad
                if not self._cut_reported and self._pos + rest <= len(self._buf):
                    self._pos += rest
                    m._left = 0
                    self._member = None
                elif not self._finish_member():
                    return
            elif self._cut_reported:
                return
            hoff = self._base + self._pos
            hdr = self._take(BLOCK)
            if len(hdr) < BLOCK:
                if not hdr:
                    what = "after a long-name/pax header" if (pax or longname or longlink) else \
                        "at a member boundary"
                    self._missing_end(f"the archive ends at byte {hoff} {what}, without the end-of-archive "
                                      "marker (two zero blocks)")
                else:
                    self._missing_end(f"the archive ends {len(hdr)} bytes into a header block at byte {hoff}")
                return
            if hdr == ZERO_BLOCK:
                self._zero_block(hoff)
                return
            # -- checksum: the unsigned byte sum with the checksum field as spaces (two adler32 halves
            # give exact sums: 256 x 255 < 65521), or the historic signed sum
            chkfield = hdr[148:156]
            chk = (adler(hdr[:256]) & 0xFFFF) + (adler(hdr[256:]) & 0xFFFF) - 2 - sum(chkfield) + 256
            stored = _num(chkfield)
            if stored != chk and (stored is None or stored != _signed_sum(hdr) - _signed_sum(chkfield) + 256):
                self._note("tarHeaderChecksum", "",
                           f"the header block at byte {hoff} has checksum {chkfield!r}, its bytes sum "
                           f"to {chk:o}; nothing after it can be read (tar: Skipping to next header)")
                self._drain()
                return
            typeflag = hdr[156:157]
            size = _num(hdr[124:136])
            if size is None:
                self._note("tarBadHeader", "",
                           f"the header at byte {hoff} has an unreadable size field {hdr[124:136]!r}")
                self._drain()
                return
            # -- meta headers: GNU long names, pax
            if typeflag in META:
                if typeflag in (b"x", b"g") or size <= max_path + 1:  # the data is held, not skipped
                    meta_bytes += size
                if meta_bytes > PAX_MAX:
                    self._note("tarBadHeader", "",
                               f"the long-name and pax headers before byte {hoff + BLOCK} add up to more than "
                               f"{PAX_MAX} bytes without a member to apply to")
                    self._drain()
                    return
                got = self._meta(typeflag, size, hoff)
                if got is None:
                    return
                if typeflag == b"L":
                    longname = got if got is not _TOO_LONG else None
                    long_too_long = long_too_long or got is _TOO_LONG
                elif typeflag == b"K":
                    longlink = got if got is not _TOO_LONG else None
                    long_too_long = long_too_long or got is _TOO_LONG
                else:
                    records = _parse_pax(got)
                    if records is None:
                        self._note("tarBadHeader", "",
                                   f"the pax header at byte {hoff} holds malformed records "
                                   "(tar: Malformed extended header)")
                        self._drain()
                        return
                    if typeflag == b"g":
                        for k, v in records.items():
                            if k in (b"path", b"linkpath", b"size"):
                                if v:
                                    gpax[k] = v
                                else:
                                    gpax.pop(k, None)
                    else:
                        pax = records if pax is None else {**pax, **records}
                continue
            # -- a real member
            meta_bytes = 0
            self.members += 1
            if self.members > limits.max_members:
                self._note("tarTooManyMembers", "",
                           f"more than {limits.max_members} members (the configured limit); stopped reading")
                return
            # the name: pax path > GNU long name > ustar prefix + name
            nul = False
            sparse = False
            plink: bytes | None = None
            if pax or gpax:
                lp = pax or {}
                ppath = lp.get(b"path") or gpax.get(b"path")
                plink = lp.get(b"linkpath") or gpax.get(b"linkpath")
                psize = lp.get(b"size") or gpax.get(b"size")
                sparse = any(k.startswith(b"GNU.sparse.") for k in lp)
                if sparse and lp.get(b"GNU.sparse.name"):
                    ppath = lp[b"GNU.sparse.name"]  # pax sparse 1.0 hides the real name here
                if psize is not None:
                    if not psize.isdigit() or len(psize) > 20:
                        self._note("tarBadHeader", "",
                                   f"the pax header before byte {hoff} has an invalid size {psize[:40]!r}")
                        self._drain()
                        return
                    size = int(psize)
                pax = None
            else:
                ppath = None
            if ppath:
                rawname = ppath
                nul = b"\0" in rawname
            elif longname is not None:
                rawname = longname
                nul = b"\0" in rawname
            else:
                rawname = hdr[:100].split(b"\0", 1)[0]
                if hdr[257:263] == b"ustar\0" and hdr[345] != 0:
                    rawname = hdr[345:500].split(b"\0", 1)[0] + b"/" + rawname
            name = rawname.decode("utf-8", "surrogateescape")
            too_long, long_too_long = long_too_long, False
            mylink, longlink, longname = longlink, None, None
            # -- the type, and where its data ends
            # data follows every header but a directory's or a hard link's, whatever the size field
            # says of them: that is how GNU tar (which restores the archive) walks it; POSIX leaves the
            # size of symlinks and devices unspecified and Python's tarfile skips only regular data,
            # so a non-zero size there is ambiguous
            if typeflag in REGULAR:
                is_dir = name.endswith("/")  # the old convention, still honoured by GNU tar
                data_size = size
            else:
                is_dir = typeflag == b"5" or typeflag == b"D"
                data_size = 0 if typeflag in _NO_DATA else size
                if size and typeflag in _AMBIGUOUS:
                    self._note("tarAmbiguousSize", name,
                               f"a {_TYPE_NAMES[typeflag]} member with a size of {size}: GNU tar "
                               f"{'ignores it' if typeflag in _NO_DATA else 'skips that much data'}, "
                               "other readers do not, so they see different members")
                if typeflag == b"S" and not self._skip_sparse_map(hdr, name):
                    return
            reader: _MemberReader | None = None
            if data_size:
                reader = _MemberReader(self, data_size, name)
                reader._pad = -data_size % BLOCK
                self._member = reader
            # -- the path
            if nul or too_long:
                if nul:
                    self._note("tarNulInName", name.replace("\0", "\\0"),
                               "the member's long name or link target contains a NUL byte; not extracted as named")
                else:
                    self._note("tarPathTooLong", name[:200],
                               f"a GNU long name or link target over {max_path} bytes")
                continue
            # fast path for the usual "./dir/file" names
            n = name[2:] if name.startswith("./") else name
            if n.endswith("/"):
                n = n.rstrip("/")
            parts: list[str] | None = None
            if n.startswith((".", "/")) or "//" in n or "/." in n:
                if name.startswith("/"):
                    self._note("tarAbsolutePath", name,
                               "the member has an absolute path (tar: Removing leading '/')")
                    continue
                parts = _components(n)
                if ".." in parts:
                    self._note("tarPathTraversal", name,
                               "the member path has a '..' component and could land outside the snapshot "
                               "(tar: Member name contains '..')")
                    continue
                n = "/".join(parts)
            path = n
            if len(path) > max_path // 4 and len(path.encode("utf-8", "surrogateescape")) > max_path:
                self._note("tarPathTooLong", path[:200], f"the member path is over {max_path} bytes")
                continue
            if self._symlinks:
                if parts is None:
                    parts = path.split("/")
                through = self._check_symlink_prefix(parts, len(parts) - 1)
                if through is not None:
                    self._note("tarPathThroughSymlink", path,
                               f"the member lies below the symlink member {through!r}; extraction would "
                               "write where the link points")
                    continue
            mode = _num(hdr[100:108])
            if mode is None:
                self._note("tarBadHeader", path, f"unreadable mode field {hdr[100:108]!r}")
                mode = 0o644
            mode &= 0o7777
            if not path and not is_dir:
                self._note("tarBadHeader", name or ".", "a non-directory member with an empty name")
                continue
            if "\\" in path:
                self._note("tarBackslashPath", path,
                           "the member path contains a backslash, a directory separator on Windows")
            if reader is not None:
                reader._path = path
            if path in self._symlinks and typeflag != b"2":
                self._symlinks.discard(path)  # a later member replaces the link on extraction
            # -- by type
            if typeflag in REGULAR and not is_dir:
                if sparse:
                    self._note("tarUnsupportedMember", path, "a GNU sparse member (pax GNU.sparse.*); "
                               "its data is not the file's bytes")
                    continue
                self._mark_dirs(path, False)
                yield Entry(path, EntryKind.FILE, size, stream=cast(BinaryIO, reader or _MemberReader(None, 0, path)),
                            mode=mode)
                continue
            if is_dir:
                self._mark_dirs(path, True)
                yield Entry(path, EntryKind.DIR, 0, mode=mode)
                continue
            if typeflag in (b"1", b"2"):
                if plink:
                    rawlink = plink
                elif mylink is not None:
                    rawlink = mylink
                else:
                    rawlink = hdr[157:257].split(b"\0", 1)[0]
                target = rawlink.decode("utf-8", "surrogateescape")
                if b"\0" in rawlink:
                    self._note("tarNulInName", path, "the link target contains a NUL byte")
                    continue
                if len(rawlink) > max_path:
                    self._note("tarPathTooLong", path, f"the link target is over {max_path} bytes")
                    continue
                if parts is None:
                    parts = path.split("/")
                if typeflag == b"2":
                    why = self._symlink_escapes(parts, target)
                    if why is None and path in self._dirs:
                        why = ("replaces a directory that earlier members lie in or that earlier symlinks "
                               "resolve through")
                    if why:
                        self._note("tarLinkEscapes", path, f"symlink to {target!r} {why}")
                        continue
                    self._symlinks.add(path)
                    self._mark_dirs(path, False)
                    yield Entry(path, EntryKind.SYMLINK, 0, link_target=target, mode=mode)
                    continue
                tparts = _components(target)
                if target.startswith("/") or ".." in tparts:
                    self._note("tarLinkEscapes", path, f"hard link to {target!r}, outside the archive root")
                    continue
                through = self._check_symlink_prefix(tparts, len(tparts))
                if through is not None:
                    self._note("tarLinkEscapes", path,
                               f"hard link to {target!r}, through the symlink member {through!r}")
                    continue
                self._mark_dirs(path, False)
                yield Entry(path, EntryKind.HARDLINK, 0, link_target="/".join(tparts), mode=mode)
                continue
            if typeflag in (b"3", b"4"):
                kind = "character" if typeflag == b"3" else "block"
                self._note("tarDeviceMember", path, f"a {kind} device member")
            elif typeflag == b"6":
                self._note("tarFifoMember", path, "a fifo (named pipe) member")
            elif typeflag in (b"S", b"M", b"N"):
                what = {b"S": "GNU sparse", b"M": "GNU multi-volume continuation",
                        b"N": "old GNU long-name"}[typeflag]
                self._note("tarUnsupportedMember", path, f"a {what} member (type {typeflag.decode()!r})")
            elif typeflag == b"V":
                self.members -= 1  # a GNU volume label is not a member
            else:
                self._note("tarUnknownType", path,
                           f"unknown type flag {typeflag!r}; read as a regular file (tar: Unknown file type, "
                           "extracted as normal file)")
                self._mark_dirs(path, False)
                yield Entry(path, EntryKind.FILE, size, stream=cast(BinaryIO, reader or _MemberReader(None, 0, path)),
                            mode=mode)

    def _zero_block(self, hoff: int) -> None:
        """A zero block at *hoff* was read: the end marker if a second one follows."""
        second = self._take(BLOCK)
        if second == ZERO_BLOCK:
            self.end_marker_seen = True
            self._check_trailing()
            return
        if len(second) < BLOCK:
            self._missing_end(f"the archive ends at byte {self._offset()} with only one of the two "
                              "zero blocks of the end-of-archive marker")
            return
        self._note("tarLoneZeroBlock", "",
                   f"a single zero block at byte {hoff} is followed by more data: GNU tar stops "
                   "there (tar: A lone zero block), so the members after it are lost")
        self._drain()

    def _meta(self, typeflag: bytes, size: int, hoff: int) -> bytes | None:
        """The data of a long-name or pax header (``_TOO_LONG`` for an oversized long name); None to stop."""
        pax = typeflag in (b"x", b"g")
        if pax and size > PAX_MAX:
            self._note("tarBadHeader", "", f"the pax header at byte {hoff} is {size} bytes, over the limit of {PAX_MAX}")
            self._drain()
            return None
        what = f"({'pax' if pax else 'long-name'} header at byte {hoff})"
        if pax or size <= self._limits.max_path_length + 1:
            data = self._take(size)
            if len(data) < size:
                self._cut(what, size, len(data))
                return None
            if not pax:
                data = data.rstrip(b"\0")
        else:
            got = self._skip(size)
            if got < size:
                self._cut(what, size, got)
                return None
            data = _TOO_LONG
        padded = -size % BLOCK
        if self._skip(padded) < padded:
            self._missing_end(f"the archive ends inside the padding of the header at byte {hoff}")
            return None
        return data

    def _skip_sparse_map(self, hdr: bytes, name: str) -> bool:
        """Old GNU sparse members carry extension blocks after the header, outside the size."""
        ext = hdr[482]
        while ext:
            blk = self._take(BLOCK)
            if len(blk) < BLOCK:
                self._missing_end(f"the archive ends inside the sparse map after {name!r}")
                return False
            ext = blk[504]
        return True

    def _mark_dirs(self, path: str, is_dir: bool) -> None:
        """Remember *path* (a directory member) or its parent, and their parents, as real directories."""
        d = path if is_dir else path.rpartition("/")[0]
        if d == self._last_dir:
            return
        self._last_dir = d
        dirs = self._dirs
        while d and d not in dirs:
            dirs.add(d)
            d = d.rpartition("/")[0]

    def _symlink_escapes(self, parts: list[str], target: str) -> str | None:
        """Why a symlink at *parts* pointing to *target* may leave the archive root, or None.

        The target is resolved lexically from the link's own directory (whose components are real
        directories: no earlier member is a symlink there).  A ``..`` is accepted only where it undoes
        a component known to be a real directory (a directory member, or a parent of a member, seen
        earlier): after any other component, which a later member may still make a symlink, the
        kernel would climb from wherever that link points (``s -> d/s1/../x`` then ``d/s1 -> ..``).
        The extractor applies the same rule.
        """
        if target.startswith("/"):
            return "(an absolute target)"
        stack = parts[:-1]
        real = len(stack)  # stack[:real] are real directories
        for c in target.split("/"):
            if not c or c == ".":
                continue
            if c == "..":
                if not stack:
                    return "climbs above the archive root"
                if real < len(stack):
                    return (f"climbs '..' out of {'/'.join(stack)!r}, which is not a directory seen earlier in "
                            "the archive (a later member could make it a symlink)")
                stack.pop()
                real = len(stack)
            else:
                stack.append(c)
                joined = "/".join(stack)
                if self._symlinks and joined in self._symlinks:
                    return f"passes through the symlink member {joined!r}"
                if real == len(stack) - 1 and joined in self._dirs:
                    real = len(stack)
        return None

    def _check_trailing(self) -> None:
        """After the end marker: only zero bytes may follow; read to the end either way."""
        buf, pos = self._buf, self._pos
        while True:
            rest = len(buf) - pos
            if rest and buf.count(0, pos) != rest:
                tail = buf[pos:]
                at = self._offset() + len(tail) - len(tail.lstrip(b"\0"))
                self._note("tarTrailingData", "",
                           f"non-zero bytes at byte {at}, after the end-of-archive marker "
                           "(tar ignores everything after the marker)")
                self._drain()
                return
            chunk = self._chunk()
            if not chunk:
                self._pos = len(buf)
                return
            self._replace(chunk, 0)
            buf, pos = chunk, 0


class _MemberReader:
    """The data of one member, read from the tar stream's buffer (valid until the next entry).

    A small file-like object (not an ``io`` class: one is made per member, and ``IOBase`` objects
    cost several microseconds to make and finalise): ``read``, ``readinto``, ``read_chunk``
    (zero-copy), ``readable``, ``tell``, ``close``.
    """

    __slots__ = ("_left", "_pad", "_path", "_size", "_tar", "closed")

    def __init__(self, tar: TarStream | None, size: int, path: str) -> None:
        self._tar = tar
        self._size = size
        self._left = size
        self._path = path
        self._pad = 0
        self.closed = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def writable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._size - self._left

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> _MemberReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(self, size: int | None = -1, /) -> bytes:
        left = self._left
        if size is None or size < 0 or size > left:
            size = left
        if size <= 0 or self._tar is None:
            return b""
        data = self._tar._take(size)
        self._left = left - len(data)
        if len(data) < size:
            self._tar._cut(self._path, self._size, self._size - self._left)
            self._left = 0
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def read_chunk(self, limit: int = -1) -> bytes | memoryview:
        """The next piece of the member's data without copying (any length up to *limit*), ``b""`` at its end."""
        left = self._left
        if limit < 0 or limit > left:
            limit = left
        t = self._tar
        if limit <= 0 or t is None:
            return b""
        pos = t._pos
        avail = len(t._buf) - pos
        if avail <= 0:
            chunk = t._chunk()
            if not chunk:
                t._cut(self._path, self._size, self._size - left)
                self._left = 0
                return b""
            t._replace(chunk, 0)
            pos, avail = 0, len(chunk)
        k = avail if avail < limit else limit
        t._pos = pos + k
        self._left = left - k
        if pos == 0 and k == len(t._buf):
            return t._buf
        return t._view[pos:pos + k]

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read_chunk(len(view))
        n = len(data)
        view[:n] = data
        return n
