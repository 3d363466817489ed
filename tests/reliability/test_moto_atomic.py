"""The moto test server's conditional writes are atomic; moto's own are not.

A slow existence check (a thread switch between moto's check and its store,
made long) lets several racing create-only PUTs of one key succeed on moto's
own handler; with `s3qbb.testing._moto.make_conditional_writes_atomic` (what
`MotoServer` runs) exactly one does, and the others get 412.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from moto.s3.models import S3Backend
from moto.s3.responses import S3Response
from reliability_helpers import race_puts

from s3qbb.testing._moto import make_conditional_writes_atomic
from s3qbb.testing.servers import S3TestEndpoint

pytestmark = pytest.mark.moto_server

RACERS = 6


def _slow_checks(monkeypatch: pytest.MonkeyPatch, prefix: str) -> list[int]:
    """Make moto's lookups of keys under ``prefix`` answer 50 ms late (a wide check-then-store window).

    Returns ``[lookups in flight, most in flight at once]``, kept up to date.
    """
    original = S3Backend.get_object
    lock = threading.Lock()
    flight = [0, 0]

    def get_object(self: S3Backend, bucket_name: str, key_name: str, *args: Any, **kwargs: Any) -> Any:
        found = original(self, bucket_name, key_name, *args, **kwargs)
        if key_name.startswith(prefix):  # answer late: the key may be stored meanwhile
            with lock:
                flight[0] += 1
                flight[1] = max(flight)
            time.sleep(0.05)
            with lock:
                flight[0] -= 1
        return found

    monkeypatch.setattr(S3Backend, "get_object", get_object)
    return flight


def _race(endpoint: S3TestEndpoint, key: str, **conditions: Any) -> list[int]:
    """Let RACERS threads put ``key`` at once with ``conditions``; return who was told "ok"."""
    wins, errors = race_puts(endpoint, key, RACERS, **conditions)
    assert set(errors) <= {"PreconditionFailed"}, errors
    return wins


def test_moto_alone_admits_several_creators(
    moto_endpoint: S3TestEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The reason for the wrapper: moto's own handler, with the check made slow, admits several.
    monkeypatch.setattr(S3Response, "_key_response", S3Response._key_response.__wrapped__)  # type: ignore[attr-defined]
    flight = _slow_checks(monkeypatch, "slow/")
    wins = _race(moto_endpoint, "slow/alone", IfNoneMatch="*")
    assert len(wins) > 1, flight


def test_server_admits_one_creator(moto_endpoint: S3TestEndpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    _slow_checks(monkeypatch, "slow/")
    wins = _race(moto_endpoint, "slow/atomic", IfNoneMatch="*")
    assert len(wins) == 1
    body = moto_endpoint.client.get_object(Bucket=moto_endpoint.bucket, Key="slow/atomic")["Body"].read()
    assert body == b"racer %d" % wins[0]


def test_server_admits_one_replacement(
    moto_endpoint: S3TestEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    # If-Match on the ETag all racers saw: one replaces it, the others find a new ETag.
    etag = moto_endpoint.client.put_object(Bucket=moto_endpoint.bucket, Key="slow/replaced", Body=b"first")[
        "ETag"
    ]
    _slow_checks(monkeypatch, "slow/")
    assert len(_race(moto_endpoint, "slow/replaced", IfMatch=etag)) == 1


def test_unconditional_requests_are_not_serialised(
    moto_endpoint: S3TestEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Plain PUTs keep moto's concurrency: their lookups overlap rather than queue.
    flight = _slow_checks(monkeypatch, "slow/")
    assert len(_race(moto_endpoint, "slow/plain")) == RACERS
    assert flight[1] > 1


def test_conditional_requests_are_serialised(
    moto_endpoint: S3TestEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    flight = _slow_checks(monkeypatch, "slow/")
    _race(moto_endpoint, "slow/serialised", IfNoneMatch="*")
    assert flight[1] == 1


def test_wrapping_is_idempotent() -> None:
    make_conditional_writes_atomic()
    wrapped = S3Response._key_response
    make_conditional_writes_atomic()
    assert S3Response._key_response is wrapped
    assert not hasattr(wrapped.__wrapped__, "__wrapped__")  # type: ignore[attr-defined]
