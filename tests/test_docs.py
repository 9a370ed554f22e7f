"""docs/findings.md is generated from the code registry and must stay in sync with it."""

from __future__ import annotations

from pathlib import Path

from snapcheck.codes import load_all
from snapcheck.docs import render
from snapcheck.report import Severity, registry

ROOT = Path(__file__).resolve().parent.parent


def test_findings_doc_is_current() -> None:
    assert (ROOT / "docs" / "findings.md").read_text() == render(), "run: python -m snapcheck.docs"


def test_every_code_is_camel_case_and_documented() -> None:
    load_all()
    reg = registry()
    assert len(reg) > 50
    for code, info in reg.items():
        assert code[0].islower() and code.isalnum(), code
        assert info.meaning.strip() and info.git.strip(), code
        assert isinstance(info.severity, Severity)
