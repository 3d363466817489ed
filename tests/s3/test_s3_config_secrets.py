"""Secrets of `S3EndpointConfig`: registered for redaction, never echoed by a validation error."""

from __future__ import annotations

import logging
import traceback
import uuid
from typing import Any

import pytest
from pydantic import ValidationError

from s3qbb.batch.execution import run_quantum
from s3qbb.config import S3EndpointConfig, register_secrets, registered_secrets
from s3qbb.core import DatasetRef, DatasetType, DimensionUniverse, Quantum
from s3qbb.errors import ConfigError
from s3qbb.provenance.files import RedactingFormatter, credential_values, redact, report_key
from s3qbb.repo import load_repo_config
from s3qbb.testing.servers import S3TestEndpoint

WRONG = [123456789012345678901234, ["listedSecret-9Kq2Lp7Wz"], {"nested": "mappedSecret-3Jx8Vb1"}, 1.5e300]
PIECES = ("123456789012345678901234", "listedSecret", "mappedSecret", "1.5e+300")


def _all_text(err: BaseException) -> str:
    """Everything a traceback or a careless handler could show of an error."""
    parts = ["".join(traceback.format_exception(err))]
    if isinstance(err, ValidationError):
        parts.append(repr(err.errors()))
        parts.append(err.json())
    return "\n".join(parts)


@pytest.mark.parametrize("wrong", WRONG)
@pytest.mark.parametrize("field", ["secret_access_key", "session_token", "access_key_id"])
def test_wrong_type_secret_is_not_echoed_by_the_model(field: str, wrong: Any) -> None:
    values: dict[str, Any] = {"access_key_id": "keyIdOfTheTest", "secret_access_key": "okSecret-42xyz"}
    values[field] = wrong
    with pytest.raises(ValidationError) as info:
        S3EndpointConfig(**values)
    text = _all_text(info.value)
    assert field in text  # the error names the field ...
    assert "<hidden>" in text
    for piece in PIECES:
        assert piece not in text  # ... never its value


def test_inconsistent_secrets_are_not_echoed() -> None:
    # An error of the whole model would carry the whole input mapping, the secrets with it.
    # (The values are built, so that the traceback's source lines cannot show them.)
    token, secret = "lonely" + "Token-5Rt8Yu2", "halfPair" + "Secret-6Gh3"
    with pytest.raises(ValidationError, match="session_token needs access_key_id") as info:
        S3EndpointConfig(session_token=token, endpoint_url="http://127.0.0.1:9")
    assert token not in _all_text(info.value)
    with pytest.raises(ValidationError, match="must be given together") as info:
        S3EndpointConfig(secret_access_key=secret)
    assert secret not in _all_text(info.value)


def test_other_inputs_are_still_shown() -> None:
    with pytest.raises(ValidationError) as info:
        S3EndpointConfig(endpoint_url="ftp://somewhere", secret_access_key="s" * 20, access_key_id="k" * 10)
    assert "ftp://somewhere" in str(info.value)


@pytest.mark.parametrize("wrong", WRONG)
def test_wrong_type_secret_in_a_repository_config_is_not_echoed(wrong: Any) -> None:
    config = {
        "datastore": {
            "root": "s3://bucket/r",
            "endpoint": {"access_key_id": "keyIdOfTheTest", "secret_access_key": wrong},
        }
    }
    with pytest.raises(ConfigError, match=r"datastore\.endpoint\.secret_access_key") as info:
        load_repo_config(config)
    text = _all_text(info.value)
    for piece in PIECES:
        assert piece not in text


def test_explicit_credentials_join_the_redaction_list() -> None:
    key_id, secret, token = (f"{what}-{uuid.uuid4().hex[:12]}" for what in ("kid", "sec", "tok"))
    assert secret not in credential_values({})
    S3EndpointConfig(access_key_id=key_id, secret_access_key=secret, session_token=token)
    assert {key_id, secret, token} <= registered_secrets()
    assert {key_id, secret, token} <= credential_values({})  # whatever the environment holds
    assert redact(f"failed with {secret} and {token} as {key_id}") == "failed with *** and *** as ***"
    formatter = RedactingFormatter("%(message)s")
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "task said %s", (secret,), None)
    assert formatter.format(record) == "task said ***"


def test_register_secrets_skips_blanks() -> None:
    before = registered_secrets()
    register_secrets([None, "", "   "])
    assert registered_secrets() == before


def test_python_api_run_redacts_the_configured_secret(
    moto_endpoint: S3TestEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    """`run_quantum` from Python, with credentials only in the configuration mapping."""
    secret = f"pyApiSecret-{uuid.uuid4().hex}"
    key_id = f"pyApiKey-{uuid.uuid4().hex[:8]}"
    config = {
        "datastore": {
            "root": f"s3://{moto_endpoint.bucket}/repo",
            "endpoint": {
                "endpoint_url": moto_endpoint.endpoint_url,
                "addressing_style": "path",
                "access_key_id": key_id,
                "secret_access_key": secret,
            },
        },
        "cache": {"enabled": False},
    }
    universe = DimensionUniverse()
    dataset_type = DatasetType("a", ["visit"], "StructuredDataDict", universe=universe)
    quantum = Quantum(taskLabel="t", outputs=[DatasetRef(dataset_type, {"instrument": "I", "visit": 1}, "r")])

    def task(butler: Any, q: Quantum) -> None:
        raise RuntimeError(f"rejected {secret} of {key_id}")

    with caplog.at_level(logging.INFO):
        outcome = run_quantum(config, quantum, task)
    assert outcome.exit_code == 1
    assert secret not in caplog.text and key_id not in caplog.text
    assert "rejected *** of ***" in caplog.text
    body = moto_endpoint.client.get_object(
        Bucket=moto_endpoint.bucket, Key=f"repo/{report_key('r', quantum.id)}"
    )["Body"].read()
    assert b"rejected *** of ***" in body and secret.encode() not in body
