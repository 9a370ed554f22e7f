"""Shared fixtures: real git mirrors in every configuration, built once per test session (per xdist
worker) with the real git binary.  Tests copy a mirror (``damaged_copy``) before changing it."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).parent))

pytest_plugins = ["s3server"]  # the real S3 server: s3_server, s3_env, s3_bucket, s3_proxy fixtures

# Hypothesis budgets: bounded in CI (HYPOTHESIS_PROFILE=ci, set by .ci/run), longer on demand.
settings.register_profile("ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

import gitrepos  # noqa: E402

CONFIGS = list(gitrepos.BUILDERS)


@pytest.fixture(scope="session")
def mirrors(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``mirrors(name)`` returns the pristine mirror of configuration *name* (built on first use)."""
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            base = tmp_path_factory.mktemp(f"mirror-{name}")
            built[name] = gitrepos.BUILDERS[name](base)
        return built[name]

    return get


@pytest.fixture
def mirror_copy(mirrors: Callable[[str], Path], tmp_path: Path) -> Callable[[str], Path]:
    """``mirror_copy(name)`` returns a private, writable copy of a pristine mirror, safe to damage."""
    n = 0

    def copy(name: str) -> Path:
        nonlocal n
        n += 1
        return gitrepos.copy_repo(mirrors(name), tmp_path / f"copy{n}-{name}.git")

    return copy
