"""Fixtures of the ``s3qbb`` command-line tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import CliJob, cli_env, write_config

from s3qbb.testing.servers import S3TestEndpoint


@pytest.fixture
def cli_job(moto_endpoint: S3TestEndpoint, tmp_path: Path) -> CliJob:
    """A fresh bucket on the session moto server, its configuration file, and a job environment."""
    workdir = tmp_path / "job"
    workdir.mkdir()
    return CliJob(moto_endpoint, cli_env(moto_endpoint), write_config(moto_endpoint, workdir), workdir)


@pytest.fixture
def s3_env(moto_endpoint: S3TestEndpoint, monkeypatch: pytest.MonkeyPatch) -> S3TestEndpoint:
    """For in-process ``main([...])`` calls: the moto server as the endpoint of the environment."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint.endpoint_url)
    return moto_endpoint


@pytest.fixture
def server_job(s3_endpoint: S3TestEndpoint, tmp_path: Path) -> CliJob:
    """Like `cli_job`, once on the moto server and once on SeaweedFS (with that server's credentials)."""
    workdir = tmp_path / "job"
    workdir.mkdir()
    env = cli_env(s3_endpoint)
    config = s3_endpoint.config
    if config.access_key_id is not None and config.secret_access_key is not None:
        env["AWS_ACCESS_KEY_ID"] = config.access_key_id
        env["AWS_SECRET_ACCESS_KEY"] = config.secret_access_key.get_secret_value()
    return CliJob(s3_endpoint, env, write_config(s3_endpoint, workdir), workdir)
