"""FaultInjector and RequestCounter against the session moto server."""

from __future__ import annotations

import botocore.exceptions
import pytest

from s3qbb.config import RetryConfig
from s3qbb.errors import PreconditionFailedError, TransientStorageError
from s3qbb.s3 import is_transient, make_client, make_retry_policy, translate_client_error
from s3qbb.testing.faults import FAULT_KINDS, FaultInjector, RequestCounter
from s3qbb.testing.servers import S3TestEndpoint

pytestmark = pytest.mark.moto_server


@pytest.fixture
def client(moto_endpoint: S3TestEndpoint):
    return make_client(moto_endpoint.config)


@pytest.fixture
def policy(fake_clock):
    return make_retry_policy(RetryConfig(max_attempts=4), sleep=fake_clock.sleep, clock=fake_clock)


def test_scripted_slowdown_then_success(moto_endpoint: S3TestEndpoint, client, policy, fake_clock) -> None:
    bucket = moto_endpoint.bucket
    with FaultInjector(client, {"PutObject": ["slowdown", "ok"]}) as faults:
        policy.call(client.put_object, Bucket=bucket, Key="a", Body=b"data", description="PutObject s3://b/a")
        assert faults.requests == {"PutObject": 2}
        assert faults.injected == {"slowdown": 1}
        assert faults.injected_by_operation == {"PutObject": 1}
        assert faults.pending("PutObject") == 0
    assert len(fake_clock.sleeps) == 1
    assert policy.stats.errors == {"SlowDown": 1}
    assert moto_endpoint.client.get_object(Bucket=bucket, Key="a")["Body"].read() == b"data"


@pytest.mark.parametrize(
    ("kind", "code", "status"),
    [
        ("slowdown", "SlowDown", 503),
        ("internal", "InternalError", 500),
        ("throttle429", "TooManyRequests", 429),
    ],
)
def test_error_responses_are_parsed_by_botocore(moto_endpoint, client, kind, code, status) -> None:
    with FaultInjector(client, {"HeadBucket": [kind], "ListObjectsV2": [kind]}) as faults:
        with pytest.raises(botocore.exceptions.ClientError) as info:
            client.list_objects_v2(Bucket=moto_endpoint.bucket)
        assert info.value.response["Error"]["Code"] == code
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
        assert is_transient(info.value)
        # HEAD responses have no body: botocore reports the status.
        with pytest.raises(botocore.exceptions.ClientError) as head:
            client.head_bucket(Bucket=moto_endpoint.bucket)
        assert head.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
        assert is_transient(head.value)
        # botocore itself did not retry: one request each.
        assert faults.requests == {"ListObjectsV2": 1, "HeadBucket": 1}


@pytest.mark.parametrize(
    ("kind", "error"),
    [("reset", botocore.exceptions.ConnectionClosedError), ("timeout", botocore.exceptions.ReadTimeoutError)],
)
def test_network_faults_raise_and_are_retried(moto_endpoint, client, policy, kind, error) -> None:
    bucket = moto_endpoint.bucket
    moto_endpoint.client.put_object(Bucket=bucket, Key="k", Body=b"payload")
    with FaultInjector(client, {"GetObject": [kind]}) as faults:
        with pytest.raises(error):
            client.get_object(Bucket=bucket, Key="k")
        faults.script("GetObject", kind, kind)

        def get() -> bytes:
            body: bytes = client.get_object(Bucket=bucket, Key="k")["Body"].read()
            return body

        assert policy.call(get, description="GetObject s3://b/k") == b"payload"
        assert faults.requests == {"GetObject": 4}
        assert faults.injected == {kind: 3}


def test_retries_exhausted(moto_endpoint, client, policy) -> None:
    with FaultInjector(client, {"PutObject": ["internal"] * 10}) as faults:
        with pytest.raises(TransientStorageError, match="PutObject s3://x/k failed after 4 attempts") as info:
            policy.call(
                client.put_object,
                Bucket=moto_endpoint.bucket,
                Key="k",
                Body=b"",
                description="PutObject s3://x/k",
            )
        assert isinstance(info.value.__cause__, botocore.exceptions.ClientError)
        assert faults.requests["PutObject"] == 4
    assert policy.stats.give_ups == 1


def test_lost_response_reaches_the_server(moto_endpoint, client, policy) -> None:
    bucket = moto_endpoint.bucket
    with FaultInjector(client, {"PutObject": ["lost_response"]}) as faults:
        with pytest.raises(botocore.exceptions.ClientError) as info:
            policy.call(
                client.put_object,
                Bucket=bucket,
                Key="once",
                Body=b"first write",
                IfNoneMatch="*",
                description="PutObject s3://b/once",
            )
        assert faults.requests == {"PutObject": 2}
    # The first attempt was applied although its response was lost; the retry met it.
    err = translate_client_error(info.value, operation="PutObject", bucket=bucket, key="once")
    assert isinstance(err, PreconditionFailedError)
    assert moto_endpoint.client.get_object(Bucket=bucket, Key="once")["Body"].read() == b"first write"


def test_random_faults_are_seeded_and_filtered(moto_endpoint, client) -> None:
    def pattern(seed: int) -> list[bool]:
        outcome = []
        with FaultInjector(
            client, rate=0.5, kinds=["internal"], operations=["HeadBucket"], seed=seed
        ) as faults:
            for _ in range(20):
                try:
                    client.head_bucket(Bucket=moto_endpoint.bucket)
                    outcome.append(True)
                except botocore.exceptions.ClientError:
                    outcome.append(False)
            client.list_objects_v2(Bucket=moto_endpoint.bucket)  # not in `operations`: never faulted
            assert faults.injected["internal"] == outcome.count(False)
            assert faults.requests == {"HeadBucket": 20, "ListObjectsV2": 1}
        return outcome

    first = pattern(7)
    assert first == pattern(7)
    assert 0 < first.count(False) < 20


def test_rate_one_faults_everything(moto_endpoint, client) -> None:
    with FaultInjector(client, rate=1.0, kinds=["reset"]) as faults:
        for _ in range(3):
            with pytest.raises(botocore.exceptions.ConnectionClosedError):
                client.list_objects_v2(Bucket=moto_endpoint.bucket)
        assert faults.injected == {"reset": 3}


def test_detach_stops_faults(moto_endpoint, client) -> None:
    faults = FaultInjector(client, rate=1.0, kinds=["slowdown"])
    assert faults.attached
    faults.detach()
    faults.detach()  # idempotent
    assert not faults.attached
    client.list_objects_v2(Bucket=moto_endpoint.bucket)
    assert faults.requests == {}


def test_invalid_arguments(client) -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        FaultInjector(client, {"PutObject": ["explode"]})
    with pytest.raises(ValueError, match="rate"):
        FaultInjector(client, rate=2.0)
    assert "lost_response" in FAULT_KINDS


def test_request_counter(moto_endpoint, client) -> None:
    bucket = moto_endpoint.bucket
    with RequestCounter(client) as counter, FaultInjector(client, {"GetObject": ["slowdown"]}):
        client.put_object(Bucket=bucket, Key="k", Body=b"x")
        client.head_object(Bucket=bucket, Key="k")
        with pytest.raises(botocore.exceptions.ClientError):
            client.get_object(Bucket=bucket, Key="k")
        client.get_object(Bucket=bucket, Key="k")["Body"].read()
        assert counter.requests == {"PutObject": 1, "HeadObject": 1, "GetObject": 2}
        assert counter.total == 4
        counter.reset()
        assert counter.total == 0
    client.list_objects_v2(Bucket=bucket)
    assert counter.total == 0  # detached
