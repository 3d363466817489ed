"""Clear refusals: a mistyped run, the repository root, and errors that name the CLI option to fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import PREFIX, RUN, CliJob, run_cli, run_pipeline

from s3qbb.cli.main import main


def test_ingest_of_a_mistyped_run_is_refused(cli_job: CliJob) -> None:
    run_pipeline(cli_job.endpoint)
    base = f"s3://{cli_job.endpoint.bucket}/{PREFIX}/cli/"
    proc = cli_job.run("ingest", f"{base}rnu/", "--registry", f"sqlite:///{cli_job.workdir / 'r.sqlite3'}")
    assert proc.returncode == 2, proc.stdout
    assert proc.stdout == ""
    assert proc.stderr.strip() == (
        f"s3qbb ingest: nothing under {base}rnu/: no such run (runs beside it under {base}: raw, run; "
        f"pass one of them, e.g. s3qbb ingest {base}raw/)."
    )

    nowhere = f"s3://{cli_job.endpoint.bucket}/elsewhere/run/"
    proc = cli_job.run("ingest", nowhere, "--registry", f"sqlite:///{cli_job.workdir / 'r.sqlite3'}")
    assert proc.returncode == 2
    assert (
        f"nothing under {nowhere}: no such run (no run under s3://{cli_job.endpoint.bucket}/elsewhere/"
        in (proc.stderr)
    )


def test_ingest_of_the_repository_root_is_refused(cli_job: CliJob) -> None:
    run_pipeline(cli_job.endpoint)
    root = f"s3://{cli_job.endpoint.bucket}/{PREFIX}/cli/"  # the runs are cli/raw and cli/run
    proc = cli_job.run("ingest", root, "--registry", f"sqlite:///{cli_job.workdir / 'r.sqlite3'}")
    assert proc.returncode == 2, proc.stdout
    assert proc.stderr.strip() == (
        f"s3qbb ingest: {root} is not a run but a folder of runs (raw, run): ingest one run at a time, "
        f"e.g. s3qbb ingest {root}raw/"
    )
    ok = cli_job.run("ingest", f"{root}run/", "--registry", f"sqlite:///{cli_job.workdir / 'r.sqlite3'}")
    assert ok.returncode == 0, ok.stderr


def test_missing_config_names_the_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "nope.yaml")
    assert main(["graph", "status", "g.qgraph", "--config", missing]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"s3qbb graph status: --config {missing}: Configuration {missing!r} not found")
    assert "Give its full path or an s3:// URI." in err
    assert "search_paths" not in err


def test_missing_registry_names_the_cli_not_the_api(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'none.sqlite3'}"
    assert main(["datasets", "--registry", url]) == 2
    err = capsys.readouterr().err
    assert "does not exist; run `s3qbb ingest RUN_URI --registry URL` to make it" in err
    assert "create=True" not in err


def test_postgresql_connection_error_mentions_no_sqlite(capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql+psycopg://nobody@127.0.0.1:1/db"
    assert main(["datasets", "--registry", url]) == 2
    err = capsys.readouterr().err
    assert "Cannot connect to the registry database at 127.0.0.1:1" in err
    assert "Check that the database server is running and reachable from this host." in err
    assert "SQLite" not in err


def test_aws_region_alone_is_honoured(cli_job: CliJob) -> None:
    pipeline = run_pipeline(cli_job.endpoint)
    env = {k: v for k, v in cli_job.env.items() if k != "AWS_DEFAULT_REGION"}
    env["AWS_REGION"] = "eu-west-3"
    registry = f"sqlite:///{cli_job.workdir / 'r.sqlite3'}"
    proc = run_cli("-v", "ingest", pipeline.uri(RUN), "--registry", registry, env=env, cwd=cli_job.workdir)
    assert proc.returncode == 0, proc.stderr
    assert "region eu-west-3 (from environment AWS_REGION)" in proc.stderr
