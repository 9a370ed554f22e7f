"""reftable: ``reftable/tables.list`` and the ``*.ref`` / ``*.log`` tables it names.

Format: git Documentation/technical/reftable.adoc; reader rules from git's reftable/ (table.c
``reftable_table_new``/``parse_footer``, block.c ``reftable_block_init``, record.c, basics.c
``parse_names``). A table is a header (``REFT``, version 1 or 2, u24 block size, u64 min and max
update index, v2: u32 hash id), blocks (ref, ref index, obj, obj index, log, log index), and a
footer (the header again, five section positions, and a CRC-32 of the footer: 68 bytes for
version 1, 72 for version 2). The footer CRC is the format's **only** checksum.

Checked, in order (git's behaviour where git fails):

1. ``tables.list``: every line LF-terminated (``reftableTablesListFormat``; git ≥ 2.45 rejects
   the stack with REFTABLE_FORMAT_ERROR), names are plain file names that git's
   ``table_has_valid_name`` accepts (``reftableTableName``, a warning as in git 2.52 fsck's
   ``badReftableTableName``), no name twice;
2. size ≥ header + footer (``reftableTooSmall``), ``REFT`` (``reftableSignature``), version 1/2
   (``reftableVersion``);
3. footer: at ``size − 68/72``, starts with a copy of the header and its CRC-32 matches
   (``reftableFooter``: a cut anywhere moves the footer, so every truncation is caught here);
4. hash id (v2 ``sha1``/``s256``; v1 is SHA-1) is the repository's (``reftableHashId``),
   min ≤ max update index (``reftableUpdateIndex``);
5. the section positions in the footer are in order, inside the file, and each points at a block
   of its type (``reftableBlock``);
6. ref blocks, walked from the start to the next section: block type and length, zero padding,
   restart table (non-empty, ascending, pointing at record starts whose prefix length is 0)
   (``reftableBlock``); records (``reftableRecord``): varints and lengths within the block,
   prefix no longer than the previous name, value type 0–3, names strictly increasing across the
   whole table; each update index within the header's bounds (``reftableUpdateIndex``); names
   valid ref names (``reftableRefName``; git marks them broken, or dies "refname is dangerous").

**Not checked** (the format has no checksum over them): the contents of ref index, obj, obj index
and log index blocks (only their block type at the footer's positions), log blocks (not
inflated), and whether an obj index or ref index agrees with the ref blocks. Cross-table rules
(every name in ``tables.list`` present) are for the caller, which sees the directory;
:func:`merge_reftables` applies the stack.
"""

from __future__ import annotations

import itertools
import re
import struct
import zlib
from dataclasses import dataclass, field

from ..report import Finding, Severity, finding, register
from .common import SHA1, SHA256, Buffer, HashAlgo
from .refname import check_refname, is_safe_refname

register(
    "reftable",
    ("reftableTablesListFormat", Severity.ERROR,
     "reftable/tables.list has a line without a final newline, a NUL, a name with a '/', or a name "
     "listed twice: it was cut short or is corrupt.",
     "git: REFTABLE_FORMAT_ERROR on reading the stack; every ref command fails."),
    ("reftableTableName", Severity.WARNING,
     "A table in reftable/tables.list is not named <hex>-<hex>-<hex>.ref/.log as git names them.",
     "git >= 2.52 fsck: warning: badReftableTableName: invalid reftable table name"),
    ("reftableTooSmall", Severity.ERROR,
     "The reftable file is shorter than its header and footer: it was cut short.",
     "git: REFTABLE_FORMAT_ERROR; git 2.55 for-each-ref prints nothing (exit 0), fsck: notice: No "
     "default references."),
    ("reftableSignature", Severity.ERROR,
     "The reftable file does not start with 'REFT'.",
     "git: REFTABLE_FORMAT_ERROR; the table (and the stack) cannot be read."),
    ("reftableVersion", Severity.ERROR,
     "The reftable version is neither 1 nor 2.",
     "git: REFTABLE_FORMAT_ERROR"),
    ("reftableFooter", Severity.ERROR,
     "The reftable footer (the last 68/72 bytes) lacks the header copy or fails its CRC-32: the "
     "file was cut short, extended or corrupted.",
     "git: REFTABLE_FORMAT_ERROR; git 2.55 for-each-ref prints nothing (exit 0), refs verify crashes."),
    ("reftableHashId", Severity.ERROR,
     "The reftable hash id is unknown or not the repository's object format.",
     "git: REFTABLE_FORMAT_ERROR (a stack must use one hash)"),
    ("reftableUpdateIndex", Severity.ERROR,
     "A reftable update index is out of order: min > max in the header, or a record outside them.",
     "git's writer refuses such records (REFTABLE_API_ERROR); a reader would order updates wrongly."),
    ("reftableBlock", Severity.ERROR,
     "A reftable block is malformed: wrong type or length, non-zero padding, a bad restart table, "
     "or section positions in the footer that do not match the blocks.",
     "git: REFTABLE_FORMAT_ERROR when it reaches the block."),
    ("reftableRecord", Severity.ERROR,
     "A reftable ref record is malformed or out of order (names must strictly increase).",
     "git: REFTABLE_FORMAT_ERROR when it reaches the record."),
    ("reftableRefName", Severity.ERROR,
     "A reftable record holds an invalid reference name.",
     "git: the ref is broken (REF_ISBROKEN), or fatal: refname is dangerous"),
)

MAGIC = b"REFT"
HASH_IDS = {0x73686131: SHA1, 0x73323536: SHA256}  # 'sha1', 's256'
_VALUE_TYPES = ("deletion", "oid", "oid", "symref")
_TABLE_NAME = re.compile(r"(0x)?[0-9a-fA-F]+-(0x)?[0-9a-fA-F]+-(0x)?[0-9a-fA-F]+\.(ref|log)")


def header_size(version: int) -> int:
    return 24 if version == 1 else 28


def footer_size(version: int) -> int:
    return 68 if version == 1 else 72


@dataclass
class ReftableInfo:
    """One parsed table. ``refs`` maps a name to ``(kind, value)``: ``("oid", raw oid)``,
    ``("symref", target)`` or ``("deletion", None)``; ``peeled`` holds the peeled oid of
    annotated tags (value type 2)."""

    version: int
    min_update_index: int
    max_update_index: int
    refs: dict[str, tuple[str, bytes | str | None]] = field(default_factory=dict)
    peeled: dict[str, bytes] = field(default_factory=dict)
    block_size: int = 0
    algo: HashAlgo = SHA1
    update_index: dict[str, int] = field(default_factory=dict)
    ref_index_position: int = 0
    obj_position: int = 0
    obj_id_len: int = 0
    obj_index_position: int = 0
    log_position: int = 0
    log_index_position: int = 0
    has_logs: bool = False


def parse_tables_list(data: bytes, path: str) -> tuple[list[str], list[Finding]]:
    """Parse ``reftable/tables.list``: table file names, oldest first, each line LF-terminated."""
    findings: list[Finding] = []
    names: list[str] = []
    lines = data.split(b"\n")
    last = lines.pop()
    if last:
        findings.append(finding("reftableTablesListFormat", path,
                                f"{path}: last line {last[:80]!r} has no final newline: the file was cut short. "
                                "git: REFTABLE_FORMAT_ERROR (the ref stack cannot be read)"))
        lines.append(last)
    seen: set[str] = set()
    for i, raw in enumerate(lines):
        if not raw:
            continue  # git skips empty lines
        name = raw.decode("utf-8", "surrogateescape")
        if b"\0" in raw or b"/" in raw or raw in (b".", b".."):
            findings.append(finding("reftableTablesListFormat", path,
                                    f"{path}: line {i + 1} {raw[:80]!r} is not a plain file name"))
            continue
        if name in seen:
            findings.append(finding("reftableTablesListFormat", path,
                                    f"{path}: table {name} is listed twice"))
            continue
        seen.add(name)
        if not _TABLE_NAME.fullmatch(name):
            findings.append(finding("reftableTableName", path,
                                    f"{path}: table {name!r} is not named <min>-<max>-<random>.ref/.log. git fsck: "
                                    "warning: badReftableTableName: invalid reftable table name"))
        names.append(name)
    return names, findings


def _varint(mv: memoryview, pos: int, end: int) -> tuple[int, int] | None:
    """git's reftable varint (the ofs-delta encoding); None when truncated or over 64 bits."""
    if pos >= end:
        return None
    c = mv[pos]
    pos += 1
    val = c & 0x7F
    while c & 0x80:
        val += 1
        if val >> 57:
            return None
        if pos >= end:
            return None
        c = mv[pos]
        pos += 1
        val = (val << 7) | (c & 0x7F)
    return val, pos


def parse_reftable(buf: Buffer, path: str, algo: HashAlgo | None) -> tuple[ReftableInfo | None, list[Finding]]:
    """Parse one reftable file and read its ref records."""
    mv = memoryview(buf).cast("B")
    size = len(mv)
    if size < 5:
        return None, [finding("reftableTooSmall", path,
                              f"{path}: reftable of {size} bytes is shorter than any header and footer: cut short. "
                              "git: REFTABLE_FORMAT_ERROR")]
    if bytes(mv[:4]) != MAGIC:
        return None, [finding("reftableSignature", path,
                              f"{path}: does not start with 'REFT' (found {bytes(mv[:4]).hex()}). "
                              "git: REFTABLE_FORMAT_ERROR")]
    version = mv[4]
    if version not in (1, 2):
        return None, [finding("reftableVersion", path,
                              f"{path}: reftable version {version} is not 1 or 2. git: REFTABLE_FORMAT_ERROR")]
    hsz, fsz = header_size(version), footer_size(version)
    if size < hsz + fsz:
        return None, [finding("reftableTooSmall", path,
                              f"{path}: reftable v{version} of {size} bytes is shorter than its {hsz}-byte header "
                              f"and {fsz}-byte footer: cut short. git: REFTABLE_FORMAT_ERROR")]
    t_size = size - fsz
    footer = bytes(mv[t_size:])
    header = bytes(mv[:hsz])
    if footer[:hsz] != header:
        why = ("does not start with 'REFT'" if footer[:4] != MAGIC
               else "does not repeat the file header")
        return None, [finding("reftableFooter", path,
                              f"{path}: the footer (last {fsz} bytes) {why}: the file was cut short, extended or "
                              "corrupted. git: REFTABLE_FORMAT_ERROR (refs silently missing in git 2.55)")]
    crc = struct.unpack_from(">I", footer, fsz - 4)[0]
    actual = zlib.crc32(footer[:fsz - 4])
    if crc != actual:
        return None, [finding("reftableFooter", path,
                              f"{path}: footer CRC-32 is {crc:08x}, computed {actual:08x}: the footer is corrupt. "
                              "git: REFTABLE_FORMAT_ERROR")]
    block_size = int.from_bytes(header[5:8], "big")
    min_ui, max_ui = struct.unpack_from(">QQ", header, 8)
    table_algo = SHA1
    if version == 2:
        hid = struct.unpack_from(">I", header, 24)[0]
        got = HASH_IDS.get(hid)
        if got is None:
            return None, [finding("reftableHashId", path,
                                  f"{path}: unknown hash id {hid:08x}. git: REFTABLE_FORMAT_ERROR")]
        table_algo = got
    if algo is not None and table_algo != algo:
        return None, [finding("reftableHashId", path,
                              f"{path}: table uses {table_algo.name}, the repository {algo.name}. "
                              "git: REFTABLE_FORMAT_ERROR")]
    ref_index, obj_word, obj_index, log_pos, log_index = struct.unpack_from(">QQQQQ", footer, hsz)
    info = ReftableInfo(version=version, min_update_index=min_ui, max_update_index=max_ui,
                        block_size=block_size, algo=table_algo, ref_index_position=ref_index,
                        obj_position=obj_word >> 5, obj_id_len=obj_word & 31, obj_index_position=obj_index,
                        log_position=log_pos, log_index_position=log_index)
    findings: list[Finding] = []
    if min_ui > max_ui:
        findings.append(finding("reftableUpdateIndex", path,
                                f"{path}: min_update_index {min_ui} > max_update_index {max_ui}"))
    first_type = mv[hsz] if hsz < t_size else 0
    info.has_logs = first_type == ord("g") or log_pos > 0
    fs = _check_sections(mv, path, info, hsz, t_size, first_type)
    if fs:
        return None, findings + fs
    if first_type == ord("r"):
        ends = [p for p in (ref_index, info.obj_position, obj_index, log_pos, log_index) if p]
        findings += _read_ref_blocks(mv, path, info, hsz, min(ends) if ends else t_size)
    if any(f.code in ("reftableBlock", "reftableRecord") for f in findings):
        return None, findings
    return info, findings


def _block_at(mv: memoryview, pos: int, hsz: int, t_size: int) -> tuple[int, int] | None:
    """(type, block_len) of the block at *pos* (the first block carries the file header)."""
    hdr = hsz if pos == 0 else 0
    if pos + hdr + 4 > t_size:
        return None
    return mv[pos + hdr], int.from_bytes(mv[pos + hdr + 1: pos + hdr + 4], "big")


def _check_sections(mv: memoryview, path: str, info: ReftableInfo, hsz: int, t_size: int,
                    first_type: int) -> list[Finding]:
    def bad(msg: str) -> list[Finding]:
        return [finding("reftableBlock", path, f"{path}: {msg}. git: REFTABLE_FORMAT_ERROR")]

    if first_type not in (ord("r"), ord("g")) and t_size != hsz:
        return bad(f"first block has type {first_type:#04x}, not a ref ('r') or log ('g') block")
    if first_type != ord("r") and (info.ref_index_position or info.obj_position or info.obj_index_position):
        return bad("the footer locates ref index or obj sections, but the table has no ref blocks")
    if info.obj_position and info.obj_id_len < 2:
        return bad(f"obj section present but object id length is {info.obj_id_len} (2..31 required)")
    sections = [("ref index", info.ref_index_position, "i"), ("obj", info.obj_position, "o"),
                ("obj index", info.obj_index_position, "i"), ("log", info.log_position, "g"),
                ("log index", info.log_index_position, "i")]
    prev = 0
    for name, pos, typ in sections:
        if not pos:
            continue
        if pos <= prev or pos < hsz or pos >= t_size:
            return bad(f"{name} section position {pos:#x} is out of order or outside the blocks "
                       f"({hsz:#x}..{t_size:#x})")
        blk = _block_at(mv, pos, hsz, t_size)
        if blk is None or blk[0] != ord(typ):
            found = f"{blk[0]:#04x}" if blk else "end of file"
            return bad(f"{name} section at {pos:#x} does not start with a '{typ}' block (found {found})")
        prev = pos
    return []


def _read_ref_blocks(mv: memoryview, path: str, info: ReftableInfo, hsz: int, end: int) -> list[Finding]:
    h = info.algo.rawsz
    findings: list[Finding] = []
    pos = 0
    prev_name = b""
    have_prev = False

    def block_err(msg: str) -> list[Finding]:
        return [*findings, finding("reftableBlock", path, f"{path}: ref block at {pos:#x}: {msg}. "
                                   "git: REFTABLE_FORMAT_ERROR")]

    def rec_err(msg: str) -> list[Finding]:
        return [*findings, finding("reftableRecord", path, f"{path}: ref block at {pos:#x}: {msg}. "
                                   "git: REFTABLE_FORMAT_ERROR")]

    while pos < end:
        hdr = hsz if pos == 0 else 0
        blk = _block_at(mv, pos, hsz, end)
        if blk is None:
            return block_err(f"{end - pos} bytes left before the next section, too few for a block header")
        typ, block_len = blk
        if typ != ord("r"):
            return block_err(f"type {typ:#04x} where a ref block ('r') belongs")
        if block_len < hdr + 4 + 2 or pos + block_len > end:
            return block_err(f"block length {block_len} does not fit between {pos:#x} and {end:#x}")
        restart_count = struct.unpack_from(">H", mv, pos + block_len - 2)[0]
        restart_off = block_len - 2 - 3 * restart_count
        if restart_count == 0 or restart_off < hdr + 4:
            return block_err(f"restart table of {restart_count} entries does not fit in the block")
        restarts = [int.from_bytes(mv[pos + restart_off + 3 * k: pos + restart_off + 3 * k + 3], "big")
                    for k in range(restart_count)]
        if restarts[0] != hdr + 4 or any(a >= b for a, b in itertools.pairwise(restarts)) \
                or restarts[-1] >= restart_off:
            return block_err(f"restart offsets {restarts[:4]}... are not ascending record offsets starting at "
                             f"{hdr + 4}")
        rset = set(restarts)
        rp = pos + hdr + 4
        rend = pos + restart_off
        while rp < rend:
            start = rp
            r = _varint(mv, rp, rend)
            if r is None:
                return rec_err(f"record at {start:#x}: truncated prefix length")
            prefix_len, rp = r
            r = _varint(mv, rp, rend)
            if r is None:
                return rec_err(f"record at {start:#x}: truncated suffix length")
            st, rp = r
            suffix_len, vtype = st >> 3, st & 7
            if start - pos in rset and prefix_len:
                return rec_err(f"record at {start:#x} is a restart point but has prefix length {prefix_len}")
            if prefix_len > len(prev_name) or rp + suffix_len > rend or prefix_len + suffix_len == 0:
                return rec_err(f"record at {start:#x}: prefix {prefix_len} / suffix {suffix_len} do not fit")
            name = prev_name[:prefix_len] + bytes(mv[rp:rp + suffix_len])
            rp += suffix_len
            if have_prev and not prev_name < name:
                return rec_err(f"ref {name[:120]!r} does not sort after {prev_name[:120]!r}")
            r = _varint(mv, rp, rend)
            if r is None:
                return rec_err(f"record {name[:120]!r}: truncated update index")
            delta, rp = r
            if vtype > 3:
                return rec_err(f"record {name[:120]!r}: unknown value type {vtype}")
            sname = name.decode("utf-8", "surrogateescape")
            value: bytes | str | None = None
            if vtype in (1, 2):
                if rp + h * vtype > rend:
                    return rec_err(f"record {name[:120]!r}: object id(s) run past the records")
                value = bytes(mv[rp:rp + h])
                if vtype == 2:
                    info.peeled[sname] = bytes(mv[rp + h:rp + 2 * h])
                rp += h * vtype
            elif vtype == 3:
                r = _varint(mv, rp, rend)
                if r is None or r[1] + r[0] > rend:
                    return rec_err(f"record {name[:120]!r}: symbolic target runs past the records")
                tlen, rp = r
                value = bytes(mv[rp:rp + tlen]).decode("utf-8", "surrogateescape")
                rp += tlen
            ui = info.min_update_index + delta
            if ui > info.max_update_index:
                findings.append(finding("reftableUpdateIndex", path,
                                        f"{path}: ref {sname!r} has update index {ui}, above the table's maximum "
                                        f"{info.max_update_index}"))
            why = check_refname(name, allow_onelevel=True)
            if why is not None:
                git = ("git: fatal: refname is dangerous" if not is_safe_refname(name)
                       else "git treats the ref as broken")
                findings.append(finding("reftableRefName", path,
                                        f"{path}: invalid ref name {sname[:120]!r}: {why}. {git}"))
            info.refs[sname] = (_VALUE_TYPES[vtype], value)
            info.update_index[sname] = ui
            prev_name = name
            have_prev = True
        nxt = pos + block_len
        full = info.block_size or block_len
        if block_len < full and (nxt >= len(mv) or mv[nxt] != 0):
            full = block_len  # not padded: the next block follows at once (git's reader does the same)
        stop = min(pos + full, end)
        if bytes(mv[nxt:stop]).strip(b"\0"):
            return block_err(f"padding {nxt:#x}..{stop:#x} after the block is not all zero")
        pos = pos + full
    if pos != end:
        return block_err(f"ref blocks end at {pos:#x}, past the next section at {end:#x}")
    return findings


def merge_reftables(tables: list[ReftableInfo]) -> dict[str, tuple[str, bytes | str]]:
    """Apply a stack of tables (oldest first): later tables override, deletions remove."""
    out: dict[str, tuple[str, bytes | str]] = {}
    for t in tables:
        for name, (kind, value) in t.refs.items():
            if kind == "deletion" or value is None:
                out.pop(name, None)
            else:
                out[name] = (kind, value)
    return out


def merged_peeled(tables: list[ReftableInfo]) -> dict[str, bytes]:
    """The peeled oids of the refs that survive :func:`merge_reftables`."""
    out: dict[str, bytes] = {}
    for t in tables:
        for name in t.refs:
            out.pop(name, None)
        out.update(t.peeled)
    return out
