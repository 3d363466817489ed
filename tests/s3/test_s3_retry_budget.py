"""The retry budget of batch jobs: unreachable services retried for a time, hung endpoints bounded in time.

Unit tests run on a fake clock; two tests use real sockets with small
timeouts: a refused port, and a listener that accepts and never answers.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import botocore.exceptions
import pytest

from s3qbb.config import RetryConfig, S3EndpointConfig
from s3qbb.errors import TransientStorageError
from s3qbb.s3 import make_retry_policy
from s3qbb.s3.client import new_client
from s3qbb.testing.servers import free_ports

REFUSED = botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:1")


class Failing:
    """Raises ``error`` on every call; each call lasts ``duration`` seconds on the fake clock."""

    def __init__(self, error: BaseException, clock: Any, duration: float = 0.0) -> None:
        self.error, self.clock, self.duration, self.calls = error, clock, duration, 0

    def __call__(self) -> None:
        self.calls += 1
        self.clock.advance(self.duration)
        raise self.error


def test_unreachable_service_is_retried_for_connect_retry_time_not_max_attempts(fake_clock: Any) -> None:
    config = RetryConfig(max_attempts=5, initial_backoff=0.05, max_backoff=2.0, connect_retry_time=30.0)
    policy = make_retry_policy(config, sleep=fake_clock.sleep, clock=fake_clock)
    fn = Failing(REFUSED, fake_clock)

    with pytest.raises(TransientStorageError) as info:
        policy.call(fn, description="HeadObject s3://b/k")

    assert fn.calls > config.max_attempts  # a 0.2 s budget of 5 attempts would have given up at once
    assert 28.0 < fake_clock.now <= 30.0  # retried for the whole time, never past it
    assert isinstance(info.value.__cause__, botocore.exceptions.EndpointConnectionError)
    assert "S3QBB_RETRY_CONNECT_TIME" in str(info.value)


def test_service_back_after_a_restart_is_reached(fake_clock: Any) -> None:
    policy = make_retry_policy(RetryConfig(max_attempts=3), sleep=fake_clock.sleep, clock=fake_clock)
    errors = iter([REFUSED] * 12)

    def call() -> str:
        for error in errors:
            raise error
        return "answered"

    assert policy.call(call, description="GetObject s3://b/k") == "answered"
    assert policy.stats.attempts == 13


def test_reset_mid_request_and_service_errors_keep_their_attempt_budget(fake_clock: Any) -> None:
    policy = make_retry_policy(RetryConfig(max_attempts=4), sleep=fake_clock.sleep, clock=fake_clock)
    fn = Failing(botocore.exceptions.ConnectionClosedError(endpoint_url="http://x"), fake_clock)
    with pytest.raises(TransientStorageError, match="after 4 attempts"):
        policy.call(fn, description="PutObject s3://b/k")
    assert fn.calls == 4


def test_connect_retry_time_0_counts_unreachable_like_other_errors(fake_clock: Any) -> None:
    config = RetryConfig(max_attempts=3, connect_retry_time=0)
    policy = make_retry_policy(config, sleep=fake_clock.sleep, clock=fake_clock)
    fn = Failing(REFUSED, fake_clock)
    with pytest.raises(TransientStorageError, match="after 3 attempts"):
        policy.call(fn, description="HeadObject s3://b/k")


def test_endpoint_that_never_answers_fails_within_max_total_time(fake_clock: Any) -> None:
    """Each attempt lasts the whole read timeout: no retry starts that could not end in time."""
    config = RetryConfig(max_attempts=10, max_total_time=60.0)
    policy = make_retry_policy(config, sleep=fake_clock.sleep, clock=fake_clock)
    timeout = botocore.exceptions.ReadTimeoutError(endpoint_url="http://x")
    fn = Failing(timeout, fake_clock, duration=25.0)  # read_timeout=25

    with pytest.raises(TransientStorageError):
        policy.call(fn, description="GetObject s3://b/k")

    assert fn.calls == 2  # a third attempt would have ended past 60 s
    assert fake_clock.now <= config.max_total_time


def test_aws_max_attempts_maps_to_max_attempts() -> None:
    assert RetryConfig.from_env({"AWS_MAX_ATTEMPTS": "9"}).max_attempts == 9
    assert RetryConfig.from_env({"AWS_MAX_ATTEMPTS": "9", "S3QBB_RETRY_MAX_ATTEMPTS": "2"}).max_attempts == 2
    assert S3EndpointConfig.from_env({"AWS_MAX_ATTEMPTS": "7"}).retry.max_attempts == 7
    assert RetryConfig.from_env({"S3QBB_RETRY_CONNECT_TIME": "12.5"}).connect_retry_time == 12.5


# ---------------------------------------------------------------- real sockets


def _config(url: str, **retry: float) -> S3EndpointConfig:
    return S3EndpointConfig(
        endpoint_url=url,
        region="us-east-1",
        access_key_id="test",
        secret_access_key="test",
        addressing_style="path",
        connect_timeout=0.5,
        read_timeout=0.3,
        retry=RetryConfig(initial_backoff=0.01, max_backoff=0.05, **retry),
    )


def test_refused_port_is_retried_for_connect_retry_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "10")  # botocore's own retries must stay off anyway
    monkeypatch.setenv("AWS_RETRY_MODE", "adaptive")
    (port,) = free_ports(1)
    config = _config(f"http://127.0.0.1:{port}", max_attempts=2, connect_retry_time=0.5)
    client = new_client(config)
    policy = make_retry_policy(config)
    try:
        with pytest.raises(TransientStorageError) as info:
            policy.call(client.head_bucket, Bucket="b", description="HeadBucket s3://b")
    finally:
        client.close()
    assert isinstance(info.value.__cause__, botocore.exceptions.EndpointConnectionError)
    assert policy.stats.attempts > 2  # more than max_attempts: the budget is a time


@pytest.fixture
def silent_server() -> Iterator[tuple[str, list[socket.socket]]]:
    """A listener that accepts connections, reads nothing and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            accepted.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepted
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


def test_endpoint_that_accepts_and_never_answers(silent_server: tuple[str, list[socket.socket]]) -> None:
    url, accepted = silent_server
    config = _config(url, max_attempts=50, max_total_time=1.0)
    client = new_client(config)
    policy = make_retry_policy(config)
    try:
        with pytest.raises(TransientStorageError) as info:
            policy.call(client.head_bucket, Bucket="b", description="HeadBucket s3://b")
    finally:
        client.close()
    assert isinstance(info.value.__cause__, botocore.exceptions.ReadTimeoutError)
    # Each attempt waited read_timeout on its own connection; the time budget, not max_attempts, ended it.
    assert 1 <= policy.stats.attempts <= 3  # a 4th attempt could not have ended within 1 s
    assert len(accepted) == policy.stats.attempts
