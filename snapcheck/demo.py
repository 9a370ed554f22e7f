"""`snapcheck demo`: the main job end to end on an embedded default, with a local directory standing in
for the S3 bucket.

It builds a small real mirror with the git binary, stores a good snapshot and two broken ones in the
bucket directory (a ``packed-refs`` cut mid-line, as a tar racing ``git fetch`` leaves it, and a stream
cut at a zstd frame boundary with no tar end marker), then verifies the mirror and every object in the
bucket and prints the verdicts; snapcheck's own archiver publishes a fourth snapshot (with its manifest)
into the bucket, and restore installs it as ``restored.git``.  Nothing outside the chosen directory is touched.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import zstandard

from .errors import UsageError
from .options import VerifyOptions
from .report import Report
from .verifier import verify

_ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
    "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "HOME": os.devnull,
    "GIT_AUTHOR_NAME": "Demo", "GIT_AUTHOR_EMAIL": "demo@example.com", "GIT_AUTHOR_DATE": "1700000000 +0000",
    "GIT_COMMITTER_NAME": "Demo", "GIT_COMMITTER_EMAIL": "demo@example.com", "GIT_COMMITTER_DATE": "1700000000 +0000",
}


def _git(*args: str, cwd: Path | None = None) -> None:
    try:
        subprocess.run(["git", *args], cwd=cwd, env=_ENV, check=True, capture_output=True)
    except FileNotFoundError:
        raise UsageError("the demo needs the git binary on PATH") from None
    except subprocess.CalledProcessError as e:
        raise UsageError(f"git {' '.join(args)} failed: {e.stderr.decode(errors='replace').strip()}") from None


def build_sample_mirror(base: Path) -> Path:
    work = base / "work"
    _git("init", "-q", "-b", "main", str(work))
    for i in range(12):
        (work / f"file{i % 3}.txt").write_text(f"revision {i}\n" * (i + 1))
        _git("add", ".", cwd=work)
        _git("commit", "-q", "-m", f"change {i}", cwd=work)
        if i % 4 == 3:
            _git("tag", "-a", "-m", f"release {i}", f"v{i}", cwd=work)
    mirror = base / "mirror.git"
    _git("clone", "-q", "--mirror", "--no-local", str(work), str(mirror))
    _git("gc", "-q", cwd=mirror)
    return mirror


def _tar_bytes(mirror: Path, *, cut_packed_refs: bool = False) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(mirror.rglob("*")):
            rel = "./" + path.relative_to(mirror).as_posix()
            info = tar.gettarinfo(str(path), arcname=rel)
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                if cut_packed_refs and rel == "./packed-refs":
                    data = data[: len(data) - 9]  # cut mid-line, like a stat-then-read tar racing a rename
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def run_demo(directory: Path) -> list[tuple[str, Report]]:
    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        raise UsageError(f"{directory} is not empty; the demo needs an empty or new directory")
    mirror = build_sample_mirror(directory / "build")
    bucket = directory / "bucket"
    (bucket / "git").mkdir(parents=True)
    (bucket / ".snapcheck-meta").mkdir()  # marks the bucket root: keys are git/…
    cctx = zstandard.ZstdCompressor(level=3, write_checksum=True)
    good = _tar_bytes(mirror)
    (bucket / "git" / "good.tar.zst").write_bytes(cctx.compress(good))
    (bucket / "git" / "packed-refs-cut.tar.zst").write_bytes(cctx.compress(_tar_bytes(mirror, cut_packed_refs=True)))
    # a stream that ends at a frame boundary which is also a tar member boundary: no end-of-archive blocks
    body = good[: len(good) - 1024]
    while body.endswith(b"\0" * 512):
        body = body[:-512]
    (bucket / "git" / "cut-at-frame-boundary.tar.zst").write_bytes(cctx.compress(body))
    # snapcheck's own archiver: consistent capture, manifest, verified before it is published
    from .archive import archive
    from .restore import restore

    archived = archive(mirror, str(bucket / "git" / "archived-by-snapcheck.tar.zst"))
    if not archived.publish.committed:
        raise UsageError("the demo's own archive did not verify: " + ", ".join(archived.publish.report.codes()))
    results = [(str(mirror), verify(mirror, VerifyOptions()))]
    for obj in sorted(p for p in (bucket / "git").iterdir() if not p.name.startswith(".")):
        results.append((str(obj), verify(obj, VerifyOptions())))
    restored = restore(str(bucket / "git" / "archived-by-snapcheck.tar.zst"), directory / "restored.git")
    results.append((str(directory / "restored.git"), restored.report))
    return results
