"""``s3qbb graph status`` tells a quantum that runs, or whose attempt died, from one that never started.

A job writes its attempt lease (``<run>/_records/_attempts/``) before its first output; killed with
SIGKILL it leaves the lease and its outputs but no report. ``graph status`` reads the newest lease of
such a quantum: ``running`` while that attempt may run (a retry would meet it and exit 75),
``incomplete`` once it died, and ``not run`` only for a quantum that left nothing at all.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from graph_helpers import GraphJob, make_job

from s3qbb.batch.attempts import CLOCK_SKEW_S, LEASE_S
from s3qbb.testing.servers import S3TestEndpoint


def _status(job: GraphJob) -> tuple[int, dict[int, dict[str, Any]]]:
    proc = job.run("graph", "status", job.graph_uri, "--config", job.config_uri, "--json")
    return proc.returncode, {q["index"]: q for q in json.loads(proc.stdout)["quanta"]}


def _lease_keys(job: GraphJob, quantum_id: object) -> list[str]:
    listed = job.endpoint.client.list_objects_v2(Bucket=job.endpoint.bucket, Prefix="repo/")
    return [o["Key"] for o in listed.get("Contents", []) if f"/_attempts/{quantum_id}." in o["Key"]]


def _rewrite_lease(job: GraphJob, key: str, **fields: object) -> None:
    client, bucket = job.endpoint.client, job.endpoint.bucket
    lease = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    client.put_object(Bucket=bucket, Key=key, Body=json.dumps({**lease, **fields}).encode())


@pytest.mark.moto_server
def test_a_running_or_killed_quantum_is_not_reported_as_not_run(
    moto_endpoint: S3TestEndpoint, tmp_path: Path
) -> None:
    job = make_job(moto_endpoint, tmp_path, calibrate_task="graph_tasks:write_then_hold")
    held = job.graph.nodes[3]
    assert held.label == "calibrate"
    made = job.run("run-quantum", "--graph", job.graph_uri, "--index", "0", "--config", job.config_uri)
    assert made.returncode == 0, made.stderr
    gate = tmp_path / "gate"
    attempt = subprocess.Popen(
        [sys.executable, "-m", "s3qbb.cli", "run-quantum", "--graph", job.graph_uri, "--index", "3",
         "--config", job.config_uri],
        env={**job.env, "GRAPH_TEST_GATE": str(gate)}, cwd=tmp_path,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "gate.ready").exists():  # its output is written; it still runs
            assert attempt.poll() is None and time.monotonic() < deadline, "the attempt did not write"
            time.sleep(0.05)
        code, states = _status(job)
        assert code == 1
        assert {i: s["status"] for i, s in states.items()} == {
            0: "succeeded", 1: "not run", 2: "not run", 3: "running", 4: "not run"
        }  # fmt: skip
        assert states[3]["error"] is None
        # `s3qbb run` skips only succeeded quanta: it starts the running one, which meets its lease (75).
        again = job.run("run", "--graph", job.graph_uri, "--config", job.config_uri, "--json")
        assert again.returncode == 75, again.stdout + again.stderr
    finally:
        attempt.send_signal(signal.SIGKILL)  # after writing its output: the lease stays, no report
        attempt.wait()
    keys = _lease_keys(job, held.id)
    assert len(keys) == 2  # the killed attempt's and the one `s3qbb run` started (it ended, failed)
    killed = min(keys)  # attempt IDs sort by start time
    newest = max(keys)
    # The newest attempt ended 'failed' without a report: incomplete, saying so.
    code, states = _status(job)
    assert code == 1 and states[3]["status"] == "incomplete", states[3]
    error = states[3]["error"]
    assert "left no report" in error and "ended 'failed'" in error and "ingest --recover" in error, error
    # Only the killed attempt: on this host its process is gone, so it is incomplete at once.
    job.endpoint.client.delete_object(Bucket=job.endpoint.bucket, Key=newest)
    code, states = _status(job)
    assert code == 1 and states[3]["status"] == "incomplete", states[3]
    error = states[3]["error"]
    killed_attempt = killed.rsplit("/", 1)[1].split(".")[1]
    assert f"attempt {killed_attempt} started and left no report" in error, error
    assert "is gone" in error and "run the quantum again, or `s3qbb ingest --recover`" in error, error
    assert [states[i]["status"] for i in (1, 2, 4)] == ["succeeded", "succeeded", "not run"]
    # On another host, the renewal time tells: a lease renewed just now holds (running) ...
    _rewrite_lease(job, killed, host="another-host", pid_namespace=None, renewed_at=time.time())
    assert _status(job)[1][3]["status"] == "running"
    # ... and a stale one does not (incomplete, naming how long ago it was renewed).
    stale = time.time() - (LEASE_S + CLOCK_SKEW_S + 60)
    _rewrite_lease(job, killed, renewed_at=stale)
    code, states = _status(job)
    assert code == 1 and states[3]["status"] == "incomplete", states[3]
    assert "another-host" in states[3]["error"] and "last renewed" in states[3]["error"], states[3]
    # The text output shows the statuses too.
    text = job.run("graph", "status", job.graph_uri, "--config", job.config_uri)
    assert text.returncode == 1 and "incomplete" in text.stdout and "left no report" in text.stdout
