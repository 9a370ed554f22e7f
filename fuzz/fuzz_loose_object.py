"""Fuzz target: loose object files (snapcheck.gitformats.loose_object): zlib stream, header, size,
trailing garbage, hash against the path.

Run: ``python fuzz/fuzz_loose_object.py [corpus_dir] -max_total_time=N`` (see fuzz/README.md).
An accepted object is exactly what zlib inflates the file to.
"""

from __future__ import annotations

import hashlib
import zlib

from _harness import SHA1, check, has_errors, main

from snapcheck.gitformats.loose_object import check_loose_object, loose_object_type


def TestOneInput(data: bytes) -> None:
    # its own id, when the data inflates at all, so the hash check can pass
    try:
        inflated = zlib.decompressobj().decompress(data, 1 << 22)
        hexoid = hashlib.sha1(inflated).hexdigest()
    except zlib.error:
        inflated, hexoid = b"", "ab" + "c" * 38
    for path in (f"objects/{hexoid[:2]}/{hexoid[2:]}", "objects/ab/" + "c" * 38, "objects/zz/x"):
        for verify in (False, True):
            obj, findings = check_loose_object(data, path, SHA1, verify_hash=verify)
            check(findings)
            assert (obj is None and findings) or (obj is not None and not has_errors(findings)), findings
            if obj is not None:
                head, _, body = inflated.partition(b"\0")
                assert body == obj[1] and head.endswith(b" %d" % len(body)), (head, len(body))
    loose_object_type(data)


if __name__ == "__main__":
    main(TestOneInput)
