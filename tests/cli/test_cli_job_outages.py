"""``s3qbb run-quantum`` when the S3 server goes away, refuses the host's clock, or the job is stopped.

The server "goes away" by closing the `FaultProxy` the job talks to (connections
refused, as when the server process dies) and "comes back" by listening again on
the same port, in front of the same server and its data (moto and SeaweedFS; a
SeaweedFS restarted for real gets new ports and credentials, which no job would
follow). Every test runs on both transports.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from cli_helpers import PREFIX, RUN, CliJob, make_ref
from env_helpers import JobFiles, assert_ingest_exact, job_files, object_body

from s3qbb.core import DatasetRef, DatasetType, DimensionUniverse, Quantum
from s3qbb.provenance.files import report_key
from s3qbb.provenance.model import QuantumExecutionReport
from s3qbb.testing.proxy import FaultProxy


def _wait(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.02)


def _paused_job(
    job: CliJob, transport: str, proxy: FaultProxy, **env: str
) -> tuple[JobFiles, list[DatasetRef]]:
    outputs = [make_ref("calexp", detector) for detector in range(6)]
    quantum = Quantum(taskLabel="pause", taskName="env_tasks.produce_with_pause", outputs=outputs)
    files = job_files(job, quantum, transport, endpoint_url=proxy.url)
    files.env.update(env)
    return files, outputs


def test_server_down_then_back_while_the_job_retries_succeeds(server_job: CliJob, s3_transport: str) -> None:
    proxy = FaultProxy(server_job.endpoint.endpoint_url).start()
    port = proxy.port
    ready, go = server_job.workdir / "ready", server_job.workdir / "go"
    files, outputs = _paused_job(
        server_job, s3_transport, proxy, ENV_TEST_READY=str(ready), ENV_TEST_GO=str(go)
    )
    proc = files.popen("env_tasks:produce_with_pause")
    try:
        _wait(ready)
        proxy.stop()  # the server is gone in the middle of the task's puts
        go.touch()
        time.sleep(2.0)  # the job's puts are refused and retried meanwhile
        proxy = FaultProxy(server_job.endpoint.endpoint_url, port=port).start()
        out, err = proc.communicate(timeout=90)
    finally:
        proc.kill()
        proxy.stop()
    assert proc.returncode == 0, err
    assert f"quantum {files.quantum.id} (pause): succeeded" in out
    key = f"{PREFIX}/{report_key(RUN, files.quantum.id)}"
    report = QuantumExecutionReport.from_json(object_body(server_job, key))
    assert (report.status, report.error) == ("succeeded", None)
    assert report.retries >= 1  # the refused puts were retried by the one retry layer, then went through
    assert_ingest_exact(server_job, outputs)


def test_server_down_beyond_the_retry_budget_exits_75_naming_the_endpoint(
    server_job: CliJob, s3_transport: str
) -> None:
    proxy = FaultProxy(server_job.endpoint.endpoint_url).start()
    port = proxy.port
    ready, go = server_job.workdir / "ready", server_job.workdir / "go"
    files, outputs = _paused_job(
        server_job,
        s3_transport,
        proxy,
        ENV_TEST_READY=str(ready),
        ENV_TEST_GO=str(go),
        S3QBB_RETRY_CONNECT_TIME="2",
        S3QBB_RETRY_MAX_TOTAL_TIME="2",
    )
    proc = files.popen("env_tasks:produce_with_pause")
    try:
        _wait(ready)
        proxy.stop()
        go.touch()
        _out, err = proc.communicate(timeout=90)
    finally:
        proc.kill()
    assert proc.returncode == 75, err
    assert f"127.0.0.1:{port}" in err  # the endpoint that could not be reached
    assert "S3QBB_RETRY_CONNECT_TIME" in err  # what to do about it
    assert "Traceback" not in err
    keys = [o["Key"] for o in _list(server_job)]
    assert f"{PREFIX}/{report_key(RUN, files.quantum.id)}" not in keys  # no report vouches for a half run
    # The retry job, with the server back.
    proxy = FaultProxy(server_job.endpoint.endpoint_url, port=port).start()
    try:
        env = {k: v for k, v in files.env.items() if not k.startswith(("ENV_TEST_", "S3QBB_RETRY_"))}
        retried = JobFiles(files.job, files.quantum, files.quantum_file, files.config, env)
        done = retried.run("env_tasks:produce_with_pause")
    finally:
        proxy.stop()
    assert done.returncode == 0, done.stderr
    assert_ingest_exact(server_job, outputs)


def _list(job: CliJob) -> list[dict[str, str]]:
    return list(job.endpoint.client.list_objects_v2(Bucket=job.endpoint.bucket).get("Contents", []))


def test_clock_skew_says_the_clock_is_off_not_access_denied(server_job: CliJob, s3_transport: str) -> None:
    outputs = [make_ref("calexp", 1)]
    quantum = Quantum(taskLabel="skew", taskName="env_tasks.produce_with_pause", outputs=outputs)
    with FaultProxy(server_job.endpoint.endpoint_url, rate=1.0, kinds=["skewed"]) as proxy:
        files = job_files(server_job, quantum, s3_transport, endpoint_url=proxy.url)
        done = files.run("env_tasks:produce_with_pause")
    assert done.returncode == 75, done.stderr
    assert "RequestTimeTooSkewed" in done.stderr
    assert "the clock of this host is off" in done.stderr
    assert "synchronise it" in done.stderr
    assert "grant this action" not in done.stderr  # not an access-rights problem
    assert proxy.requests.total() == 1  # a refused clock is not retried


_UNIVERSE = DimensionUniverse()


@pytest.mark.moto_server
def test_sigterm_during_a_multipart_put_aborts_it_then_the_retry_succeeds(
    cli_job: CliJob, s3_transport: str
) -> None:
    big = DatasetType("big", ["visit", "detector"], "Bytes", universe=_UNIVERSE)
    ref = DatasetRef(big, {"instrument": "Cam", "visit": 1, "detector": 1}, RUN)
    quantum = Quantum(taskLabel="big", taskName="env_tasks.big_put", outputs=[ref])
    ready = cli_job.workdir / "ready"
    # Parts answered late: the put is still going when SIGTERM arrives.
    script = {"UploadPart": ["slow_first_byte"] * 16}
    with FaultProxy(cli_job.endpoint.endpoint_url, script, slow_delay=0.5) as proxy:
        files = job_files(
            cli_job,
            quantum,
            s3_transport,
            endpoint_url=proxy.url,
            multipart_threshold=5 * 1024**2,
            multipart_chunksize=5 * 1024**2,
        )
        files.env.update(ENV_TEST_READY=str(ready), S3QBB_GRACE_PERIOD="20")
        proc = files.popen("env_tasks:big_put")
        try:
            _wait(ready)
            deadline = time.monotonic() + 30
            while proxy.injected["slow_first_byte"] == 0:
                assert time.monotonic() < deadline, "no part was sent"
                time.sleep(0.02)
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
    assert proc.returncode == 143, err
    assert f"quantum {quantum.id} (big): interrupted" in out
    client, bucket = cli_job.endpoint.client, cli_job.endpoint.bucket
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []  # aborted, none orphaned
    report = QuantumExecutionReport.from_json(object_body(cli_job, f"{PREFIX}/{report_key(RUN, quantum.id)}"))
    assert report.status == "interrupted"
    retried = job_files(
        cli_job, quantum, s3_transport, multipart_threshold=5 * 1024**2, multipart_chunksize=5 * 1024**2
    ).run("env_tasks:big_put")
    assert retried.returncode == 0, retried.stderr
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert_ingest_exact(cli_job, [ref])
    (record_key,) = [o["Key"] for o in _list(cli_job) if "/big/" in o["Key"]]
    assert object_body(cli_job, record_key) == b"Z" * (40 * 1024**2)
