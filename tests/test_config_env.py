"""The configuration's environment variables: plain look-ups reading what the pydantic-settings views read."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pydantic
import pytest

import s3qbb.config_checks
from s3qbb.config import RetryConfig, S3EndpointConfig, known_env_variables
from s3qbb.config_env import EnvironmentView, environment_values, view_of
from s3qbb.repo import CacheConfig


def _imports_settings(code: str, env: dict[str, str]) -> bool:
    """Run ``code`` in a fresh interpreter; return whether it imported pydantic_settings."""
    check = f"{code}\nimport sys\nprint('pydantic_settings' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", check], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1] == "True"


def test_from_env_never_imports_pydantic_settings(tmp_path: Path) -> None:
    base = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path)}
    code = "from s3qbb.config import S3EndpointConfig\nS3EndpointConfig.from_env()"
    # Neither the standard AWS_* variables a job has nor the S3QBB_* ones cost an import.
    aws = {"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9", "AWS_REGION": "eu-west-3", "S3QBB_S3_REGION": ""}
    assert not _imports_settings(code, {**base, **aws})
    assert not _imports_settings(code, {**base, **aws, "S3QBB_S3_TRANSPORT": "obstore"})
    assert not _imports_settings(code, {**base, "AWS_MAX_ATTEMPTS": "3"})


_ENVIRONMENTS = [
    {},
    {"S3QBB_S3_REGION": "eu-west-3", "S3QBB_S3_TRANSPORT": "obstore", "S3QBB_S3_ADDRESSING_STYLE": "path"},
    {"AWS_MAX_ATTEMPTS": "9", "S3QBB_RETRY_MAX_ATTEMPTS": "", "S3QBB_RETRY_JITTER": "false"},
    {"AWS_MAX_ATTEMPTS": "9", "S3QBB_RETRY_MAX_ATTEMPTS": "2", "s3qbb_s3_region": "lower"},
    {
        "S3QBB_S3_PROFILE": " ",
        "S3QBB_S3_MULTIPART_THRESHOLD": "64MiB",
        "S3QBB_S3_SSE_KMS_KEY_ID": '{"a": 1}',
        "S3QBB_S3_SERVER_SIDE_ENCRYPTION": "aws:kms",
    },
]


@pytest.mark.parametrize("environ", _ENVIRONMENTS)
@pytest.mark.parametrize("model", [S3EndpointConfig, RetryConfig])
def test_from_env_reads_what_the_pydantic_settings_view_reads(
    model: type[S3EndpointConfig] | type[RetryConfig], environ: dict[str, str]
) -> None:
    aliases = model.env_aliases()
    expected = environment_values(model, aliases, environ)
    config = model.from_env(environ)
    sources = config.field_sources
    assert {
        name: (str(environ[source.removeprefix("environment ")]), source.removeprefix("environment "))
        for name, source in sources.items()
        if source.startswith("environment ")
    } == expected


def test_variable_then_fallbacks_then_default_and_where_each_came_from() -> None:
    env = {"AWS_MAX_ATTEMPTS": "9", "S3QBB_RETRY_JITTER": "false"}
    config = RetryConfig.from_env(env)
    assert (config.max_attempts, config.jitter) == (9, False)
    assert config.field_sources["max_attempts"] == "environment AWS_MAX_ATTEMPTS"
    assert config.field_sources["initial_backoff"] == "default"
    config = RetryConfig.from_env({**env, "S3QBB_RETRY_MAX_ATTEMPTS": "2"})
    assert (config.max_attempts, config.field_sources["max_attempts"]) == (
        2,
        "environment S3QBB_RETRY_MAX_ATTEMPTS",
    )
    # Empty counts as unset (the fallback is read); an explicit value wins over both.
    assert RetryConfig.from_env({**env, "S3QBB_RETRY_MAX_ATTEMPTS": ""}).max_attempts == 9
    assert RetryConfig.from_env(env, max_attempts=4).field_sources["max_attempts"] == "configuration"
    assert RetryConfig.env_aliases()["max_attempts"] == ("S3QBB_RETRY_MAX_ATTEMPTS", "AWS_MAX_ATTEMPTS")
    assert RetryConfig.env_variables()["max_attempts"] == "S3QBB_RETRY_MAX_ATTEMPTS"


def test_names_are_case_sensitive_values_are_text_and_no_dotenv_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("S3QBB_S3_REGION=from-dotenv\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("S3QBB_S3_REGION", raising=False)
    assert S3EndpointConfig.from_env({"s3qbb_s3_region": "lower"}).region is None
    assert S3EndpointConfig.from_env({}).region is None
    assert S3EndpointConfig.from_env().region is None  # no .env file is read
    # A value that looks like JSON stays text for the model to validate.
    assert S3EndpointConfig.from_env({"S3QBB_S3_PROFILE": '{"a": 1}'}).profile == '{"a": 1}'


def test_construction_reads_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3QBB_S3_REGION", "eu-north-1")
    monkeypatch.setenv("S3QBB_RETRY_MAX_ATTEMPTS", "2")
    assert S3EndpointConfig().region is None and S3EndpointConfig().retry.max_attempts == 5
    config = S3EndpointConfig.from_env()
    assert (config.region, config.retry.max_attempts) == ("eu-north-1", 2)


def test_a_bad_value_is_the_model_s_error_naming_the_field() -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        S3EndpointConfig.from_env({"S3QBB_S3_READ_TIMEOUT": "soon", "AWS_MAX_ATTEMPTS": "3"})
    assert info.value.title == "S3EndpointConfig"
    assert [e["loc"] for e in info.value.errors()] == [("read_timeout",)]
    with pytest.raises(pydantic.ValidationError) as retry_info:
        S3EndpointConfig.from_env({"AWS_MAX_ATTEMPTS": "0"})
    assert retry_info.value.title == "RetryConfig"
    assert [e["loc"] for e in retry_info.value.errors()] == [("max_attempts",)]


def test_the_environment_view_is_a_settings_class() -> None:
    view = view_of(RetryConfig, tuple(RetryConfig.env_aliases().items()))
    assert issubclass(view, EnvironmentView) and view.__name__ == "RetryConfigEnvironment"
    assert view is view_of(RetryConfig, tuple(RetryConfig.env_aliases().items()))  # built once
    assert set(view.model_fields) == set(RetryConfig.env_aliases())


def test_a_given_mapping_is_the_whole_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3QBB_S3_ADDRESSING_STYLE", "path")
    monkeypatch.setenv("S3QBB_RETRY_JITTER", "false")
    config = S3EndpointConfig.from_env({"S3QBB_S3_REGION": "eu-south-1"})
    assert (config.region, config.addressing_style, config.retry.jitter) == ("eu-south-1", "auto", True)
    config = S3EndpointConfig.from_env()
    assert (config.region, config.addressing_style, config.retry.jitter) == (None, "path", False)


def test_a_bad_value_names_the_variable_it_came_from() -> None:
    # The message named the field only, though the model knows where each value came from.
    with pytest.raises(
        pydantic.ValidationError, match=r"\(from environment S3QBB_RETRY_MAX_ATTEMPTS\)"
    ) as info:
        S3EndpointConfig.from_env({"S3QBB_RETRY_MAX_ATTEMPTS": "abc"})
    assert [e["loc"] for e in info.value.errors()] == [("max_attempts",)]  # locations unchanged
    with pytest.raises(pydantic.ValidationError, match=r"\(from environment AWS_MAX_ATTEMPTS\)"):
        RetryConfig.from_env({"AWS_MAX_ATTEMPTS": "0"})
    with pytest.raises(
        pydantic.ValidationError, match=r"values from the environment: S3QBB_RETRY_MAX_BACKOFF"
    ):
        RetryConfig.from_env({"S3QBB_RETRY_MAX_BACKOFF": "0.001"})
    # A value given explicitly is the configuration's: no variable is named.
    with pytest.raises(pydantic.ValidationError) as explicit:
        RetryConfig.from_env({}, max_attempts="abc")
    assert "environment" not in str(explicit.value)


def test_the_repository_configuration_error_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from s3qbb.errors import ConfigError
    from s3qbb.repo import DatastoreConfig

    monkeypatch.setenv("S3QBB_RETRY_MAX_ATTEMPTS", "abc")
    with pytest.raises(ConfigError, match=r"max_attempts: .*\(from environment S3QBB_RETRY_MAX_ATTEMPTS\)"):
        DatastoreConfig(root="s3://bucket/r").endpoint_config()


@pytest.fixture
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget which variables this process has already warned about."""
    monkeypatch.setattr(s3qbb.config_checks, "_SEEN", set())


@pytest.mark.usefixtures("fresh_warnings")
def test_an_unknown_variable_is_warned_about_once_with_the_closest_names(
    caplog: pytest.LogCaptureFixture,
) -> None:
    env = {
        "S3QBB_RETRY_CONNECT_RETRY_TIME": "3",  # misspelt S3QBB_RETRY_CONNECT_TIME
        "S3QBB_CACHE_MAX_BYTES": "1GiB",  # no such variable: only S3QBB_CACHE_MAX_PUT_BYTES exists
        "S3QBB_S3_REGION": "eu-west-3",
        "S3QBB_GRACE_PERIOD": "5",  # read by s3qbb run-quantum, not by a model
        "S3QBB_EMPTY_ONE": "",  # empty counts as unset
    }
    with caplog.at_level(logging.WARNING, logger="s3qbb.config"):
        config = S3EndpointConfig.from_env(env)
        S3EndpointConfig.from_env(env)
        RetryConfig.from_env(env)
    assert config.retry.connect_retry_time == 30.0 and config.region == "eu-west-3"  # nothing fails
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings
    cache, retry = sorted(warnings)
    assert "S3QBB_CACHE_MAX_BYTES is set, but no s3qbb setting reads it" in cache
    assert "did you mean S3QBB_CACHE_MAX_PUT_BYTES" in cache
    assert "S3QBB_RETRY_CONNECT_RETRY_TIME" in retry and "did you mean S3QBB_RETRY_CONNECT_TIME" in retry


def test_the_known_variables_come_from_the_models() -> None:
    known = known_env_variables()
    for model in (S3EndpointConfig, RetryConfig, CacheConfig):
        assert {v for names in model.env_aliases().values() for v in names if v.startswith("S3QBB_")} <= known
    assert "S3QBB_GRACE_PERIOD" in known and "AWS_MAX_ATTEMPTS" not in known
    # In a fresh process that imported only s3qbb.config, the cache's variable is known too.
    code = "from s3qbb.config import known_env_variables as k\nprint('S3QBB_CACHE_MAX_PUT_BYTES' in k())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "True"
