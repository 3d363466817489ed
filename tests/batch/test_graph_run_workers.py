"""``s3qbb run``'s quantum processes: logging options passed on, fork server and new interpreters alike."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from graph_helpers import EXPECTED_SUMMARY, make_job, read_dataset

from s3qbb.batch.local import run_graph
from s3qbb.batch.workers import ForkServer, default_start_method, preload_modules
from s3qbb.testing.servers import S3TestEndpoint


@pytest.mark.moto_server
def test_logging_options_reach_every_quantum(moto_endpoint: S3TestEndpoint, tmp_path: Path) -> None:
    job = make_job(moto_endpoint, tmp_path)
    log = tmp_path / "logs" / "run.log"
    log.parent.mkdir()
    done = job.run("run", "--graph", job.graph_uri, "--config", job.config_uri, "-j", "2", "-v",
                   "--log-format", "json", "--log-file", "logs/run.log", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["counts"] == {"succeeded": len(job.graph)}
    records = [json.loads(line) for line in log.read_text().splitlines()]  # one file, JSON lines only
    # -v reached the quanta: each logged its steps (INFO) into the runner's file, tagged with its ID.
    started = {r.get("quantum_id") for r in records if r["message"].startswith("Starting attempt")}
    assert started == {str(node.id) for node in job.graph.nodes}
    assert all(r["level"] in ("INFO", "WARNING", "DEBUG") for r in records)
    assert read_dataset(job, job.summary)["sum"] == EXPECTED_SUMMARY


@pytest.mark.moto_server
def test_new_interpreter_per_quantum_runs_the_same(
    moto_endpoint: S3TestEndpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = make_job(moto_endpoint, tmp_path, calibrate_task="graph_tasks:fail")
    monkeypatch.chdir(tmp_path)
    for name, value in job.env.items():  # the runner reads the graph with the job's credentials
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    summary = run_graph(
        job.graph_uri, job.config_uri, jobs=2, env=job.env, handle_signals=False, start_method="subprocess"
    )
    statuses = [summary.runs[i].status for i in sorted(summary.runs)]
    assert statuses == ["succeeded", "failed", "failed", "failed", "upstream-failed"]
    assert "this task fails on purpose" in summary.runs[1].stderr_tail
    assert default_start_method() == ("forkserver" if hasattr(os, "fork") else "subprocess")


def test_fork_server_children_statuses_and_stderr(tmp_path: Path) -> None:
    if default_start_method() != "forkserver":  # pragma: no cover - Windows
        pytest.skip("no fork on this platform")
    server = ForkServer(preload_modules(None))
    try:
        ok = server.start(["--version"], stderr_path=str(tmp_path / "ok.err"))
        bad = server.start(["no-such-command"], stderr_path=str(tmp_path / "bad.err"))
        assert ok.pid != bad.pid and os.getpid() not in (ok.pid, bad.pid)
        assert ok.wait() == 0
        assert bad.wait() == 2  # argparse's usage error, in the child's own stderr file
        assert "no-such-command" in (tmp_path / "bad.err").read_text()
        bad.send_signal(15)  # an ended child: nothing is sent, nothing raised
    finally:
        server.close()
