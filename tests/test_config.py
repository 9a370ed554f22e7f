"""git config files: the fixture mirrors' configs, every truncation of real and tricky configs, and
damaged ones — each verdict and line number compared with what the real git says."""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapcheck.gitformats.config import GitConfig, parse_config, parse_git_bool, parse_git_int
from snapcheck.report import Finding, Severity

import gitrepos

CONFIGS = list(gitrepos.BUILDERS)

TRICKY = (
    b"# a comment\n"
    b"; another\n"
    b"[core]\n"
    b"\trepositoryformatversion = 0\n"
    b"\tbare = true ; trailing comment\n"
    b'\tquoted = "a b ; not a comment" tail  \n'
    b'[remote "origin"]\n'
    b"\turl = https://example.com/org/repo\n"
    b"\tfetch = +refs/*:refs/*\n"
    b"\tcont = abc\\\n"
    b"def\n"
    b'[Sect.Sub] key = "x\\"y\\\\z\\t"\n'
    b'[a "sub \\"q\\" x"]\n'
    b"\tflag\n"
    b"\tesc = \\n\\b\n"
    b"[b]\n"
    b"\tKey-2=  spaced   value  \n"
)


def git_config_list(path: Path) -> tuple[int, list[str], int | None]:
    """(exit code, entries as 'name=value' / 'name', the line git's fatal error names)."""
    res = subprocess.run(["git", "config", "--file", str(path), "--list", "-z"], capture_output=True,
                         env=gitrepos.GIT_ENV)
    err = res.stderr.decode(errors="replace")
    m = re.search(r"fatal: bad config line (\d+) in file ", err)
    items = []
    for item in res.stdout.decode("utf-8", "surrogateescape").split("\0"):
        if item:
            name, sep, value = item.partition("\n")
            items.append(f"{name}={value}" if sep else name)
    return res.returncode, items, int(m.group(1)) if m else None


def ours(cfg: GitConfig) -> list[str]:
    out = []
    for section, sub, key, value in cfg.entries:
        name = f"{section}.{sub}.{key}" if sub is not None else f"{section}.{key}"
        out.append(f"{name}={value}" if value is not None else name)
    return out


def our_line(fs: list[Finding]) -> int | None:
    for f in fs:
        m = re.search(r"git: fatal: bad config line (\d+) in file ", f.message)
        if m:
            return int(m.group(1))
    return None


def errors(fs: list[Finding]) -> set[str]:
    return {f.code for f in fs if f.severity is Severity.ERROR}


def agree(tmp: Path, data: bytes) -> tuple[GitConfig, list[Finding], int]:
    """Parse *data* and check the verdict, the line and the entries against ``git config --list``."""
    path = tmp / "config"
    path.write_bytes(data)
    rc, items, line = git_config_list(path)
    cfg, fs = parse_config(data, "config")
    assert rc in (0, 128), rc
    assert (rc == 128) == (not cfg.complete), (data[-40:], rc, fs)
    if rc == 128:
        assert our_line(fs) == line, (data[-40:], line, fs)
        assert any(f"git: fatal: bad config line {line} in file ./config" in f.message for f in fs)
    elif b"\0" not in data:  # (with a NUL git's C strings mangle names; we flag any NUL as an error)
        # git lists keys outside a section too (after "error: key does not contain a section"); and
        # git < 2.45 turned each unquoted TAB/CR inside a value into a space (fixed by f0b8944430, which
        # is what this parser follows), so the local git 2.39 is compared modulo that
        squash = str.maketrans("\t\r", "  ")
        theirs = [i.translate(squash) for i in items if "." in i.split("=", 1)[0]]
        assert theirs == [e.translate(squash) for e in ours(cfg)], (items, ours(cfg))
    return cfg, fs, rc


@pytest.mark.parametrize("config", CONFIGS)
def test_fixture_configs_are_clean(config: str, mirrors: Callable[[str], Path]) -> None:
    path = mirrors(config) / "config"
    cfg, fs = parse_config(path.read_bytes())
    assert fs == []
    rc, items, _ = git_config_list(path)
    assert rc == 0 and ours(cfg) == items
    assert cfg.get_bool("core", "bare") is True
    assert cfg.get("remote", "url", "origin") == "https://example.com/org/repo"
    if config == "sha256":
        assert cfg.get("extensions", "objectformat") == "sha256"


@pytest.mark.parametrize("which", ["fixture", "tricky"])
def test_every_truncation_agrees_with_git(which: str, mirrors: Callable[[str], Path], tmp_path: Path) -> None:
    """Cut anywhere: git's verdict (dies or not), the line it names, and the entries it reads are ours."""
    data = (mirrors("gc_bitmaps") / "config").read_bytes() if which == "fixture" else TRICKY
    died = 0
    for cut in range(len(data) + 1):
        _, _, rc = agree(tmp_path, data[:cut])
        died += rc == 128
    assert died > 3


CASES: list[tuple[str, bytes, set[str], bool]] = [
    # (what, file, exact error codes, git dies)
    ("cut section header", b"[core]\n\tbare = true\n[remo", {"configCutSectionHeader"}, True),
    ("cut subsection", b'[core]\n\tbare = true\n[remote "ori', {"configCutSectionHeader"}, True),
    ("cut before ]", b'[core]\n\tbare = true\n[remote "origin"', {"configCutSectionHeader"}, True),
    ("unterminated quote at EOF", b'[core]\n\tbare = true\n\turl = "https://ex', {"configUnterminatedQuote"}, True),
    ("unterminated quote mid-file", b'[core]\n\tx = "abc\n\tbare = true\n', {"configUnterminatedQuote"}, True),
    ("trailing backslash at EOF", b"[core]\n\tbare = true\n\tx = abc\\", {"configTrailingBackslash"}, False),
    ("bad escape", b"[core]\n\tx = a\\qb\n", {"configBadEscape"}, True),
    ("underscore in key", b"[core]\n\tba_re = true\n", {"configBadKey"}, True),
    ("key starts with a digit", b"[core]\n\t1bare = true\n", {"configBadKey"}, True),
    ("key then junk", b"[core]\n\tbare ; true\n", {"configBadKey"}, True),
    ("bad section char", b"[co_re]\n\tbare = true\n", {"configBadSection"}, True),
    ("empty section", b"[]\n\tbare = true\n", {"configBadSection"}, True),
    ("subsection not quoted", b"[remote origin]\n\turl = x\n", {"configBadSection"}, True),
    ("subsection across lines", b'[remote "ori\ngin"]\n\turl = x\n', {"configBadSection"}, True),
    ("junk after subsection", b'[remote "origin"x\n\turl = x\n', {"configBadSection"}, True),
    ("zero-padded tail", b"[core]\n\tbare = true\n" + b"\0" * 64, {"configNulByte"}, True),
    ("NUL inside a value", b"[core]\n\tbare = tr\0ue\n", {"configNulByte"}, False),
    ("NUL inside a comment", b"[core] # x\0y\n\tbare = true\n", {"configNulByte"}, False),
    ("key before any section", b"bare = true\n[core]\n\tbare = true\n", {"configKeyWithoutSection"}, False),
    ("partial byte order mark", b"\xef\xbb[core]\n\tbare = true\n", {"configBadLine"}, True),
    ("stray character", b"[core]\n\tbare = true\n!\n", {"configBadLine"}, True),
    ("byte order mark", b"\xef\xbb\xbf[core]\n\tbare = true\n", set(), False),
    ("CRLF line ends", b"[core]\r\n\tbare = true\r\n", set(), False),
    ("missing final newline", b"[core]\n\tbare = true", set(), False),
    ("empty file", b"", set(), False),
    ("section and key on one line", b"[core] bare = true\n", set(), False),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_damage(case: tuple[str, bytes, set[str], bool], tmp_path: Path) -> None:
    _, data, expected, dies = case
    cfg, fs, rc = agree(tmp_path, data)
    assert errors(fs) == expected, fs
    assert (rc == 128) == dies
    if not dies and "bare" in data.decode(errors="replace"):
        assert cfg.has("core", "bare")


def test_messages() -> None:
    cfg, fs = parse_config(b"[core]\n\tbare = true\n\tx = 1\n[remo")
    (f,) = fs
    assert f.code == "configCutSectionHeader" and f.path == "config"
    # like git, the end of the file counts one more line
    assert f.message.endswith("git: fatal: bad config line 5 in file ./config")
    assert cfg.entries == [("core", None, "bare", "true"), ("core", None, "x", "1")] and not cfg.complete


def test_lookup_rules() -> None:
    cfg, fs = parse_config(
        b"[Core]\n\tBare = false\n[core]\n\tbare\n"
        b'[remote "Origin"]\n\turl = a\n\turl = b\n[remote.Old]\n\turl = c\n'
        b'[branch "main"]\n\tmerge\n\trebase = 0x10\n\tflag = \n\tbad = maybe\n'
    )
    assert fs == []
    assert cfg.get_bool("core", "bare") is True and cfg.get("CORE", "BARE") is None  # bare key: no value
    assert cfg.get_all("core", "bare") == ["false", None]
    assert cfg.get("remote", "url", "Origin") == "b" and cfg.get("remote", "url", "origin") is None
    assert cfg.get_all("remote", "url", "Origin") == ["a", "b"]
    assert cfg.get("remote", "url", "old") == "c"  # the old [section.sub] form is lower-cased
    assert cfg.subsections("remote") == ["Origin", "old"]
    assert cfg.get_bool("branch", "rebase", "main") is True
    assert cfg.get_bool("branch", "flag", "main") is False
    assert cfg.get_bool("branch", "bad", "main") is None and cfg.has("branch", "bad", "main")
    assert cfg.get_bool("branch", "absent", "main") is None and not cfg.has("branch", "absent", "main")


BOOLS = ["true", "TRUE", "yes", "On", "false", "no", "OFF", "", "0", "1", "2", "-1", "0x10", "0x", "010", "08",
         "1k", "1K", "2g", "3m", "1kb", " 5", "5 ", "+7", "2147483647", "2147483648", "3g",
         "-2147483647", "99999999999999999999", "maybe", "truex", "0xg"]


def test_bools_agree_with_git() -> None:
    """parse_git_bool against ``git config --type=bool`` for a spread of spellings.  (INT_MIN is left
    out: git 2.39's git_parse_signed rejected -2147483648, current git -- the model -- accepts it.)"""
    assert parse_git_bool("-2147483648") is True and parse_git_bool("-2147483649") is None
    for value in [*BOOLS, None]:
        spec = "t.v" if value is None else f"t.v={value}"
        res = subprocess.run(["git", "-c", spec, "config", "--type=bool", "t.v"], capture_output=True,
                             env=gitrepos.GIT_ENV)
        git = {b"true\n": True, b"false\n": False}.get(res.stdout) if res.returncode == 0 else None
        assert parse_git_bool(value) is git, (value, res.stdout, res.stderr)


def test_ints() -> None:
    assert parse_git_int("1k") == 1024 and parse_git_int("-0x10") == -16 and parse_git_int("017") == 15
    assert parse_git_int("2g") is None and parse_git_int("") is None and parse_git_int(None) is None


# -- properties ---------------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    cfg, fs = parse_config(data)
    assert isinstance(cfg, GitConfig) and all(isinstance(f, Finding) for f in fs)
    if not cfg.complete:
        assert errors(fs)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, len(TRICKY) - 1), st.integers(0, 255), st.sampled_from(["replace", "insert", "delete"]))
def test_mutations_agree_with_git(pos: int, byte: int, how: str) -> None:
    """Any one-byte change of a tricky config: git and we agree on dying, the line and the entries."""
    if how == "replace":
        data = TRICKY[:pos] + bytes([byte]) + TRICKY[pos + 1:]
    elif how == "insert":
        data = TRICKY[:pos] + bytes([byte]) + TRICKY[pos:]
    else:
        data = TRICKY[:pos] + TRICKY[pos + 1:]
    with tempfile.TemporaryDirectory() as d:
        agree(Path(d), data)
