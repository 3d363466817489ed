"""Secrets: credentials never reach logs, CLI output, errors, records, provenance or reports."""

from __future__ import annotations

import logging
import uuid

import pytest
import yaml
from reliability_helpers import (
    PREFIX,
    cli_env,
    make_ref,
    plain_repo_config,
    quantum_files,
    records_from_provenance,
    repo_config,
    run_cli,
    upload_text,
)

from s3qbb.batch.execution import EXIT_SUCCESS, EXIT_TASK_FAILURE, outcome_summary, run_quantum
from s3qbb.config import S3EndpointConfig, registered_secrets
from s3qbb.core.quantum import Quantum
from s3qbb.core.wire import quantum_to_simple
from s3qbb.datastores.s3 import S3Datastore
from s3qbb.errors import CredentialsError
from s3qbb.provenance.files import RedactingFormatter, credential_values, redact
from s3qbb.provenance.model import QuantumExecutionReport
from s3qbb.testing.servers import S3TestEndpoint

pytestmark = pytest.mark.seaweedfs


def _assert_clean(what: str, data: str | bytes, secrets: list[str]) -> None:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    for secret in secrets:
        if secret in text:  # not an assert: pytest would print the credential
            pytest.fail(f"{what} contains a credential")


def _error_text(err: BaseException) -> str:
    return "\n".join([str(err), repr(err), *getattr(err, "__notes__", [])])


def test_pipeline_leaks_no_credentials(seaweedfs_endpoint: S3TestEndpoint) -> None:
    endpoint = seaweedfs_endpoint
    creds = endpoint.server.credentials("admin")
    secrets = [creds.access_key_id, creds.secret_access_key]
    env = cli_env(endpoint)
    config_uri = upload_text(endpoint, f"{PREFIX}/butler.yaml", yaml.safe_dump(plain_repo_config(endpoint)))

    def run(quantum: Quantum, task: str) -> tuple[int, str]:
        key = f"quanta/{quantum.id}.json"
        uri = upload_text(endpoint, key, quantum_to_simple(quantum).model_dump_json())
        proc = run_cli(uri, f"reliability_tasks:{task}", config_uri, env, "--json", verbose=3)
        return proc.returncode, proc.stdout + proc.stderr

    raws = [make_ref("raw", d) for d in (1, 2)]
    produce = Quantum(taskLabel="produce", outputs=raws)
    summary = make_ref("summary", 0)
    outputs: list[str] = []
    code, out = run(produce, "produce")
    assert code == EXIT_SUCCESS, out
    outputs.append(out)
    combine = Quantum(
        taskLabel="combine",
        inputs=raws,
        outputs=[summary],
        datastore_records=records_from_provenance(endpoint, [produce.id]),
    )
    code, out = run(combine, "combine")
    assert code == EXIT_SUCCESS, out
    outputs.append(out)
    leak = Quantum(
        taskLabel="leak",
        inputs=[summary],
        outputs=[make_ref("never", 0)],
        datastore_records=records_from_provenance(endpoint, [combine.id]),
    )
    code, out = run(leak, "fail_with_credentials")
    assert code == EXIT_TASK_FAILURE, out
    outputs.append(out)

    # The output is the debug output of each job (the test means something only if it is).
    for out in outputs:
        assert "DEBUG botocore" in out and "INFO s3qbb." in out, out[-1500:]
        _assert_clean("CLI output", out, secrets)
    assert "could not call the service with key ***" in outputs[-1]

    for quantum in (produce, combine, leak):
        files = quantum_files(endpoint, quantum.id)
        assert set(files) == {"records", "provenance", "report"}
        for kind, data in files.items():
            _assert_clean(f"{kind} file of {quantum.taskLabel}", data, secrets)
    report = QuantumExecutionReport.from_json(quantum_files(endpoint, leak.id)["report"])
    assert report.status == "failed" and report.error is not None
    assert "could not call the service with key ***" in report.error.message
    assert "secret=***" in report.error.message


def test_in_process_quantum_logs_and_outcome_leak_no_credentials(
    seaweedfs_endpoint: S3TestEndpoint,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    endpoint = seaweedfs_endpoint
    creds = endpoint.server.credentials("admin")
    secrets = [creds.access_key_id, creds.secret_access_key]
    # The job's credentials come from the environment, as in a batch job.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds.secret_access_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    config = plain_repo_config(endpoint)
    quantum = Quantum(taskLabel="leak", outputs=[make_ref("never", 1)])

    import reliability_tasks

    with caplog.at_level(logging.DEBUG):
        outcome = run_quantum(config, quantum, reliability_tasks.fail_with_credentials)
    assert outcome.exit_code == EXIT_TASK_FAILURE
    ours = [r for r in caplog.records if r.name.startswith("s3qbb")]
    assert any("could not call the service" in r.getMessage() for r in ours)
    for record in ours:
        _assert_clean(f"log record of {record.name}", record.getMessage(), secrets)
    # Every record, botocore's signed request headers included, is clean once formatted for output.
    formatter = RedactingFormatter("%(levelname)s %(name)s: %(message)s")
    assert any(r.name.startswith("botocore") for r in caplog.records)
    for record in caplog.records:
        _assert_clean(f"formatted log record of {record.name}", formatter.format(record), secrets)
    _assert_clean("outcome summary", str(outcome_summary(outcome)), secrets)


def test_errors_raised_to_callers_hold_no_credentials(seaweedfs_endpoint: S3TestEndpoint) -> None:
    endpoint = seaweedfs_endpoint
    creds = endpoint.server.credentials("admin")
    wrong_secret = "Wr0ng" + creds.secret_access_key[5:]
    ref = make_ref("x", 1)
    cases = {
        "wrong secret": endpoint.config.model_copy(
            update={
                "secret_access_key": S3EndpointConfig(
                    access_key_id="a", secret_access_key=wrong_secret
                ).secret_access_key
            }
        ),
        "unknown key id": endpoint.config.model_copy(update={"access_key_id": "S3QBBUNKNOWNKEY00000"}),
    }
    secrets = [creds.access_key_id, creds.secret_access_key, wrong_secret, "S3QBBUNKNOWNKEY00000"]
    for name, config in cases.items():
        store = S3Datastore(f"s3://{endpoint.bucket}/{PREFIX}", config=config)
        with pytest.raises(CredentialsError) as info:
            store.put({"a": 1}, ref)
        _assert_clean(f"error of a put with a {name}", _error_text(info.value), secrets)
        store.close()
    # Configuration objects show no secret either.
    for config in [endpoint.config, *cases.values()]:
        for text in (repr(config), str(config), config.model_dump_json()):
            assert creds.secret_access_key not in text and wrong_secret not in text


def test_redaction_masks_the_credentials_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    key_id, secret = "S3QBBKEYID0123456789", "s3cr3t-value_with-dashes_0123456789abcdef"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    # Besides the environment's, the credentials of every configuration made in this process count.
    assert credential_values() - registered_secrets() == {key_id, secret}
    assert redact(f"key {key_id} secret {secret}.") == "key *** secret ***."
    assert (
        redact(f"{secret}", secrets=["other-secret-value"]) == secret
    )  # explicit list replaces the environment
    assert redact("short values like 'testing' are left alone", secrets=["testing"]) == (
        "short values like 'testing' are left alone"
    )
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed with %s", (secret,), None)
    assert RedactingFormatter("%(message)s").format(record) == "failed with ***"
    assert str(uuid.UUID(int=1)) == redact(str(uuid.UUID(int=1)))


def test_butler_config_repr_hides_the_secret(seaweedfs_endpoint: S3TestEndpoint) -> None:
    config = repo_config(seaweedfs_endpoint)
    secret = seaweedfs_endpoint.server.credentials("admin").secret_access_key
    from s3qbb.repo import load_repo_config

    repo = load_repo_config(config)
    assert secret not in repr(repo) and secret not in str(repo)
    assert secret not in repo.model_dump_json()
