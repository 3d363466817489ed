"""``s3qbb run-quantum`` as a retried batch job: already succeeded, ``--rerun``, exit code 75, task import."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import PREFIX, RUN, CliJob, make_ref, object_keys, write_quantum

from s3qbb.cli.main import main
from s3qbb.core import Quantum
from s3qbb.provenance.files import report_key
from s3qbb.provenance.model import QuantumExecutionReport


def _report(job: CliJob, quantum: Quantum) -> QuantumExecutionReport:
    key = f"{PREFIX}/{report_key(RUN, quantum.id)}"
    body = job.endpoint.client.get_object(Bucket=job.endpoint.bucket, Key=key)["Body"].read()
    return QuantumExecutionReport.from_json(body)


def _calls(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_retry_of_a_succeeded_quantum_exits_0_without_running_the_task(server_job: CliJob) -> None:
    calls = server_job.workdir / "calls.txt"
    env = {**server_job.env, "S3QBB_TEST_CALLS": str(calls)}
    quantum = Quantum(taskLabel="count", outputs=[make_ref("a", 1)])
    path = write_quantum(server_job.workdir / "q.json", quantum)
    argv = ["run-quantum", path, "--task", "cli_tasks:count_calls", "--config", server_job.config, "--json"]
    job = CliJob(server_job.endpoint, env, server_job.config, server_job.workdir)

    first = job.run(*argv)
    assert first.returncode == 0, first.stderr
    first_attempt = _report(job, quantum).attempt_id
    assert first_attempt == json.loads(first.stdout)["attempt_id"]

    again = job.run(*argv, "-v")  # what AWS Batch does after a lost container: the same command
    assert again.returncode == 0, again.stderr
    assert _calls(calls) == 1  # the task was not called again
    assert json.loads(again.stdout)["status"] == "already-succeeded"
    assert f"Quantum {quantum.id} already succeeded (attempt {first_attempt}" in again.stderr
    assert _report(job, quantum).attempt_id == first_attempt  # nothing was rewritten

    forced = job.run(*argv, "--rerun")
    assert forced.returncode == 0, forced.stderr
    assert _calls(calls) == 2
    report = _report(job, quantum)
    assert report.status == "succeeded"
    assert report.attempt_id == json.loads(forced.stdout)["attempt_id"] != first_attempt  # replaced


def test_retry_after_a_failure_runs_the_task_again(server_job: CliJob) -> None:
    quantum = Quantum(taskLabel="fail", outputs=[make_ref("a", 1), make_ref("b", 2)])
    path = write_quantum(server_job.workdir / "q.json", quantum)
    failed = server_job.run("run-quantum", path, "--task", "cli_tasks:fail", "--config", server_job.config)
    assert failed.returncode == 1
    assert _report(server_job, quantum).status == "failed"
    calls = server_job.workdir / "calls.txt"
    env = {**server_job.env, "S3QBB_TEST_CALLS": str(calls)}
    job = CliJob(server_job.endpoint, env, server_job.config, server_job.workdir)

    retried = job.run("run-quantum", path, "--task", "cli_tasks:count_calls", "--config", server_job.config)

    assert retried.returncode == 0, retried.stderr
    assert _calls(calls) == 1
    assert _report(job, quantum).status == "succeeded"


def test_missing_bucket_raised_inside_the_task_exits_75(server_job: CliJob) -> None:
    """A storage failure raised through the butler is infrastructure (retry), not the task's failure."""
    quantum = Quantum(taskLabel="t", outputs=[make_ref("a", 1)])
    path = write_quantum(server_job.workdir / "q.json", quantum)
    env = {**server_job.env, "S3QBB_TEST_BUCKET": server_job.endpoint.bucket}
    job = CliJob(server_job.endpoint, env, server_job.config, server_job.workdir)

    proc = job.run("run-quantum", path, "--task", "cli_tasks:delete_bucket_then_put", "--config", job.config)

    assert proc.returncode == 75, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "infrastructure failure (exit 75, retry)" in proc.stderr
    assert "BucketNotFoundError" in proc.stderr


def test_storage_error_wrapped_by_the_task_still_exits_75(server_job: CliJob) -> None:
    quantum = Quantum(taskLabel="t", outputs=[make_ref("a", 1)])
    path = write_quantum(server_job.workdir / "q.json", quantum)
    env = {**server_job.env, "S3QBB_TEST_BUCKET": server_job.endpoint.bucket}
    job = CliJob(server_job.endpoint, env, server_job.config, server_job.workdir)

    proc = job.run("run-quantum", path, "--task", "cli_tasks:catch_everything", "--config", job.config)

    assert proc.returncode == 75, proc.stderr
    assert "RuntimeError: the task could not save its result" in proc.stderr


def test_missing_bucket_at_start_exits_75_and_uploads_nothing(cli_job: CliJob) -> None:
    quantum = Quantum(taskLabel="produce", outputs=[make_ref("a", 1)])
    path = write_quantum(cli_job.workdir / "q.json", quantum)
    config = cli_job.workdir / "other.yaml"
    config.write_text(cli_job.config.read_text().replace(cli_job.endpoint.bucket, "no-such-bucket-s3qbb"))

    proc = cli_job.run("run-quantum", path, "--task", "cli_tasks:produce", "--config", config)

    assert proc.returncode == 75, proc.stderr
    assert "Cannot tell whether quantum" in proc.stderr
    assert [
        k for k in object_keys(cli_job.endpoint) if "/_records/" in k and "/_records/_attempts/" not in k
    ] == []


# ------------------------------------------------------------------ task import


TASK_MODULE = """
def run(butler, quantum):
    for ref in quantum.outputs["a"]:  # refs by dataset type name
        butler.put({"from": "cwd"}, ref)
"""


@pytest.fixture
def bare_sys_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A working directory holding a task module, not on sys.path (as for the installed ``s3qbb`` script)."""
    here = tmp_path / "project"
    here.mkdir()
    (here / "lab_tasks_cwd.py").write_text(TASK_MODULE)
    monkeypatch.chdir(here)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(here))])
    monkeypatch.delitem(sys.modules, "lab_tasks_cwd", raising=False)
    return here


def test_task_imported_from_the_current_directory(
    cli_job: CliJob, bare_sys_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    quantum = Quantum(taskLabel="cwd", outputs=[make_ref("a", 1)])
    path = write_quantum(cli_job.workdir / "q.json", quantum)

    code = main(["run-quantum", str(path), "--task", "lab_tasks_cwd:run", "--config", str(cli_job.config)])

    assert code == 0, capsys.readouterr().err
    assert len([k for k in object_keys(cli_job.endpoint) if f"/{RUN}/a/" in k]) == 1


def test_task_module_not_found_says_how_to_fix_the_path(
    cli_job: CliJob, bare_sys_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    path = write_quantum(cli_job.workdir / "q.json", Quantum(taskLabel="cwd", outputs=[make_ref("a", 1)]))
    argv = ["run-quantum", str(path), "--task", "lab_tasks_cwd:run", "--config", str(cli_job.config)]

    code = main([*argv, "--app-dir", str(elsewhere)])

    err = capsys.readouterr().err
    assert code == 2
    assert f"no module named 'lab_tasks_cwd' in {elsewhere} (--app-dir) or sys.path" in err
    assert "Run from the directory holding lab_tasks_cwd.py" in err and "--app-dir DIR" in err
    assert main([*argv, "--app-dir", str(bare_sys_path)]) == 0


def test_unreachable_storage_at_start_exits_75_after_the_connect_retry_time(cli_job: CliJob) -> None:
    from s3qbb.testing.servers import free_ports

    (port,) = free_ports(1)
    env = {
        **cli_job.env,
        "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{port}",  # nothing listens: connection refused
        "S3QBB_RETRY_CONNECT_TIME": "0.5",
        "S3QBB_RETRY_INITIAL_BACKOFF": "0.01",
        "S3QBB_RETRY_MAX_BACKOFF": "0.05",
    }
    job = CliJob(cli_job.endpoint, env, cli_job.config, cli_job.workdir)
    path = write_quantum(job.workdir / "q.json", Quantum(taskLabel="p", outputs=[make_ref("a", 1)]))

    proc = job.run("run-quantum", path, "--task", "cli_tasks:produce", "--config", job.config_uri)

    assert proc.returncode == 75, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "EndpointConnectionError" in proc.stderr or "Could not connect" in proc.stderr


@pytest.mark.parametrize("transport", ["boto3", "obstore"])
def test_tls_failure_exits_75_at_once_with_one_clear_error(cli_job: CliJob, transport: str) -> None:
    """An https:// endpoint URL for a plain-HTTP server: TLSError, no retries, exit 75 (fixed outside)."""
    from s3qbb.testing.transports import obstore_available

    if transport == "obstore" and not obstore_available():
        pytest.skip("obstore is not installed (s3qbb[obstore])")
    url = cli_job.endpoint.endpoint_url
    config = cli_job.workdir / "https.yaml"
    config.write_text(cli_job.config.read_text().replace(url, url.replace("http://", "https://")))
    env = {
        **cli_job.env,
        "AWS_ENDPOINT_URL_S3": url.replace("http://", "https://"),
        "S3QBB_S3_TRANSPORT": transport,
        "S3QBB_RETRY_CONNECT_TIME": "30",  # a retried failure would take this long
    }
    job = CliJob(cli_job.endpoint, env, config, cli_job.workdir)
    path = write_quantum(job.workdir / "q.json", Quantum(taskLabel="p", outputs=[make_ref("a", 1)]))

    started = time.monotonic()
    proc = job.run("run-quantum", path, "--task", "cli_tasks:produce", "--config", config)

    assert proc.returncode == 75, proc.stderr
    assert time.monotonic() - started < 25  # not retried for the connect retry time
    assert "Traceback" not in proc.stderr
    assert "TLSError" in proc.stderr and "retrying will not help" in proc.stderr
    assert "SSLError" not in proc.stderr.split("TLSError", 1)[0]
