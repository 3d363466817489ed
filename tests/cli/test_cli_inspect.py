"""``s3qbb inspect``: records, provenance and report files, local and ``s3://``, human and JSON; bad files."""

from __future__ import annotations

import dataclasses
import json
import uuid
from pathlib import Path

import pytest
from cli_helpers import PREFIX, RUN, CliJob, make_ref

from s3qbb.batch.execution import run_quantum
from s3qbb.cli.main import main
from s3qbb.core import Quantum
from s3qbb.provenance.files import provenance_key, records_key, report_key
from s3qbb.testing.servers import S3TestEndpoint

KINDS = ("records", "provenance", "report")


@dataclasses.dataclass(frozen=True)
class Files:
    quantum: Quantum
    local: dict[str, Path]
    s3: dict[str, str]


@pytest.fixture
def files(s3_env: S3TestEndpoint, tmp_path: Path) -> Files:
    """The three files of one finished quantum (two outputs), in the bucket and downloaded."""
    import cli_tasks

    config = {
        "datastore": {"root": f"s3://{s3_env.bucket}/{PREFIX}", "endpoint": s3_env.config},
        "cache": {"enabled": False},
    }
    quantum = Quantum(taskLabel="produce", outputs=[make_ref("a", 1), make_ref("b", 2)])
    assert run_quantum(config, quantum, cli_tasks.produce).exit_code == 0
    local: dict[str, Path] = {}
    s3: dict[str, str] = {}
    for kind, key_of in zip(KINDS, (records_key, provenance_key, report_key), strict=True):
        key = f"{PREFIX}/{key_of(RUN, quantum.id)}"
        s3[kind] = f"s3://{s3_env.bucket}/{key}"
        local[kind] = tmp_path / key.rsplit("/", 1)[1]
        local[kind].write_bytes(s3_env.client.get_object(Bucket=s3_env.bucket, Key=key)["Body"].read())
    return Files(quantum, local, s3)


def _location(files: Files, kind: str, where: str) -> str:
    return str(files.local[kind]) if where == "local" else files.s3[kind]


@pytest.mark.parametrize("where", ["local", "s3"])
@pytest.mark.parametrize("kind", KINDS)
def test_inspect_human(files: Files, kind: str, where: str, capsys: pytest.CaptureFixture[str]) -> None:
    location = _location(files, kind, where)
    assert main(["inspect", location]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == f"{location}: {kind}"
    a, b = files.quantum.output_refs()
    if kind == "records":
        assert "file_datastore_records" in lines[1]
        assert lines[2] == "  2 record(s)"
        rows = [line.split() for line in lines[3:]]
        assert {row[0] for row in rows} == {a.id.hex, b.id.hex}
        for dataset_id, size, storage_class, path in rows:
            assert int(size) > 0  # real sizes
            assert storage_class == "StructuredDataDict"
            assert path.startswith(f"{RUN}/") and path.endswith(f"{uuid.UUID(dataset_id)}.json")
    elif kind == "provenance":
        assert "  predicted_outputs  2" in lines
        assert "  actual_outputs     2" in lines
        assert "  predicted_inputs   0" in lines
        assert "  datastore S3Datastore: records of 2 dataset(s)" in lines
    else:
        assert f"  quantum_id   {files.quantum.id}" in lines
        assert "  task_label   produce" in lines
        assert f"  run          {RUN}" in lines
        assert "  status       succeeded" in lines
        assert "  requests     {'PutObject': 2}" in lines


@pytest.mark.parametrize("where", ["local", "s3"])
@pytest.mark.parametrize("kind", KINDS)
def test_inspect_json(files: Files, kind: str, where: str, capsys: pytest.CaptureFixture[str]) -> None:
    location = _location(files, kind, where)
    assert main(["inspect", location, "--json"]) == 0
    desc = json.loads(capsys.readouterr().out)
    assert desc["kind"] == kind
    assert desc["source"] == location
    ids = {str(r.id) for r in files.quantum.output_refs()}
    if kind == "records":
        assert {r["dataset_id"] for r in desc["records"]} == {i.replace("-", "") for i in ids}
        assert all(r["file_size"] > 0 and r["checksum"] for r in desc["records"])
        assert "s3qbb_meta" in desc["tables"]
    elif kind == "provenance":
        assert set(desc["actual_outputs"]) == ids
        assert desc["counts"]["predicted_outputs"] == 2
        assert desc["counts"]["actual_inputs"] == 0
        assert set(desc["datastore_records"]["S3Datastore"]["dataset_ids"]) == ids
    else:
        assert desc["quantum_id"] == str(files.quantum.id)
        assert desc["status"] == "succeeded"
        assert desc["format"] == "s3qbb.quantum"
        assert {r["id"] for r in desc["refs"]} == ids


def test_inspect_s3_in_a_job_environment(cli_job: CliJob) -> None:
    """A subprocess finds the object through ``AWS_ENDPOINT_URL_S3`` and the job's credentials."""
    import cli_tasks

    endpoint = cli_job.endpoint
    quantum = Quantum(taskLabel="produce", outputs=[make_ref("a", 1)])
    config = {"datastore": {"root": f"s3://{endpoint.bucket}/{PREFIX}", "endpoint": endpoint.config}}
    assert run_quantum(config, quantum, cli_tasks.produce).exit_code == 0
    uri = f"s3://{endpoint.bucket}/{PREFIX}/{report_key(RUN, quantum.id)}"

    proc = cli_job.run("inspect", uri, "--json")

    assert proc.returncode == 0, proc.stderr
    desc = json.loads(proc.stdout)
    assert (desc["kind"], desc["quantum_id"], desc["status"]) == ("report", str(quantum.id), "succeeded")


GARBAGE = {
    "random.bin": b"\x8f\x00\xffnot a records file\x01",
    "empty.json": b"",
    "truncated.sqlite3": b"SQLite format 3\x00" + b"\x07" * 50,
    "list.provenance.json": b"[1, 2, 3]",
    "config.json": b'{"datastore": {"root": "s3://bucket/repo"}}',
    "invalid.quantum.json": b'{"format": "s3qbb.quantum", "version": 1, "quantum_id": "nope"}',
}


@pytest.mark.parametrize(
    "name",
    [
        *GARBAGE,
        "missing.json",
        "a-directory",
    ],
)
def test_inspect_bad_file_exits_2_naming_it(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / name
    if name == "a-directory":
        path.mkdir()
    elif name in GARBAGE:
        path.write_bytes(GARBAGE[name])

    assert main(["inspect", str(path)]) == 2

    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.startswith("s3qbb inspect: ")
    assert str(path) in out.err
    assert len(out.err.strip().splitlines()) == 1  # one clear line, no traceback


def test_inspect_missing_s3_object_exits_2(
    s3_env: S3TestEndpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = f"s3://{s3_env.bucket}/{PREFIX}/{RUN}/_records/nothing.quantum.json"
    assert main(["inspect", uri]) == 2
    err = capsys.readouterr().err
    assert err.startswith("s3qbb inspect: ")
    assert uri in err and "does not exist" in err


def test_inspect_reads_the_uris_a_job_prints_for_a_run_with_a_space(cli_job: CliJob) -> None:
    """A run's space is ``%20`` in its keys: the command line prints the key as stored; getURI's form
    (``%2520``, percent-encoded) names the file too."""
    import cli_tasks

    endpoint = cli_job.endpoint
    run = "run x"
    quantum = Quantum(taskLabel="produce", outputs=[make_ref("a", 1, run=run)])
    config = {"datastore": {"root": f"s3://{endpoint.bucket}/{PREFIX}", "endpoint": endpoint.config}}
    outcome = run_quantum(config, quantum, cli_tasks.produce)
    assert outcome.exit_code == 0 and outcome.finish is not None
    printed = str(outcome.finish.report_uri)
    literal = f"s3://{endpoint.bucket}/{PREFIX}/{report_key(run, quantum.id)}"
    assert "/run%20x/" in literal and printed == literal.replace("%20", "%2520")
    assert outcome.finish.report_uri.key_uri() == literal  # what run-quantum prints
    for uri in (printed, literal):
        proc = cli_job.run("inspect", uri, "--json")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["quantum_id"] == str(quantum.id)
