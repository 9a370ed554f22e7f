"""Fuzz target: whole-archive verification from bytes (snapcheck.verifier.verify_stream): compression,
tar, collector, every parser, the object graph and the mirror policy in one pass.

Run: ``python fuzz/fuzz_verify.py [corpus_dir] -max_total_time=N`` (see fuzz/README.md).
A verdict for every input, never an exception; bytes from memory never make it "incomplete".
"""

from __future__ import annotations

import io
import tempfile

from _harness import check, main

from snapcheck.options import Limits, VerifyOptions
from snapcheck.report import Level
from snapcheck.verifier import verify_stream

SPOOL = tempfile.mkdtemp(prefix="fuzz-verify-")
LIMITS = Limits(max_total_bytes=128 << 20, max_members=5000)
LEVELS = (Level.QUICK, Level.STANDARD, Level.FULL)


def TestOneInput(data: bytes) -> None:
    level = LEVELS[len(data) % 3]
    report = verify_stream(io.BytesIO(data), VerifyOptions(level=level, limits=LIMITS, spool_dir=SPOOL),
                           label="fuzz.tar")
    check(report.findings)
    assert report.verdict in ("sound", "corrupt"), [(f.code, f.message) for f in report.findings]
    report.to_dict()


if __name__ == "__main__":
    main(TestOneInput)
