"""Secrets given only in a configuration file or a profile never reach a report, a log, --json or inspect.

The jobs run ``python -m s3qbb.cli`` in subprocesses whose environment holds no
``AWS_*`` credential: the keys live only in the repository configuration file
(or in a profile's shared credentials file), so nothing but their registration
from that source can mask them. The task quotes the key bare, through a variable
that is not a credential variable. On SeaweedFS the server enforces the keys, so
the job provably used those from the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_helpers import PREFIX, RUN, TESTS_DIR, make_ref, run_cli, write_quantum

from s3qbb.cli.main import main
from s3qbb.core import Quantum
from s3qbb.provenance.files import report_key
from s3qbb.testing.servers import S3TestEndpoint

MOTO_SECRET = "cfgFileOnlySecret-7Hq2Zp9Lw4Xv"
MOTO_KEY_ID = "cfgFileKeyId-Q8z3"


@pytest.fixture(params=["moto", "seaweedfs"])
def server(request: pytest.FixtureRequest) -> tuple[S3TestEndpoint, str, str]:
    """An endpoint and the access key pair a job must use on it (moto accepts any)."""
    endpoint: S3TestEndpoint = request.getfixturevalue(f"{request.param}_endpoint")
    if request.param == "moto":
        return endpoint, MOTO_KEY_ID, MOTO_SECRET
    creds = endpoint.server.credentials("admin")
    return endpoint, creds.access_key_id, creds.secret_access_key


def _bare_env(workdir: Path, **extra: str) -> dict[str, str]:
    """A job environment without any AWS or s3qbb setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3QBB_"))}
    pythonpath = [str(TESTS_DIR), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env.update(
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        PYTHONPATH=os.pathsep.join(pythonpath),
    )
    env.update(extra)
    return env


def _config(endpoint: S3TestEndpoint, **endpoint_fields: Any) -> dict[str, Any]:
    return {
        "datastore": {
            "root": f"s3://{endpoint.bucket}/{PREFIX}",
            "endpoint": {
                "endpoint_url": endpoint.endpoint_url,
                "region": "us-east-1",
                "addressing_style": "path",
                **endpoint_fields,
            },
        },
        "cache": {"enabled": False},
    }


def _write(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def _assert_masked(secret: str, key_id: str, *texts: str | bytes) -> None:
    for text in texts:
        data = text.decode() if isinstance(text, bytes) else text
        assert secret not in data
        assert key_id not in data


def _report_bytes(endpoint: S3TestEndpoint, quantum: Quantum) -> bytes:
    key = f"{PREFIX}/{report_key(RUN, quantum.id)}"
    return endpoint.client.get_object(Bucket=endpoint.bucket, Key=key)["Body"].read()


def _run_failing_job(
    endpoint: S3TestEndpoint, tmp_path: Path, config: Path, env: dict[str, str]
) -> tuple[Quantum, Any]:
    quantum = Quantum(taskLabel="fail_quoting", outputs=[make_ref("a", 1)])
    path = write_quantum(tmp_path / "q.json", quantum)
    proc = run_cli(
        "-vvv", "run-quantum", path, "--task", "cli_tasks:fail_quoting", "--config", config, "--json",
        env=env, cwd=tmp_path,
    )  # fmt: skip
    return quantum, proc


def _check_everywhere(
    endpoint: S3TestEndpoint,
    quantum: Quantum,
    proc: Any,
    key_id: str,
    secret: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert proc.returncode == 1, proc.stderr  # the task failed; the records were uploaded
    assert "the service refused token *** for *** (check it)" in proc.stderr  # the -vv log of the error
    assert "DEBUG botocore" in proc.stderr  # the debug log, signed headers included, was on
    summary = json.loads(proc.stdout)  # --json
    assert summary["status"] == "failed"
    report = _report_bytes(endpoint, quantum)
    assert b"the service refused token *** for *** (check it)" in report
    _assert_masked(secret, key_id, proc.stdout, proc.stderr, report)
    # `s3qbb inspect` of the uploaded report (in this process, through the admin credentials).
    uri = f"s3://{endpoint.bucket}/{PREFIX}/{report_key(RUN, quantum.id)}"
    admin = endpoint.server.credentials("admin")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", admin.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", admin.secret_access_key)
    capsys.readouterr()
    assert main(["inspect", uri, "--json"]) == 0
    shown = capsys.readouterr().out
    assert "the service refused token ***" in shown
    assert secret not in shown


def test_keys_of_the_configuration_file_are_redacted(
    server: tuple[S3TestEndpoint, str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    endpoint, key_id, secret = server
    config = _write(
        tmp_path / "butler.yaml", _config(endpoint, access_key_id=key_id, secret_access_key=secret)
    )
    env = _bare_env(tmp_path, CLI_TEST_QUOTE=f"{secret} for {key_id}")

    quantum, proc = _run_failing_job(endpoint, tmp_path, config, env)

    _check_everywhere(endpoint, quantum, proc, key_id, secret, capsys, monkeypatch)


def test_keys_of_a_profile_are_redacted(
    server: tuple[S3TestEndpoint, str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    endpoint, key_id, secret = server
    credentials = tmp_path / "credentials"
    credentials.write_text(f"[job]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n")
    config = _write(tmp_path / "butler.yaml", _config(endpoint))
    env = _bare_env(
        tmp_path,
        AWS_PROFILE="job",
        AWS_SHARED_CREDENTIALS_FILE=str(credentials),
        CLI_TEST_QUOTE=f"{secret} for {key_id}",
    )

    quantum, proc = _run_failing_job(endpoint, tmp_path, config, env)

    assert "credentials: AWS chain: shared-credentials-file profile job" in proc.stderr
    _check_everywhere(endpoint, quantum, proc, key_id, secret, capsys, monkeypatch)


@pytest.mark.parametrize(
    "wrong", [123456789012345678901234, ["listedSecret-9Kq2Lp7Wz"], {"nested": "mappedSecret-3Jx8Vb1"}]
)
@pytest.mark.parametrize("field", ["secret_access_key", "session_token"])
def test_a_secret_of_the_wrong_type_is_never_echoed(
    moto_endpoint: S3TestEndpoint, tmp_path: Path, wrong: Any, field: str
) -> None:
    fields: dict[str, Any] = {"access_key_id": MOTO_KEY_ID, "secret_access_key": MOTO_SECRET, field: wrong}
    config = _write(tmp_path / "butler.yaml", _config(moto_endpoint, **fields))
    path = write_quantum(tmp_path / "q.json", Quantum(taskLabel="produce", outputs=[make_ref("a", 1)]))

    proc = run_cli(
        "-vvv", "run-quantum", path, "--task", "cli_tasks:produce", "--config", config,
        env=_bare_env(tmp_path), cwd=tmp_path,
    )  # fmt: skip

    assert proc.returncode == 2
    assert f"datastore.endpoint.{field}" in proc.stderr  # the error names the field ...
    assert "Traceback" not in proc.stderr
    for piece in ("123456789012345678901234", "listedSecret", "mappedSecret", MOTO_SECRET):
        assert piece not in proc.stdout + proc.stderr  # ... never the value
