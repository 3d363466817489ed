"""SIGKILL at the end of a quantum: while its records are flushed to SQLite, exported and uploaded.

A ``s3qbb run-quantum`` job writes its outputs, then (`QuantumBackedButler.finish`)
copies the in-memory records to a temporary SQLite file, renames it, and
uploads records, provenance and report, the report last (the commit point).
Killed at any of those steps, the job leaves its outputs, no report, and no
half-written records file where anything reads it; a retry, a re-run on
purpose and ``ingest --recover`` then give, in SQLite and PostgreSQL
registries, exactly one record per output, matching its object. A local
records file (``--records-file``) left by a killed job is not trusted by the
retry. On the moto server and SeaweedFS, both transports.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

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
from reliability_tasks import FINISH_STEPS

from s3qbb.batch.execution import EXIT_SUCCESS
from s3qbb.cli.main import main
from s3qbb.core.quantum import Quantum
from s3qbb.provenance.model import QuantumExecutionReport, QuantumProvenanceData
from s3qbb.registry import Registry
from s3qbb.testing.servers import S3TestEndpoint

pytestmark = pytest.mark.parametrize(
    "server",
    [
        pytest.param("moto", marks=pytest.mark.moto_server),
        pytest.param("seaweedfs", marks=pytest.mark.seaweedfs),
    ],
)

OUTPUTS = 5
TASK = "reliability_tasks:produce_then_die_at"


@pytest.fixture
def endpoint(server: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> S3TestEndpoint:
    """The server's fresh bucket, and its endpoint and credentials in this process's environment."""
    found: S3TestEndpoint = request.getfixturevalue(f"{server}_endpoint")
    for key, value in cli_env(found).items():
        if key.startswith("AWS_"):
            monkeypatch.setenv(key, value)
    return found


class Job:
    """One quantum of `OUTPUTS` outputs run by ``run-quantum`` subprocesses, and what they leave."""

    def __init__(self, endpoint: S3TestEndpoint, workdir: Path, transport: str, label: str) -> None:
        self.endpoint = endpoint
        self.workdir = workdir
        self.outputs = [make_ref(label, d) for d in range(OUTPUTS)]
        self.quantum = Quantum(taskLabel=label, taskName="reliability_tasks.produce", outputs=self.outputs)
        self.quanta = workdir / "quanta"
        self.quanta.mkdir()
        self.description = write_quantum(self.quanta / f"{self.quantum.id}.json", self.quantum)
        config = plain_repo_config(endpoint)
        config["datastore"]["endpoint"]["transport"] = transport
        self.config = workdir / "butler.yaml"
        self.config.write_text(yaml.safe_dump(config))
        self.run_uri = f"{root_of(endpoint)}/{RUN}/"

    def run(self, attempt: int, *options: str, die_at: str | None = None) -> tuple[int, str, Path]:
        """Run an attempt (its own temporary folder); return its exit code, stderr and that folder."""
        tmp = self.workdir / f"tmp{attempt}"
        tmp.mkdir()
        env = {**cli_env(self.endpoint), "RELIABILITY_ATTEMPT": str(attempt), "TMPDIR": str(tmp)}
        if die_at is not None:
            env["RELIABILITY_DIE_AT"] = die_at
        proc = run_cli(self.description, TASK, self.config, env, *options)
        return proc.returncode, proc.stderr, tmp

    def objects(self) -> dict[uuid.UUID, dict[str, object]]:
        """Return the stored outputs, read through the raw client, by dataset ID."""
        from s3qbb.testing.backdoors import S3Backdoor

        backdoor = S3Backdoor(self.endpoint.client, self.endpoint.bucket, PREFIX)
        return {ref.id: json.loads(backdoor.read_artifact(ref)) for ref in self.outputs}

    def assert_outputs_of(self, attempt: int) -> None:
        assert self.objects() == {
            ref.id: {"detector": ref.dataId["detector"], "attempt": str(attempt)} for ref in self.outputs
        }

    def assert_complete(self, attempt: int) -> QuantumExecutionReport:
        """Check the quantum's three files are there, consistent, naming this attempt's outputs."""
        files = quantum_files(self.endpoint, self.quantum.id)
        assert set(files) == {"records", "provenance", "report"}
        report = QuantumExecutionReport.from_json(files["report"])
        assert report.status == "succeeded"
        provenance = QuantumProvenanceData.from_json(files["provenance"])
        assert provenance.actual_outputs == {r.id for r in self.outputs}
        db = self.workdir / f"records-{uuid.uuid4().hex}.sqlite3"
        db.write_bytes(files["records"])
        with sqlite3.connect(db) as con:
            assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            query = "SELECT dataset_id, file_size, checksum FROM file_datastore_records"
            rows = con.execute(query).fetchall()
        con.close()
        recorded = provenance.datastore_record_data()["S3Datastore"].records
        assert {uuid.UUID(i) for i, _, _ in rows} == {r.id for r in self.outputs}
        for dataset_id, size, checksum in rows:
            (info,) = recorded[uuid.UUID(dataset_id)]["file_datastore_records"]
            assert (size, checksum) == (info.file_size, info.checksum)
        self.assert_outputs_of(attempt)
        return report

    def recover_options(self) -> tuple[str, ...]:
        return ("--recover", str(self.quanta), "--config", str(self.config))

    def ingest(self, registry: str, capsys: pytest.CaptureFixture[str], *options: str) -> tuple[int, str]:
        code = main(["ingest", self.run_uri, "--registry", registry, "--no-progress", *options])
        out = capsys.readouterr()
        return code, out.out + out.err


def _temporary_records(tmp: Path) -> list[Path]:
    """Records files (final or temporary) a job left in its temporary folder."""
    return sorted(p for p in tmp.rglob("*") if p.is_file() and "records.sqlite3" in p.name)


def _check_killed(job: Job, step: str, proc: tuple[int, str, Path]) -> None:
    """What a job killed at ``step`` leaves: its outputs, no report, no partial records file uploaded."""
    code, stderr, tmp = proc
    assert code == -signal.SIGKILL, (code, stderr)
    job.assert_outputs_of(1)
    files = quantum_files(job.endpoint, job.quantum.id)
    uploaded = {"upload-2": {"records"}, "upload-3": {"records", "provenance"}}.get(step, set())
    assert set(files) == uploaded  # never the report: the quantum does not read as finished
    if "records" in files:
        assert files["records"].startswith(b"SQLite format 3\x00")
    left = _temporary_records(tmp)
    if step.startswith("flush-"):
        # The temporary copy (and its journal), never renamed to the name the upload reads.
        assert left and all(p.name.startswith(".records.sqlite3.") for p in left), left
        assert any(p.name.endswith(".tmp") for p in left), left
    elif step == "export" or step.startswith("upload-"):
        assert [p.name for p in left] == ["records.sqlite3"]


@pytest.mark.parametrize("step", FINISH_STEPS)
def test_kill_at_the_end_of_a_quantum_then_retry_rerun_and_ingest(
    endpoint: S3TestEndpoint,
    s3_transport: str,
    step: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    job = Job(endpoint, tmp_path, s3_transport, "fin")
    _check_killed(job, step, job.run(1, die_at=step))
    db = f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    code, out = job.ingest(db, capsys)
    if step in ("upload-2", "upload-3"):  # ingest names the quantum whose upload did not finish
        assert code == 1 and "its upload did not finish" in out and str(job.quantum.id) in out, out
    else:
        assert code == 0, out
    with Registry.from_url(db, create=False) as registry:
        assert registry.quantum(job.quantum.id) is None  # no report: not a finished quantum
        assert registry.datasets(run=RUN, stored=True) == []

    # The retry runs the task again (attempt 2's bytes replace attempt 1's) and uploads all three files.
    code, stderr, _ = job.run(2)
    assert code == EXIT_SUCCESS, stderr
    first = job.assert_complete(2)
    code, out = job.ingest(db, capsys)
    assert code == 0, out
    with Registry.from_url(db, create=False) as registry:
        row = registry.quantum(job.quantum.id)
        assert row is not None and row.status == "succeeded" and row.attempt is not None
        assert first.attempt_id is not None and row.attempt.startswith(first.attempt_id)
        assert_records_match_objects(endpoint, registry, {r.id for r in job.outputs})

    # A re-run on purpose, killed at the same step, leaves the quantum incomplete, not a stale success.
    code, stderr, _ = job.run(3, "--rerun", die_at=step)
    assert code == -signal.SIGKILL, stderr
    assert "report" not in quantum_files(endpoint, job.quantum.id)
    code, stderr, _ = job.run(4, "--rerun")
    assert code == EXIT_SUCCESS, stderr
    last = job.assert_complete(4)
    assert last.attempt_id is not None and last.attempt_id > first.attempt_id
    code, out = job.ingest(db, capsys)
    assert code == 0, out
    assert "1 replaced by a later attempt" in out
    with Registry.from_url(db, create=False) as registry:
        assert_records_match_objects(endpoint, registry, {r.id for r in job.outputs})
        assert registry.counts()["quantum"] == 1 and registry.counts()["dataset"] == OUTPUTS


def test_retry_removes_the_records_folder_of_the_job_killed_while_copying_its_records(
    endpoint: S3TestEndpoint, s3_transport: str, tmp_path: Path
) -> None:
    """A job killed in the middle of the copy leaves its ``s3qbb-records-*`` folder; the retry (same TMPDIR)
    removes it, as it removes its own."""
    job = Job(endpoint, tmp_path, s3_transport, "scratch")
    shared = tmp_path / "shared-tmp"
    shared.mkdir()
    env = {**cli_env(endpoint), "TMPDIR": str(shared), "RELIABILITY_DIE_AT": "flush-copy"}
    killed = run_cli(job.description, TASK, job.config, {**env, "RELIABILITY_ATTEMPT": "1"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    (left,) = (p for p in shared.iterdir() if p.name.startswith("s3qbb-records-"))
    assert _temporary_records(left)  # the half-copied records file
    del env["RELIABILITY_DIE_AT"]
    retry = run_cli(job.description, TASK, job.config, {**env, "RELIABILITY_ATTEMPT": "2"})
    assert retry.returncode == EXIT_SUCCESS, retry.stderr
    job.assert_complete(2)
    assert [p.name for p in shared.iterdir() if "s3qbb-records" in p.name] == []


@pytest.mark.parametrize("step", ["upload-2", "upload-3"])
def test_kill_between_uploads_after_a_failed_attempt_leaves_no_stale_report(
    endpoint: S3TestEndpoint,
    s3_transport: str,
    step: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A killed attempt's files never pair with the report of the failed attempt they replace."""
    job = Job(endpoint, tmp_path, s3_transport, "stale")
    failed = run_cli(
        job.description,
        TASK,
        job.config,
        {**cli_env(endpoint), "RELIABILITY_ATTEMPT": "1", "RELIABILITY_FAIL": "1"},
    )
    assert failed.returncode == 1, failed.stderr
    report = QuantumExecutionReport.from_json(quantum_files(endpoint, job.quantum.id)["report"])
    assert report.status == "failed"
    code, stderr, _ = job.run(2, die_at=step)
    assert code == -signal.SIGKILL, stderr
    job.assert_outputs_of(2)
    assert "report" not in quantum_files(endpoint, job.quantum.id)
    db = f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    code, out = job.ingest(db, capsys)
    assert code == 1 and "its upload did not finish" in out, out
    with Registry.from_url(db, create=False) as registry:
        assert registry.quantum(job.quantum.id) is None
    code, stderr, _ = job.run(3)
    assert code == EXIT_SUCCESS, stderr
    job.assert_complete(3)
    code, out = job.ingest(db, capsys)
    assert code == 0, out
    with Registry.from_url(db, create=False) as registry:
        row = registry.quantum(job.quantum.id)
        assert row is not None and row.status == "succeeded"
        assert_records_match_objects(endpoint, registry, {r.id for r in job.outputs})


@pytest.fixture
def postgres_registry() -> Iterator[str]:
    """URL of the PostgreSQL test database whose ``search_path`` is a fresh schema (dropped after)."""
    import pg_cluster
    import sqlalchemy as sa

    base = pg_cluster.postgres_url()
    engine = sa.create_engine(base.replace("postgresql://", "postgresql+psycopg://", 1))
    namespace = f"s3qbb_fin_{uuid.uuid4().hex[:12]}"
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{namespace}"')
    scoped = sa.make_url(base).update_query_dict({"options": f"-csearch_path={namespace}"})
    try:
        yield scoped.render_as_string(hide_password=False)
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{namespace}" CASCADE')
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("step", ["flush-copy", "upload-3"])
def test_kill_at_the_end_then_recover_then_retry_into_postgresql(
    endpoint: S3TestEndpoint,
    s3_transport: str,
    step: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    postgres_registry: str,
) -> None:
    job = Job(endpoint, tmp_path, s3_transport, "finpg")
    _check_killed(job, step, job.run(1, die_at=step))
    code, out = job.ingest(postgres_registry, capsys, *job.recover_options())
    assert code == 0, out
    assert f"recovered 1 quantum(s) that left no usable records ({OUTPUTS} outputs found, 0 missing)" in out
    with Registry.from_url(postgres_registry, create=False) as registry:
        assert registry.dialect == "postgresql"
        row = registry.quantum(job.quantum.id)
        assert row is not None and row.status == "recovered"
        assert_records_match_objects(endpoint, registry, {r.id for r in job.outputs})
    # A second --recover finds the recovered quantum's files intact and changes nothing.
    code, out = job.ingest(postgres_registry, capsys, *job.recover_options())
    assert code == 0, out
    assert "recovered 0 quantum(s)" in out

    # The retry after recovery runs the task again; ingest replaces the recovered rows by its own.
    code, stderr, _ = job.run(2)
    assert code == EXIT_SUCCESS, stderr
    job.assert_complete(2)
    code, out = job.ingest(postgres_registry, capsys)
    assert code == 0, out
    assert "1 replaced by a later attempt" in out
    with Registry.from_url(postgres_registry, create=False) as registry:
        row = registry.quantum(job.quantum.id)
        assert row is not None and row.status == "succeeded"
        assert_records_match_objects(endpoint, registry, {r.id for r in job.outputs})
        assert registry.counts()["quantum"] == 1 and registry.counts()["dataset"] == OUTPUTS


# ------------------------------------------------------------ a local records file


LEFT_BEHIND = ("killed-in-task", "killed-at-export", "killed-at-upload-3", "other-quantum", "corrupt")


def _leave_records_file(job: Job, records: Path, how: str) -> set[uuid.UUID]:
    """Leave a records file at ``records`` the way ``how`` says; return the IDs of other quanta's outputs."""
    options = ("--records-file", str(records))
    env = {**cli_env(job.endpoint), "RELIABILITY_ATTEMPT": "1"}
    if how.startswith("killed-"):
        step = how.removeprefix("killed-").removeprefix("at-")
        env.update({"RELIABILITY_DIE_AFTER": "3"} if step == "in-task" else {"RELIABILITY_DIE_AT": step})
        killed = run_cli(job.description, TASK, job.config, env, *options)
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        return set()
    output = make_ref("other", 1)
    other = write_quantum(job.workdir / "other.json", Quantum(taskLabel="other", outputs=[output]))
    done = run_cli(other, "reliability_tasks:produce", job.config, env, *options)
    assert done.returncode == EXIT_SUCCESS, done.stderr
    if how == "corrupt":  # half a records file, and a journal that is no SQLite journal
        body = records.read_bytes()
        records.write_bytes(body[: len(body) // 2])
        records.with_name(f"{records.name}-journal").write_bytes(b"\xa5" * 700)
    return {output.id}


@pytest.mark.parametrize("left", LEFT_BEHIND)
def test_job_does_not_trust_a_local_records_file_left_by_another_job(
    endpoint: S3TestEndpoint,
    s3_transport: str,
    left: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    job = Job(endpoint, tmp_path, s3_transport, "local")
    records = tmp_path / "work" / "records.sqlite3"
    records.parent.mkdir()
    others = _leave_records_file(job, records, left)
    before = {p.name: p.read_bytes() for p in records.parent.iterdir()}
    assert records.name in before

    code, stderr, _ = job.run(2, "--records-file", str(records))
    assert code == EXIT_SUCCESS, stderr
    job.assert_complete(2)
    assert f"Local records file {records} was left by an earlier job" in stderr
    # The uploaded records file is this attempt's file; the earlier one (and journal) is kept aside as it was.
    assert records.read_bytes() == quantum_files(endpoint, job.quantum.id)["records"]
    aside = {p.name: p.read_bytes() for p in records.parent.iterdir() if ".before-" in p.name}
    (stem,) = {name.removesuffix("-journal") for name in aside}
    assert stem.startswith(f"{records.name}.before-")
    assert aside == {stem + name.removeprefix(records.name): body for name, body in before.items()}
    db = f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    code, out = job.ingest(db, capsys)
    assert code == 0, out
    with Registry.from_url(db, create=False) as registry:
        row = registry.quantum(job.quantum.id)
        assert row is not None and row.status == "succeeded"
        assert_records_match_objects(endpoint, registry, {r.id for r in job.outputs} | others)


def test_job_creates_the_folder_of_its_local_records_file(
    endpoint: S3TestEndpoint, s3_transport: str, tmp_path: Path
) -> None:
    job = Job(endpoint, tmp_path, s3_transport, "folder")
    records = tmp_path / "not" / "yet" / "records.sqlite3"
    code, stderr, _ = job.run(1, "--records-file", str(records))
    assert code == EXIT_SUCCESS, stderr
    job.assert_complete(1)
    assert records.read_bytes() == quantum_files(endpoint, job.quantum.id)["records"]
