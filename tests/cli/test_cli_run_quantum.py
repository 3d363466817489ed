"""``s3qbb run-quantum``: exit codes 0/1/2, what it prints and uploads, and no secret in its output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import (
    PREFIX,
    RAW_RUN,
    RUN,
    SECRET,
    TESTS_DIR,
    CliJob,
    make_ref,
    object_keys,
    run_cli,
    write_quantum,
)

from s3qbb.cli.main import main
from s3qbb.core import Quantum
from s3qbb.provenance.files import provenance_key, records_key, report_key
from s3qbb.provenance.model import QuantumExecutionReport, QuantumProvenanceData


def _quantum(label: str = "produce") -> Quantum:
    return Quantum(
        taskLabel=label, taskName=f"cli_tasks.{label}", outputs=[make_ref("a", 1), make_ref("b", 2)]
    )


def _expected_uploads(job: CliJob, quantum: Quantum) -> list[str]:
    return [
        f"s3://{job.endpoint.bucket}/{PREFIX}/{key(RUN, quantum.id)}"
        for key in (records_key, provenance_key, report_key)
    ]


def _report(job: CliJob, quantum: Quantum) -> QuantumExecutionReport:
    key = f"{PREFIX}/{report_key(RUN, quantum.id)}"
    return QuantumExecutionReport.from_json(
        job.endpoint.client.get_object(Bucket=job.endpoint.bucket, Key=key)["Body"].read()
    )


def _records_keys(job: CliJob) -> list[str]:
    return [k for k in object_keys(job.endpoint) if "/_records/" in k and "/_records/_attempts/" not in k]


def _no_secret(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text
        assert "Traceback" not in text


# ------------------------------------------------------------------ exit 0


def test_success_prints_the_three_uploaded_files(cli_job: CliJob) -> None:
    """Quantum description and configuration on S3, as in ``make demo``: exit 0, three files listed."""
    quantum = _quantum()
    path = write_quantum(cli_job.workdir / "q.json", quantum)
    key = f"quanta/produce/{quantum.id}.json"
    cli_job.endpoint.client.put_object(Bucket=cli_job.endpoint.bucket, Key=key, Body=path.read_bytes())

    proc = cli_job.run(
        "run-quantum", f"s3://{cli_job.endpoint.bucket}/{key}", "--task", "cli_tasks:produce",
        "--config", cli_job.config_uri,
    )  # fmt: skip

    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"quantum {quantum.id} (produce): succeeded"
    assert lines[1:] == [f"  uploaded {uri}" for uri in _expected_uploads(cli_job, quantum)]
    assert proc.stderr == ""
    keys = object_keys(cli_job.endpoint, f"{PREFIX}/{RUN}/")
    assert {uri.split("/", 3)[3] for uri in _expected_uploads(cli_job, quantum)} <= set(keys)
    assert len([k for k in keys if "/_records/" not in k]) == 2  # both outputs
    assert _report(cli_job, quantum).status == "succeeded"


def test_success_json_in_process(cli_job: CliJob, capsys: pytest.CaptureFixture[str]) -> None:
    quantum = _quantum()
    path = write_quantum(cli_job.workdir / "q.json", quantum)
    records = cli_job.workdir / "records.sqlite3"
    code = main(
        [
            "run-quantum", str(path), "--task", "cli_tasks:produce", "--config", str(cli_job.config),
            "--records-file", str(records), "--json",
        ]
    )  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err
    summary = json.loads(out.out)
    attempt_id = summary.pop("attempt_id")
    assert summary == {
        "exit_code": 0,
        "status": "succeeded",
        "uploaded": _expected_uploads(cli_job, quantum),
        "error": None,
        "missing_inputs": [],
    }
    assert _report(cli_job, quantum).attempt_id == attempt_id  # the attempt printed is the one recorded
    assert records.read_bytes().startswith(b"SQLite format 3\x00")  # --records-file is honoured


# ------------------------------------------------------------------ exit 1


def test_task_failure_exits_1_and_uploads_failed_status(cli_job: CliJob) -> None:
    quantum = _quantum("fail")
    path = write_quantum(cli_job.workdir / "q.json", quantum)

    proc = cli_job.run("run-quantum", path, "--task", "cli_tasks:fail", "--config", cli_job.config)
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert lines[0] == f"quantum {quantum.id} (fail): failed"
    assert lines[1:] == [f"  uploaded {uri}" for uri in _expected_uploads(cli_job, quantum)]
    assert "error: ValueError: the task failed on purpose" in proc.stderr
    _no_secret(proc.stdout, proc.stderr)

    report = _report(cli_job, quantum)
    assert report.status == "failed"
    assert report.error is not None and "the task failed on purpose" in report.error.message
    body = cli_job.endpoint.client.get_object(
        Bucket=cli_job.endpoint.bucket, Key=f"{PREFIX}/{provenance_key(RUN, quantum.id)}"
    )["Body"].read()
    assert QuantumProvenanceData.from_json(body).actual_outputs == {quantum.output_refs()[0].id}


def test_task_failure_json(cli_job: CliJob) -> None:
    quantum = _quantum("fail")
    path = write_quantum(cli_job.workdir / "q.json", quantum)
    proc = cli_job.run("run-quantum", path, "--task", "cli_tasks:fail", "--config", cli_job.config, "--json")
    assert proc.returncode == 1
    summary = json.loads(proc.stdout)
    assert summary["exit_code"] == 1
    assert summary["status"] == "failed"
    assert summary["uploaded"] == _expected_uploads(cli_job, quantum)
    assert summary["error"] == "ValueError: the task failed on purpose"


@pytest.mark.parametrize("status", ["0", "3", "legacy task: bad input, giving up"])
def test_task_calling_sys_exit_is_a_task_failure(cli_job: CliJob, status: str) -> None:
    quantum = _quantum("exiting")
    path = write_quantum(cli_job.workdir / "q.json", quantum)
    env = {**cli_job.env, "CLI_TEST_EXIT": status}
    args = ("run-quantum", path, "--task", "cli_tasks:exit_after_first_put", "--config", cli_job.config)

    proc = run_cli(*args, "--json", env=env, cwd=cli_job.workdir)

    assert proc.returncode == 1, proc.stderr
    code = int(status) if status.isdigit() else repr(status)
    message = f"Task exiting of quantum {quantum.id} called sys.exit({code})"
    summary = json.loads(proc.stdout)
    assert summary["exit_code"] == 1 and summary["status"] == "failed"
    assert summary["uploaded"] == _expected_uploads(cli_job, quantum)
    assert summary["error"].startswith(f"TaskExitError: {message}")
    assert f"Task of quantum {quantum.id} failed: TaskExitError: {message}" in proc.stderr
    assert "treated as a failure" in proc.stderr
    _no_secret(proc.stdout, proc.stderr)
    report = _report(cli_job, quantum)
    assert report.status == "failed"
    assert report.error is not None and report.error.type == "s3qbb.batch.execution.TaskExitError"
    body = cli_job.endpoint.client.get_object(
        Bucket=cli_job.endpoint.bucket, Key=f"{PREFIX}/{provenance_key(RUN, quantum.id)}"
    )["Body"].read()
    assert QuantumProvenanceData.from_json(body).actual_outputs == {quantum.output_refs()[0].id}


# ------------------------------------------------------------------ exit 2


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("config-missing", "not found"),
        ("task-no-colon", "must look like 'package.module:function'"),
        ("task-unknown", "Cannot load task 'cli_tasks:no_such_task'"),
        ("quantum-not-json", "is invalid"),
        ("quantum-missing", "Cannot read quantum description"),
    ],
)
def test_infrastructure_failure_before_the_butler_exits_2_and_uploads_nothing(
    cli_job: CliJob, case: str, message: str
) -> None:
    path = write_quantum(cli_job.workdir / "q.json", _quantum())
    task, config = "cli_tasks:produce", str(cli_job.config)
    if case == "config-missing":
        config = str(cli_job.workdir / "nowhere" / "butler.yaml")
    elif case == "task-no-colon":
        task = "cli_tasks.produce"
    elif case == "task-unknown":
        task = "cli_tasks:no_such_task"
    elif case == "quantum-not-json":
        path.write_text('{"taskLabel": "produce", ')
    else:
        path = cli_job.workdir / "missing.json"

    proc = cli_job.run("run-quantum", path, "--task", task, "--config", config)

    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith("s3qbb run-quantum: ")
    assert message in proc.stderr
    _no_secret(proc.stdout, proc.stderr)
    assert _records_keys(cli_job) == []  # nothing uploaded: a retry starts clean


def test_missing_inputs_exit_1_with_failed_status_and_task_not_run(cli_job: CliJob) -> None:
    lost = make_ref("raw", 7, RAW_RUN)
    quantum = Quantum(taskLabel="produce", inputs=[lost], outputs=[make_ref("calexp", 7)])
    path = write_quantum(cli_job.workdir / "q.json", quantum)

    proc = cli_job.run(
        "run-quantum", path, "--task", "cli_tasks:produce", "--config", cli_job.config, "--json"
    )

    assert proc.returncode == 1  # the quantum failed: a retry of the same job cannot help
    summary = json.loads(proc.stdout)
    assert summary["status"] == "failed"
    assert summary["missing_inputs"] == [str(lost)]
    assert "1 predicted input(s) missing" in summary["error"]
    assert summary["uploaded"] == _expected_uploads(cli_job, quantum)
    _no_secret(proc.stdout, proc.stderr)
    report = _report(cli_job, quantum)
    assert report.status == "failed"
    assert report.error is not None and "the task was not run" in report.error.message
    assert [k for k in object_keys(cli_job.endpoint) if "/calexp/" in k] == []  # the task did not run


def test_allow_missing_inputs_runs_the_task(cli_job: CliJob) -> None:
    lost = make_ref("raw", 7, RAW_RUN)
    quantum = Quantum(taskLabel="produce", inputs=[lost], outputs=[make_ref("calexp", 7)])
    path = write_quantum(cli_job.workdir / "q.json", quantum)

    proc = cli_job.run(
        "run-quantum", path, "--task", "cli_tasks:produce", "--config", cli_job.config,
        "--allow-missing-inputs", "--json",
    )  # fmt: skip

    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["status"] == "succeeded"
    assert summary["missing_inputs"] == [str(lost)]
    assert len([k for k in object_keys(cli_job.endpoint) if "/calexp/" in k]) == 1


# ------------------------------------------------------------------ secrets


def test_secret_of_the_environment_never_printed(cli_job: CliJob) -> None:
    """A task error quoting the secret, with botocore's debug logging (signed headers) on."""
    quantum = _quantum("fail_with_secret")
    path = write_quantum(cli_job.workdir / "q.json", quantum)

    proc = cli_job.run(
        "-vvv", "run-quantum", path, "--task", "cli_tasks:fail_with_secret", "--config", cli_job.config
    )

    assert proc.returncode == 1
    assert "DEBUG botocore" in proc.stderr  # the debug log was on, and redacted
    assert "Authorization" in proc.stderr
    assert "RuntimeError: cannot call the service" in proc.stderr
    assert SECRET not in proc.stdout + proc.stderr
    report = cli_job.endpoint.client.get_object(
        Bucket=cli_job.endpoint.bucket, Key=f"{PREFIX}/{report_key(RUN, quantum.id)}"
    )["Body"].read()
    assert SECRET.encode() not in report


def test_secret_of_a_broken_configuration_file_never_printed(cli_job: CliJob) -> None:
    file_secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # 40 characters, like AWS secret keys
    broken = cli_job.workdir / "broken.yaml"
    broken.write_text(
        f"datastore:\n  root: s3://{cli_job.endpoint.bucket}/{PREFIX}\n  endpoint:\n"
        f"    secret_access_key: {file_secret}: oops\n"
    )
    path = write_quantum(cli_job.workdir / "q.json", _quantum())

    proc = cli_job.run("run-quantum", path, "--task", "cli_tasks:produce", "--config", broken)

    assert proc.returncode == 2
    assert "not valid YAML" in proc.stderr
    output = proc.stdout + proc.stderr
    pieces = {file_secret[i : i + 12] for i in range(len(file_secret) - 11)}
    assert not [piece for piece in pieces if piece in output]  # not even a part of it


def test_task_module_failing_on_import_is_an_infrastructure_failure(cli_job: CliJob, tmp_path: Path) -> None:
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "cli_broken_task.py").write_text("raise RuntimeError('cannot import the task module')\n")
    env = {**cli_job.env, "PYTHONPATH": f"{modules}:{TESTS_DIR}"}
    path = write_quantum(cli_job.workdir / "q.json", _quantum())

    proc = run_cli("run-quantum", path, "--task", "cli_broken_task:task", "--config", cli_job.config, env=env)

    assert "Traceback" not in proc.stderr
    assert proc.returncode == 2
    assert "cli_broken_task:task" in proc.stderr
    assert _records_keys(cli_job) == []
