"""Clear refusals: a mistyped run, the repository root, and errors that name the CLI option to fix."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cli_helpers import PREFIX, RUN, TESTS_DIR, CliJob, make_ref, run_cli, run_pipeline, write_quantum

from s3qbb.cli.main import main
from s3qbb.core import Quantum
from s3qbb.datastores.sanitize import sanitize_run


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


def test_ingest_takes_a_nested_run_by_its_own_name(cli_job: CliJob) -> None:
    """Run ``rün/日本`` is stored at ``r%C3%BCn/%E6%97%A5%E6%9C%AC/``: its own name in the URI ingests it."""
    import cli_tasks

    from s3qbb.batch.execution import run_quantum
    from s3qbb.core import Quantum

    run = "rün/日本"
    root = f"s3://{cli_job.endpoint.bucket}/{PREFIX}"
    config = {"datastore": {"root": root, "endpoint": cli_job.endpoint.config}, "cache": {"enabled": False}}
    quantum = Quantum(taskLabel="make", taskName="cli_tasks.produce", outputs=[make_ref("raw", 1, run)])
    assert run_quantum(config, quantum, cli_tasks.produce).exit_code == 0
    base = f"s3://{cli_job.endpoint.bucket}/{PREFIX}/"
    encoded = f"{base}{sanitize_run(run)}/"
    assert encoded == f"{base}r%C3%BCn/%E6%97%A5%E6%9C%AC/"
    registry = f"sqlite:///{cli_job.workdir / 'r.sqlite3'}"
    proc = cli_job.run("ingest", f"{base}{run}/", "--registry", registry, "--no-progress", "-v")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{encoded} -> {registry}: 1 quanta added"), proc.stdout
    assert f"Nothing under {base}{run}/: reading the run at {encoded}" in proc.stderr, proc.stderr
    # The encoded URI works as before (and finds the quantum already ingested).
    proc = cli_job.run("ingest", encoded, "--registry", registry, "--no-progress")
    assert proc.returncode == 0 and "0 quanta added, 1 already present" in proc.stdout, proc.stdout
    # Neither the name nor its encoded form: both prefixes named, and the runs beside the encoded one.
    typo = f"{base}rün/日木/"
    proc = cli_job.run("ingest", typo, "--registry", registry)
    assert proc.returncode == 2, proc.stdout
    assert proc.stderr.strip() == (
        f"s3qbb ingest: nothing under {typo} nor under {base}r%C3%BCn/%E6%97%A5%E6%9C%A8/ (the run name as "
        f"s3qbb stores it): no such run (runs beside it under {base}r%C3%BCn/: %E6%97%A5%E6%9C%AC; pass one "
        f"of them, e.g. s3qbb ingest {encoded})."
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


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        # obstore panicked on it (a BaseException): "task failed", exit 1, a Rust backtrace.
        ({"S3QBB_S3_TRANSPORT": "obstore", "S3QBB_S3_ENDPOINT_URL": "http://"}, "S3QBB_S3_ENDPOINT_URL"),
        ({"S3QBB_S3_ENDPOINT_URL": "http://127.0.0.1:9 x"}, "S3QBB_S3_ENDPOINT_URL"),
        ({"S3QBB_S3_REGION": "not a region!"}, "S3QBB_S3_REGION"),
        ({"S3QBB_RETRY_MAX_ATTEMPTS": "abc"}, "S3QBB_RETRY_MAX_ATTEMPTS"),
        ({"S3QBB_S3_PROFILE": "nosuch"}, "'nosuch' (from environment S3QBB_S3_PROFILE)"),
        ({"S3QBB_S3_TRANSPORT": "obstore", "S3QBB_S3_PROFILE": "nosuch"}, "S3QBB_S3_PROFILE"),
    ],
)
def test_a_bad_endpoint_setting_is_a_configuration_error_before_any_work(
    tmp_path: Path, variables: dict[str, str], expected: str
) -> None:
    quantum = write_quantum(tmp_path / "q.json", Quantum(taskLabel="t", outputs=[make_ref("a", 1)]))
    config = tmp_path / "butler.yaml"
    config.write_text("datastore:\n  root: s3://my-bucket/repo\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3QBB_"))}
    env |= {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_CONFIG_FILE": os.devnull}
    env |= {"AWS_SHARED_CREDENTIALS_FILE": os.devnull, "S3QBB_S3_ADDRESSING_STYLE": "path"}
    env |= {"S3QBB_S3_ENDPOINT_URL": "http://127.0.0.1:9", "S3QBB_RETRY_CONNECT_TIME": "0", **variables}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")])
    proc = run_cli(
        "run-quantum", quantum, "--task", "cli_tasks:produce", "--config", config, env=env, cwd=tmp_path
    )
    assert proc.returncode == 2, proc.stderr
    assert expected in proc.stderr
    assert "panicked" not in proc.stderr and "Traceback" not in proc.stderr
