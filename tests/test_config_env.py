"""The configuration's environment variables: plain look-ups reading what the pydantic-settings views read."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pydantic
import pytest

from s3qbb.config import RetryConfig, S3EndpointConfig
from s3qbb.config_env import EnvironmentView, environment_values, view_of


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
    {"S3QBB_S3_REGION": '{"a": 1}', "S3QBB_S3_MULTIPART_THRESHOLD": "64MiB", "S3QBB_S3_PROFILE": " "},
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
    assert S3EndpointConfig.from_env({"S3QBB_S3_REGION": '{"a": 1}'}).region == '{"a": 1}'


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
