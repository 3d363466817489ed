"""Tests of s3qbb.provenance.model.QuantumExecutionReport and its parts."""

from __future__ import annotations

import datetime
import json
import uuid
from pathlib import Path
from typing import Any

import pydantic
import pytest
from report_helpers import T0, make

from s3qbb.errors import DatasetNotFoundError, RecordDataError
from s3qbb.provenance import (
    REPORT_VERSION,
    ErrorInfo,
    QuantumDatasetCounts,
    QuantumExecutionReport,
    QuantumProvenanceData,
)
from s3qbb.provenance.model import MAX_MESSAGE_CHARS, TRACEBACK_LINES

GOLDEN = Path(__file__).parent / "golden" / "quantum_report.json"
KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as err:
        return err


# --- golden file and round trips ------------------------------------------------


def test_golden_report_re_serialises_identically() -> None:
    text = GOLDEN.read_bytes()
    report = QuantumExecutionReport.from_json(text, source=str(GOLDEN))
    assert report.to_json() == text
    assert report.status == "failed" and report.error is not None
    assert report.error.type == "s3qbb.errors.DatasetNotFoundError"
    assert report.started_at.tzinfo == datetime.UTC
    assert report.requests == {"GetObject": 12, "HeadObject": 3, "PutObject": 2}
    assert report.datasets.available_inputs == 2


def test_round_trip_and_determinism() -> None:
    report = make(requests={"PutObject": 2, "GetObject": 1}, datastores={"s3": "s3://b/r", "a": "mem://"})
    text = report.to_json()
    assert QuantumExecutionReport.from_json(text) == report
    parsed = json.loads(text)
    assert list(parsed)[:2] == ["format", "version"]
    assert parsed["format"] == "s3qbb.quantum" and parsed["version"] == REPORT_VERSION
    assert list(parsed["requests"]) == ["GetObject", "PutObject"]
    assert list(parsed["datastores"]) == ["a", "s3"]
    assert (
        make(
            requests={"GetObject": 1, "PutObject": 2}, datastores={"a": "mem://", "s3": "s3://b/r"}
        ).to_json()
        == text
    )


def test_timestamps_are_stored_in_utc() -> None:
    tz = datetime.timezone(datetime.timedelta(hours=2))
    report = make(started_at=T0.astimezone(tz), ended_at=(T0 + datetime.timedelta(seconds=1)).astimezone(tz))
    assert report.started_at == T0 and report.started_at.utcoffset() == datetime.timedelta(0)
    assert json.loads(report.to_json())["started_at"] == "2024-05-06T07:08:09Z"


# --- versioning -------------------------------------------------------------------


def test_newer_version_is_refused_with_upgrade_hint() -> None:
    data = json.loads(make().to_json())
    data["version"] = REPORT_VERSION + 1
    data["new_field_from_the_future"] = {"x": 1}
    with pytest.raises(RecordDataError, match="upgrade s3qbb") as info:
        QuantumExecutionReport.from_json(json.dumps(data), source="r.quantum.json")
    assert "r.quantum.json" in str(info.value)


@pytest.mark.parametrize("version", [0, -1, "one", None])
def test_bad_versions_are_refused(version: Any) -> None:
    data = json.loads(make().to_json())
    data["version"] = version
    with pytest.raises(RecordDataError, match="version"):
        QuantumExecutionReport.from_json(json.dumps(data))


def test_other_format_is_refused() -> None:
    data = json.loads(make().to_json())
    data["format"] = "something.else"
    with pytest.raises(RecordDataError, match="not an s3qbb quantum report"):
        QuantumExecutionReport.from_json(json.dumps(data))


def test_provenance_file_is_not_a_report() -> None:
    golden = Path(__file__).parent / "golden" / "daf_butler_provenance.json"
    with pytest.raises(RecordDataError, match="cannot be read"):
        QuantumExecutionReport.from_json(golden.read_bytes())


def test_unknown_field_in_current_version_is_refused() -> None:
    data = json.loads(make().to_json())
    data["extra"] = 1
    with pytest.raises(RecordDataError, match="extra"):
        QuantumExecutionReport.from_json(json.dumps(data))


# --- consistency --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"status": "failed"}, "must describe its error"),
        ({"error": ErrorInfo(type="ValueError", message="x")}, "cannot have an error"),
        ({"ended_at": T0 - datetime.timedelta(seconds=1)}, "before started_at"),
        ({"started_at": datetime.datetime(2024, 1, 1)}, "timezone"),
        ({"duration_s": -1.0}, "greater than or equal"),
        ({"duration_s": float("nan")}, "finite"),
        ({"retries": -1}, "greater than or equal"),
        ({"requests": {"GetObject": -2}}, "greater than or equal"),
        ({"status": "running"}, "status"),
        ({"task_label": ""}, "task_label"),
        ({"run": "bad\x00run"}, "control"),
    ],
)
def test_inconsistent_reports_are_rejected(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        make(**changes)


def test_recovered_status_may_have_or_lack_an_error() -> None:
    assert make(status="recovered").error is None
    assert make(status="recovered", error=ErrorInfo(type="X", message="m")).error is not None


def test_dataset_counts_from_provenance_and_limits() -> None:
    a, b, c = (uuid.UUID(int=i) for i in (1, 2, 3))
    provenance = QuantumProvenanceData(
        predicted_inputs={a, b},
        available_inputs={a},
        actual_inputs={a},
        predicted_outputs={c},
        actual_outputs=set(),
        datastore_records={},
    )
    counts = QuantumDatasetCounts.from_provenance(provenance)
    assert counts.model_dump() == {
        "predicted_inputs": 2,
        "available_inputs": 1,
        "actual_inputs": 1,
        "predicted_outputs": 1,
        "actual_outputs": 0,
    }
    with pytest.raises(pydantic.ValidationError, match="actual_outputs"):
        QuantumDatasetCounts(predicted_outputs=1, actual_outputs=2)


# --- credentials never stored -----------------------------------------------------------


def test_error_from_exception_redacts_message_notes_and_traceback() -> None:
    def fail() -> None:
        local_secret = f"aws_secret_access_key={SECRET}"  # noqa: F841 - appears in the source line only
        err = DatasetNotFoundError(f"cannot read https://user:hunter2@host/x with key {KEY_ID} {SECRET}")
        err.add_note("credentials: aws_session_token=FwoGZXIvYXdzEB8aDG")
        raise err

    try:
        fail()
    except DatasetNotFoundError as err:
        info = ErrorInfo.from_exception(err)
    text = info.model_dump_json()
    for secret in (SECRET, KEY_ID, "hunter2", "FwoGZXIvYXdzEB8aDG"):
        assert secret not in text
    assert info.type == "s3qbb.errors.DatasetNotFoundError"
    assert "https://user:***@host/x" in info.message
    assert "aws_session_token=***" in info.message
    assert info.traceback_tail[0].startswith("Traceback") or len(info.traceback_tail) == TRACEBACK_LINES
    # The formatted traceback ends with the exception line and its notes.
    assert info.traceback_tail[-2].startswith("s3qbb.errors.DatasetNotFoundError: cannot read")
    assert info.traceback_tail[-1] == "credentials: aws_session_token=***"


def test_builtin_exception_type_name_and_traceback_tail_is_bounded() -> None:
    assert ErrorInfo.from_exception(raised(RecursionError("x"))).type == "RecursionError"
    err = raised(ValueError("deep\n" + "\n".join(f"line {i}" for i in range(50))))
    info = ErrorInfo.from_exception(err)
    assert len(info.traceback_tail) == TRACEBACK_LINES
    assert info.traceback_tail[-1] == "line 49" and info.traceback_tail[0] == "line 30"


def test_unraised_exception_has_no_traceback_lines_but_its_message() -> None:
    info = ErrorInfo.from_exception(KeyError("k"))
    assert info.type == "KeyError"
    assert info.traceback_tail == ["KeyError: 'k'"]


def test_long_messages_are_cut_after_redaction() -> None:
    # The secret sits at the cut point: redaction must happen before truncation.
    message = "x" * (MAX_MESSAGE_CHARS - 30) + f" {KEY_ID} {SECRET} " + "y" * 100
    info = ErrorInfo(type="E", message=message)
    assert len(info.message) <= MAX_MESSAGE_CHARS and info.message.endswith("...")
    assert SECRET[:10] not in info.message and KEY_ID[4:] not in info.message


def test_direct_construction_of_error_and_warnings_is_redacted_too(monkeypatch: pytest.MonkeyPatch) -> None:
    # The patterns alone: a credential another test of this worker registered (process-wide) would be
    # masked whole ("***"), not as a key ID ("AKIA***").
    from s3qbb import redaction

    monkeypatch.setattr(redaction, "_SECRETS", set())
    report = make(
        status="failed",
        error=ErrorInfo(type="E", message=f"aws_secret_access_key = '{SECRET}'", traceback_tail=[KEY_ID]),
        warnings=[f"retrying with {KEY_ID}", "plain warning"],
    )
    text = report.to_json().decode()
    assert SECRET not in text and KEY_ID not in text
    assert report.error is not None and report.error.message == "aws_secret_access_key = '***'"
    assert report.warnings == ["retrying with AKIA***", "plain warning"]
    # Reading it back does not change it (redaction is idempotent).
    assert QuantumExecutionReport.from_json(report.to_json()) == report


@pytest.mark.parametrize(
    ("root", "expected"),
    [
        ("s3://bucket/repo", "s3://bucket/repo"),
        ("s3://bucket/repo/?versionId=3#frag", "s3://bucket/repo/"),
        ("https://user:pw@host:9000/bucket/repo?X-Amz-Signature=abc", "https://host:9000/bucket/repo"),
        ("file:///data/repo", "file:///data/repo"),
        ("/data/repo", "/data/repo"),
    ],
)
def test_datastore_roots_are_reduced_to_root_uris(root: str, expected: str) -> None:
    assert make(datastores={"main": root}).datastores == {"main": expected}


# --- digest ---------------------------------------------------------------------------------


def _with_refs() -> QuantumExecutionReport:
    from s3qbb.core.wire import dataset_ref_to_simple
    from s3qbb.testing.data import RefMaker

    maker = RefMaker()
    refs = [maker.make(run="u/someone/run1", detector=2), maker.make("Bytes", run="raw/run4", detector=3)]
    return make(refs=[dataset_ref_to_simple(r) for r in refs], warnings=["caf\u00e9 warning"])


def test_report_carries_the_digest_of_its_content() -> None:
    report = _with_refs()
    text = report.to_json()
    written = json.loads(text)
    assert list(written)[-1] == "digest" and written["digest"].startswith("sha256:")
    read = QuantumExecutionReport.from_json(text)
    assert read == report and read.digest is None  # not part of the report's value
    assert read.to_json() == text


def test_the_spliced_digest_is_what_dumping_the_fields_with_it_writes() -> None:
    """to_json adds the digest to the dumped text: the same bytes as dumping fields and digest together."""
    from s3qbb.provenance._common import _dump
    from s3qbb.provenance.report import _digest

    failed = make(status="failed", error=ErrorInfo(type="E", message="caf\u00e9", traceback_tail=["a", "b"]))
    for report in (_with_refs(), make(), failed):
        text = report.to_json()
        fields = json.loads(text)
        del fields["digest"]
        assert text == _dump({**fields, "digest": _digest(fields)})


def test_a_report_as_written_is_checked_from_its_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The file to_json wrote is checked by hashing it back, without dumping its fields again."""
    import s3qbb.provenance.report as module

    report = _with_refs()
    text = report.to_json()

    def no_dump(dumped: object) -> str:
        raise AssertionError("the intact file was dumped again")

    monkeypatch.setattr(module, "_digest", no_dump)
    assert QuantumExecutionReport.from_json(text) == report
    assert QuantumExecutionReport.from_json(text.decode("ascii")) == report


@pytest.mark.parametrize("indent", [None, 4])
def test_a_report_rewritten_with_the_same_content_is_still_read(indent: int | None) -> None:
    """Another tool's layout of the same JSON (re-indented, one line) fails the byte check, not the digest."""
    report = _with_refs()
    rewritten = json.dumps(json.loads(report.to_json()), indent=indent)
    assert QuantumExecutionReport.from_json(rewritten) == report


def test_every_changed_byte_of_a_report_is_found() -> None:
    """Flip each bit of each byte: the report is refused, or reads as the same report (an escape's case)."""
    report = _with_refs()
    text = report.to_json()
    accepted_same = 0
    for i in range(len(text)):
        for bit in range(8):
            damaged = bytearray(text)
            damaged[i] ^= 1 << bit
            try:
                read = QuantumExecutionReport.from_json(bytes(damaged), source="q.quantum.json")
            except RecordDataError as err:
                assert "q.quantum.json" in str(err)
                continue
            assert read == report, (i, bit)  # e.g. "\u00e9" read as "\u00E9": the same text
            accepted_same += 1
    assert accepted_same < 16


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b'"run": "raw/run4"', b'"run": "raw/run5"'),  # a ref's run, one bit off
        (b'"detector": 2', b'"detector": 3'),  # a ref's data ID
        (b'"name": "dt_Bytes"', b'"name": "dt_Bytet"'),  # a ref's dataset type
        (b'"status": "succeeded"', b'"status": "recovered"'),
    ],
)
def test_a_valid_but_changed_report_is_refused(old: bytes, new: bytes) -> None:
    text = _with_refs().to_json()
    assert old in text
    with pytest.raises(RecordDataError, match="does not match its digest") as info:
        QuantumExecutionReport.from_json(text.replace(old, new, 1), source="s3://b/r/_records/q.quantum.json")
    assert "s3://b/r/_records/q.quantum.json" in str(info.value) and "--recover" in str(info.value)


def test_a_current_report_without_digest_is_refused_and_version_1_needs_none() -> None:
    data = json.loads(make().to_json())
    del data["digest"]
    with pytest.raises(RecordDataError, match="has no digest"):
        QuantumExecutionReport.from_json(json.dumps(data))
    data["version"] = 1
    assert QuantumExecutionReport.from_json(json.dumps(data)).version == 1
