"""snapcheck against git on the same repository, in the same run: medians, ratios and peak RSS.

    python -m benchmarks [--work DIR] [--repo MIRROR.git] [--runs N] [--rows quick,standard-bitmap,...]
                         [--big-archive-mb N] [--markdown docs/performance.md]

Without --repo it builds the deterministic benchmark mirror with ``../shared/bench/make_repo.py``
(about 180k objects) into --work (cached between runs).  Every row runs its snapcheck command and its
reference command alternately, N times each, as whole processes (start-up included, as for git), and
reports the medians, the ratio snapcheck/reference (time rows) or reference-time/snapcheck-time
(throughput rows: the same bytes in less time is > 1), and each command's peak RSS (``wait4``: the
largest process of the tree, forked workers included).

The package is byte-compiled first (``compileall``), as an installed package is: an environment with
``PYTHONDONTWRITEBYTECODE`` would otherwise recompile every changed module on every run and time the
compiler.  The load average before and after is recorded: the ratios are only comparable within one
run, on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
MAKE_REPO = PROJECT.parent / "shared" / "bench" / "make_repo.py"

GIT_ENV = {**{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "HOME": os.devnull}


@dataclass
class Measure:
    seconds: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)
    rcs: list[int] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # user + system seconds of the process tree

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu) if self.cpu else 0.0

    @property
    def spread(self) -> str:
        """Fastest and slowest run: how much the machine moved during the row."""
        return f"{min(self.seconds):.2f}–{max(self.seconds):.2f} s"

    @property
    def peak_mib(self) -> float:
        return max(self.rss_kib) / 1024


@dataclass
class Row:
    name: str
    snap_cmd: list[str]
    ref_cmd: list[str]
    ref_label: str
    target: str
    kind: str = "time"  # or "throughput"
    shell: bool = False
    snap: Measure = field(default_factory=Measure)
    ref: Measure = field(default_factory=Measure)

    @property
    def ratio(self) -> float:
        if self.kind == "throughput":
            return self.ref.median / self.snap.median
        return self.snap.median / self.ref.median

    @property
    def met(self) -> bool:
        """Whether every part of the target holds: ``≤ x×`` (time rows) or ``≥ x×`` (throughput rows)
        for the ratio, ``≤ N MiB`` for snapcheck's peak RSS."""
        ok = True
        for part in self.target.split(", "):
            words = part.split()  # "≤ 0.3×", "≥ 0.7× throughput", "≤ 256 MiB"
            op, bound = words[0], float(words[1].rstrip("×"))
            value = self.snap.peak_mib if words[-1] == "MiB" else self.ratio
            ok = ok and (value >= bound if op == "≥" else value <= bound)
        return ok


def run_once(cmd: list[str], *, shell: bool = False) -> tuple[float, int, int, float]:
    """Run a command; return (seconds, peak RSS in KiB of the process tree's largest member, exit code,
    CPU seconds of the tree: user + system, the waited-for children included)."""
    t0 = time.perf_counter()
    if shell:
        p = subprocess.Popen(["bash", "-o", "pipefail", "-c", cmd[0]], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=GIT_ENV)
    else:
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=GIT_ENV)
    _pid, status, usage = os.wait4(p.pid, 0)
    elapsed = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    return elapsed, int(usage.ru_maxrss), p.returncode, usage.ru_utime + usage.ru_stime


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True)


def prepare(work: Path, repo: Path | None, big_archive_mb: int) -> dict[str, Path]:
    work.mkdir(parents=True, exist_ok=True)
    base = repo or work / "base.git"
    if repo is None and not base.exists():
        print(f"building benchmark mirror {base} with {MAKE_REPO.name} …", file=sys.stderr)
        subprocess.run([sys.executable, str(MAKE_REPO), str(base)], check=True, env=GIT_ENV,
                       stdout=subprocess.DEVNULL)
    out: dict[str, Path] = {"base": base}
    bitmap = work / "bitmap.git"
    if not bitmap.exists():
        print("preparing the bitmap + commit-graph variant …", file=sys.stderr)
        shutil.copytree(base, bitmap, symlinks=True)
        git("-c", "pack.writeReverseIndex=true", "repack", "-q", "-a", "-d", "-b", cwd=bitmap)
        git("commit-graph", "write", "--reachable", cwd=bitmap)
    out["bitmap"] = bitmap
    plain = work / "plain.git"
    if not plain.exists():
        print("preparing the variant without bitmaps or commit-graph …", file=sys.stderr)
        shutil.copytree(bitmap, plain, symlinks=True)
        for p in list((plain / "objects/pack").glob("*.bitmap")) + list((plain / "objects/info").glob("commit-graph*")):
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()
        shutil.rmtree(plain / "objects/info/commit-graphs", ignore_errors=True)
    out["plain"] = plain
    archive = work / "bitmap.tar.zst"
    if not archive.exists():
        print("writing the .tar.zst archive (tar | pzstd, as cachew does) …", file=sys.stderr)
        subprocess.run(f"tar -cpf - -C {bitmap} . | pzstd -q -c -p2 > {archive}", shell=True, check=True)
    out["archive"] = archive
    if big_archive_mb:
        big = work / f"big-{big_archive_mb}.tar.zst"
        if not big.exists():
            print(f"building a ≥ {big_archive_mb} MB archive …", file=sys.stderr)
            build_big(work / f"big-{big_archive_mb}.git", big, big_archive_mb)
        out["big"] = big
    return out


def build_big(mirror: Path, archive: Path, mb: int) -> None:
    """A mirror whose pack holds *mb* MB of incompressible blobs (so the archive is that large)."""
    if mirror.exists() and not any((mirror / "objects/pack").glob("*.pack")):
        shutil.rmtree(mirror)  # a build that did not finish
    if not mirror.exists():
        git("init", "-q", "--bare", str(mirror), cwd=mirror.parent)
        fi = subprocess.Popen(["git", "-C", str(mirror), "fast-import", "--quiet"], stdin=subprocess.PIPE, env=GIT_ENV)
        assert fi.stdin is not None
        rnd = __import__("random").Random(7)
        chunk = 8 << 20
        n = max(1, (mb << 20) // chunk)
        for i in range(n):
            data = rnd.randbytes(chunk)
            msg = f"blob {i}\n".encode()
            fi.stdin.write(b"commit refs/heads/main\ncommitter B <b@example.com> %d +0000\n" % (1_600_000_000 + i))
            fi.stdin.write(b"data %d\n%s" % (len(msg), msg))  # (later commits continue the branch)
            fi.stdin.write(b"M 100644 inline blob%d.bin\ndata %d\n" % (i, len(data)) + data + b"\n")
        fi.stdin.close()
        if fi.wait():
            raise SystemExit("fast-import failed")
        git("symbolic-ref", "HEAD", "refs/heads/main", cwd=mirror)
        git("repack", "-q", "-a", "-d", "--window=0", cwd=mirror)
    subprocess.run(f"tar -cpf - -C {mirror} . | pzstd -q -c -p2 > {archive}", shell=True, check=True)


def snapcheck(*args: str) -> list[str]:
    return [sys.executable, "-m", "snapcheck", "verify", "--quiet", *args]


def make_rows(paths: dict[str, Path], wanted: set[str] | None) -> list[Row]:
    b, p = str(paths["bitmap"]), str(paths["plain"])
    rows = [
        Row("quick", snapcheck("--level", "quick", b), ["git", "-C", b, "fsck", "--connectivity-only", "--no-dangling"],
            "git fsck --connectivity-only", "≤ 0.1×"),
        Row("standard-bitmap", snapcheck(b), ["git", "-C", b, "fsck", "--connectivity-only", "--no-dangling"],
            "git fsck --connectivity-only", "≤ 0.3×"),
        Row("standard-plain", snapcheck(p), ["git", "-C", p, "fsck", "--connectivity-only", "--no-dangling"],
            "git fsck --connectivity-only", "≤ 1.0×"),
        Row("full", snapcheck("--level", "full", b), ["git", "-C", b, "fsck", "--full", "--no-dangling"],
            "git fsck --full", "≤ 0.4×"),
        Row("archive-standard", snapcheck(str(paths["archive"])), [f"zstd -q -dc {paths['archive']} | sha1sum"],
            "zstd -dc FILE | sha1sum", "≥ 0.7× throughput", kind="throughput", shell=True),
    ]
    if "big" in paths:
        rows.append(Row("archive-big", snapcheck(str(paths["big"])), [f"zstd -q -dc {paths['big']} | sha1sum"],
                        "zstd -dc FILE | sha1sum", "≥ 0.7× throughput, ≤ 256 MiB", kind="throughput", shell=True))
        # the memory bound holds for any archive: at full every blob is inflated and hashed
        rows.append(Row("archive-big-full", snapcheck("--level", "full", str(paths["big"])),
                        [f"zstd -q -dc {paths['big']} | sha1sum"], "zstd -dc FILE | sha1sum", "≤ 256 MiB",
                        kind="throughput", shell=True))
    return [r for r in rows if wanted is None or r.name in wanted]


def measure(rows: list[Row], runs: int) -> None:
    for row in rows:
        for i in range(runs):
            for label, cmd, m, shell in (("snapcheck", row.snap_cmd, row.snap, False),
                                         ("reference", row.ref_cmd, row.ref, row.shell)):
                secs, rss, rc, cpu = run_once(cmd, shell=shell)
                m.seconds.append(secs)
                m.rss_kib.append(rss)
                m.rcs.append(rc)
                m.cpu.append(cpu)
                print(f"  {row.name:18} run {i + 1}/{runs} {label:9} {secs:7.2f} s  cpu {cpu:6.2f} s  "
                      f"{rss / 1024:7.1f} MiB  rc={rc}", file=sys.stderr)


def table(rows: list[Row], paths: dict[str, Path]) -> str:
    lines = [
        "| row | snapcheck median | reference | reference median | ratio | target | met | snapcheck range "
        "| reference range | snapcheck CPU | reference CPU | snapcheck peak RSS | reference peak RSS "
        "| snapcheck exit codes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = f"{r.ratio:.2f}×" + (" throughput" if r.kind == "throughput" else "")
        label = r.ref_label.replace("|", "\\|")  # a pipe would end the table cell
        lines.append(f"| {r.name} | {r.snap.median:.2f} s | `{label}` | {r.ref.median:.2f} s | {ratio} | {r.target} | "
                     f"{'yes' if r.met else 'no'} | {r.snap.spread} | {r.ref.spread} | "
                     f"{r.snap.cpu_median:.2f} s | {r.ref.cpu_median:.2f} s | "
                     f"{r.snap.peak_mib:.0f} MiB | {r.ref.peak_mib:.0f} MiB | {sorted(set(r.snap.rcs))} |")
    return "\n".join(lines)


def compile_package() -> None:
    """Byte-compile snapcheck so that every run imports it as an installed package would."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(PROJECT / "snapcheck")], check=True,
                   stdout=subprocess.DEVNULL)


def startup(runs: int) -> str:
    """The interpreter's own start-up here, as every snapcheck row pays it: ``python -c pass`` with this
    environment's ``site`` (its ``.pth`` files run at every start) and with ``-S`` (no ``site``)."""
    out = []
    for label, cmd in (("python -c pass", [sys.executable, "-c", "pass"]),
                       ("python -S -c pass", [sys.executable, "-S", "-c", "pass"])):
        times = sorted(run_once(cmd)[0] for _ in range(max(runs, 5)))
        out.append(f"`{label}` {statistics.median(times) * 1000:.0f} ms")
    return ", ".join(out)


def zlib_impl() -> str:
    """Which zlib inflates objects (zlib-ng where installed) and its version."""
    code = ("from snapcheck.gitformats.zlibimpl import IMPLEMENTATION as I, zlib as z; "
            "print(I, getattr(z, 'ZLIBNG_VERSION', '') or getattr(z, 'ZLIB_RUNTIME_VERSION', ''))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT)
    return r.stdout.strip() or "?"


def load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def machine() -> str:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    git_v = subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.strip()
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
            f"{git_v}")


def describe(paths: dict[str, Path]) -> str:
    out = []
    for key in ("bitmap", "plain"):
        r = subprocess.run(["git", "-C", str(paths[key]), "count-objects", "-v"], capture_output=True, text=True, env=GIT_ENV)
        kv = dict(line.split(": ", 1) for line in r.stdout.splitlines() if ": " in line)
        out.append(f"{key}: {kv.get('in-pack', '?')} objects, {int(kv.get('size-pack', '0')) / 1024:.1f} MiB of packs")
    for key in ("archive", "big"):
        if key in paths:
            out.append(f"{key}: {paths[key].stat().st_size / 2**20:.1f} MiB compressed")
    return "; ".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=PROJECT / "bench-work")
    ap.add_argument("--repo", type=Path, default=None, help="use this mirror instead of building one")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rows", default=None, help="comma-separated subset of rows")
    ap.add_argument("--big-archive-mb", type=int, default=0, help="also time an archive of at least this many MB")
    ap.add_argument("--markdown", type=Path, default=None, help="write the table (with the machine) to this file")
    a = ap.parse_args(argv)
    paths = prepare(a.work, a.repo, a.big_archive_mb)
    rows = make_rows(paths, set(a.rows.split(",")) if a.rows else None)
    compile_package()
    load_before = load()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    measure(rows, a.runs)
    start_up = startup(a.runs)
    load_after = load()
    result = table(rows, paths)
    print(result)
    print(f"load average before {load_before}, after {load_after}; start-up: {start_up}", file=sys.stderr)
    if a.markdown:
        text = (f"Machine: {machine()}, objects inflated with {zlib_impl()}\n\nRun: {started}, load average "
                f"(1/5/15 min) before {load_before}, after {load_after}\n\nRepository: {describe(paths)}\n\n"
                f"Medians of {a.runs} alternating runs, whole processes (start-up included; the interpreter "
                f"alone: {start_up}).\n\n{result}\n")
        write_markdown(a.markdown, text)
    return 0


START, END = "<!-- benchmark table: start -->", "<!-- benchmark table: end -->"


def write_markdown(path: Path, text: str) -> None:
    """Write *text* to *path*, or between the START/END markers when the file has them (the rest of a
    hand-written document is kept)."""
    old = path.read_text() if path.exists() else ""
    if START in old and END in old:
        head, rest = old.split(START, 1)
        _, tail = rest.split(END, 1)
        path.write_text(f"{head}{START}\n{text}{END}{tail}")
    else:
        path.write_text(text)
