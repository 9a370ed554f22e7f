"""Safe extraction of a streamed snapshot into a private, empty directory.

:class:`SafeExtractor` sits between a source's entries and the verifier: :meth:`SafeExtractor.wrap`
yields every entry again, and every byte the verifier reads from a file entry is also written to
the file being extracted (whatever the verifier leaves unread is copied before the next entry).
It is the last line of defence of ``snapcheck restore``: the tar reader already refuses hostile
members, but the extractor assumes nothing about the entries it gets and stays safe on ANY
sequence.  The rules, in the order they are applied to each entry:

1. **Limits** (``extractLimit``): at most ``Limits.max_members`` entries, at most
   ``Limits.max_total_bytes`` bytes written, paths of at most ``Limits.max_path_length`` bytes.
   Once a limit is hit nothing more is written (the entries still pass to the verifier).
2. **Names** (``extractUnsafePath``): refused when the path holds a NUL byte, a backslash (a
   directory separator on Windows: not portable, and a traversal there), is absolute, has a ``..``
   or an empty component.  Leading ``./`` and ``.`` components are dropped (``./`` is the root).
3. **No write through a link**: every directory is opened component by component from a file
   descriptor of the destination with ``O_NOFOLLOW | O_DIRECTORY`` (``openat``), files are created
   with ``O_CREAT | O_EXCL | O_NOFOLLOW`` relative to that descriptor, so no component, and not the
   file itself, can be a symlink planted by an earlier member.  A member below an earlier symlink
   is refused (``extractUnsafePath``), below an earlier file too (``extractPathConflict``).
4. **Symlinks** (``extractLinkEscapes``): created only when the target is relative and stays inside
   the destination.  The target is resolved lexically against the link's own directory, and a
   ``..`` is accepted only where it undoes a component that is a directory extracted earlier
   (directories are never replaced, so that stays true).  A ``..`` after a component that is, or
   may later become, a symlink (``d/s/..`` where ``s -> ..``) would let the kernel climb out; such
   targets are refused.  By induction every symlink in the tree then resolves inside it.
5. **Hard links** (``extractLinkTarget``/``extractLinkEscapes``): only to a regular file extracted
   earlier in this run, named by a safe path; ``linkat`` without following links.
6. **Special files** (``extractSpecialFile``): devices, fifos, sockets are never created.
7. **Duplicates**: a regular file over a regular file replaces it (tar semantics; the old name is
   unlinked first, so an earlier hard link keeps the old bytes) with a warning
   (``extractDuplicate``); a directory repeated only updates its mode; every other collision
   (file over directory, directory over symlink, anything over a symlink, ...) is refused
   (``extractPathConflict``): nothing is ever replaced through or by a link.
8. **Modes**: set-user-ID, set-group-ID and sticky bits are removed (``extractModeStripped``, info),
   group and other write bits cleared; files keep owner read, directories get owner ``rwx`` (so the
   tree can always be read and removed).  Directories stay ``0700`` while extraction runs and get
   their final mode in :meth:`SafeExtractor.finish`.  Ownership and times are not restored.
9. **Sizes** (``extractSizeMismatch``): a file whose data stream gives more or fewer bytes than its
   declared size is reported (the tar reader reports a cut member too; this holds for any source).
10. **Durability**: every file is ``fsync``-ed when it is closed, every directory (and the
    destination itself) in :meth:`SafeExtractor.finish`.

Entries of a directory source (``local_path`` set, no stream) are copied from ``local_path``
(opened with ``O_NOFOLLOW``); a file that cannot be read there raises
:class:`~snapcheck.errors.SourceError`.

A refused entry becomes a finding, its data still passes to the verifier, extraction goes on, and
the caller must not install when any error finding exists.  A failure of the environment (disk
full, file too large, I/O error, read-only file system) is not a finding: it stops extraction with
:class:`ExtractError` (exit 3, worth a retry elsewhere) at the next entry boundary (a failing write
inside the verifier's read is remembered, never raised into the verifier), and the caller discards
the temp directory.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from .errors import SnapcheckError, SourceError
from .options import Limits
from .report import Finding, Severity, finding, register
from .sources.base import Entry, EntryKind

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = ["ExtractError", "SafeExtractor"]

CHUNK = 1 << 20
WRITE_BUFFER = 256 << 10
DIR_FD_CACHE = 128

_FILE, _DIR, _SYMLINK = 1, 2, 3
_KIND_NAME = {_FILE: "a file", _DIR: "a directory", _SYMLINK: "a symlink"}

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_O_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)

# errno values that concern the member (its name, a collision) rather than the environment.
_MEMBER_ERRNOS = frozenset({
    errno.ENAMETOOLONG, errno.EEXIST, errno.ELOOP, errno.ENOTDIR, errno.EISDIR, errno.EINVAL,
    errno.ENOENT, errno.EMLINK, errno.EILSEQ, errno.ENOTEMPTY,
})

register(
    "extract",
    ("extractUnsafePath", Severity.ERROR,
     "A member's path is absolute, climbs out with '..', has an empty component, a NUL byte or a backslash, "
     "or lies below a symlink extracted earlier: it was not extracted.",
     "GNU tar strips a leading '/' and refuses '..' members ('Member name contains ..'); a path through "
     "an earlier symlink is how hostile archives write outside the target directory."),
    ("extractLinkEscapes", Severity.ERROR,
     "A symlink or hard link member points outside the extraction directory (absolute target, '..' above the "
     "root, or '..' after a component that is not a directory extracted earlier): it was not created.",
     "tar creates such links; anything later written through them lands outside the repository."),
    ("extractLinkTarget", Severity.ERROR,
     "A hard link member names a target that is not a regular file extracted earlier: it was not created.",
     "GNU tar: 'Cannot hard link to ...: No such file or directory'."),
    ("extractSpecialFile", Severity.ERROR,
     "A device, fifo, socket or unknown special member: never created by the extractor.",
     "n/a: a git repository holds no special files; tar would create them (devices only as root)."),
    ("extractDuplicate", Severity.WARNING,
     "A regular file member appears again: the later copy replaced the earlier one, as tar does.",
     "tar silently keeps the last copy (an archive appended to with 'tar -r' has such duplicates)."),
    ("extractPathConflict", Severity.ERROR,
     "A member collides with an earlier member of another kind (file over directory, directory over file, "
     "anything over a symlink, a member below a file): the later member was not extracted.",
     "GNU tar would remove or fail on the earlier member depending on options; the result is not the snapshot."),
    ("extractLimit", Severity.ERROR,
     "A resource limit (members, total bytes, path length) was reached during extraction; nothing more was written.",
     "n/a: tar has no limits and would fill the disk; raise the limit if the snapshot is really that large."),
    ("extractSizeMismatch", Severity.ERROR,
     "A file member's data stream gave a different number of bytes than the member's declared size.",
     "tar: 'Unexpected EOF in archive'; the extracted file is cut short."),
    ("extractModeStripped", Severity.INFO,
     "Set-user-ID, set-group-ID or sticky bits of a member were removed during extraction.",
     "n/a: git never records them (setgid directories appear in shared repositories; git re-adds the bit)."),
    ("extractNotEmpty", Severity.ERROR,
     "The extraction directory was not empty when extraction started: nothing was extracted into it.",
     "n/a: snapcheck always extracts into a fresh private directory; this indicates misuse."),
)


class ExtractError(SnapcheckError):
    """The environment stopped extraction (disk full, I/O error, ...): the tree is incomplete."""

    exit_code = 3


def _open_nofollow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))


def _display(path: str) -> str:
    """A path as it can be printed: control characters and undecodable bytes escaped."""
    out = []
    for ch in path:
        o = ord(ch)
        if o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        elif 0xDC80 <= o <= 0xDCFF:  # surrogateescape of a non-UTF-8 byte
            out.append(f"\\x{o - 0xDC00:02x}")
        else:
            out.append(ch)
    return "".join(out)


def split_member_path(path: str) -> tuple[list[str] | None, str]:
    """``(components, "")`` of a safe member path (``[]`` is the root), or ``(None, why)``."""
    if "\0" in path:
        return None, "contains a NUL byte"
    if "\\" in path:
        return None, "contains a backslash (a directory separator on Windows)"
    if path.startswith("/"):
        return None, "is absolute"
    try:
        os.fsencode(path)
    except UnicodeError:
        return None, "is not encodable as a file name"
    p = path
    while p.startswith("./"):
        p = p[2:]
    if p.endswith("/"):
        p = p[:-1]
    if p in ("", "."):
        return [], ""
    out: list[str] = []
    for c in p.split("/"):
        if c == "":
            return None, "has an empty component ('//')"
        if c == "..":
            return None, "has a '..' component"
        if c != ".":
            out.append(c)
    return out, ""


def clamp_mode(mode: int, *, is_dir: bool) -> int:
    """Permission bits as extracted: no setuid/setgid/sticky, no group/other write, owner access kept."""
    m = stat.S_IMODE(mode) & 0o755
    return m | 0o700 if is_dir else m | 0o400


class _Tee(io.RawIOBase):
    """The stream the consumer sees for a file entry: every byte read is also written to the file."""

    def __init__(self, owner: SafeExtractor, src: Any) -> None:
        super().__init__()
        self._owner = owner
        self._src = src
        self._chunk_fn = getattr(src, "read_chunk", None)
        self._done = False

    def readable(self) -> bool:
        return True

    def close(self) -> None:  # the consumer may close it; the source stays open for the drain
        self._done = True
        super().close()

    def _pass(self, data: bytes | memoryview) -> None:
        if data:
            self._owner._sink(data)

    def read(self, size: int | None = -1, /) -> bytes:
        if self._done:
            return b""
        data = self._src.read(size if size is not None else -1) or b""
        self._pass(data)
        return bytes(data)

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        if self._done:
            return 0
        view = memoryview(buffer).cast("B")
        data = self.read_chunk(len(view))
        n = len(data)
        view[:n] = data
        return n

    def read_chunk(self, limit: int = -1) -> bytes | memoryview:
        """Like the tar reader's ``read_chunk``: the next piece (up to *limit*), ``b""`` at the end."""
        if self._done:
            return b""
        if self._chunk_fn is not None:
            data = self._chunk_fn(limit)
        else:
            data = self._src.read(CHUNK if limit < 0 else min(limit, CHUNK)) or b""
        self._pass(data)
        return cast("bytes | memoryview", data)


class SafeExtractor:
    """Extract entries into *dest*, an empty directory the caller created (see the module docstring)."""

    def __init__(self, dest: Path, *, limits: Limits, findings: list[Finding]) -> None:
        self.dest = Path(dest)
        self.limits = limits
        self.findings = findings
        self.files = 0
        self.bytes_written = 0
        self.members = 0
        self.error: ExtractError | None = None
        self._nodes: dict[str, int] = {}
        self._dir_modes: dict[str, int] = {}  # every directory created (and "" = dest) -> final mode
        self._fds: OrderedDict[str, int] = OrderedDict()
        self._stopped = False
        self._limit_reported = False
        self._out: io.BufferedWriter | None = None
        self._out_path = ""
        self._out_norm = ""
        self._out_mode = 0o644
        self._out_bytes = 0
        self._owned_src: Any = None  # a file this extractor opened (directory source), closed after the entry
        self._closed = False
        try:
            self._root = os.open(self.dest, _O_DIR)
        except OSError as e:
            raise ExtractError(f"cannot open the extraction directory {self.dest}: {e.strerror or e}") from e
        self._dir_modes[""] = 0o755
        try:
            with os.scandir(self._root) as it:
                busy = next(it, None) is not None
        except OSError as e:
            os.close(self._root)
            raise ExtractError(f"cannot list the extraction directory {self.dest}: {e.strerror or e}") from e
        if busy:
            self._stopped = True
            self._note("extractNotEmpty", "", f"{self.dest} is not empty; nothing will be extracted into it")

    # ------------------------------------------------------------------ public
    def wrap(self, entries: Iterable[Entry]) -> Iterator[Entry]:
        """Yield each entry again, extracting it as the consumer reads it (see the module docstring)."""
        for entry in entries:
            out = self._begin(entry)
            self._raise_if_failed()
            try:
                yield out
            except BaseException:
                self._abandon()
                raise
            self._end(entry, out)
        self._raise_if_failed()

    def finish(self) -> None:
        """Give directories their final modes and fsync them (deepest first), then the destination."""
        if self._closed:
            raise ValueError("SafeExtractor.finish() after close()")
        if self.error is not None:
            self.close()
            raise self.error
        self._abandon()
        try:
            # children before their parent, each subtree in one run (so cached descriptors are reused)
            for path in sorted(self._dir_modes, key=lambda p: p.split("/"), reverse=True):
                fd = self._dir_fd(path, create=False) if path else self._root
                os.fchmod(fd, self._dir_modes[path])
                os.fsync(fd)
        except OSError as e:
            self.error = ExtractError(f"cannot finish {self.dest}: {e.strerror or e}")
            self.close()
            raise self.error from e
        self.close()

    def close(self) -> None:
        """Release every descriptor (finish() does it; call it when extraction is abandoned)."""
        self._abandon()
        for fd in self._fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()
        if not self._closed:
            self._closed = True
            with contextlib.suppress(OSError):
                os.close(self._root)

    def __enter__(self) -> SafeExtractor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ per entry
    def _begin(self, entry: Entry) -> Entry:
        self.members += 1
        if self._stopped:
            return entry
        if self.members > self.limits.max_members:
            self._limit(entry.path, f"more than {self.limits.max_members} members; the rest is not extracted")
            return entry
        try:
            return self._place(entry)
        except OSError as e:
            self._os_failure(entry.path, e)
            return entry

    def _place(self, entry: Entry) -> Entry:
        path = entry.path
        shown = _display(path)
        parts, why = split_member_path(path)
        if parts is None:
            self._note("extractUnsafePath", shown, f"member path {shown!r} {why}; not extracted")
            return entry
        if len(os.fsencode(path)) > self.limits.max_path_length:
            self._note("extractLimit", shown[:200], f"member path over {self.limits.max_path_length} bytes; not extracted")
            return entry
        norm = "/".join(parts)
        kind = entry.kind
        if kind is EntryKind.OTHER:
            self._note("extractSpecialFile", shown, f"{shown}: a device, fifo or socket member; not created")
            return entry
        if not parts and kind is not EntryKind.DIR:
            self._note("extractUnsafePath", shown or ".", f"a {kind.value} member at the archive root; not extracted")
            return entry
        if not self._parents_ok(parts, shown):
            return entry
        mode = entry.mode
        if stat.S_IMODE(mode) & 0o7000:
            self._note("extractModeStripped", shown,
                       f"{shown}: mode {stat.S_IMODE(mode):04o} has set-user-ID, set-group-ID or sticky bits; removed")
        existing = self._nodes.get(norm)
        if kind is EntryKind.DIR:
            if not parts:
                self._dir_modes[""] = clamp_mode(mode, is_dir=True)
                return entry
            if existing is not None and existing != _DIR:
                self._conflict(shown, "directory", existing)
                return entry
            self._dir_fd(norm, create=True)
            self._dir_modes[norm] = clamp_mode(mode, is_dir=True)
            return entry
        if existing is not None and not (existing == _FILE and kind is EntryKind.FILE):
            self._conflict(shown, kind.value, existing)
            return entry
        parent = self._dir_fd("/".join(parts[:-1]), create=True)
        name = parts[-1]
        if kind is EntryKind.SYMLINK:
            target = entry.link_target
            bad = self._symlink_unsafe(parts, target)
            if bad:
                self._note("extractLinkEscapes", shown, f"{shown}: symlink to {_display(target or '')!r} {bad}; not created")
                return entry
            assert target is not None
            os.symlink(target, name, dir_fd=parent)
            self._nodes[norm] = _SYMLINK
            return entry
        if kind is EntryKind.HARDLINK:
            return self._hardlink(entry, parts, shown)
        # a regular file
        if self.bytes_written + max(entry.size, 0) > self.limits.max_total_bytes:
            self._limit(shown, f"{shown}: extracting {entry.size} more bytes would pass the limit of "
                        f"{self.limits.max_total_bytes} bytes; the rest is not extracted")
            return entry
        if existing == _FILE:
            self._note("extractDuplicate", shown, f"{shown}: appears again in the archive; the later copy replaces the earlier one")
            os.unlink(name, dir_fd=parent)
            del self._nodes[norm]
        src: Any = entry.stream
        if src is None and entry.local_path is not None:
            # a directory source: the consumer reads local_path itself; the drain copies the file
            try:
                src = open(entry.local_path, "rb", opener=_open_nofollow)  # noqa: SIM115 (closed in _end)
            except OSError as e:
                raise SourceError(f"cannot read {entry.local_path}: {e.strerror or e}") from e
        try:
            fd = os.open(name, _O_NEW, 0o600, dir_fd=parent)
        except BaseException:
            if src is not None and src is not entry.stream:
                src.close()
            raise
        if src is not entry.stream:
            self._owned_src = src
        self._nodes[norm] = _FILE
        self._out = io.BufferedWriter(io.FileIO(fd, "w"), WRITE_BUFFER)
        self._out_path = shown
        self._out_norm = norm
        self._out_mode = clamp_mode(mode, is_dir=False)
        self._out_bytes = 0
        self.files += 1
        if src is None:
            return entry
        return replace(entry, stream=cast(BinaryIO, _Tee(self, src)))

    def _end(self, entry: Entry, out: Entry) -> None:
        tee = out.stream if isinstance(out.stream, _Tee) else None
        src: Any = tee._src if tee is not None else entry.stream
        self._raise_if_failed()  # a write failed inside the consumer's read: stop now, do not drain
        if src is not None:
            # Whatever the consumer left unread: copied to the file (tee) or only skipped.
            fn = getattr(src, "read_chunk", None)
            while True:
                data = fn(CHUNK) if fn is not None else (src.read(CHUNK) or b"")
                if not data:
                    break
                if tee is not None:
                    self._sink(data)
            if tee is not None:
                tee._done = True
            self._close_src()
        if self._out is not None:
            if self.error is None and self._out_bytes != entry.size:
                self._note("extractSizeMismatch", self._out_path,
                           f"{self._out_path}: the member declares {entry.size} bytes, its data gave {self._out_bytes}")
            self._close_out()
        self._raise_if_failed()

    def _close_src(self) -> None:
        src, self._owned_src = self._owned_src, None
        if src is not None:
            with contextlib.suppress(OSError):
                src.close()

    def _sink(self, data: bytes | memoryview) -> None:
        """Write a piece of the current file (called from the consumer's reads: never raises)."""
        out = self._out
        if out is None or self.error is not None:
            return
        n = len(data)
        if self.bytes_written + n > self.limits.max_total_bytes:
            self._abandon(unlink=True)
            self._limit(self._out_path, f"{self._out_path}: the extracted data passes the limit of "
                        f"{self.limits.max_total_bytes} bytes; the rest is not extracted")
            return
        try:
            out.write(data)
        except OSError as e:
            self.error = ExtractError(f"cannot write {self._out_path} below {self.dest}: {e.strerror or e}")
            self.error.__cause__ = e
            return
        self._out_bytes += n
        self.bytes_written += n

    def _close_out(self) -> None:
        out = self._out
        self._out = None
        if out is None:
            return
        try:
            out.flush()
            fd = out.fileno()
            os.fchmod(fd, self._out_mode)
            os.fsync(fd)
        except OSError as e:
            if self.error is None:
                self.error = ExtractError(f"cannot write {self._out_path} below {self.dest}: {e.strerror or e}")
                self.error.__cause__ = e
        finally:
            with contextlib.suppress(OSError):
                out.close()

    def _abandon(self, unlink: bool = False) -> None:
        """Close the file being written without flushing into a failed state (and optionally remove it)."""
        if not unlink:
            self._close_src()
        out = self._out
        self._out = None
        if out is None:
            return
        with contextlib.suppress(OSError, ValueError):
            out.close()
        if unlink:
            parts = self._out_norm.split("/")
            with contextlib.suppress(OSError):
                os.unlink(parts[-1], dir_fd=self._dir_fd("/".join(parts[:-1]), create=False))
                self._nodes.pop(self._out_norm, None)
                self.files -= 1

    # ------------------------------------------------------------------ links
    def _symlink_unsafe(self, parts: list[str], target: str | None) -> str | None:
        if not target:
            return "(an empty target)"
        if "\0" in target:
            return "(the target contains a NUL byte)"
        if "\\" in target:
            return "(the target contains a backslash)"
        if target.startswith("/"):
            return "(an absolute target)"
        try:
            os.fsencode(target)
        except UnicodeError:
            return "(the target is not encodable as a file name)"
        if len(os.fsencode(target)) > self.limits.max_path_length:
            return f"(the target is over {self.limits.max_path_length} bytes)"
        stack = parts[:-1]
        real = len(stack)  # stack[:real] are directories extracted earlier
        for c in target.split("/"):
            if c in ("", "."):
                continue
            if c == "..":
                if not stack:
                    return "(climbs above the extraction directory)"
                if real < len(stack):
                    return (f"(climbs '..' out of {'/'.join(stack)!r}, which is not a directory extracted "
                            "earlier: the kernel would resolve it through whatever it is)")
                stack.pop()
                real = len(stack)
            else:
                stack.append(c)
                if real == len(stack) - 1 and self._nodes.get("/".join(stack)) == _DIR:
                    real = len(stack)
        return None

    def _hardlink(self, entry: Entry, parts: list[str], shown: str) -> Entry:
        target = entry.link_target or ""
        tparts, why = split_member_path(target)
        if tparts is None or not tparts:
            self._note("extractLinkEscapes", shown,
                       f"{shown}: hard link to {_display(target)!r} {why or 'names the root'}; not created")
            return entry
        tnorm = "/".join(tparts)
        if self._nodes.get(tnorm) != _FILE:
            what = _KIND_NAME.get(self._nodes.get(tnorm, 0), "nothing extracted")
            self._note("extractLinkTarget", shown,
                       f"{shown}: hard link to {_display(tnorm)!r}, which is {what}, not a file extracted earlier; not created")
            return entry
        # dup: opening the link's own directory may evict the target directory's cached descriptor
        sfd = os.dup(self._dir_fd("/".join(tparts[:-1]), create=False))
        try:
            parent = self._dir_fd("/".join(parts[:-1]), create=False)
            os.link(tparts[-1], parts[-1], src_dir_fd=sfd, dst_dir_fd=parent, follow_symlinks=False)
        finally:
            os.close(sfd)
        self._nodes["/".join(parts)] = _FILE
        self.files += 1
        return entry

    # ------------------------------------------------------------------ directories
    def _parents_ok(self, parts: list[str], shown: str) -> bool:
        for i in range(1, len(parts)):
            prefix = "/".join(parts[:i])
            k = self._nodes.get(prefix)
            if k == _SYMLINK:
                self._note("extractUnsafePath", shown,
                           f"{shown}: lies below the symlink {_display(prefix)!r}; writing it would follow the link")
                return False
            if k == _FILE:
                self._note("extractPathConflict", shown, f"{shown}: lies below {_display(prefix)!r}, which is a file")
                return False
        return True

    def _dir_fd(self, path: str, *, create: bool) -> int:
        """A descriptor of directory *path* below dest, opened component by component, never via a link."""
        if not path:
            return self._root
        fds = self._fds
        fd = fds.get(path)
        if fd is not None:
            fds.move_to_end(path)
            return fd
        # start from the deepest cached ancestor
        cut, cur = 0, self._root
        i = len(path)
        while True:
            i = path.rfind("/", 0, i)
            if i < 0:
                break
            got = fds.get(path[:i])
            if got is not None:
                cut, cur = i + 1, got
                break
        names = path[cut:].split("/")
        sub = path[:cut - 1] if cut else ""
        for name in names:
            sub = f"{sub}/{name}" if sub else name
            try:
                nfd = os.open(name, _O_DIR, dir_fd=cur)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(name, 0o700, dir_fd=cur)
                self._nodes[sub] = _DIR
                self._dir_modes.setdefault(sub, 0o755)
                nfd = os.open(name, _O_DIR, dir_fd=cur)
            # cache every level (siblings and the parents visited by finish() reuse them); the
            # cache never evicts the descriptor just opened, which is the next step's parent
            fds[sub] = nfd
            while len(fds) > DIR_FD_CACHE:
                _, old = fds.popitem(last=False)
                os.close(old)
            cur = nfd
        return cur
    # ------------------------------------------------------------------ findings and failures
    def _note(self, code: str, path: str, message: str) -> None:
        self.findings.append(finding(code, path, message))

    def _conflict(self, shown: str, kind: str, existing: int) -> None:
        self._note("extractPathConflict", shown,
                   f"{shown}: a {kind} member where an earlier member made {_KIND_NAME[existing]}; not extracted "
                   "(only a regular file may replace a regular file)")

    def _limit(self, path: str, message: str) -> None:
        self._stopped = True
        if not self._limit_reported:
            self._limit_reported = True
            self._note("extractLimit", path, message)

    def _os_failure(self, path: str, e: OSError) -> None:
        shown = _display(path)
        if e.errno in _MEMBER_ERRNOS:
            code = "extractPathConflict" if e.errno in (errno.EEXIST, errno.ENOTDIR, errno.EISDIR,
                                                        errno.ELOOP, errno.ENOTEMPTY) else "extractUnsafePath"
            self._note(code, shown, f"{shown}: could not be extracted safely: {e.strerror or e}")
            return
        self.error = ExtractError(f"cannot extract {shown} below {self.dest}: {e.strerror or e}")
        self.error.__cause__ = e

    def _raise_if_failed(self) -> None:
        if self.error is not None:
            self._abandon()
            raise self.error
