"""Mirror policy: what a snapshot of a *mirror* must have beyond being a valid git repository.

Each rule has a flag to relax it (DESIGN.md "mirror policy"):

- at least one ref (``--allow-empty``): the empty snapshot of the poison cycle has none;
- at least one object (``--allow-empty``);
- HEAD resolves to a commit (``--allow-unborn-head``);
- ``core.bare = true`` (not applied to the ``.git`` of a non-bare clone, nor with ``--allow-non-bare``).
"""

from __future__ import annotations

from ..options import VerifyOptions
from ..report import Finding, Severity, finding, register
from .repository import RepoModel

register(
    "policy",
    ("mirrorNoRefs", Severity.ERROR,
     "The snapshot has no refs at all: the empty mirror of the poison cycle. Relax with --allow-empty.",
     "git: `notice: No default references`; every clone from it is empty."),
    ("mirrorNoObjects", Severity.ERROR,
     "The snapshot has no objects (no pack, no loose object). Relax with --allow-empty.",
     "git works but serves nothing."),
    ("headUnborn", Severity.ERROR,
     "HEAD names a branch that does not exist. Relax with --allow-unborn-head.",
     "git: `notice: HEAD points to an unborn branch (…)`; `git rev-parse --verify HEAD` fails; clones check out nothing."),
    ("headNotCommit", Severity.ERROR,
     "HEAD resolves to an object that is not a commit.",
     "git fsck: `error: HEAD: not a commit`."),
    ("notBare", Severity.ERROR,
     "core.bare is not true: a mirror must be bare. Relax with --allow-non-bare.",
     "git treats the directory as the .git of a work tree; `git fetch` into it behaves differently."),
)


def check_policy(model: RepoModel, options: VerifyOptions, *, embedded_git_dir: bool, head_type: int | None) -> list[Finding]:
    """Mirror rules over a finished model; *head_type* is HEAD's object type when it was read (1 = commit)."""
    out: list[Finding] = []
    if not options.allow_empty:
        if not model.refs:
            out.append(finding("mirrorNoRefs", "packed-refs",
                               "the snapshot has no refs: an empty mirror must not be served or re-uploaded "
                               "(use --allow-empty if this is expected)"))
        if model.object_files == 0:
            out.append(finding("mirrorNoObjects", "objects", "the snapshot has no objects (no pack, no loose object)"))
    head = model.head
    if head is not None:
        if head.symref is not None and model.head_oid is None and not options.allow_unborn_head:
            out.append(finding("headUnborn", "HEAD",
                               f"HEAD points to {head.symref}, which does not exist "
                               f"(git: notice: HEAD points to an unborn branch ({head.symref.removeprefix('refs/heads/')}))"))
        elif model.head_oid is not None and head_type is not None and head_type != 1:
            out.append(finding("headNotCommit", "HEAD", f"HEAD resolves to {model.head_oid.hex()}, which is not a commit "
                                                        "(git fsck: error: HEAD: not a commit)"))
    if not embedded_git_dir and not options.allow_non_bare and model.config is not None and model.bare is not True:
        value = model.config.get("core", "bare")
        out.append(finding("notBare", "config", f"config: core.bare is {value!r}, a mirror must be bare "
                                                "(use --allow-non-bare for a non-bare repository)"))
    return out
