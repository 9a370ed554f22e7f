"""A reftable-backed mirror end to end through the verifier (git 2.39 cannot write reftables, so the
fixture mirror's refs are moved into a reftable stack written by dulwich, laid out as git 2.45+ does:
`HEAD` is the `refs/heads/.invalid` placeholder, `refs/heads` a file, refs in `reftable/`)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from dulwich.reftable import ReftableRefsContainer

from snapcheck.options import VerifyOptions
from snapcheck.report import Level
from snapcheck.verifier import verify, verify_file

import gitrepos


def to_reftable(repo: Path) -> dict[str, str]:
    refs = dict(line.split(" ", 1)[::-1] for line in
                gitrepos.git("for-each-ref", "--format=%(objectname) %(refname)", cwd=repo).splitlines())
    head = gitrepos.git("symbolic-ref", "HEAD", cwd=repo).strip()
    gitrepos.git("config", "core.repositoryformatversion", "1", cwd=repo)
    gitrepos.git("config", "extensions.refStorage", "reftable", cwd=repo)
    (repo / "packed-refs").unlink()
    shutil.rmtree(repo / "refs")
    (repo / "refs").mkdir()
    (repo / "refs" / "heads").write_text("this repository uses the reftable format\n")
    (repo / "HEAD").write_text("ref: refs/heads/.invalid\n")
    (repo / "reftable").mkdir()
    c = ReftableRefsContainer(str(repo))
    for name, oid in sorted(refs.items()):
        c.set_if_equals(name.encode(), None, oid.encode())
    c.set_symbolic_ref(b"HEAD", head.encode())
    return refs


def test_reftable_mirror_verifies_with_its_refs(mirror_copy: Callable[[str], Path], tmp_path: Path) -> None:
    repo = mirror_copy("gc_bitmaps")
    refs = to_reftable(repo)
    for level in Level:
        report = verify(repo, VerifyOptions(level=level))
        assert report.exit_code == 0, (level, report.findings)
        assert {k: v.hex() for k, v in report.refs.items()} == refs
        assert report.summary.head_target == "refs/heads/main"
        assert any("reftable" in n for n in report.summary.not_checked)
    out = tmp_path / "rt.tar.zst"
    subprocess.run(f"tar -cpf - -C '{repo}' . | zstd -q -c > '{out}'", shell=True, check=True)
    assert verify_file(out).exit_code == 0


def test_reftable_damage(mirror_copy: Callable[[str], Path]) -> None:
    repo = mirror_copy("gc_bitmaps")
    to_reftable(repo)
    tables = sorted((repo / "reftable").glob("*.ref"))
    last = tables[-1]
    last.write_bytes(last.read_bytes()[:-3])
    assert "reftableFooter" in verify(repo).codes()
    last.unlink()
    assert "reftableMissingTable" in verify(repo).codes()
