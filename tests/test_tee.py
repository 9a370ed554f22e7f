"""The verifying tee: a verifier thread sees exactly the bytes written, with bounded buffering."""

from __future__ import annotations

import hashlib
import os
import threading
from typing import BinaryIO

import pytest

from snapcheck.report import Report
from snapcheck.tee import ChunkPipe, VerifyingTee


def _digest_verifier(seen: dict[str, object]) -> object:
    def verify(stream: BinaryIO) -> Report:
        h = hashlib.sha256()
        n = 0
        while True:
            b = stream.read(65536)
            if not b:
                break
            h.update(b)
            n += len(b)
        seen["digest"] = h.hexdigest()
        seen["n"] = n
        return Report(target="t")

    return verify


def test_reader_sees_every_byte_in_order() -> None:
    seen: dict[str, object] = {}
    tee = VerifyingTee(_digest_verifier(seen), max_buffer=1 << 16)  # type: ignore[arg-type]
    data = os.urandom(3 << 20)
    for i in range(0, len(data), 12345):
        tee.write(data[i:i + 12345])
    report = tee.close()
    assert report.target == "t"
    assert seen["n"] == len(data)
    assert seen["digest"] == hashlib.sha256(data).hexdigest()


def test_verifier_that_stops_early_does_not_block_the_writer() -> None:
    def verify(stream: BinaryIO) -> Report:
        stream.read(10)
        raise ValueError("boom")

    tee = VerifyingTee(verify, max_buffer=1024)
    done = threading.Event()

    def produce() -> None:
        for _ in range(1000):
            tee.write(b"x" * 4096)
        done.set()

    t = threading.Thread(target=produce)
    t.start()
    t.join(timeout=30)
    assert done.is_set(), "writer blocked on a verifier that had stopped"
    with pytest.raises(ValueError, match="boom"):
        tee.close()


def test_pipe_bounds_memory() -> None:
    pipe = ChunkPipe(max_bytes=10)
    pipe.put(b"a" * 10)
    blocked = threading.Event()

    def second() -> None:
        pipe.put(b"b" * 10)
        blocked.set()

    t = threading.Thread(target=second)
    t.start()
    t.join(timeout=0.3)
    assert not blocked.is_set(), "a full pipe accepted more data"
    assert pipe.read(10) == b"a" * 10
    t.join(timeout=5)
    assert blocked.is_set()
    pipe.close_write()
    assert pipe.read(100) == b"b" * 10
    assert pipe.read(100) == b""
