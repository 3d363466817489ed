"""``--records-file`` through a symlink, relative to the job's folder, or under a file.

A folder that is a file cannot be created by any retry: the job says so before the
task runs, and exits as a usage error (2), not as a transient failure (75).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import CliJob, make_ref
from env_helpers import assert_ingest_exact, job_files

from s3qbb.core import Quantum


@pytest.mark.moto_server
def test_records_file_through_a_symlink_and_relative(cli_job: CliJob, tmp_path: Path) -> None:
    outputs = [make_ref("calexp", 1)]
    quantum = Quantum(taskLabel="p", taskName="env_tasks.produce_with_pause", outputs=outputs)
    files = job_files(cli_job, quantum, "boto3")
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    records = tmp_path / "link" / "new" / "records.sqlite3"
    done = files.run("env_tasks:produce_with_pause", "--records-file", str(records))
    assert done.returncode == 0, done.stderr
    assert (real / "new" / "records.sqlite3").is_file()
    relative = Path("rel") / "records.sqlite3"
    again = files.run("env_tasks:produce_with_pause", "--records-file", str(relative), "--rerun")
    assert again.returncode == 0, again.stderr
    assert (Path(cli_job.workdir) / relative).is_file()
    assert_ingest_exact(cli_job, outputs)


@pytest.mark.moto_server
@pytest.mark.parametrize("blocker", ["file", "broken-link", "folder"])
def test_records_file_no_retry_can_create_is_a_usage_error_before_the_task_runs(
    cli_job: CliJob, tmp_path: Path, blocker: str
) -> None:
    outputs = [make_ref("calexp", 1)]
    quantum = Quantum(taskLabel="p", taskName="env_tasks.produce_with_pause", outputs=outputs)
    files = job_files(cli_job, quantum, "boto3")
    path = tmp_path / "records"
    if blocker == "file":
        path.write_text("not a folder")
    elif blocker == "broken-link":
        path.symlink_to(tmp_path / "gone")
    else:
        path.mkdir()
    records = path if blocker == "folder" else path / "records.sqlite3"
    failed = files.run("env_tasks:produce_with_pause", "--records-file", str(records))
    assert failed.returncode == 2, (failed.returncode, failed.stdout, failed.stderr)
    assert str(path) in failed.stderr and "folder" in failed.stderr
    assert "--records-file" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert failed.stdout == ""  # the task did not run
