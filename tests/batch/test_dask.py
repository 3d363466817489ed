"""s3qbb.batch.dask: a three-stage pipeline on a two-process LocalCluster against the moto server."""

from __future__ import annotations

import json
import sys
import uuid
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from s3qbb.batch.dask import DaskUnavailableError, QuantumResult, run_pipeline_on_dask
from s3qbb.core import DataCoordinate, DatasetRef, DatasetType, DimensionUniverse, Quantum
from s3qbb.errors import ConfigError
from s3qbb.provenance import QuantumExecutionReport, provenance_key, records_key, report_key
from s3qbb.repo import DatastoreConfig, RepoConfig
from s3qbb.testing.servers import S3TestEndpoint

if TYPE_CHECKING:
    from distributed import Client

    from s3qbb.butler.quantum_backed import QuantumBackedButler

pytestmark = pytest.mark.moto_server

DETECTORS = 3
VISIT = {"instrument": "DemoCam", "visit": 7}
TASKS = {
    "ingest": "s3qbb.demo:ingest",
    "calibrate": "s3qbb.demo:calibrate",
    "summarize": "s3qbb.demo:summarize",
}


def explode(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """A task that fails (imported by the workers from this module)."""
    raise RuntimeError(f"detector {quantum.dataId['detector'] if quantum.dataId else '?'} is broken")


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Client]:
    distributed = pytest.importorskip("distributed")
    # The scheduler's HTTP server (on 127.0.0.1) moves to a free port when another test's cluster holds 8787.
    warnings.filterwarnings("ignore", message="Port 8787 is already in use", category=UserWarning)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def repo_config(endpoint: S3TestEndpoint) -> RepoConfig:
    return RepoConfig(
        datastore=DatastoreConfig(root=f"s3://{endpoint.bucket}/repo", endpoint=endpoint.config)
    )


def pipeline(raw_run: str, run: str) -> tuple[Quantum, list[Quantum], Quantum]:
    """ingest -> one calibrate per detector -> summarize, built up front (no records for intermediates)."""
    u = DimensionUniverse()
    raw_t = DatasetType("raw", ["visit", "detector"], "NumpyArray", universe=u)
    calexp_t = DatasetType("calexp", ["visit", "detector"], "NumpyArray", universe=u)
    metrics_t = DatasetType("calexp_metrics", ["visit", "detector"], "StructuredDataDict", universe=u)
    summary_t = DatasetType("visit_summary", ["visit"], "StructuredDataDict", universe=u)
    raws = [DatasetRef(raw_t, {**VISIT, "detector": d}, raw_run) for d in range(DETECTORS)]
    metrics = [DatasetRef(metrics_t, {**VISIT, "detector": d}, run) for d in range(DETECTORS)]
    ingest = Quantum(taskLabel="ingest", taskName="s3qbb.demo.ingest", outputs=raws)
    calibrate = [
        Quantum(
            taskLabel="calibrate",
            taskName="s3qbb.demo.calibrate",
            dataId=DataCoordinate.standardize({**VISIT, "detector": d}, universe=u),
            inputs=[raws[d]],
            outputs=[DatasetRef(calexp_t, {**VISIT, "detector": d}, run), metrics[d]],
        )
        for d in range(DETECTORS)
    ]
    summarize = Quantum(
        taskLabel="summarize",
        taskName="s3qbb.demo.summarize",
        inputs=metrics,
        outputs=[DatasetRef(summary_t, VISIT, run)],
    )
    return ingest, calibrate, summarize


def keys(endpoint: S3TestEndpoint) -> set[str]:
    pages = endpoint.client.get_paginator("list_objects_v2").paginate(Bucket=endpoint.bucket)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def read_json(endpoint: S3TestEndpoint, key: str) -> Any:
    return json.loads(endpoint.client.get_object(Bucket=endpoint.bucket, Key=key)["Body"].read())


def test_pipeline_runs_in_dependency_order(moto_endpoint: S3TestEndpoint, dask_client: Client) -> None:
    ingest, calibrate, summarize = pipeline("dask/raw", "dask/run")
    quanta = [summarize, *calibrate, ingest]  # any order: dependencies come from the datasets

    results = run_pipeline_on_dask(quanta, TASKS, repo_config(moto_endpoint), client=dask_client)

    assert list(results) == [q.id for q in quanta]
    assert all(isinstance(r, QuantumResult) for r in results.values())
    assert {r.status for r in results.values()} == {"succeeded"}, [r.error for r in results.values()]
    assert all(r.exit_code == 0 and r.error is None and r.succeeded for r in results.values())
    assert len({r.worker for r in results.values()}) >= 1
    stored = keys(moto_endpoint)
    for quantum in quanta:
        run = "dask/raw" if quantum is ingest else "dask/run"
        expected = {f"repo/{k(run, quantum.id)}" for k in (records_key, provenance_key, report_key)}
        assert expected <= stored
        assert sorted(results[quantum.id].uploaded) == sorted(
            f"s3://{moto_endpoint.bucket}/{k}" for k in expected
        )
        report = QuantumExecutionReport.from_json(
            moto_endpoint.client.get_object(
                Bucket=moto_endpoint.bucket, Key=f"repo/{report_key(run, quantum.id)}"
            )["Body"].read()
        )
        assert report.status == "succeeded" and report.task_label == quantum.taskLabel
    # Every output is stored, at the path its producer recorded and handed on.
    for quantum in quanta:
        (records,) = results[quantum.id].records.values()
        assert records.dataset_ids == {ref.id for ref in quantum.output_refs()}
        for by_table in records.records.values():
            for infos in by_table.values():
                assert {f"repo/{info.path}" for info in infos} <= stored
    # The summary was computed from every detector's metrics, read with the records passed downstream.
    (summary_records,) = results[summarize.id].records.values()
    ((info,),) = (infos for by_table in summary_records.records.values() for infos in by_table.values())
    summary = read_json(moto_endpoint, f"repo/{info.path}")
    assert summary["detectors"] == list(range(DETECTORS))
    # Each calibrate quantum ran after ingest: its provenance lists the raw as an available, used input.
    for quantum in calibrate:
        provenance = read_json(moto_endpoint, f"repo/{provenance_key('dask/run', quantum.id)}")
        (raw,) = quantum.input_refs()
        assert [uuid.UUID(i) for i in provenance["actual_inputs"]] == [raw.id]


def test_failed_task_blocks_only_its_dependents(moto_endpoint: S3TestEndpoint, dask_client: Client) -> None:
    ingest, calibrate, summarize = pipeline("dask/raw2", "dask/run2")
    broken = calibrate[1]

    def task_for(quantum: Quantum) -> Any:
        return explode if quantum.id == broken.id else TASKS[quantum.taskLabel or ""]

    results = run_pipeline_on_dask(
        [ingest, *calibrate, summarize], task_for, repo_config(moto_endpoint), client=dask_client
    )

    failed = results[broken.id]
    assert (failed.status, failed.exit_code, failed.succeeded) == ("failed", 1, False)
    assert failed.error == "RuntimeError: detector 1 is broken"
    report = read_json(moto_endpoint, f"repo/{report_key('dask/run2', broken.id)}")
    assert report["status"] == "failed" and "detector 1 is broken" in report["error"]["message"]
    for quantum in (ingest, calibrate[0], calibrate[2]):  # the others still ran
        assert results[quantum.id].status == "succeeded"
    blocked = results[summarize.id]
    assert (blocked.status, blocked.exit_code, blocked.uploaded) == ("upstream-failed", None, ())
    assert str(broken.id) in (blocked.error or "")
    assert f"repo/{report_key('dask/run2', summarize.id)}" not in keys(moto_endpoint)  # never started


def test_unknown_task_and_bad_graphs_are_refused(moto_endpoint: S3TestEndpoint, dask_client: Client) -> None:
    ingest, calibrate, summarize = pipeline("dask/raw3", "dask/run3")
    config = repo_config(moto_endpoint)
    with pytest.raises(ConfigError, match=r"No task for quantum .* \(label 'summarize'\)"):
        run_pipeline_on_dask([ingest, summarize], {"ingest": TASKS["ingest"]}, config, client=dask_client)
    twin = Quantum(taskLabel="ingest", outputs=ingest.output_refs()[:1])
    with pytest.raises(ConfigError, match="output of two quanta"):
        run_pipeline_on_dask([ingest, twin], TASKS, config, client=dask_client)
    with pytest.raises(ConfigError, match="appears twice"):
        run_pipeline_on_dask([ingest, ingest], TASKS, config, client=dask_client)
    a, b = calibrate[0].output_refs()[0], calibrate[1].output_refs()[0]
    loop = [Quantum(taskLabel="x", inputs=[a], outputs=[b]), Quantum(taskLabel="y", inputs=[b], outputs=[a])]
    with pytest.raises(ConfigError, match="cycle"):
        run_pipeline_on_dask(loop, {"x": explode, "y": explode}, config, client=dask_client)
    assert keys(moto_endpoint) == set()  # nothing was submitted


def test_task_that_cannot_be_imported_is_not_started(
    moto_endpoint: S3TestEndpoint, dask_client: Client
) -> None:
    ingest, _, _ = pipeline("dask/raw4", "dask/run4")
    (result,) = run_pipeline_on_dask(
        [ingest], {"ingest": "s3qbb.demo:no_such_task"}, repo_config(moto_endpoint), client=dask_client
    ).values()
    assert (result.status, result.exit_code) == ("not-started", 2)
    assert "Cannot load task 's3qbb.demo:no_such_task'" in (result.error or "")


def test_missing_dask_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # "import distributed" now raises ImportError
    with pytest.raises(
        DaskUnavailableError, match=r"install the 'dask' extra: pip install 's3qbb\[dask\]'"
    ) as info:
        run_pipeline_on_dask([], {}, {"datastore": {"cls": "memory"}})
    assert isinstance(info.value, ImportError)


def test_a_quantum_result_pickles_with_or_without_records() -> None:
    import pickle
    from types import MappingProxyType

    empty = QuantumResult(uuid.uuid4(), "label", "succeeded", 0)
    given = QuantumResult(uuid.uuid4(), "label", "failed", 1, records=MappingProxyType({}))
    for result in (empty, given):
        assert pickle.loads(pickle.dumps(result)) == result
