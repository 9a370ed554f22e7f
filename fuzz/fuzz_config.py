"""Fuzz target: git config files (snapcheck.gitformats.config).

Run: ``python fuzz/fuzz_config.py [corpus_dir] -max_total_time=N`` (see fuzz/README.md).
"""

from __future__ import annotations

from _harness import check, main

from snapcheck.gitformats.config import parse_config, parse_git_bool, parse_git_int


def TestOneInput(data: bytes) -> None:
    cfg, findings = parse_config(data, "config")
    check(findings)
    for section, sub, key, value in cfg.entries[:200]:
        assert isinstance(section, str) and isinstance(key, str), (section, key)
        assert sub is None or isinstance(sub, str)
        parse_git_bool(value)
        parse_git_int(value)
    cfg.get("core", "bare")
    cfg.get_bool("core", "bare")


if __name__ == "__main__":
    main(TestOneInput)
