"""JUnit XML, for CI systems that display test reports: one test case per check area that found
something (failed for errors, or for warnings under --strict), and one passing case for the snapshot
when it is sound."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from ..report import Report, Severity


def render_junit(report: Report) -> str:
    rejecting = {Severity.ERROR} | ({Severity.WARNING} if report.strict else set())
    failures = [f for f in report.findings if f.severity in rejecting]
    suite = ET.Element("testsuite", name=f"snapcheck {report.target}", tests=str(max(1, len(failures))),
                       failures=str(len(failures)), errors="1" if report.incomplete else "0",
                       time=f"{report.summary.duration_s:.3f}")
    if not failures:
        case = ET.SubElement(suite, "testcase", classname="snapcheck", name=f"verify {report.summary.level}")
        if report.incomplete:
            ET.SubElement(case, "error", message="verification could not finish")
    for f in failures:
        case = ET.SubElement(suite, "testcase", classname=f"snapcheck.{f.code}", name=f.path or report.target)
        node = ET.SubElement(case, "failure", message=f.message, type=f.code)
        node.text = f"{f.severity.value}: [{f.code}] {f.message}"
    out = ET.SubElement(suite, "system-out")
    s = report.summary
    out.text = (f"verdict={report.verdict} refs={s.refs} packs={s.packs} objects={s.objects} "
                f"object_format={s.object_format} head={s.head}")
    ET.indent(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"
