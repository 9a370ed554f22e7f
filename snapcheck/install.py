"""Atomic installation of an extracted snapshot: a private sibling temp dir, then one rename.

``snapcheck restore`` never extracts in place (cachew #222: a failed in-place restore ran
``RemoveAll`` on the destination, and partial directories were left behind and later served).
The sequence is:

1. :func:`make_temp_sibling` creates ``<parent>/.<name>.snapcheck-<16 hex>`` (mode ``0700``) next
   to the destination, so the final rename stays on one file system, and holds an exclusive
   ``flock`` on it for as long as this process works on it.  Before that it removes leftovers of
   killed runs: directories named exactly ``.<name>.snapcheck-<16 hex>`` or
   ``.<name>.snapcheck-old-<16 hex>``, owned by the current user and not locked by a live process.
   A leftover is never adopted (a killed extraction is incomplete by definition), with one
   exception that loses nothing: when the destination is missing and an ``-old-`` copy exists, a
   replace was killed between its two renames, and that old copy (the previous, complete
   destination) is renamed back into place.  (cachew #362 / the ``.restore-*`` gap: leftovers
   discovered as mirrors.)
2. The caller extracts and verifies into the temp dir (:class:`snapcheck.extract.SafeExtractor`).
3. :func:`install` moves it into place:

   - destination absent (or an empty directory): ``renameat2(RENAME_NOREPLACE)`` (plain
     ``rename`` where unsupported; it replaces only an *empty* directory, atomically);
   - destination present and ``replace`` false: :class:`DestinationExists` (a usage error, exit 2);
   - ``replace``: ``renameat2(RENAME_EXCHANGE)`` swaps the two directories in one step, so a reader
     of the destination sees the old tree or the new one and never nothing; the old tree, now at
     the temp name, is removed.  Where the kernel or file system cannot exchange, the fallback is
     ``rename(dest, .<name>.snapcheck-old-<hex>)``, ``rename(temp, dest)`` and removal of the old
     copy, with the old copy renamed back if the second step fails (a short window with no
     destination; step 1 recovers from a crash inside it);
   - the parent directory is fsynced, so the rename survives a power loss.

   On failure the destination is untouched (or restored) and the caller calls :func:`discard`.
4. :func:`discard` removes a temp dir whatever its state, and refuses any path whose name is not a
   snapcheck temp name, so a wrong argument can never delete a real directory.

A destination that is a symlink, a non-directory or a mount point is refused (exit 2): replacing
the link (not its target) or a mount would surprise.  Failures of the environment raise
:class:`InstallError` (exit 3).  The atomic exchange needs Linux ≥ 3.15 and glibc ≥ 2.28.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import re
import secrets
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import SnapcheckError, UsageError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = ["DestinationExists", "InstallError", "discard", "install", "make_temp_sibling"]

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
_SUFFIX = re.compile(r"\.snapcheck-(?:old-)?[0-9a-f]{16}\Z")
_AT_FDCWD = -100

# temp dirs made by this process -> descriptor holding the flock
_LOCKS: dict[str, int] = {}


class InstallError(SnapcheckError):
    """The snapshot could not be put in place (I/O, permissions, file system): exit 3."""

    exit_code = 3


class DestinationExists(InstallError, UsageError):
    """The destination exists and ``replace`` was not asked for (or it cannot be replaced): exit 2."""

    exit_code = 2


def _load_renameat2() -> Callable[..., int] | None:
    try:
        libc: Any = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn: Any = libc.renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn  # type: ignore[no-any-return]


_renameat2_fn = _load_renameat2()


def _renameat2(dir_fd: int, old: str, new: str, flags: int) -> bool:
    """``renameat2`` in one directory; False when the kernel, libc or file system cannot do *flags*."""
    fn = _renameat2_fn
    if fn is None:
        return False
    if fn(dir_fd, os.fsencode(old), dir_fd, os.fsencode(new), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), new)


def _rename(dir_fd: int, old: str, new: str) -> None:
    os.rename(old, new, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def _names(dest: Path) -> tuple[Path, str]:
    dest = Path(os.path.abspath(dest))
    name = dest.name
    if name in ("", ".", ".."):
        raise UsageError(f"{dest}: not a usable destination name")
    return dest.parent, name


def _is_ours(parent: Path, entry: str, name: str) -> bool:
    prefix = f".{name}"
    if not entry.startswith(prefix) or not _SUFFIX.fullmatch(entry[len(prefix):]):
        return False
    try:
        st = os.lstat(parent / entry)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid()


def _try_lock(path: Path) -> int | None:
    """An fd holding an exclusive flock on directory *path*, or None if a live process holds it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    if fcntl is None:  # pragma: no cover
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _rmtree(path: Path) -> None:
    """Remove a tree without following links; directories without owner access are opened up first."""
    if not os.path.lexists(path):
        return
    try:
        shutil.rmtree(path)
        return
    except FileNotFoundError:
        return
    except OSError:
        pass
    for top, dirs, _files in os.walk(path, topdown=True, followlinks=False):
        for d in dirs:
            p = os.path.join(top, d)
            with contextlib.suppress(OSError):
                if stat.S_ISDIR(os.lstat(p).st_mode):
                    os.chmod(p, 0o700)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o700)
    shutil.rmtree(path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def cleanup_leftovers(dest: Path) -> list[Path]:
    """Remove leftovers of killed runs next to *dest* (see the module docstring); return what was removed."""
    parent, name = _names(dest)
    target = parent / name
    try:
        entries = os.listdir(parent)
    except FileNotFoundError:
        return []
    except OSError as e:
        raise InstallError(f"cannot list {parent}: {e.strerror or e}") from e
    ours = [ent for ent in entries if _is_ours(parent, ent, name)]
    removed: list[Path] = []
    locks: dict[str, int] = {}
    try:
        for ent in ours:
            fd = _try_lock(parent / ent)
            if fd is not None:
                locks[ent] = fd
        olds = [ent for ent in locks if "snapcheck-old-" in ent]
        if olds and not os.path.lexists(target):
            newest = max(olds, key=lambda ent: os.lstat(parent / ent).st_ctime_ns)  # ctime: the rename
            try:
                os.rename(parent / newest, target)
                _fsync_dir(parent)
            except OSError as err:
                raise InstallError(f"cannot put the previous copy {parent / newest} back at {target}: "
                                   f"{err.strerror or err}") from err
            os.close(locks.pop(newest))
        for ent in list(locks):
            try:
                _rmtree(parent / ent)
            except OSError:
                continue  # left for a later run; never adopted, so harmless
            removed.append(parent / ent)
    finally:
        for fd in locks.values():
            os.close(fd)
    return removed


def make_temp_sibling(dest: Path) -> Path:
    """Create ``<parent>/.<name>.snapcheck-<hex>`` (0700, locked by this process) after removing leftovers."""
    parent, name = _names(dest)
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as e:
        raise InstallError(f"cannot create {parent}: {e.strerror or e}") from e
    cleanup_leftovers(parent / name)
    for _ in range(16):
        temp = parent / f".{name}.snapcheck-{secrets.token_hex(8)}"
        try:
            os.mkdir(temp, 0o700)
        except FileExistsError:
            continue
        except OSError as e:
            raise InstallError(f"cannot create a temporary directory next to {parent / name}: {e.strerror or e}") from e
        try:
            os.chmod(temp, 0o700)
        except OSError as e:
            os.rmdir(temp)
            raise InstallError(f"cannot set the mode of {temp}: {e.strerror or e}") from e
        fd = _try_lock(temp)
        if fd is not None:
            _LOCKS[str(temp)] = fd
        return temp
    raise InstallError(f"cannot create a temporary directory next to {parent / name}")


def _release(temp: Path) -> None:
    fd = _LOCKS.pop(str(temp), None)
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


def _check_temp(temp: Path, dest_parent: Path, name: str) -> None:
    prefix = f".{name}"
    if temp.parent != dest_parent or not temp.name.startswith(prefix) or \
            not _SUFFIX.fullmatch(temp.name[len(prefix):]) or "snapcheck-old-" in temp.name:
        raise UsageError(f"{temp} is not a temporary directory made by make_temp_sibling() for {dest_parent / name}")


def install(temp: Path, dest: Path, *, replace: bool) -> None:
    """Move the extracted tree *temp* to *dest* atomically (see the module docstring)."""
    parent, name = _names(dest)
    temp = Path(os.path.abspath(temp))
    _check_temp(temp, parent, name)
    target = parent / name
    try:
        pfd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        raise InstallError(f"cannot open {parent}: {e.strerror or e}") from e
    try:
        _install(pfd, temp, target, replace)
    finally:
        os.close(pfd)


def _dest_state(target: Path) -> str:
    """'absent', 'empty' (an empty real directory), 'dir' (non-empty real directory) or raise."""
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return "absent"
    except OSError as e:
        raise InstallError(f"cannot inspect {target}: {e.strerror or e}") from e
    if stat.S_ISLNK(st.st_mode):
        raise DestinationExists(f"{target} is a symlink; give the path of the directory itself")
    if not stat.S_ISDIR(st.st_mode):
        raise DestinationExists(f"{target} exists and is not a directory; not replaced")
    if os.path.ismount(target):
        raise DestinationExists(f"{target} is a mount point; it cannot be replaced atomically (restore below it)")
    try:
        with os.scandir(target) as it:
            return "dir" if next(it, None) is not None else "empty"
    except OSError as e:
        raise InstallError(f"cannot list {target}: {e.strerror or e}") from e


def _install(pfd: int, temp: Path, target: Path, replace: bool) -> None:
    tname, dname = temp.name, target.name
    state = _dest_state(target)
    if state == "dir" and not replace:
        raise DestinationExists(f"{target} already exists; pass --replace to swap the restored snapshot in "
                                "atomically, or choose another destination")
    try:
        if state == "empty":
            _rename(pfd, tname, dname)  # replaces an empty directory only (ENOTEMPTY otherwise)
        elif state == "absent":
            if not _renameat2(pfd, tname, dname, RENAME_NOREPLACE):
                if os.path.lexists(target):
                    raise DestinationExists(f"{target} appeared while restoring; not replaced")
                _rename(pfd, tname, dname)
        elif not _renameat2(pfd, tname, dname, RENAME_EXCHANGE):
            _swap_by_renames(pfd, temp, target)
            _release(temp)
            os.fsync(pfd)
            return
    except FileExistsError as e:
        raise DestinationExists(f"{target} appeared while restoring; not replaced") from e
    except OSError as e:
        if e.errno == errno.ENOTEMPTY and state != "dir":
            raise DestinationExists(f"{target} is no longer empty; not replaced") from e
        raise InstallError(f"cannot move {temp} to {target}: {e.strerror or e}") from e
    _release(temp)
    try:
        os.fsync(pfd)
    except OSError as e:
        raise InstallError(f"{target} is in place but its directory could not be synced: {e.strerror or e}") from e
    if state == "dir":
        # temp now holds the previous tree; its removal failing leaves a leftover the next run removes
        with contextlib.suppress(OSError):
            _rmtree(temp)


def _swap_by_renames(pfd: int, temp: Path, target: Path) -> None:
    """Replace without RENAME_EXCHANGE: dest -> old, temp -> dest, remove old (old restored on failure)."""
    old = target.parent / f".{target.name}.snapcheck-old-{secrets.token_hex(8)}"
    lock = _try_lock(target)  # keeps a concurrent cleanup_leftovers() away from the old copy
    try:
        try:
            _rename(pfd, target.name, old.name)
        except OSError as e:
            raise InstallError(f"cannot move {target} aside: {e.strerror or e}") from e
        try:
            _rename(pfd, temp.name, target.name)
        except OSError as e:
            try:
                _rename(pfd, old.name, target.name)
            except OSError as e2:
                raise InstallError(f"cannot move {temp} to {target} ({e.strerror or e}) and cannot put the previous "
                                   f"copy back from {old} ({e2.strerror or e2}); the next restore will") from e
            raise InstallError(f"cannot move {temp} to {target}: {e.strerror or e}; {target} is unchanged") from e
    finally:
        if lock is not None:
            os.close(lock)
    with contextlib.suppress(OSError):
        _rmtree(old)


def discard(temp: Path) -> None:
    """Remove a temp dir made by :func:`make_temp_sibling`, whatever state it is in (absent is fine)."""
    temp = Path(os.path.abspath(temp))
    m = _SUFFIX.search(temp.name)
    if not temp.name.startswith(".") or m is None or m.start() < 2:
        raise UsageError(f"{temp} is not a snapcheck temporary directory; not removed")
    _release(temp)
    try:
        st = os.lstat(temp)
    except FileNotFoundError:
        return
    except OSError as e:
        raise InstallError(f"cannot inspect {temp}: {e.strerror or e}") from e
    try:
        if stat.S_ISDIR(st.st_mode):
            _rmtree(temp)
        else:
            os.unlink(temp)
    except OSError as e:
        raise InstallError(f"cannot remove {temp}: {e.strerror or e}") from e
