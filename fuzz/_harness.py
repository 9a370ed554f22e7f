"""What every fuzz target shares.

* ``snapcheck`` is imported once, every module of it, instrumented for coverage when atheris is
  present (``instrument_imports``), so the targets only import names from it;
* :func:`check` holds the invariants every result must keep (a crash is an exception OR a broken
  invariant): findings are ``Finding`` objects with a registered code, the registered severity (or a
  documented override), a path and a message;
* :func:`rehashed` gives a copy of a git binary file with its trailing checksum made right again, so
  that mutations reach the code behind the checksum check;
* :func:`main` runs a target under libFuzzer: ``python fuzz/fuzz_X.py [corpus_dir ...] [-flags]``.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

try:
    import atheris
except ImportError:  # the targets stay importable (and testable) without atheris
    atheris = None

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))  # run from a checkout without `pip install -e .`

# instrumented for coverage only when a target runs as the fuzzer (not when a test imports it)
_FUZZING = atheris is not None and Path(sys.argv[0]).name.startswith("fuzz_")
_instrument: Any = atheris.instrument_imports(include=["snapcheck"]) if _FUZZING else contextlib.nullcontext()
with _instrument:
    from snapcheck.codes import load_all

    load_all()
    from snapcheck.gitformats.common import SHA1, SHA256, HashAlgo
    from snapcheck.report import Finding, Severity, code_info

ALGOS: tuple[HashAlgo, ...] = (SHA1, SHA256)


def check(findings: Iterable[Finding]) -> None:
    for f in findings:
        assert isinstance(f, Finding), f
        info = code_info(f.code)  # raises KeyError for an unregistered code
        assert isinstance(f.severity, Severity), f
        assert f.message and isinstance(f.path, str), f
        assert info.code == f.code


def has_errors(findings: Iterable[Finding]) -> bool:
    return any(f.severity is Severity.ERROR for f in findings)


def rehashed(data: bytes, algo: HashAlgo) -> bytes:
    """*data* with its last ``algo.rawsz`` bytes replaced by the hash of everything before them."""
    n = algo.rawsz
    if len(data) <= n:
        return data
    return data[:-n] + hashlib.new(algo.name, data[:-n]).digest()


def main(test_one_input: Callable[[bytes], None]) -> None:
    if atheris is None:
        sys.exit("atheris is not installed: python -m pip install atheris")
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
