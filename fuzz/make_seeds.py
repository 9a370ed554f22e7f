"""Seed corpora for the fuzz targets, made from real git output.

    python fuzz/make_seeds.py [OUT_DIR]        (default: fuzz/corpus, not committed)

Builds small repositories with the real ``git`` binary (fixed dates and identities): a gc'ed mirror
with bitmaps, ``.rev`` and a commit-graph, a split commit-graph chain, several packs under a
multi-pack-index with its bitmap, a cruft pack with ``.mtimes``, a mirror of loose objects and loose
refs, a SHA-256 mirror; then writes, for each target ``fuzz/fuzz_<name>.py``, the files it parses into
``OUT_DIR/<name>/`` (archives made with GNU tar, zstd, pzstd and gzip when those tools are present,
Python's tarfile/zstandard/gzip otherwise).  Every seed is at most 64 KiB.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

MAX_SEED = 64 << 10
ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
    "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "HOME": "/nonexistent", "LC_ALL": "C",
    "GIT_AUTHOR_NAME": "A U Thor", "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "C O Mitter", "GIT_COMMITTER_EMAIL": "committer@example.com",
    "GIT_AUTHOR_DATE": "1700000000 +0000", "GIT_COMMITTER_DATE": "1700000000 +0000",
}


def git(*args: str, cwd: Path | None = None, input: bytes | None = None) -> bytes:
    res = subprocess.run(["git", *args], cwd=cwd, input=input, capture_output=True, env=ENV)
    if res.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {res.stderr.decode(errors='replace')}")
    return res.stdout


def work_repo(path: Path, fmt: str = "sha1", commits: int = 6) -> Path:
    git("init", "-q", f"--object-format={fmt}", "-b", "main", str(path))
    for i in range(commits):
        (path / f"f{i % 3}.txt").write_text("".join(f"line {j} of commit {i}\n" for j in range(10 + i)))
        git("add", ".", cwd=path)
        git("commit", "-q", "-m", f"commit {i}\n\nbody {i}\n", cwd=path)
        if i == 2:
            git("branch", "dev", cwd=path)
            git("tag", "-a", "-m", "release", "v1.0", cwd=path)
            git("tag", "light", cwd=path)
    git("checkout", "-q", "dev", cwd=path)
    (path / "dev.txt").write_text("dev\n")
    git("add", ".", cwd=path)
    git("commit", "-q", "-m", "dev", cwd=path)
    git("checkout", "-q", "main", cwd=path)
    git("merge", "-q", "--no-ff", "-m", "merge dev", "dev", cwd=path)
    return path


def mirror_of(work: Path, dest: Path) -> Path:
    git("clone", "-q", "--mirror", "--no-local", str(work), str(dest))
    git("config", "remote.origin.url", "https://example.com/org/repo", cwd=dest)
    return dest


def build_repos(base: Path) -> dict[str, Path]:
    work = work_repo(base / "work")
    gc = mirror_of(work, base / "gc.git")
    for k, v in (("repack.writeBitmaps", "true"), ("pack.writeReverseIndex", "true")):
        git("config", k, v, cwd=gc)
    git("gc", "-q", "--prune=now", cwd=gc)
    git("commit-graph", "write", "--reachable", cwd=gc)

    split = mirror_of(work, base / "split.git")
    git("commit-graph", "write", "--reachable", "--split", cwd=split)
    git("commit-graph", "write", "--reachable", "--split=no-merge", cwd=split)

    midx = base / "midx.git"
    git("init", "-q", "--bare", str(midx))
    git("config", "receive.unpackLimit", "1", cwd=midx)
    revs = git("rev-list", "--reverse", "main", cwd=work).decode().split()
    for r in revs[1::2]:
        git("push", "-q", str(midx), f"{r}:refs/heads/main", cwd=work)
    git("push", "-q", "--mirror", str(midx), cwd=work)
    git("config", "pack.writeReverseIndex", "true", cwd=midx)
    git("multi-pack-index", "write", "--bitmap", cwd=midx)

    cruft = mirror_of(work, base / "cruft.git")
    tmp = base / "tmpwork"
    git("clone", "-q", str(cruft), str(tmp))
    (tmp / "gone.txt").write_text("soon unreachable\n")
    git("add", ".", cwd=tmp)
    git("commit", "-q", "-m", "dropped", cwd=tmp)
    git("push", "-q", "origin", "HEAD:refs/heads/doomed", cwd=tmp)
    git("update-ref", "-d", "refs/heads/doomed", cwd=cruft)
    git("repack", "-q", "-d", "--cruft", "--cruft-expiration=never", cwd=cruft)

    loose = base / "loose.git"
    git("init", "-q", "--bare", str(loose))
    git("config", "receive.unpackLimit", "100000", cwd=loose)
    git("push", "-q", "--mirror", str(loose), cwd=work)
    git("symbolic-ref", "HEAD", "refs/heads/main", cwd=loose)

    sha256 = mirror_of(work_repo(base / "work256", "sha256", commits=4), base / "sha256.git")
    git("config", "pack.writeReverseIndex", "true", cwd=sha256)
    git("gc", "-q", cwd=sha256)
    git("commit-graph", "write", "--reachable", cwd=sha256)
    return {"work": work, "gc": gc, "split": split, "midx": midx, "cruft": cruft, "loose": loose, "sha256": sha256}


def packfiles(repo: Path, ext: str) -> list[Path]:
    return sorted((repo / "objects" / "pack").glob(f"*.{ext}"))


def tar_bytes(repo: Path, fmt: int = tarfile.GNU_FORMAT) -> bytes:
    """The mirror as a tar (hooks left out to keep seeds small), with GNU tar when present."""
    if shutil.which("tar"):
        res = subprocess.run(["tar", "-cf", "-", "--exclude=./hooks", "-C", str(repo), "."], capture_output=True)
        if res.returncode == 0:
            return res.stdout
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        tf.add(repo, arcname=".", filter=lambda ti: None if ti.name.startswith("./hooks") else ti)
    return buf.getvalue()


def crafted_tar() -> bytes:
    """pax records, long names, a symlink, a hard link and a directory, as Python's tarfile writes them."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, data, link in (
            ("./objects/pack", tarfile.DIRTYPE, b"", ""),
            ("./HEAD", tarfile.REGTYPE, b"ref: refs/heads/main\n", ""),
            ("./refs/heads/" + "long-branch-name-" * 8, tarfile.REGTYPE, b"1" * 40 + b"\n", ""),
            ("./refs/heads/link", tarfile.SYMTYPE, b"", "main"),
            ("./refs/heads/hard", tarfile.LNKTYPE, b"", "./HEAD"),
        ):
            ti = tarfile.TarInfo(name)
            ti.type, ti.linkname, ti.size, ti.mtime = kind, link, len(data), 1700000000
            tf.addfile(ti, io.BytesIO(data) if data else None)
    return buf.getvalue()


def compress(data: bytes, how: str) -> bytes | None:
    tools = {"zstd": ["zstd", "-q", "-c", "-3"], "zstd-nocheck": ["zstd", "-q", "-c", "--no-check"],
             "pzstd": ["pzstd", "-q", "-c", "-p2"]}
    if how == "gzip":
        return gzip.compress(data, mtime=0)
    if shutil.which(tools[how][0]):
        res = subprocess.run(tools[how], input=data, capture_output=True)
        if res.returncode == 0:
            return res.stdout
    if how == "zstd":
        import zstandard

        return zstandard.ZstdCompressor(write_checksum=True).compress(data)
    return None


def reftable_seed() -> tuple[bytes, bytes]:
    """A table written by dulwich's reftable writer (git 2.39 cannot write them) and a tables.list."""
    from dulwich.reftable import ReftableWriter

    buf = io.BytesIO()
    w = ReftableWriter(buf)
    for i in range(20):
        w.add_ref(f"refs/heads/b{i:02d}".encode(), hashlib.sha1(b"%d" % i).digest())
    w.add_symbolic_ref(b"HEAD", b"refs/heads/b01")
    w.delete_ref(b"refs/heads/old")
    w.write()
    return buf.getvalue(), b"0x000000000001-0x000000000001-01234567.ref\n0x000000000002-0x000000000003-89abcdef.ref\n"


def seeds(repos: dict[str, Path]) -> dict[str, list[tuple[str, bytes]]]:
    gc, split, midx, cruft, loose, sha256 = (repos[k] for k in ("gc", "split", "midx", "cruft", "loose", "sha256"))
    out: dict[str, list[tuple[str, bytes]]] = {}

    def add(target: str, name: str, data: bytes | None) -> None:
        if data is not None and len(data) <= MAX_SEED:
            out.setdefault(target, []).append((name, data))

    packed = (gc / "packed-refs").read_bytes()
    add("packed_refs", "gc", packed)
    add("packed_refs", "no-header", packed.split(b"\n", 1)[1])
    add("packed_refs", "sha256", (sha256 / "packed-refs").read_bytes())
    add("packed_refs", "cut", packed[: len(packed) // 2])

    add("loose_refs", "head-symref", (loose / "HEAD").read_bytes())
    for ref in sorted((loose / "refs").rglob("*"))[:4]:
        if ref.is_file():
            add("loose_refs", ref.name, ref.read_bytes())
    add("loose_refs", "sha256", git("rev-parse", "HEAD", cwd=sha256) )

    add("config", "mirror", (gc / "config").read_bytes())
    add("config", "work", (repos["work"] / ".git" / "config").read_bytes())
    add("config", "quoted", b'[remote "origin"]\n\turl = "https://example.com/a b"\n\tfetch = +refs/*:refs/* ; c\n'
                            b"[core]\n\tbare\n\tcompression = 9k\n[Section.sub]\n\tkey = a\\\n\tb\n")

    for i, p in enumerate(packfiles(gc, "idx") + packfiles(sha256, "idx") + packfiles(midx, "idx")[:2]):
        add("idx", f"v2-{i}", p.read_bytes())
    with tempfile.TemporaryDirectory() as t:
        pack = packfiles(gc, "pack")[0]
        v1 = Path(t) / "v1.idx"
        git("index-pack", "--index-version=1", "-o", str(v1), str(pack))
        add("idx", "v1", v1.read_bytes())

    for i, p in enumerate(packfiles(gc, "pack") + packfiles(sha256, "pack") + packfiles(midx, "pack")[:3]):
        add("pack", f"pack-{i}", p.read_bytes())

    add("commit_graph", "single", (gc / "objects/info/commit-graph").read_bytes())
    add("commit_graph", "sha256", (sha256 / "objects/info/commit-graph").read_bytes())
    chain_dir = split / "objects/info/commit-graphs"
    add("commit_graph", "chain", (chain_dir / "commit-graph-chain").read_bytes())
    for i, p in enumerate(sorted(chain_dir.glob("graph-*.graph"))):
        add("commit_graph", f"layer-{i}", p.read_bytes())

    add("midx", "midx", (midx / "objects/pack/multi-pack-index").read_bytes())

    for i, p in enumerate(packfiles(gc, "bitmap") + sorted((midx / "objects/pack").glob("multi-pack-index-*.bitmap"))):
        add("bitmap", f"bitmap-{i}", p.read_bytes())

    for i, p in enumerate(packfiles(gc, "rev") + packfiles(sha256, "rev") + packfiles(cruft, "mtimes")):
        add("rev_mtimes", f"{p.suffix[1:]}-{i}", p.read_bytes())

    types = {"commit": 1, "tree": 2, "tag": 4}
    listing = git("cat-file", "--batch-all-objects", "--batch-check=%(objecttype) %(objectname)", cwd=gc)
    for line in listing.decode().splitlines():
        kind, oid = line.split()
        if kind in types and len(out.get("objects", [])) < 24:
            add("objects", f"{kind}-{oid[:8]}", bytes([types[kind]]) + git("cat-file", kind, oid, cwd=gc))

    for p in sorted((loose / "objects").glob("??/*"))[:12]:
        add("loose_object", p.parent.name + p.name[:6], p.read_bytes())

    table, tables_list = reftable_seed()
    add("reftable", "table", table)
    add("reftable", "tables-list", tables_list)

    small_tar = tar_bytes(loose)
    add("tar", "gnu-loose", small_tar)
    add("tar", "gnu-gc", tar_bytes(gc))
    add("tar", "pax-crafted", crafted_tar())
    with tarfile.open(fileobj=io.BytesIO(crafted_tar())) as tf:
        members = tf.getmembers()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for m in members:
            tf.addfile(m, io.BytesIO(b"ref: refs/heads/main\n") if m.isreg() and m.name == "./HEAD" else
                       io.BytesIO(b"1" * 40 + b"\n") if m.isreg() else None)
    add("tar", "gnu-longnames", buf.getvalue())

    gc_tar = tar_bytes(gc)
    for how in ("zstd", "zstd-nocheck", "pzstd", "gzip"):
        add("compression", how, compress(crafted_tar(), how))
        add("verify", f"gc.tar.{how}", compress(gc_tar, how))
    add("compression", "plain-tar", crafted_tar())
    add("verify", "gc.tar", gc_tar)
    add("verify", "loose.tar", small_tar)
    add("verify", "sha256.tar.zst", compress(tar_bytes(sha256), "zstd"))
    return out


def build(out_dir: Path) -> dict[str, Path]:
    """Write every target's seeds under *out_dir*; return target name -> its seed directory."""
    with tempfile.TemporaryDirectory(prefix="snapcheck-seeds-") as tmp:
        corpus = seeds(build_repos(Path(tmp)))
    dirs = {}
    for target, files in corpus.items():
        d = out_dir / target
        d.mkdir(parents=True, exist_ok=True)
        for name, data in files:
            (d / f"seed-{name}").write_bytes(data)
        dirs[target] = d
    return dirs


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "corpus"
    dirs = build(out)
    for target, d in sorted(dirs.items()):
        files = list(d.iterdir())
        print(f"{target:14} {len(files):3} seeds, {sum(f.stat().st_size for f in files):7} bytes  {d}")
    missing = sorted(p.stem[5:] for p in Path(__file__).resolve().parent.glob("fuzz_*.py"))
    missing = [t for t in missing if t not in dirs]
    if missing:
        sys.exit(f"no seeds for: {', '.join(missing)}")


if __name__ == "__main__":
    main()
