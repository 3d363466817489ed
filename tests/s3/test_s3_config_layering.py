"""Endpoint settings layer per field: explicit configuration > environment > default.

The issue's case: a repository configuration whose ``endpoint:`` section holds
only ``checksum_algorithm`` used to drop the ``S3QBB_S3_*`` variables, so the
job wrote to the real AWS endpoint. And the effective endpoint, with where it
came from, is logged at INFO when the client is built.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from s3qbb.batch.execution import run_quantum
from s3qbb.config import RetryConfig, S3EndpointConfig
from s3qbb.core import DatasetRef, DatasetType, DimensionUniverse, Quantum
from s3qbb.errors import ConfigError
from s3qbb.repo import DatastoreConfig, build_datastore, load_repo_config
from s3qbb.s3.client import new_client
from s3qbb.testing.servers import S3TestEndpoint

pytestmark = pytest.mark.usefixtures("s3_env_scrubber")


def _quantum() -> Quantum:
    dataset_type = DatasetType("a", ["visit"], "StructuredDataDict", universe=DimensionUniverse())
    return Quantum(taskLabel="t", outputs=[DatasetRef(dataset_type, {"instrument": "I", "visit": 1}, "r")])


def test_an_endpoint_section_keeps_the_endpoint_variables(
    s3_endpoint: S3TestEndpoint,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The issue's exact case, through a configuration file and a real job (moto and SeaweedFS)."""
    admin = s3_endpoint.server.credentials("admin")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", admin.access_key_id)  # SeaweedFS enforces them
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", admin.secret_access_key)
    path = tmp_path / "butler.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "datastore": {
                    "root": f"s3://{s3_endpoint.bucket}/repo",
                    "endpoint": {"checksum_algorithm": "SHA256"},
                },
                "cache": {"enabled": False},
            }
        )
    )
    monkeypatch.setenv("S3QBB_S3_ENDPOINT_URL", s3_endpoint.endpoint_url)
    monkeypatch.setenv("S3QBB_S3_ADDRESSING_STYLE", "path")
    monkeypatch.setenv("S3QBB_RETRY_MAX_ATTEMPTS", "2")
    repo = load_repo_config(path)

    effective = repo.datastore.endpoint_config()
    assert effective.endpoint_url == s3_endpoint.endpoint_url
    assert effective.checksum_algorithm == "SHA256"
    assert effective.retry.max_attempts == 2
    assert effective.field_sources["endpoint_url"] == "environment S3QBB_S3_ENDPOINT_URL"
    assert effective.field_sources["checksum_algorithm"] == "configuration"
    assert effective.field_sources["read_timeout"] == "default"

    def task(butler: object, quantum: Quantum) -> None:
        (ref,) = quantum.output_refs()
        butler.put({"x": 1}, ref)  # type: ignore[attr-defined]

    with caplog.at_level(logging.INFO, logger="s3qbb.s3.client"):
        assert run_quantum(path, _quantum(), task).exit_code == 0
    keys = [o["Key"] for o in s3_endpoint.client.list_objects_v2(Bucket=s3_endpoint.bucket)["Contents"]]
    (data_key,) = [k for k in keys if "/_records/" not in k]
    (provenance,) = [k for k in keys if k.endswith(".provenance.json")]
    body = s3_endpoint.client.get_object(Bucket=s3_endpoint.bucket, Key=provenance)["Body"].read()
    assert b'"SHA256:' in body and b"CRC32C:" not in body  # the configured field still applies
    assert data_key.startswith("repo/r/")
    assert (
        f"S3 client: endpoint {s3_endpoint.endpoint_url} (from environment S3QBB_S3_ENDPOINT_URL)"
        in caplog.text
    )


def test_explicit_fields_win_per_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3QBB_S3_ENDPOINT_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("S3QBB_S3_REGION", "eu-west-3")
    monkeypatch.setenv("S3QBB_RETRY_MAX_ATTEMPTS", "7")
    monkeypatch.setenv("S3QBB_RETRY_JITTER", "false")
    section = DatastoreConfig.model_validate(
        {
            "root": "s3://bucket/r",
            "endpoint": {"endpoint_url": "http://127.0.0.1:2", "retry": {"max_attempts": 3}},
        }
    )
    effective = section.endpoint_config()
    assert effective.endpoint_url == "http://127.0.0.1:2"  # configuration beats environment
    assert effective.region == "eu-west-3"  # environment fills what the section left out
    assert (effective.retry.max_attempts, effective.retry.jitter) == (3, False)  # nested: per field too
    assert effective.retry.field_sources["jitter"] == "environment S3QBB_RETRY_JITTER"
    # Without a section, everything comes from the environment.
    assert DatastoreConfig(root="s3://bucket/r").endpoint_config().endpoint_url == "http://127.0.0.1:1"
    # Python-made configurations layer the same way.
    layered = S3EndpointConfig(retry=RetryConfig(jitter=True)).layered_on_env()
    assert (layered.endpoint_url, layered.retry.jitter, layered.retry.max_attempts) == (
        "http://127.0.0.1:1",
        True,
        7,
    )


def test_an_invalid_combination_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3QBB_S3_READ_TIMEOUT", "-1")
    datastore = {"root": "s3://bucket/r", "endpoint": {"region": "us-east-1"}}
    with pytest.raises(ConfigError, match="read_timeout"):
        DatastoreConfig.model_validate(datastore).endpoint_config()
    with pytest.raises(ConfigError, match="read_timeout"):
        build_datastore(load_repo_config({"datastore": datastore}))


@pytest.mark.parametrize(
    ("variables", "url", "source"),
    [
        ({"AWS_ENDPOINT_URL": "http://127.0.0.1:11"}, "http://127.0.0.1:11", "environment AWS_ENDPOINT_URL"),
        (
            {"AWS_ENDPOINT_URL": "http://127.0.0.1:11", "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:12"},
            "http://127.0.0.1:12",
            "environment AWS_ENDPOINT_URL_S3",
        ),
        (
            {
                "AWS_ENDPOINT_URL": "http://127.0.0.1:11",
                "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:12",
                "S3QBB_S3_ENDPOINT_URL": "http://127.0.0.1:13",
            },
            "http://127.0.0.1:13",
            "environment S3QBB_S3_ENDPOINT_URL",
        ),
        ({}, "https://s3.us-east-1.amazonaws.com", "AWS chain"),
    ],
)
def test_endpoint_precedence_and_its_log_line(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    variables: dict[str, str],
    url: str,
    source: str,
) -> None:
    """S3QBB_S3_ENDPOINT_URL > AWS_ENDPOINT_URL_S3 > AWS_ENDPOINT_URL > the AWS endpoint of the region."""
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with caplog.at_level(logging.INFO, logger="s3qbb.s3.client"):
        client = new_client(S3EndpointConfig.from_env())
    assert client.meta.endpoint_url == url
    (record,) = [r for r in caplog.records if r.name == "s3qbb.s3.client"]
    assert record.levelno == logging.INFO
    message = record.getMessage()
    assert message.startswith(f"S3 client: endpoint {url} (from {source}")
    assert "region us-east-1 (from environment AWS_DEFAULT_REGION)" in message
    assert "credentials: AWS chain: env" in message
    # An explicit field beats every variable.
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="s3qbb.s3.client"):
        explicit = new_client(S3EndpointConfig.from_env(endpoint_url="http://127.0.0.1:14"))
    assert explicit.meta.endpoint_url == "http://127.0.0.1:14"
    assert "(from configuration)" in caplog.text
    client.close()
    explicit.close()


def test_where_a_value_came_from_does_not_change_equality() -> None:
    from_env = S3EndpointConfig.from_env({"S3QBB_S3_REGION": "eu-west-1"})
    given = S3EndpointConfig(region="eu-west-1")
    assert from_env == given and hash(from_env) == hash(given)
    assert (from_env.field_sources["region"], given.field_sources["region"]) == (
        "environment S3QBB_S3_REGION",
        "configuration",
    )
