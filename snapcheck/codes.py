"""Import every module that registers finding codes, so the registry is complete."""

from __future__ import annotations

import importlib

PRODUCERS = [
    "snapcheck.report",
    "snapcheck.gitformats.refname",
    "snapcheck.gitformats.packed_refs",
    "snapcheck.gitformats.loose_refs",
    "snapcheck.gitformats.config",
    "snapcheck.gitformats.pack",
    "snapcheck.gitformats.idx",
    "snapcheck.gitformats.rev",
    "snapcheck.gitformats.mtimes",
    "snapcheck.gitformats.bitmap",
    "snapcheck.gitformats.midx",
    "snapcheck.gitformats.commit_graph",
    "snapcheck.gitformats.reftable",
    "snapcheck.gitformats.objects",
    "snapcheck.gitformats.loose_object",
    "snapcheck.checks.objectstore",
    "snapcheck.checks.graph",
    "snapcheck.checks.collector",
    "snapcheck.checks.layout",
    "snapcheck.checks.repository",
    "snapcheck.checks.policy",
    "snapcheck.sources.compression",
    "snapcheck.sources.tar",
    "snapcheck.baseline",
    "snapcheck.extract",
    "snapcheck.manifest",
    "snapcheck.publish",
    "snapcheck.gitformats.bundle",
    "snapcheck.layouts.cachew",
    "snapcheck.audit",
]


def load_all() -> None:
    for name in PRODUCERS:
        importlib.import_module(name)
