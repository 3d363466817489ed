"""SIGTERM and SIGINT during ``s3qbb run-quantum``: status ``interrupted`` uploaded, exit 143 or 130."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import PREFIX, RUN, CliJob, make_ref, object_keys, run_cli, write_quantum

from s3qbb.core import Quantum
from s3qbb.provenance.files import report_key
from s3qbb.provenance.model import QuantumExecutionReport


def _start(job: CliJob, *args: str | Path, ready: Path) -> subprocess.Popen[str]:
    env = {**job.env, "S3QBB_TEST_READY": str(ready)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "s3qbb.cli", *map(str, args)],
        env=env,
        cwd=job.workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            _out, err = proc.communicate(timeout=5) if proc.poll() is not None else ("", "")
            proc.kill()
            pytest.fail(f"the task did not start: {err}")
        time.sleep(0.02)
    return proc


def _report(job: CliJob, quantum: Quantum) -> QuantumExecutionReport:
    body = job.endpoint.client.get_object(
        Bucket=job.endpoint.bucket, Key=f"{PREFIX}/{report_key(RUN, quantum.id)}"
    )["Body"].read()
    return QuantumExecutionReport.from_json(body)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_mid_task_uploads_interrupted_and_the_next_attempt_succeeds(
    server_job: CliJob, signum: int, code: int
) -> None:
    quantum = Quantum(taskLabel="produce", outputs=[make_ref("a", 1), make_ref("b", 2)])
    path = write_quantum(server_job.workdir / "q.json", quantum)
    proc = _start(
        server_job,
        "run-quantum", path, "--task", "cli_tasks:produce_then_hang", "--config", server_job.config, "--json",
        ready=server_job.workdir / "ready",
    )  # fmt: skip

    proc.send_signal(signum)
    _out, err = proc.communicate(timeout=60)

    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert f"Received {signal.Signals(signum).name}: stopping the task" in err
    report = _report(server_job, quantum)
    assert report.status == "interrupted"
    assert report.error is not None and report.error.type == "s3qbb.batch.signals.JobInterrupted"
    interrupted_attempt = report.attempt_id
    assert [k for k in object_keys(server_job.endpoint) if "/_records/" in k]  # records, provenance, report

    retry = server_job.run("run-quantum", path, "--task", "cli_tasks:produce", "--config", server_job.config)

    assert retry.returncode == 0, retry.stderr
    report = _report(server_job, quantum)
    assert report.status == "succeeded"
    assert report.attempt_id is not None and report.attempt_id > (interrupted_attempt or "")
    assert len([k for k in object_keys(server_job.endpoint) if k.startswith(f"{PREFIX}/{RUN}/b/")]) == 1


def test_task_ignoring_the_signal_is_ended_at_the_grace_period(cli_job: CliJob) -> None:
    quantum = Quantum(taskLabel="stubborn", outputs=[make_ref("a", 1)])
    path = write_quantum(cli_job.workdir / "q.json", quantum)
    proc = _start(
        cli_job,
        "run-quantum", path, "--task", "cli_tasks:ignore_interrupts", "--config", cli_job.config,
        "--grace-period", "1",
        ready=cli_job.workdir / "ready",
    )  # fmt: skip

    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)

    assert proc.returncode == 143, err
    assert "Grace period of 1 s over before the records were uploaded: exiting with 143" in err
    assert "Traceback" not in err


def test_second_signal_exits_at_once(cli_job: CliJob) -> None:
    quantum = Quantum(taskLabel="stubborn", outputs=[make_ref("a", 1)])
    path = write_quantum(cli_job.workdir / "q.json", quantum)
    proc = _start(
        cli_job,
        "run-quantum", path, "--task", "cli_tasks:ignore_interrupts", "--config", cli_job.config,
        "--grace-period", "100",
        ready=cli_job.workdir / "ready",
    )  # fmt: skip

    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    assert proc.poll() is None  # the task swallowed the first interrupt: still within the grace period
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)

    assert proc.returncode == 130, err
    assert "Second signal (SIGINT) while stopping: exiting now with 130." in err
    assert "Traceback" not in err


@pytest.mark.parametrize("at", ["print", "return", "exit"])
def test_signal_after_the_job_ended_is_logged_and_the_job_exits_with_its_result(
    cli_job: CliJob, at: str
) -> None:
    quantum = Quantum(taskLabel="late", outputs=[make_ref("a", 1), make_ref("b", 2)])
    path = write_quantum(cli_job.workdir / "q.json", quantum)
    env = {**cli_job.env, "CLI_TEST_SIGNAL_AT": at}
    args = ("run-quantum", path, "--task", "cli_tasks:produce_then_signal_later", "--config", cli_job.config)

    proc = run_cli(*args, "--json", env=env, cwd=cli_job.workdir)

    assert proc.returncode == 0, (proc.returncode, proc.stderr)
    summary = json.loads(proc.stdout)
    assert summary["exit_code"] == 0 and summary["status"] == "succeeded"
    line = "Received SIGTERM after the job ended: it changes nothing; exiting with its exit code 0."
    assert line in proc.stderr
    assert f"[late {quantum.id}] {line}" in proc.stderr  # with the job's context, as every line
    assert "Traceback" not in proc.stderr
    assert _report(cli_job, quantum).status == "succeeded"
