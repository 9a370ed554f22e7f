"""Run every fuzz target for a short, bounded time; exit non-zero if any of them crashes.

    python fuzz/run_ci.py                      # FUZZ_SECONDS (default 20) per target
    FUZZ_SECONDS=60 FUZZ_TARGETS=tar,verify python fuzz/run_ci.py

Seeds are made fresh by ``make_seeds.py`` (real git output) into a temp dir; each target fuzzes a copy
of its seeds (libFuzzer adds what it finds there, never to the checkout).  A crash is an uncaught
exception or a broken invariant in the target (atheris exits non-zero), a timeout on one input
(``FUZZ_TIMEOUT``, default 30 s) or memory over ``FUZZ_RSS_MB`` (default 2048).  The failing input
is copied to ``FUZZ_ARTIFACTS`` (default ``fuzz/artifacts``) and its name printed, with the output's
tail; reproduce with ``python fuzz/fuzz_<name>.py <that file>``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import make_seeds  # noqa: E402


def targets() -> list[Path]:
    chosen = {t.strip() for t in os.environ.get("FUZZ_TARGETS", "").split(",") if t.strip()}
    found = sorted(HERE.glob("fuzz_*.py"))
    unknown = chosen - {p.stem[5:] for p in found}
    if unknown:
        sys.exit(f"unknown FUZZ_TARGETS: {', '.join(sorted(unknown))}")
    return [p for p in found if not chosen or p.stem[5:] in chosen]


def main() -> int:
    seconds = int(os.environ.get("FUZZ_SECONDS", "20"))
    per_input = int(os.environ.get("FUZZ_TIMEOUT", "30"))
    rss_mb = int(os.environ.get("FUZZ_RSS_MB", "2048"))
    artifacts = Path(os.environ.get("FUZZ_ARTIFACTS", HERE / "artifacts")).resolve()
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="snapcheck-fuzz-") as tmp:
        seeds = make_seeds.build(Path(tmp) / "seeds")
        for target in targets():
            name = target.stem[5:]
            corpus = Path(tmp) / "corpus" / name
            if name in seeds:
                shutil.copytree(seeds[name], corpus)
            else:
                corpus.mkdir(parents=True)
            crashes = Path(tmp) / "crashes" / name
            crashes.mkdir(parents=True)
            cmd = [sys.executable, str(target), str(corpus), f"-max_total_time={seconds}",
                   f"-timeout={per_input}", f"-rss_limit_mb={rss_mb}", f"-artifact_prefix={crashes}/",
                   "-print_final_stats=1"]
            started = time.monotonic()
            try:
                res = subprocess.run(cmd, capture_output=True, timeout=seconds + per_input + 300,
                                     env={**os.environ, "PYTHONPATH": str(HERE.parent)})
                rc, out = res.returncode, (res.stdout + res.stderr).decode(errors="replace")
            except subprocess.TimeoutExpired as e:
                rc, out = -1, f"{e}\n" + ((e.stdout or b"") + (e.stderr or b"")).decode(errors="replace")
            runs = next((line.split()[-1] for line in out.splitlines() if "stat::number_of_executed_units" in line),
                        "?")
            found = sorted(crashes.iterdir())
            ok = rc == 0 and not found
            print(f"{'ok  ' if ok else 'FAIL'} {name:14} {time.monotonic() - started:5.1f} s  {runs:>8} runs"
                  f"  {len(list(corpus.iterdir()))} corpus files", flush=True)
            if not ok:
                failed.append(name)
                lines = [x for x in out.splitlines() if not x.startswith(("INFO: Instrumenting", "#"))]
                print("\n".join(lines[-60:]), flush=True)
                if found:
                    artifacts.mkdir(parents=True, exist_ok=True)
                    for f in found:
                        shutil.copy(f, artifacts / f"{name}-{f.name}")
                        print(f"  crash input: {artifacts / f'{name}-{f.name}'} "
                              f"(python fuzz/fuzz_{name}.py {artifacts / f'{name}-{f.name}'})", flush=True)
    if failed:
        print(f"fuzzing found crashes in: {', '.join(failed)}")
        return 1
    print("fuzzing: no crash")
    return 0


if __name__ == "__main__":
    sys.exit(main())
