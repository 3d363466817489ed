"""Fixtures of the QuantumBackedButler tests: a repository on moto and on SeaweedFS."""

from __future__ import annotations

import pytest
from butler_helpers import ButlerEnv, caching_available

from s3qbb.testing.servers import S3TestEndpoint


@pytest.fixture
def env(s3_endpoint: S3TestEndpoint) -> ButlerEnv:
    """A repository (cache tier off) on each S3 server in turn, in a fresh bucket."""
    return ButlerEnv(s3_endpoint)


@pytest.fixture
def moto_env(moto_endpoint: S3TestEndpoint) -> ButlerEnv:
    """A repository (cache tier off) on the moto server only, for checks that need no real server."""
    return ButlerEnv(moto_endpoint)


@pytest.fixture
def seaweedfs_env(seaweedfs_endpoint: S3TestEndpoint) -> ButlerEnv:
    """A repository (cache tier off) on SeaweedFS only (credentials and identities are enforced)."""
    return ButlerEnv(seaweedfs_endpoint)


@pytest.fixture(params=[False, True], ids=["nocache", "cache"])
def cache_env(request: pytest.FixtureRequest, s3_endpoint: S3TestEndpoint) -> ButlerEnv:
    """A repository on each S3 server, with the cache tier off and then on (the default config)."""
    if request.param and not caching_available():
        pytest.skip("s3qbb.datastores.caching is not available yet")
    return ButlerEnv(s3_endpoint, cache=bool(request.param))
