"""``s3qbb run --executor dask``: the graph on a two-process LocalCluster, skipping quanta that succeeded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml
from graph_helpers import (
    EXPECTED_SUMMARY,
    TESTS_DIR,
    make_job,
    read_dataset,
    read_outputs_verified,
)

from s3qbb.cli.main import main
from s3qbb.testing.servers import S3TestEndpoint

if TYPE_CHECKING:
    from distributed import Client

pytestmark = pytest.mark.moto_server


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Client]:
    distributed = pytest.importorskip("distributed")
    warnings.filterwarnings("ignore", message="Port 8787 is already in use", category=UserWarning)
    saved = os.environ.get("PYTHONPATH")
    # The workers import graph_tasks from this directory.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS_DIR), saved]))
    try:
        with (
            distributed.LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1"
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            yield client
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


def _config_with_credentials(endpoint: S3TestEndpoint, tmp_path: Path) -> Path:
    """A configuration file with the credentials in it: the workers have no environment for them."""
    secret = endpoint.config.secret_access_key
    assert secret is not None
    config = tmp_path / "butler.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "datastore": {
                    "root": f"s3://{endpoint.bucket}/repo",
                    "endpoint": {
                        "endpoint_url": endpoint.endpoint_url,
                        "region": "us-east-1",
                        "addressing_style": "path",
                        "access_key_id": endpoint.config.access_key_id,
                        "secret_access_key": secret.get_secret_value(),
                    },
                },
                "cache": {"enabled": False},
            }
        )
    )
    return config


def test_dask_executor_runs_the_graph_and_skips_what_succeeded(
    moto_endpoint: S3TestEndpoint,
    dask_client: Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    job = make_job(moto_endpoint, tmp_path)
    config = _config_with_credentials(moto_endpoint, tmp_path)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint.endpoint_url)
    # The first quantum ran earlier, as a batch job: the Dask run reads its records from its provenance.
    assert main(["run-quantum", "--graph", job.graph_uri, "--index", "0", "--config", str(config)]) == 0
    scheduler = dask_client.scheduler.address  # type: ignore[union-attr]
    args = [
        "run",
        "--graph",
        job.graph_uri,
        "--config",
        str(config),
        "--executor",
        "dask",
        "--scheduler",
        scheduler,
    ]
    capsys.readouterr()
    assert main([*args, "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["counts"] == {"already succeeded": 1, "succeeded": len(job.graph) - 1}
    assert read_dataset(job, job.summary)["sum"] == EXPECTED_SUMMARY
    assert main([*args, "--json"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["counts"] == {"already succeeded": len(job.graph)}
    assert main(["run", "--graph", job.graph_uri, "--config", str(config), "--executor", "dask"]) == 2


def test_dask_rerun_replaces_outputs_and_records_together(
    moto_endpoint: S3TestEndpoint,
    dask_client: Client,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--rerun`` on Dask: every quantum runs again, and its records describe the bytes it left."""
    job = make_job(moto_endpoint, tmp_path)
    config = _config_with_credentials(moto_endpoint, tmp_path)
    scheduler = dask_client.scheduler.address  # type: ignore[union-attr]
    args = ["run", "--graph", job.graph_uri, "--config", str(config), "--executor", "dask"]
    args += ["--scheduler", scheduler, "--json"]
    assert main(args) == 0
    capsys.readouterr()
    before = read_outputs_verified(job)

    assert main([*args, "--rerun"]) == 0
    rerun = json.loads(capsys.readouterr().out)
    assert rerun["counts"] == {"succeeded": len(job.graph)}
    assert read_outputs_verified(job) == before  # the new bytes are what the new records say
    assert main(args) == 0  # and the graph is done
    assert json.loads(capsys.readouterr().out)["counts"] == {"already succeeded": len(job.graph)}


def test_a_quantum_dask_runs_again_after_its_success_is_not_run_again(
    moto_endpoint: S3TestEndpoint, dask_client: Client, tmp_path: Path
) -> None:
    """A worker that died after the uploads makes Dask run the quantum again: that run finds the success.

    Submitting the same quanta twice is what that amounts to: the second run of each quantum
    must neither replace its outputs nor fail, and hands the first run's records downstream.
    """
    from s3qbb.batch.dask import run_pipeline_on_dask

    job = make_job(moto_endpoint, tmp_path)
    config = _config_with_credentials(moto_endpoint, tmp_path)
    quanta = [job.graph[i] for i in range(len(job.graph))]
    tasks = dict(job.graph.tasks)
    first = run_pipeline_on_dask(quanta, tasks, str(config), client=dask_client)
    assert {r.status for r in first.values()} == {"succeeded"}
    before = read_outputs_verified(job)

    again = run_pipeline_on_dask(quanta, tasks, str(config), client=dask_client)

    assert {r.status for r in again.values()} == {"already succeeded"}, again
    assert all(r.succeeded and r.records for r in again.values())
    assert read_outputs_verified(job) == before


def test_only_retryable_failures_exit_75_on_both_executors(
    moto_endpoint: S3TestEndpoint,
    dask_client: Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A quantum fails retryably (75), the one downstream is not run: exit 75 (run again) on both executors.

    The quanta that were not run because of the retryable failure are no failure of their own
    (docs/batch.rst, "Exit codes of the other commands").
    """
    job = make_job(moto_endpoint, tmp_path, calibrate_task="graph_tasks:transient")
    config = _config_with_credentials(moto_endpoint, tmp_path)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint.endpoint_url)
    scheduler = dask_client.scheduler.address  # type: ignore[union-attr]
    dask_args = ["--executor", "dask", "--scheduler", scheduler, "--json"]
    capsys.readouterr()
    assert main(["run", "--graph", job.graph_uri, "--config", str(config), *dask_args]) == 75
    out = json.loads(capsys.readouterr().out)
    assert out["exit_code"] == 75
    failed = {q["status"]: q["exit_code"] for q in out["quanta"] if q["status"] != "succeeded"}
    assert failed == {"failed": 75, "upstream-failed": None}
    local = job.run("run", "--graph", job.graph_uri, "--config", str(config), "--json")
    assert local.returncode == 75, local.stderr
    statuses = sorted(q["status"] for q in json.loads(local.stdout)["quanta"])
    assert statuses == ["already succeeded"] * 3 + ["error", "upstream-failed"]


def test_a_quantum_whose_other_attempt_runs_is_not_started_on_dask_and_retryable(
    moto_endpoint: S3TestEndpoint, dask_client: Client, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As ``run-quantum`` does: exit 75 naming the other attempt, nothing of it replaced (not ``lost``)."""
    job = make_job(moto_endpoint, tmp_path, calibrate_task="graph_tasks:write_then_hold")
    config = _config_with_credentials(moto_endpoint, tmp_path)
    held = job.graph.nodes[3]
    assert held.label == "calibrate"
    gate = tmp_path / "gate"
    assert main(["run-quantum", "--graph", job.graph_uri, "--index", "0", "--config", str(config)]) == 0
    other = subprocess.Popen(
        [sys.executable, "-m", "s3qbb.cli", "run-quantum", "--graph", job.graph_uri, "--index", "3",
         "--config", str(config)],
        env={**job.env, "GRAPH_TEST_GATE": str(gate)}, cwd=tmp_path,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "gate.ready").exists():
            assert other.poll() is None and time.monotonic() < deadline, "the other attempt did not write"
            time.sleep(0.05)
        scheduler = dask_client.scheduler.address  # type: ignore[union-attr]
        args = ["run", "--graph", job.graph_uri, "--config", str(config), "--executor", "dask"]
        args += ["--scheduler", scheduler, "--json"]
        capsys.readouterr()
        assert main(args) == 75
        out = json.loads(capsys.readouterr().out)
        by_id = {q["id"]: q for q in out["quanta"]}
        assert by_id[str(held.id)] | {"id": ""} == {
            "id": "", "label": "calibrate", "status": "not-started", "exit_code": 75
        }  # fmt: skip
    finally:
        gate.touch()
        _, err = other.communicate(timeout=60)
    assert other.returncode == 0, err  # the other attempt's outputs were left to it
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["counts"] == {"already succeeded": 4, "succeeded": 1}
    read_outputs_verified(job)


def test_sigterm_stops_a_dask_run_with_143_and_a_later_run_resumes(
    moto_endpoint: S3TestEndpoint, dask_client: Client, tmp_path: Path
) -> None:
    job = make_job(moto_endpoint, tmp_path, calibrate_task="graph_tasks:slow")
    config = _config_with_credentials(moto_endpoint, tmp_path)
    scheduler = dask_client.scheduler.address  # type: ignore[union-attr]
    args = ["run", "--graph", job.graph_uri, "--config", str(config), "--executor", "dask"]
    args += ["--scheduler", scheduler, "--json"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "s3qbb.cli", *args], env=job.env, cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not _reports(moto_endpoint):  # the first quantum ended: the others are running or waiting
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert json.loads(out) == {"exit_code": 143, "interrupted": "SIGTERM"}
    assert "run the graph again to resume" in err
    assert len(_reports(moto_endpoint)) < len(job.graph)  # it did stop before the end
    # Run again as a batch system does on 75: while quanta of the stopped run still end on their
    # workers, their attempts hold their outputs (exit 75); then the graph finishes.
    deadline = time.monotonic() + 60
    while (again := job.run(*args, timeout=120)).returncode == 75 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert again.returncode == 0, again.stdout + again.stderr
    assert read_dataset(job, job.summary)["sum"] == EXPECTED_SUMMARY


def _wait_for(path: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while not path.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)


def test_an_input_a_concurrent_rerun_replaced_exits_75_on_dask_and_the_retry_succeeds(
    moto_endpoint: S3TestEndpoint, dask_client: Client, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A quantum holds its input's records (from the producer's Dask result) when ``run-quantum --rerun``
    of the producer replaces the input with other bytes: it says so and exits 75; the retry succeeds."""
    import graph_tasks

    job = make_job(moto_endpoint, tmp_path, calibrate_task="graph_tasks:read_after_gate")
    config = _config_with_credentials(moto_endpoint, tmp_path)
    held = job.graph.nodes[3]
    assert held.label == "calibrate"
    gate = tmp_path / "gate"
    scheduler = dask_client.scheduler.address  # type: ignore[union-attr]
    args = ["run", "--graph", job.graph_uri, "--config", str(config), "--executor", "dask"]
    args += ["--scheduler", scheduler]
    dask_client.run(graph_tasks.set_environ, "GRAPH_TEST_GATE", str(gate))
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "s3qbb.cli", *args], env=job.env, cwd=tmp_path,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        _wait_for(tmp_path / "gate.ready", proc)
        rerun = job.run(
            "run-quantum", "--graph", job.graph_uri, "--index", "0", "--config", str(config), "--rerun",
            extra_env={"GRAPH_TEST_SALT": "rerun"},
        )  # fmt: skip
        assert rerun.returncode == 0, rerun.stderr
        gate.touch()
        out, err = proc.communicate(timeout=120)
    finally:
        gate.touch()
        dask_client.run(graph_tasks.set_environ, "GRAPH_TEST_GATE", None)
    assert proc.returncode == 75, out + err
    assert out.splitlines()[-1].endswith("exit 75")
    line = next(line for line in out.splitlines() if str(held.id) in line)
    assert line.startswith(f"calibrate {held.id}: failed (DatasetReplacedError: Dataset raw@"), line
    assert f" at s3://{moto_endpoint.bucket}/repo/g/raw/raw/" in line
    assert "was replaced: it now holds other bytes" in line
    assert "Another attempt of the quantum that produced it (a --rerun) replaced it" in line

    capsys.readouterr()
    assert main([*args, "--json"]) == 0  # the retry reads the re-run's records, and the bytes they describe
    counts = json.loads(capsys.readouterr().out)["counts"]
    assert counts["already succeeded"] >= 1 and counts["succeeded"] >= 2  # at least the held one and after
    assert read_dataset(job, job.summary)["sum"] == EXPECTED_SUMMARY
    read_outputs_verified(job)


def _reports(endpoint: S3TestEndpoint) -> list[str]:
    listed = endpoint.client.list_objects_v2(Bucket=endpoint.bucket, Prefix="repo/")
    return [o["Key"] for o in listed.get("Contents", []) if o["Key"].endswith(".quantum.json")]
