"""Recovery never strands data: killed attempts, re-runs, damaged per-quantum files, what recovery adopts.

Issue 12.4 and the registry part of issue 11.3: ``ingest --recover`` after a
SIGKILL, a re-run, and ingest leave the registry with exactly the last
attempt's outputs, each record matching the stored object; a damaged
provenance, report or records file is named by ingest and recovered by
``--recover``; recovery adopts only objects it can vouch for.
"""

from __future__ import annotations

import signal
import sqlite3
import uuid
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
    repo_config,
    root_of,
    run_cli,
    write_quantum,
)

from s3qbb.batch.recovery import recover_quanta
from s3qbb.cli.main import main
from s3qbb.core.attempt import WriteToken
from s3qbb.core.quantum import Quantum
from s3qbb.provenance.files import provenance_key, records_key, report_key
from s3qbb.provenance.model import QuantumExecutionReport
from s3qbb.registry import Registry
from s3qbb.s3 import checksums
from s3qbb.s3.objects import WRITE_CHECKSUM, WRITE_PENDING, WRITE_TOKEN
from s3qbb.testing.servers import S3TestEndpoint

pytestmark = pytest.mark.parametrize(
    "server",
    [
        pytest.param("moto", marks=pytest.mark.moto_server),
        pytest.param("seaweedfs", marks=pytest.mark.seaweedfs),
    ],
)

OUTPUTS = 40
KILLED_AFTER = 12


@pytest.fixture
def endpoint(server: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> S3TestEndpoint:
    """The server's fresh bucket, and its endpoint and credentials in this process's environment."""
    found: S3TestEndpoint = request.getfixturevalue(f"{server}_endpoint")
    for key, value in cli_env(found).items():
        if key.startswith("AWS_"):
            monkeypatch.setenv(key, value)
    return found


def _config(endpoint: S3TestEndpoint, workdir: Path) -> Path:
    path = workdir / "butler.yaml"
    path.write_text(yaml.safe_dump(plain_repo_config(endpoint)))
    return path


def _produced(
    endpoint: S3TestEndpoint, tmp_path: Path, label: str, detectors: int
) -> tuple[Quantum, Path, Path]:
    """Run one ``produce`` quantum as a batch job; return it, its descriptions' folder and the config."""
    outputs = [make_ref(label, d) for d in range(detectors)]
    quantum = Quantum(taskLabel=label, taskName="reliability_tasks.produce", outputs=outputs)
    quanta = tmp_path / "quanta"
    quanta.mkdir()
    config = _config(endpoint, tmp_path)
    done = run_cli(
        write_quantum(quanta / f"{quantum.id}.json", quantum),
        "reliability_tasks:produce",
        config,
        cli_env(endpoint),
    )
    assert done.returncode == 0, done.stderr
    return quantum, quanta, config


def _ingest(
    run_uri: str, db: Path, capsys: pytest.CaptureFixture[str], *recover: str
) -> tuple[int, str, str]:
    code = main(["ingest", run_uri, "--registry", f"sqlite:///{db}", "--no-progress", *recover])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_killed_attempt_recovered_then_rerun_registry_holds_the_last_attempt(
    endpoint: S3TestEndpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs = [make_ref("many", d) for d in range(OUTPUTS)]
    quantum = Quantum(taskLabel="many", taskName="reliability_tasks.write_all_or_die", outputs=outputs)
    quanta = tmp_path / "quanta"
    quanta.mkdir()
    description = write_quantum(quanta / f"{quantum.id}.json", quantum)
    config = _config(endpoint, tmp_path)
    env = cli_env(endpoint)
    run_uri = f"{root_of(endpoint)}/{RUN}/"
    db = tmp_path / "registry.sqlite3"

    # Attempt 1 is killed after 12 puts; --recover registers those 12.
    killed = run_cli(
        description,
        "reliability_tasks:write_all_or_die",
        config,
        {**env, "RELIABILITY_DIE_AFTER": "12", "RELIABILITY_ATTEMPT": "1"},
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    code, out, err = _ingest(run_uri, db, capsys, "--recover", str(quanta), "--config", str(config))
    assert code == 0, err
    assert (
        f"recovered 1 quantum(s) that left no usable records ({KILLED_AFTER} outputs found, 28 missing)"
        in err
    )
    with Registry.from_url(db, create=False) as registry:
        row = registry.quantum(quantum.id)
        assert row is not None and row.status == "recovered"
        assert_records_match_objects(endpoint, registry, {r.id for r in outputs[:KILLED_AFTER]})
        recovered = {row.id: row.records[0].checksum for row in registry.datasets(run=RUN, stored=True)}

    # Attempt 2 succeeds (other bytes: it replaces attempt 1's objects); ingest replaces the recovered
    # attempt's rows by its own.
    rerun = run_cli(
        description, "reliability_tasks:write_all_or_die", config, {**env, "RELIABILITY_ATTEMPT": "2"}
    )
    assert rerun.returncode == 0, rerun.stderr
    report = QuantumExecutionReport.from_json(quantum_files(endpoint, quantum.id)["report"])
    assert report.status == "succeeded" and report.attempt_id is not None
    code, out, err = _ingest(run_uri, db, capsys)
    assert code == 0, err
    assert " 0 quanta added, 1 replaced by a later attempt, 0 already present" in out
    with Registry.from_url(db, create=False) as registry:
        row = registry.quantum(quantum.id)
        assert row is not None and row.status == "succeeded"
        assert row.attempt is not None and row.attempt.startswith(report.attempt_id)
        assert set(row.datasets["actual_output"]) == {r.id for r in outputs}
        assert_records_match_objects(endpoint, registry, {r.id for r in outputs})
        final = {row.id: row.records[0].checksum for row in registry.datasets(run=RUN, stored=True)}
        assert all(final[i] != recovered[i] for i in recovered)  # attempt 1's records are gone
        assert registry.counts()["quantum"] == 1
        assert registry.counts()["dataset"] == OUTPUTS

    # A second --recover leaves the succeeded quantum alone, and ingest finds nothing new.
    code, out, err = _ingest(run_uri, db, capsys, "--recover", str(quanta), "--config", str(config))
    assert code == 0, err
    assert "recovered 0 quantum(s)" in err and "1 had intact records of their last attempt" in err
    assert "Nothing new: all 1 quanta listed were already in the registry." in out
    with Registry.from_url(db, create=False) as registry:
        assert_records_match_objects(endpoint, registry, {r.id for r in outputs})


@pytest.mark.parametrize("damaged", ["provenance", "report", "records"])
def test_damaged_file_fails_ingest_by_name_and_recover_rebuilds_it(
    endpoint: S3TestEndpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str], damaged: str
) -> None:
    quantum, quanta, config = _produced(endpoint, tmp_path, "dmg", 3)
    outputs = quantum.output_refs()
    key = f"{PREFIX}/" + {"provenance": provenance_key, "report": report_key, "records": records_key}[
        damaged
    ](RUN, quantum.id)
    body = endpoint.client.get_object(Bucket=endpoint.bucket, Key=key)["Body"].read()
    endpoint.client.put_object(Bucket=endpoint.bucket, Key=key, Body=body[: len(body) // 2])  # truncated
    run_uri = f"{root_of(endpoint)}/{RUN}/"
    db = tmp_path / "registry.sqlite3"
    uri = f"s3://{endpoint.bucket}/{key}"

    code, out, err = _ingest(run_uri, db, capsys)
    assert code == 1
    assert f"FAILED {uri}: " in out and "s3qbb ingest --recover" in out
    code, out, err = _ingest(run_uri, db, capsys, "--recover", str(quanta), "--config", str(config))
    assert code == 0, err
    assert "recovered 1 quantum(s) that left no usable records (3 outputs found, 0 missing)" in err
    assert f"{uri} is damaged" in err
    with Registry.from_url(db, create=False) as registry:
        row = registry.quantum(quantum.id)
        assert row is not None and row.status == "recovered"
        assert_records_match_objects(endpoint, registry, {r.id for r in outputs})


def test_records_file_with_a_flipped_page_or_other_rows_is_refused(
    endpoint: S3TestEndpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs = [make_ref("rec", d) for d in range(2)]
    quantum = Quantum(taskLabel="rec", taskName="reliability_tasks.produce", outputs=outputs)
    config = _config(endpoint, tmp_path)
    done = run_cli(
        write_quantum(tmp_path / "q.json", quantum), "reliability_tasks:produce", config, cli_env(endpoint)
    )
    assert done.returncode == 0, done.stderr
    key = f"{PREFIX}/{records_key(RUN, quantum.id)}"
    original = endpoint.client.get_object(Bucket=endpoint.bucket, Key=key)["Body"].read()
    run_uri = f"{root_of(endpoint)}/{RUN}/"

    # A record that disagrees with the provenance (another checksum), in a well-formed database.
    edited = tmp_path / "edited.sqlite3"
    edited.write_bytes(original)
    with sqlite3.connect(edited) as con:
        con.execute("UPDATE file_datastore_records SET checksum = 'CRC32C:AAAAAA=='")
    con.close()
    endpoint.client.put_object(Bucket=endpoint.bucket, Key=key, Body=edited.read_bytes())
    code, out, _ = _ingest(run_uri, tmp_path / "a.sqlite3", capsys)
    assert code == 1 and f"FAILED s3://{endpoint.bucket}/{key}: " in out
    assert "disagrees with the provenance" in out and "'CRC32C:AAAAAA=='" in out

    # Garbage over the records table's pages: quick_check (or opening it) fails.
    damaged = bytearray(original)
    damaged[len(damaged) // 2 :] = b"\xa5" * (len(damaged) - len(damaged) // 2)
    endpoint.client.put_object(Bucket=endpoint.bucket, Key=key, Body=bytes(damaged))
    code, out, _ = _ingest(run_uri, tmp_path / "b.sqlite3", capsys)
    assert code == 1 and f"FAILED s3://{endpoint.bucket}/{key}: damaged records file" in out


def _foreign_put(endpoint: S3TestEndpoint, key: str, body: bytes, metadata: dict[str, str]) -> None:
    endpoint.client.put_object(Bucket=endpoint.bucket, Key=key, Body=body, Metadata=metadata)


def test_recovery_adopts_only_what_it_can_vouch_for(endpoint: S3TestEndpoint) -> None:
    outputs = [make_ref("adopt", d) for d in range(5)]
    quantum = Quantum(taskLabel="adopt", taskName="t.adopt", outputs=outputs)
    from s3qbb.datastores.s3 import S3Datastore

    store = S3Datastore(root_of(endpoint), config=endpoint.config)
    keys = [store.key(store.predicted_record(ref).path) for ref in outputs]
    store.close()
    ours = WriteToken.new(quantum.id)
    body = b'{"detector": 1}'
    crc = str(checksums.compute("CRC32C", body))
    # 0: ours, with checksum; 1: metadata lost; 2: a multipart placeholder; 3: another quantum's; 4: absent.
    _foreign_put(endpoint, keys[0], body, {WRITE_TOKEN: str(ours), WRITE_CHECKSUM: crc})
    _foreign_put(endpoint, keys[1], body + b" ", {})
    _foreign_put(endpoint, keys[2], b"", {WRITE_TOKEN: str(ours), WRITE_PENDING: "1"})
    other = WriteToken.new(uuid.uuid4())
    _foreign_put(endpoint, keys[3], body, {WRITE_TOKEN: str(other), WRITE_CHECKSUM: crc})

    (result,) = recover_quanta(repo_config(endpoint), [quantum])
    assert (result.status, result.outputs_found, result.outputs_missing) == ("recovered", 2, 3)
    text = "\n".join(result.warnings)
    computed = str(checksums.compute("CRC32C", body + b" "))
    assert (
        f"{keys[1]} carries no s3qbb checksum" in text
        and f"checksum {computed} computed by reading it" in text
    )
    assert f"{keys[2]} is the placeholder of an unfinished multipart upload" in text
    assert f"{keys[3]} was written by quantum {other.quantum_id}" in text
    report = QuantumExecutionReport.from_json(quantum_files(endpoint, quantum.id)["report"])
    assert report.attempt_id == ours.attempt_id  # the attempt whose outputs were adopted
    assert report.warnings[1:] == list(result.warnings[1:])

    # The registry gets the two adopted outputs, each record matching its object (checksum included).
    with Registry.from_url("sqlite://") as registry:
        summary = registry.ingest_run(f"{root_of(endpoint)}/{RUN}/", config=endpoint.config)
        assert summary.failures == []
        assert_records_match_objects(endpoint, registry, {outputs[0].id, outputs[1].id})


def test_recovery_leaves_a_newer_releases_files_alone(endpoint: S3TestEndpoint) -> None:
    outputs = [make_ref("newer", 1)]
    quantum = Quantum(taskLabel="newer", taskName="t.newer", outputs=outputs)
    key = f"{PREFIX}/{report_key(RUN, quantum.id)}"
    endpoint.client.put_object(
        Bucket=endpoint.bucket, Key=key, Body=b'{"format": "s3qbb.quantum", "version": 99}'
    )
    (result,) = recover_quanta(repo_config(endpoint), [quantum])
    assert result.status == "skipped" and "written by a newer s3qbb" in result.warnings[0]
    assert endpoint.client.get_object(Bucket=endpoint.bucket, Key=key)["Body"].read().endswith(b"99}")


def test_second_recovery_finds_a_later_killed_attempt(
    endpoint: S3TestEndpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs = [make_ref("twice", d) for d in range(6)]
    quantum = Quantum(taskLabel="twice", taskName="reliability_tasks.write_all_or_die", outputs=outputs)
    quanta = tmp_path / "quanta"
    quanta.mkdir()
    description = write_quantum(quanta / f"{quantum.id}.json", quantum)
    config = _config(endpoint, tmp_path)
    env = cli_env(endpoint)
    run_uri = f"{root_of(endpoint)}/{RUN}/"
    db = tmp_path / "registry.sqlite3"
    attempts = []
    for attempt, die_after in ((1, 2), (2, 4)):
        killed = run_cli(
            description,
            "reliability_tasks:write_all_or_die",
            config,
            {**env, "RELIABILITY_DIE_AFTER": str(die_after), "RELIABILITY_ATTEMPT": str(attempt)},
        )
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        code, out, err = _ingest(run_uri, db, capsys, "--recover", str(quanta), "--config", str(config))
        assert code == 0, err
        assert f"recovered 1 quantum(s) that left no usable records ({die_after} outputs found" in err
        report = QuantumExecutionReport.from_json(quantum_files(endpoint, quantum.id)["report"])
        attempts.append(report.attempt_id)
        with Registry.from_url(db, create=False) as registry:
            assert_records_match_objects(endpoint, registry, {r.id for r in outputs[:die_after]})
    # Each recovery names the attempt whose objects it adopted (from their write tokens): the second is later.
    first, second = attempts
    assert first is not None and second is not None and first < second
    assert " 1 replaced by a later attempt" in out


def test_bits_flipped_in_transit_neither_fail_ingest_nor_make_recovery_rewrite_a_success(
    endpoint: S3TestEndpoint, tmp_path: Path
) -> None:
    """Per-quantum files are checked against their metadata checksum and read again on a mismatch."""
    from s3qbb.testing.proxy import FaultProxy

    quantum, _, _ = _produced(endpoint, tmp_path, "flip", 2)
    outputs = quantum.output_refs()
    report_before = endpoint.client.get_object(
        Bucket=endpoint.bucket, Key=f"{PREFIX}/{report_key(RUN, quantum.id)}"
    )
    with FaultProxy(endpoint.endpoint_url) as proxy:
        config = proxy.endpoint_config(endpoint.config)
        proxy.script("GetObject", *["corrupt", "ok"] * 3)  # one bit of each file's first read
        recovered = recover_quanta(repo_config(config=config, root=root_of(endpoint)), [quantum])
        assert proxy.injected == {"corrupt": 3}
        assert [r.status for r in recovered] == ["skipped"]  # intact, succeeded: left alone
        proxy.reset_counters()
        proxy.script("GetObject", *["corrupt", "ok"] * 3)
        with Registry.from_url(tmp_path / "registry.sqlite3") as registry:
            summary = registry.ingest_run(f"{root_of(endpoint)}/{RUN}/", config=config)
            assert proxy.injected == {"corrupt": 3}
            assert (summary.quanta_added, summary.failures) == (1, [])
            row = registry.quantum(quantum.id)
            assert row is not None and row.status == "succeeded"
            assert_records_match_objects(endpoint, registry, {r.id for r in outputs})
    report_after = endpoint.client.get_object(
        Bucket=endpoint.bucket, Key=f"{PREFIX}/{report_key(RUN, quantum.id)}"
    )
    assert report_after["ETag"] == report_before["ETag"]


def test_a_per_quantum_file_damaged_where_stored_fails_both_reads(
    endpoint: S3TestEndpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stored file failing its metadata checksum is damaged: named, and --recover rebuilds it."""
    quantum, quanta, config = _produced(endpoint, tmp_path, "rot", 1)
    key = f"{PREFIX}/{provenance_key(RUN, quantum.id)}"
    stored = endpoint.client.get_object(Bucket=endpoint.bucket, Key=key)
    body = bytearray(stored["Body"].read())
    body[len(body) // 2] ^= 0x01  # bit rot at rest, metadata kept
    endpoint.client.put_object(Bucket=endpoint.bucket, Key=key, Body=bytes(body), Metadata=stored["Metadata"])
    run_uri = f"{root_of(endpoint)}/{RUN}/"
    db = tmp_path / "registry.sqlite3"
    code, out, _ = _ingest(run_uri, db, capsys)
    assert code == 1
    assert f"FAILED s3://{endpoint.bucket}/{key}: the file fails its CRC32C checksum" in out
    assert "on two reads: the stored file is damaged" in out and "s3qbb ingest --recover" in out
    code, _, err = _ingest(run_uri, db, capsys, "--recover", str(quanta), "--config", str(config))
    assert code == 0, err
    with Registry.from_url(db, create=False) as registry:
        row = registry.quantum(quantum.id)
        assert row is not None and row.status == "recovered"
