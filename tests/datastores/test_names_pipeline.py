"""Hostile names through the whole key pipeline, on the moto server.

put -> the butler's exit uploads the quantum's ``_records`` files -> ingest into a
SQLite registry -> get through a new butler built from what the registry holds.
Data ID values and run names that no store can hold (lone surrogates, control
characters, a ``_records`` run part) are refused when the ref is made, with a
message that says why; everything else must survive every step.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from s3qbb.batch.execution import run_quantum
from s3qbb.core import DatasetRef, DatasetType, DimensionUniverse, Quantum
from s3qbb.core.records import DatastoreRecordData, StoredFileInfo
from s3qbb.datastores.templates import sanitize_run
from s3qbb.errors import ConfigError, DataIdError
from s3qbb.registry import Registry
from s3qbb.testing.servers import S3TestEndpoint

pytestmark = pytest.mark.moto_server

UNIVERSE = DimensionUniverse()
DATASET_TYPE = DatasetType("hostile", ["band", "detector"], "StructuredDataDict", universe=UNIVERSE)
# Values as whole key segments (instrument, band) and inside one (the file name).
TEMPLATE = "{run}/{datasetType}/{instrument}/{band}/{band}_{detector}_{id}"
TEXT_CHARS = st.characters(exclude_categories=("Cs", "Cc"))  # what a data ID value may hold
HOSTILE_VALUES = [
    "..",
    ".",
    "/",
    "%2F",
    "%",
    "%2E.",
    " ",
    "a b/../c",
    "_records",
    "\u200b",
    "日本",
    "\U0001f600",
    "\u0085",
    "x" * 256,
    "é" * 256,
]
VALUE = st.one_of(
    st.sampled_from(HOSTILE_VALUES),
    st.text(TEXT_CHARS, min_size=1, max_size=40),
    st.builds(
        lambda text, times: (text * times)[:256],
        st.text(TEXT_CHARS, min_size=1, max_size=6),
        st.integers(20, 90),
    ),
)
RUN_PART = st.one_of(
    st.sampled_from(["...", "%2F", "%", "a b", "é", "~x", "-", "records", "x" * 60]),
    st.text(TEXT_CHARS.filter(lambda c: c != "/"), min_size=1, max_size=20),
).filter(lambda part: part not in (".", "..", "_records"))
RUN = st.lists(RUN_PART, min_size=1, max_size=3).map("/".join)


@pytest.fixture
def pipeline(moto_endpoint: S3TestEndpoint) -> Iterator[tuple[S3TestEndpoint, Registry, dict[str, Any]]]:
    config = {
        "datastore": {
            "root": f"s3://{moto_endpoint.bucket}/repo",
            "endpoint": moto_endpoint.config,
            "templates": {"hostile": TEMPLATE},
        },
        "cache": {"enabled": False},
    }
    with tempfile.TemporaryDirectory() as tmp, Registry.from_url(Path(tmp) / "registry.sqlite3") as registry:
        yield moto_endpoint, registry, config


def _put(butler: Any, quantum: Quantum) -> None:
    (ref,) = quantum.output_refs()
    butler.put({"value": dict(ref.dataId)["band"]}, ref)


@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(value=VALUE, run=RUN, instrument=VALUE)
@example(value="..", run="x/...", instrument="..")
@example(value="%2F", run="a b/%", instrument="..")
@example(value="/", run="u/someone/run1", instrument="..")
@example(value="x" * 256, run="x" * 200, instrument="..")
def test_hostile_names_survive_put_exit_ingest_get(
    pipeline: tuple[S3TestEndpoint, Registry, dict[str, Any]], value: str, run: str, instrument: str
) -> None:
    endpoint, registry, config = pipeline
    run = f"{uuid.uuid4().hex[:8]}/{run}"[:256]  # one fresh run per example, in one bucket
    data_id = {"instrument": instrument, "band": value, "detector": 1}
    ref = DatasetRef(DATASET_TYPE, data_id, run)

    # put, then the butler's exit writes the quantum's three _records files.
    outcome = run_quantum(config, Quantum(taskLabel="put", outputs=[ref]), _put)
    assert outcome.exit_code == 0, outcome.error
    assert outcome.finish is not None and outcome.finish.status == "succeeded"
    assert None not in (outcome.finish.records_uri, outcome.finish.provenance_uri, outcome.finish.report_uri)

    # ingest the run into the registry.
    summary = registry.ingest_run(f"s3://{endpoint.bucket}/repo/{sanitize_run(run)}/", config=endpoint.config)
    assert summary.failures == []
    assert (summary.quanta_added, summary.datasets_added, summary.records_added) == (1, 1, 1)
    (row,) = registry.datasets(run=run)
    assert (row.id, row.dataset_type, row.data_id) == (ref.id, "hostile", data_id)

    # get, through a new butler that knows the dataset only from the registry.
    assert row.run is not None and row.data_id is not None
    known = DatasetRef(DATASET_TYPE, row.data_id, row.run, id=row.id)
    (record,) = row.records
    info = StoredFileInfo(
        dataset_id=row.id,
        path=record.path,
        formatter=record.formatter,
        storage_class=record.storage_class,
        component=record.component,
        checksum=record.checksum,
        file_size=record.file_size,
    )
    records = {record.datastore_name: DatastoreRecordData({row.id: {"file_datastore_records": [info]}})}
    read: list[Any] = []
    reader = Quantum(taskLabel="get", inputs=[known], datastore_records=records)
    outcome = run_quantum(config, reader, lambda butler, q: read.append(butler.get(known)))
    assert outcome.exit_code == 0, outcome.error
    assert read == [{"value": value}]


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("r\udae3", "lone surrogate U\\+DAE3"),
        ("\udc80", "lone surrogate U\\+DC80"),
        ("nul\x00", "control character U\\+0000"),
        ("line\nbreak", "control character U\\+000A"),
    ],
)
def test_unstorable_data_id_values_are_refused_at_creation(value: str, why: str) -> None:
    with pytest.raises(DataIdError, match=why):
        DatasetRef(DATASET_TYPE, {"instrument": "i", "band": value, "detector": 1}, "run")


@pytest.mark.parametrize("run", ["x/_records", "_records", "a/_records/b", "r\udae3", "tab\trun"])
def test_unstorable_run_names_are_refused_at_creation(run: str) -> None:
    with pytest.raises(DataIdError, match="Run name") as info:
        DatasetRef(DATASET_TYPE, {"instrument": "i", "band": "g", "detector": 1}, run)
    if "_records" in run:
        text = str(info.value)
        assert "reserved" in text and "could never be ingested" in text and "Rename that part" in text


def test_ingesting_a_records_folder_is_refused(
    pipeline: tuple[S3TestEndpoint, Registry, dict[str, Any]],
) -> None:
    endpoint, registry, config = pipeline
    ref = DatasetRef(DATASET_TYPE, {"instrument": "i", "band": "g", "detector": 1}, "x")
    assert run_quantum(config, Quantum(taskLabel="put", outputs=[ref]), _put).exit_code == 0
    with pytest.raises(ConfigError, match="points into a '_records' folder"):
        registry.ingest_run(f"s3://{endpoint.bucket}/repo/x/_records/", config=endpoint.config)
    assert registry.datasets() == []  # not silently read as run "x"


def test_the_ingest_command_refuses_a_records_folder(
    pipeline: tuple[S3TestEndpoint, Registry, dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    from s3qbb.cli.main import main

    endpoint, _, config = pipeline
    ref = DatasetRef(DATASET_TYPE, {"instrument": "i", "band": "g", "detector": 1}, "x")
    assert run_quantum(config, Quantum(taskLabel="put", outputs=[ref]), _put).exit_code == 0
    admin = endpoint.server.credentials("admin")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", admin.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", admin.secret_access_key)
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    capsys.readouterr()

    code = main(["ingest", f"s3://{endpoint.bucket}/repo/x/_records/", "--registry", url])

    err = capsys.readouterr().err
    assert code == 2  # a usage error: do not retry
    assert "points into a '_records' folder" in err
    assert f"s3://{endpoint.bucket}/repo/x/" in err  # what to give instead
    with Registry.from_url(url) as registry:
        assert registry.datasets() == []
