"""``s3qbb run-quantum`` in a hostile environment: no or unwritable HOME, AWS_CONFIG_FILE a folder,
an ASCII-only locale and output encoding with non-ASCII run names and error messages."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import PREFIX, CliJob, make_ref
from env_helpers import assert_ingest_exact, job_files, object_body, tmpfs

from s3qbb.core import Quantum
from s3qbb.provenance.files import report_key
from s3qbb.provenance.model import QuantumExecutionReport


@pytest.mark.moto_server
@pytest.mark.parametrize("case", ["empty HOME", "unwritable HOME", "AWS_CONFIG_FILE is a folder"])
def test_job_succeeds_whatever_home_and_aws_config_file(
    cli_job: CliJob, s3_transport: str, tmp_path: Path, case: str
) -> None:
    outputs = [make_ref("calexp", detector) for detector in range(3)]
    quantum = Quantum(taskLabel="p", taskName="env_tasks.produce_with_pause", outputs=outputs)
    files = job_files(cli_job, quantum, s3_transport)
    env = dict(files.env)
    with tmpfs(tmp_path / "home", "64k") as home:
        if case == "empty HOME":
            env["HOME"] = ""
        elif case == "unwritable HOME":
            import subprocess

            subprocess.run(["mount", "-o", "remount,ro", str(home)], check=True)
            env["HOME"] = str(home)
        else:
            (tmp_path / "aws-config").mkdir()
            env["AWS_CONFIG_FILE"] = str(tmp_path / "aws-config")
        files.env.clear()
        files.env.update(env)
        done = files.run("env_tasks:produce_with_pause")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert_ingest_exact(cli_job, outputs)


@pytest.mark.moto_server
def test_ascii_locale_and_output_with_non_ascii_run_and_error(cli_job: CliJob, s3_transport: str) -> None:
    run = "env/rün☃"
    outputs = [make_ref("calexp", detector, run) for detector in range(2)]
    quantum = Quantum(taskLabel="uni", taskName="env_tasks.fail_in_unicode", outputs=outputs)
    files = job_files(cli_job, quantum, s3_transport)
    files.env.update(LANG="C", LC_ALL="C", PYTHONIOENCODING="ascii")
    failed = files.run("env_tasks:fail_in_unicode")
    assert failed.returncode == 1, failed.stderr
    for text in (failed.stdout, failed.stderr):
        assert "Traceback" not in text and "UnicodeEncodeError" not in text and "Logging error" not in text
    assert "pixel caf\\xe9 \\u2603 saturated in run env/r\\xfcn\\u2603" in failed.stderr  # escaped, not lost
    assert f"quantum {quantum.id} (uni): failed" in failed.stdout
    report = QuantumExecutionReport.from_json(object_body(cli_job, f"{PREFIX}/{report_key(run, quantum.id)}"))
    assert report.error is not None and "pixel café ☃ saturated in run env/rün☃" in report.error.message
    done = files.run("env_tasks:produce_with_pause", "--json")
    assert done.returncode == 0, done.stderr
    assert '"status": "succeeded"' in done.stdout
    assert_ingest_exact(cli_job, outputs, run=run)
