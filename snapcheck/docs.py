"""Generate docs/findings.md from the registry: ``python -m snapcheck.docs [OUT]``."""

from __future__ import annotations

import sys
from pathlib import Path

from .codes import load_all
from .report import registry

HEADER = """# Finding codes

Every problem snapcheck reports has a stable code (public API, like git's fsck message ids), a default
severity (`error` rejects the snapshot; `warning` rejects it only with `--strict`; `info` never does),
what it means, and what git itself says or does with such a file.

This file is generated from the code registry by `python -m snapcheck.docs`; a test keeps it in sync.
"""


def render() -> str:
    load_all()
    reg = registry()
    out = [HEADER]
    for area in sorted({i.area for i in reg.values()}):
        out.append(f"\n## {area}\n\n| code | severity | meaning | git |\n|---|---|---|---|")
        for info in sorted((i for i in reg.values() if i.area == area), key=lambda i: i.code):
            meaning = info.meaning.replace("|", "\\|")
            git = info.git.replace("|", "\\|")
            out.append(f"| `{info.code}` | {info.severity.value} | {meaning} | {git} |")
    return "\n".join(out) + "\n"


def main() -> None:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "docs" / "findings.md"
    target.write_text(render())
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
