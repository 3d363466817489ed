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
