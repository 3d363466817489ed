"""S3Datastore bulk calls: records in bulk, partial failures, requests."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from s3qbb.config import RetryConfig, S3EndpointConfig
from s3qbb.datastores.s3 import S3Datastore
from s3qbb.errors import (
    DatasetExistsError,
    DatasetNotFoundError,
    DatasetTypeError,
    RecordsStoreError,
    StorageClassError,
    TransientStorageError,
)
from s3qbb.records.store import SqliteRecordsStore
from s3qbb.s3 import make_retry_policy
from s3qbb.s3.client import new_client
from s3qbb.testing.data import RefMaker, example_storage_classes
from s3qbb.testing.faults import FaultInjector, RequestCounter
from s3qbb.testing.servers import S3TestEndpoint


class CountingRecords(SqliteRecordsStore):
    """A records store counting the calls of its public methods."""

    def __init__(self) -> None:
        super().__init__(datastore_name="s3")
        self.calls: Counter[str] = Counter()

    def __getattribute__(self, name: str) -> Any:
        if not name.startswith("_") and name not in ("calls", "in_memory"):
            object.__getattribute__(self, "calls")[name] += 1
        return object.__getattribute__(self, name)


def make_store(
    endpoint: S3TestEndpoint, config: S3EndpointConfig | None = None, **kwargs: Any
) -> S3Datastore:
    config = config or endpoint.config
    return S3Datastore(
        f"s3://{endpoint.bucket}/root",
        name="s3",
        config=config,
        client=new_client(config),
        retry=make_retry_policy(config, sleep=lambda s: None),
        storageClassFactory=example_storage_classes(),
        **kwargs,
    )


@pytest.fixture
def refs() -> RefMaker:
    return RefMaker()


@pytest.fixture
def store(moto_endpoint: S3TestEndpoint) -> Iterator[S3Datastore]:
    s = make_store(moto_endpoint, records=CountingRecords())
    yield s
    s.close()


def calls(store: S3Datastore) -> Counter[str]:
    records = store.records
    assert isinstance(records, CountingRecords)
    return records.calls


def test_records_are_read_and_written_once_per_call(store: S3Datastore, refs: RefMaker) -> None:
    items = [({"i": i}, refs.make()) for i in range(20)]
    with RequestCounter(store.bucket.client) as requests:
        calls(store).clear()
        store.put_many(items)
        assert +calls(store) == {"get_many": 1, "insert_new": 1}
        assert dict(requests.requests) == {"PutObject": 20}
        requests.reset()
        calls(store).clear()
        got = store.get_many([ref for _, ref in items])
        assert got == {ref: obj for obj, ref in items} and list(got) == [ref for _, ref in items]
        assert +calls(store) == {"get_many": 1}
        assert dict(requests.requests) == {"GetObject": 20}
        requests.reset()
        encoded = store.get_many_encoded([ref for _, ref in items[:3]])
        assert {ref: obj for ref, (obj, _) in encoded.items()} == {ref: obj for obj, ref in items[:3]}
        assert all(enc.decode(enc.data) == obj for obj, enc in encoded.values())
        assert dict(requests.requests) == {"GetObject": 3}


def test_partial_put_failure_records_exactly_the_datasets_written(
    moto_endpoint: S3TestEndpoint, refs: RefMaker
) -> None:
    config = moto_endpoint.config.model_copy(update={"retry": RetryConfig(max_attempts=1)})
    store = make_store(moto_endpoint, config, max_workers=1)  # one thread: the faults hit known items
    good = [refs.make() for _ in range(4)]
    foreign, failing, wrong_type = refs.make(), refs.make(), refs.make()
    # Another writer's object where `foreign` goes: its create-only PUT is refused.
    moto_endpoint.client.put_object(
        Bucket=moto_endpoint.bucket, Key=store.key(store.layout.relpath(foreign)), Body=b"theirs"
    )
    items = [
        ({"g": 0}, good[0]),
        ({"f": 1}, foreign),
        ({"g": 1}, good[1]),
        ({"x": 1}, failing),  # the 3rd PUT fails (one attempt allowed)
        ("not a dict", wrong_type),  # refused before any request
        ({"g": 2}, good[2]),
        ({"g": 3}, good[3]),
    ]
    script = {"PutObject": ["ok", "ok", "ok", "internal"]}
    with FaultInjector(store.bucket.client, script) as faults, pytest.raises(DatasetExistsError) as info:
        store.put_many(items)
    assert "put_many: 3 items failed" in "".join(info.value.__notes__)
    assert faults.requests["PutObject"] == 6  # not for the wrong type
    assert store.records.dataset_ids() == {ref.id for ref in good}
    assert store.get_many(good) == {ref: {"g": i} for i, ref in enumerate(good)}
    theirs = moto_endpoint.client.get_object(
        Bucket=moto_endpoint.bucket, Key=store.key(store.layout.relpath(foreign))
    )
    assert theirs["Body"].read() == b"theirs"
    store.put_many([({"x": 1}, failing)])  # the failed item can be put again
    assert store.get(failing) == {"x": 1}
    with pytest.raises(StorageClassError):
        store.put_many([("not a dict", wrong_type)])
    with (
        pytest.raises(TransientStorageError),
        FaultInjector(store.bucket.client, {"PutObject": ["internal"]}),
    ):
        store.put_many([({"y": 1}, refs.make())])
    store.close()


def test_put_many_of_stored_and_repeated_refs(store: S3Datastore, refs: RefMaker) -> None:
    stored, twice, fresh = refs.make(), refs.make(), refs.make()
    store.put({"old": 1}, stored)
    with RequestCounter(store.bucket.client) as requests, pytest.raises(DatasetExistsError) as info:
        store.put_many([({"new": 1}, stored), ({"a": 1}, twice), ({"a": 2}, twice), ({"f": 1}, fresh)])
    assert "already stored" in str(info.value)
    assert dict(requests.requests) == {"PutObject": 2}  # none for the stored one, one for the repeated one
    assert store.get_many([stored, twice, fresh]) == {stored: {"old": 1}, twice: {"a": 1}, fresh: {"f": 1}}
    with pytest.raises(DatasetExistsError, match="given twice"):
        store.put_many([({"b": 1}, (other := refs.make())), ({"b": 2}, other)])
    assert store.get(other) == {"b": 1}


def test_dataset_recorded_meanwhile_fails_alone(
    store: S3Datastore, refs: RefMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dataset recorded by another writer during the PUTs is not recorded again; the others are."""
    raced, others = refs.make(), [refs.make() for _ in range(3)]
    write = store._write_object

    def racing_write(obj: Any, ref: Any, sc: Any) -> Any:
        result = write(obj, ref, sc)
        if ref == raced:  # another writer records it first
            store.records.insert([store.predicted_record(ref)])
        return result

    monkeypatch.setattr(store, "_write_object", racing_write)
    with pytest.raises(DatasetExistsError, match="recorded concurrently"):
        store.put_many([({"r": 1}, raced)] + [({"o": i}, ref) for i, ref in enumerate(others)])
    assert store.records.dataset_ids() == {ref.id for ref in [raced, *others]}
    assert store.records.get(raced.id) == [store.predicted_record(raced)]  # the other writer's record
    assert store.get_many(others) == {ref: {"o": i} for i, ref in enumerate(others)}


def test_put_many_when_the_records_fail(
    store: S3Datastore, refs: RefMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = [({"i": i}, refs.make()) for i in range(3)]

    def broken(infos: Any) -> set[Any]:
        raise RecordsStoreError("disk full")

    monkeypatch.setattr(store.records, "insert_new", broken)
    with pytest.raises(RecordsStoreError) as info:
        store.put_many(items)
    assert "3 objects were written but none was recorded" in "".join(info.value.__notes__)


def test_get_many_partial_failure(store: S3Datastore, refs: RefMaker, moto_endpoint: S3TestEndpoint) -> None:
    stored = [refs.make() for _ in range(3)]
    missing = refs.make()
    store.put_many([({"i": i}, ref) for i, ref in enumerate(stored)])
    with RequestCounter(store.bucket.client) as requests, pytest.raises(DatasetNotFoundError) as info:
        store.get_many([stored[0], missing, *stored[1:]])
    assert str(missing.id) in str(info.value)
    assert dict(requests.requests) == {"GetObject": 3}  # the others were read; none for the missing one
    key = store.key(store.records.get(stored[1].id)[0].path)
    moto_endpoint.client.delete_object(Bucket=moto_endpoint.bucket, Key=key)  # recorded, but gone
    with pytest.raises(DatasetNotFoundError) as info:
        store.get_many(stored)
    assert str(stored[1].id) in str(info.value)
    component = refs.make("StructuredComposite")
    store.put({"summary": {"n": 1}, "output": {}, "data": [1]}, component)
    summary = component.makeComponentRef("summary")
    assert store.get_many([summary, component])[summary] == {"n": 1}
    with pytest.raises(DatasetTypeError):
        store.get_many_encoded([summary, component])
    assert store.get_many([]) == {} and store.get_many_encoded([]) == {}
    store.put_many([])


def test_get_many_in_trust_mode_reads_unrecorded_datasets(
    moto_endpoint: S3TestEndpoint, refs: RefMaker
) -> None:
    writer = make_store(moto_endpoint)
    items = [({"i": i}, refs.make()) for i in range(3)]
    writer.put_many(items)
    reader = make_store(moto_endpoint, trust_mode=True)
    assert reader.get_many([ref for _, ref in items]) == {ref: obj for obj, ref in items}
    writer.close()
    reader.close()
