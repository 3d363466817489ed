"""``s3qbb run``: a whole graph with two worker processes; killed mid-way, a second run finishes it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from graph_helpers import EXPECTED_SUMMARY, RUN, make_job, read_dataset, read_outputs_verified, task_calls

from s3qbb.provenance.files import report_key
from s3qbb.testing.servers import S3TestEndpoint, free_ports


def _wait_for(condition: object, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_killed_run_resumes_without_rerunning_succeeded_quanta(
    s3_endpoint: S3TestEndpoint, tmp_path: Path
) -> None:
    job = make_job(s3_endpoint, tmp_path, calibrate_task="graph_tasks:hold")
    gate = tmp_path / "gate"
    env = {**job.env, "GRAPH_TEST_GATE": str(gate)}
    cmd = [sys.executable, "-m", "s3qbb.cli", "run", "--graph", job.graph_uri, "--config", job.config_uri]
    cmd += ["-j", "2"]
    first = subprocess.Popen(cmd, env=env, cwd=tmp_path, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    nodes = job.graph.nodes
    held = nodes[3]  # calibrate of detector 2 waits for the gate
    done = list(nodes[1:3])

    def reported(node_index: int) -> bool:
        node = nodes[node_index]
        key = f"repo/{report_key(node.run or '', node.id)}"
        listed = job.endpoint.client.list_objects_v2(Bucket=job.endpoint.bucket, Prefix=key)
        return bool(listed.get("KeyCount"))

    try:
        _wait_for(lambda: all(reported(n.index) for n in done) and (tmp_path / str(held.id)).exists())
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the runner and its workers, as a crashed machine
        first.wait()
    assert not reported(held.index) and not reported(4)
    gate.touch()
    second = job.run("run", "--graph", job.graph_uri, "--config", job.config_uri, "-j", "2", "--json",
                     extra_env={"GRAPH_TEST_GATE": str(gate)})  # fmt: skip
    assert second.returncode == 0, second.stdout + second.stderr
    outcome = json.loads(second.stdout)
    assert outcome["counts"] == {"already succeeded": 3, "succeeded": 2}
    assert read_dataset(job, job.summary)["sum"] == EXPECTED_SUMMARY
    calls = task_calls(tmp_path)
    assert calls == {str(n.id): 2 if n is held else 1 for n in nodes}


def test_failure_stops_only_downstream_and_sets_the_exit_code(
    s3_endpoint: S3TestEndpoint, tmp_path: Path
) -> None:
    job = make_job(s3_endpoint, tmp_path, calibrate_task="graph_tasks:fail")
    proc = job.run("run", "--graph", job.graph_uri, "--config", job.config_uri, "-j", "2", "--json")
    assert proc.returncode == 1, proc.stderr
    statuses = [q["status"] for q in json.loads(proc.stdout)["quanta"]]
    assert statuses == ["succeeded", "failed", "failed", "failed", "upstream-failed"]
    assert "this task fails on purpose" in proc.stderr
    # --log-format json: the runner's stderr is JSON lines only, failed quanta's logs included.
    as_json = job.run("run", "--graph", job.graph_uri, "--config", job.config_uri, "--log-format", "json")
    assert as_json.returncode == 1, as_json.stderr
    records = [json.loads(line) for line in as_json.stderr.splitlines() if line.strip()]
    assert any("this task fails on purpose" in r["message"] for r in records)
    status = job.run("graph", "status", job.graph_uri, "--config", job.config_uri, "--json")
    assert status.returncode == 1
    assert json.loads(status.stdout)["counts"] == {"succeeded": 1, "failed": 3, "not run": 1}
    # As a batch job, the summary fails at once, naming the failed upstream quantum: exit 1, no retry.
    blocked = job.run("run-quantum", "--graph", job.graph_uri, "--index", "4", "--config", job.config_uri)
    assert blocked.returncode == 1, blocked.stderr
    assert "did not write" in blocked.stderr and str(job.graph.nodes[1].id) in blocked.stderr
    # ingest --recover takes the graph itself: the failed quanta keep their intact files and the
    # summary, which never ran, is not recorded as a recovered quantum with every output missing.
    registry = f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    recover = job.run("ingest", f"s3://{job.endpoint.bucket}/repo/{RUN}/", "--registry", registry,
                      "--recover", job.graph_uri, "--config", job.config_uri)  # fmt: skip
    assert recover.returncode == 0, recover.stdout + recover.stderr
    said = recover.stdout + recover.stderr
    assert "recovered 0 quantum(s)" in said and "4 had intact records" in said, said
    status = job.run("graph", "status", job.graph_uri, "--config", job.config_uri, "--json")
    assert json.loads(status.stdout)["counts"] == {"succeeded": 1, "failed": 3, "not run": 1}


@pytest.mark.moto_server
def test_sigterm_stops_the_runner_and_its_quanta(moto_endpoint: S3TestEndpoint, tmp_path: Path) -> None:
    """SIGTERM to ``s3qbb run``: nothing more starts, running quanta get it too and upload ``interrupted``."""
    job = make_job(moto_endpoint, tmp_path, calibrate_task="graph_tasks:hold")
    cmd = [sys.executable, "-m", "s3qbb.cli", "run", "--graph", job.graph_uri, "--config", job.config_uri]
    env = {**job.env, "GRAPH_TEST_GATE": str(tmp_path / "never")}
    runner = subprocess.Popen([*cmd, "-j", "3", "--json"], env=env, cwd=tmp_path, start_new_session=True,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    held = job.graph.nodes[3]
    try:
        _wait_for(lambda: (tmp_path / str(held.id)).exists())
        time.sleep(0.5)  # the task is waiting at its gate
        runner.send_signal(signal.SIGTERM)
        out, _ = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
    assert runner.returncode == 143
    statuses = {q["index"]: q["status"] for q in json.loads(out)["quanta"]}
    assert statuses[3] == "interrupted" and statuses[4] == "not run"  # nothing upstream of it failed
    status = job.run("graph", "status", job.graph_uri, "--config", job.config_uri, "--json")
    states = {q["index"]: q["status"] for q in json.loads(status.stdout)["quanta"]}
    assert states[3] == "interrupted" and states[4] == "not run"


@pytest.mark.moto_server
def test_unreachable_storage_or_scheduler_is_retryable(moto_endpoint: S3TestEndpoint, tmp_path: Path) -> None:
    """The runner exits 75 (run again), as run-quantum does, not 2 (do not retry), and prints no traceback."""
    job = make_job(moto_endpoint, tmp_path)
    missing = job.run("run", "--graph", "s3://s3qbb-no-such-bucket/g.qgraph", "--config", job.config_uri)
    assert missing.returncode == 75, missing.stderr
    assert "s3qbb-no-such-bucket" in missing.stderr and "Traceback" not in missing.stderr
    pytest.importorskip("distributed")
    port = free_ports(1)[0]
    dask = job.run(
        *("run", "--graph", job.graph_uri, "--config", job.config_uri),
        *("--executor", "dask", "--scheduler", f"tcp://127.0.0.1:{port}"),
        extra_env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "1s"},
    )
    assert dask.returncode == 75, dask.stderr
    assert f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}" in dask.stderr
    assert "Traceback" not in dask.stderr
    assert task_calls(job.workdir) == {}


def test_rerun_runs_every_quantum_again_and_leaves_consistent_records(
    s3_endpoint: S3TestEndpoint, tmp_path: Path
) -> None:
    job = make_job(s3_endpoint, tmp_path)
    args = ["run", "--graph", job.graph_uri, "--config", job.config_uri, "-j", "2", "--json"]
    first = job.run(*args)
    assert first.returncode == 0, first.stdout + first.stderr
    before = read_outputs_verified(job)

    again = job.run(*args, "--rerun")

    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads(again.stdout)["counts"] == {"succeeded": len(job.graph)}
    assert set(task_calls(tmp_path).values()) == {2}  # every task ran twice
    assert read_outputs_verified(job) == before  # the outputs verify against the new records


def test_a_damaged_report_reads_as_incomplete_and_the_next_run_redoes_that_quantum(
    s3_endpoint: S3TestEndpoint, tmp_path: Path
) -> None:
    job = make_job(s3_endpoint, tmp_path)
    args = ["run", "--graph", job.graph_uri, "--config", job.config_uri, "--json"]
    assert job.run(*args).returncode == 0
    node = job.graph.nodes[1]
    key = f"repo/{report_key(node.run or '', node.id)}"
    client, bucket = s3_endpoint.client, s3_endpoint.bucket
    stored = client.get_object(Bucket=bucket, Key=key)
    client.put_object(Bucket=bucket, Key=key, Body=stored["Body"].read()[:40], Metadata=stored["Metadata"])

    status = job.run("graph", "status", job.graph_uri, "--config", job.config_uri, "--json")

    assert status.returncode == 1, status.stderr  # not 2: the graph is readable, one quantum is not done
    assert json.loads(status.stdout)["counts"] == {"succeeded": 4, "incomplete": 1}
    again = job.run(*args)
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads(again.stdout)["counts"] == {"already succeeded": 4, "succeeded": 1}
    read_outputs_verified(job)


def test_an_input_a_concurrent_rerun_replaced_exits_75_and_the_retry_succeeds(
    s3_endpoint: S3TestEndpoint, tmp_path: Path
) -> None:
    """``run-quantum`` read its input's records from the producer's provenance; ``run-quantum --rerun`` of
    the producer replaces the input with other bytes before it is read: the quantum says so, exits 75
    (as on Dask, tests/batch/test_graph_dask.py), and its retry reads the re-run's records."""
    job = make_job(s3_endpoint, tmp_path, calibrate_task="graph_tasks:read_after_gate")
    assert job.graph.nodes[3].label == "calibrate"
    quantum = ["run-quantum", "--graph", job.graph_uri, "--config", job.config_uri, "--index"]
    assert job.run(*quantum, "0").returncode == 0
    gate = tmp_path / "gate"
    held = subprocess.Popen(
        [sys.executable, "-m", "s3qbb.cli", *quantum, "3"], env={**job.env, "GRAPH_TEST_GATE": str(gate)},
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        _wait_for(lambda: (tmp_path / "gate.ready").exists() or held.poll() is not None)
        assert held.poll() is None, held.communicate()
        rerun = job.run(*quantum, "0", "--rerun", extra_env={"GRAPH_TEST_SALT": "rerun"})
        assert rerun.returncode == 0, rerun.stderr
    finally:
        gate.touch()
        _, err = held.communicate(timeout=120)
    assert held.returncode == 75, err
    assert "DatasetReplacedError: Dataset raw@{instrument: 'Cam', detector: 2" in err
    assert f" at s3://{s3_endpoint.bucket}/repo/g/raw/raw/" in err
    assert "Another attempt of the quantum that produced it (a --rerun) replaced it" in err

    again = job.run(*quantum, "3")
    assert again.returncode == 0, again.stderr
    rest = job.run("run", "--graph", job.graph_uri, "--config", job.config_uri, "--json")
    assert rest.returncode == 0, rest.stderr
    assert read_dataset(job, job.summary)["sum"] == EXPECTED_SUMMARY
    read_outputs_verified(job)
