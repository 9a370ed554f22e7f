"""JSON renderings of a report (``schema`` versioned)."""

from __future__ import annotations

import json

from ..report import Report


def render_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2, sort_keys=False) + "\n"


def render_jsonl(report: Report) -> str:
    """One line per finding, then one summary line (``"type": "summary"``)."""
    d = report.to_dict()
    lines = [json.dumps({"type": "finding", "target": report.target, **f}) for f in d["findings"]]
    lines.append(json.dumps({"type": "summary", "schema": d["schema"], "target": report.target,
                             "verdict": d["verdict"], **d["summary"]}))
    return "\n".join(lines) + "\n"
