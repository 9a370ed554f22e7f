"""Loose refs (``refs/...`` files) and ``HEAD``.

Format (git: refs/files-backend.c ``read_ref_internal``, ``parse_loose_ref_contents``; written by
``write_ref_to_lockfile`` as ``<hex>\\n`` and by ``create_symref`` as ``ref: <target>\\n``).

How git reads one (and what this module reports):

1. git reads the file as a C string (a NUL ends it) and strips trailing whitespace (SP, TAB, CR,
   LF).  A NUL tail (GNU tar's padding of a file that shrank) is therefore ignored by git:
   reported as a warning; other bytes after a NUL are an error (git silently ignores them).
2. ``ref:`` + optional whitespace + target is a symbolic ref.  git fsck (``refs_fsck_symref``):
   a target that is not a valid full ref name is badReferentName (error), one outside ``refs/`` is
   symrefTargetIsNotARef (info; reported here as a warning unless it is a root ref like HEAD).
3. Otherwise exactly hexsz hex digits (git accepts upper case, never writes it) followed by the end
   or a whitespace byte.  Anything else, including an empty file and a short (truncated) id, is a
   broken ref: ``git for-each-ref`` says "warning: ignoring broken ref <name>", ``git fsck``
   "invalid sha1 pointer" / badRefContent.  The null id is badRefOid.
4. git fsck's newline rules: no final LF is refMissingNewline (info) — reported as info for an
   id (the id is whole) and as a warning for a symref (a symref cut by a tar looks exactly like
   that); more whitespace than one LF is trailingRefContent (info); other text after the id and a
   space is trailingRefContent too (git reads the ref) — reported as a warning.
5. HEAD (git: setup.c ``validate_headref``): a repository needs HEAD to be ``ref:`` + whitespace +
   ``refs/...`` or a hex object id, else git says "fatal: not a git repository".  git fsck's
   badHeadTarget (error) flags a symref outside ``refs/heads/``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..report import Finding, Severity, finding, register
from .common import Buffer, HashAlgo, algo_for_hexlen
from .refname import check_refname, is_root_ref

__all__ = ["LooseRef", "parse_head", "parse_loose_ref"]

_CODES: list[tuple[str, Severity, str, str]] = [
    ("TooLarge", Severity.ERROR,
     "The file is larger than the configured limit for a ref file; not parsed.",
     "git would read it (a ref file is 41/65 bytes or a short symref)."),
    ("Empty", Severity.ERROR,
     "The file is empty: the ref has no value.",
     "warning: ignoring broken ref <name> (the ref is invisible); git fsck: invalid sha1 pointer / badRefContent."),
    ("Truncated", Severity.ERROR,
     "The object id is cut short: fewer hex digits than the hash needs.",
     "warning: ignoring broken ref <name>; git fsck: badRefContent."),
    ("BadContent", Severity.ERROR,
     "The content is neither '<hex oid>' nor 'ref: <target>'.",
     "warning: ignoring broken ref <name>; git fsck: badRefContent."),
    ("NullOid", Severity.ERROR,
     "The ref holds the null object id (all zeros).",
     "warning: ignoring broken ref <name>; git fsck: badRefOid."),
    ("OidUpperCase", Severity.WARNING,
     "The object id is in upper-case hex: git reads it, but never writes it.",
     "git reads the ref."),
    ("MissingNewline", Severity.INFO,
     "The object id is not followed by LF (git always writes one).",
     "git reads the ref; git fsck: refMissingNewline (info)."),
    ("SymrefMissingNewline", Severity.WARNING,
     "The symbolic ref has no final LF: git accepts it, but a symref cut short looks exactly like this.",
     "git reads the ref; git fsck: refMissingNewline (info)."),
    ("TrailingWhitespace", Severity.INFO,
     "More whitespace than the single final LF.",
     "git reads the ref; git fsck: trailingRefContent (info)."),
    ("TrailingGarbage", Severity.WARNING,
     "Text after the object id (and a space): git reads the id and ignores the rest.",
     "git reads the ref; git fsck: trailingRefContent (info)."),
    ("ZeroPadded", Severity.WARNING,
     "The content is followed by NUL bytes (GNU tar pads a file that shrank while it was read).",
     "git stops reading at the NUL and uses the content before it."),
    ("NulBytes", Severity.ERROR,
     "A NUL byte followed by other bytes: git silently ignores everything after the NUL.",
     "git reads only the part before the NUL."),
    ("BadSymrefTarget", Severity.ERROR,
     "The symbolic ref points to a name that is not a valid ref name.",
     "warning: ignoring dangling symref / broken ref; git fsck: badReferentName."),
    ("SymrefOutsideRefs", Severity.WARNING,
     "The symbolic ref points outside refs/.",
     "git fsck: symrefTargetIsNotARef (info)."),
]

register("loose-refs", *((f"looseRef{c}", s, m, g) for c, s, m, g in _CODES),
         ("looseRefBadName", Severity.ERROR,
          "The file's path is not a valid ref name.",
          "warning: ignoring ref with broken name <name>; git fsck: badRefName."))
register(
    "head",
    *((f"head{c}", s, m, g) for c, s, m, g in _CODES if c not in ("BadSymrefTarget", "SymrefOutsideRefs")),
    ("headNotRef", Severity.ERROR,
     "HEAD is a symbolic ref to something outside refs/.",
     "fatal: not a git repository (or any of the parent directories) (validate_headref)."),
    ("headBadTarget", Severity.ERROR,
     "HEAD points into refs/ but not to a branch (refs/heads/...).",
     "git fsck: badHeadTarget (error)."),
    ("headBadTargetName", Severity.ERROR,
     "HEAD points to a name that is not a valid ref name.",
     "fatal: Needed a single revision (HEAD does not resolve); git fsck: badReferentName."),
    ("headDetached", Severity.INFO,
     "HEAD holds an object id (detached) instead of naming a branch.",
     "git works; a clone checks out that commit detached."),
)

_SPACE = b" \t\r\n"  # git's isspace (sane_ctype GIT_SPACE)
_HEX_RUN = re.compile(rb"[0-9a-fA-F]*")
_UPPER = re.compile(rb"[A-F]")
_NOT_REPO = "fatal: not a git repository (or any of the parent directories)"


@dataclass(frozen=True)
class LooseRef:
    name: str
    oid: bytes | None  # raw id for a regular ref
    symref: str | None  # target name for a symbolic ref


@dataclass
class _Parsed:
    """What git reads from a ref file, and what it would complain about."""

    oid: bytes | None = None
    target: bytes | None = None
    problems: list[tuple[str, str]] | None = None  # (code suffix, message)

    def add(self, code: str, message: str) -> None:
        if self.problems is None:
            self.problems = []
        self.problems.append((code, message))


def _show(b: bytes, limit: int = 80) -> str:
    text = repr(bytes(b[:limit]))[1:]
    return text[:-1] + "...'" if len(b) > limit else text


def _parse(buf: bytes, algo: HashAlgo | None) -> _Parsed:
    """Read *buf* like git: its reader (``read_ref_internal``) strips trailing whitespace from the whole
    file and then parses a C string; its fsck (``files_fsck_refs_content``) parses the C string as it
    is and judges the newline.  So NULs after the content hide it from the reader's strip: an LF before
    them stays part of a symref's target (broken), while an id is still read."""
    out = _Parsed()
    nul = buf.find(b"\0")
    if nul >= 0:
        if buf.count(b"\0", nul) == len(buf) - nul:
            out.add("ZeroPadded", f"{len(buf) - nul} NUL bytes after the content (git stops reading at the first)")
        else:
            out.add("NulBytes", f"a NUL byte at offset {nul} followed by other bytes; git ignores all after the NUL")
    fsck_view = buf[:nul] if nul >= 0 else buf
    trimmed = buf.rstrip(_SPACE)
    tnul = trimmed.find(b"\0")
    view = trimmed[:tnul] if tnul >= 0 else trimmed  # what git's reader parses
    if not view:
        out.add("Empty", "empty file" if not fsck_view else
                ("only whitespace" if nul < 0 else "nothing but whitespace before the NUL bytes"))
        return out

    if view.startswith(b"ref:"):
        target = view[4:].lstrip(_SPACE)
        if not target:
            out.add("BadContent", "'ref:' without a target")
            return out
        out.target = target
        raw = fsck_view[4:].lstrip(_SPACE)  # git fsck's newline rules (files_fsck_symref_target)
        if not raw.endswith(b"\n"):
            out.add("SymrefMissingNewline", f"no LF after the target {_show(raw.rstrip(_SPACE))} (cut short?)")
        elif len(raw) - len(raw.rstrip(_SPACE)) > 1:
            out.add("TrailingWhitespace", "more whitespace than one LF after the target")
        return out

    run = _HEX_RUN.match(view)
    h = run.end() if run else 0
    hexsz = algo.hexsz if algo is not None else None
    if hexsz is None:
        guess = algo_for_hexlen(h)
        hexsz = guess.hexsz if guess is not None else None
    if hexsz is None or h < hexsz:
        want = hexsz or "40 or 64"
        if 0 < h == len(view) and h < (hexsz or 64):
            out.add("Truncated", f"{_show(view)} is {h} hex digits, not {want}")
        else:
            out.add("BadContent", f"{_show(view)} is not a {want}-digit hex object id nor 'ref: <target>'")
        return out
    if len(view) > hexsz and view[hexsz] not in _SPACE:
        out.add("BadContent", f"{_show(view)} is not a {hexsz}-digit hex object id (more follows it)")
        return out
    oid_hex = view[:hexsz]
    out.oid = bytes.fromhex(oid_hex.decode())
    if _UPPER.search(oid_hex):
        out.add("OidUpperCase", "object id in upper-case hex (git writes lower case)")
    if not any(out.oid):
        out.add("NullOid", "the null object id")
    after = fsck_view[hexsz:]
    if not after:
        out.add("MissingNewline", "no LF after the object id")
    elif after != b"\n":
        if after.strip(_SPACE):
            out.add("TrailingGarbage", f"text after the object id: {_show(after.strip(_SPACE))}")
        else:
            out.add("TrailingWhitespace", "more whitespace than one LF after the object id")
    return out


_BROKEN = frozenset({"Empty", "Truncated", "BadContent", "NullOid"})


def parse_loose_ref(
    data: Buffer, refname: str, algo: HashAlgo | None, path: str, *, max_size: int = 65536
) -> tuple[LooseRef | None, list[Finding]]:
    """Parse one loose ref file; *refname* is its name (``refs/heads/main``).  Returns ``None`` for the
    ref when git would ignore it as broken.  Never raises on any input."""
    buf = data if isinstance(data, bytes) else bytes(data)
    findings: list[Finding] = []
    name_b = refname.encode("utf-8", "surrogateescape")
    reason = check_refname(name_b)
    usable_name = reason is None or is_root_ref(name_b)
    if not usable_name:
        findings.append(finding("looseRefBadName", path,
                                f"{path}: invalid ref name {refname!r} ({reason}); "
                                f"git: warning: ignoring ref with broken name {refname}"))
    if len(buf) > max_size:
        findings.append(finding("looseRefTooLarge", path,
                                f"{path}: {len(buf)} bytes, more than the limit of {max_size} for a ref file"))
        return None, findings
    p = _parse(buf, algo)
    broken = False
    for code, message in p.problems or []:
        if code in _BROKEN:
            broken = True
            git = f"git: warning: ignoring broken ref {refname}"
        else:
            git = ""
        findings.append(finding(f"looseRef{code}", path, f"{path}: {message}" + (f"; {git}" if git else "")))
    if p.target is not None:
        target = p.target
        t_reason = check_refname(target)
        tname = target.decode("utf-8", "surrogateescape")
        if t_reason is not None and not is_root_ref(target):
            broken = True
            findings.append(finding("looseRefBadSymrefTarget", path,
                                    f"{path}: symbolic ref to {_show(target)}, not a valid ref name ({t_reason}); "
                                    f"git: warning: ignoring broken ref {refname}"))
        elif not target.startswith((b"refs/", b"worktrees/")) and not is_root_ref(target):
            findings.append(finding("looseRefSymrefOutsideRefs", path,
                                    f"{path}: symbolic ref to {tname!r}, outside refs/"))
        if broken or not usable_name:
            return None, findings
        return LooseRef(refname, None, tname), findings
    if broken or p.oid is None or not usable_name:
        return None, findings
    return LooseRef(refname, p.oid, None), findings


def parse_head(data: Buffer, algo: HashAlgo | None, path: str = "HEAD") -> tuple[LooseRef | None, list[Finding]]:
    """Parse ``HEAD``: a symbolic ref into ``refs/`` (a branch, for git fsck) or a detached object id.
    Returns ``None`` when HEAD does not resolve to a name or an id.  Never raises on any input."""
    buf = data if isinstance(data, bytes) else bytes(data)
    findings: list[Finding] = []
    if len(buf) > 65536:
        findings.append(finding("headTooLarge", path, f"{path}: {len(buf)} bytes; a HEAD file is a single short line"))
        return None, findings
    p = _parse(buf, algo)
    # git's validate_headref looks only at the raw start of the file: 'ref:' + whitespace + 'refs/',
    # or any hex object id (of either length); anything else is not a repository at all.
    raw = buf.split(b"\0", 1)[0]
    valid_repo = raw.startswith(b"ref:") and raw[4:].lstrip(_SPACE).startswith(b"refs/")
    if not raw.startswith(b"ref:"):
        run = _HEX_RUN.match(raw)
        valid_repo = run is not None and run.end() >= 40
    broken = False
    for code, message in p.problems or []:
        if code in _BROKEN:
            broken = True
            git = _NOT_REPO if not valid_repo else "fatal: Needed a single revision (HEAD does not resolve)"
            message += f"; git: {git}"
        findings.append(finding(f"head{code}", path, f"{path}: {message}"))
    if p.target is not None:
        target = p.target
        tname = target.decode("utf-8", "surrogateescape")
        if not target.startswith(b"refs/"):
            findings.append(finding("headNotRef", path,
                                    f"{path}: symbolic ref to {_show(target)}, outside refs/; git: {_NOT_REPO}"))
            return None, findings
        t_reason = check_refname(target)
        if t_reason is not None:
            findings.append(finding("headBadTargetName", path,
                                    f"{path}: points to {_show(target)}, not a valid ref name ({t_reason}); "
                                    "git: fatal: Needed a single revision"))
            return None, findings
        if not target.startswith(b"refs/heads/"):
            findings.append(finding("headBadTarget", path,
                                    f"{path}: points to {tname!r}, not a branch; git fsck: badHeadTarget: "
                                    f"HEAD points to non-branch '{tname}'"))
        return LooseRef("HEAD", None, tname), findings
    if broken or p.oid is None:
        return None, findings
    findings.append(finding("headDetached", path, f"{path}: detached at {p.oid.hex()}"))
    return LooseRef("HEAD", p.oid, None), findings
