"""Tests of s3qbb.provenance.files: key helpers, redaction, time and host facts."""

from __future__ import annotations

import base64
import datetime
import os
import platform
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3qbb.core.text import RECORDS_DIR
from s3qbb.errors import InvalidNameError, S3qbbError
from s3qbb.provenance import (
    host_info,
    parse_records_key,
    provenance_key,
    records_key,
    records_prefix,
    redact,
    report_key,
    utc_now,
)

QID = uuid.UUID("c0ffee00-1234-4abc-8def-000000000042")
KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.fixture(autouse=True)
def _patterns_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Test the redaction patterns alone: credentials other tests of this worker registered are
    process-wide (`s3qbb.redaction.register_secrets`) and would mask this module's examples literally."""
    from s3qbb import redaction

    monkeypatch.setattr(redaction, "_SECRETS", set())


# --- keys -------------------------------------------------------------------------


def test_key_helpers() -> None:
    assert records_prefix("run1") == "run1/_records/"
    assert records_key("run1", QID) == f"run1/_records/{QID}.sqlite3"
    assert provenance_key("run1", QID) == f"run1/_records/{QID}.provenance.json"
    assert report_key("u/someone/run1", str(QID).upper()) == f"u/someone/run1/_records/{QID}.quantum.json"
    assert records_key("run1", QID.hex) == records_key("run1", QID)


@pytest.mark.parametrize(
    ("run", "prefix"),
    [
        ("a b", "a%20b"),
        ("%2F..%2F", "%252F..%252F"),
        ("u/.hidden/x", "u/%2Ehidden/x"),
        ("r\x00n", "r%00n"),
        ("é", "%C3%A9"),
        ("run\\..\\x", "run%5C..%5Cx"),
    ],
)
def test_hostile_run_names_stay_under_their_prefix(run: str, prefix: str) -> None:
    key = records_key(run, QID)
    assert key == f"{prefix}/_records/{QID}.sqlite3"
    assert parse_records_key(key) == ("records", QID)


@pytest.mark.parametrize("run", ["", "..", "a/../b", "/abs", "trailing/", "a//b", "."])
def test_unsafe_run_names_are_refused(run: str) -> None:
    with pytest.raises(InvalidNameError):
        records_key(run, QID)


@pytest.mark.parametrize("qid", ["not-a-uuid", "", "../../x", 42])
def test_bad_quantum_ids_are_refused(qid: object) -> None:
    with pytest.raises(InvalidNameError, match="not a UUID"):
        provenance_key("run", qid)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(run=st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=4), qid=st.uuids())
def test_keys_parse_back_for_any_run(run: list[str], qid: uuid.UUID) -> None:
    name = "/".join(run)
    try:
        keys = {
            kind: fn(name, qid) for kind, fn in (("records", records_key), ("provenance", provenance_key))
        }
    except InvalidNameError:
        assert any(part in ("", ".", "..", RECORDS_DIR) for part in name.split("/"))
        return
    keys["report"] = report_key(name, qid)
    for kind, key in keys.items():
        assert key.startswith(records_prefix(name))
        assert key.count("/") == name.count("/") + 2  # no value adds or removes a segment
        assert parse_records_key(key) == (kind, qid)


@pytest.mark.parametrize(
    "key",
    [
        f"_records/{QID}.sqlite3",  # no run
        f"run/{QID}.sqlite3",  # not in _records
        f"run/_records/sub/{QID}.sqlite3",
        f"run/_records/{QID}.json",
        f"run/_records/{QID}.sqlite3.tmp",
        f"run/_records/{str(QID).upper()}.sqlite3",  # not canonical
        f"run/_records/{QID.hex}.sqlite3",
        f"/run/_records/{QID}.sqlite3",
        f"run//_records/{QID}.sqlite3",
        f"../_records/{QID}.sqlite3",
        f"run/../_records/{QID}.sqlite3",
        f"run/%2E%2E/_records/{QID}.sqlite3",
        f"run/.x/_records/{QID}.sqlite3",
        f"ru n/_records/{QID}.sqlite3",
        f"run%2f/_records/{QID}.sqlite3",  # lower-case escape: never written
        f"run\n/_records/{QID}.sqlite3",
        "run/_records/",
        "",
    ],
)
def test_parse_records_key_rejects_anything_else(key: str) -> None:
    with pytest.raises(InvalidNameError) as info:
        parse_records_key(key)
    assert isinstance(info.value, S3qbbError) and isinstance(info.value, ValueError)


def test_parse_records_key_kinds() -> None:
    assert parse_records_key(f"a/b/_records/{QID}.sqlite3") == ("records", QID)
    assert parse_records_key(f"a/b/_records/{QID}.provenance.json") == ("provenance", QID)
    assert parse_records_key(f"a/b/_records/{QID}.quantum.json") == ("report", QID)
    # No run part may be called _records: its files would sit in another run's records folder.
    for run in ("_records", "x/_records", "_records/y"):
        with pytest.raises(InvalidNameError, match="reserved for the folder of per-quantum records"):
            records_key(run, QID)


# --- redaction --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"aws_secret_access_key={SECRET}", "aws_secret_access_key=***"),
        (f"AWS_SECRET_ACCESS_KEY = {SECRET}\nnext", "AWS_SECRET_ACCESS_KEY = ***\nnext"),
        (f"aws_secret_access_key: '{SECRET}' done", "aws_secret_access_key: '***' done"),
        (f'{{"SecretAccessKey": "{SECRET}", "x": 1}}', '{"SecretAccessKey": "***", "x": 1}'),
        ("aws_session_token=IQoJb3JpZ2luX2VjEJr//////////wEaCXVz", "aws_session_token=***"),
        ('"SessionToken": "IQoJb3JpZ2lu"', '"SessionToken": "***"'),
        (
            "https://b.s3.amazonaws.com/k?X-Amz-Credential=x&X-Amz-Security-Token=tok&X-Amz-Signature=ab12",
            "https://b.s3.amazonaws.com/k?X-Amz-Credential=x&X-Amz-Security-Token=***&X-Amz-Signature=***",
        ),
        (f"key {KEY_ID}", "key AKIA***"),
        ("temporary ASIAY34FZKBOKMUTVV7A used", "temporary ASIA*** used"),
        (f"creds {KEY_ID} {SECRET}", "creds AKIA*** ***"),
        (f"{KEY_ID},{SECRET}\n", "AKIA***,***\n"),
        (
            f"[default]\naws_access_key_id = {KEY_ID}\nsecret = {SECRET}",
            "[default]\naws_access_key_id = AKIA***\nsecret = ***",
        ),
        (
            "postgresql+psycopg://butler:s3cr3t@db:5432/registry",
            "postgresql+psycopg://butler:***@db:5432/registry",
        ),
        ("see s3://user:pass@host/bucket and http://h/x", "see s3://user:***@host/bucket and http://h/x"),
        ("password=hunter2 user=x", "password=*** user=x"),
    ],
)
def test_redact_removes_credentials(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert redact(expected) == expected


@pytest.mark.parametrize(
    "text",
    [
        "dataset 5d3a2f6e-1b2c-4d3e-8f4a-5b6c7d8e9f02 not found",
        "5d3a2f6e1b2c4d3e8f4a5b6c7d8e9f02",
        "checksum mismatch: CRC32C:9ONpcA== != CRC32C:AAAAAA==",
        "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
        "s3://bucket/repo/run1/calexp/r/903334/calexp_16_5d3a2f6e-1b2c-4d3e-8f4a-5b6c7d8e9f02.fits",
        "http://127.0.0.1:9000/bucket/key?versionId=abc",
        "an ETag 1f3870be274f6c49b3e31a0c6728957f and sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709",
        f"lone base64 token {SECRET} without a key id",
        "AKIA is a prefix, AKIAshort is not a key, XAKIAIOSFODNN7EXAMPLE neither",
        "user@example.org wrote mailto:someone@example.org",
    ],
)
def test_redact_leaves_ordinary_text_alone(text: str) -> None:
    assert redact(text) == text


def b64_secret(raw: bytes) -> str:
    return base64.b64encode(raw).decode()[:40]


@settings(max_examples=200, deadline=None)
@given(
    key_id=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", min_size=16, max_size=16),
    raw=st.binary(min_size=30, max_size=30),
    sep=st.sampled_from([" ", ",", ":", "\n", " / ", "\t", "\n secret: "]),
    prefix=st.sampled_from(["", "creds ", "AWS "]),
    key_kind=st.sampled_from(["AKIA", "ASIA"]),
)
def test_redact_removes_random_key_pairs(
    key_id: str, raw: bytes, sep: str, prefix: str, key_kind: str
) -> None:
    access = key_kind + key_id
    secret = b64_secret(raw)
    for text in (f"{prefix}{access}{sep}{secret}", f"{prefix}{secret}{sep}{access}"):
        out = redact(text)
        assert access not in out and secret not in out
        assert redact(out) == out


@settings(max_examples=200, deadline=None)
@given(ids=st.lists(st.uuids(), max_size=5), raw=st.binary(min_size=4, max_size=4))
def test_redact_never_touches_uuids_or_crc32c(ids: list[uuid.UUID], raw: bytes) -> None:
    text = " ".join(
        [*(str(i) for i in ids), *(i.hex for i in ids), f"CRC32C:{base64.b64encode(raw).decode()}"]
    )
    assert redact(text) == text


# --- time and host ------------------------------------------------------------------


def test_utc_now_is_aware_utc() -> None:
    before = datetime.datetime.now(datetime.UTC)
    now = utc_now()
    assert now.tzinfo is datetime.UTC and now >= before


def test_host_info() -> None:
    info = host_info()
    assert info.pid == os.getpid()
    assert info.python_version == platform.python_version()
    assert info.host
    assert info.s3qbb_version and info.s3qbb_version[0].isdigit()
