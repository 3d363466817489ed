"""Reports s3qbb writes read back equal, whatever their text; damaged ones are refused by name."""

from __future__ import annotations

import os
from typing import Any

import pytest
from report_helpers import make

from s3qbb.errors import RecordDataError
from s3qbb.provenance import ErrorInfo, QuantumExecutionReport

SOURCE = "s3://bucket/repo/run/_records/q.report.json"


def _failed_on_an_undecodable_file_name() -> QuantumExecutionReport:
    name = os.fsdecode(b"/data/caf\xe9.fits")  # Linux file names need not be UTF-8: "\udce9"
    try:
        raise FileNotFoundError(2, "No such file or directory", name)
    except FileNotFoundError as err:
        error = ErrorInfo.from_exception(err)
    return make(status="failed", error=error, warnings=[f"cannot read {name}", "lone \ud83d high"])


def test_a_report_naming_an_undecodable_file_reads_back_equal() -> None:
    report = _failed_on_an_undecodable_file_name()
    assert report.error is not None and "caf\\udce9.fits" in report.error.message
    assert report.warnings == ["cannot read /data/caf\\udce9.fits", "lone \\ud83d high"]
    data = report.to_json()
    assert QuantumExecutionReport.from_json(data, source=SOURCE) == report
    assert QuantumExecutionReport.from_json(data.decode("ascii"), source=SOURCE) == report


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d[: len(d) // 2],
        lambda d: d[:-3],
        lambda d: d + b"x",
        lambda d: b"\xef\xbb\xbf" + d.replace(b"worker-1", b"worker-2"),
        lambda d: d.replace(b"\n", b"\r\n").replace(b"worker-1", b"worker-2"),
        lambda d: d.replace(b'"version": 2', b'"version": 3'),
        lambda d: d.replace(b"isr", b"Isr", 1),
    ],
    ids=["half", "tail-cut", "appended", "bom-edited", "crlf-edited", "newer", "one-letter"],
)
def test_damaged_reports_are_refused_naming_the_source(damage: Any) -> None:
    data = damage(make(warnings=["caf\u00e9 \U0001f600"]).to_json())
    with pytest.raises(RecordDataError) as info:
        QuantumExecutionReport.from_json(data, source=SOURCE)
    assert repr(SOURCE) in str(info.value)
