"""``s3qbb ingest``, ``s3qbb datasets`` and ``s3qbb provenance`` against a SQLite (or PostgreSQL) registry."""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pg_cluster
import pytest
import sqlalchemy as sa
from cli_helpers import RAW_RUN, RUN, SECRET, CliJob, Pipeline, run_pipeline

from s3qbb.cli.main import main
from s3qbb.registry import Registry
from s3qbb.testing.servers import MotoServer, S3TestEndpoint

SUMMARY_RE = re.compile(
    r"^(?P<uri>s3://\S+) -> (?P<registry>\S+): (?P<added>\d+) quanta added, "
    r"(?P<present>\d+) already present, (?P<datasets>\d+) datasets, (?P<records>\d+) records, "
    r"\d+ bytes downloaded, (?P<failures>\d+) failures"
)


def _summary(line: str) -> dict[str, str]:
    match = SUMMARY_RE.match(line)
    assert match is not None, line
    return match.groupdict()


# ------------------------------------------------------------------------ ingest


def test_ingest_prints_a_summary_then_nothing_new(cli_job: CliJob) -> None:
    pipeline = run_pipeline(cli_job.endpoint)
    db = cli_job.workdir / "registries" / "reg.sqlite3"  # the folder is created
    url = f"sqlite:///{db}"

    first = cli_job.run("ingest", pipeline.uri(RUN), "--registry", url)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert len(lines) == 1
    summary = _summary(lines[0])
    assert summary["uri"] == pipeline.uri(RUN)
    assert summary["registry"] == url
    # Quanta: 2 calibrate, 1 summarize. Datasets: 2 raws (inputs), 2 calexps, 1 summary; records: outputs.
    counts = (
        summary["added"],
        summary["present"],
        summary["datasets"],
        summary["records"],
        summary["failures"],
    )
    assert counts == ("3", "0", "5", "3", "0")
    assert first.stderr == ""  # no progress bar: stderr is not a terminal

    second = cli_job.run("ingest", pipeline.uri(RUN), "--registry", url, "--no-progress")
    assert second.returncode == 0, second.stderr
    lines = second.stdout.splitlines()
    again = _summary(lines[0])
    assert (again["added"], again["present"], again["datasets"], again["records"]) == ("0", "3", "0", "0")
    assert lines[1] == "Nothing new: all 3 quanta listed were already in the registry."
    assert second.stderr == ""
    assert SECRET not in first.stdout + first.stderr + second.stdout + second.stderr

    with Registry.from_url(db) as registry:
        assert registry.counts()["quantum"] == 3
        assert {r.id for r in registry.datasets(run=RUN)} == {
            *(r.id for r in pipeline.calexps.values()),
            pipeline.summary.id,
        }


def test_ingest_json(s3_env: S3TestEndpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pipeline = run_pipeline(s3_env)
    url = f"sqlite:///{tmp_path / 'reg.sqlite3'}"

    assert main(["ingest", pipeline.uri(RAW_RUN), "--registry", url, "--json"]) == 0
    out = capsys.readouterr()
    data = json.loads(out.out)
    assert out.err == ""  # --json draws no progress bar
    assert data["uri"] == pipeline.uri(RAW_RUN)
    assert data["registry"] == url
    assert (data["quanta_listed"], data["quanta_added"], data["quanta_skipped"]) == (1, 1, 0)
    assert (data["datasets_added"], data["records_added"]) == (2, 2)
    assert data["failures"] == []
    assert data["requests"]["ListObjectsV2"] == 1
    assert data["requests"]["GetObject"] == 3  # provenance, report and records file

    assert main(["ingest", pipeline.uri(RAW_RUN), "--registry", url, "--json", "--workers", "2"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["quanta_added"], again["quanta_skipped"], again["datasets_added"]) == (0, 1, 0)


def test_ingest_reports_a_bad_file_and_exits_1(
    s3_env: S3TestEndpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline = run_pipeline(s3_env, detectors=(1,))
    bad = f"repo/{RUN}/_records/{uuid.uuid4()}.provenance.json"
    s3_env.client.put_object(Bucket=s3_env.bucket, Key=bad, Body=b'{"predicted_inputs": 7}')
    url = f"sqlite:///{tmp_path / 'reg.sqlite3'}"

    assert main(["ingest", pipeline.uri(RUN), "--registry", url, "--no-progress"]) == 1
    lines = capsys.readouterr().out.splitlines()
    summary = _summary(lines[0])
    assert (summary["added"], summary["failures"]) == ("2", "1")
    assert lines[1].startswith(f"FAILED s3://{s3_env.bucket}/{bad}: ")


def test_ingest_reports_a_quantum_whose_upload_stopped_before_its_report_and_exits_1(
    s3_env: S3TestEndpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from s3qbb.provenance.files import provenance_key, report_key

    pipeline = run_pipeline(s3_env, detectors=(1, 2))
    cut = pipeline.calibrate[2]  # as if killed after its records and provenance, before its report
    s3_env.client.delete_object(Bucket=s3_env.bucket, Key=f"repo/{report_key(RUN, cut.id)}")
    url = f"sqlite:///{tmp_path / 'reg.sqlite3'}"

    assert main(["ingest", pipeline.uri(RUN), "--registry", url, "--no-progress"]) == 1
    lines = capsys.readouterr().out.splitlines()
    summary = _summary(lines[0])
    assert (summary["added"], summary["failures"]) == ("2", "1")  # the other calibrate and summarize
    assert lines[1] == (
        f"FAILED s3://{s3_env.bucket}/repo/{provenance_key(RUN, cut.id)}: quantum {cut.id} has its records "
        "file and provenance but no execution report (.quantum.json, uploaded last) beside them: its upload "
        "did not finish. Re-run the quantum, or record its outputs with `s3qbb ingest --recover`."
    )
    with Registry.from_url(url) as registry:
        assert registry.quantum(cut.id) is None  # nothing half-ingested
        assert registry.quantum(pipeline.calibrate[1].id) is not None


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("http://bucket/repo/run/", "must look like s3://BUCKET/ROOT/RUN/"),
        ("s3://", "must look like s3://BUCKET/ROOT/RUN/"),
        ("s3://bucket/repo/run/?versionId=1", "must look like s3://BUCKET/ROOT/RUN/"),
        ("s3://no-such-bucket/repo/run/", "bucket 'no-such-bucket' does not exist"),
    ],
)
def test_ingest_bad_run_uri_exits_2(
    s3_env: S3TestEndpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str], uri: str, message: str
) -> None:
    url = f"sqlite:///{tmp_path / 'reg.sqlite3'}"
    assert main(["ingest", uri, "--registry", url, "--no-progress"]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.startswith("s3qbb ingest: ")
    assert message in out.err


def test_ingest_bad_registry_url_exits_2_without_the_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ingest", "s3://bucket/repo/run/", "--registry", "mysql://me:pa55word-xyz@db/reg"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("s3qbb ingest: ")
    assert "mysql" in err and "pa55word-xyz" not in err


@pytest.mark.parametrize("option", ["--workers", "--batch-size"])
def test_ingest_bad_option_exits_2_before_creating_the_registry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str
) -> None:
    db = tmp_path / "r.db"
    assert main(["ingest", "s3://bucket/repo/run/", "--registry", str(db), option, "0"]) == 2
    assert option in capsys.readouterr().err
    assert not db.exists(), "the registry file was created before the options were checked"


@pytest.fixture
def postgres_registry() -> Iterator[tuple[str, str, str]]:
    """(URL of the test database, URL whose ``search_path`` is a fresh schema, the schema); dropped after."""
    base = pg_cluster.postgres_url()
    engine = sa.create_engine(base.replace("postgresql://", "postgresql+psycopg://", 1))
    namespace = f"s3qbb_cli_{uuid.uuid4().hex[:12]}"
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{namespace}"')
    # Chosen through the connection's search_path here; test_namespace_option uses --namespace.
    scoped = sa.make_url(base).update_query_dict({"options": f"-csearch_path={namespace}"})
    try:
        yield base, scoped.render_as_string(hide_password=False), namespace
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{namespace}" CASCADE')
        engine.dispose()


@pytest.mark.postgres
def test_ingest_into_postgresql(cli_job: CliJob, postgres_registry: tuple[str, str, str]) -> None:
    base, url, namespace = postgres_registry
    pipeline = run_pipeline(cli_job.endpoint)
    password = sa.make_url(base).password

    first = cli_job.run("ingest", pipeline.uri(RUN), "--registry", url, "--no-progress")
    assert first.returncode == 0, first.stderr
    summary = _summary(first.stdout.splitlines()[0])
    assert (summary["added"], summary["datasets"], summary["records"]) == ("3", "5", "3")
    second = cli_job.run("ingest", pipeline.uri(RUN), "--registry", url, "--no-progress", "--json")
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["quanta_skipped"] == 3
    if password:
        assert str(password) not in first.stdout + first.stderr + second.stdout

    with Registry.from_url(base, namespace=namespace) as registry:
        assert registry.dialect == "postgresql"
        assert registry.counts()["quantum"] == 3
        assert len(registry.datasets(run=RUN)) == 3
    datasets = cli_job.run("datasets", "--registry", url, "--run", RUN, "--json")
    assert datasets.returncode == 0, datasets.stderr
    assert len(json.loads(datasets.stdout)) == 3


@pytest.mark.postgres
def test_namespace_option(cli_job: CliJob, postgres_registry: tuple[str, str, str]) -> None:
    """As docs/registry.rst says: ingest creates the schema; datasets reads it, exits 2 on an empty one."""
    base, _, existing = postgres_registry
    namespace = existing + "_opt"  # does not exist yet: ingest creates it (dropped with the fixture's)
    pipeline = run_pipeline(cli_job.endpoint)
    try:
        ingested = cli_job.run("ingest", pipeline.uri(RUN), "--registry", base, "--namespace", namespace)
        assert ingested.returncode == 0, ingested.stderr
        listed = cli_job.run("datasets", "--registry", base, "--namespace", namespace, "--run", RUN, "--json")
        assert listed.returncode == 0, listed.stderr
        assert len(json.loads(listed.stdout)) == 3
        empty = cli_job.run("datasets", "--registry", base, "--namespace", existing)
        assert empty.returncode == 2 and "holds no s3qbb registry" in empty.stderr
    finally:
        engine = sa.create_engine(base.replace("postgresql://", "postgresql+psycopg://", 1))
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{namespace}" CASCADE')
        engine.dispose()


# ------------------------------------------------------------ datasets and provenance


@dataclasses.dataclass(frozen=True)
class Ingested:
    pipeline: Pipeline
    url: str


@pytest.fixture(scope="module")
def ingested(moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Ingested:
    """Both runs of `run_pipeline` ingested into a SQLite registry (queries need no S3 afterwards)."""
    endpoint = moto_server.endpoint("cli-registry")
    pipeline = run_pipeline(endpoint)
    url = f"sqlite:///{tmp_path_factory.mktemp('registry') / 'reg.sqlite3'}"
    with Registry.from_url(url) as registry:
        for run in (RAW_RUN, RUN):
            assert registry.ingest_run(pipeline.uri(run), config=endpoint.config).quanta_added > 0
    return Ingested(pipeline, url)


def _registry(ingested: Ingested) -> Registry:
    return Registry.from_url(ingested.url, create=False)


def _datasets_human(out: str) -> list[list[str]]:
    lines = out.splitlines()
    assert lines[0].split() == ["dataset", "id", "dataset", "type", "run", "data", "ID", "path"]
    count = int(re.fullmatch(r"\((\d+) dataset\(s\)\)", lines[-1])[1])  # type: ignore[index]
    rows = [line.split(None, 3) for line in lines[1:-1]]
    assert len(rows) == count
    return rows


@pytest.mark.parametrize(
    ("options", "query", "expected"),
    [
        ([], {}, {"raw1", "raw2", "calexp1", "calexp2", "summary"}),
        (["--run", RAW_RUN], {"run": RAW_RUN}, {"raw1", "raw2"}),
        (["--dataset-type", "calexp"], {"dataset_type": "calexp"}, {"calexp1", "calexp2"}),
        (["--where", "detector=2"], {"data_id": {"detector": 2}}, {"raw2", "calexp2"}),
        (["--run", RUN, "--where", "detector=1"], {"run": RUN, "data_id": {"detector": 1}}, {"calexp1"}),
        (
            ["--where", "instrument=Cam", "--where", "visit=1", "--dataset-type", "summary"],
            {"data_id": {"instrument": "Cam", "visit": 1}, "dataset_type": "summary"},
            {"summary"},
        ),
        (["--where", "visit=2"], {"data_id": {"visit": 2}}, set()),
        (["--run", "no/such/run"], {"run": "no/such/run"}, set()),
    ],
)
def test_datasets_filters(
    ingested: Ingested,
    capsys: pytest.CaptureFixture[str],
    options: list[str],
    query: dict[str, Any],
    expected: set[str],
) -> None:
    p = ingested.pipeline
    names = {
        **{f"raw{d}": r for d, r in p.raws.items()},
        **{f"calexp{d}": r for d, r in p.calexps.items()},
        "summary": p.summary,
    }
    wanted = {str(names[n].id): names[n] for n in expected}

    assert main(["datasets", "--registry", ingested.url, *options]) == 0
    rows = _datasets_human(capsys.readouterr().out)
    assert {row[0] for row in rows} == set(wanted)
    for dataset_id, dataset_type, run, rest in rows:
        ref = wanted[dataset_id]
        assert (dataset_type, run) == (ref.datasetType.name, ref.run)
        assert rest.startswith(", ".join(f"{k}={v}" for k, v in sorted(dict(ref.dataId).items())))
        assert rest.split()[-1].startswith(f"{run}/{dataset_type}/")  # the path of its record
        assert rest.split()[-1].endswith(f"{dataset_id}.json")

    assert main(["datasets", "--registry", ingested.url, *options, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {d["id"] for d in data} == set(wanted)
    with _registry(ingested) as registry:
        from_api = [r.to_dict() for r in registry.datasets(**query)]
    assert data == json.loads(json.dumps(from_api, default=str))
    for item in data:
        assert item["records"] and item["records"][0]["file_size"] > 0


def test_datasets_bad_where_exits_2(ingested: Ingested, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["datasets", "--registry", ingested.url, "--where", "detector"]) == 2
    assert "--where 'detector' must look like DIMENSION=VALUE" in capsys.readouterr().err


def test_provenance_human_shows_the_producer_and_its_inputs(
    ingested: Ingested, capsys: pytest.CaptureFixture[str]
) -> None:
    p = ingested.pipeline
    assert main(["provenance", str(p.summary.id), "--registry", ingested.url, "--depth", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{p.summary.id}  summary ")
    assert f"[{RUN}]" in lines[0]
    assert lines[1] == f"  <- quantum {p.summarize.id} (summarize, succeeded)"
    shown = sorted(line.split()[0] for line in lines[2:])
    assert shown == sorted(str(r.id) for r in p.calexps.values())
    assert all(line.startswith("    ") and " calexp " in line for line in lines[2:])

    # The default depth (3) goes up to the raws and the quantum that made them.
    assert main(["provenance", str(p.summary.id), "--registry", ingested.url]) == 0
    out = capsys.readouterr().out
    for d, calibrate in p.calibrate.items():
        assert f"<- quantum {calibrate.id} (calibrate, succeeded)" in out
        assert f"{p.raws[d].id}  raw " in out
    assert out.count(f"<- quantum {p.make.id} (make, succeeded)") == 2


@pytest.mark.parametrize("depth", [0, 1, 2, 5])
def test_provenance_json_matches_the_api(
    ingested: Ingested, capsys: pytest.CaptureFixture[str], depth: int
) -> None:
    root = ingested.pipeline.summary.id
    assert main(["provenance", str(root), "--registry", ingested.url, "--depth", str(depth), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    with _registry(ingested) as registry:
        expected = registry.provenance(root, depth=depth).to_dict()
    assert data == json.loads(json.dumps(expected, default=str))
    assert data["dataset"]["id"] == str(root)
    if depth == 0:
        assert data["producer"] is None
    else:
        assert data["producer"]["id"] == str(ingested.pipeline.summarize.id)
        assert data["producer"]["status"] == "succeeded"
        assert {i["dataset"]["id"] for i in data["inputs"]} == {
            str(r.id) for r in ingested.pipeline.calexps.values()
        }


@pytest.mark.parametrize(
    ("dataset_id", "message"),
    [
        (str(uuid.UUID(int=12345)), "is not in the registry"),
        ("not-a-uuid", "is not a UUID"),
    ],
)
def test_provenance_of_an_unknown_dataset_exits_2(
    ingested: Ingested, capsys: pytest.CaptureFixture[str], dataset_id: str, message: str
) -> None:
    assert main(["provenance", dataset_id, "--registry", ingested.url]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.startswith("s3qbb provenance: ") and message in out.err


@pytest.mark.parametrize("command", ["datasets", "provenance"])
def test_query_of_a_missing_registry_exits_2_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    missing = tmp_path / "typo" / "reg.sqlite3"
    args = [command, "--registry", f"sqlite:///{missing}"]
    if command == "provenance":
        args.insert(1, str(uuid.UUID(int=1)))
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"s3qbb {command}: ") and str(missing) in err
    assert not missing.exists()
    assert not missing.parent.exists()
