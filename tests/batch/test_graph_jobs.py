"""``s3qbb run-quantum --graph``: a three-stage graph on S3 run job by job, index from each batch system."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from graph_helpers import DETECTORS, EXPECTED_SUMMARY, GraphJob, make_job, read_dataset, task_calls

from s3qbb.batch.jobindex import INDEX_VARIABLES
from s3qbb.testing.servers import S3TestEndpoint


@pytest.fixture
def job(s3_endpoint: S3TestEndpoint, tmp_path: Path) -> GraphJob:
    return make_job(s3_endpoint, tmp_path)


def test_each_quantum_runs_from_its_array_index(job: GraphJob) -> None:
    """Quanta run in index order, each index from one of the four variables (in turn); the result is right."""
    assert [len(level) for level in job.graph.levels()] == [1, len(DETECTORS), 1]
    used = []
    for index in range(len(job.graph)):
        variable = INDEX_VARIABLES[index % len(INDEX_VARIABLES)][0]
        used.append(variable)
        proc = job.run("-v", "run-quantum", "--graph", job.graph_uri, "--config", job.config_uri,
                       extra_env={variable: str(index)})  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert f"Quantum index {index} from {variable}" in proc.stderr
        assert str(job.graph.nodes[index].id) in proc.stdout
    assert set(used) == {name for name, _ in INDEX_VARIABLES}
    assert read_dataset(job, job.summary)["sum"] == EXPECTED_SUMMARY
    assert task_calls(job.workdir) == {str(n.id): 1 for n in job.graph.nodes}
    status = job.run("graph", "status", job.graph_uri, "--config", job.config_uri, "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["counts"] == {"succeeded": len(job.graph)}


@pytest.mark.moto_server
def test_selection_errors_are_usage_errors(moto_endpoint: S3TestEndpoint, tmp_path: Path) -> None:
    job = make_job(moto_endpoint, tmp_path)
    base = ("run-quantum", "--graph", job.graph_uri, "--config", job.config_uri)
    none = job.run(*base)
    assert none.returncode == 2
    assert "AWS_BATCH_JOB_ARRAY_INDEX" in none.stderr and "--index" in none.stderr
    out_of_range = job.run(*base, "--index", str(len(job.graph)))
    assert out_of_range.returncode == 2
    assert f"valid are 0 to {len(job.graph) - 1}" in out_of_range.stderr
    unknown = job.run(*base, "--quantum", str(uuid.uuid4()))
    assert unknown.returncode == 2 and "is not in graph" in unknown.stderr
    # A downstream quantum whose producer has not run: a clear error naming the upstream quantum.
    summarize = len(job.graph) - 1
    early = job.run(*base, "--quantum", str(job.graph.nodes[summarize].id))
    assert early.returncode == 75  # retryable: the upstream quantum may finish
    assert "has not finished" in early.stderr
    assert str(job.graph.nodes[job.graph.nodes[summarize].upstream[0]].id) in early.stderr
    assert task_calls(job.workdir) == {}
