"""``s3qbb run-quantum --graph``: a three-stage graph on S3 run job by job, index from each batch system."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from graph_helpers import DETECTORS, EXPECTED_SUMMARY, GraphJob, make_job, read_dataset, task_calls

from s3qbb.batch.jobindex import INDEX_VARIABLES
from s3qbb.cli.main import main
from s3qbb.testing.servers import S3TestEndpoint


@pytest.fixture
def job(s3_endpoint: S3TestEndpoint, tmp_path: Path) -> GraphJob:
    return make_job(s3_endpoint, tmp_path)


def test_each_quantum_runs_from_its_array_index(
    job: GraphJob, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Quanta run in index order, each index from one of the four variables (in turn); the result is right.

    The first quantum runs as a batch job would (a process); the others in this
    process, through the same entry point, to keep the test fast.
    """
    assert [len(level) for level in job.graph.levels()] == [1, len(DETECTORS), 1]
    args = ["-v", "run-quantum", "--graph", job.graph_uri, "--config", job.config_uri]
    first = INDEX_VARIABLES[0][0]
    proc = job.run(*args, extra_env={first: "0"})
    assert proc.returncode == 0, proc.stderr
    assert f"Quantum index 0 from {first}" in proc.stderr and str(job.graph.nodes[0].id) in proc.stdout
    for key, value in job.env.items():
        if key.startswith("AWS_") or key == "GRAPH_TEST_MARKERS":
            monkeypatch.setenv(key, value)
    used = [first]
    for index in range(1, len(job.graph)):
        variable = INDEX_VARIABLES[index % len(INDEX_VARIABLES)][0]
        used.append(variable)
        with monkeypatch.context() as m:
            for name, _ in INDEX_VARIABLES:
                m.delenv(name, raising=False)
            m.setenv(variable, str(index))
            code = main(args)
        out, err = capsys.readouterr()
        assert code == 0, err
        assert f"Quantum index {index} from {variable}" in err
        assert str(job.graph.nodes[index].id) in out
    assert set(used) == {name for name, _ in INDEX_VARIABLES}
    assert read_dataset(job, job.summary)["sum"] == EXPECTED_SUMMARY
    assert task_calls(job.workdir) == {str(n.id): 1 for n in job.graph.nodes}
    assert main(["graph", "status", job.graph_uri, "--config", job.config_uri, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"] == {"succeeded": len(job.graph)}


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


@pytest.mark.moto_server
def test_trust_mode_reads_unfinished_upstream_by_location(
    moto_endpoint: S3TestEndpoint, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Outside trust mode a missing upstream provenance file is an error; in trust mode, a warning."""
    from s3qbb.batch.upstream import UpstreamNotDoneError, upstream_records
    from s3qbb.repo import DatastoreConfig, RepoConfig

    job = make_job(moto_endpoint, tmp_path)
    root = f"s3://{moto_endpoint.bucket}/repo"
    strict = RepoConfig(datastore=DatastoreConfig(root=root, endpoint=moto_endpoint.config))
    trusting = RepoConfig(
        datastore=DatastoreConfig(root=root, endpoint=moto_endpoint.config, trust_mode=True)
    )
    with pytest.raises(UpstreamNotDoneError, match="has not finished"):
        upstream_records(job.graph, 1, strict)
    assert upstream_records(job.graph, 1, trusting) == {}
    assert "trust mode" in caplog.text
