"""Server faults while a quantum uploads its records file, provenance and report (the report last).

A ``s3qbb run-quantum`` job talks to the server through the fault proxy, which
breaks only the PUTs of one of the quantum's three files: 503 SlowDown, 500,
a connection reset before or after the server applied the PUT, a response
held beyond the read timeout, a response cut short. A few faults are retried
by the one retry layer and the job succeeds; a PUT that was stored though no
answer said so is this attempt's (its token and checksum) and the job
succeeds too; other faults that outlast the retries end the job with exit 75
and an error naming the file and what to do, the outputs intact and no report
(the quantum does not read as finished); the retry then succeeds and ingest
records every output exactly once, matching its object. On the moto server
and SeaweedFS, both transports.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from reliability_helpers import (
    PREFIX,
    RUN,
    assert_records_match_objects,
    cli_env,
    make_ref,
    plain_repo_config,
    quantum_files,
    root_of,
    run_cli,
    write_quantum,
)

from s3qbb.batch.execution import EXIT_INFRASTRUCTURE_FAILURE, EXIT_SUCCESS
from s3qbb.cli.main import main
from s3qbb.core.quantum import Quantum
from s3qbb.provenance.files import provenance_key, records_key, report_key
from s3qbb.provenance.model import QuantumExecutionReport, QuantumProvenanceData
from s3qbb.registry import Registry
from s3qbb.testing.backdoors import S3Backdoor
from s3qbb.testing.proxy import FaultProxy
from s3qbb.testing.servers import S3TestEndpoint

pytestmark = pytest.mark.parametrize(
    "server",
    [
        pytest.param("moto", marks=pytest.mark.moto_server),
        pytest.param("seaweedfs", marks=pytest.mark.seaweedfs),
    ],
)

OUTPUTS = 3
KINDS = ("slowdown", "internal", "reset_before", "reset_after", "slow_first_byte", "truncate")
FILES = {"records": records_key, "provenance": provenance_key, "report": report_key}
MAX_ATTEMPTS = 4
READ_TIMEOUT = 1.0
"""Read timeout of the jobs whose responses are held back (2 s by the proxy): beyond it, retried."""


@pytest.fixture
def endpoint(server: str, request: pytest.FixtureRequest) -> S3TestEndpoint:
    found: S3TestEndpoint = request.getfixturevalue(f"{server}_endpoint")
    return found


class Job:
    """A quantum of `OUTPUTS` outputs run by ``run-quantum`` through a fault proxy."""

    def __init__(self, endpoint: S3TestEndpoint, workdir: Path, transport: str, proxy: FaultProxy) -> None:
        self.endpoint = endpoint
        self.workdir = workdir
        self.transport = transport
        self.proxy = proxy
        self.outputs = [make_ref("up", d) for d in range(OUTPUTS)]
        self.quantum = Quantum(taskLabel="up", taskName="reliability_tasks.produce", outputs=self.outputs)
        self.description = write_quantum(workdir / f"{self.quantum.id}.json", self.quantum)

    def config(self, *, read_timeout: float | None = None, through_proxy: bool = True) -> Path:
        config: dict[str, Any] = plain_repo_config(self.endpoint)
        endpoint = config["datastore"]["endpoint"]
        endpoint["transport"] = self.transport
        endpoint["retry"] = {"max_attempts": MAX_ATTEMPTS, "initial_backoff": 0.01, "max_backoff": 0.2}
        if read_timeout is not None:
            endpoint["read_timeout"] = read_timeout
        if through_proxy:
            endpoint["endpoint_url"] = self.proxy.url
        path = self.workdir / f"butler-{uuid.uuid4().hex[:8]}.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    def run(self, attempt: int, config: Path, *options: str) -> tuple[int, str]:
        env = {**cli_env(self.endpoint), "RELIABILITY_ATTEMPT": str(attempt)}
        env["AWS_ENDPOINT_URL_S3"] = self.proxy.url
        proc = run_cli(self.description, "reliability_tasks:write_all_or_die", config, env, *options)
        return proc.returncode, proc.stderr

    def key(self, name: str) -> str:
        return f"{PREFIX}/{FILES[name](RUN, self.quantum.id)}"

    def assert_outputs_of(self, attempt: int) -> None:
        backdoor = S3Backdoor(self.endpoint.client, self.endpoint.bucket, PREFIX)
        assert {ref.id: json.loads(backdoor.read_artifact(ref)) for ref in self.outputs} == {
            ref.id: {"detector": ref.dataId["detector"], "attempt": str(attempt)} for ref in self.outputs
        }

    def assert_complete(self, attempt: int) -> None:
        """The three files are there and agree with each other and with this attempt's outputs."""
        files = quantum_files(self.endpoint, self.quantum.id)
        assert set(files) == set(FILES)
        assert QuantumExecutionReport.from_json(files["report"]).status == "succeeded"
        provenance = QuantumProvenanceData.from_json(files["provenance"])
        assert provenance.actual_outputs == {r.id for r in self.outputs}
        db = self.workdir / f"records-{uuid.uuid4().hex}.sqlite3"
        db.write_bytes(files["records"])
        with sqlite3.connect(db) as con:
            assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            rows = con.execute("SELECT dataset_id, checksum FROM file_datastore_records").fetchall()
        con.close()
        recorded = provenance.datastore_record_data()["S3Datastore"].records
        assert {uuid.UUID(i): c for i, c in rows} == {
            i: by_table["file_datastore_records"][0].checksum for i, by_table in recorded.items()
        }
        assert set(recorded) == {r.id for r in self.outputs}
        self.assert_outputs_of(attempt)

    def ingest_exact(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Ingest the run (no proxy) into a new SQLite registry: one record per output, matching it."""
        db = f"sqlite:///{self.workdir / f'registry-{uuid.uuid4().hex[:8]}.sqlite3'}"
        code = main(["ingest", f"{root_of(self.endpoint)}/{RUN}/", "--registry", db, "--no-progress"])
        out = capsys.readouterr()
        assert code == 0, out.out + out.err
        with Registry.from_url(db, create=False) as registry:
            row = registry.quantum(self.quantum.id)
            assert row is not None and row.status == "succeeded"
            assert_records_match_objects(self.endpoint, registry, {r.id for r in self.outputs})


@pytest.fixture
def job(endpoint: S3TestEndpoint, s3_transport: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    for key, value in cli_env(endpoint).items():
        if key.startswith("AWS_"):
            monkeypatch.setenv(key, value)
    with FaultProxy(endpoint.endpoint_url, slow_delay=2 * READ_TIMEOUT) as proxy:
        yield Job(endpoint, tmp_path, s3_transport, proxy)


@pytest.mark.parametrize("name", list(FILES))
@pytest.mark.parametrize("kind", KINDS)
def test_transient_faults_on_an_upload_are_retried_and_the_job_succeeds(
    job: Job, name: str, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    job.proxy.only_keys = f"/{job.key(name)}"
    job.proxy.script("PutObject", kind, kind)  # the first two PUTs of the file fail, the third passes
    config = job.config(read_timeout=READ_TIMEOUT if kind == "slow_first_byte" else None)
    code, stderr = job.run(1, config)
    assert code == EXIT_SUCCESS, stderr
    assert job.proxy.injected == {kind: 2}
    assert job.proxy.pending("PutObject") == 0
    job.assert_complete(1)
    job.ingest_exact(capsys)


def _outcome(kind: str) -> str:
    """What a PUT broken by ``kind`` on every attempt ends in.

    ``lost``: never applied, the job fails; ``confirmed``: applied, and the
    object carries this attempt's token and checksum, which the retried
    create-only PUT's refusal shows (``truncate``: a 412 botocore still reads
    in a cut answer, and the obstore transport infers from the object being
    there), or else one HEAD once the retries ran out with no answer at all
    (``reset_after``, ``slow_first_byte``): the upload succeeded. The same on
    both transports.
    """
    return "lost" if kind in ("slowdown", "internal", "reset_before") else "confirmed"


@pytest.mark.parametrize("name", ["records", "report"])
@pytest.mark.parametrize("kind", KINDS)
def test_persistent_faults_on_an_upload_exit_75_and_a_retry_succeeds(
    job: Job, name: str, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    job.proxy.only_keys = f"/{job.key(name)}"
    job.proxy.script("PutObject", *[kind] * MAX_ATTEMPTS)
    config = job.config(read_timeout=READ_TIMEOUT if kind == "slow_first_byte" else None)
    code, stderr = job.run(1, config)
    if _outcome(kind) == "confirmed":
        # Stored though no answer said so: this attempt's own object, so the job succeeded (no exit 75,
        # no retry finding the quantum "already succeeded").
        assert code == EXIT_SUCCESS, stderr
        assert job.proxy.injected[kind] >= 2
        job.assert_complete(1)
        job.ingest_exact(capsys)
        return
    assert code == EXIT_INFRASTRUCTURE_FAILURE, stderr
    assert job.proxy.injected == {kind: MAX_ATTEMPTS}
    uri = f"s3://{job.endpoint.bucket}/{job.key(name)}"
    assert f"Uploading {uri} of quantum {job.quantum.id}" in stderr, stderr
    assert "run the quantum again (exit code 75 lets a batch system retry it)" in stderr, stderr
    job.assert_outputs_of(1)
    # The files before the broken one may be there, never the report: the quantum did not finish.
    files = quantum_files(job.endpoint, job.quantum.id)
    assert set(files) == {"records": set(), "report": {"records", "provenance"}}[name]
    db = f"sqlite:///{job.workdir / 'partial.sqlite3'}"
    code = main(["ingest", f"{root_of(job.endpoint)}/{RUN}/", "--registry", db, "--no-progress"])
    out = capsys.readouterr().out
    assert code == (1 if files else 0), out
    assert not files or "its upload did not finish" in out, out
    with Registry.from_url(db, create=False) as registry:
        assert registry.quantum(job.quantum.id) is None
        assert registry.datasets(run=RUN, stored=True) == []

    # The batch system's retry (on exit 75) finishes the quantum.
    job.proxy.only_keys = None
    code, stderr = job.run(2, job.config())
    assert code == EXIT_SUCCESS, stderr
    job.assert_complete(2)
    job.ingest_exact(capsys)


@pytest.mark.parametrize("kind", ["internal", "reset_before"])
def test_report_of_a_failed_attempt_is_not_taken_for_a_later_attempt_whose_report_upload_failed(
    job: Job, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Attempt 1 fails (its files say so); attempt 2 replaces its records and provenance, not its report."""
    env = {**cli_env(job.endpoint), "RELIABILITY_ATTEMPT": "1", "RELIABILITY_FAIL": "1"}
    failed = run_cli(
        job.description, "reliability_tasks:write_all_or_die", job.config(through_proxy=False), env
    )
    assert failed.returncode == 1, failed.stderr
    assert (
        QuantumExecutionReport.from_json(quantum_files(job.endpoint, job.quantum.id)["report"]).status
        == "failed"
    )

    job.proxy.only_keys = f"/{job.key('report')}"
    job.proxy.script("PutObject", *[kind] * MAX_ATTEMPTS)
    code, stderr = job.run(2, job.config())
    assert code == EXIT_INFRASTRUCTURE_FAILURE, stderr
    job.assert_outputs_of(2)
    # Attempt 1's report is withdrawn before its files are replaced: the quantum reads as unfinished.
    files = quantum_files(job.endpoint, job.quantum.id)
    assert set(files) == {"records", "provenance"}
    db = f"sqlite:///{job.workdir / 'partial.sqlite3'}"
    code = main(["ingest", f"{root_of(job.endpoint)}/{RUN}/", "--registry", db, "--no-progress"])
    out = capsys.readouterr().out
    assert code == 1 and "its upload did not finish" in out, out
    with Registry.from_url(db, create=False) as registry:
        assert registry.quantum(job.quantum.id) is None
        assert registry.datasets(run=RUN, stored=True) == []

    job.proxy.only_keys = None
    code, stderr = job.run(3, job.config())
    assert code == EXIT_SUCCESS, stderr
    job.assert_complete(3)
    job.ingest_exact(capsys)
