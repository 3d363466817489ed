"""A put that gave up after its object was stored can be repeated: the repeat records the object it finds."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from s3qbb.config import S3EndpointConfig
from s3qbb.datastores.s3 import S3Datastore
from s3qbb.errors import DatasetExistsError, TransientStorageError
from s3qbb.testing.data import RefMaker
from s3qbb.testing.proxy import FaultProxy
from s3qbb.testing.servers import S3TestEndpoint
from s3qbb.testing.transports import with_transport

MIB = 1024 * 1024
ATTEMPTS = 3


@pytest.fixture
def endpoint(s3_endpoint: S3TestEndpoint, s3_transport: str) -> S3TestEndpoint:
    return with_transport(s3_endpoint, s3_transport)


@pytest.fixture
def proxy(endpoint: S3TestEndpoint) -> Iterator[FaultProxy]:
    with FaultProxy(endpoint.endpoint_url) as p:
        yield p


@pytest.fixture
def store(proxy: FaultProxy, endpoint: S3TestEndpoint) -> Iterator[S3Datastore]:
    config = S3EndpointConfig.model_validate(
        {
            **proxy.endpoint_config(endpoint.config).model_dump(),
            "multipart_threshold": 5 * MIB,
            "multipart_chunksize": 5 * MIB,
            "retry": {"max_attempts": ATTEMPTS, "initial_backoff": 0.001, "max_backoff": 0.01},
        }
    )
    s = S3Datastore(f"s3://{endpoint.bucket}/repo", config=config)
    yield s
    s.close()


@pytest.mark.parametrize("size", [1000, 6 * MIB], ids=["small", "multipart"])
def test_a_put_that_gave_up_after_storing_its_object_can_be_repeated(
    store: S3Datastore, proxy: FaultProxy, size: int
) -> None:
    ref = RefMaker().make("Bytes")
    body = os.urandom(size)
    if size < 5 * MIB:
        proxy.script("PutObject", "reset_after")  # stored, its response lost: the put must look
    proxy.script("HeadObject", *["internal"] * ATTEMPTS)  # and every look fails: it gives up
    with pytest.raises(TransientStorageError):
        store.put(body, ref)
    assert not store.stored(ref)  # nothing recorded

    store.put(body, ref)  # the faults are over: the same put again

    assert store.stored(ref)
    assert store.get(ref) == body  # the record is the stored object's (checksum verified)


def test_the_same_put_with_other_bytes_is_refused_and_says_whose_object_it_is(
    store: S3Datastore, proxy: FaultProxy
) -> None:
    ref = RefMaker().make("Bytes")
    body = os.urandom(6 * MIB)
    proxy.script("HeadObject", *["internal"] * ATTEMPTS)
    with pytest.raises(TransientStorageError):
        store.put(body, ref)

    with pytest.raises(DatasetExistsError, match="this same attempt"):
        store.put(os.urandom(6 * MIB), ref)  # other bytes under the same token: not this write

    assert not store.stored(ref)
