"""Report formats: json (schema'd), jsonl, junit and text, on a real sound and a real corrupt snapshot."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree as ET

from snapcheck.formats import FORMATS
from snapcheck.report import SCHEMA_VERSION
from snapcheck.verifier import verify


def _corrupt(mirror_copy: Callable[[str], Path]) -> Path:
    repo = mirror_copy("gc_bitmaps")
    pr = repo / "packed-refs"
    pr.write_bytes(pr.read_bytes()[:-20])
    return repo


def test_json_and_jsonl(mirrors: Callable[[str], Path], mirror_copy: Callable[[str], Path]) -> None:
    good = json.loads(FORMATS["json"](verify(mirrors("gc_bitmaps"))))
    assert good["schema"] == SCHEMA_VERSION and good["verdict"] == "sound" and good["findings"] == []
    assert good["summary"]["refs"] == 8 and good["summary"]["object_format"] == "sha1"
    bad_report = verify(_corrupt(mirror_copy))
    bad = json.loads(FORMATS["json"](bad_report))
    assert bad["verdict"] == "corrupt"
    assert {f["code"] for f in bad["findings"]} == set(bad_report.codes())
    assert all(set(f) == {"code", "severity", "path", "message"} for f in bad["findings"])
    lines = [json.loads(x) for x in FORMATS["jsonl"](bad_report).splitlines()]
    assert lines[-1]["type"] == "summary" and lines[-1]["verdict"] == "corrupt"
    assert [x["code"] for x in lines[:-1]] == [f.code for f in bad_report.findings]


def test_junit(mirrors: Callable[[str], Path], mirror_copy: Callable[[str], Path]) -> None:
    ok = ET.fromstring(FORMATS["junit"](verify(mirrors("gc_bitmaps"))))
    assert ok.get("failures") == "0" and len(ok.findall("testcase")) == 1
    bad_report = verify(_corrupt(mirror_copy))
    bad = ET.fromstring(FORMATS["junit"](bad_report))
    assert int(bad.get("failures") or 0) == len(bad_report.errors) > 0
    assert {c.find("failure").get("type") for c in bad.findall("testcase")} == {f.code for f in bad_report.errors}  # type: ignore[union-attr]


def test_text(mirror_copy: Callable[[str], Path]) -> None:
    text = FORMATS["text"](verify(_corrupt(mirror_copy)))
    assert "CORRUPT" in text and "error: [packedRefs" in text and "git: fatal:" in text


def test_findings_are_capped_per_code() -> None:
    from snapcheck.report import MAX_PER_CODE, Report, finding

    r = Report(target="t")
    r.add(finding("looseRefEmpty", f"refs/heads/b{i}", "empty") for i in range(MAX_PER_CODE + 5))
    r.add([finding("configMissing", "config", "missing")])
    assert len(r.findings) == MAX_PER_CODE + 1
    assert r.suppressed == {"looseRefEmpty": 5}
    assert r.exit_code == 1
    assert "... and 5 more [looseRefEmpty]" in FORMATS["text"](r)
    assert json.loads(FORMATS["json"](r))["suppressed"] == {"looseRefEmpty": 5}
