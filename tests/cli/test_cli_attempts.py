"""Two attempts of one quantum at once: neither replaces the outputs of the other while it runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from cli_helpers import PREFIX, RUN, CliJob, make_ref, object_keys, write_quantum

from s3qbb import QuantumBackedButler
from s3qbb.batch.attempts import CLOCK_SKEW_S, LEASE_S, AttemptLease
from s3qbb.batch.upstream import repo_bucket
from s3qbb.core import DimensionUniverse, Quantum
from s3qbb.core.attempt import WriteToken
from s3qbb.provenance.files import attempt_key, report_key
from s3qbb.provenance.model import QuantumExecutionReport
from s3qbb.repo import load_repo_config
from s3qbb.s3.ownership import AttemptActiveError

_UNIVERSE = DimensionUniverse()


def _start(job: CliJob, path: Path, task: str, *options: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "s3qbb.cli",
            "run-quantum",
            str(path),
            "--task",
            task,
            "--config",
            str(job.config),
            *options,
        ],
        env={**job.env, **env},
        cwd=job.workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(path: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            _out, err = proc.communicate(timeout=5) if proc.poll() is not None else ("", "")
            proc.kill()
            pytest.fail(f"the first attempt did not write its outputs: {err}")
        time.sleep(0.02)


def _report(job: CliJob, quantum: Quantum) -> QuantumExecutionReport:
    body = job.endpoint.client.get_object(
        Bucket=job.endpoint.bucket, Key=f"{PREFIX}/{report_key(RUN, quantum.id)}"
    )["Body"].read()
    return QuantumExecutionReport.from_json(body)


def _config(job: CliJob) -> dict[str, object]:
    """The job's repository configuration, with the server's credentials (this process has none)."""
    endpoint = json.loads(job.endpoint.config.model_dump_json())
    secret = job.endpoint.config.secret_access_key
    endpoint["secret_access_key"] = secret.get_secret_value() if secret is not None else None
    return {
        "datastore": {"root": f"s3://{job.endpoint.bucket}/{PREFIX}", "endpoint": endpoint},
        "cache": {"enabled": False},
    }


def _read_back(job: CliJob, quantum: Quantum) -> list[dict[str, object]]:
    """Read every output in a fresh butler, with the records the quantum uploaded (checksums verified)."""
    from s3qbb.core.records import DatastoreRecordData
    from s3qbb.provenance.files import provenance_key
    from s3qbb.provenance.model import QuantumProvenanceData

    body = job.endpoint.client.get_object(
        Bucket=job.endpoint.bucket, Key=f"{PREFIX}/{provenance_key(RUN, quantum.id)}"
    )["Body"].read()
    provenance = QuantumProvenanceData.model_validate_json(body)
    records = {n: DatastoreRecordData.from_simple(s) for n, s in provenance.datastore_records.items()}
    outputs = quantum.output_refs()
    reader = QuantumBackedButler.from_predicted(
        _config(job),
        [r.id for r in outputs],
        [],
        _UNIVERSE,
        records,
    )
    try:
        return [reader.get(ref) for ref in outputs]
    finally:
        reader.close()


def test_a_second_attempt_never_replaces_the_outputs_of_a_running_one(server_job: CliJob) -> None:
    quantum = Quantum(taskLabel="twice", outputs=[make_ref("a", 1), make_ref("b", 2)])
    path = write_quantum(server_job.workdir / "q.json", quantum)
    ready, gate = server_job.workdir / "ready", server_job.workdir / "gate"
    first = _start(
        server_job, path, "cli_tasks:produce_then_wait",
        S3QBB_TEST_READY=str(ready), S3QBB_TEST_GATE=str(gate),
    )  # fmt: skip
    try:
        _wait_for(ready, first)  # the first attempt wrote both outputs, and runs on

        second = server_job.run(
            "run-quantum", path, "--task", "cli_tasks:produce_with_pid", "--config", server_job.config
        )

        assert second.returncode == 75, second.stderr  # retry later: then the quantum is done
        assert "it is running" in second.stderr and "retry this job" in second.stderr, second.stderr
        assert "Traceback" not in second.stderr
        # The second attempt uploaded nothing: the first attempt's records are the ones that count.
        assert not [k for k in object_keys(server_job.endpoint) if k.endswith((".quantum.json", ".sqlite3"))]
    finally:
        gate.write_text("go\n")
        _out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    report = _report(server_job, quantum)
    assert report.status == "succeeded"
    # Every output is the first attempt's, and matches the checksum its records hold.
    assert [out["pid"] for out in _read_back(server_job, quantum)] == [first.pid, first.pid]
    # Both attempts' leases say how they ended; a third attempt finds the quantum done.
    leases = [k for k in object_keys(server_job.endpoint) if "/_records/_attempts/" in k]
    states = sorted(
        json.loads(
            server_job.endpoint.client.get_object(Bucket=server_job.endpoint.bucket, Key=k)["Body"].read()
        )["state"]
        for k in leases
    )
    assert states == ["failed", "succeeded"]
    third = server_job.run(
        "run-quantum", path, "--task", "cli_tasks:produce_with_pid", "--config", server_job.config
    )
    assert third.returncode == 0 and "already succeeded" in third.stderr, third.stderr


def test_a_retry_replaces_the_outputs_of_an_attempt_killed_on_this_host_at_once(server_job: CliJob) -> None:
    quantum = Quantum(taskLabel="killed", outputs=[make_ref("a", 1)])
    path = write_quantum(server_job.workdir / "q.json", quantum)
    ready, gate = server_job.workdir / "ready", server_job.workdir / "gate"
    first = _start(
        server_job,
        path,
        "cli_tasks:produce_then_wait",
        S3QBB_TEST_READY=str(ready),
        S3QBB_TEST_GATE=str(gate),
    )
    _wait_for(ready, first)
    first.send_signal(signal.SIGKILL)  # its lease still says "running": its process tells it is gone
    first.communicate(timeout=30)

    began = time.monotonic()
    retry = server_job.run(
        "run-quantum", path, "--task", "cli_tasks:produce_with_pid", "--config", server_job.config
    )

    assert retry.returncode == 0, retry.stderr
    assert time.monotonic() - began < LEASE_S / 2  # it did not wait for the lease to expire
    assert "died" in retry.stderr and "Replacing" in retry.stderr, retry.stderr
    assert _report(server_job, quantum).status == "succeeded"
    assert [out["pid"] for out in _read_back(server_job, quantum)] != [first.pid]


@pytest.mark.parametrize(
    ("lease", "replaceable"),
    [
        (None, True),  # no lease: an attempt of an s3qbb without leases, or not a batch job
        ({"state": "failed"}, True),
        ({"state": "interrupted"}, True),
        ({"state": "succeeded", "report": "succeeded"}, False),
        ({"state": "succeeded", "report": None}, True),  # nothing vouches for the success any more
        ({"state": "succeeded", "report": "recovered"}, True),  # recovered: a run replaces it
        ({"state": "running", "host": "elsewhere", "pid": 1, "renewed_at": "now"}, False),
        ({"state": "running", "host": "elsewhere", "pid": 1, "renewed_at": "expired"}, True),
        ({"state": "running", "host": "this", "pid": "dead", "renewed_at": "now"}, True),
        ({"state": "running", "host": "this", "pid": "alive", "renewed_at": "expired"}, False),
        ("{not json", False),
    ],
    ids=["none", "failed", "interrupted", "succeeded", "succeeded-no-report", "succeeded-recovered",
         "other-host", "other-host-expired", "dead-pid", "live-pid", "unreadable"],
)  # fmt: skip
def test_which_attempts_outputs_may_be_replaced(
    server_job: CliJob, lease: dict[str, object] | str | None, replaceable: bool
) -> None:
    repo = load_repo_config(_config(server_job))
    bucket, prefix = repo_bucket(repo)
    mine = AttemptLease(bucket, prefix, RUN, WriteToken.new(uuid.uuid4()))
    other = WriteToken.new(mine.token.quantum_id)
    if isinstance(lease, dict):
        body = dict(lease)
        if body.get("report") is not None:  # the quantum's report, as the successful attempt left it
            bucket.put_raw(prefix + report_key(RUN, other.quantum_id), _report_body(other, body["report"]))
        body.pop("report", None)
        if body.get("host") == "this":
            import socket

            from s3qbb.batch.attempts import _process_identity

            dead = subprocess.run(
                [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
            )
            pid = int(dead.stdout) if body["pid"] == "dead" else os.getpid()
            started, namespace = _process_identity(os.getpid())
            body |= {
                "host": socket.gethostname(),
                "pid": pid,
                "process_started": started,
                "pid_namespace": namespace,
            }
        if body.get("renewed_at") == "now":
            body["renewed_at"] = time.time()
        elif body.get("renewed_at") == "expired":
            body["renewed_at"] = time.time() - LEASE_S - CLOCK_SKEW_S - 5
        bucket.put_raw(
            prefix + attempt_key(RUN, other.quantum_id, other.attempt_id), json.dumps(body).encode()
        )
    elif isinstance(lease, str):
        bucket.put_raw(prefix + attempt_key(RUN, other.quantum_id, other.attempt_id), lease.encode())

    if replaceable:
        mine.check_replace(mine.token, other, "s3://b/k")
    else:
        with pytest.raises(AttemptActiveError, match=other.attempt_id):
            mine.check_replace(mine.token, other, "s3://b/k")


def _report_body(attempt: WriteToken, status: str) -> bytes:
    import datetime
    import platform

    now = datetime.datetime.now(datetime.UTC)
    report = QuantumExecutionReport(
        quantum_id=attempt.quantum_id, task_label="t", task_name="t", run=RUN, status=status,
        started_at=now, ended_at=now, duration_s=0.0, host="h", pid=1, s3qbb_version="0",
        python_version=platform.python_version(), attempt_id=attempt.attempt_id,
    )  # fmt: skip
    return report.to_json()


def test_an_attempt_whose_lease_lapsed_reports_success_only_if_no_other_attempt_started(
    server_job: CliJob,
) -> None:
    repo = load_repo_config(_config(server_job))
    bucket, prefix = repo_bucket(repo)
    lease = AttemptLease(bucket, prefix, RUN, WriteToken.new(uuid.uuid4()))
    with pytest.raises(AttemptActiveError, match="never"):
        lease.check_held()
    lease.start()
    try:
        lease.check_held()
        lease._renewed_at = time.monotonic() - LEASE_S - 1  # as after a pause longer than the lease
        lease.check_held()  # no other attempt started: it goes on, its lease renewed
        assert time.monotonic() - (lease._renewed_at or 0.0) < LEASE_S

        other = AttemptLease(bucket, prefix, RUN, WriteToken.new(lease.token.quantum_id))
        other.start()  # another attempt started meanwhile, and may have taken the outputs over
        other.end("failed")
        lease._renewed_at = time.monotonic() - LEASE_S - 1
        with pytest.raises(AttemptActiveError, match="taken over"):
            lease.check_held()
    finally:
        lease.end("failed")
    stored = json.loads(bucket.get(lease.key).body)
    assert stored["state"] == "failed" and stored["attempt_id"] == lease.token.attempt_id


@pytest.mark.parametrize(
    ("body_kib", "identical"),
    [(1, False), (6 * 1024, True)],
    ids=["small-different-bodies", "multipart-identical-bodies"],
)
def test_sixteen_attempts_racing_on_one_quantum_leave_one_attempts_outputs(
    server_job: CliJob, body_kib: int, identical: bool
) -> None:
    """16 attempts of one quantum, released together onto its outputs: at most one reports success.

    Every attempt exits 0 (it wrote every output) or 75 (retry later); what the quantum's records
    say is what its outputs hold; and when none won (each holds an output another one needs), a
    retry finishes the quantum.
    """
    quantum = Quantum(taskLabel="race", outputs=[make_ref("a", 1), make_ref("b", 2)])
    path = write_quantum(server_job.workdir / "q.json", quantum)
    ready, gate = server_job.workdir / "ready", server_job.workdir / "gate"
    ready.mkdir()
    env = {
        "S3QBB_TEST_READY": str(ready),
        "S3QBB_TEST_GATE": str(gate),
        "S3QBB_TEST_BODY_KIB": str(body_kib),
        "S3QBB_S3_MULTIPART_THRESHOLD": "5MiB",  # the large bodies go up in two parts
        **({"S3QBB_TEST_IDENTICAL": "1"} if identical else {}),
    }
    procs = [_start(server_job, path, "cli_tasks:produce_at_gate", **env) for _ in range(16)]
    try:
        deadline = time.monotonic() + 180
        while len(list(ready.iterdir())) < len(procs):  # every attempt holds its lease and waits
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                pytest.fail("not every attempt reached its task: " + " | ".join(
                    p.communicate(timeout=30)[1][-500:] for p in procs if p.poll() is not None
                ))  # fmt: skip
            time.sleep(0.05)
        gate.write_text("go\n")
        ended = [(p, *p.communicate(timeout=180)) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    codes = sorted(p.returncode for p, _out, _err in ended)
    assert set(codes) <= {0, 75}, [err[-1500:] for p, _out, err in ended if p.returncode not in (0, 75)]
    for _p, _out, err in ended:
        assert "Traceback" not in err, err
    winners = [p for p, _out, _err in ended if p.returncode == 0]
    assert len(winners) <= 1, codes
    if not winners:  # each held an output another needed: a retry (all of them replaceable) ends it
        retry = server_job.run(
            "run-quantum", path, "--task", "cli_tasks:produce_with_pid", "--config", server_job.config,
            timeout=120,
        )  # fmt: skip
        assert retry.returncode == 0, retry.stderr
    report = _report(server_job, quantum)
    assert report.status == "succeeded"
    # What the records say is what the outputs hold: every read verifies its checksum, and every
    # output object carries the write token of the attempt the report is from.
    outputs = _read_back(server_job, quantum)
    if winners and not identical:
        assert [out["pid"] for out in outputs] == [winners[0].pid] * 2
    for ref in quantum.output_refs():
        key = next(k for k in object_keys(server_job.endpoint) if f"/{ref.datasetType.name}/" in k)
        head = server_job.endpoint.client.head_object(Bucket=server_job.endpoint.bucket, Key=key)
        assert head["Metadata"]["s3qbb-write-token"].endswith(str(report.attempt_id)), (key, head["Metadata"])
    # The losers uploaded no records: one records file, one report, one provenance file.
    records = [k for k in object_keys(server_job.endpoint) if "/_records/" in k and "/_attempts/" not in k]
    assert len(records) == 3, records
    again = server_job.run(
        "run-quantum", path, "--task", "cli_tasks:produce_with_pid", "--config", server_job.config
    )
    assert again.returncode == 0 and "already succeeded" in again.stderr, again.stderr


def _succeeded(job: CliJob, label: str, outputs: int) -> tuple[Quantum, list[str | Path]]:
    """Run a quantum of ``outputs`` outputs to success; return it and its ``run-quantum`` command line."""
    refs = [make_ref(name, i + 1) for i, name in enumerate("ab"[:outputs])]
    quantum = Quantum(taskLabel=label, outputs=refs)
    path = write_quantum(job.workdir / "q.json", quantum)
    argv: list[str | Path] = ["run-quantum", path, "--task", "cli_tasks:produce_with_pid"]
    argv += ["--config", job.config]
    first = job.run(*argv)
    assert first.returncode == 0, first.stderr
    return quantum, argv


def test_rerun_replaces_the_outputs_of_a_succeeded_attempt(server_job: CliJob) -> None:
    quantum, argv = _succeeded(server_job, "again", 2)
    first_report = _report(server_job, quantum)
    first_pids = {out["pid"] for out in _read_back(server_job, quantum)}

    rerun = server_job.run(*argv, "--rerun", "--json")

    assert rerun.returncode == 0, rerun.stderr
    assert "Re-running quantum" in rerun.stderr and "withdrawing the report" in rerun.stderr, rerun.stderr
    report = _report(server_job, quantum)
    assert report.status == "succeeded" and report.attempt_id != first_report.attempt_id
    pids = {out["pid"] for out in _read_back(server_job, quantum)}  # checksums verified
    assert len(pids) == 1 and pids != first_pids


def test_a_rerun_killed_half_way_leaves_a_quantum_that_a_retry_finishes(server_job: CliJob) -> None:
    """Its outputs no longer match the success's records: the success is withdrawn before they change."""
    quantum, argv = _succeeded(server_job, "again", 2)
    path = Path(argv[1])
    ready, gate = server_job.workdir / "ready", server_job.workdir / "gate"
    rerun = _start(
        server_job, path, "cli_tasks:produce_then_wait", "--rerun",
        S3QBB_TEST_READY=str(ready), S3QBB_TEST_GATE=str(gate),
    )  # fmt: skip
    _wait_for(ready, rerun)  # both outputs replaced, the records not yet
    rerun.send_signal(signal.SIGKILL)
    rerun.communicate(timeout=30)
    report = f"{PREFIX}/{report_key(RUN, quantum.id)}"
    assert report not in object_keys(server_job.endpoint)  # withdrawn: nothing vouches for the old records

    retry = server_job.run(*argv)  # a plain retry, as a batch system sends it

    assert retry.returncode == 0, retry.stderr
    assert "already succeeded" not in retry.stderr
    assert _report(server_job, quantum).status == "succeeded"
    outputs = _read_back(server_job, quantum)  # checksums verified against the new records
    assert len({out["pid"] for out in outputs}) == 1


def test_a_damaged_report_of_a_success_does_not_block_the_quantum(server_job: CliJob) -> None:
    """Nothing vouches for the outputs any more: a retry runs the quantum and replaces them (not 75)."""
    quantum, argv = _succeeded(server_job, "damaged", 1)
    key = f"{PREFIX}/{report_key(RUN, quantum.id)}"
    stored = server_job.endpoint.client.get_object(Bucket=server_job.endpoint.bucket, Key=key)
    damaged = stored["Body"].read()[:40]  # cut short, its write token kept (a damaged copy of that write)
    server_job.endpoint.client.put_object(
        Bucket=server_job.endpoint.bucket, Key=key, Body=damaged, Metadata=stored["Metadata"]
    )

    retry = server_job.run(*argv)

    assert retry.returncode == 0, retry.stderr
    assert "unreadable" in retry.stderr and "no readable report" in retry.stderr, retry.stderr
    assert _report(server_job, quantum).status == "succeeded"
    assert len(_read_back(server_job, quantum)) == 1


def test_a_report_s3qbb_did_not_write_fails_the_job_instead_of_asking_for_retries(server_job: CliJob) -> None:
    """An object without a write token in the quantum's place is not its to replace: exit 1, not 75."""
    quantum, argv = _succeeded(server_job, "foreign", 1)
    key = f"{PREFIX}/{report_key(RUN, quantum.id)}"
    server_job.endpoint.client.put_object(Bucket=server_job.endpoint.bucket, Key=key, Body=b"{not s3qbb's")

    retry = server_job.run(*argv)

    assert retry.returncode == 1, retry.stderr
    assert "not written by s3qbb" in retry.stderr and "delete it" in retry.stderr, retry.stderr
    body = server_job.endpoint.client.get_object(Bucket=server_job.endpoint.bucket, Key=key)["Body"].read()
    assert body == b"{not s3qbb's"  # left untouched
