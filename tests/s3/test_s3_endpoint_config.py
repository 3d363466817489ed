"""S3EndpointConfig and RetryConfig: defaults, documentation, environment, validation."""

from __future__ import annotations

import pydantic
import pytest

from s3qbb.config import RetryConfig, S3EndpointConfig

MIB = 1024**2


def test_defaults() -> None:
    config = S3EndpointConfig()
    assert config.endpoint_url is None
    assert config.region is None
    assert config.addressing_style == "auto"
    assert (config.connect_timeout, config.read_timeout, config.max_pool_connections) == (5.0, 30.0, 32)
    assert config.server_side_encryption is None
    assert config.checksum_algorithm == "CRC32C"
    assert (config.multipart_threshold, config.multipart_chunksize) == (16 * MIB, 8 * MIB)
    assert config.max_concurrency == 8
    assert config.retry == RetryConfig()
    retry = RetryConfig()
    assert (retry.max_attempts, retry.initial_backoff, retry.max_backoff) == (5, 0.05, 5.0)
    assert (retry.max_total_time, retry.jitter) == (60.0, True)


@pytest.mark.parametrize("model", [S3EndpointConfig, RetryConfig])
def test_every_field_documents_default_and_environment(model: type[pydantic.BaseModel]) -> None:
    for name, info in model.model_fields.items():
        assert info.description, name
        assert "Default: " in info.description, name
        assert (
            "Environment variable: ``S3QBB_" in info.description
            or "No environment variable" in (info.description)
            or name == "retry"
        ), name


def test_environment_variable_names() -> None:
    assert S3EndpointConfig.env_variables()["endpoint_url"] == "S3QBB_S3_ENDPOINT_URL"
    assert RetryConfig.env_variables()["max_attempts"] == "S3QBB_RETRY_MAX_ATTEMPTS"
    assert "secret_access_key" not in S3EndpointConfig.env_variables()


def test_frozen_and_strict() -> None:
    config = S3EndpointConfig()
    with pytest.raises(pydantic.ValidationError):
        config.region = "eu-west-1"  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError, match="extra"):
        S3EndpointConfig(regoin="eu-west-1")  # type: ignore[call-arg]
    assert hash(config) == hash(S3EndpointConfig())


def test_from_env_reads_variables_and_overrides_win() -> None:
    environ = {
        "S3QBB_S3_ENDPOINT_URL": "http://127.0.0.1:9000",
        "S3QBB_S3_REGION": "eu-west-3",
        "S3QBB_S3_ADDRESSING_STYLE": "path",
        "S3QBB_S3_READ_TIMEOUT": "12.5",
        "S3QBB_S3_MULTIPART_THRESHOLD": "64MiB",
        "S3QBB_S3_CHECKSUM_ALGORITHM": "SHA256",
        "S3QBB_S3_PROFILE": "",  # empty means unset
        "S3QBB_RETRY_MAX_ATTEMPTS": "9",
        "S3QBB_RETRY_JITTER": "false",
        "UNRELATED": "x",
    }
    config = S3EndpointConfig.from_env(environ, region="us-west-2")
    assert config.endpoint_url == "http://127.0.0.1:9000"
    assert config.region == "us-west-2"
    assert config.addressing_style == "path"
    assert config.read_timeout == 12.5
    assert config.multipart_threshold == 64 * MIB
    assert config.checksum_algorithm == "SHA256"
    assert config.profile is None
    assert config.retry == RetryConfig(max_attempts=9, jitter=False)
    explicit = S3EndpointConfig.from_env(environ, retry=RetryConfig(max_attempts=2))
    assert explicit.retry.max_attempts == 2


def test_from_env_uses_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3QBB_RETRY_MAX_TOTAL_TIME", "7")
    assert RetryConfig.from_env().max_total_time == 7.0


def test_from_env_rejects_bad_values() -> None:
    with pytest.raises(pydantic.ValidationError, match="max_attempts"):
        RetryConfig.from_env({"S3QBB_RETRY_MAX_ATTEMPTS": "lots"})
    with pytest.raises(pydantic.ValidationError, match="addressing_style"):
        S3EndpointConfig.from_env({"S3QBB_S3_ADDRESSING_STYLE": "sideways"})


def test_validation() -> None:
    with pytest.raises(pydantic.ValidationError, match="http"):
        S3EndpointConfig(endpoint_url="127.0.0.1:9000")
    with pytest.raises(pydantic.ValidationError, match="together"):
        S3EndpointConfig(access_key_id="AKIA")
    with pytest.raises(pydantic.ValidationError, match="aws:kms"):
        S3EndpointConfig(sse_kms_key_id="key")
    with pytest.raises(pydantic.ValidationError):
        S3EndpointConfig(multipart_chunksize="1MiB")
    assert S3EndpointConfig(server_side_encryption="aws:kms", sse_kms_key_id="k").sse_kms_key_id == "k"


def test_secrets_are_hidden() -> None:
    config = S3EndpointConfig(
        access_key_id="AKIAX", secret_access_key="s3cr3t-value", session_token="t0ken-value"
    )
    for text in (repr(config), str(config), config.model_dump_json()):
        assert "s3cr3t-value" not in text
        assert "t0ken-value" not in text
    assert config.has_explicit_credentials
    assert config.secret_access_key is not None
    assert config.secret_access_key.get_secret_value() == "s3cr3t-value"
