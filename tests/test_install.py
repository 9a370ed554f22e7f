"""Atomic install: a private sibling temp dir, one rename (or an exchange), leftovers of killed runs
removed and never adopted, the destination untouched whenever anything fails."""

from __future__ import annotations

import errno
import io
import os
import signal
import stat
import subprocess
import sys
import tarfile
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapcheck import install as inst
from snapcheck.errors import UsageError
from snapcheck.extract import ExtractError, SafeExtractor
from snapcheck.install import DestinationExists, InstallError, discard, install, make_temp_sibling
from snapcheck.options import Limits
from snapcheck.report import Finding, Severity
from snapcheck.sources.tar import TarStream

ROOT = Path(__file__).resolve().parent.parent


def fill(d: Path, head: str) -> None:
    (d / "HEAD").write_text(head)
    (d / "objects").mkdir()
    (d / "objects" / "pack").mkdir()
    (d / "objects" / "pack" / "p.pack").write_bytes(b"PACK" + head.encode())


def tree(d: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(d)): (p.read_bytes() if p.is_file() else None) for p in sorted(d.rglob("*"))}


def siblings(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir())


def test_temp_sibling_and_install_into_absent(tmp_path: Path) -> None:
    dest = tmp_path / "org" / "repo.git"  # the parent is created
    temp = make_temp_sibling(dest)
    assert temp.parent == dest.parent and temp.name.startswith(".repo.git.snapcheck-")
    assert len(temp.name) == len(".repo.git.snapcheck-") + 16
    assert stat.S_IMODE(os.lstat(temp).st_mode) == 0o700 and not any(temp.iterdir())
    fill(temp, "ref: refs/heads/main\n")
    install(temp, dest, replace=False)
    assert (dest / "HEAD").read_text() == "ref: refs/heads/main\n"
    assert siblings(dest.parent) == ["repo.git"]


def test_install_refuses_existing_without_replace(tmp_path: Path) -> None:
    dest = tmp_path / "repo.git"
    dest.mkdir()
    fill(dest, "old\n")
    before = tree(dest)
    temp = make_temp_sibling(dest)
    fill(temp, "new\n")
    with pytest.raises(DestinationExists, match="already exists; pass --replace") as info:
        install(temp, dest, replace=False)
    assert info.value.exit_code == 2 and isinstance(info.value, UsageError)
    assert tree(dest) == before
    discard(temp)
    assert siblings(tmp_path) == ["repo.git"]


def test_install_into_an_empty_directory(tmp_path: Path) -> None:
    dest = tmp_path / "repo.git"
    dest.mkdir()
    temp = make_temp_sibling(dest)
    fill(temp, "new\n")
    install(temp, dest, replace=False)
    assert (dest / "HEAD").read_text() == "new\n" and siblings(tmp_path) == ["repo.git"]


@pytest.mark.parametrize("kind", ["symlink", "file", "mount"])
def test_install_refuses_odd_destinations(tmp_path: Path, kind: str) -> None:
    dest = tmp_path / "repo.git"
    real = tmp_path / "real"
    real.mkdir()
    fill(real, "real\n")
    mounted = False
    if kind == "symlink":
        dest.symlink_to(real)
    elif kind == "file":
        dest.write_text("a file\n")
    else:
        dest.mkdir()
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(dest)],
                                 capture_output=True).returncode == 0
        if not mounted:  # no mount permission: a symlink stands in (also refused, same path through the code)
            dest.rmdir()
            dest.symlink_to(real)
    try:
        temp = make_temp_sibling(dest)
        fill(temp, "new\n")
        for replace in (False, True):
            with pytest.raises(DestinationExists):
                install(temp, dest, replace=replace)
        discard(temp)
        assert tree(real) == {"HEAD": b"real\n", "objects": None, "objects/pack": None,
                              "objects/pack/p.pack": b"PACKreal\n"}
        assert sorted(siblings(tmp_path)) == ["real", "repo.git"]
    finally:
        if mounted:
            subprocess.run(["umount", str(dest)], check=True)


def test_replace_swaps_atomically_while_a_reader_reads(tmp_path: Path) -> None:
    dest = tmp_path / "repo.git"
    temp = make_temp_sibling(dest)
    fill(temp, "v0\n")
    install(temp, dest, replace=False)
    stop = threading.Event()
    missing: list[str] = []
    seen: set[str] = set()

    def reader() -> None:
        while not stop.is_set():
            try:
                with open(dest / "HEAD") as f:
                    seen.add(f.read())
            except OSError as e:
                missing.append(repr(e))

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(1, 41):
            temp = make_temp_sibling(dest)
            fill(temp, f"v{i}\n")
            install(temp, dest, replace=True)
    finally:
        stop.set()
        t.join()
    assert not missing, missing[:3]
    assert (dest / "HEAD").read_text() == "v40\n" and len(seen) > 1
    assert siblings(tmp_path) == ["repo.git"]


def _no_exchange(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inst, "_renameat2", lambda fd, old, new, flags: False)


def test_replace_without_renameat2_falls_back_to_two_renames(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_exchange(monkeypatch)
    dest = tmp_path / "repo.git"
    dest.mkdir()
    fill(dest, "old\n")
    temp = make_temp_sibling(dest)
    fill(temp, "new\n")
    install(temp, dest, replace=True)
    assert (dest / "HEAD").read_text() == "new\n" and siblings(tmp_path) == ["repo.git"]
    temp = make_temp_sibling(tmp_path / "fresh")
    fill(temp, "fresh\n")
    install(temp, tmp_path / "fresh", replace=False)
    assert (tmp_path / "fresh" / "HEAD").read_text() == "fresh\n"


def test_fallback_failure_puts_the_old_copy_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_exchange(monkeypatch)
    dest = tmp_path / "repo.git"
    dest.mkdir()
    fill(dest, "old\n")
    before = tree(dest)
    temp = make_temp_sibling(dest)
    fill(temp, "new\n")
    real_rename = inst._rename
    calls: list[tuple[str, str]] = []

    def flaky(fd: int, old: str, new: str) -> None:
        calls.append((old, new))
        if len(calls) == 2:
            raise OSError(errno.EIO, "Input/output error")
        real_rename(fd, old, new)

    monkeypatch.setattr(inst, "_rename", flaky)
    with pytest.raises(InstallError, match="is unchanged") as info:
        install(temp, dest, replace=True)
    assert info.value.exit_code == 3
    assert calls[0][0] == "repo.git" and ".repo.git.snapcheck-old-" in calls[0][1] and calls[2][1] == "repo.git"
    assert tree(dest) == before
    discard(temp)
    assert siblings(tmp_path) == ["repo.git"]


def test_exchange_failure_leaves_dest_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(fd: int, old: str, new: str, flags: int) -> bool:
        raise OSError(errno.EIO, "Input/output error")

    dest = tmp_path / "repo.git"
    dest.mkdir()
    fill(dest, "old\n")
    before = tree(dest)
    temp = make_temp_sibling(dest)
    fill(temp, "new\n")
    monkeypatch.setattr(inst, "_renameat2", broken)
    with pytest.raises(InstallError, match="Input/output error") as info:
        install(temp, dest, replace=True)
    assert info.value.exit_code == 3 and not isinstance(info.value, DestinationExists)
    assert tree(dest) == before
    discard(temp)
    assert siblings(tmp_path) == ["repo.git"]


_KILLED_CHILD = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from snapcheck.install import make_temp_sibling
    temp = make_temp_sibling(Path(sys.argv[1]))
    (temp / "HEAD").write_text("ref: refs/heads/main\\n")
    (temp / "objects").mkdir()
    (temp / "objects" / "half.pack").write_bytes(b"PACK" + b"\\0" * 1000)
    os.chmod(temp / "objects", 0o555)
    print(temp, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_leftovers_of_a_killed_run_are_removed_never_adopted(tmp_path: Path) -> None:
    dest = tmp_path / "repo.git"
    res = subprocess.run([sys.executable, "-c", _KILLED_CHILD, str(dest)], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == -signal.SIGKILL, res.stderr
    leftover = Path(res.stdout.strip())
    assert (leftover / "HEAD").exists() and not dest.exists()
    # things that must NOT be touched: other names, wrong patterns, a symlink, a file, another owner
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "keep").write_text("keep")
    keep = {
        ".repo.git.snapcheck-xyz": "dir", ".repo.git.snapcheck-0123456789abcde": "dir",
        ".repo.git.snapcheck-0123456789ABCDEF": "dir", ".other.snapcheck-0123456789abcdef": "dir",
        "repo.git.snapcheck-0123456789abcdef": "dir", ".repo.git.snapcheck-0123456789abcdef0": "dir",
        ".repo.git.snapcheck-1111111111111111": "symlink", ".repo.git.snapcheck-2222222222222222": "file",
        ".repo.git.snapcheck-3333333333333333": "foreign",
    }
    for name, kind in keep.items():
        p = tmp_path / name
        if kind == "symlink":
            p.symlink_to(other)
        elif kind == "file":
            p.write_text("file")
        else:
            p.mkdir()
            (p / "HEAD").write_text("x")
            if kind == "foreign":
                os.chown(p, 12345, 12345)
    temp = make_temp_sibling(dest)
    assert temp != leftover and not os.path.lexists(leftover)
    assert not dest.exists(), "a leftover was adopted as the destination"
    assert sorted(siblings(tmp_path)) == sorted([*keep, "elsewhere", temp.name])
    assert (other / "keep").read_text() == "keep"
    fill(temp, "good\n")
    install(temp, dest, replace=False)
    assert (dest / "HEAD").read_text() == "good\n"


def test_a_live_run_is_not_cleaned_up(tmp_path: Path) -> None:
    dest = tmp_path / "repo.git"
    first = make_temp_sibling(dest)  # this process is still working on it (it holds the lock)
    (first / "HEAD").write_text("in progress")
    second = make_temp_sibling(dest)
    assert (first / "HEAD").read_text() == "in progress" and first != second
    discard(first)
    discard(second)
    assert siblings(tmp_path) == []


def test_a_replace_killed_between_its_renames_is_recovered(tmp_path: Path) -> None:
    dest = tmp_path / "repo.git"
    old = tmp_path / ".repo.git.snapcheck-old-00112233aabbccdd"  # dest moved aside, then the process died
    old.mkdir()
    fill(old, "previous\n")
    half = tmp_path / ".repo.git.snapcheck-0011223344556677"  # the new tree it was about to rename
    half.mkdir()
    fill(half, "new but never installed\n")
    temp = make_temp_sibling(dest)
    assert (dest / "HEAD").read_text() == "previous\n"
    assert sorted(siblings(tmp_path)) == sorted(["repo.git", temp.name])
    discard(temp)


def test_discard(tmp_path: Path) -> None:
    dest = tmp_path / "repo.git"
    temp = make_temp_sibling(dest)
    (temp / "d").mkdir()
    (temp / "d" / "f").write_text("x")
    os.symlink("/etc", temp / "etc")
    os.chmod(temp / "d", 0o500)
    discard(temp)
    assert not temp.exists() and Path("/etc/passwd").exists()
    discard(temp)  # absent: fine
    for bad in (tmp_path, dest, tmp_path / "whatever", tmp_path / ".snapcheck-0123456789abcdef"):
        with pytest.raises(UsageError):
            discard(bad)
    assert tmp_path.exists()
    with pytest.raises(UsageError):
        install(tmp_path / "elsewhere", dest, replace=False)


# ----------------------------------------------------------------------------- the whole restore


def _archive(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def restore(data: bytes, dest: Path, *, replace: bool) -> list[Finding]:
    """What `snapcheck restore` does around the verifier: temp sibling, extract, install or discard."""
    temp = make_temp_sibling(dest)
    findings: list[Finding] = []
    try:
        with SafeExtractor(temp, limits=Limits(), findings=findings) as ex:
            for e in ex.wrap(TarStream(io.BytesIO(data), limits=Limits(), findings=findings, label="t").entries()):
                if e.stream is not None:
                    e.stream.read(100)
            ex.finish()
        if any(f.severity is Severity.ERROR for f in findings):
            discard(temp)
            return findings
        install(temp, dest, replace=replace)
    except BaseException:
        discard(temp)
        raise
    return findings


def _existing(tmp: Path) -> tuple[Path, dict[str, bytes | None]]:
    dest = tmp / "repo.git"
    dest.mkdir()
    fill(dest, "old\n")
    return dest, tree(dest)


def test_restore_round_trip_and_hostile_refusal(tmp_path: Path) -> None:
    dest, before = _existing(tmp_path)
    hostile = _archive({"HEAD": b"new\n", "../escape": b"x"})
    found = restore(hostile, dest, replace=True)
    assert any(f.severity is Severity.ERROR for f in found)
    assert tree(dest) == before and siblings(tmp_path) == ["repo.git"]
    found = restore(_archive({"./HEAD": b"new\n", "./objects/x": b"y"}), dest, replace=True)
    assert not found and (dest / "HEAD").read_text() == "new\n" and siblings(tmp_path) == ["repo.git"]


def _fsize_child() -> str:
    return textwrap.dedent(f"""
        import resource, sys
        sys.path.insert(0, {str(ROOT / 'tests')!r})
        from pathlib import Path
        from test_install import restore, _archive
        from snapcheck.extract import ExtractError
        resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
        try:
            restore(_archive({{"HEAD": b"new\\n", "objects/big.pack": b"P" * 300000}}), Path(sys.argv[1]), replace=True)
        except ExtractError as e:
            print("ExtractError", e.exit_code, e)
    """)


def _disk_full(parent: Path) -> Iterator[bool]:
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(parent)],
                             capture_output=True).returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", str(parent)], check=True)


def test_restore_file_too_large_leaves_dest_untouched(tmp_path: Path) -> None:
    dest, before = _existing(tmp_path)
    res = subprocess.run([sys.executable, "-c", _fsize_child(), str(dest)], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("ExtractError 3 cannot write objects/big.pack"), res.stdout
    assert tree(dest) == before and siblings(tmp_path) == ["repo.git"]


def test_restore_disk_full_leaves_dest_untouched(tmp_path: Path) -> None:
    """A 1 MiB tmpfs holds the destination's parent (root may mount; else the file-size limit stands in)."""
    parent = tmp_path / "fs"
    parent.mkdir()
    for mounted in _disk_full(parent):
        dest, before = _existing(parent)
        if mounted:
            with pytest.raises(ExtractError, match="No space left on device") as info:
                restore(_archive({"HEAD": b"new\n", "objects/big.pack": os.urandom(3 << 20)}), dest, replace=True)
            assert info.value.exit_code == 3
        else:
            res = subprocess.run([sys.executable, "-c", _fsize_child(), str(dest)], capture_output=True, text=True,
                                 env={**os.environ, "PYTHONPATH": str(ROOT)})
            assert res.stdout.startswith("ExtractError 3"), res.stdout + res.stderr
        assert tree(dest) == before and siblings(parent) == ["repo.git"]
