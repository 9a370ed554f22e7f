"""What a directory verify imports: nothing of the archive, cloud or publishing machinery, and at
``quick`` none of the object parsers (start-up is most of a ``quick`` run)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path


def test_directory_verify_imports_no_archive_or_cloud_machinery(mirrors: Callable[[str], Path]) -> None:
    m = str(mirrors("gc_bitmaps"))
    unwanted = ["boto3", "botocore", "zstandard", "snapcheck.sources.s3", "snapcheck.sources.tar",
                "snapcheck.sources.compression", "snapcheck.audit", "snapcheck.publish", "snapcheck.manifest",
                "snapcheck.commands.audit", "snapcheck.formats.json", "snapcheck.formats.junit"]
    quick_only = ["snapcheck.checks.objectstore", "snapcheck.checks.graph", "snapcheck.gitformats.objects"]
    probe = ("import atexit, sys\n"
             "from snapcheck.cli import main\n"
             "atexit.register(lambda: print(' '.join(sorted(sys.modules)), file=sys.stderr))\n"
             "main(sys.argv[1:], prog_name='snapcheck')\n")
    for level, absent in (("quick", unwanted + quick_only), ("standard", unwanted)):
        r = subprocess.run([sys.executable, "-c", probe, "verify", "-q", "--level", level, m],
                           capture_output=True, text=True, timeout=300, check=False)
        assert r.returncode == 0, r.stderr
        loaded = set(r.stderr.split())
        assert "snapcheck.verifier" in loaded and "click" in loaded
        assert not loaded & set(absent), (level, sorted(loaded & set(absent)))
