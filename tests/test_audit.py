"""The audit sweep against a real S3 server (SeaweedFS) and a local-directory bucket.

A bucket of more than 500 objects read over many listing pages: snapcheck archives (good, a wrong
sha256, wrong metadata, cut, no manifest), cachew's layout (mirror, workstation with the right and a
wrong X-Cachew-Snapshot-Commit, LFS, bundles good and cut, other namespaces, companions: a tag
mismatch, a missing one, an expired entry, an orphan, an invalid one, a Content-Type that lies),
plain tar/tar.gz/tar.zst mirrors good and damaged, bundles, archives of something else, non-archives
and hundreds of fillers.  Every archive is made with the real tools (git, tar, pzstd, gzip) from the
fixture mirrors; a handful of bodies are reused under many keys.  Verdicts, layouts and finding codes
are checked for every key; then resume, quarantine (tag, move, multipart move), shards, the process
backend, Dask on a LocalCluster, a server stopped mid-sweep (a second, private server), a connection
cut mid-object, and the CLI with its output, metrics and exit codes.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import os
import re
import secrets
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner

from snapcheck import __version__
from snapcheck.archive_writer import build_manifest, write_archive
from snapcheck.audit import (
    AuditOptions,
    AuditResult,
    AuditSummary,
    audit,
    in_shard,
    load_results,
    parse_since,
    quarantine,
    read_listing,
    resolve_shard,
    write_listing,
)
from snapcheck.capture import capture_mirror
from snapcheck.commands.audit import audit_command
from snapcheck.errors import SourceError, UsageError
from snapcheck.layouts.cachew import parse_data_key
from snapcheck.report import Level, Severity
from snapcheck.storage import LocalStorage, ObjectInfo
from snapcheck.storage.s3 import MIN_PART_SIZE, S3Storage

import archives
import gitrepos

if TYPE_CHECKING:
    from s3server import CuttingProxy, S3Bucket, S3Server

pytest_plugins = ("s3server",)  # s3_server, s3_env, s3_bucket, s3_proxy

pytestmark = pytest.mark.s3

# cachew's grace and expiry are judged at this time: an hour after the objects were written
LATER = datetime.now(UTC) + timedelta(hours=1)
PAGE = 40  # keys per ListObjectsV2 page in the library runs: the big bucket spans 13+ pages
FILLERS = 440


# --------------------------------------------------------------------------------------------------
# archive bodies, made once from the fixture mirror with the real tools


@dataclass
class Corpus:
    mirror: Path
    head: str
    good_zst: bytes  # tar | pzstd, exactly cachew's pipeline
    good_gz: bytes
    good_tar: bytes
    snap: bytes  # snapcheck's own archive (manifest last)
    snap_meta: dict[str, str]
    ws_zst: bytes  # a workstation snapshot: tar | pzstd of a non-bare clone
    ws_head: str
    bundle: bytes  # git bundle create --all
    lfs_good: bytes
    lfs_bad: bytes
    other_dir_zst: bytes  # a tar.zst of a directory that is not a repository
    packed_refs_cut_zst: bytes
    big_bad: bytes  # 6 MiB, starts like gzip, is not: corrupt, and large enough for a multipart copy


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x10]) + data[at + 1:]


@pytest.fixture(scope="module")
def corpus(mirrors: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    mirror = mirrors("gc_bitmaps")
    tmp = tmp_path_factory.mktemp("audit-corpus")
    head = gitrepos.git("rev-parse", "HEAD", cwd=mirror).strip()
    good_tar = archives.tar_dir(mirror)
    with capture_mirror(mirror, tmp) as cap:
        manifest = build_manifest(cap, __version__, created="2026-07-01T00:00:00Z")
        out = tmp / "snap.tar.zst"
        with open(out, "wb") as f:
            stats = write_archive(cap.staging, manifest, f)
        snap = out.read_bytes()
        snap_meta = {
            "snapcheck-version": __version__, "snapcheck-level": "standard", "snapcheck-sha256": stats.sha256,
            "snapcheck-refs": str(len(cap.refs)), "snapcheck-objects": str(cap.object_count),
            "snapcheck-head": cap.head_oid.hex() if cap.head_oid else "", "snapcheck-created": "2026-07-01T00:00:00Z",
        }  # fmt: skip
    ws = tmp / "ws"
    gitrepos.git("clone", "-q", str(mirror), str(ws))
    gitrepos.git("remote", "set-url", "origin", "https://github.com/org/repo", cwd=ws)
    ws_head = gitrepos.git("rev-parse", "HEAD", cwd=ws).strip()
    bundle_path = tmp / "all.bundle"
    gitrepos.git("bundle", "create", "-q", str(bundle_path), "--all", cwd=mirror)
    lfs = tmp / "lfs-clone" / ".git"
    files = {}
    for i in range(3):
        content = f"large file {i}\n".encode() * 100
        oid = hashlib.sha256(content).hexdigest()
        files[f"lfs/objects/{oid[:2]}/{oid[2:4]}/{oid}"] = content
    archives.make_tree(lfs, files)
    lfs_good = archives.shell(f"tar -cpf - -C '{lfs}' lfs | pzstd -q -c -p2")
    victim = lfs / next(iter(files))
    victim.write_bytes(b"not the content its oid names\n")
    lfs_bad = archives.shell(f"tar -cpf - -C '{lfs}' lfs | pzstd -q -c -p2")
    other = archives.make_tree(tmp / "gradle-cache", {"caches/a.bin": b"x" * 3000, "caches/b/c.txt": b"hello\n"})
    cut_refs = gitrepos.copy_repo(mirror, tmp / "cut-refs.git")
    pr = (cut_refs / "packed-refs").read_bytes()
    (cut_refs / "packed-refs").write_bytes(pr[: len(pr) - 7])  # cut mid-line, as the tar race does
    big_bad = b"\x1f\x8b\x08\x00" + secrets.token_bytes(6 * (1 << 20))
    return Corpus(
        mirror=mirror, head=head, good_zst=archives.cachew_archive(mirror), good_gz=archives.gzip(good_tar),
        good_tar=good_tar, snap=snap, snap_meta=snap_meta,
        ws_zst=archives.shell(f"tar -cpf - -C '{ws}' . | pzstd -q -c -p2"), ws_head=ws_head,
        bundle=bundle_path.read_bytes(), lfs_good=lfs_good, lfs_bad=lfs_bad,
        other_dir_zst=archives.shell(f"tar -cpf - -C '{other}' . | pzstd -q -c -p2"),
        packed_refs_cut_zst=archives.cachew_archive(cut_refs), big_bad=big_bad,
    )  # fmt: skip


# --------------------------------------------------------------------------------------------------
# a bucket's contents and what the audit must say about each key


@dataclass
class Expect:
    verdict: str
    layout: str
    codes: frozenset[str] = frozenset()  # every one must be among the result's codes
    exact: bool = True  # the result's error codes are exactly the error codes among `codes`
    any_of: frozenset[str] = frozenset()  # at least one of these must be among the codes


def expect(verdict: str, layout: str, *codes: str, exact: bool = True, any_of: tuple[str, ...] = ()) -> Expect:
    return Expect(verdict, layout, frozenset(codes), exact, frozenset(any_of))


Put = Callable[[str, bytes, dict[str, str]], None]


def rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.123456789Z")


def cachew_key(ns: str, name: str) -> str:
    h = hashlib.sha256(name.encode()).hexdigest()
    return f"{ns}/{h[:2]}/{h}"


def cachew_entry(put: Put, ns: str, name: str, body: bytes, *, ctype: str | None = "application/zstd",
                 filename: str | None = "repo.tar.zst", commit: str | None = None, companion: str = "ok",
                 ) -> str:  # fmt: skip
    """Store a cachew entry the way cachew's S3 tier does: data object with tag + headers metadata,
    then the ``.meta`` companion.  *companion*: ok, missing, mismatch (another write's tag), expired,
    invalid."""
    key = cachew_key(ns, name)
    tag = secrets.token_hex(16)
    etag = f'"{secrets.token_hex(8)}"'
    headers: dict[str, list[str]] = {"Etag": [etag]}
    if ctype:
        headers["Content-Type"] = [ctype]
    if filename:
        headers["Content-Disposition"] = [f'attachment; filename="{filename}"']
    if commit:
        headers["X-Cachew-Snapshot-Commit"] = [commit]
    put(key, body, {"tag": tag, "headers": json.dumps(headers, separators=(",", ":"))})
    if companion == "missing":
        return key
    expires = datetime.now(UTC) + timedelta(days=1)
    if companion == "expired":
        expires = datetime.now(UTC) - timedelta(days=2)
    doc = {"headers": {"Etag": [etag]}, "expires_at": rfc3339(expires),
           "tag": secrets.token_hex(16) if companion == "mismatch" else tag}  # fmt: skip
    data = b"{not json" if companion == "invalid" else json.dumps(doc).encode()
    put(key + ".meta", data, {})
    return key


def populate(put: Put, c: Corpus, *, fillers: int) -> dict[str, Expect]:
    """Fill a bucket; return what the audit must say about every key."""
    ex: dict[str, Expect] = {}

    def add(key: str, body: bytes, e: Expect, meta: dict[str, str] | None = None) -> None:
        put(key, body, meta or {})
        ex[key] = e

    # snapcheck's own archives
    add("snap/good.tar.zst", c.snap, expect("sound", "snapcheck"), c.snap_meta)
    add("snap/bad-sha.tar.zst", c.snap, expect("corrupt", "snapcheck", "snapcheckSha256Mismatch"),
        {**c.snap_meta, "snapcheck-sha256": "0" * 64})
    add("snap/bad-refs.tar.zst", c.snap, expect("corrupt", "snapcheck", "snapcheckMetadataMismatch"),
        {**c.snap_meta, "snapcheck-refs": "999"})
    add("snap/cut.tar.zst", c.snap[: len(c.snap) // 2], expect("corrupt", "snapcheck", "zstdTruncated", exact=False),
        c.snap_meta)
    meta_nm = {**c.snap_meta, "snapcheck-sha256": hashlib.sha256(c.good_zst).hexdigest()}
    add("snap/no-manifest.tar.zst", c.good_zst, expect("corrupt", "snapcheck", "snapcheckManifestMissing"), meta_nm)
    # plain archives of a mirror, good and damaged
    add("mirrors/gc.tar.zst", c.good_zst, expect("sound", "tar"))
    add("mirrors/gc.tar.gz", c.good_gz, expect("sound", "tar"))
    add("mirrors/gc.tar", c.good_tar, expect("sound", "tar"))
    add("mirrors/cut-half.tar.zst", c.good_zst[: len(c.good_zst) // 2],
        expect("corrupt", "tar", "zstdTruncated", exact=False))
    add("mirrors/cut-1.tar.zst", c.good_zst[:-1], expect("corrupt", "tar", "zstdTruncated", exact=False))
    add("mirrors/flipped.tar.zst", _flip(c.good_zst, len(c.good_zst) // 2),
        expect("corrupt", "tar", exact=False, any_of=("zstdChecksumMismatch", "zstdFrameCorrupt")))
    add("mirrors/zero-tail.tar.zst", c.good_zst + bytes(512), expect("corrupt", "tar", exact=False,
        any_of=("zstdTrailingGarbage", "zstdTruncated", "zstdFrameCorrupt")))  # fmt: skip
    add("mirrors/cut.tar.gz", c.good_gz[: len(c.good_gz) * 2 // 3], expect("corrupt", "tar", "gzipTruncated", exact=False))
    add("mirrors/cut.tar", c.good_tar[: len(c.good_tar) // 2],
        expect("corrupt", "tar", exact=False, any_of=("tarMemberTruncated", "tarMissingEndMarker")))
    add("mirrors/packed-refs-cut.tar.zst", c.packed_refs_cut_zst,
        expect("corrupt", "tar", exact=False, any_of=("packedRefsUnterminated", "packedRefsPeeledUnterminated")))
    add("mirrors/gradle-cache.tar.zst", c.other_dir_zst, expect("skipped", "archive", "auditNotASnapshot"))
    add("mirrors/log.json.zst", archives.zstd(b'{"log": "not a tar"}\n' * 50),
        expect("skipped", "other", "auditNotAnArchive"))
    add("mirrors/notes.gz", archives.gzip(b"plain text, gzipped\n" * 40), expect("skipped", "other", "auditNotAnArchive"))
    add("mirrors/empty", b"", expect("skipped", "other", "auditNotAnArchive"))
    add("mirrors/all.bundle", c.bundle, expect("sound", "bundle"))
    add("mirrors/cut.bundle", c.bundle[: len(c.bundle) - 10], expect("corrupt", "bundle", "packChecksumMismatch"))
    add("mirrors/header-cut.bundle", c.bundle[:60], expect("corrupt", "bundle", "bundleHeaderTruncated"))
    # cachew's layout
    z, b = "application/zstd", "application/x-git-bundle"
    e = ex.__setitem__
    e(cachew_entry(put, "git", "https://github.com/org/good.mirror-snapshot", c.good_zst), expect("sound", "cachew-mirror"))
    e(cachew_entry(put, "git", "https://github.com/org/mismatch.mirror-snapshot", c.good_zst, companion="mismatch"),
      expect("corrupt", "cachew-mirror", "cachewTagMismatch"))
    e(cachew_entry(put, "git", "https://github.com/org/lonely.mirror-snapshot", c.good_zst, companion="missing"),
      expect("sound", "cachew-mirror", "cachewCompanionMissing"))
    e(cachew_entry(put, "git", "https://github.com/org/old.mirror-snapshot", c.good_zst, companion="expired"),
      expect("sound", "cachew-mirror", "cachewExpired"))
    e(cachew_entry(put, "git", "https://github.com/org/badmeta.mirror-snapshot", c.good_zst, companion="invalid"),
      expect("corrupt", "cachew-mirror", "cachewCompanionInvalid"))
    e(cachew_entry(put, "git", "https://github.com/org/cut.mirror-snapshot", c.good_zst[:-100]),
      expect("corrupt", "cachew-mirror", "zstdTruncated", exact=False))
    e(cachew_entry(put, "git", "https://github.com/org/gz.mirror-snapshot", c.good_gz),
      expect("corrupt", "cachew-mirror", "cachewContentTypeMismatch"))
    e(cachew_entry(put, "git", "https://github.com/org/ws.snapshot", c.ws_zst, filename="base.tar.zst", commit=c.ws_head),
      expect("sound", "cachew-workstation"))
    e(cachew_entry(put, "git", "https://github.com/org/ws-wrong.snapshot", c.ws_zst, filename="base.tar.zst",
                   commit="0123456789abcdef0123456789abcdef01234567"),
      expect("corrupt", "cachew-workstation", "cachewSnapshotCommitMismatch"))
    e(cachew_entry(put, "git", "https://github.com/org/repo.lfs-snapshot", c.lfs_good, filename="lfs.tar.zst"),
      expect("sound", "cachew-lfs"))
    e(cachew_entry(put, "git", "https://github.com/org/bad.lfs-snapshot", c.lfs_bad, filename="lfs.tar.zst"),
      expect("corrupt", "cachew-lfs", "lfsObjectHashMismatch"))
    e(cachew_entry(put, "git", "https://github.com/org/repo.bundle.1", c.bundle, ctype=b, filename=None),
      expect("sound", "cachew-bundle"))
    e(cachew_entry(put, "git", "https://github.com/org/repo.bundle.2", c.bundle[:-1], ctype=b, filename=None),
      expect("corrupt", "cachew-bundle", "packChecksumMismatch"))
    e(cachew_entry(put, "gradle", "gradle-cache-key", c.other_dir_zst, ctype=z, filename="gradle.tar.zst"),
      expect("sound", "cachew-archive"))
    e(cachew_entry(put, "gomod", "https://proxy.golang.org/x/@v/list", b"v1.0.0\nv1.1.0\n",
                   ctype="text/plain", filename=None), expect("skipped", "cachew-other", "auditNotAnArchive"))
    e(cachew_entry(put, "http", "https://example.com/index.json.zst", archives.zstd(b'{"i": 1}\n' * 400),
                   ctype="application/octet-stream", filename=None),
      expect("skipped", "cachew-other", "auditNotAnArchive"))  # a cached zstd file that is not a tar
    orphan = cachew_key("git", "https://github.com/org/gone.mirror-snapshot") + ".meta"
    add(orphan, b'{"headers":{},"expires_at":"2030-01-01T00:00:00Z","tag":"00"}',
        expect("skipped", "cachew-companion", "cachewCompanionOrphan"))
    for key in [k for k in list(ex) if parse_data_key(k) is not None]:
        if ex[key].codes >= {"cachewCompanionMissing"}:
            continue
        ex[key + ".meta"] = expect("skipped", "cachew-companion")
    # one body under many keys, and fillers
    for i in range(24):
        add(f"many/ok-{i:03d}.tar.zst", c.good_zst, expect("sound", "tar"))
    for i in range(8):
        add(f"many/cut-{i:03d}.tar.zst", c.good_zst[: 4000 + i], expect("corrupt", "tar", "zstdTruncated", exact=False))
    for i in range(fillers):
        body = json.dumps({"n": i}).encode() if i % 2 else f"filler {i}\n".encode()
        add(f"fill/{i:04d}.{'json' if i % 2 else 'txt'}", body, expect("skipped", "other", "auditNotAnArchive"))
    return ex


def check(results: list[AuditResult], want: dict[str, Expect]) -> None:
    keys = [r.key for r in results]
    assert len(keys) == len(set(keys)), "a key was judged twice"
    assert set(keys) == set(want), (sorted(set(want) - set(keys))[:5], sorted(set(keys) - set(want))[:5])
    bad = []
    for r in results:
        e = want[r.key]
        codes = set(r.codes)
        errors = {f.code for f in r.findings if f.severity is Severity.ERROR}
        ok = r.verdict == e.verdict and r.layout == e.layout and e.codes <= codes
        if e.exact:
            ok = ok and errors <= e.codes
        if e.any_of:
            ok = ok and bool(codes & e.any_of)
        if r.verdict == "sound":
            ok = ok and not errors
        if not ok:
            bad.append((r.key, r.verdict, r.layout, sorted(codes), e))
    assert not bad, "\n".join(map(str, bad))


def s3_put(client: Any, bucket: str) -> tuple[Put, Callable[[], None]]:
    pool = cf.ThreadPoolExecutor(8)
    futures: list[cf.Future[Any]] = []

    def put(key: str, body: bytes, meta: dict[str, str]) -> None:
        futures.append(pool.submit(client.put_object, Bucket=bucket, Key=key, Body=body, Metadata=meta))

    def wait() -> None:
        for f in futures:
            f.result()
        pool.shutdown()

    return put, wait


def local_put(st: LocalStorage) -> Put:
    def put(key: str, body: bytes, meta: dict[str, str]) -> None:
        up = st.begin_upload(key, metadata=meta)
        up.write(body)
        up.commit()

    return put


def aws_env(mp: pytest.MonkeyPatch, server: S3Server, tmp: Path, *, attempts: int = 3) -> None:
    for k in list(os.environ):
        if k.startswith("AWS_"):
            mp.delenv(k)
    mp.setenv("AWS_ACCESS_KEY_ID", server.access_key)
    mp.setenv("AWS_SECRET_ACCESS_KEY", server.secret_key)
    mp.setenv("AWS_DEFAULT_REGION", server.region)
    mp.setenv("AWS_ENDPOINT_URL", server.endpoint)
    mp.setenv("AWS_RETRY_MODE", "standard")
    mp.setenv("AWS_MAX_ATTEMPTS", str(attempts))
    mp.setenv("AWS_CONFIG_FILE", str(tmp / "no-aws-config"))
    mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp / "no-aws-credentials"))
    mp.setenv("AWS_EC2_METADATA_DISABLED", "true")


@dataclass
class Big:
    bucket: str
    url: str
    want: dict[str, Expect]
    baseline: list[AuditResult] = field(default_factory=list)

    def storage(self) -> S3Storage:
        return S3Storage(self.bucket, page_size=PAGE)


@pytest.fixture(scope="module")
def big(s3_server: S3Server, corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Big]:
    """The big bucket, filled once; its baseline audit (4 threads, pages of 40 keys) run once."""
    with pytest.MonkeyPatch.context() as mp:
        aws_env(mp, s3_server, tmp_path_factory.mktemp("aws"))
        name = s3_server.new_bucket()
        # a short read timeout: SeaweedFS now and then garbles the response to one of many concurrent
        # PUTs, and the client then waits for its read timeout before it retries
        put, wait = s3_put(s3_server.client(read_timeout=3), name)
        want = populate(put, corpus, fillers=FILLERS)
        wait()
        b = Big(name, f"s3://{name}/", want)
        b.baseline = list(audit(b.url, options=AuditOptions(jobs=4, now=LATER), storage=b.storage()))
        yield b


@pytest.fixture
def big_env(big: Big, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Big:
    aws_env(monkeypatch, s3_server, tmp_path)
    return big


def verdicts(results: list[AuditResult]) -> dict[str, tuple[str, str, tuple[str, ...]]]:
    return {r.key: (r.verdict, r.layout, tuple(r.codes)) for r in results}


# --------------------------------------------------------------------------------------------------
# the big bucket


def test_every_verdict_over_many_listing_pages(big_env: Big) -> None:
    results = big_env.baseline
    assert len(results) >= 500
    assert len(results) / PAGE > 12  # the listing really was paged
    check(results, big_env.want)
    by = {r.key: r for r in results}
    # results carry what the archive says
    assert by["mirrors/gc.tar.zst"].head and by["mirrors/gc.tar.zst"].refs
    assert by["mirrors/gc.tar.zst"].bytes_read == by["mirrors/gc.tar.zst"].size
    # a tag mismatch names both tags; the missing companion is a warning after cachew's grace
    mm = by[cachew_key("git", "https://github.com/org/mismatch.mirror-snapshot")]
    assert mm.first_error is not None and mm.first_error.code == "cachewTagMismatch"
    lonely = by[cachew_key("git", "https://github.com/org/lonely.mirror-snapshot")]
    assert [f.severity for f in lonely.findings if f.code == "cachewCompanionMissing"] == [Severity.WARNING]
    # companions are never read as archives; non-archives are read only as far as their first bytes
    assert all(r.bytes_read == 0 for r in results if r.layout == "cachew-companion")
    assert by["snap/good.tar.zst"].bytes_read == by["snap/good.tar.zst"].size
    assert all(r.bytes_read <= 64 for r in results if r.key.startswith("fill/"))


def test_cli_output_metrics_and_resume(big_env: Big, corpus: Corpus, tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    prom = tmp_path / "audit.prom"
    r = CliRunner().invoke(audit_command, [big_env.url, "-j", "4", "-o", str(out), "--metrics-file", str(prom)])
    assert r.exit_code == 1, r.output  # corrupt objects, nothing unreadable
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert {d["key"] for d in lines} == set(big_env.want) and len(lines) == len(big_env.want)
    for d in lines:
        assert set(d) >= {"key", "etag", "size", "layout", "verdict", "codes", "duration_s", "bytes_per_s"}
    # cachew's grace is judged at the real time here: objects written seconds ago are within it
    first = {d["key"]: d for d in lines}
    mm = first[cachew_key("git", "https://github.com/org/mismatch.mirror-snapshot")]
    assert mm["verdict"] == "sound" and mm["findings"][0]["severity"] == "info"
    assert "layout" in r.output and "total" in r.output  # the summary table (stderr)
    metrics = parse_prometheus(prom.read_text())
    sound = sum(d["verdict"] == "sound" for d in lines)
    corrupt = sum(d["verdict"] == "corrupt" for d in lines)
    assert metrics[("snapcheck_audit_objects", "sound")] == sound
    assert metrics[("snapcheck_audit_objects", "corrupt")] == corrupt
    assert metrics[("snapcheck_audit_exit_code", "")] == 1
    assert metrics[("snapcheck_audit_bytes_read", "")] == sum(d["bytes_read"] for d in lines)
    assert not list(tmp_path.glob(".audit.prom*"))  # written atomically, no temp left
    # resume into the same file: sound (key, ETag) pairs are not read again; a replaced object is
    client = big_env.storage().client
    client.put_object(Bucket=big_env.bucket, Key="many/ok-000.tar.zst", Body=corpus.good_zst[:5000])
    try:
        r2 = CliRunner().invoke(audit_command, [big_env.url, "-j", "4", "--resume", str(out), "-o", str(out)])
        assert r2.exit_code == 1, r2.output
        lines2 = [json.loads(x) for x in out.read_text().splitlines()]
        appended = lines2[len(lines):]
        resumed_keys = {d["key"] for d in lines if d["verdict"] in ("sound", "skipped")} - {"many/ok-000.tar.zst"}
        assert {d["key"] for d in appended} == set(big_env.want) - resumed_keys
        assert {d["key"]: d["verdict"] for d in appended}["many/ok-000.tar.zst"] == "corrupt"
        assert f"({len(resumed_keys)} resumed)" in r2.output
        latest = load_results(str(out))
        assert latest[("many/ok-000.tar.zst", big_env.storage().head("many/ok-000.tar.zst").etag)].verdict == "corrupt"
    finally:
        client.put_object(Bucket=big_env.bucket, Key="many/ok-000.tar.zst", Body=corpus.good_zst)


def parse_prometheus(text: str) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    types = {}
    for line in text.splitlines():
        if line.startswith("# TYPE"):
            _, _, name, kind = line.split()
            types[name] = kind
            continue
        if line.startswith("#") or not line.strip():
            continue
        m = re.fullmatch(r'([a-z_]+)\{([^}]*)\} (\S+)', line)
        assert m, line
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2)))
        out[(m.group(1), labels.get("verdict", ""))] = float(m.group(3))
    assert types["snapcheck_audit_object_duration_seconds"] == "histogram"
    return out


def test_shards_partition_the_bucket_through_a_shared_listing(big_env: Big, tmp_path: Path) -> None:
    listing = tmp_path / "listing.jsonl"
    r = CliRunner().invoke(audit_command, [big_env.url, "--list-only", "-o", str(listing)])
    assert r.exit_code == 0, r.output
    listed = list(read_listing(str(listing)))
    assert {o.key for o in listed} == set(big_env.want)
    n = 3
    seen: dict[str, int] = {}
    results: list[AuditResult] = []
    for i in range(n):
        opts = AuditOptions(jobs=4, now=LATER, shard=(i, n), listing=str(listing))
        part = list(audit(big_env.url, options=opts, storage=big_env.storage()))
        assert part and all(in_shard(x.key, (i, n)) for x in part)
        for x in part:
            seen[x.key] = seen.get(x.key, 0) + 1
        results += part
    assert set(seen) == set(big_env.want) and set(seen.values()) == {1}  # the union is the bucket, no overlap
    assert verdicts(results) == verdicts(big_env.baseline)
    # a listing cut while it was written is refused: shards would silently miss objects
    cut = tmp_path / "cut.jsonl"
    cut.write_text("\n".join(listing.read_text().splitlines()[:-1]) + "\n")
    r = CliRunner().invoke(audit_command, [big_env.url, "--listing", str(cut), "--shard", "0/2"])
    assert r.exit_code == 3 and "end record" in r.output


def special_listing(big: Big, path: Path) -> str:
    """A listing of every key of the big bucket but the fillers (every layout, every verdict)."""
    st = big.storage()
    with open(path, "w") as f:
        write_listing([o for o in st.list("") if not o.key.startswith("fill/")], f, location=st.describe(""))
    return str(path)


def test_process_backend_same_results(big_env: Big, tmp_path: Path) -> None:
    opts = AuditOptions(jobs=2, backend="process", now=LATER, listing=special_listing(big_env, tmp_path / "l"))
    results = list(audit(big_env.url, options=opts, storage=big_env.storage()))
    assert len(results) > 80
    assert verdicts(results) == {k: v for k, v in verdicts(big_env.baseline).items() if not k.startswith("fill/")}


def test_dask_local_cluster_same_results(big_env: Big, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import distributed  # the [dask] extra; tests install dask[distributed]

    root = str(Path(__file__).resolve().parent.parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    listing = special_listing(big_env, tmp_path / "l")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=True, dashboard_address=None,
                                  silence_logs=40) as cluster:  # fmt: skip
        opts = AuditOptions(now=LATER, dask_scheduler=cluster.scheduler_address, listing=listing)
        results = list(audit(big_env.url, options=opts, storage=big_env.storage()))
    assert len(results) > 80
    assert verdicts(results) == {k: v for k, v in verdicts(big_env.baseline).items() if not k.startswith("fill/")}


# --------------------------------------------------------------------------------------------------
# quarantine, and what is never quarantined


def test_quarantine_tag_never_on_unreadable(s3_bucket: S3Bucket, s3_proxy: CuttingProxy, corpus: Corpus) -> None:
    c = s3_bucket.client
    for key, body in (("good.tar.zst", corpus.good_zst), ("bad.tar.zst", corpus.good_zst[:-3]),
                      ("unreadable.tar.zst", corpus.good_zst)):  # fmt: skip
        c.put_object(Bucket=s3_bucket.name, Key=key, Body=body)
    c.put_object_tagging(Bucket=s3_bucket.name, Key="bad.tar.zst",
                         Tagging={"TagSet": [{"Key": "team", "Value": "infra"}]})
    # the GET of this object breaks 3000 bytes into the response, every resume before its body starts
    match = f"GET /{s3_bucket.name}/unreadable.tar.zst".encode()
    s3_proxy.cut(match, after=3000, times=1)
    s3_proxy.cut(match, after=100, times=50)
    opts = AuditOptions(jobs=2, quarantine="tag", endpoint_url=s3_proxy.endpoint)
    results = {r.key: r for r in audit(s3_bucket.url(), options=opts)}
    assert results["good.tar.zst"].verdict == "sound" and results["good.tar.zst"].quarantine is None
    bad = results["bad.tar.zst"]
    assert bad.verdict == "corrupt" and bad.quarantine == "tagged"
    tags = {t["Key"]: t["Value"] for t in c.get_object_tagging(Bucket=s3_bucket.name, Key="bad.tar.zst")["TagSet"]}
    assert tags == {"team": "infra", "snapcheck-status": "corrupt", "snapcheck-finding": bad.first_error.code}
    assert bad.first_error.code == "zstdTruncated"
    un = results["unreadable.tar.zst"]
    assert un.verdict == "incomplete" and "sourceUnreadable" in un.codes and un.quarantine is None
    assert not any(f.severity is Severity.ERROR and f.code != "sourceUnreadable" for f in un.findings)
    assert s3_proxy.cuts >= 2
    for key in ("good.tar.zst", "unreadable.tar.zst"):
        assert c.get_object_tagging(Bucket=s3_bucket.name, Key=key)["TagSet"] == []
    summary = AuditSummary()
    for r in results.values():
        summary.add(r)
    assert summary.exit_code == 3  # something could not be read: worth a retry


def test_quarantine_move_multipart_and_companion(s3_bucket: S3Bucket, corpus: Corpus) -> None:
    c, name = s3_bucket.client, s3_bucket.name
    put, wait = s3_put(c, name)
    good = cachew_entry(put, "git", "https://github.com/org/ok.mirror-snapshot", corpus.good_zst)
    bad = cachew_entry(put, "git", "https://github.com/org/ws-wrong.snapshot", corpus.ws_zst, filename="base.tar.zst",
                       commit="1" * 40)  # fmt: skip
    put("big/bad.tar.gz", corpus.big_bad, {})
    wait()
    st = S3Storage(name, copy_threshold=MIN_PART_SIZE, copy_part_size=MIN_PART_SIZE, page_size=2)
    src_etag = st.head("big/bad.tar.gz").etag
    opts = AuditOptions(jobs=2, quarantine="move:quarantine/2026-07-01", now=LATER)
    results = {r.key: r for r in audit(s3_bucket.url(), options=opts, storage=st)}
    assert results[good].verdict == "sound" and results[good].quarantine is None
    assert results[bad].verdict == "corrupt" and results[bad].quarantine == f"moved:quarantine/2026-07-01/{bad}"
    assert results["big/bad.tar.gz"].quarantine == "moved:quarantine/2026-07-01/big/bad.tar.gz"
    keys = {o["Key"] for o in c.list_objects_v2(Bucket=name)["Contents"]}
    assert keys == {good, good + ".meta", f"quarantine/2026-07-01/{bad}", f"quarantine/2026-07-01/{bad}.meta",
                    "quarantine/2026-07-01/big/bad.tar.gz"}  # fmt: skip
    moved = st.head("quarantine/2026-07-01/big/bad.tar.gz")
    assert moved is not None and moved.size == len(corpus.big_bad)
    assert moved.etag.strip('"').endswith("-2") and src_etag != moved.etag  # copied in two parts
    assert c.get_object(Bucket=name, Key=f"quarantine/2026-07-01/{bad}")["Body"].read() == corpus.ws_zst
    assert st.head(f"quarantine/2026-07-01/{bad}").metadata["tag"]  # metadata travelled with the copy
    # the next sweep does not audit the quarantine
    again = list(audit(s3_bucket.url(), options=opts, storage=st))
    assert {r.key for r in again} == {good, good + ".meta"}


def test_quarantine_only_the_judged_version(tmp_path: Path, corpus: Corpus) -> None:
    st = LocalStorage(tmp_path / "bucket")
    local_put(st)("x.tar.zst", corpus.good_zst[:-2], {})
    [r] = list(audit(str(tmp_path / "bucket"), options=AuditOptions(), storage=st))
    assert r.verdict == "corrupt"
    local_put(st)("x.tar.zst", corpus.good_zst, {})  # replaced by a good snapshot since it was judged
    assert quarantine(st, r, "tag").quarantine.startswith("not done: the object changed")
    assert quarantine(st, r, "move:q/").quarantine.startswith("not done")
    assert st.get_tags("x.tar.zst") == {} and st.head("q/x.tar.zst") is None


def test_shard_pods_share_a_listing_and_resume_results_on_s3(s3_bucket: S3Bucket, corpus: Corpus,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """The flow of docs/kubernetes-audit-job.yaml: index 0 lists to S3, every index audits its shard
    from that listing with its results object as both --resume and --output; a retried pod resumes."""
    c, name = s3_bucket.client, s3_bucket.name
    for i in range(6):
        c.put_object(Bucket=name, Key=f"snaps/s{i}.tar.zst", Body=corpus.good_zst if i % 3 else corpus.good_zst[:-1])
    run = f"s3://{name}/audit/runs/job-1"
    r = CliRunner().invoke(audit_command, [f"s3://{name}/snaps/", "--list-only", "-o", f"{run}/listing.jsonl"])
    assert r.exit_code == 0, r.output
    seen: dict[str, str] = {}
    for index in range(2):
        monkeypatch.setenv("JOB_COMPLETION_INDEX", str(index))
        args = [f"s3://{name}/snaps/", "--listing", f"{run}/listing.jsonl", "--shard", "2",
                "--resume", f"{run}/results-{index}.jsonl", "-o", f"{run}/results-{index}.jsonl"]  # fmt: skip
        for attempt in range(2):  # the second attempt is a retried pod: it reads nothing again
            r = CliRunner().invoke(audit_command, args)
            body = c.get_object(Bucket=name, Key=f"audit/runs/job-1/results-{index}.jsonl")["Body"].read()
            lines = [json.loads(x) for x in body.decode().splitlines()]
            keys = {d["key"] for d in lines}
            assert all(in_shard(k, (index, 2)) for k in keys)
            if attempt == 0:
                seen.update({d["key"]: d["verdict"] for d in lines})
                first = len(lines)
            else:
                n_sound = sum(d["verdict"] == "sound" for d in lines[:first])
                assert len(lines) == 2 * first - n_sound  # only the corrupt ones were judged again
            assert r.exit_code == (1 if "corrupt" in {d["verdict"] for d in lines} else 0), r.output
    assert seen == {f"snaps/s{i}.tar.zst": ("sound" if i % 3 else "corrupt") for i in range(6)}


def shim_env(tmp_path: Path) -> dict[str, str]:
    """An environment with `snapcheck` on PATH (the package is not installed in the test run)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "snapcheck"
    shim.write_text('#!/bin/sh\nshift\nexec "$PYTHON" -c \'import sys; from snapcheck.commands.audit import '
                    'audit_command; audit_command.main(sys.argv[1:], prog_name="snapcheck audit")\' "$@"\n')
    shim.chmod(0o755)
    root = str(Path(__file__).resolve().parent.parent)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHON": sys.executable,
            "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}  # fmt: skip


def test_the_aws_batch_job_definition_runs(s3_bucket: S3Bucket, corpus: Corpus, tmp_path: Path) -> None:
    """docs/aws-batch-audit.json's command, with Ref:: parameters substituted as AWS Batch does (whole
    elements): the listing job, then two array children that shard themselves from AWS_BATCH_* ."""
    import subprocess

    doc = json.loads((Path(__file__).resolve().parent.parent / "docs" / "aws-batch-audit.json").read_text())
    jd = doc["jobDefinition"]
    c, name = s3_bucket.client, s3_bucket.name
    for i in range(4):
        c.put_object(Bucket=name, Key=f"git/b{i}.tar.zst", Body=corpus.good_zst)
    run = f"s3://{name}/audit/runs/20260701T021700Z"

    def submit(job: dict[str, Any], env: dict[str, str]) -> int:
        params = {**jd["parameters"], "location": f"s3://{name}/git/", **job["parameters"], "run": run}
        cmd = [params[x[5:]] if x.startswith("Ref::") else x for x in jd["containerProperties"]["command"]]
        return subprocess.run(cmd, env=env, capture_output=True, timeout=120).returncode

    env = shim_env(tmp_path)
    assert submit(doc["listingJob"], env) == 0
    size = 2
    for index in range(size):
        child = {**env, "AWS_BATCH_JOB_ARRAY_INDEX": str(index), "AWS_BATCH_JOB_ARRAY_SIZE": str(size)}
        assert submit(doc["auditArrayJob"], child) == 0
    keys = []
    for index in range(size):
        body = c.get_object(Bucket=name, Key=f"audit/runs/20260701T021700Z/results-{index}.jsonl")["Body"].read()
        keys += [d["key"] for d in map(json.loads, body.decode().splitlines()) if d["verdict"] == "sound"]
    assert sorted(keys) == [f"git/b{i}.tar.zst" for i in range(4)]
    codes = {e["onExitCode"]: e["action"] for e in jd["retryStrategy"]["evaluateOnExit"] if "onExitCode" in e}
    assert codes["3"] == "RETRY" and codes["1"] == "EXIT"


def test_the_kubernetes_manifest_script_runs(s3_bucket: S3Bucket, corpus: Corpus, tmp_path: Path) -> None:
    """docs/kubernetes-audit-job.yaml's pod script, run as two indexed pods (index 0 lists first)
    against the real S3 server, with `snapcheck` on PATH."""
    import subprocess

    import yaml  # installed with dask[distributed]

    docs = list(yaml.safe_load_all((Path(__file__).resolve().parent.parent / "docs" / "kubernetes-audit-job.yaml")
                                   .read_text()))  # fmt: skip
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    cron = next(d for d in docs if d["kind"] == "CronJob")
    assert cron["spec"]["jobTemplate"]["spec"]["completionMode"] == "Indexed"
    assert cron["spec"]["jobTemplate"]["spec"]["completions"] == int(config["SHARDS"])
    script = tmp_path / "audit.sh"
    script.write_text(config["audit.sh"].replace("/metrics/", f"{tmp_path}/"))
    c, name = s3_bucket.client, s3_bucket.name
    for i in range(5):
        c.put_object(Bucket=name, Key=f"git/m{i}.tar.zst", Body=corpus.good_zst if i else corpus.good_zst[:-1])
    env = {**shim_env(tmp_path), "BUCKET": name, "PREFIX": "git/", "SHARDS": "2", "LEVEL": "standard",
           "QUARANTINE": "tag", "JOB_NAME": "snapcheck-audit-2961"}  # fmt: skip
    codes = []
    for index in ("0", "1"):
        p = subprocess.run(["sh", str(script)], env={**env, "JOB_COMPLETION_INDEX": index}, capture_output=True,
                           text=True, timeout=120)  # fmt: skip
        codes.append(p.returncode)
        assert "Traceback" not in p.stderr, p.stderr
    keys: dict[str, str] = {}
    for index in (0, 1):
        body = c.get_object(Bucket=name, Key=f"audit/runs/snapcheck-audit-2961/results-{index}.jsonl")["Body"].read()
        keys.update({d["key"]: d["verdict"] for d in map(json.loads, body.decode().splitlines())})
    assert keys == {f"git/m{i}.tar.zst": ("sound" if i else "corrupt") for i in range(5)}
    assert sorted(codes) == [0, 1]  # the shard holding the corrupt object exits 1
    tags = c.get_object_tagging(Bucket=name, Key="git/m0.tar.zst")["TagSet"]
    assert {"Key": "snapcheck-status", "Value": "corrupt"} in tags
    assert (tmp_path / "snapcheck-audit.prom").read_text().count("snapcheck_audit_objects{") == 4


# --------------------------------------------------------------------------------------------------
# the storage goes away


def test_network_cut_mid_object_is_incomplete_not_corrupt(s3_bucket: S3Bucket, s3_proxy: CuttingProxy,
                                                          corpus: Corpus) -> None:  # fmt: skip
    c = s3_bucket.client
    c.put_object(Bucket=s3_bucket.name, Key="snap.tar.zst", Body=corpus.snap, Metadata=corpus.snap_meta)
    # the first GET breaks halfway through the body; every resume breaks before its body starts
    match = f"GET /{s3_bucket.name}/snap.tar.zst".encode()
    s3_proxy.cut(match, after=len(corpus.snap) // 2, times=1)
    s3_proxy.cut(match, after=100, times=50)
    r = CliRunner().invoke(audit_command, [s3_bucket.url(), "-j", "1", "--endpoint-url", s3_proxy.endpoint,
                                           "-o", "-", "--quarantine", "tag"])  # fmt: skip
    assert r.exit_code == 3, r.output
    [line] = [json.loads(x) for x in r.output.splitlines() if x.startswith("{")]
    assert line["verdict"] == "incomplete" and line["layout"] == "snapcheck" and line["quarantine"] is None
    assert "snapcheckSha256Mismatch" not in line["codes"]


def test_server_stopped_mid_sweep(corpus: Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from s3server import start_server

    server = start_server(tmp_path / "private")
    try:
        aws_env(monkeypatch, server, tmp_path, attempts=1)
        name = server.new_bucket()
        put, wait = s3_put(server.client(read_timeout=3), name)
        for i in range(36):
            put(f"snap-{i:02d}.tar.zst", corpus.good_zst, {})
        wait()
        listing = tmp_path / "listing.jsonl"
        assert CliRunner().invoke(audit_command, [f"s3://{name}/", "--list-only", "-o", str(listing)]).exit_code == 0
        results: list[AuditResult] = []
        gen = audit(f"s3://{name}/", options=AuditOptions(jobs=2), storage=S3Storage(name, page_size=6))
        with pytest.raises(SourceError):
            for r in gen:
                results.append(r)
                if len(results) == 5:
                    server.stop()
        assert [r.verdict for r in results[:5]] == ["sound"] * 5
        after = [r.verdict for r in results[5:]]
        assert "incomplete" in after and set(after) <= {"sound", "incomplete"}  # never corrupt
        assert len(results) < 36  # the listing broke too, and that is reported (raised), not hidden
        # the CLI against the stopped server: every object of the listing could not be read -> exit 3
        out = tmp_path / "r.jsonl"
        r = CliRunner().invoke(audit_command, [f"s3://{name}/", "--listing", str(listing), "-o", str(out), "-j", "4"])
        assert r.exit_code == 3, r.output
        lines = [json.loads(x) for x in out.read_text().splitlines()]
        assert len(lines) == 36 and {d["verdict"] for d in lines} == {"incomplete"}
        r = CliRunner().invoke(audit_command, [f"s3://{name}/"])
        assert r.exit_code == 3 and "sweep not finished" in r.output
    finally:
        server.stop()


# --------------------------------------------------------------------------------------------------
# a local directory standing in for a bucket


def test_local_bucket(corpus: Corpus, tmp_path: Path) -> None:
    root = tmp_path / "bucket"
    st = LocalStorage(root)
    put = local_put(st)
    want: dict[str, Expect] = {}
    put("snap/good.tar.zst", corpus.snap, corpus.snap_meta)
    want["snap/good.tar.zst"] = expect("sound", "snapcheck")
    put("snap/bad-sha.tar.zst", corpus.snap, {**corpus.snap_meta, "snapcheck-sha256": "f" * 64})
    want["snap/bad-sha.tar.zst"] = expect("corrupt", "snapcheck", "snapcheckSha256Mismatch")
    put("m/cut.tar.zst", corpus.good_zst[:-9], {})
    want["m/cut.tar.zst"] = expect("corrupt", "tar", "zstdTruncated", exact=False)
    put("m/readme.md", b"# not an archive\n", {})
    want["m/readme.md"] = expect("skipped", "other", "auditNotAnArchive")
    put("m/all.bundle", corpus.bundle, {})
    want["m/all.bundle"] = expect("sound", "bundle")
    k = cachew_entry(put, "git", "https://github.com/org/a.mirror-snapshot", corpus.good_zst)
    want[k], want[k + ".meta"] = expect("sound", "cachew-mirror"), expect("skipped", "cachew-companion")
    k = cachew_entry(put, "git", "https://github.com/org/b.mirror-snapshot", corpus.good_zst, companion="mismatch")
    want[k], want[k + ".meta"] = expect("corrupt", "cachew-mirror", "cachewTagMismatch"), expect("skipped", "cachew-companion")
    k = cachew_entry(put, "git", "https://github.com/org/c.mirror-snapshot", corpus.good_zst, companion="missing")
    want[k] = expect("sound", "cachew-mirror", "cachewCompanionMissing")
    k = cachew_entry(put, "git", "https://github.com/org/ws.snapshot", corpus.ws_zst, filename="base.tar.zst",
                     commit=corpus.ws_head)  # fmt: skip
    want[k], want[k + ".meta"] = expect("sound", "cachew-workstation"), expect("skipped", "cachew-companion")
    k = cachew_entry(put, "git", "https://github.com/org/ws2.snapshot", corpus.ws_zst, filename="base.tar.zst",
                     commit=corpus.head[::-1])  # fmt: skip
    want[k] = expect("corrupt", "cachew-workstation", "cachewSnapshotCommitMismatch")
    want[k + ".meta"] = expect("skipped", "cachew-companion")
    results = list(audit(str(root), options=AuditOptions(jobs=3, now=LATER)))
    check(results, want)
    # within cachew's grace (judged now) a tag mismatch is a write in progress, not damage
    now = {r.key: r for r in audit(str(root), options=AuditOptions(jobs=2))}
    kb = cachew_key("git", "https://github.com/org/b.mirror-snapshot")
    assert now[kb].verdict == "sound" and [f.severity for f in now[kb].findings] == [Severity.INFO]
    # CLI: resume into another file carries the earlier sound results forward, marked resumed
    res1, res2 = tmp_path / "r1.jsonl", tmp_path / "r2.jsonl"
    r = CliRunner().invoke(audit_command, [str(root), "-o", str(res1), "-q"])
    assert r.exit_code == 1, r.output
    r = CliRunner().invoke(audit_command, [str(root), "--resume", str(res1), "-o", str(res2), "-q"])
    assert r.exit_code == 1, r.output
    first = {d["key"]: d for d in map(json.loads, res1.read_text().splitlines())}
    second = {d["key"]: d for d in map(json.loads, res2.read_text().splitlines())}
    assert set(second) == set(first)
    for key, d in second.items():
        assert d["resumed"] == (first[key]["verdict"] in ("sound", "skipped"))
        assert d["verdict"] == first[key]["verdict"]
    # quarantine by moving, in a local bucket
    r = CliRunner().invoke(audit_command, [str(root), "--quarantine", "move:quarantine", "-q"])
    assert r.exit_code == 1, r.output
    assert st.head("m/cut.tar.zst") is None and st.head("quarantine/m/cut.tar.zst") is not None
    assert st.head("quarantine/snap/bad-sha.tar.zst").metadata["snapcheck-sha256"] == "f" * 64
    kw = cachew_key("git", "https://github.com/org/ws2.snapshot")  # moved with its companion
    assert st.head(f"quarantine/{kw}.meta") is not None and st.head(f"quarantine/{kw}") is not None
    assert st.head(kw) is None and st.head(kw + ".meta") is None
    assert st.head(kb) is not None  # within cachew's grace (real clock): not damage, not moved
    r = CliRunner().invoke(audit_command, [str(root), "--quarantine", "move:quarantine", "-q"])
    assert r.exit_code == 0, r.output  # what is left is sound


def test_since(tmp_path: Path, corpus: Corpus) -> None:
    """--since: only what changed recently (a local bucket's last_modified is the file's mtime)."""
    st = LocalStorage(tmp_path / "b")
    for key in ("old/a.tar.zst", "old/b.txt", "new/c.tar.zst", "new/d.txt"):
        local_put(st)(key, corpus.good_zst if key.endswith("zst") else b"text", {})
    old = (datetime.now(UTC) - timedelta(days=10)).timestamp()
    for key in ("old/a.tar.zst", "old/b.txt"):
        os.utime(tmp_path / "b" / key, (old, old))
    recent = list(audit(str(tmp_path / "b"), options=AuditOptions(since=parse_since("2d"))))
    assert {r.key for r in recent} == {"new/c.tar.zst", "new/d.txt"}
    r = CliRunner().invoke(audit_command, [str(tmp_path / "b"), "--since", "20d", "-o", "-", "-q"])
    assert r.exit_code == 0 and r.output.count('"key"') == 4


def test_not_a_snapshot_unless_declared(tmp_path: Path, corpus: Corpus) -> None:
    """The same complete archive of a non-git directory: not judged when nothing says it is a
    snapshot, corrupt when cachew's git namespace or snapcheck's metadata says it is one."""
    st = LocalStorage(tmp_path / "b")
    put = local_put(st)
    put("plain.tar.zst", corpus.other_dir_zst, {})
    k = cachew_entry(put, "git", "https://github.com/org/x.mirror-snapshot", corpus.other_dir_zst)
    put("snap.tar.zst", corpus.other_dir_zst,
        {**corpus.snap_meta, "snapcheck-sha256": hashlib.sha256(corpus.other_dir_zst).hexdigest()})
    by = {r.key: r for r in audit(str(tmp_path / "b"), options=AuditOptions(now=LATER))}
    assert (by["plain.tar.zst"].verdict, by["plain.tar.zst"].codes) == ("skipped", ["auditNotASnapshot"])
    assert by[k].verdict == "corrupt" and "archiveNoRepository" in by[k].codes
    assert by["snap.tar.zst"].verdict == "corrupt" and "archiveNoRepository" in by["snap.tar.zst"].codes


# --------------------------------------------------------------------------------------------------
# options, shards, listings


def test_resolve_shard_from_the_environment() -> None:
    assert resolve_shard("2/5", {}) == (2, 5)
    assert resolve_shard("4", {"JOB_COMPLETION_INDEX": "3"}) == (3, 4)
    assert resolve_shard(None, {"AWS_BATCH_JOB_ARRAY_INDEX": "7", "AWS_BATCH_JOB_ARRAY_SIZE": "10"}) == (7, 10)
    assert resolve_shard("3", {"AWS_BATCH_JOB_ARRAY_INDEX": "1"}) == (1, 3)
    assert resolve_shard(None, {}) is None
    for spec, env in (("5/5", {}), ("x/2", {}), ("4", {}), (None, {"JOB_COMPLETION_INDEX": "0"}),
                      ("2", {"JOB_COMPLETION_INDEX": "2"})):  # fmt: skip
        with pytest.raises(UsageError):
            resolve_shard(spec, env)
    keys = [f"git/{i:02x}/{i:064x}" for i in range(2000)]
    for n in (1, 2, 7):
        parts = [[k for k in keys if in_shard(k, (i, n))] for i in range(n)]
        assert sorted(k for p in parts for k in p) == sorted(keys)
        assert all(abs(len(p) - len(keys) / n) < len(keys) / n * 0.2 for p in parts)  # roughly even


def test_cli_usage_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "b").mkdir()
    r = CliRunner().invoke(audit_command, [str(tmp_path / "b"), "--quarantine", "delete"])
    assert r.exit_code == 2 and "quarantine" in r.output
    r = CliRunner().invoke(audit_command, [str(tmp_path / "b"), "--since", "yesterday-ish"])
    assert r.exit_code == 2
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "1")
    r = CliRunner().invoke(audit_command, [str(tmp_path / "b")])
    assert r.exit_code == 2 and "--shard N" in r.output
    r = CliRunner().invoke(audit_command, [str(tmp_path / "b"), "--shard", "2"])
    assert r.exit_code == 0, r.output  # shard 1 of 2 of an empty bucket: nothing to do, all sound


def test_parse_since() -> None:
    now = datetime(2026, 7, 10, 12, 0, tzinfo=UTC)
    assert parse_since("36h", now) == now - timedelta(hours=36)
    assert parse_since("2w", now) == now - timedelta(days=14)
    assert parse_since("2026-07-01", now) == datetime(2026, 7, 1, tzinfo=UTC)
    assert parse_since("2026-07-01T10:00:00+02:00", now) == datetime(2026, 7, 1, 8, tzinfo=UTC)
    assert parse_since("2026-07-01T10:00:00", now) == datetime(2026, 7, 1, 10, tzinfo=UTC)


def test_listing_round_trip_and_location_check(tmp_path: Path) -> None:
    objs = [ObjectInfo(f"k{i}", i, f'"e{i}"', datetime(2026, 7, 1, tzinfo=UTC) + timedelta(seconds=i)) for i in range(5)]
    path = tmp_path / "l.jsonl"
    with open(path, "w") as f:
        assert write_listing(objs, f, location="s3://b/p/") == 5
    assert list(read_listing(str(path), expect_location="s3://b/p/")) == objs
    with pytest.raises(UsageError):
        list(read_listing(str(path), expect_location="s3://other/"))
    path.write_text('{"key": "a"}\n')
    with pytest.raises(SourceError):
        list(read_listing(str(path)))


def test_options_level_and_results_json_round_trip() -> None:
    opts = AuditOptions(level=Level.QUICK)
    assert opts.verify.level is Level.QUICK and opts.level is Level.QUICK
    assert AuditOptions().level is Level.STANDARD
    with pytest.raises(UsageError):
        AuditOptions(shard=(3, 3))
    r = AuditResult("k", '"e"', 10, "tar", "corrupt", duration=0.5, bytes_read=10)
    assert AuditResult.from_json(json.loads(json.dumps(r.to_json()))) == r
    assert r.bytes_per_s == 20.0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
