"""S3EndpointConfig and RetryConfig: defaults, documentation, environment, validation."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest
import yaml

from s3qbb.config import RetryConfig, S3EndpointConfig
from s3qbb.errors import ConfigError
from s3qbb.repo import load_repo_config

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


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://", "it has no host"),  # obstore panicked on it (InvalidUri)
        ("http://127.0.0.1:9 x", "whitespace"),  # botocore: EndpointResolutionError at the first request
        ("http://host\tx", "control"),
        ("http://hôte", "non-ASCII"),
        ("http://user:pw@host", "user name or password"),
        ("http://host:0", "port '0'"),
        ("http://host:99999", "port '99999'"),
        ("http://host:", "port ''"),
        ("http://host:x", "port 'x'"),
        ("http://host?x=1", "query"),
        ("http://host#f", "fragment"),
        ("http://host/a`b", "path"),  # obstore panicked on it (InvalidUriChar)
        ("http://999.1.1.1", "not an IPv4 address"),  # obstore panicked on it (InvalidIpv4Address)
        ("http://[::1", "lacks a ']'"),
        ("http://[zz]:9", "not an IPv6 address"),
        ("http://-host", "not a host name"),
        ("ftp://host", "must start with http:// or https://"),
    ],
)
def test_a_malformed_endpoint_url_is_refused_naming_the_field(url: str, problem: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="endpoint_url") as info:
        S3EndpointConfig(endpoint_url=url)
    assert problem in str(info.value)
    assert ":pw@" not in str(info.value)  # a password in the URL: neither in the message nor the input


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9000",
        "https://s3.example.org/",
        "http://[::1]:9000",
        "http://minio_1:9000/s3/",
        "https://host.:443/a%20b~c",
    ],
)
def test_well_formed_endpoint_urls_are_accepted(url: str) -> None:
    assert S3EndpointConfig(endpoint_url=url).endpoint_url == url


def test_a_malformed_endpoint_url_names_its_variable_or_its_file(tmp_path: Path) -> None:
    with pytest.raises(pydantic.ValidationError, match=r"from environment S3QBB_S3_ENDPOINT_URL"):
        S3EndpointConfig.from_env({"S3QBB_S3_ENDPOINT_URL": "http://"})
    path = tmp_path / "bad.yaml"
    path.write_text("datastore:\n  root: s3://bucket/r\n  endpoint:\n    endpoint_url: 'http://'\n")
    with pytest.raises(ConfigError) as info:
        load_repo_config(path)
    assert f"Invalid repository configuration {path}: datastore.endpoint.endpoint_url:" in str(info.value)
    assert "it has no host" in str(info.value)


@pytest.mark.parametrize("region", ["", " ", "not a region!", "-us-east-1", "a" * 64, "eu_west_1"])
def test_a_region_botocore_would_refuse_is_refused_by_the_model(region: str) -> None:
    # They were botocore's InvalidRegionError (awscrt's RuntimeError 6149 for '') at the first request
    # with boto3, and accepted by obstore: the model now refuses them for both transports.
    with pytest.raises(pydantic.ValidationError, match=r"region .* is not a valid region name"):
        S3EndpointConfig(region=region)
    with pytest.raises(pydantic.ValidationError, match="from environment S3QBB_S3_REGION"):
        S3EndpointConfig.from_env({"S3QBB_S3_REGION": region or " "})
    assert S3EndpointConfig(region="us-east-1").region == "us-east-1"


@pytest.mark.parametrize(
    "credentials",
    [
        {"access_key_id": "", "secret_access_key": ""},
        {"access_key_id": "AKIA", "secret_access_key": " "},
        {"access_key_id": "AKIA", "secret_access_key": "s", "session_token": ""},
    ],
)
def test_an_empty_credential_is_refused(credentials: dict[str, str], tmp_path: Path) -> None:
    # Empty explicit credentials used to be accepted: logged as "explicit (configuration)", while the
    # requests were signed with the AWS chain's credentials.
    with pytest.raises(pydantic.ValidationError, match="is empty: remove it") as info:
        S3EndpointConfig(**credentials)  # type: ignore[arg-type]
    assert "AWS credential chain" in str(info.value)
    path = tmp_path / "butler.yaml"
    path.write_text(yaml.safe_dump({"datastore": {"root": "s3://bucket/r", "endpoint": credentials}}))
    with pytest.raises(ConfigError, match=rf"{path}: datastore\.endpoint\.\w+: .* is empty: remove it"):
        load_repo_config(path)
