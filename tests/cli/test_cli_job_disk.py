"""``s3qbb run-quantum`` on a local disk that is full or unusable, and with few file descriptors.

The full disks are small tmpfs mounts (root only: skipped elsewhere). Each
failing job must say which file could not be written and what to do, exit 75
(a retry on a healthy disk can succeed), leave no report vouching for its
outputs, and be followed by a retry that succeeds and ingests exactly.
"""

from __future__ import annotations

import resource
from pathlib import Path

import pytest
from cli_helpers import PREFIX, RUN, CliJob, make_ref, object_keys
from env_helpers import assert_ingest_exact, job_files, tmpfs

from s3qbb.batch.execution import run_quantum
from s3qbb.core import DatasetRef, Quantum
from s3qbb.provenance.files import report_key


def _outputs(count: int, name: str = "calexp", run: str = RUN) -> list[DatasetRef]:
    return [make_ref(name, detector, run) for detector in range(count)]


@pytest.mark.moto_server
def test_tmpdir_filling_up_before_the_records_copy_exits_75_naming_the_file(
    cli_job: CliJob, s3_transport: str, tmp_path: Path
) -> None:
    outputs = _outputs(20)
    quantum = Quantum(taskLabel="fill", taskName="env_tasks.fill_disk_then_produce", outputs=outputs)
    files = job_files(cli_job, quantum, s3_transport)
    with tmpfs(tmp_path / "tmp", "256k") as tmpdir:
        # The task leaves 8 KiB: enough for Python to pick TMPDIR, too little for the records file.
        env = {**files.env, "TMPDIR": str(tmpdir), "ENV_TEST_FILL": str(tmpdir / "filler")}
        env["ENV_TEST_LEAVE"] = str(8 * 1024)
        failed = files.run("env_tasks:fill_disk_then_produce", env=env)
        assert failed.returncode == 75, failed.stderr
        assert f"{tmpdir}/s3qbb-records-" in failed.stderr  # the file being written, not ":memory:"
        assert "is full: free space there, or write the records elsewhere" in failed.stderr
        assert "TMPDIR" in failed.stderr
        assert f"quantum {quantum.id} (fill): upload-failed" in failed.stdout  # the task ran
        keys = object_keys(cli_job.endpoint, f"{PREFIX}/{RUN}/")
        assert f"{PREFIX}/{report_key(RUN, quantum.id)}" not in keys  # nothing vouches for them
        (tmpdir / "filler").unlink()
        env["ENV_TEST_LEAVE"] = str(200 * 1024)
        retried = files.run("env_tasks:fill_disk_then_produce", env=env)
    assert retried.returncode == 0, retried.stderr
    assert_ingest_exact(cli_job, outputs)


@pytest.mark.moto_server
def test_records_file_on_a_full_disk_exits_75_naming_it_then_elsewhere_succeeds(
    cli_job: CliJob, tmp_path: Path
) -> None:
    outputs = _outputs(3)
    quantum = Quantum(taskLabel="fill", taskName="env_tasks.fill_disk_then_produce", outputs=outputs)
    files = job_files(cli_job, quantum, "boto3")
    with tmpfs(tmp_path / "disk", "256k") as disk:
        records = disk / "records.sqlite3"
        env = {**files.env, "ENV_TEST_FILL": str(disk / "filler")}
        failed = files.run("env_tasks:fill_disk_then_produce", "--records-file", str(records), env=env)
        assert failed.returncode == 75, failed.stderr
        assert f"records store '{records}'" in failed.stderr
        assert "database or disk is full" in failed.stderr
        assert f"the file system holding '{records}' is full: free space there" in failed.stderr
        assert "--records-file PATH" in failed.stderr
    elsewhere = tmp_path / "records" / "records.sqlite3"
    env["ENV_TEST_FILL"] = str(tmp_path / "small-filler")
    env["ENV_TEST_LEAVE"] = str(2**62)  # writes nothing
    retried = files.run("env_tasks:fill_disk_then_produce", "--records-file", str(elsewhere), env=env)
    assert retried.returncode == 0, retried.stderr
    assert_ingest_exact(cli_job, outputs)


@pytest.mark.moto_server
def test_records_file_in_a_missing_folder_is_created_or_named(cli_job: CliJob, tmp_path: Path) -> None:
    outputs = _outputs(2)
    quantum = Quantum(taskLabel="p", taskName="env_tasks.produce_with_pause", outputs=outputs)
    files = job_files(cli_job, quantum, "boto3")
    with tmpfs(tmp_path / "ro", "64k") as read_only:
        import subprocess

        subprocess.run(["mount", "-o", "remount,ro", str(read_only)], check=True)
        records = read_only / "sub" / "records.sqlite3"
        failed = files.run("env_tasks:produce_with_pause", "--records-file", str(records))
        assert failed.returncode == 75, failed.stderr
        # The attempt prepares its records file (folder made, a file left by an earlier job set aside)
        # before the task runs: the error names the file, the cause and what to do.
        assert f"Cannot prepare the local records file {records}" in failed.stderr
        assert "Read-only file system" in failed.stderr
        assert "Check that its folder is writable, or run without --records-file" in failed.stderr
        assert "Traceback" not in failed.stderr
    records = tmp_path / "no" / "such" / "folder" / "records.sqlite3"
    done = files.run("env_tasks:produce_with_pause", "--records-file", str(records))
    assert done.returncode == 0, done.stderr
    assert records.is_file()
    assert_ingest_exact(cli_job, outputs)


@pytest.mark.moto_server
def test_few_file_descriptors_with_many_inputs_and_outputs_and_the_cache_on(
    cli_job: CliJob, s3_transport: str, tmp_path: Path
) -> None:
    import cli_tasks

    from s3qbb.core.records import DatastoreRecordData

    raws = _outputs(50, "raw", "env/raw")
    make = Quantum(taskLabel="make", taskName="cli_tasks.produce", outputs=raws)
    config = {
        "datastore": {
            "root": f"s3://{cli_job.endpoint.bucket}/{PREFIX}",
            "endpoint": cli_job.endpoint.config,
        },
        "cache": {"enabled": False},
    }
    made = run_quantum(config, make, cli_tasks.produce)
    assert made.exit_code == 0
    from cli_helpers import _records_of

    records: dict[str, DatastoreRecordData] = _records_of(cli_job.endpoint, [make], "env/raw")
    outputs = _outputs(200)
    quantum = Quantum(
        taskLabel="many",
        taskName="env_tasks.read_all_write_all",
        inputs=raws,
        outputs=outputs,
        datastore_records=records,
    )
    files = job_files(cli_job, quantum, s3_transport, cache=True)

    def few_descriptors() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    import subprocess
    import sys

    args = [
        "run-quantum",
        files.quantum_file,
        "--task",
        "env_tasks:read_all_write_all",
        "--config",
        files.config,
    ]
    args += ["--records-file", tmp_path / "records.sqlite3"]
    done = subprocess.run(
        [sys.executable, "-m", "s3qbb.cli", *map(str, args)],
        env=files.env,
        cwd=cli_job.workdir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=few_descriptors,
    )
    assert done.returncode == 0, done.stderr
    assert f"quantum {quantum.id} (many): succeeded" in done.stdout
    assert_ingest_exact(cli_job, outputs)
