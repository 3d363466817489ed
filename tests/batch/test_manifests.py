"""``s3qbb submit``: each manifest's container command, run here with its index variable, runs the graph."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import yaml
from graph_helpers import EXPECTED_SUMMARY, GraphJob, make_graph, make_job, read_dataset, task_calls

from s3qbb.batch import manifests
from s3qbb.cli.main import main
from s3qbb.errors import ConfigError
from s3qbb.testing.servers import S3TestEndpoint

pytestmark = pytest.mark.moto_server


@pytest.fixture
def job(moto_endpoint: S3TestEndpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GraphJob:
    job = make_job(moto_endpoint, tmp_path)
    for key, value in job.env.items():
        if key.startswith("AWS_") or key == "GRAPH_TEST_MARKERS":
            monkeypatch.setenv(key, value)
    for variable in (
        "AWS_BATCH_JOB_ARRAY_INDEX",
        "JOB_COMPLETION_INDEX",
        "SLURM_ARRAY_TASK_ID",
        "PBS_ARRAY_INDEX",
    ):
        monkeypatch.delenv(variable, raising=False)
    return job


def _submit(job: GraphJob, system: str, capsys: pytest.CaptureFixture[str]) -> str:
    code = main(["submit", system, "--graph", job.graph_uri, "--image", "registry.example/pipe:1",
                 "--config", job.config_uri, "--name", "My_Pipe", "--env", "TZ=UTC"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    return out


def _run_container(command: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> int:
    assert command[0] == "s3qbb", shlex.join(command)
    with monkeypatch.context() as m:
        for key, value in env.items():
            m.setenv(key, value)
        return main(command[1:])


def test_kubernetes_indexed_jobs_run_the_graph(
    job: GraphJob, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    manifests = list(yaml.safe_load_all(_submit(job, "kubernetes", capsys)))
    assert [m["metadata"]["name"] for m in manifests] == [
        "my-pipe-stage-0",
        "my-pipe-stage-1",
        "my-pipe-stage-2",
    ]
    assert [m["spec"]["completions"] for m in manifests] == [len(level) for level in job.graph.levels()]
    for manifest in manifests:
        spec = manifest["spec"]
        assert spec["completionMode"] == "Indexed" and spec["template"]["spec"]["restartPolicy"] == "Never"
        rules = {r["action"]: r for r in spec["podFailurePolicy"]["rules"]}
        assert rules["FailIndex"]["onExitCodes"]["values"] == [1]
        assert rules["FailJob"]["onExitCodes"]["values"] == [2]
        assert set(rules["Count"]["onExitCodes"]["values"]) == {75, 143, 130}
        (container,) = spec["template"]["spec"]["containers"]
        env = {e["name"]: e["value"] for e in container["env"]}
        for index in range(spec["completions"]):
            capsys.readouterr()
            code = _run_container(
                container["command"], {**env, "JOB_COMPLETION_INDEX": str(index)}, monkeypatch
            )
            assert code == 0, capsys.readouterr()
    assert read_dataset(job, job.summary)["sum"] == EXPECTED_SUMMARY
    assert task_calls(job.workdir) == {str(n.id): 1 for n in job.graph.nodes}


def test_aws_batch_array_jobs_run_the_graph(
    job: GraphJob, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    stages = json.loads(_submit(job, "aws-batch", capsys))["stages"]
    assert [s["quanta"] for s in stages] == [len(level) for level in job.graph.levels()]
    assert "arrayProperties" not in stages[0]["submitJob"]  # one quantum: a plain job, --index 0
    assert stages[1]["submitJob"]["arrayProperties"] == {"size": 3}
    assert stages[2]["submitJob"]["dependsOn"] == [{"jobId": "${STAGE_1_JOB_ID}"}]
    for stage in stages:
        definition = stage["registerJobDefinition"]
        rules = definition["retryStrategy"]["evaluateOnExit"]
        assert {r.get("onExitCode"): r["action"] for r in rules if "onExitCode" in r} == {
            "75": "RETRY",
            "143": "RETRY",
        }
        assert rules[-1] == {"onReason": "*", "action": "EXIT"}
        container = definition["containerProperties"]
        env = {e["name"]: e["value"] for e in container["environment"]}
        size = stage["submitJob"].get("arrayProperties", {}).get("size")
        for index in range(size or 1):
            index_env = {"AWS_BATCH_JOB_ARRAY_INDEX": str(index)} if size else {}
            capsys.readouterr()
            code = _run_container(container["command"], {**env, **index_env}, monkeypatch)
            assert code == 0, capsys.readouterr()
    assert read_dataset(job, job.summary)["sum"] == EXPECTED_SUMMARY
    assert task_calls(job.workdir) == {str(n.id): 1 for n in job.graph.nodes}


def test_stages_larger_than_an_array_job_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    graph, _ = make_graph()
    monkeypatch.setattr(manifests, "AWS_BATCH_MAX_ARRAY_SIZE", 2)
    monkeypatch.setattr(manifests, "KUBERNETES_MAX_INDEXED_COMPLETIONS", 2)
    with pytest.raises(ConfigError, match="Stage 1 has 3 quanta"):
        manifests.aws_batch_stages(graph, "s3://b/g", image="i", config="s3://b/c")
    with pytest.raises(ConfigError, match="Stage 1 has 3 quanta"):
        manifests.kubernetes_jobs(graph, "s3://b/g", image="i", config="s3://b/c")


def test_retries_mean_the_same_on_both_systems(capsys: pytest.CaptureFixture[str]) -> None:
    """``retries=3`` is 3 retries on both: backoffLimitPerIndex 3, AWS Batch attempts 4 (counts the first)."""
    graph, _ = make_graph()
    jobs = manifests.kubernetes_jobs(graph, "s3://b/g", image="i", config="s3://b/c", retries=3)
    assert {j["spec"]["backoffLimitPerIndex"] for j in jobs} == {3}
    stages = manifests.aws_batch_stages(graph, "s3://b/g", image="i", config="s3://b/c", retries=3)["stages"]
    assert {s["registerJobDefinition"]["retryStrategy"]["attempts"] for s in stages} == {4}
    no_retry = manifests.aws_batch_stages(graph, "s3://b/g", image="i", config="s3://b/c", retries=0)
    assert no_retry["stages"][0]["registerJobDefinition"]["retryStrategy"]["attempts"] == 1
    for bad in (-1, 10):  # AWS Batch takes 1 to 10 attempts
        with pytest.raises(ConfigError, match="retries must be 0 to 9"):
            manifests.aws_batch_stages(graph, "s3://b/g", image="i", config="s3://b/c", retries=bad)
    with pytest.raises(ConfigError, match="retries must be 0 or more"):
        manifests.kubernetes_jobs(graph, "s3://b/g", image="i", config="s3://b/c", retries=-1)
    with pytest.raises(ConfigError, match="parallelism must be at least 1"):
        manifests.kubernetes_jobs(graph, "s3://b/g", image="i", config="s3://b/c", parallelism=0)


def test_submit_refuses_retries_aws_batch_cannot_take(
    job: GraphJob, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["submit", "aws-batch", "--graph", job.graph_uri, "--image", "i", "--config", job.config_uri]
    assert main([*args, "--retries", "10"]) == 2
    assert "retries must be 0 to 9, not 10" in capsys.readouterr().err


def test_submit_warns_of_paths_the_containers_cannot_see(
    job: GraphJob, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    local = job.graph.save(tmp_path / "local.qgraph")
    args = ["submit", "kubernetes", "--graph", str(local), "--image", "i", "--config", job.config_uri]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert f"--graph {local} is not an s3:// URI" in captured.err and "--config" not in captured.err
    assert str(local) in captured.out  # still printed: the image may hold the file there
