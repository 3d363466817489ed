"""Tests of code that uses S3, written with the fixtures s3qbb ships (docs/testing.rst).

A project loads the fixtures in its top-level ``conftest.py``::

    pytest_plugins = ["s3qbb.testing.fixtures"]

``tests/docs/test_docs_examples.py`` runs these tests.
"""

from __future__ import annotations

import pytest

from s3qbb.datastores.s3 import S3Datastore
from s3qbb.errors import DatasetExistsError
from s3qbb.s3 import make_retry_policy, new_client
from s3qbb.testing.backdoors import S3Backdoor
from s3qbb.testing.data import RefMaker
from s3qbb.testing.faults import FaultInjector, RequestCounter
from s3qbb.testing.servers import S3TestEndpoint

__all__ = ["test_put_is_one_create_only_request", "test_put_survives_throttling"]


def test_put_is_one_create_only_request(moto_endpoint: S3TestEndpoint) -> None:
    """A fresh, empty bucket on the session moto server; AWS_* variables hidden."""
    store = S3Datastore(f"s3://{moto_endpoint.bucket}/repo", config=moto_endpoint.config)
    ref = RefMaker().make("StructuredDataDict")
    with RequestCounter(store.bucket.client) as counter:
        store.put({"a": 1}, ref)
    assert counter.requests == {"PutObject": 1}
    # Check storage through the back door, never through the datastore under test.
    backdoor = S3Backdoor(moto_endpoint.client, moto_endpoint.bucket, "repo")
    assert backdoor.read_artifact(ref) == b'{"a":1}'
    with pytest.raises(DatasetExistsError):
        store.put({"a": 2}, ref)
    store.close()


def test_put_survives_throttling(moto_endpoint: S3TestEndpoint) -> None:
    """Inject faults on a client of our own; the retry policy sleeps through a list, not the clock."""
    client = new_client(moto_endpoint.config)  # not the shared cached client
    slept: list[float] = []
    retry = make_retry_policy(moto_endpoint.config, sleep=slept.append)
    store = S3Datastore(
        f"s3://{moto_endpoint.bucket}/repo", config=moto_endpoint.config, client=client, retry=retry
    )
    ref = RefMaker().make("StructuredDataDict")
    with FaultInjector(client, {"PutObject": ["slowdown", "reset", "ok"]}) as faults:
        store.put({"a": 1}, ref)
    assert faults.injected == {"slowdown": 1, "reset": 1}
    assert len(slept) == 2 and store.stats.snapshot()["retries"] == 2
    assert store.get(ref) == {"a": 1}
    store.close()
    client.close()
