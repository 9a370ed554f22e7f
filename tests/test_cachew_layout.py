"""cachew's cache layout (snapcheck.layouts.cachew): keys, companions, tags, headers, grace, expiry,
Content-Type, the workstation commit header and LFS objects — the pure rules, with the documents
shaped exactly as cachew's S3 tier writes them (reference: cachew-snapshots.md §4)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from snapcheck.layouts.cachew import (
    COMPANION_GRACE,
    check_content_type,
    check_entry,
    check_lfs_object,
    check_snapshot_commit,
    classify,
    companion_data_key,
    get_header,
    lfs_oid,
    parse_companion,
    parse_data_key,
    parse_headers,
    parse_rfc3339,
)
from snapcheck.report import Severity

HEX = hashlib.sha256(b"https://github.com/org/repo.mirror-snapshot").hexdigest()
KEY = f"git/{HEX[:2]}/{HEX}"
TAG = "9f1c2e3d4b5a69788796a5b4c3d2e1f0"
ETAG = '"4c2a9f0e-1b7d-4e7a-9a53-0f6d2c8b1e77"'
NOW = datetime(2026, 7, 10, 12, 0, tzinfo=UTC)
WRITTEN = NOW - timedelta(hours=3)


def headers(**extra: str) -> str:
    h = {"Content-Disposition": ['attachment; filename="repo.tar.zst"'], "Content-Type": ["application/zstd"],
         "Etag": [ETAG]}  # fmt: skip
    for k, v in extra.items():
        h[k.replace("_", "-")] = [v]
    return json.dumps(h, separators=(",", ":"))


def companion(tag: str = TAG, expires: str = "2026-07-10T13:00:00.123456789Z", etag: str = ETAG) -> bytes:
    return json.dumps({"headers": {"Etag": [etag]}, "expires_at": expires, "tag": tag}).encode()


def entry(meta: dict[str, str] | None = None, body: bytes | None = None, written: datetime = WRITTEN):  # type: ignore[no-untyped-def]
    ck = parse_data_key(KEY)
    assert ck is not None
    m = {"tag": TAG, "headers": headers()} if meta is None else meta
    return check_entry(ck, metadata=m, companion_body=companion() if body is None else body,
                       last_modified=written, now=NOW)  # fmt: skip


def codes(findings: list) -> list[tuple[str, Severity]]:  # type: ignore[type-arg]
    return [(f.code, f.severity) for f in findings]


def test_keys() -> None:
    ck = parse_data_key(KEY)
    assert ck is not None and (ck.namespace, ck.hex, ck.companion) == ("git", HEX, KEY + ".meta")
    assert companion_data_key(KEY + ".meta") == KEY
    assert parse_data_key(f"git/{HEX[2:4]}/{HEX}") is None  # the fan-out directory must be hex[0:2]
    assert parse_data_key(f"git/{HEX[:2].upper()}/{HEX.upper()}") is None
    assert parse_data_key(f"-git/{HEX[:2]}/{HEX}") is None  # namespace rule
    assert parse_data_key(f"my_ns-2/{HEX[:2]}/{HEX}") is not None
    assert parse_data_key(f"git/{HEX[:2]}/{HEX}.meta") is None and parse_data_key(f"a/b/git/{HEX[:2]}/{HEX}") is None
    assert companion_data_key("notes.meta") is None and companion_data_key(KEY) is None


def test_rfc3339_as_go_writes_it() -> None:
    assert parse_rfc3339("2026-07-10T13:00:00.123456789Z") == datetime(2026, 7, 10, 13, 0, 0, 123456, tzinfo=UTC)
    assert parse_rfc3339("2026-07-10T15:00:00+02:00") == datetime(2026, 7, 10, 13, tzinfo=UTC)
    assert parse_rfc3339("2026-07-10T13:00:00-00:30") == datetime(2026, 7, 10, 13, 30, tzinfo=UTC)
    assert parse_rfc3339("2026-07-10T13:00:00") is None and parse_rfc3339("2026-13-10T13:00:00Z") is None
    assert parse_rfc3339("2026-07-10T13:00:00.5+05:30").utcoffset() == timezone(timedelta(hours=5, minutes=30)).utcoffset(None)  # type: ignore[union-attr]


def test_a_sound_entry_has_no_findings() -> None:
    e = entry()
    assert e.findings == [] and e.kind == "mirror" and not e.expired
    assert get_header(e.headers, "content-type") == "application/zstd" and get_header(e.headers, "ETAG") == ETAG
    assert e.companion is not None and e.companion.tag == TAG


def test_missing_companion_follows_cachews_grace() -> None:
    after = check_entry(parse_data_key(KEY), metadata={"tag": TAG, "headers": headers()},  # type: ignore[arg-type]
                        companion_body=None, last_modified=WRITTEN, now=NOW)  # fmt: skip
    assert codes(after.findings) == [("cachewCompanionMissing", Severity.WARNING)]
    assert "serves it with its own metadata" in after.findings[0].message
    fresh = check_entry(parse_data_key(KEY), metadata={"tag": TAG, "headers": headers()},  # type: ignore[arg-type]
                        companion_body=None, last_modified=NOW - COMPANION_GRACE / 3, now=NOW)  # fmt: skip
    assert codes(fresh.findings) == [("cachewCompanionMissing", Severity.INFO)]
    no_etag = check_entry(parse_data_key(KEY), metadata={"tag": TAG}, companion_body=None,  # type: ignore[arg-type]
                          last_modified=WRITTEN, now=NOW)  # fmt: skip
    assert "reports a miss for it forever" in no_etag.findings[0].message


def test_tag_mismatch_is_an_error_after_the_grace_only() -> None:
    other = "00112233445566778899aabbccddeeff"
    assert codes(entry(body=companion(tag=other)).findings) == [("cachewTagMismatch", Severity.ERROR)]
    fresh = entry(body=companion(tag=other), written=NOW - timedelta(minutes=2))
    assert codes(fresh.findings) == [("cachewTagMismatch", Severity.INFO)]
    untagged = entry(meta={"headers": headers()})  # data object without a tag, companion with one
    assert codes(untagged.findings) == [("cachewTagMismatch", Severity.ERROR)]
    legacy = entry(meta={"headers": headers()}, body=json.dumps({"headers": {}, "expires_at": None}).encode())
    assert legacy.findings == []  # neither carries a tag (written before cachew #369)


def test_etag_mismatch_expiry_and_invalid_documents() -> None:
    assert codes(entry(body=companion(etag='"other"')).findings) == [("cachewEtagMismatch", Severity.WARNING)]
    expired = entry(body=companion(expires="2026-07-10T11:59:59Z"))
    assert expired.expired and codes(expired.findings) == [("cachewExpired", Severity.INFO)]
    assert not entry(body=companion(expires="0001-01-01T00:00:00Z")).expired  # Go's zero time: no expiry
    for bad in (b"{", b"[]", b'{"headers": {"Etag": 5}}', b'{"tag": 7}', b'{"expires_at": "tomorrow"}',
                b'{"expires_at": 1}', b"\xff\xfe"):  # fmt: skip
        assert codes(entry(body=bad).findings) == [("cachewCompanionInvalid", Severity.ERROR)], bad
    for bad_h in ("{", '["a"]', '{"Etag": {"x": 1}}', '{"Etag": [1]}'):
        assert codes(entry(meta={"tag": TAG, "headers": bad_h}).findings)[0] == ("cachewHeadersInvalid", Severity.ERROR)
    h, f = parse_headers('{"Etag": "\\"single\\""}', "p")  # a bare string is taken as one value
    assert f == [] and get_header(h, "etag") == '"single"'


def test_classify() -> None:
    ck = parse_data_key(KEY)
    other = parse_data_key(f"gradle/{HEX[:2]}/{HEX}")
    assert ck is not None and other is not None

    def h(**kw: str) -> dict[str, list[str]]:
        return {k.replace("_", "-"): [v] for k, v in kw.items()}

    assert classify(ck, h(Content_Type="application/zstd")) == "mirror"
    assert classify(ck, h(Content_Disposition='attachment; filename="base.tar.zst"')) == "workstation"
    assert classify(ck, h(X_Cachew_Snapshot_Commit="a" * 40, Content_Type="application/zstd")) == "workstation"
    assert classify(ck, h(Content_Disposition='attachment; filename="lfs.tar.zst"')) == "lfs"
    assert classify(ck, h(Content_Type="application/x-git-bundle")) == "bundle"
    assert classify(ck, h(Content_Type="text/plain")) is None and classify(ck, None) is None
    assert classify(other, h(Content_Type="application/zstd; charset=binary")) == "archive"
    assert classify(other, h(Content_Type="application/octet-stream")) is None


def test_content_type_and_snapshot_commit() -> None:
    hz, _ = parse_headers(headers(), "p")
    assert check_content_type(hz, "zstd", "p") == []
    for content in ("gzip", "tar", "bundle", "unknown", "empty"):
        assert codes(check_content_type(hz, content, "p")) == [("cachewContentTypeMismatch", Severity.ERROR)]
    hb = {"Content-Type": ["application/x-git-bundle"]}
    assert check_content_type(hb, "bundle", "p") == [] and check_content_type(hb, "zstd", "p") != []
    assert check_content_type({"Content-Type": ["text/plain"]}, "zstd", "p") == []
    commit = "3f" * 20
    hw, _ = parse_headers(headers(X_Cachew_Snapshot_Commit=commit), "p")
    assert check_snapshot_commit(hw, commit, "p") == []
    assert codes(check_snapshot_commit(hw, "4e" * 20, "p")) == [("cachewSnapshotCommitMismatch", Severity.ERROR)]
    assert "does not resolve" in check_snapshot_commit(hw, None, "p")[0].message
    hx, _ = parse_headers(headers(X_Cachew_Snapshot_Commit="HEAD"), "p")
    assert "not a commit id" in check_snapshot_commit(hx, commit, "p")[0].message
    assert check_snapshot_commit(hz, None, "p") == []  # mirror snapshots carry no commit header


def test_lfs_objects() -> None:
    content = b"a large file\n"
    oid = hashlib.sha256(content).hexdigest()
    good = f"lfs/objects/{oid[:2]}/{oid[2:4]}/{oid}"
    assert lfs_oid(good) == (oid, True) and lfs_oid(".git/" + good) == (oid, True)
    assert lfs_oid("lfs/tmp/x") is None and lfs_oid("lfs/objects/ab/cd/notanoid") is None
    assert check_lfs_object(good, oid, "p") == []
    assert codes(check_lfs_object(good, "0" * 64, "p")) == [("lfsObjectHashMismatch", Severity.ERROR)]
    assert codes(check_lfs_object(f"lfs/objects/00/00/{oid}", oid, "p")) == [("lfsObjectMisplaced", Severity.WARNING)]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.text(max_size=120))
def test_arbitrary_documents_never_raise(body: bytes, text: str) -> None:
    c, f = parse_companion(body, "p")
    assert (c is None) == bool(f)
    h, f2 = parse_headers(text, "p")
    assert (h is None) == bool(f2)
    parse_rfc3339(text)
    ck = parse_data_key(KEY)
    assert ck is not None
    e = check_entry(ck, metadata={"tag": text, "headers": text}, companion_body=body, last_modified=None, now=NOW)
    assert all(x.code.startswith("cachew") for x in e.findings)
