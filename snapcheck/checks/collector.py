"""The collector: takes a snapshot's entries one at a time (in whatever order the source has them) and
keeps what the cross-file checks need.

Packs are checked while they stream (header, count, trailer, whole-file hash at ``standard``+) and
kept for the object graph only when the level needs them (``quick`` keeps no pack data).  Small
files are held in memory; large ones are mmapped (directory source) or spooled to a private temp dir
(archive source).  Nothing is parsed here that needs another file: that waits for
:mod:`snapcheck.checks.repository`, because tar order is arbitrary (``packed-refs`` may come before
or after the pack indexes it must be checked against).
"""

from __future__ import annotations

import hashlib
import mmap
import re
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import SourceError
from ..gitformats.common import HashAlgo, algo_for_hexlen
from ..gitformats.pack import PackStreamChecker, PackSummary
from ..options import VerifyOptions
from ..report import Finding, Level, Severity, finding, register
from ..sources.base import Entry, EntryKind
from .blobs import CHUNK, Held, Spool, map_file, read_stream

register(
    "layout",
    ("leftoverLockFile", Severity.WARNING,
     "A `*.lock` file: a git command was writing this file when the snapshot was taken (or died).",
     "git refuses to update the locked file: `fatal: Unable to create '…lock': File exists.`"),
    ("leftoverTempFile", Severity.WARNING,
     "A temporary file of an unfinished pack or index write (`tmp_pack_*`, `tmp_idx_*`, `packed-refs.new`).",
     "git ignores it; `git count-objects -v` counts it as garbage."),
    ("unexpectedFileType", Severity.ERROR,
     "A device, fifo or socket inside the repository.",
     "git never creates these; commands that read the path fail or hang."),
    ("refSymlink", Severity.WARNING,
     "A loose ref is a symbolic link.",
     "git fsck: symlinkRef (info); git still follows it."),
    ("alternatesPresent", Severity.WARNING,
     "objects/info/alternates borrows objects from another repository: the snapshot is not self-contained.",
     "git reads objects from the listed directories; without them it reports missing objects."),
    ("shallowRepository", Severity.WARNING,
     "A `shallow` file: history is cut, so the mirror is not complete.",
     "git treats the listed commits as roots; fetches from it may fail."),
    ("unknownPackFile", Severity.WARNING,
     "A file in objects/pack/ that git does not write.",
     "git ignores it (count-objects: garbage)."),
)
register(
    "limits",
    ("memberTooLarge", Severity.ERROR,
     "A file that is checked in memory (packed-refs, config, HEAD, the manifest, the loose refs together) is "
     "larger than the configured limit: it was not read or checked (raise --max-packed-refs, "
     "--max-ref-line or --max-memory-member if the snapshot is trusted).",
     "n/a: a resource limit of snapcheck (git reads the file whole and would need that much memory)."),
    ("refsTooMany", Severity.ERROR,
     "More loose refs than the configured limit (--max-refs): the rest were not read.",
     "n/a: a resource limit of snapcheck."),
)

_HEX = "[0-9a-f]"
RE_PACKFILE = re.compile(rf"^objects/pack/pack-(?P<hex>{_HEX}{{40}}|{_HEX}{{64}})\.(?P<ext>pack|idx|rev|mtimes|bitmap|keep|promisor)$")
RE_MIDX_AUX = re.compile(rf"^objects/pack/multi-pack-index-(?P<hex>{_HEX}{{40}}|{_HEX}{{64}})\.(?P<ext>bitmap|rev)$")
RE_LOOSE = re.compile(rf"^objects/(?P<a>{_HEX}{{2}})/(?P<b>{_HEX}{{38}}|{_HEX}{{62}})$")
RE_GRAPH = re.compile(rf"^objects/info/commit-graphs/graph-(?P<hex>{_HEX}{{40}}|{_HEX}{{64}})\.graph$")
RE_REFTABLE = re.compile(r"^reftable/[^/]+\.ref$")



def _ref_finding(code: str, path: str, message: str) -> Finding:
    """A finding whose code the ref parsers register (``headTooLarge``, ``looseRefTooLarge``,
    ``packedRefsLineTooLong``): they are imported here, when one is first needed, so that a directory's
    pack starts hashing before they load (the repository phase needs them anyway)."""
    from ..gitformats import loose_refs, packed_refs  # noqa: F401  (register the codes)

    return finding(code, path, message)


# Files up to this size get a sha256 (for the manifest); larger ones carry their own checksums.
DIGEST_MAX = 1 << 20

# Files held for parsing once the whole snapshot has been seen.
MANIFEST = ".snapcheck/manifest.json"
TEXT_FILES = {
    MANIFEST, "HEAD", "config", "packed-refs", "objects/info/commit-graphs/commit-graph-chain", "reftable/tables.list",
    "objects/info/alternates", "shallow",
}
# Binary side files held (not streamed) for checks against their pack/idx.
HELD_BINARIES = {"objects/pack/multi-pack-index", "objects/info/commit-graph"}


class PendingHash:
    """A pack of a directory source being hashed by a background thread (one ``hashlib`` call per 64 MiB
    slice of the mapped file, each releasing the GIL throughout) while the other checks run;
    :meth:`result` joins it and gives the summary and findings the inline hash would have given."""

    def __init__(self, checker: PackStreamChecker, buf: Any, size: int) -> None:
        self._checker = checker
        self._error: BaseException | None = None

        def work() -> None:
            mv = memoryview(buf)
            advise = getattr(buf, "madvise", None)
            try:
                for off in range(0, size, _HASH_SLICE):
                    checker.feed(mv[off:off + _HASH_SLICE])
                    if advise is not None and hasattr(mmap, "MADV_DONTNEED"):
                        advise(mmap.MADV_DONTNEED)  # keep the resident set small: pages stay cached
            except BaseException as e:  # handed to result()
                self._error = e
            finally:
                mv.release()

        import threading

        self._thread = threading.Thread(target=work, name="snapcheck-pack-hash", daemon=True)
        self._thread.start()

    def result(self) -> tuple[PackSummary, list[Finding]]:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._checker.finish()

    def join(self) -> None:
        self._thread.join()


# packs of a directory source at least this large are hashed in the background (see PendingHash)
BACKGROUND_HASH_MIN = 32 << 20
_HASH_SLICE = 64 << 20  # bytes hashed per call (one GIL release each) before the pages are let go


def _pump(stream: BinaryIO, checker: PackStreamChecker, out: BinaryIO | None, spool_path: Path | None, *,
          threaded: bool) -> int:
    """Read a streamed pack to its end, hashing it (*checker*) and spooling it (*out*).  *threaded*: a
    second thread hashes and writes while this one reads — hashlib and file writes release the GIL,
    and the spool write of a large pack is the slowest of the three (decompression holds the GIL)."""

    def sink(b: bytes) -> None:
        checker.feed(b)
        if out is not None:
            try:
                out.write(b)
            except OSError as e:  # disk full: the environment, not the data (exit 3)
                raise SourceError(f"cannot write spool file {spool_path}: {e.strerror or e}") from e

    n = 0
    if not threaded:
        while True:
            b = stream.read(CHUNK)
            if not b:
                return n
            n += len(b)
            sink(b)
    import queue
    import threading

    q: queue.Queue[bytes | None] = queue.Queue(maxsize=16)  # at most 16 chunks in flight
    errors: list[BaseException] = []

    def consume() -> None:
        while True:
            b = q.get()
            if b is None:
                return
            if not errors:
                try:
                    sink(b)
                except BaseException as e:  # handed to the reading thread; keep draining
                    errors.append(e)

    t = threading.Thread(target=consume, name="snapcheck-pack-spool", daemon=True)
    t.start()
    try:
        while not errors:
            b = stream.read(CHUNK)
            if not b:
                break
            n += len(b)
            q.put(b)
    finally:
        q.put(None)
        t.join()
    if errors:
        raise errors[0]
    return n


class PackRecord:
    """One pack's files (plain class: no per-import dataclass generation on the verify path)."""

    __slots__ = ("bitmap", "hexname", "idx", "keep", "mtimes", "pack", "pending", "promisor", "rev", "summary")

    def __init__(self, hexname: str) -> None:
        self.hexname = hexname
        self.summary: PackSummary | None = None  # provisional (hash not yet known) while ``pending`` is set
        self.pack: Held | None = None  # kept only when the level needs object data
        self.idx: Held | None = None
        self.rev: Held | None = None
        self.mtimes: Held | None = None
        self.bitmap: Held | None = None
        self.keep = False
        self.promisor = False
        self.pending: PendingHash | None = None  # the whole-file hash, still running: Collected.finish_hashing()

    def close(self) -> None:
        if self.pending is not None:
            self.pending.join()
            self.pending = None
        for h in (self.pack, self.idx, self.rev, self.mtimes, self.bitmap):
            if h is not None:
                h.close()


class LooseRecord:
    __slots__ = ("held", "path")

    def __init__(self, path: str, held: Held) -> None:
        self.path = path
        self.held = held


class FileRecord:
    """What the manifest and the summary need about every regular file."""

    __slots__ = ("path", "size")

    def __init__(self, path: str, size: int) -> None:
        self.path = path
        self.size = size


class Collected:
    """Everything the cross-file checks need, gathered from the entries."""

    def __init__(self) -> None:
        self.texts: dict[str, bytes] = {}
        self.loose_refs: dict[str, bytes] = {}  # 'refs/heads/main' -> content
        self.held: dict[str, Held] = {}  # midx, commit-graph, graph layers, midx bitmap, reftables
        self.packs: dict[str, PackRecord] = {}
        self.loose: dict[str, LooseRecord] = {}  # hex oid -> record
        self.files: list[FileRecord] = []
        self.digests: dict[str, str] = {}  # sha256 of the files read whole into memory
        self.files_after_manifest: list[str] = []
        self.dirs: set[str] = set()
        self.bytes_read = 0
        self.bytes_hashed = 0

    def finish_hashing(self) -> list[Finding]:
        """Wait for the packs hashed in the background; their final summaries replace the provisional
        ones and their findings (``packChecksumMismatch``, …) are returned."""
        out: list[Finding] = []
        for rec in self.packs.values():
            if rec.pending is not None:
                pending, rec.pending = rec.pending, None
                rec.summary, fs = pending.result()
                out.extend(fs)
        return out

    def close(self) -> None:
        for p in self.packs.values():
            p.close()
        for h in self.held.values():
            h.close()
        for lr in self.loose.values():
            lr.held.close()


def _feed_ends(checker: PackStreamChecker, buf: Any, size: int, algo: HashAlgo | None) -> None:
    """A pack's 12-byte header and its trailer only: the bytes between are skipped, not read."""
    rawsz = algo.rawsz if algo else 20
    head = min(12, size)
    checker.feed(buf[:head])
    tail_start = max(head, size - rawsz)
    checker.skip(tail_start - head)
    checker.feed(buf[tail_start:size])


class Collector:
    """Feed it entries with repository-relative paths; then take ``collected`` and ``findings``."""

    def __init__(self, options: VerifyOptions, spool: Spool) -> None:
        self.options = options
        self.spool = spool
        self.collected = Collected()
        self.findings: list[Finding] = []
        self.manifest: Any = None  # the parsed manifest, when the archive carried one
        self._in_memory = 0  # bytes of held members kept in memory (the rest is spooled)
        self._ref_bytes = 0  # bytes of loose refs kept in memory
        self._refs_limited = False

    # -- dispatch -----------------------------------------------------------------------------
    def add(self, entry: Entry) -> None:
        path = entry.path
        c = self.collected
        if entry.kind is EntryKind.DIR:
            c.dirs.add(path)
            return
        if entry.kind is EntryKind.OTHER:
            self.findings.append(finding("unexpectedFileType", path,
                                         f"{path}: a device, fifo or socket has no place in a git repository"))
            return
        if entry.kind is EntryKind.SYMLINK:
            if path.startswith("refs/"):
                self.findings.append(finding("refSymlink", path, f"{path}: loose ref is a symbolic link to {entry.link_target!r}"))
            return
        if entry.kind is EntryKind.HARDLINK:
            # A hard link inside an archive repeats a member already seen; nothing more to read.
            return
        c.files.append(FileRecord(path, entry.size))
        if MANIFEST in c.texts:
            c.files_after_manifest.append(path)
        name = path.rsplit("/", 1)[-1]
        if name.endswith(".lock"):
            self.findings.append(finding("leftoverLockFile", path,
                                         f"{path}: lock file left behind: a git command was writing when the snapshot was taken"))
            return
        if name.startswith(("tmp_pack_", "tmp_idx_", "tmp_rev_", "tmp_mtimes_", "tmp_bitmap_")) or path == "packed-refs.new":
            self.findings.append(finding("leftoverTempFile", path,
                                         f"{path}: temporary file of an unfinished write (a killed fetch or repack)"))
            return
        if path in TEXT_FILES:
            lim = self.options.limits
            cap = lim.max_packed_refs if path == "packed-refs" else lim.max_ref_line if path == "HEAD" else None
            data = self._read_all(entry, limit=cap, too_large="headTooLarge" if path == "HEAD" else "memberTooLarge")
            if data is not None:
                c.texts[path] = data
            return
        if path.startswith("refs/"):
            self._add_loose_ref(entry)
            return
        if path.startswith(".snapcheck/"):
            self._drain(entry)
            return
        m = RE_PACKFILE.match(path)
        if m:
            self._add_packfile(entry, m.group("hex"), m.group("ext"))
            return
        m = RE_LOOSE.match(path)
        if m:
            c.loose[m.group("a") + m.group("b")] = LooseRecord(path, self._hold(entry))
            return
        if path in HELD_BINARIES or RE_MIDX_AUX.match(path) or RE_GRAPH.match(path) or RE_REFTABLE.match(path):
            c.held[path] = self._hold(entry)
            return
        if path.startswith("objects/pack/") and name not in ("multi-pack-index",):
            self.findings.append(finding("unknownPackFile", path, f"{path}: not a file git writes in objects/pack/"))
        self._drain(entry)

    # -- helpers ------------------------------------------------------------------------------
    def _drain(self, entry: Entry) -> None:
        """Consume an entry we do not check (forward-only sources need their bytes read or skipped)."""
        if entry.stream is not None and entry.local_path is None:
            while True:
                b = entry.stream.read(CHUNK)
                if not b:
                    break
                self.collected.bytes_read += len(b)

    def _hold(self, entry: Entry) -> Held:
        if entry.local_path is not None:
            h = map_file(entry.local_path)
        else:
            assert entry.stream is not None
            # max_memory_member bounds every member AND all of them together: once that much is held in
            # memory, the rest is spooled to disk
            limit = self.options.limits.max_memory_member
            h = read_stream(entry.stream, entry.size, spool=self.spool, hint=entry.path,
                            max_memory=max(0, min(limit, limit - self._in_memory)))
            if h.disk_path is None:
                self._in_memory += h.size
        self.collected.bytes_read += h.size
        if h.size <= DIGEST_MAX:
            self._digest(entry.path, h.buf)
        return h

    def _add_loose_ref(self, entry: Entry) -> None:
        """A loose ref, held in memory: bounded in size, in number and in total bytes."""
        c = self.collected
        lim = self.options.limits
        path = entry.path
        if path not in c.loose_refs and len(c.loose_refs) >= lim.max_refs:
            if not self._refs_limited:
                self._refs_limited = True
                self.findings.append(finding("refsTooMany", path,
                                             f"{path}: more than {lim.max_refs} loose refs (the configured limit, "
                                             "--max-refs); this one and the rest were not read"))
            self._drain(entry)
            return
        if entry.size > lim.max_ref_line:
            self.findings.append(_ref_finding("looseRefTooLarge", path,
                                              f"{path}: {entry.size} bytes, more than the limit of "
                                              f"{lim.max_ref_line} for a ref file (--max-ref-line); not read"))
            self._drain(entry)
            return
        if self._ref_bytes + entry.size > lim.max_memory_member:
            self.findings.append(finding("memberTooLarge", path,
                                         f"{path}: the loose refs together exceed {lim.max_memory_member} bytes "
                                         "(the configured limit, --max-memory-member); this one was not read"))
            self._drain(entry)
            return
        data = self._read_all(entry, limit=lim.max_ref_line)
        if data is not None:
            self._ref_bytes += len(data)
            c.loose_refs[path] = data

    def _read_all(self, entry: Entry, limit: int | None = None, too_large: str | None = None) -> bytes | None:
        """Small text file into memory (bounded by *limit* or the member limit).

        With *too_large* (a finding code), a file whose size is over the bound is reported with it and
        not read (None); without, the first ``bound + 1`` bytes are returned for the parser to judge.
        ``packed-refs`` is read in pieces and given up (``packedRefsLineTooLong``, None) as soon as one
        line is longer than ``Limits.max_ref_line``: a cut or hostile file is never held whole for that.
        """
        cap = limit if limit is not None else self.options.limits.max_memory_member
        if too_large is not None and entry.size > cap:
            self.findings.append(_ref_finding(too_large, entry.path,
                                         f"{entry.path}: {entry.size} bytes, over the limit of {cap} bytes for a "
                                         "file checked in memory (--max-packed-refs for packed-refs, --max-ref-line "
                                         "for HEAD, --max-memory-member for the others); not read or checked"))
            self._drain(entry)
            return None
        if entry.local_path is not None:
            try:
                with open(entry.local_path, "rb") as f:
                    got = self._read_lines(f, entry.path, cap + 1, drain=False) if entry.path == "packed-refs" else f.read(cap + 1)
            except OSError as e:
                raise SourceError(f"cannot read {entry.local_path}: {e.strerror or e}") from e
            if got is None:
                return None
            data = got
        elif entry.path == "packed-refs":
            assert entry.stream is not None
            got = self._read_lines(entry.stream, entry.path, cap + 1, drain=True)
            if got is None:
                return None
            data = got
        else:
            assert entry.stream is not None
            data = entry.stream.read(cap + 1) if cap >= 0 else b""
            self._drain(entry)
        self.collected.bytes_read += len(data)
        self._digest(entry.path, data)
        return data

    def _read_lines(self, stream: BinaryIO, path: str, cap: int, *, drain: bool) -> bytes | None:
        """Read up to *cap* bytes of a line-oriented file from *stream*, giving up on an over-long line
        (with *drain*, the rest of a forward-only *stream* is then skipped)."""
        max_line = self.options.limits.max_ref_line
        parts: list[bytes] = []
        got = 0
        run = 0  # bytes since the last LF, across pieces
        lines = 0
        while got < cap:
            b = stream.read(min(CHUNK, cap - got))
            if not b:
                break
            first = b.find(b"\n")
            if first < 0:
                run += len(b)
            else:
                run += first
            if run > max_line:
                self.findings.append(_ref_finding(
                    "packedRefsLineTooLong", path,
                    f"{path} line {lines + 1}: longer than {max_line} bytes (the configured limit, "
                    f"--max-ref-line); the file was not held in memory nor parsed"))
                self.collected.bytes_read += got + len(b)
                if drain:
                    self._skip(stream)
                return None
            if first >= 0:
                lines += b.count(b"\n")
                run = len(b) - 1 - b.rfind(b"\n")
            parts.append(b)
            got += len(b)
        if drain:
            self._skip(stream)
        return b"".join(parts)

    def _skip(self, stream: BinaryIO) -> None:
        while True:
            b = stream.read(CHUNK)
            if not b:
                return
            self.collected.bytes_read += len(b)

    def _digest(self, path: str, data: bytes | mmap.mmap) -> None:
        self.collected.digests[path] = hashlib.sha256(data).hexdigest()

    def _add_packfile(self, entry: Entry, hexname: str, ext: str) -> None:
        rec = self.collected.packs.setdefault(hexname, PackRecord(hexname))
        if ext == "pack":
            self._add_pack(entry, rec)
        elif ext == "keep":
            rec.keep = True
            self._drain(entry)
        elif ext == "promisor":
            rec.promisor = True
            self._drain(entry)
        else:
            setattr(rec, ext, self._hold(entry))

    def _add_pack(self, entry: Entry, rec: PackRecord) -> None:
        level = self.options.level
        algo: HashAlgo | None = algo_for_hexlen(len(rec.hexname))
        hash_content = level.at_least(Level.STANDARD)
        checker = PackStreamChecker(entry.path, algo, hash_content=hash_content)
        keep = level.at_least(Level.STANDARD)
        if entry.local_path is not None:
            held = map_file(entry.local_path)
            buf = held.buf
            size = held.size
            if hash_content and keep and size >= BACKGROUND_HASH_MIN:
                # hashed by a thread while the other checks run; the summary here is provisional
                rec.pending = PendingHash(checker, buf, size)
                self.collected.bytes_hashed += size
                self.collected.bytes_read += size
                rec.pack = held
                provisional = PackStreamChecker(entry.path, algo, hash_content=False)
                _feed_ends(provisional, buf, size, algo)
                rec.summary, _ = provisional.finish()
                return
            if hash_content:
                mv = memoryview(buf)
                for off in range(0, size, 8 * CHUNK):
                    checker.feed(mv[off:off + 8 * CHUNK])
                mv.release()
                self.collected.bytes_hashed += size
            else:
                _feed_ends(checker, buf, size, algo)
            self.collected.bytes_read += size if hash_content else min(size, 12 + (algo.rawsz if algo else 20))
            if keep:
                rec.pack = held
            else:
                held.close()
        else:
            assert entry.stream is not None
            out = None
            spool_path: Path | None = None
            if keep:
                spool_path, out = self.spool.new_file(entry.path)
            n = 0
            try:
                n = _pump(entry.stream, checker, out, spool_path, threaded=entry.size >= BACKGROUND_HASH_MIN)
            finally:
                if out is not None:
                    try:
                        out.close()
                    except OSError as e:
                        raise SourceError(f"cannot write spool file {spool_path}: {e.strerror or e}") from e
            self.collected.bytes_read += n
            if hash_content:
                self.collected.bytes_hashed += n
            if spool_path is not None:
                rec.pack = map_file(spool_path)
        summary, fs = checker.finish()
        rec.summary = summary
        self.findings.extend(fs)

