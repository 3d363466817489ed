"""What the cache tier costs: one serialisation per put, one decode per miss, copies of mutable data."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from s3qbb.core.records import SerializedStoredFileRecord
from s3qbb.core.storage_class import StorageClassFactory
from s3qbb.datastores.caching import DEFAULT_CACHE_MAX_PUT_BYTES, CachingDatastore
from s3qbb.datastores.encoding import EncodingDatastore
from s3qbb.datastores.memory import InMemoryDatastore, is_immutable
from s3qbb.datastores.s3 import S3Datastore
from s3qbb.errors import ConfigError, DatasetTypeError, FormatterError
from s3qbb.formatters.json import JsonFormatter
from s3qbb.formatters.npy import NpyFormatter
from s3qbb.repo import build_datastore, load_repo_config
from s3qbb.testing.data import RefMaker
from s3qbb.testing.faults import RequestCounter
from s3qbb.testing.servers import S3TestEndpoint
from s3qbb.testing.transports import count_requests, with_transport

np = pytest.importorskip("numpy")

FROZEN = "FrozenRecord"  # a frozen pydantic model whose fields are immutable


def storage_classes() -> StorageClassFactory:
    factory = StorageClassFactory.default()
    factory.addFromConfig(
        {FROZEN: {"pytype": "s3qbb.core.records.SerializedStoredFileRecord", "formatter": "json"}}
    )
    return factory


def frozen_record() -> SerializedStoredFileRecord:
    return SerializedStoredFileRecord(
        formatter="f", path="a/b.json", storage_class="s", component="c", checksum=None, file_size=3
    )


@pytest.fixture
def refs() -> RefMaker:
    return RefMaker(storage_classes=storage_classes())


@pytest.fixture
def backend(moto_endpoint: S3TestEndpoint) -> Iterator[S3Datastore]:
    store = S3Datastore(
        f"s3://{moto_endpoint.bucket}/costs",
        config=moto_endpoint.config,
        storageClassFactory=storage_classes(),
    )
    yield store
    store.close()


@pytest.fixture
def counter(backend: S3Datastore) -> Iterator[RequestCounter]:
    with RequestCounter(backend.bucket.client) as counting:
        yield counting


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Count the JSON and NumPy formatters' writes and reads (by ``"<formatter>.<method>"``)."""
    seen: Counter[str] = Counter()
    for cls in (JsonFormatter, NpyFormatter):
        for method in ("write", "read"):
            real = getattr(cls, method)

            def counted(self: Any, *args: Any, _real: Any = real, _key: str = f"{cls.name}.{method}") -> Any:
                seen[_key] += 1
                return _real(self, *args)

            monkeypatch.setattr(cls, method, counted)
    return seen


def test_put_serialises_once_and_keeps_the_bytes_sent(
    backend: S3Datastore, counter: RequestCounter, calls: Counter[str], refs: RefMaker
) -> None:
    cached = CachingDatastore(backend)
    ref = refs.make()
    cached.put({"a": [1, 2], "t": (3, 4)}, ref)
    assert calls == {"json.write": 1} and counter.requests == {"PutObject": 1}
    assert cached.cache_stats.entries == 1
    assert cached.cache_stats.bytes_cached == backend.stats.bytes_written  # the bytes sent, nothing more
    counter.reset()
    first, second = cached.get(ref), cached.get(ref)
    # Each JSON hit decodes the bytes (cheaper than a deep copy): what a GET returns, tuple -> list.
    assert first == second == {"a": [1, 2], "t": [3, 4]} and first is not second
    assert calls["json.read"] == 2 and calls["json.write"] == 1 and counter.total == 0


def test_miss_decodes_once(
    backend: S3Datastore, counter: RequestCounter, calls: Counter[str], refs: RefMaker
) -> None:
    cached = CachingDatastore(backend)
    doc, array = refs.make(), refs.make("NumpyArray")
    backend.put({"from": "backend"}, doc)
    backend.put(np.arange(6.0), array)
    calls.clear()
    counter.reset()
    assert cached.get(doc) == {"from": "backend"}
    assert calls == {"json.read": 1}  # the GET's decode; the cache keeps the bytes it read
    assert np.array_equal(cached.get(array), np.arange(6.0))
    assert calls["npy.read"] == 1 and counter.requests == {"GetObject": 2}
    # A NumPy hit copies the array kept from the miss: no decode.
    hit = cached.get(array)
    assert np.array_equal(hit, np.arange(6.0)) and calls["npy.read"] == 1 and counter.total == 2


def test_large_array_kept_as_bytes_on_a_miss(
    backend: S3Datastore, counter: RequestCounter, calls: Counter[str], refs: RefMaker
) -> None:
    """Above 1 MiB a miss keeps the bytes read (no copy); the first hit decodes and keeps the array."""
    cached = CachingDatastore(backend)
    ref = refs.make("NumpyArray")
    array = np.arange(200_000.0)  # 1.6 MB
    backend.put(array, ref)
    calls.clear()
    counter.reset()
    assert np.array_equal(cached.get(ref), array) and calls["npy.read"] == 1
    assert cached.cache_stats.bytes_cached == backend.stats.bytes_written  # the bytes, not a copy
    first, second = cached.get(ref), cached.get(ref)
    assert (
        np.array_equal(first, array) and np.array_equal(second, array) and not np.shares_memory(first, second)
    )
    assert calls["npy.read"] == 2 and counter.requests == {"GetObject": 1}


def test_large_dataset_not_cached_on_put_but_on_read(
    backend: S3Datastore, counter: RequestCounter, refs: RefMaker
) -> None:
    cached = CachingDatastore(backend, max_put_bytes=100)
    big, small = refs.make("Bytes"), refs.make("Bytes")
    cached.put(b"x" * 1000, big)
    cached.put(b"y" * 50, small)
    stats = cached.cache_stats
    assert (stats.skipped_large_puts, stats.skipped_too_large, stats.entries) == (1, 0, 1)
    counter.reset()
    assert cached.get(small) == b"y" * 50 and counter.total == 0
    assert cached.get(big) == b"x" * 1000 and counter.requests == {"GetObject": 1}
    assert cached.get(big) == b"x" * 1000 and counter.total == 1  # cached by the read
    assert CachingDatastore(backend).max_put_bytes == DEFAULT_CACHE_MAX_PUT_BYTES


def test_immutable_hits_shared_mutable_hits_copied(backend: S3Datastore, refs: RefMaker) -> None:
    cached = CachingDatastore(backend)
    blob, record, doc, array = refs.make("Bytes"), refs.make(FROZEN), refs.make(), refs.make("NumpyArray")
    cached.put(b"\x00" * 64, blob)
    cached.put(frozen_record(), record)
    cached.put({"n": [1]}, doc)
    cached.put(np.arange(4.0), array)
    assert cached.get(blob) is cached.get(blob)
    assert cached.get(record) == frozen_record() and cached.get(record) is cached.get(record)
    mine = cached.get(doc)
    mine["n"].append(2)
    assert cached.get(doc) == {"n": [1]} and cached.get(doc) is not cached.get(doc)
    got = cached.get(array)
    got[0] = 99.0
    again = cached.get(array)
    assert again[0] == 0.0 and not np.shares_memory(got, again)


def test_immutable_objects_shared_over_a_memory_backend(refs: RefMaker) -> None:
    factory = storage_classes()
    cached = CachingDatastore(InMemoryDatastore(name="mem", storageClassFactory=factory))
    frozen_ref, ro_ref, rw_ref = refs.make(FROZEN), refs.make("NumpyArray"), refs.make("NumpyArray")
    record = frozen_record()
    read_only = np.arange(3.0)
    read_only.flags.writeable = False
    writable = np.arange(3.0)
    cached.put(record, frozen_ref)
    cached.put(read_only, ro_ref)
    cached.put(writable, rw_ref)
    assert cached.get(frozen_ref) is record
    assert cached.get(ro_ref) is read_only
    got = cached.get(rw_ref)
    assert got is not writable and not np.shares_memory(got, writable)
    writable[0] = 42.0  # the caller's array after the put: the cache kept its own copy
    assert cached.get(rw_ref)[0] == 0.0


def test_a_hit_that_cannot_decode_falls_back_to_the_backend(
    backend: S3Datastore, counter: RequestCounter, refs: RefMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    cached = CachingDatastore(backend)
    ref = refs.make()
    cached.put({"a": 1}, ref)
    real = JsonFormatter.read
    failures = iter([True])

    def flaky(self: JsonFormatter, *args: Any) -> Any:
        if next(failures, False):
            raise FormatterError("decode failed once")
        return real(self, *args)

    monkeypatch.setattr(JsonFormatter, "read", flaky)
    counter.reset()
    assert cached.get(ref) == {"a": 1} and counter.requests == {"GetObject": 1}
    assert cached.get(ref) == {"a": 1} and counter.total == 1


def test_s3_datastore_encodes(backend: S3Datastore, counter: RequestCounter, refs: RefMaker) -> None:
    assert isinstance(backend, EncodingDatastore)
    assert not isinstance(InMemoryDatastore(), EncodingDatastore)
    ref, other = refs.make("StructuredComposite"), refs.make()
    obj = {"summary": {"n": 1}, "output": {}, "data": [1]}
    written = backend.put_encoded(obj, ref)
    assert written.copy_by_decoding and written.decode(written.data) == obj
    counter.reset()
    got, read = backend.get_encoded(ref)
    assert got == obj and read.data == written.data and read.decode(read.data) == obj
    assert counter.requests == {"GetObject": 1}
    with pytest.raises(DatasetTypeError):
        backend.get_encoded(ref.makeComponentRef("summary"))
    many = backend.put_many_encoded([({"i": 1}, other)])
    assert many[other].decode(many[other].data) == {"i": 1}
    assert backend.get_many_encoded([other])[other][0] == {"i": 1}


@pytest.mark.parametrize(
    ("obj", "immutable"),
    [
        (b"x", True),
        ("x", True),
        (3, True),
        (None, True),
        ((1, ("a", b"b")), True),
        (frozenset({1, 2}), True),
        (uuid.uuid4(), True),
        ((1, [2]), False),
        ({"a": 1}, False),
        ([1], False),
        (bytearray(b"x"), False),
        (object(), False),
    ],
)
def test_is_immutable(obj: Any, immutable: bool) -> None:
    assert is_immutable(obj) is immutable


def test_is_immutable_models_and_arrays() -> None:
    from s3qbb.testing.data import ExampleModel

    assert is_immutable(frozen_record())
    assert not is_immutable(ExampleModel(name="m", values=[1.0]))  # not frozen
    array = np.arange(3)
    assert not is_immutable(array)
    array.flags.writeable = False
    assert is_immutable(array) and is_immutable(np.float64(1.0))
    base = np.arange(3)
    view = base[:]
    view.flags.writeable = False
    assert not is_immutable(view)  # the writable base can still change it
    assert is_immutable(np.frombuffer(b"\x00" * 8, dtype="uint8"))
    assert not is_immutable(np.array([object()], dtype=object))


def test_max_put_bytes_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    def built(cache: dict[str, Any] | None = None) -> CachingDatastore:
        config = {"datastore": {"root": "s3://costs-bucket/repo"}, **({"cache": cache} if cache else {})}
        store = build_datastore(load_repo_config(config))
        assert isinstance(store, CachingDatastore)
        return store

    monkeypatch.delenv("S3QBB_CACHE_MAX_PUT_BYTES", raising=False)
    assert built().max_put_bytes == DEFAULT_CACHE_MAX_PUT_BYTES
    monkeypatch.setenv("S3QBB_CACHE_MAX_PUT_BYTES", "1MiB")
    assert built().max_put_bytes == 1024**2
    assert built({"max_put_bytes": "2KiB"}).max_put_bytes == 2048  # the file wins
    monkeypatch.setenv("S3QBB_CACHE_MAX_PUT_BYTES", "lots")
    with pytest.raises(ConfigError, match="max_put_bytes"):
        built()


def test_cache_over_each_transport(moto_endpoint: S3TestEndpoint, s3_transport: str, refs: RefMaker) -> None:
    """The bytes a transport returns (whatever their type) are kept and decode as a read does."""
    config = with_transport(moto_endpoint, s3_transport).config
    backend = S3Datastore(
        f"s3://{moto_endpoint.bucket}/each", config=config, storageClassFactory=storage_classes()
    )
    try:
        writer = CachingDatastore(backend)
        blob, doc, array = refs.make("Bytes"), refs.make(), refs.make("NumpyArray")
        writer.put(b"\x01" * 100, blob)
        writer.put({"a": [1]}, doc)
        writer.put(np.arange(3.0), array)
        reader = CachingDatastore(backend)  # misses: what the GETs read is kept
        with count_requests(backend) as counts:
            for _ in range(2):
                assert reader.get(blob) == b"\x01" * 100 and type(reader.get(blob)) is bytes
                assert reader.get(doc) == {"a": [1]} and writer.get(doc) == {"a": [1]}
                assert np.array_equal(reader.get(array), np.arange(3.0))
            assert counts.requests == {"GetObject": 3}
    finally:
        backend.close()
