"""Ingest of truncated, empty, wrong-version and hostile files: each reported, nothing else lost."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from registry_data import ROOT, SyntheticRuns, make_ref

from s3qbb.datastores.templates import sanitize_run
from s3qbb.provenance import provenance_key, records_key, report_key
from s3qbb.provenance._common import _dump
from s3qbb.provenance.report import _digest
from s3qbb.registry import Registry
from s3qbb.testing.servers import S3TestEndpoint

pytestmark = pytest.mark.moto_server

RUN = "u/someone/hostile"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def _edit_json(data: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    obj = json.loads(data)
    change(obj)
    return json.dumps(obj).encode()


def _edit_report(data: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    """Change a report and sign it again (its digest matches): what a buggy or hostile writer makes."""
    obj = json.loads(data)
    obj.pop("digest")
    change(obj)
    return _dump(obj | {"digest": _digest(obj)})


def _set_first_input(obj: dict[str, Any], value: str) -> None:
    obj["predicted_inputs"][0] = value
    obj["available_inputs"] = []
    obj["actual_inputs"] = []


def _records_path(obj: dict[str, Any], path: str) -> None:
    for simple in obj["datastore_records"].values():
        for by_dataset in simple["records"].values():
            for by_table in by_dataset.values():
                for rows in by_table.values():
                    rows[0]["path"] = path


def _file_size(obj: dict[str, Any], size: int) -> None:
    for simple in obj["datastore_records"].values():
        for by_dataset in simple["records"].values():
            for by_table in by_dataset.values():
                for rows in by_table.values():
                    rows[0]["file_size"] = size


def _ref_type_name(obj: dict[str, Any], name: str) -> None:
    obj["refs"][-1]["datasetType"]["name"] = name


def _ref_data_id(obj: dict[str, Any], value: Any) -> None:
    obj["refs"][-1]["dataId"]["dataId"]["visit"] = value


def test_every_bad_file_is_reported_and_the_rest_ingested(
    registry: Registry, moto_endpoint: S3TestEndpoint
) -> None:
    runs = SyntheticRuns(moto_endpoint.client, moto_endpoint.bucket)
    good = [
        runs.quantum(RUN, "good", [make_ref("raw", "raw", visit=i)], [make_ref("calexp", RUN, visit=i)])
        for i in range(3)
    ]
    expected: dict[str, str] = {}  # key -> a word the reason must contain

    def bad_quantum(
        what: str,
        *,
        provenance: Callable[[bytes], bytes] | None = None,
        report: Callable[[bytes], bytes] | None = None,
        blame: str = "provenance",
    ) -> None:
        q = runs.quantum(
            RUN, what, [make_ref("raw", "raw", visit=100)], [make_ref("calexp", RUN, visit=100)], write=False
        )
        prov_bytes = q.provenance.to_json()
        rep_bytes = q.report.to_json()
        runs.put(provenance_key(RUN, q.quantum_id), provenance(prov_bytes) if provenance else prov_bytes)
        runs.put(report_key(RUN, q.quantum_id), report(rep_bytes) if report else rep_bytes)
        runs.put(records_key(RUN, q.quantum_id), q.records)
        key = {"provenance": provenance_key, "report": report_key, "records": records_key}[blame]
        expected[f"s3://{runs.bucket}/{ROOT}/{key(RUN, q.quantum_id)}"] = what

    bad_quantum("truncated", provenance=lambda b: b[: len(b) // 2])
    bad_quantum("empty", provenance=lambda b: b"")
    bad_quantum("oversized", provenance=lambda b: b + b" " * 200_000)
    bad_quantum("not-json-object", provenance=lambda b: b"[]")
    bad_quantum("not-utf8", provenance=lambda b: b"\xff\xfe" + b)
    bad_quantum(
        "invalid-uuid", provenance=lambda b: _edit_json(b, lambda o: _set_first_input(o, "not-a-uuid"))
    )
    bad_quantum(
        "traversal", provenance=lambda b: _edit_json(b, lambda o: _records_path(o, "../../etc/passwd"))
    )
    # The records file (size 100) disagrees with the provenance before the value reaches the registry.
    bad_quantum(
        "huge-int", provenance=lambda b: _edit_json(b, lambda o: _file_size(o, 10**30)), blame="records"
    )
    bad_quantum(
        "newer-version", report=lambda b: _edit_json(b, lambda o: o.update(version=99)), blame="report"
    )
    bad_quantum(
        "other-quantum",
        report=lambda b: _edit_report(b, lambda o: o.update(quantum_id=str(uuid.uuid4()))),
        blame="report",
    )
    bad_quantum("long-name", report=lambda b: _edit_report(b, lambda o: _ref_type_name(o, "t" * 300)))
    bad_quantum("nul-name", report=lambda b: _edit_report(b, lambda o: _ref_type_name(o, "bad\x00type")))
    bad_quantum(
        "nested-data-id",
        report=lambda b: _edit_report(b, lambda o: _ref_data_id(o, {"x": [1]})),
        blame="report",
    )
    # One bit off in a ref's run, the file still valid JSON of valid fields: the digest tells.
    bad_quantum(
        "flipped-run",
        report=lambda b: b.replace(f'"run": "{RUN}"'.encode(), b'"run": "u/someone/hostilf"', 1),
        blame="report",
    )
    bad_quantum(
        "secret-in-junk",
        provenance=lambda b: f'{{"aws_secret_access_key": "{SECRET}"'.encode(),
    )
    # A report without its provenance file: an upload that never finished.
    lonely = uuid.uuid4()
    runs.put(report_key(RUN, lonely), b"{}")
    expected[f"s3://{runs.bucket}/{ROOT}/{report_key(RUN, lonely)}"] = "no provenance file"
    # Records and provenance without the report, which s3qbb uploads last: a job killed during its uploads.
    cut = runs.quantum(
        RUN, "cut", [make_ref("raw", "raw", visit=101)], [make_ref("calexp", RUN, visit=101)], write=False
    )
    runs.put(records_key(RUN, cut.quantum_id), cut.records)
    runs.put(provenance_key(RUN, cut.quantum_id), cut.provenance.to_json())
    expected[f"s3://{runs.bucket}/{ROOT}/{provenance_key(RUN, cut.quantum_id)}"] = "no report"
    # Keys under _records/ that s3qbb never writes, path traversal included.
    prefix = f"{sanitize_run(RUN)}/_records/"
    for name in (
        "../escape.provenance.json",
        "sub/../../x.provenance.json",
        "NOT-A-UUID.provenance.json",
        f"{str(uuid.uuid4()).upper()}.provenance.json",
        "README.txt",
    ):
        expected[f"s3://{runs.bucket}/{ROOT}/{runs.put(prefix + name, b'{}').removeprefix(ROOT + '/')}"] = (
            "not a per-quantum file"
        )

    summary = registry.ingest_run(
        runs.uri(RUN), config=moto_endpoint.config, max_file_bytes=100_000, batch_size=4
    )

    reported = dict(summary.failures)
    assert set(reported) == set(expected), sorted(set(reported) ^ set(expected))
    assert len(summary.failures) == len(expected)  # each once
    # The good quanta are all in, and nothing of the bad ones.
    assert summary.quanta_added == 3
    assert registry.counts()["quantum"] == 3
    assert {registry.quantum(q.quantum_id) is not None for q in good} == {True}
    assert {row.id for row in registry.datasets(run=RUN)} == {q.outputs[0].id for q in good}
    reasons = {what: reported[key] for key, what in expected.items()}
    assert "empty" in reasons["empty"]
    assert "more than the 100000 allowed" in reasons["oversized"]
    assert "not valid QuantumProvenanceData" in reasons["truncated"]
    assert "newer than this s3qbb" in reasons["newer-version"]
    assert "describes quantum" in reasons["other-quantum"]
    assert "does not match its digest" in reasons["flipped-run"] and "--recover" in reasons["flipped-run"]
    assert "'..' segment" in reasons["traversal"]
    assert "disagrees with the provenance" in reasons["huge-int"] and str(10**30) in reasons["huge-int"]
    assert "more than the 128 allowed" in reasons["long-name"]
    assert "control characters" in reasons["nul-name"]
    assert "upload did not finish" in reasons["no provenance file"]
    assert "no execution report" in reasons["no report"] and "upload did not finish" in reasons["no report"]
    assert "s3qbb ingest --recover" in reasons["no report"]
    assert all(reason for reason in reported.values())
    assert all(SECRET not in reason for reason in reported.values())
    # A second ingest reports the same files again (they are still bad) and adds nothing.
    again = registry.ingest_run(runs.uri(RUN), config=moto_endpoint.config, max_file_bytes=100_000)
    assert again.quanta_added == 0 and set(dict(again.failures)) == set(expected)


def test_fixed_file_is_ingested_later(registry: Registry, moto_endpoint: S3TestEndpoint) -> None:
    runs = SyntheticRuns(moto_endpoint.client, moto_endpoint.bucket)
    q = runs.quantum(RUN, "later", [], [make_ref("calexp", RUN, visit=1)], write=False)
    runs.put(provenance_key(RUN, q.quantum_id), q.provenance.to_json()[:10])
    runs.put(report_key(RUN, q.quantum_id), q.report.to_json())
    runs.put(records_key(RUN, q.quantum_id), q.records)
    first = registry.ingest_run(runs.uri(RUN), config=moto_endpoint.config)
    assert first.quanta_added == 0 and len(first.failures) == 1
    runs.client.delete_object(Bucket=runs.bucket, Key=f"{ROOT}/{provenance_key(RUN, q.quantum_id)}")
    runs.put(provenance_key(RUN, q.quantum_id), q.provenance.to_json())
    fixed = registry.ingest_run(runs.uri(RUN), config=moto_endpoint.config)
    assert (fixed.quanta_added, fixed.failures) == (1, [])
