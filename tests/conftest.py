"""Shared test setup: the fixtures of s3qbb.testing and the PostgreSQL of the ``postgres`` tests.

The fixtures in ``s3qbb.testing.fixtures`` load through s3qbb's ``pytest11`` entry point (named
``s3qbb``) once s3qbb is installed; they are registered here only when that entry point is
missing (the source tree run with an older installation), never twice.
"""

from __future__ import annotations

import os

import pg_cluster
import pytest


def pytest_configure(config: pytest.Config) -> None:
    import s3qbb.testing.fixtures as fixtures

    if not config.pluginmanager.is_registered(fixtures) and not config.pluginmanager.is_blocked("s3qbb"):
        config.pluginmanager.register(fixtures, "s3qbb")
    # The controller (or a run without xdist) owns the folder of a throwaway PostgreSQL cluster.
    if not hasattr(config, "workerinput") and not os.environ.get(pg_cluster.DIR_ENV):
        config.stash[_PG_DIR] = pg_cluster.prepare()


def pytest_unconfigure(config: pytest.Config) -> None:
    pg_cluster.cleanup(config.stash.get(_PG_DIR, None))


_PG_DIR = pytest.StashKey[str]()
