"""Report formats: ``text`` for people, ``json`` (one document), ``jsonl`` (one finding a line) and ``junit``
(CI test reports) for machines.

Each format's module (``json``, ``xml.etree`` for junit) is imported when that format is first used, so
that printing text loads neither."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..report import Report
from .text import render_text

if TYPE_CHECKING:
    from .json import render_json, render_jsonl
    from .junit import render_junit


_SUBMODULE_OF = {"render_json": ".json", "render_jsonl": ".json", "render_junit": ".junit"}


def __getattr__(name: str) -> Any:
    module = _SUBMODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)


def _lazy(name: str) -> Callable[[Report], str]:
    def render(report: Report) -> str:
        fn: Callable[[Report], str] = __getattr__(name)
        return fn(report)

    render.__name__ = render.__qualname__ = name
    return render


FORMATS: dict[str, Callable[[Report], str]] = {
    "text": render_text,
    "json": _lazy("render_json"),
    "jsonl": _lazy("render_jsonl"),
    "junit": _lazy("render_junit"),
}


__all__ = ["FORMATS", "render_json", "render_jsonl", "render_junit", "render_text"]
