"""Logs of ``s3qbb run-quantum``: s3qbb's steps at -v, the quantum on every line, text or JSON, a log file."""

from __future__ import annotations

import json
import re
from pathlib import Path

from cli_helpers import SECRET, CliJob, make_ref, write_quantum

from s3qbb.core import Quantum

TEXT_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) \S+ \[(\S+) (\S+)\] "
)


def _quantum() -> Quantum:
    return Quantum(taskLabel="produce", outputs=[make_ref("a", 1), make_ref("b", 2)])


def test_v_after_the_sub_command_shows_s3qbb_steps_with_the_quantum_on_every_line(server_job: CliJob) -> None:
    quantum = _quantum()
    path = write_quantum(server_job.workdir / "q.json", quantum)

    proc = server_job.run(
        "run-quantum", path, "--task", "cli_tasks:produce", "--config", server_job.config, "-v"
    )

    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    job_lines = [line for line in lines if f"[produce {quantum.id}]" in line]
    assert job_lines and all(TEXT_LINE.match(line) for line in lines)  # timestamps everywhere
    text = "\n".join(job_lines)
    assert "Checked for an earlier success" in text
    assert "Starting attempt " in text
    assert "Checked 0 predicted input(s)" in text
    # Each request with its size and time, from s3qbb's own logger.
    put = re.search(
        r"INFO s3qbb\.s3\.requests \[.*\] PutObject s3://\S+/a/\S+: HTTP 200, \d+ bytes sent, [\d.]+ ms", text
    )
    assert put, text
    assert re.search(
        r"GetObject s3://\S+\.quantum\.json: \S+ after [\d.]+ ms|GetObject s3://\S+: HTTP 404", text
    )
    assert f"Quantum {quantum.id} succeeded; uploaded" in text
    assert "botocore" not in proc.stderr  # no library noise at -v


def test_json_log_lines_and_log_file(cli_job: CliJob) -> None:
    quantum = _quantum()
    path = write_quantum(cli_job.workdir / "q.json", quantum)
    log_file = cli_job.workdir / "job.log"

    proc = cli_job.run(
        "--log-format", "json", "run-quantum", path, "--task", "cli_tasks:fail_with_secret",
        "--config", cli_job.config, "-vv", "--log-file", log_file,
    )  # fmt: skip

    assert proc.returncode == 1
    records = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    assert records and [json.loads(line) for line in log_file.read_text().splitlines()] == records
    assert {r["quantum_id"] for r in records if r["logger"].startswith("s3qbb.batch")} == {str(quantum.id)}
    assert {r["task_label"] for r in records if r["logger"].startswith("s3qbb.batch")} == {"produce"}
    assert {"time", "level", "logger", "message"} <= set(records[0])
    failure = [r for r in records if "cannot call the service" in r["message"]]
    assert failure and failure[0]["level"] == "ERROR"
    assert SECRET not in proc.stderr + log_file.read_text()  # redacted, in both


def test_vvv_opens_botocore_debug_redacted(cli_job: CliJob) -> None:
    path = write_quantum(cli_job.workdir / "q.json", _quantum())
    proc = cli_job.run("run-quantum", path, "--task", "cli_tasks:produce", "--config", cli_job.config, "-vvv")
    assert proc.returncode == 0, proc.stderr
    assert "DEBUG botocore" in proc.stderr
    assert SECRET not in proc.stderr


def test_main_in_process_leaves_logging_as_it_found_it(tmp_path: Path) -> None:
    import logging

    from s3qbb.cli.main import main

    watched = [logging.getLogger(), logging.getLogger("s3qbb"), logging.getLogger("botocore")]
    before = [(logger.level, list(logger.handlers)) for logger in watched]
    # A command that logs and fails (no such file), at the most verbose level, with a log file.
    assert main(["-vvv", "--log-file", str(tmp_path / "log.txt"), "inspect", str(tmp_path / "nope")]) != 0
    assert [(logger.level, list(logger.handlers)) for logger in watched] == before
