"""Build real git mirrors with the real ``git`` binary, in every configuration the verifier must accept.

Used by the session-scoped fixtures in ``conftest.py``; every builder is deterministic (fixed dates and
identities) and returns the path of a bare mirror.  Tests must copy a mirror (``copy_repo``) before
damaging it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

GIT_ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "HOME": "/nonexistent",
    "GIT_AUTHOR_NAME": "A U Thor",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "C O Mitter",
    "GIT_COMMITTER_EMAIL": "committer@example.com",
    "GIT_AUTHOR_DATE": "1700000000 +0000",
    "GIT_COMMITTER_DATE": "1700000000 +0000",
    "LC_ALL": "C",
}


def git(*args: str, cwd: Path | str | None = None, input: bytes | None = None, env: dict[str, str] | None = None) -> str:
    """Run git; raise with its stderr on failure; return stdout as text."""
    res = subprocess.run(
        ["git", *args], cwd=cwd, input=input, capture_output=True, env={**GIT_ENV, **(env or {})}
    )
    if res.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed ({res.returncode}): {res.stderr.decode(errors='replace')}")
    return res.stdout.decode()


def git_rc(*args: str, cwd: Path | str | None = None) -> tuple[int, str, str]:
    """Run git and return (exit code, stdout, stderr) without raising."""
    res = subprocess.run(["git", *args], cwd=cwd, capture_output=True, env=GIT_ENV)
    return res.returncode, res.stdout.decode(errors="replace"), res.stderr.decode(errors="replace")


def all_objects(repo: Path) -> dict[str, tuple[str, bytes]]:
    """Every object of *repo*: id -> (type, content), from one ``git cat-file --batch``."""
    out = subprocess.run(["git", "cat-file", "--batch-all-objects", "--batch"], cwd=repo, capture_output=True,
                         env=GIT_ENV, check=True).stdout
    objs: dict[str, tuple[str, bytes]] = {}
    pos = 0
    while pos < len(out):
        nl = out.index(b"\n", pos)
        oid, typ, size = out[pos:nl].decode().split()
        objs[oid] = (typ, out[nl + 1:nl + 1 + int(size)])
        pos = nl + 1 + int(size) + 1
    return objs


def _commit(work: Path, n: int, files: dict[str, str], msg: str) -> str:
    for name, text in files.items():
        p = work / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        git("add", name, cwd=work)
    date = f"{1700000000 + n * 3600} +0000"
    git("commit", "-q", "-m", msg, cwd=work, env={"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date})
    return git("rev-parse", "HEAD", cwd=work).strip()


def build_work(work: Path, object_format: str = "sha1", commits: int = 24) -> Path:
    """A non-bare work repository with branches, annotated/lightweight/nested tags, tags of a tree
    and of a blob, a merge, an executable, a symlink and a gitlink to a commit that does not exist."""
    work.mkdir(parents=True)
    git("init", "-q", f"--object-format={object_format}", "-b", "main", str(work))
    for i in range(commits):
        files = {f"src/mod{i % 5}.py": "\n".join(f"line {j} of {i}" for j in range(40 + i)) + "\n"}
        if i == 0:
            files["README"] = "hello\n"
        _commit(work, i, files, f"commit {i}\n\nbody {i}\n")
        if i == 8:
            git("branch", "dev", cwd=work)
        if i == 12:
            git("tag", "-a", "-m", "release 1", "v1.0", cwd=work)
            git("tag", "light-1", cwd=work)
    # executable file and symlink
    (work / "run.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(work / "run.sh", 0o755)
    os.symlink("README", work / "link")
    git("add", "run.sh", "link", cwd=work)
    # gitlink to an absent commit (a submodule whose objects are not here)
    absent = "1" * (40 if object_format == "sha1" else 64)
    git("update-index", "--add", "--cacheinfo", f"160000,{absent},vendor/sub", cwd=work)
    (work / ".gitmodules").write_text('[submodule "vendor/sub"]\n\tpath = vendor/sub\n\turl = https://example.com/sub.git\n')
    git("add", ".gitmodules", cwd=work)
    _commit(work, commits + 1, {}, "add gitlink, symlink, executable")
    # a side branch and a merge
    git("checkout", "-q", "dev", cwd=work)
    _commit(work, commits + 2, {"dev.txt": "dev work\n"}, "dev work")
    git("checkout", "-q", "main", cwd=work)
    git("merge", "-q", "--no-ff", "-m", "merge dev", "dev", cwd=work,
        env={"GIT_AUTHOR_DATE": f"{1700000000 + (commits + 3) * 3600} +0000",
             "GIT_COMMITTER_DATE": f"{1700000000 + (commits + 3) * 3600} +0000"})
    # tags of a tree and of a blob, and a nested tag (tag of a tag)
    tree = git("rev-parse", "HEAD^{tree}", cwd=work).strip()
    blob = git("rev-parse", "HEAD:README", cwd=work).strip()
    git("tag", "-a", "-m", "a tree", "tree-tag", tree, cwd=work)
    git("tag", "-a", "-m", "a blob", "blob-tag", blob, cwd=work)
    git("tag", "-a", "-m", "nested", "nested-tag", "v1.0", cwd=work)
    git("tag", "-a", "-m", "release 2", "v2.0", cwd=work)
    return work


def mirror_of(work: Path, dest: Path) -> Path:
    git("clone", "-q", "--mirror", "--no-local", str(work), str(dest))
    git("config", "remote.origin.url", "https://example.com/org/repo", cwd=dest)
    return dest


def build_gc_bitmaps(base: Path) -> Path:
    """`git gc` with bitmaps, .rev and a commit-graph: one pack, packed-refs."""
    work = build_work(base / "work")
    m = mirror_of(work, base / "gc.git")
    git("config", "repack.writeBitmaps", "true", cwd=m)
    git("config", "pack.writeReverseIndex", "true", cwd=m)
    git("config", "gc.writeCommitGraph", "true", cwd=m)
    git("gc", "-q", "--prune=now", cwd=m)
    git("commit-graph", "write", "--reachable", cwd=m)
    return m


def build_geometric_midx(base: Path) -> Path:
    """Several packs, geometric repack with a multi-pack-index and its bitmap, split commit-graph."""
    work = build_work(base / "work")
    m = base / "geo.git"
    git("init", "-q", "--bare", str(m))
    git("config", "pack.writeReverseIndex", "true", cwd=m)
    git("config", "receive.unpackLimit", "1", cwd=m)
    # push history in several steps so that several packs exist
    revs = git("rev-list", "--reverse", "main", cwd=work).split()
    for step in (5, 10, 15, 20):
        git("push", "-q", str(m), f"{revs[step]}:refs/heads/main", cwd=work)
        git("commit-graph", "write", "--reachable", "--split", "--size-multiple=1000", cwd=m)
    git("push", "-q", "--mirror", str(m), cwd=work)
    git("symbolic-ref", "HEAD", "refs/heads/main", cwd=m)
    git("config", "remote.origin.url", "https://example.com/org/repo", cwd=m)
    git("config", "remote.origin.mirror", "true", cwd=m)
    git("config", "remote.origin.fetch", "+refs/*:refs/*", cwd=m)
    git("repack", "-q", "-d", "--geometric=2", "--write-midx", "--write-bitmap-index", cwd=m)
    git("commit-graph", "write", "--reachable", "--split=no-merge", cwd=m)
    # one more small push: geometric repack keeps it as a second pack beside the big one
    _commit(work, 500, {"late.txt": "late\n"}, "late commit")
    git("push", "-q", str(m), "main", cwd=work)
    git("repack", "-q", "-d", "--geometric=2", "--write-midx", "--write-bitmap-index", cwd=m)
    git("commit-graph", "write", "--reachable", "--split=no-merge", cwd=m)
    return m


def build_loose(base: Path) -> Path:
    """Loose objects and loose refs only: no pack, no packed-refs."""
    work = build_work(base / "work")
    m = base / "loose.git"
    git("init", "-q", "--bare", str(m))
    git("config", "receive.unpackLimit", "100000", cwd=m)
    git("push", "-q", "--mirror", str(m), cwd=work)
    git("symbolic-ref", "HEAD", "refs/heads/main", cwd=m)
    git("config", "remote.origin.url", "https://example.com/org/repo", cwd=m)
    return m


def build_sha256(base: Path) -> Path:
    work = build_work(base / "work", object_format="sha256")
    m = mirror_of(work, base / "sha256.git")
    git("config", "pack.writeReverseIndex", "true", cwd=m)
    git("gc", "-q", "--prune=now", cwd=m)
    git("commit-graph", "write", "--reachable", "--split", cwd=m)
    return m


def build_cruft(base: Path) -> Path:
    """A cruft pack (.mtimes) holding unreachable objects, plus a .keep'd pack."""
    work = build_work(base / "work")
    m = mirror_of(work, base / "cruft.git")
    # make unreachable objects: a branch that is then deleted
    tmp = base / "tmpwork"
    git("clone", "-q", str(m), str(tmp))
    _commit(tmp, 900, {"gone.txt": "soon unreachable\n"}, "to be dropped")
    git("push", "-q", "origin", "HEAD:refs/heads/doomed", cwd=tmp)
    git("update-ref", "-d", "refs/heads/doomed", cwd=m)
    git("repack", "-q", "-d", "--cruft", "--cruft-expiration=never", cwd=m)
    packs = sorted((m / "objects/pack").glob("pack-*.pack"))
    mtimes = {p.with_suffix(".pack") for p in (m / "objects/pack").glob("pack-*.mtimes")}
    normal = [p for p in packs if p not in mtimes]
    normal[0].with_suffix(".keep").write_text("kept by test\n")
    return m


def build_many_refs(base: Path, n: int = 3000) -> Path:
    """Thousands of refs (refs/pull/N/head like a busy mirror), most packed, some loose."""
    work = build_work(base / "work", commits=14)
    m = mirror_of(work, base / "many.git")
    revs = git("rev-list", "--all", cwd=m).split()
    lines = "".join(f"create refs/pull/{i}/head {revs[i % len(revs)]}\n" for i in range(n))
    git("update-ref", "--stdin", cwd=m, input=lines.encode())
    git("gc", "-q", cwd=m)
    lines = "".join(f"create refs/pull/loose{i}/head {revs[i % len(revs)]}\n" for i in range(50))
    git("update-ref", "--stdin", cwd=m, input=lines.encode())
    return m


BUILDERS = {
    "gc_bitmaps": build_gc_bitmaps,
    "geometric_midx": build_geometric_midx,
    "loose": build_loose,
    "sha256": build_sha256,
    "cruft": build_cruft,
    "many_refs": build_many_refs,
}


def copy_repo(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, symlinks=True)
    for p in dest.rglob("*"):
        if p.is_file() and not p.is_symlink():
            p.chmod(0o644)
    return dest
