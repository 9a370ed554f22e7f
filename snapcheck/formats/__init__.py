"""Report formats: ``text`` for people, ``json`` (one document), ``jsonl`` (one finding a line) and ``junit``
(CI test reports) for machines."""

from __future__ import annotations

from collections.abc import Callable

from ..report import Report
from .json import render_json, render_jsonl
from .junit import render_junit
from .text import render_text

FORMATS: dict[str, Callable[[Report], str]] = {
    "text": render_text, "json": render_json, "jsonl": render_jsonl, "junit": render_junit,
}

__all__ = ["FORMATS", "render_json", "render_jsonl", "render_junit", "render_text"]
