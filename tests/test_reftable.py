"""reftable: tables written by git 2.55 (embedded), by dulwich, and by a writer built here from the
spec; damaged the ways snapshots damage them."""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib
from pathlib import Path

import pytest
from dulwich.reftable import ReftableReader, ReftableRefsContainer, ReftableWriter
from hypothesis import given, settings
from hypothesis import strategies as st

from snapcheck.gitformats import reftable as rt
from snapcheck.gitformats.common import SHA1, SHA256, HashAlgo
from snapcheck.report import Severity

# Reftable stacks written by git 2.55.0 (built from git.git 1a3e64c6c4; git 2.39 cannot write
# reftables), with git's own `for-each-ref --format='%(refname) %(objectname) %(*objectname)
# %(symref)'` and `symbolic-ref HEAD` output for each:
#   s1: a work repository with reftable.autoCompaction off: 7 tables, including deletions and a
#       symbolic ref, reflog blocks in most tables;
#   s2: 300 refs/pull/N/head refs, reftable.blockSize=512, restartInterval=4, `git pack-refs`: 27
#       padded ref blocks, a ref index, obj blocks and a log section;
#   s3: a SHA-256 repository (reftable version 2).
_GIT_2_55_TABLES = (
    "eNrtXWlzqzoS/Su37tdMXkDsU/U+CPCCDXhfcE3VFAaMdzvBMTav5r+P7DibzU2UdK4q82p49YolFmpJ3X2OmpbuXz8T/uc/f/z1"
    "czSZR8nxittxzwd//epWuNb4QNGCYfTHXTQiP//ZmXVLXVwg/704Gk9XZhBj7DXwtFXo6k2M68Giuwj22mrQK87IeeP15ve4PN8P"
    "eoPMRuO512uSMz/2e6LR4fnFjeftJoW9ymmxk4n41kha/XFIatNT8nYH40WAcbcpokXd0so6H5bKopkWb+6LlliVtYViZ/e9apfj"
    "V4vBlbRdzktCO17U2zd33iDcTpP7/t6UhL1Z3ERN2ef6pWZtUNihVm8eRZE6xaljhMvK1XDBzyfrgZ7snL55NQh0Q9UX9mo1WI1x"
    "VjQbezWr2M7YzVyrtCj1rZ1rxr2173VlFM0qt15HvgoWg/tBM5P7E77cWeM0MdO9VarEup0Kk9V7/Yhpj9KLN9SHUrMn/vnzHz9e"
    "j6p4fXarDkNOGPLhW6OqP18WDqPaw/rkNJqc1wszW/B2uDzpD3vDFqpJfLhW00ga7mLd8ZyicPXuaHYrxea8ob+s6GUX6Pgzh9Hf"
    "Ksbuogek67NbMZDUiFf9N3vgWZjioQeasb470+fZoO/hd1vaIzpbdonOuqvE2FXbrW0v48Zu21j22txs493EdTxUvcQyY2S3boae"
    "F9aXyb1whSVBNothrynLJ1Udy22iqkGEx12r0uzMpUl32TNmYlHuLOa3rUW12uhKUXArGYOFtCzsHJuoNLbw9iqY7/m8Hu/ktfed"
    "Qy+9uA6jcq920ePy9dkt8n1OFhT1zR6Pn/X60ONOrKd5PU4O0qXFJTlPI3c99W28as24Oz7RrHYnXfMzrWL36sQzlG5K+tgr6bHO"
    "KXEN5/aAl1f/e8f+hdQDaR/pFz2gXJ/dKoo45CJffLMH0qfL8lHnGgbGQmU+WDpbv9QdD8rO1uvt1l7fwebZ82GvuB6SMuWDSOQ9"
    "/fLU99A0tQtrt6oN660C71TDQT1z5o5dGpLeKdyUbAOL7oTbIlQqtyXF3tzEtfAq3vW7s+h+U9zN2oumFc34dX9Zjq2uU7aedGqq"
    "NMJgntejQV573tOp4gsrvvWn3vaiR9Xrs1tfijRNUoK3etR4vrSOPYr18ZlOibjohoMtKjne2Nm6dc90rnA1vivMxX7zWdd076hr"
    "Lk5e6dqtFl9hVRd2izSumd7G1jbjMXcV7ZWRaC5HK6fLD8p3d81gUJBmrfLa9bvSTjSKbX3vtI3UMYmI9Ru3pGitZmfQIS7wpR1a"
    "z5f0ytl8cS2My3dW489LVNCuz24VTVOFUFDe7M1n2SpHCyU2c9Gb+FkHrf5RBxvVVzrob7068XmhOigVY6+ES8oEc+v36qNuvvnK"
    "iTd3s9Wx9Rt/SEjPH/NJsjk0zynHh85/8X9hc/nM2dTaxambzafeonN/aKox1cXXv8Gc3c57Np4MTJx50+LMXhJTjVdp9Po3qdvi"
    "8p5xXtYRB+2C6LUkQpW86qVc3ib32aI4JufMzeJfySrkyEqeBYJbstJBr8D9StaaweU848duryPV2h3B2/9K1tkm75mbzaSa6c6c"
    "LHiQNSZK+h8yTqPV3b8jPxj/+6SH5JTcjCM/TG78+cRPfkiCFMryKFRlgVdVMRgGoRCqXBCMVA75nB+ImqJKIf/jx4uiC3+y/Nfy"
    "7MEHXnUqu/Hj5GbL/1BUTZFJ0RCFahQpkiJrI4FThpo84lWOJ28TOCkcRfQ1/Gt5UNKDbGeNPgh67JgEfYC7i9cK5/OaOLrwjq8c"
    "SeMVy9M5/Cnurve9pjK2qqXeJPbQMFrUu6J2hQuzOccVe32dH5bSrdN6eBfmUSESW8Z4vlqV3IWwnvJRfRTrlUroGlkhfXh3w3zj"
    "nTjWiw9yCKd3tzFNOcdpFx7wErvhuHxfiFcDv6pPBxvZ0/pTQcStVr/dSPfO5CTr3qiPl5pQ3M/VbtvrS+vmqOAMvW49ld6ux6Go"
    "x8CF/gOGB+VuMjTUnWM2qORzW1D5PJp6du7+/TE7AX5GvDWhUoUNxg0MO3TCrsoTgn2tkw6mYW+X2EQ3aga03TOKdpNpH4Wumiat"
    "rlbOdLWweyxnWVelkRD0q/1d1x2PFvOi2thtxp0bc/7muDzp59vyZVQ2MX3UOSeeioObcBesR8UOKl75nf7OLKFiW6113xh/CzfP"
    "xmnn0vUfopMvAMlH6hFpxumot5UZmRIR0kXLW8vktyMvxx8VJIo6bWdqAdtmpWBdohirnDHe0+mglUHlcw0qXeI/Z4sWAsu3p5JP"
    "pNP1GcwW8QHgDeKDi8aBnb+alRF8v4oNbJxjzv7LfB0rfM2xN4fO17W/E77m4H8WUMnHCgdpbC/HN3COQcUbCs+coWw884Yj/qMc"
    "/Occ8LhYVLyHziYsDuY7LsffNTt0vIzO9wpQ31b75PjXqLi+xQPl2ztgO6DxVw/R6LsG1hvxWWz+gP9RIccfdfZ0/t6BchuOzu91"
    "6PzR8kwfn/zYp+UT6OSL6fxeC4gbeH42TnTzIIeOg+zoxtz6Cowf5GH8W8cB/7M4x+dMHTqfQ9UHYJum8m05PgfR8TBLBPtEujiG"
    "8Lk4RkDHs6YFqF3S+SeqOMaDf1wQ/2jHH/h2+fb8Pw//BRfs778TvubYYkblByl1EKzrUHzN0e+YzkfS8bT9E0/7tD40PoT/3Vz8"
    "t/LaydPZ8XfC10v8r5mw+SjxgxKdfJgOh+liFed+Q2ITz2WFkZ/zt8f5f47PqX1hLJgVvpIx1l+PsUUX1zW+MNYBxOBLDmOl3ymu"
    "Sx9TO/N9U4w+FG9tpUQ5Cy9SCH6F/1bqgv39l+LrDoz/r/3t/tkPfnrMvhO+5ujGV85X070L9uvB78H/KZt4L8HX/dfh6wU27J99"
    "3Hf4XprSxiPP/ca3+l4Kx8jP43/O/H//rIPvYOf+W2Nn9vfATuc7fROl/E7wW+b/PBnj6tkYc/8b8WK67/M5fopjM59NKb/PQ7+N"
    "Xvoa1wzo+BfdPEqCyZdQ9cMp3ppgXOxexFsP+B+IOXbc+TvkI+3d9v9gPtKlXfHMvpdOvi5v6Hl+JNLno7yD/1p8Oedwv1UsmejS"
    "V8ccpx5dLI5OB/ds5qA5tkjH0+DyTZnMQR/0u8rl5Fsd8X+cw/GEv0XO0TT4e+UcWbhyNk4i65gvGfP9V82pGh/hsL/E//jvkI+0"
    "r5nfKx+p9qlcRUuii/ta3ykv97fgP8qJOdbaTOa6rPA1xxZnXzjXXUFjojYUXy/5rZMC57U23TwkoZvXPueg9j6Sn3KG/6PL+b+T"
    "ged7BlXuBk+Xu+19MW46AlW9VPwxgeZKVemw6SKfmCr3k/TxjkV+PKmH3tdW04fl0B/xtQf8D9WLvDKXah1PAsV1m86nJrTz5jN7"
    "a4hQe6P6jjaltDfKbxjGa3zjHXAfW18WHzfAMcwTTyUnG38s1nrAfyG9sFfepctnQ3T2GkDtlWqtzoW9UWI38HshGLsp/d5l+6ZU"
    "OgjnJlQ+/0NxU4/wAPwxHnDE/+jSH3kIjP9UNkqlg/YXzJvPcliCL8thYYWvlxwmyOh8+XfCx9P3fXKqpx/8fvUr/KcbS+i82aac"
    "s9Cu4zgbyzil06ECixwGm/Ybxhn+iy64jztfFvsn+C98M/wXa3T+hCaPswrPZ4GuZ71on0S57wCdDgLX65B6uM/gf41OB+H8pk2H"
    "QTXjQ99NP4H/uniJ/zPg996OHJaKS/I+5DQswNqbAv7/8f/jYZ+yGcbeCse6fr4fyaOfx0YWP9lLnGK79pS30CpjnIiueZpTWMlh"
    "v6fGWe760/x1eizrnfxUq30sm538USU41POEdYsU58g0O82zWyOM1/g5T7c1Pbzryfarx3c9cZPbvHdNncc2bEnZ9JGnJQ8ynnx4"
    "S3iQ8cQP7Lz2WeJjTHF7LDs78cc2wbaV6DzmdTtEpmn8lB+zP8iEx2dzwBOndNTDb9GjTFyKqzXz8Ztbu39479N3Dfcok3XmZ078"
    "v036qSM++Yzo6MMOxq8Q/5Q9+DaT9F1hSHxc6+W+Z9/xGJI+Iw1qWJbqY8vBcWqYkDPW9XCsr8DvidPTRkRm+rC/pyNd7O9ZGhoY"
    "VYa381sfVcnVQrvvo2A4uFnonUWk2AtnEsgVs3O/tYOGTAYmaqsCMY5C3HMzO3NmSVYoF7i78Wivdg25pCfRhLebkxsv6+wq5Bxm"
    "hczM/J5Tx2mCG5lKxtkd+I125XFXNiN/c8ynvW64pz8mr377eKDRi5slR9AX//n5fckaGzfTx8SkucHCod4/62HPq1AVlaEqqkiV"
    "JR+pvBpqQ8WXhVCKhHCkcjwSNUUMn/a8Wt/P5zf88RWfLczBSgOLA2VHD8URp45UWRkpCq8gTQkkSZB5JZI1URrxXCCHqiSOAkGj"
    "r+d1NQJMShFWXGLTSBkmpQIrrrJppAaSEqatQFN7rP03dxGPYFLCbIUX2TRSgkkJsxVeYdNIFSYlzFbYuGbEsakGZvkIZlNIYNNI"
    "GE4hmE0hmU0jYTiFYDaFNCaNhPlgAYZTAsxWBDaOQwD2EcxWBDacToDhlACzFYENpxNgOAUbSBFmKyIbTifC8EeE2YrIhtOJMPwR"
    "YbYisuF0Igx/RJitsPFaEhtOJ8FwSoLZlMSG00kw9ybBbEpiw+kkGE5JMJuS2HA6mHuSYTglw2xFZsPpZBhOyTBbkdl4RxmoCDBb"
    "kdlwOhmGU7A2KjBbUdhwOgWGPwrMVhQ2nE6B4Y8CsxWFDadTYPijwGyFjUGrbDidCsMpFWZTKhtOp8JwSoXZlMqG06kwH67CbEpl"
    "w+lglqvBcEqD2YrGhtNpMJzSYLaiseF0GgynNJitaGwgQANpO8gzIw5WGlicCSFEHLCLBFhxkU0jJZiUMqy4wqaRKkxKmKGx0Vae"
    "Y1MND+sLmE3xAptGijApYTbFy2waqcCkhNkUz4QQwvIEEBDmYEkOCCE2XQTDKViSA0ISm0bCcAqW5ICQyqaRMJyC6QEsyQEJbFBS"
    "gDkEAdhHbDidAMMfWJIDEthwOgGGP7AkB8RmIEU2nE6E4RQsGQKJbDidCMMpWDIEEtlwOhGGU7BkCCSy4XSwkZBgOAVLckASG04n"
    "wXAKluSAJDacToLhFCzJAUlsOJ0EwylYF8GSHJDMhtPJMPyBJTkgmQ0VkGFeTwYqAhtOJ8PwB5bkgNi0UWHD6RQYTsGSIZDChtMp"
    "MJyCJUMghQ2nU2A4BUuGQAobTgcTUoXhFCzJAalsOJ0KwylYkgNS2XA6FYZTsCQHpLLhdCoMp4ClYbaiseF0Ggx/YEkOSGPD6TQY"
    "/sCSHJDGhu9oMNcOS3JgQkMEjk0tbKoBYSEsvC6wGS4QEMJi6wITyghbZggLrAtM+CJoCGFLDGHBcpEJV4StL4RFykUmRBG2uBAW"
    "JheZsETYykKQl4KFyCUmDBG2WhAWH5eY0EPYUkFYcFxiwg1h6wRhkXEmQCwzoWywtYSw6LnMhLLBFhLCQucyG00BIRIsbi4zoWyg"
    "BsJWEMJi4QoTygZbPggLhCtMKBts7SAsCq4woWywhYMgG4ZFwFUmlA22GBAW/laZUDbYSkBY7FtlQtlgywBhgW8mMKUxoWywpYKw"
    "4LjGhLLB1gnCIuMaE8oGWyQIC4trv9sWNn6c3Gz531LBYSPog/Q5GzYfN3VOBPKXv36OJvMoOV5xO+754K9f3QrXoqqISuSrf5z2"
    "gO7MuqUutl7/ywVPW1djM8gs3l1aGNsJtrhxsdFpYFN4+Hc0jvukl53tsFdcD2NdOu2VftxbnZw3Xm9+j7tpdWFkHTmRlqtJ9UpZ"
    "TIuptJq3inytkd6V/XIw23ft+kCL+np7zXm9MLMFb4cnXmXZvLvfIs5NqnupYmWLO9FcKpzuYYcPTKOv3LUmxW6rrvXxrWe77dts"
    "EU2sO+Xed/rmYtK1+h3JNJJwFe7blU6iLXkpwMcduM3gYT/xes5+4o0JLlXFQW0eRsvOZrS229t+MGymitup92xtaS9qA6l1t8Sp"
    "vBQkrfa8wXg1SK/0SdJrHTcY55KOax43GN8XBIe7a7b3Kl+VSvoqmPB2e7LtZJ2xS87drJDVM7mUaDhNzEY2MwupLo67eE81NjHt"
    "Lu+G8uKm49p+59N7jDsb14wF1wznXjv+4B7jAedrKgpCkfwqkhUfITSMokhWA4lYho8kUZXIH0WB8wNFVhUFiYEmoWAkK6GiKT8u"
    "bE7mNC3k/SgajuSQC4ek3FBDokre7hNLipRoJHKSynFBSCoPkDQa+iFSVUmSkDAK4RK9Y6P/+S+xpBQR"
)


def git_stacks() -> dict[str, dict[str, object]]:
    return json.loads(zlib.decompress(base64.b64decode("".join(_GIT_2_55_TABLES))))  # type: ignore[no-any-return]


def codes(findings: list) -> set[str]:  # type: ignore[type-arg]
    return {f.code for f in findings}


def parse(data: bytes, algo: HashAlgo | None = SHA1) -> tuple[rt.ReftableInfo | None, set[str]]:
    info, fs = rt.parse_reftable(data, "reftable/t.ref", algo)
    return info, codes(fs)


def resolved(tables: list[rt.ReftableInfo]) -> tuple[dict[str, list[str]], str | None]:
    """What `git for-each-ref` would print (symrefs resolved, peeled tags), and HEAD's target."""
    merged = rt.merge_reftables(tables)
    peeled = rt.merged_peeled(tables)
    out: dict[str, list[str]] = {}
    for name, (kind, value) in merged.items():
        if name == "HEAD":
            continue
        if kind == "symref":
            assert isinstance(value, str)
            target = merged[value][1]
            assert isinstance(target, bytes)
            out[name] = [target.hex(), "", value]
        else:
            assert isinstance(value, bytes)
            out[name] = [value.hex(), peeled[name].hex() if name in peeled else "", ""]
    head = merged.get("HEAD")
    return out, (head[1] if head and head[0] == "symref" else None)  # type: ignore[return-value]


# --- a reftable writer from the spec (technical/reftable.adoc), for tests only -----------------


def put_varint(v: int) -> bytes:
    out = [v & 0x7F]
    v >>= 7
    while v:
        v -= 1
        out.append(0x80 | (v & 0x7F))
        v >>= 7
    return bytes(reversed(out))


def header(version: int, block_size: int, lo: int, hi: int, algo: HashAlgo) -> bytes:
    h = b"REFT" + bytes([version]) + block_size.to_bytes(3, "big") + struct.pack(">QQ", lo, hi)
    if version == 2:
        h += b"sha1" if algo == SHA1 else b"s256"
    return h


def write_table(
    refs: list[tuple[bytes, int, object, int]],
    *,
    version: int = 1,
    block_size: int = 0,
    per_block: int = 1000,
    restart_every: int = 4,
    lo: int = 1,
    hi: int = 10,
    algo: HashAlgo = SHA1,
    index: bool = False,
) -> bytes:
    """refs: sorted (name, value type, value, update index); value: oid, (oid, peeled), target or None."""
    hdr = header(version, block_size, lo, hi, algo)
    out = bytearray(hdr)
    blocks: list[tuple[int, bytes]] = []
    groups = [refs[i : i + per_block] for i in range(0, len(refs), per_block)]
    for gi, group in enumerate(groups):
        start = len(out)
        base = len(hdr) if start == len(hdr) else 0
        block_start = start - base
        recs = bytearray()
        restarts = []
        prev = b""
        for k, (name, vtype, value, ui) in enumerate(group):
            restart = k % restart_every == 0
            common = 0
            if not restart:
                while common < min(len(prev), len(name)) and prev[common] == name[common]:
                    common += 1
            if restart:
                restarts.append(base + 4 + len(recs))
            recs += put_varint(common) + put_varint((len(name) - common) << 3 | vtype) + name[common:]
            recs += put_varint(ui - lo)
            if vtype == 1:
                recs += value  # type: ignore[operator]
            elif vtype == 2:
                recs += value[0] + value[1]  # type: ignore[index]
            elif vtype == 3:
                recs += put_varint(len(value)) + value  # type: ignore[arg-type, operator]
            prev = name
        tail = b"".join(r.to_bytes(3, "big") for r in restarts) + struct.pack(">H", len(restarts))
        block_len = base + 4 + len(recs) + len(tail)
        out += b"r" + block_len.to_bytes(3, "big") + recs + tail
        blocks.append((block_start, group[-1][0]))
        if (block_size and gi < len(groups) - 1) or (block_size and index):
            out += b"\0" * (block_start + block_size - len(out))
    ref_index = 0
    if index and groups:
        ref_index = len(out)
        recs = bytearray()
        for pos, last in blocks:
            recs += put_varint(0) + put_varint(len(last) << 3) + last + put_varint(pos)
        tail = (4).to_bytes(3, "big") + struct.pack(">H", 1)
        out += b"i" + (4 + len(recs) + len(tail)).to_bytes(3, "big") + recs + tail
    footer = hdr + struct.pack(">QQQQQ", ref_index, 0, 0, 0, 0)
    return bytes(out) + footer + struct.pack(">I", zlib.crc32(footer))


def oid(i: int, algo: HashAlgo = SHA1) -> bytes:
    return algo.digest(str(i).encode())


def sample_refs(n: int = 40, algo: HashAlgo = SHA1) -> list[tuple[bytes, int, object, int]]:
    refs: list[tuple[bytes, int, object, int]] = [(b"HEAD", 3, b"refs/heads/main", 1)]
    refs.append((b"refs/heads/gone", 0, None, 2))
    refs.append((b"refs/heads/main", 1, oid(0, algo), 3))
    refs += [(f"refs/pull/{i:04d}/head".encode(), 1, oid(i, algo), 4) for i in range(n)]
    refs.append((b"refs/tags/v1", 2, (oid(100, algo), oid(0, algo)), 5))
    return sorted(refs)


def expected(refs: list[tuple[bytes, int, object, int]]) -> dict[str, tuple[str, object]]:
    kinds = {0: "deletion", 1: "oid", 2: "oid", 3: "symref"}
    out: dict[str, tuple[str, object]] = {}
    for name, vtype, value, _ in refs:
        v = value[0] if vtype == 2 else value.decode() if vtype == 3 else value  # type: ignore[index, union-attr]
        out[name.decode()] = (kinds[vtype], v)
    return out


# --- good tables -------------------------------------------------------------------------------


@pytest.mark.parametrize("repo", ["s1", "s2", "s3"])
def test_git_written_stacks_read_as_git_reads_them(repo: str) -> None:
    stack = git_stacks()[repo]
    files = {k: base64.b64decode(v) for k, v in stack["files"].items()}  # type: ignore[attr-defined]
    algo = SHA256 if repo == "s3" else SHA1
    names, fs = rt.parse_tables_list(files["tables.list"], "reftable/tables.list")
    assert fs == [] and names and set(names) == set(files) - {"tables.list"}
    tables = []
    for name in names:
        info, fs = rt.parse_reftable(files[name], f"reftable/{name}", algo)
        assert info is not None and fs == [], (name, fs)
        assert info.version == (2 if repo == "s3" else 1) and info.algo == algo
        tables.append(info)
    refs, head = resolved(tables)
    want = {}
    for line in str(stack["for_each_ref"]).splitlines():
        parts = line.split(" ")
        want[parts[0]] = parts[1:]
    assert refs == want
    assert head == stack["head"]
    if repo == "s1":
        assert len(tables) == 7 and any(k == "deletion" for t in tables for k, _ in t.refs.values())
    if repo == "s2":
        (t,) = tables
        assert t.block_size == 512 and t.ref_index_position and t.obj_position and t.log_position
        assert len(t.refs) == 303


@pytest.mark.parametrize(
    "version,block_size,per_block,index",
    [
        (1, 0, 1000, False),
        (1, 0, 7, False),
        (1, 256, 5, False),
        (1, 256, 5, True),
        (2, 4096, 1000, False),
        (2, 0, 3, True),
    ],
)
def test_spec_written_tables_round_trip(version: int, block_size: int, per_block: int, index: bool) -> None:
    for algo in (SHA1, SHA256) if version == 2 else (SHA1,):
        refs = sample_refs(algo=algo)
        data = write_table(
            refs, version=version, block_size=block_size, per_block=per_block, index=index, algo=algo
        )
        info, fs = rt.parse_reftable(data, "t.ref", algo)
        assert info is not None and fs == []
        assert info.refs == expected(refs)
        assert info.peeled == {"refs/tags/v1": oid(0, algo)}
        assert info.update_index["refs/tags/v1"] == 5


def test_empty_table() -> None:
    hdr = header(1, 4096, 3, 3, SHA1)
    footer = hdr + bytes(40)
    data = hdr + footer + struct.pack(">I", zlib.crc32(footer))
    info, found = parse(data)
    assert info is not None and found == set() and info.refs == {}


def test_dulwich_written_tables() -> None:
    refs = {f"refs/heads/b{i:03d}".encode(): oid(i) for i in range(60)}
    buf = io.BytesIO()
    w = ReftableWriter(buf)
    for name, value in refs.items():
        w.add_ref(name, value)
    w.add_symbolic_ref(b"HEAD", b"refs/heads/b007")
    w.delete_ref(b"refs/heads/old")
    w.write()
    data = buf.getvalue()
    info, fs = rt.parse_reftable(data, "t.ref", SHA1)
    assert info is not None and fs == []
    want: dict[str, tuple[str, object]] = {k.decode(): ("oid", v) for k, v in refs.items()}
    want["HEAD"] = ("symref", "refs/heads/b007")
    want["refs/heads/old"] = ("deletion", None)
    assert info.refs == want
    # dulwich's own reader agrees on the refs it keeps
    back = ReftableReader(io.BytesIO(data)).all_refs()
    assert {k.decode() for k in back} == set(want)


def test_dulwich_container_stack(tmp_path: Path) -> None:
    (tmp_path / "reftable").mkdir()
    c = ReftableRefsContainer(str(tmp_path))
    c.set_if_equals(b"refs/heads/main", None, b"1" * 40)
    c.set_if_equals(b"refs/heads/dev", None, b"2" * 40)
    c.set_symbolic_ref(b"HEAD", b"refs/heads/main")
    c.set_if_equals(b"refs/heads/dev", b"2" * 40, b"4" * 40)
    names, fs = rt.parse_tables_list((tmp_path / "reftable/tables.list").read_bytes(), "reftable/tables.list")
    assert fs == [] and len(names) >= 2
    tables = []
    for name in names:
        info, fs = rt.parse_reftable((tmp_path / "reftable" / name).read_bytes(), name, SHA1)
        assert info is not None and fs == []
        tables.append(info)
    merged = rt.merge_reftables(tables)
    assert merged == {
        "HEAD": ("symref", "refs/heads/main"),
        "refs/heads/main": ("oid", b"\x11" * 20),
        "refs/heads/dev": ("oid", b"\x44" * 20),
    }
    assert set(merged) == {k.decode() for k in c.allkeys()}


def test_merge_applies_the_stack() -> None:
    a = rt.ReftableInfo(
        1,
        1,
        1,
        refs={
            "refs/heads/a": ("oid", oid(1)),
            "refs/heads/b": ("oid", oid(2)),
            "refs/tags/t": ("oid", oid(3)),
        },
        peeled={"refs/tags/t": oid(1)},
    )
    b = rt.ReftableInfo(
        1,
        2,
        2,
        refs={
            "refs/heads/a": ("deletion", None),
            "refs/heads/b": ("oid", oid(4)),
            "HEAD": ("symref", "refs/heads/b"),
            "refs/tags/t": ("oid", oid(5)),
        },
    )
    assert rt.merge_reftables([a, b]) == {
        "refs/heads/b": ("oid", oid(4)),
        "HEAD": ("symref", "refs/heads/b"),
        "refs/tags/t": ("oid", oid(5)),
    }
    assert rt.merged_peeled([a, b]) == {}
    assert rt.merged_peeled([a]) == {"refs/tags/t": oid(1)}
    assert rt.merge_reftables([b, a])["refs/heads/a"] == ("oid", oid(1))


# --- damage ------------------------------------------------------------------------------------


def all_tables() -> list[tuple[str, bytes, HashAlgo]]:
    out = []
    for repo, stack in git_stacks().items():
        for name, b64 in stack["files"].items():  # type: ignore[attr-defined]
            if name != "tables.list":
                out.append((f"{repo}/{name}", base64.b64decode(b64), SHA256 if repo == "s3" else SHA1))
    out.append(("spec", write_table(sample_refs(), block_size=256, per_block=5, index=True), SHA1))
    return out


def test_truncation_anywhere_is_a_footer_finding() -> None:
    for label, data, algo in all_tables():
        step = max(1, len(data) // 400)
        hsz = 24 if data[4] == 1 else 28
        fsz = 68 if data[4] == 1 else 72
        for n in [*range(0, len(data), step), len(data) - 1]:
            info, found = parse(data[:n], algo)
            want = {"reftableTooSmall"} if n < 5 or n < hsz + fsz else {"reftableFooter"}
            assert info is None and found == want, (label, n, found)


def test_appended_zeroed_and_flipped_footer() -> None:
    for label, data, algo in all_tables():
        fsz = 68 if data[4] == 1 else 72
        assert parse(data + b"\0", algo)[1] == {"reftableFooter"}, label
        assert parse(data[:-16] + b"\0" * 16, algo)[1] == {"reftableFooter"}, label
        for k in (1, fsz // 2, fsz - 1):  # inside the footer: header copy, positions, CRC
            b = bytearray(data)
            b[len(b) - k] ^= 0x20
            assert parse(bytes(b), algo)[1] == {"reftableFooter"}, (label, k)
        b = bytearray(data)
        b[10] ^= 0x01  # the header no longer matches its copy in the footer
        assert parse(bytes(b), algo)[1] == {"reftableFooter"}, label


def test_header_rules() -> None:
    data = write_table(sample_refs())
    assert parse(b"REFX" + data[4:])[1] == {"reftableSignature"}
    assert parse(b"RE")[1] == {"reftableTooSmall"}
    bad_version = bytearray(data)
    bad_version[4] = 3
    assert parse(bytes(bad_version))[1] == {"reftableVersion"}
    assert parse(data, SHA256)[1] == {"reftableHashId"}
    v2 = write_table(sample_refs(algo=SHA256), version=2, algo=SHA256)
    assert parse(v2, SHA1)[1] == {"reftableHashId"}
    info, found = parse(v2, None)
    assert info is not None and found == set() and info.algo == SHA256
    odd = v2.replace(b"s256", b"s257")
    footer = odd[-72:-4]
    odd = odd[:-4] + struct.pack(">I", zlib.crc32(footer))
    assert parse(odd, None)[1] == {"reftableHashId"}
    swapped = write_table(sample_refs(), lo=1, hi=0)
    info, found = parse(swapped)
    assert info is not None and found == {"reftableUpdateIndex"}


def test_block_and_record_rules() -> None:
    refs = sample_refs(8)
    data = write_table(refs)
    # the block type
    b = bytearray(data)
    b[24] = ord("x")
    assert parse(bytes(b))[1] == {"reftableBlock"}
    # the block length past the footer
    b = bytearray(data)
    b[25:28] = (len(data)).to_bytes(3, "big")
    assert parse(bytes(b))[1] == {"reftableBlock"}
    # the restart count
    block_len = int.from_bytes(data[25:28], "big")
    b = bytearray(data)
    struct.pack_into(">H", b, block_len - 2, 0)
    assert parse(bytes(b))[1] == {"reftableBlock"}
    # unsorted names, an unknown value type, an update index above the maximum, a bad name
    swapped = list(refs)
    swapped[3], swapped[4] = swapped[4], swapped[3]
    assert parse(write_table(swapped, restart_every=1))[1] == {"reftableRecord"}
    assert parse(write_table([(b"refs/heads/x", 5, None, 1)]))[1] == {"reftableRecord"}
    assert parse(write_table([(b"refs/heads/x", 1, oid(1), 99)]))[1] == {"reftableUpdateIndex"}
    info, found = parse(write_table([(b"refs/heads/../x", 1, oid(1), 1), (b"refs/heads/a b", 1, oid(1), 1)]))
    assert info is not None and found == {"reftableRefName"}
    # a non-zero byte in the padding between aligned blocks
    aligned = write_table(refs, block_size=256, per_block=4)
    first_len = int.from_bytes(aligned[25:28], "big")
    b = bytearray(aligned)
    b[first_len + 3] = 0x41
    assert parse(bytes(b))[1] == {"reftableBlock"}
    # footer positions that point at the wrong kind of block
    idx = write_table(refs, block_size=256, per_block=4, index=True)
    ri = struct.unpack_from(">Q", idx, len(idx) - 68 + 24)[0]
    b = bytearray(idx)
    b[ri] = ord("o")
    assert parse(bytes(b))[1] == {"reftableBlock"}


def test_tables_list() -> None:
    good = b"0x000000000001-0x000000000003-91c79cbe.ref\n0x000000000004-0x000000000004-8bd03b1d.ref\n"
    names, fs = rt.parse_tables_list(good, "reftable/tables.list")
    assert fs == [] and len(names) == 2
    names, fs = rt.parse_tables_list(good[:-1], "reftable/tables.list")
    assert codes(fs) == {"reftableTablesListFormat"} and len(names) == 2
    names, fs = rt.parse_tables_list(good[:50], "reftable/tables.list")
    assert codes(fs) == {"reftableTablesListFormat", "reftableTableName"}
    names, fs = rt.parse_tables_list(good + b"../x.ref\n", "reftable/tables.list")
    assert codes(fs) == {"reftableTablesListFormat"} and len(names) == 2
    names, fs = rt.parse_tables_list(good + good.splitlines(True)[0], "reftable/tables.list")
    assert codes(fs) == {"reftableTablesListFormat"}
    names, fs = rt.parse_tables_list(b"refs.ref\n", "reftable/tables.list")
    assert codes(fs) == {"reftableTableName"} and fs[0].severity is Severity.WARNING and names == ["refs.ref"]
    assert rt.parse_tables_list(b"", "reftable/tables.list") == ([], [])


# --- properties --------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.sampled_from([None, SHA1, SHA256]))
def test_arbitrary_bytes_never_raise(data: bytes, algo: HashAlgo | None) -> None:
    info, fs = rt.parse_reftable(data, "t.ref", algo)
    assert info is not None or fs
    rt.parse_tables_list(data, "tables.list")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.sampled_from([1, 2]), st.integers(0, 300))
def test_random_blocks_behind_a_valid_footer_never_raise(body: bytes, version: int, block_size: int) -> None:
    """The footer check passes; everything after it must still be defended against garbage."""
    hdr = header(version, block_size, 1, 5, SHA1)
    footer = hdr + bytes(40)
    data = hdr + body + footer + struct.pack(">I", zlib.crc32(footer))
    info, fs = rt.parse_reftable(data, "t.ref", SHA1)
    assert info is not None or any(f.severity is Severity.ERROR for f in fs)


names_st = st.lists(
    st.from_regex(rb"refs/(heads|tags|pull)/[a-z0-9]{1,12}(/[a-z]{1,5})?", fullmatch=True),
    min_size=1,
    max_size=60,
    unique=True,
)


@settings(max_examples=60, deadline=None)
@given(names_st, st.sampled_from([0, 128, 512]), st.integers(1, 9), st.integers(1, 5), st.booleans())
def test_round_trip_property(
    names: list[bytes], block_size: int, per_block: int, restart: int, v2: bool
) -> None:
    algo = SHA256 if v2 else SHA1
    refs = sorted(
        (n, 1 + (i % 2), oid(i, algo) if i % 2 == 0 else (oid(i, algo), oid(-i, algo)), 1 + i % 7)
        for i, n in enumerate(names)
    )
    if block_size and per_block * (max(len(n) for n in names) + 2 * algo.rawsz + 8) + 40 > block_size:
        block_size = 0  # the records would not fit one aligned block
    data = write_table(
        refs,
        version=2 if v2 else 1,
        block_size=block_size,
        per_block=per_block,
        restart_every=restart,
        algo=algo,
    )
    info, fs = rt.parse_reftable(data, "t.ref", algo)
    assert info is not None and fs == []
    assert info.refs == expected(refs)
