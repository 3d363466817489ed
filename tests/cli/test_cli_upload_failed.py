"""A failed task whose records cannot be uploaded says upload-failed, exits 75, and a retry succeeds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import CliJob, make_ref
from env_helpers import job_files

from s3qbb.core import Quantum


@pytest.mark.moto_server
def test_a_failed_task_whose_records_cannot_be_uploaded_says_upload_failed(
    cli_job: CliJob, tmp_path: Path
) -> None:
    outputs = [make_ref("calexp", d) for d in (1, 2)]
    task = "upload_failure_tasks.fail_with_no_temporary_folder"
    quantum = Quantum(taskLabel="f", taskName=task, outputs=outputs)
    files = job_files(cli_job, quantum, "boto3")
    env = {**files.env, "UPLOAD_TEST_TMPDIR": str(tmp_path / "gone")}
    failed = files.run("upload_failure_tasks:fail_with_no_temporary_folder", "--json", env=env)
    assert failed.returncode == 75, (failed.returncode, failed.stdout, failed.stderr)
    assert "Traceback" not in failed.stderr
    assert "the task failed on purpose" in failed.stderr
    assert str(tmp_path / "gone") in failed.stderr
    summary = json.loads(failed.stdout)
    assert summary["status"] == "upload-failed", summary
    assert summary["exit_code"] == 75 and summary["uploaded"] == []
    retried = files.run("upload_failure_tasks:fail_with_no_temporary_folder", "--json")  # a healthy disk
    assert retried.returncode == 1, retried.stderr
    again = json.loads(retried.stdout)
    assert again["status"] == "failed" and len(again["uploaded"]) == 3, again
