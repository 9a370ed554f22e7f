"""Verify bytes while they are being written elsewhere.

A :class:`VerifyingTee` runs the streaming verifier in a thread and feeds it, through a bounded
in-memory pipe, every chunk the producer writes; the producer also writes each chunk to its real
destination (an upload, a temp file).  When the producer is done it calls :meth:`VerifyingTee.close`
and gets the verifier's report: the destination is committed only when that report is sound.
Memory is bounded by the pipe (a few chunks); a slow verifier slows the producer, never the reverse.
"""

from __future__ import annotations

import io
import threading
from collections import deque
from collections.abc import Callable
from typing import BinaryIO

from .report import Report


class ChunkPipe(io.RawIOBase):
    """A bounded, thread-safe byte pipe: one writer thread, one reader thread."""

    def __init__(self, max_bytes: int = 32 << 20) -> None:
        super().__init__()
        self._chunks: deque[memoryview] = deque()
        self._size = 0
        self._max = max_bytes
        self._closed_w = False
        self._abandoned = False
        self._cv = threading.Condition()

    def readable(self) -> bool:
        return True

    def put(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        mv = memoryview(bytes(data)) if not isinstance(data, bytes) else memoryview(data)
        with self._cv:
            while self._size >= self._max and not self._abandoned:
                self._cv.wait()
            if self._abandoned:
                return  # the reader stopped reading: drop (its verdict is already decided)
            self._chunks.append(mv)
            self._size += len(mv)
            self._cv.notify_all()

    def close_write(self) -> None:
        with self._cv:
            self._closed_w = True
            self._cv.notify_all()

    def abandon(self) -> None:
        """The reader is done early: unblock the writer for good."""
        with self._cv:
            self._abandoned = True
            self._chunks.clear()
            self._size = 0
            self._cv.notify_all()

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        out = memoryview(b).cast("B")
        with self._cv:
            while not self._chunks and not self._closed_w:
                self._cv.wait()
            if not self._chunks:
                return 0
            n = 0
            while self._chunks and n < len(out):
                head = self._chunks[0]
                take = min(len(head), len(out) - n)
                out[n:n + take] = head[:take]
                n += take
                if take == len(head):
                    self._chunks.popleft()
                else:
                    self._chunks[0] = head[take:]
            self._size -= n
            self._cv.notify_all()
            return n


class VerifyingTee:
    """Feed chunks with :meth:`write`; :meth:`close` returns the verifier's report.

    *verify_stream* is called in a worker thread with a readable binary stream of everything written.
    """

    def __init__(self, verify_stream: Callable[[BinaryIO], Report], *, max_buffer: int = 32 << 20) -> None:
        self._pipe = ChunkPipe(max_buffer)
        self._reader = io.BufferedReader(self._pipe, buffer_size=1 << 20)
        self._report: Report | None = None
        self._error: BaseException | None = None
        self.bytes = 0

        def work() -> None:
            try:
                self._report = verify_stream(self._reader)
                # drain whatever the verifier did not read (it may stop at the tar end marker)
                while self._reader.read(1 << 20):
                    pass
            except BaseException as e:  # handed to the producer thread in close()
                self._error = e
            finally:
                self._pipe.abandon()

        self._thread = threading.Thread(target=work, name="snapcheck-verify", daemon=True)
        self._thread.start()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.bytes += len(data)
        self._pipe.put(data)

    def close(self) -> Report:
        self._pipe.close_write()
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._report is not None
        return self._report

    def abort(self) -> None:
        """Stop feeding (the producer failed); wait for the verifier thread to end."""
        self._pipe.close_write()
        self._thread.join()
