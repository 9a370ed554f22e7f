"""The zlib used to inflate git objects: zlib-ng where it is installed, else CPython's zlib.

zlib-ng reads and writes the same zlib format; here its inflate took ~1.5x less CPU on the small
streams of a pack (docs/performance.md) and its CRC32 is faster on large buffers.  It must also *reject* exactly what zlib rejects (a corrupt
stream is a finding, never data); ``tests/test_zlibimpl.py`` compares the two on damaged streams.
``SNAPCHECK_ZLIB=zlib`` forces CPython's zlib (the differential tests run the pack pass both ways).

Use ``zlib.decompressobj`` / ``zlib.crc32`` / ``zlib.error`` from here together: the two modules'
error classes are unrelated, so an ``except`` must name the error of the module that raised it."""

from __future__ import annotations

import os
from types import ModuleType


def _load() -> tuple[ModuleType, str]:
    if os.environ.get("SNAPCHECK_ZLIB", "").lower() != "zlib":
        try:
            from zlib_ng import zlib_ng
        except ImportError:  # pragma: no cover - zlib-ng is a dependency where wheels exist
            pass
        else:
            return zlib_ng, "zlib-ng"
    import zlib as std
    return std, "zlib"


zlib, IMPLEMENTATION = _load()

__all__ = ["IMPLEMENTATION", "zlib"]
