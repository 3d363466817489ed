"""A multipart upload's placeholder is not a dataset (moto server and SeaweedFS).

A writer of a large object first claims its key with a small placeholder
(metadata ``s3qbb-pending: 1``). A reader in trust mode (no record) that finds
it must see no dataset: the upload is still running, or its writer died.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from s3qbb.config import S3EndpointConfig
from s3qbb.core.attempt import WriteToken
from s3qbb.datastores.s3 import S3Datastore
from s3qbb.errors import DatasetNotFoundError
from s3qbb.s3 import make_retry_policy
from s3qbb.s3.client import new_client
from s3qbb.s3.multipart import PLACEHOLDER_SIZE
from s3qbb.s3.objects import WRITE_PENDING, WRITE_TOKEN
from s3qbb.s3.ownership import HeadResult
from s3qbb.testing.data import RefMaker, example_storage_classes
from s3qbb.testing.servers import S3TestEndpoint
from s3qbb.testing.transports import count_requests, with_transport

MIB = 1024**2


def _store(endpoint: S3TestEndpoint, config: S3EndpointConfig | None = None, **kwargs: Any) -> S3Datastore:
    config = config or endpoint.config
    return S3Datastore(
        f"s3://{endpoint.bucket}/placeholders",
        name="s3",
        config=config,
        client=new_client(config),
        retry=make_retry_policy(config, sleep=lambda s: None),
        storageClassFactory=example_storage_classes(),
        **kwargs,
    )


def _key(store: S3Datastore, ref: Any) -> str:
    return str(store.getURI(ref, predict=True)).removesuffix("#predicted").split("/", 3)[3]


def test_trust_mode_takes_no_placeholder_for_a_dataset(s3_endpoint: S3TestEndpoint) -> None:
    store = _store(s3_endpoint, trust_mode=True)
    ref = RefMaker().make("Bytes")
    key = _key(store, ref)
    token = WriteToken.new()
    s3_endpoint.client.put_object(
        Bucket=s3_endpoint.bucket,
        Key=key,
        Body=str(token).encode(),
        Metadata={WRITE_TOKEN: str(token), WRITE_PENDING: "1"},
    )
    assert store.exists(ref) is False
    with pytest.raises(DatasetNotFoundError, match="placeholder"):
        store.get(ref)
    store.close()


def test_failed_upload_leaves_a_later_attempts_object_alone(
    s3_endpoint: S3TestEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An earlier attempt HEADs its placeholder, a later one replaces it, then the earlier one cleans up."""
    config = s3_endpoint.config.model_copy(
        update={"multipart_threshold": 5 * MIB, "multipart_chunksize": 5 * MIB}
    )
    ref = RefMaker().make("Bytes")
    earlier = _store(s3_endpoint, config=config)
    later = _store(s3_endpoint, config=config)
    later.write_token = WriteToken.new(earlier.write_token.quantum_id)
    key = _key(earlier, ref)

    def broken_part(**kwargs: Any) -> Any:
        raise RuntimeError("the earlier attempt's disk went away")

    monkeypatch.setattr(earlier.bucket.client, "upload_part", broken_part)
    real_head = earlier.bucket._head_readable

    def head_then_race(k: str) -> Any:
        head = real_head(k)
        if isinstance(head, HeadResult) and head.pending and k == key:
            later.put(b"later attempt", ref)  # replaces the placeholder it finds (If-Match on its ETag)
        return head

    monkeypatch.setattr(earlier.bucket, "_head_readable", head_then_race)
    with pytest.raises(RuntimeError, match="disk went away"):
        earlier.put(b"\x01" * (6 * MIB), ref)
    response = s3_endpoint.client.get_object(Bucket=s3_endpoint.bucket, Key=key)
    assert response["Body"].read() == b"later attempt"
    assert response["Metadata"][WRITE_TOKEN] == str(later.write_token)
    assert later.get(ref) == b"later attempt"
    earlier.close()
    later.close()


@pytest.mark.parametrize("server", ["moto", "seaweedfs", "localstack"])
def test_failed_upload_removes_its_placeholder(
    server: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LocalStack has no conditional DELETE (501): the placeholder is deleted without condition there."""
    endpoint: S3TestEndpoint = request.getfixturevalue(f"{server}_endpoint")
    config = endpoint.config.model_copy(
        update={"multipart_threshold": 5 * MIB, "multipart_chunksize": 5 * MIB}
    )
    store = _store(endpoint, config=config)
    ref = RefMaker().make("Bytes")

    def broken_part(**kwargs: Any) -> Any:
        raise RuntimeError("the disk went away")

    monkeypatch.setattr(store.bucket.client, "upload_part", broken_part)
    with pytest.raises(RuntimeError, match="disk went away"):
        store.put(b"\x01" * (6 * MIB), ref)
    listed = endpoint.client.list_objects_v2(Bucket=endpoint.bucket, Prefix="placeholders/")
    assert listed.get("KeyCount", 0) == 0
    assert store.stats.snapshot()["requests"]["DeleteObject"] >= 1
    store.close()


# ------------------------------------------------------------------ stored_many


def _put_placeholder(endpoint: S3TestEndpoint, key: str) -> None:
    """Leave at ``key`` what a multipart writer killed mid-upload leaves: its placeholder."""
    token = WriteToken.new()
    body = str(token).encode()
    assert len(body) == PLACEHOLDER_SIZE
    endpoint.client.put_object(
        Bucket=endpoint.bucket, Key=key, Body=body, Metadata={WRITE_TOKEN: str(token), WRITE_PENDING: "1"}
    )


def test_placeholder_size_is_the_same_for_every_token() -> None:
    tokens = [WriteToken.new() for _ in range(100)]
    tokens += [WriteToken(uuid.UUID(int=0), "0" * 28), WriteToken(uuid.UUID(int=2**128 - 1), "f" * 28)]
    assert {len(str(t).encode()) for t in tokens} == {PLACEHOLDER_SIZE}
    assert PLACEHOLDER_SIZE == 61  # the figure of docs/datastores.rst and docs/security.rst


@pytest.fixture
def stores(s3_endpoint: S3TestEndpoint, s3_transport: str) -> Iterator[tuple[S3Datastore, S3Datastore]]:
    """A writer and a reader in trust mode that has none of the writer's records."""
    config = with_transport(s3_endpoint, s3_transport).config

    def store(**kwargs: Any) -> S3Datastore:
        return S3Datastore(
            f"s3://{s3_endpoint.bucket}/placeholders",
            name="s3",
            config=config,
            retry=make_retry_policy(config, sleep=lambda s: None),
            storageClassFactory=example_storage_classes(),
            **kwargs,
        )

    writer, reader = store(), store(trust_mode=True)
    assert reader.bucket.transport.name == writer.bucket.transport.name == s3_transport
    yield writer, reader
    writer.close()
    reader.close()


def test_stored_many_lists_no_placeholder_as_a_dataset(
    s3_endpoint: S3TestEndpoint, stores: tuple[S3Datastore, S3Datastore]
) -> None:
    """LIST path: the placeholder's size is a placeholder's, so one HEAD confirms it; it is no dataset."""
    writer, reader = stores
    refs = RefMaker()
    stored = [refs.make("Bytes") for _ in range(3)]
    writer.put_many([(b"data", r) for r in stored])
    pending = refs.make("Bytes")
    _put_placeholder(s3_endpoint, _key(reader, pending))
    with count_requests(reader) as c:
        result = reader.stored_many([*stored, pending])
    assert result == dict.fromkeys(stored, True) | {pending: False}
    assert dict(c.requests) == {"ListObjectsV2": 1, "HeadObject": 1}
    with pytest.raises(DatasetNotFoundError, match="placeholder"):
        reader.get(pending)


def test_stored_many_heads_no_placeholder_as_a_dataset(
    s3_endpoint: S3TestEndpoint, stores: tuple[S3Datastore, S3Datastore]
) -> None:
    """HEAD path (one key): the HEAD shows the placeholder's metadata; no request more."""
    _, reader = stores
    pending = RefMaker().make("Bytes")
    _put_placeholder(s3_endpoint, _key(reader, pending))
    with count_requests(reader) as c:
        assert reader.stored_many([pending]) == {pending: False}
    assert dict(c.requests) == {"HeadObject": 1}


def test_stored_many_dataset_of_a_placeholders_size(
    s3_endpoint: S3TestEndpoint, stores: tuple[S3Datastore, S3Datastore]
) -> None:
    """A dataset of exactly PLACEHOLDER_SIZE bytes is stored: one HEAD tells, in trust mode only."""
    writer, reader = stores
    refs = RefMaker()
    odd, other = refs.make("Bytes"), refs.make("Bytes")
    writer.put_many([(b"x" * PLACEHOLDER_SIZE, odd), (b"other", other)])
    head = s3_endpoint.client.head_object(Bucket=s3_endpoint.bucket, Key=_key(reader, odd))
    assert head["ContentLength"] == PLACEHOLDER_SIZE
    with count_requests(reader) as c:
        assert reader.stored_many([odd, other]) == {odd: True, other: True}
    assert dict(c.requests) == {"ListObjectsV2": 1, "HeadObject": 1}
    with count_requests(writer) as c:  # with records: the key holds the writer's finished object
        assert writer.stored_many([odd, other]) == {odd: True, other: True}
    assert dict(c.requests) == {"ListObjectsV2": 1}


def test_stored_many_in_trust_mode_lists_once(stores: tuple[S3Datastore, S3Datastore]) -> None:
    """The ordinary case: 100 datasets of other sizes and 10 missing cost one LIST, as before."""
    writer, reader = stores
    refs = RefMaker()
    made = [refs.make("Bytes") for _ in range(110)]
    writer.put_many([(b"data", r) for r in made[:100]])
    with count_requests(reader) as c:
        result = reader.stored_many(made)
    assert result == dict.fromkeys(made[:100], True) | dict.fromkeys(made[100:], False)
    assert dict(c.requests) == {"ListObjectsV2": 1}
