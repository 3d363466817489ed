"""CachingDatastore: the conformance suite over memory, moto and SeaweedFS backends, plus cache behaviour."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pytest

from s3qbb.core.dataset_ref import DatasetRef
from s3qbb.core.storage_class import StorageClass
from s3qbb.datastores.caching import (
    DEFAULT_CACHE_MAX_BYTES,
    DEFAULT_CACHE_MAX_ENTRIES,
    CacheStats,
    CacheTier,
    CachingDatastore,
    NullCache,
    StoreOutcome,
)
from s3qbb.datastores.memory import InMemoryDatastore
from s3qbb.datastores.s3 import S3Datastore
from s3qbb.errors import (
    AmbiguousDatasetError,
    ConfigError,
    DatasetExistsError,
    DatasetNotFoundError,
)
from s3qbb.testing.backdoors import S3Backdoor
from s3qbb.testing.conformance import DatastoreConformance, MemoryBackdoor
from s3qbb.testing.data import RefMaker, example_storage_classes
from s3qbb.testing.faults import RequestCounter
from s3qbb.testing.servers import S3TestEndpoint

PREFIX = "repo/root"


def memory_cache(max_bytes: int | None = None, max_entries: int | None = None) -> InMemoryDatastore:
    if max_bytes is None and max_entries is None:
        max_bytes, max_entries = 50_000_000, 1000
    return InMemoryDatastore(
        name="cache",
        max_bytes=max_bytes,
        max_entries=max_entries,
        storageClassFactory=example_storage_classes(),
    )


def s3_backend(endpoint: S3TestEndpoint, name: str = "s3") -> S3Datastore:
    return S3Datastore(
        f"s3://{endpoint.bucket}/{PREFIX}",
        name=name,
        config=endpoint.config,
        storageClassFactory=example_storage_classes(),
    )


def memory_backend() -> InMemoryDatastore:
    return InMemoryDatastore(name="mem", storageClassFactory=example_storage_classes())


# --------------------------------------------------------------- conformance


class CachingConformance(DatastoreConformance):
    """The shared suite, unchanged: it calls ``invalidate`` after tampering behind a datastore's back."""


class TestCachingOverMemoryConformance(CachingConformance):
    @pytest.fixture
    def datastore(self) -> Iterator[CachingDatastore]:
        store = CachingDatastore(memory_backend())
        yield store
        store.close()

    @pytest.fixture
    def backdoor(self, datastore: CachingDatastore) -> MemoryBackdoor:
        assert isinstance(datastore.backend, InMemoryDatastore)
        return MemoryBackdoor(datastore.backend)


class TestDisabledCacheConformance(DatastoreConformance):
    """With a `NullCache` the wrapper is transparent: the unchanged suite applies."""

    @pytest.fixture
    def datastore(self) -> CachingDatastore:
        return CachingDatastore.disabled(memory_backend())

    @pytest.fixture
    def backdoor(self, datastore: CachingDatastore) -> MemoryBackdoor:
        assert isinstance(datastore.backend, InMemoryDatastore)
        return MemoryBackdoor(datastore.backend)


class S3CachingConformance(CachingConformance):
    """Over an S3Datastore; ``make_cache`` chooses the cache's bounds."""

    @staticmethod
    def make_cache() -> InMemoryDatastore | None:
        return None

    write_through = True

    @pytest.fixture
    def datastore(self, s3_server_endpoint: S3TestEndpoint) -> Iterator[CachingDatastore]:
        store = CachingDatastore(
            s3_backend(s3_server_endpoint), self.make_cache(), write_through=self.write_through
        )
        yield store
        store.close()

    @pytest.fixture
    def backdoor(self, s3_server_endpoint: S3TestEndpoint) -> S3Backdoor:
        return S3Backdoor(s3_server_endpoint.client, s3_server_endpoint.bucket, PREFIX)


class TestTinyCacheOverMotoConformance(S3CachingConformance):
    """A cache of three entries and 1 kB: the suite runs with evictions and skipped datasets."""

    @staticmethod
    def make_cache() -> InMemoryDatastore:
        return memory_cache(max_entries=3, max_bytes=1024)

    @pytest.fixture
    def s3_server_endpoint(self, moto_endpoint: S3TestEndpoint) -> S3TestEndpoint:
        return moto_endpoint

    def test_suite_workload_evicts(self, datastore: CachingDatastore, refs: RefMaker) -> None:
        items = [({"i": i}, refs.make()) for i in range(12)]
        datastore.put_many(items)
        assert datastore.get_many([ref for _, ref in items]) == {ref: obj for obj, ref in items}
        datastore.put(b"x" * 2000, big := refs.make("Bytes"))
        assert datastore.get(big) == b"x" * 2000
        stats = datastore.cache_stats
        assert stats.evictions >= 9 and stats.entries == 3 and stats.skipped_too_large == 2


class TestReadPopulatedCacheOverMotoConformance(S3CachingConformance, DatastoreConformance):
    """``write_through=False``: filled by reads only, the unchanged suite applies."""

    write_through = False

    @pytest.fixture
    def s3_server_endpoint(self, moto_endpoint: S3TestEndpoint) -> S3TestEndpoint:
        return moto_endpoint

    test_corruption_detected = DatastoreConformance.test_corruption_detected
    test_stats_count_operations = DatastoreConformance.test_stats_count_operations


@pytest.mark.seaweedfs
class TestCachingOverSeaweedFSConformance(S3CachingConformance):
    @pytest.fixture
    def s3_server_endpoint(self, seaweedfs_endpoint: S3TestEndpoint) -> S3TestEndpoint:
        return seaweedfs_endpoint


# ------------------------------------------------------ behaviour over moto


@pytest.fixture
def refs() -> RefMaker:
    return RefMaker(storage_classes=example_storage_classes())


@pytest.fixture
def backend(moto_endpoint: S3TestEndpoint) -> Iterator[S3Datastore]:
    store = s3_backend(moto_endpoint)
    yield store
    store.close()


@pytest.fixture
def cached(backend: S3Datastore) -> CachingDatastore:
    return CachingDatastore(backend, memory_cache())


@pytest.fixture
def counter(backend: S3Datastore) -> Iterator[RequestCounter]:
    with RequestCounter(backend.bucket.client) as counting:
        yield counting


@pytest.fixture
def backdoor(moto_endpoint: S3TestEndpoint) -> S3Backdoor:
    return S3Backdoor(moto_endpoint.client, moto_endpoint.bucket, PREFIX)


def test_hit_costs_zero_requests_and_returns_copies(
    cached: CachingDatastore, counter: RequestCounter, refs: RefMaker
) -> None:
    ref = refs.make()
    cached.put({"a": [1, 2]}, ref)
    assert counter.requests == {"PutObject": 1}
    counter.reset()
    first = cached.get(ref)
    first["a"].append(3)
    assert cached.get(ref) == {"a": [1, 2]} and cached.get(ref) is not cached.get(ref)
    assert counter.total == 0
    assert cached.cache_stats.hits == 4 and cached.cache_stats.misses == 0


def test_miss_reads_once_then_hits(
    backend: S3Datastore, cached: CachingDatastore, counter: RequestCounter, refs: RefMaker
) -> None:
    ref = refs.make()
    backend.put({"from": "backend"}, ref)  # not through the cache
    counter.reset()
    assert cached.get(ref) == {"from": "backend"}
    assert counter.requests == {"GetObject": 1}
    assert cached.cache_stats.entries == 1
    assert cached.get(ref) == {"from": "backend"}
    assert counter.total == 1
    stats = cached.cache_stats
    assert (stats.hits, stats.misses, stats.hit_rate) == (1, 1, 0.5)


def test_missing_dataset_is_a_miss_not_cached(cached: CachingDatastore, refs: RefMaker) -> None:
    ref = refs.make()
    with pytest.raises(DatasetNotFoundError):
        cached.get(ref)
    assert cached.cache_stats.misses == 1 and cached.cache_stats.entries == 0


def test_partial_read_of_uncached_array_uses_ranged_gets(
    backend: S3Datastore, cached: CachingDatastore, counter: RequestCounter, refs: RefMaker
) -> None:
    np = pytest.importorskip("numpy")
    ref = refs.make("NumpyArray")
    arr = np.arange(200_000, dtype="float64").reshape(20_000, 10)
    backend.put(arr, ref)
    backend.stats.reset()
    counter.reset()
    rows = cached.get(ref, parameters={"rows": slice(100, 110)})
    assert np.array_equal(rows, arr[100:110])
    # One ranged GET of the first 1 MiB checksum block (header and rows, verified), no full download.
    assert counter.requests == {"GetObject": 1}
    assert backend.stats.bytes_read == backend.config.checksum_block_size < arr.nbytes
    assert cached.cache_stats.entries == 0  # a slice is never cached
    full = cached.get(ref)  # the full array, not the slice read before
    assert np.array_equal(full, arr) and counter.total == 2
    counter.reset()
    assert np.array_equal(cached.get(ref, parameters={"rows": (5, 9)}), arr[5:9])
    assert np.array_equal(cached.get(ref), arr)  # the full array after a sliced hit
    assert counter.total == 0


def test_read_parameters_keyed_over_memory_backend(refs: RefMaker) -> None:
    """Without partial reads in the backend a sliced miss fetches, caches and slices the whole array."""
    np = pytest.importorskip("numpy")
    backend = memory_backend()
    cached = CachingDatastore(backend, memory_cache())
    ref = refs.make("NumpyArray")
    arr = np.arange(30.0).reshape(10, 3)
    backend.put(arr, ref)
    assert np.array_equal(cached.get(ref, parameters={"rows": slice(2, 4)}), arr[2:4])
    assert np.array_equal(cached.get(ref), arr)
    assert np.array_equal(cached.get(ref, parameters={"rows": slice(0, 1)}), arr[0:1])
    assert cached.cache_stats.hits == 2 and backend.stats.requests["get"] == 1


def test_storage_class_override_never_pollutes_the_cache(
    backend: S3Datastore, cached: CachingDatastore, counter: RequestCounter, refs: RefMaker
) -> None:
    np = pytest.importorskip("numpy")
    ref = refs.make("StructuredDataList")
    backend.put([1, 2, 3], ref)
    counter.reset()
    as_array = cached.get(ref, storageClass="NumpyArray")
    assert isinstance(as_array, np.ndarray) and as_array.tolist() == [1, 2, 3]
    assert cached.get(ref) == [1, 2, 3]  # the stored form was cached, not the converted one
    assert counter.total == 1
    overridden = ref.overrideStorageClass("NumpyArray", cached.storageClassFactory)
    via_ref = cached.get(overridden)
    assert isinstance(via_ref, np.ndarray) and counter.total == 2
    assert isinstance(cached.get(overridden), np.ndarray) and counter.total == 2
    assert cached.get(ref) == [1, 2, 3] and counter.total == 2
    assert cached.cache_stats.entries == 2  # one entry per storage class read


def test_components_served_from_the_cached_parent(
    cached: CachingDatastore, counter: RequestCounter, refs: RefMaker
) -> None:
    ref = refs.make("StructuredComposite")
    obj = {"summary": {"n": 3}, "output": {"ok": True}, "data": [1, 2, 3]}
    cached.put(obj, ref)
    cached.invalidate(ref)
    counter.reset()
    assert cached.get(ref.makeComponentRef("summary")) == {"n": 3}
    assert cached.get(ref.makeComponentRef("data")) == [1, 2, 3]
    assert cached.get(ref) == obj
    assert counter.requests == {"GetObject": 1}


def test_exists_asks_the_backend_even_when_cached(
    cached: CachingDatastore, counter: RequestCounter, backdoor: S3Backdoor, refs: RefMaker
) -> None:
    ref, other = refs.make(), refs.make()
    cached.put({"a": 1}, ref)
    cached.put({"b": 2}, other)
    counter.reset()
    assert cached.exists(ref) and cached.stored(ref)
    assert counter.requests == {"HeadObject": 2}
    backdoor.delete_artifact(ref)
    backdoor.delete_artifact(other)
    assert not cached.exists(ref)
    assert cached.stored_many([other]) == {other: False}
    # The backend said they are gone: the cached copies were dropped with that answer.
    assert cached.cache_stats.entries == 0
    with pytest.raises(DatasetNotFoundError):
        cached.get(ref)


def test_remove_trash_forget_invalidate(
    cached: CachingDatastore, backdoor: S3Backdoor, refs: RefMaker
) -> None:
    removed, trashed, forgotten, kept = (refs.make() for _ in range(4))
    for i, ref in enumerate((removed, trashed, forgotten, kept)):
        cached.put({"i": i}, ref)
    assert cached.cache_stats.entries == 4
    cached.remove(removed)
    cached.trash(trashed)
    cached.forget([forgotten])
    assert cached.cache_stats.entries == 1
    for ref in (removed, trashed, forgotten):
        with pytest.raises(DatasetNotFoundError):
            cached.get(ref)
    cached.emptyTrash()
    assert not backdoor.has_artifact(trashed) and backdoor.has_artifact(forgotten)
    assert cached.get(kept) == {"i": 3}
    cached.put({"again": 1}, removed)
    assert cached.get(removed) == {"again": 1}


def test_failed_remove_still_invalidates(refs: RefMaker) -> None:
    cached = CachingDatastore(memory_backend(), memory_cache())
    ref = refs.make()
    cached.put({"a": 1}, ref)
    cached.backend.forget([ref])  # behind the wrapper's back
    with pytest.raises(DatasetNotFoundError):
        cached.remove(ref)
    assert cached.cache_stats.entries == 0
    with pytest.raises(AmbiguousDatasetError):
        cached.invalidate([None])  # type: ignore[list-item]


def test_records_and_uris_are_the_backends(
    backend: S3Datastore, cached: CachingDatastore, refs: RefMaker
) -> None:
    renamed = CachingDatastore(backend, memory_cache(), name="wrapper")
    ref = refs.make()
    renamed.put({"a": 1}, ref)
    assert renamed.get(ref) == {"a": 1}
    exported = renamed.export_records([ref])
    assert set(exported) == {"s3"}
    records = exported["s3"].records[ref.id]
    paths = [info.path for infos in records.values() for info in infos]
    assert paths and all("mem://" not in p and "cache" not in p for p in paths)
    uri = renamed.getURI(ref)
    assert uri.startswith(f"s3://{backend.bucket_name}/") and str(ref.id) in uri
    assert renamed.getURIs(ref).primaryURI == uri == cached.getURI(ref)
    many = renamed.get_many_uris([ref, refs.make()], predict=True)
    assert all(str(u.primaryURI).startswith("s3://") for u in many.values())
    assert renamed.getUri(ref) == str(uri)
    assert renamed.get_root() == backend.get_root()
    renamed.forget([ref])
    renamed.import_records(exported)
    assert backend.knows(ref) and renamed.knows(ref) and renamed.get(ref) == {"a": 1}


def test_delegated_identity(backend: S3Datastore, cached: CachingDatastore) -> None:
    assert cached.name == "s3" and cached.backend is backend
    assert cached.capabilities == backend.capabilities and not cached.isEphemeral
    assert cached.storageClassFactory is backend.storageClassFactory
    assert cached.stats is backend.stats
    assert "CachingDatastore('s3'" in repr(cached)
    default = CachingDatastore(backend)
    assert isinstance(default.cache, InMemoryDatastore)
    assert default.cache.max_bytes == DEFAULT_CACHE_MAX_BYTES
    assert default.cache.max_entries == DEFAULT_CACHE_MAX_ENTRIES
    memory = CachingDatastore(memory_backend())
    assert memory.capabilities == memory.backend.capabilities and memory.isEphemeral


def test_bad_configuration_refused() -> None:
    backend = memory_backend()
    with pytest.raises(ConfigError, match="bounded"):
        CachingDatastore(backend, InMemoryDatastore(name="unbounded"))
    with pytest.raises(ConfigError, match="Datastore backend"):
        CachingDatastore("s3://bucket")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="NullCache"):
        CachingDatastore(backend, {"max_bytes": 1})  # type: ignore[arg-type]
    bounded = InMemoryDatastore(name="b", max_entries=5)
    with pytest.raises(ConfigError, match="backend itself"):
        CachingDatastore(bounded, bounded)


def test_too_large_for_the_cache_is_skipped(
    backend: S3Datastore, counter: RequestCounter, refs: RefMaker
) -> None:
    cached = CachingDatastore(backend, memory_cache(max_bytes=1000))
    ref = refs.make("Bytes")
    cached.put(b"x" * 5000, ref)
    assert backend.exists(ref)
    assert cached.get(ref) == b"x" * 5000
    stats = cached.cache_stats
    assert stats.skipped_too_large == 2 and stats.entries == 0 and stats.bytes_cached == 0
    assert counter.requests["GetObject"] == 1


def test_lru_eviction_falls_back_to_the_backend(
    backend: S3Datastore, counter: RequestCounter, refs: RefMaker
) -> None:
    cached = CachingDatastore(backend, memory_cache(max_entries=2))
    a, b, c = refs.make(), refs.make(), refs.make()
    for i, ref in enumerate((a, b, c)):
        cached.put({"i": i}, ref)
    counter.reset()
    assert cached.get(c) == {"i": 2} and cached.get(b) == {"i": 1}
    assert counter.total == 0
    assert cached.get(a) == {"i": 0}  # evicted: read again from S3
    assert counter.requests == {"GetObject": 1}
    stats = cached.cache_stats
    assert stats.evictions == 2 and stats.entries == 2 and stats.bytes_cached > 0


class _FailingTier(NullCache):
    def store(self, obj: Any, parent: DatasetRef) -> StoreOutcome:
        raise RuntimeError("cache broke")


def test_cache_failure_never_fails_put_or_get(refs: RefMaker, caplog: pytest.LogCaptureFixture) -> None:
    backend = memory_backend()
    cached = CachingDatastore(backend, _FailingTier())
    ref = refs.make()
    with caplog.at_level(logging.WARNING, logger="s3qbb.datastores.caching"):
        cached.put({"a": 1}, ref)
        assert cached.get(ref) == {"a": 1}
    assert cached.cache_stats.store_errors == 2
    assert "could not cache" in caplog.text and "cache broke" in caplog.text
    assert isinstance(_FailingTier(), CacheTier)


def test_disabled_cache_is_a_null_object(refs: RefMaker) -> None:
    backend = memory_backend()
    cached = CachingDatastore.disabled(backend, name="plain")
    assert isinstance(cached.cache, NullCache) and cached.name == "plain"
    ref = refs.make()
    cached.put({"a": 1}, ref)
    for _ in range(3):
        assert cached.get(ref) == {"a": 1}
    assert backend.stats.requests["get"] == 3
    assert cached.cache_stats == CacheStats(misses=3)
    assert cached.cache_stats.as_dict()["hits"] == 0


def test_write_through_off_caches_on_read(
    backend: S3Datastore, counter: RequestCounter, refs: RefMaker
) -> None:
    cached = CachingDatastore(backend, memory_cache(), write_through=False)
    ref = refs.make()
    cached.put({"a": 1}, ref)
    assert cached.cache_stats.entries == 0
    counter.reset()
    assert cached.get(ref) == {"a": 1} and cached.get(ref) == {"a": 1}
    assert counter.requests == {"GetObject": 1}


def test_bulk_paths_use_the_backend_for_misses(
    cached: CachingDatastore, counter: RequestCounter, refs: RefMaker
) -> None:
    items = [({"i": i}, refs.make()) for i in range(6)]
    cached.put_many(items)
    assert cached.cache_stats.entries == 6 and counter.requests == {"PutObject": 6}
    cached.invalidate([ref for _, ref in items[:4]])
    counter.reset()
    wanted = [ref for _, ref in items]
    got = cached.get_many(wanted + wanted[:1])
    assert got == {ref: obj for obj, ref in items} and list(got) == wanted
    assert counter.requests == {"GetObject": 4}
    assert cached.get_many(wanted) == got and counter.total == 4


def test_put_many_partial_failure_caches_nothing(cached: CachingDatastore, refs: RefMaker) -> None:
    dup, good = refs.make(), refs.make()
    cached.put({"dup": 1}, dup)
    with pytest.raises(DatasetExistsError):
        cached.put_many([({"dup": 2}, dup), ({"good": 1}, good)])
    assert cached.cache_stats.entries == 1
    assert cached.get(dup) == {"dup": 1} and cached.get(good) == {"good": 1}


def test_get_many_components_and_parameters(refs: RefMaker) -> None:
    np = pytest.importorskip("numpy")
    cached = CachingDatastore(memory_backend(), memory_cache())
    comp = refs.make("StructuredComposite")
    cached.backend.put({"summary": {"n": 1}, "output": {"ok": True}, "data": [1]}, comp)
    parts = [comp.makeComponentRef("summary"), comp, comp.makeComponentRef("data")]
    got = cached.get_many(parts)
    assert got[parts[0]] == {"n": 1} and got[parts[2]] == [1]
    got[comp]["summary"]["n"] = 99  # results never share objects
    assert got[parts[0]] == {"n": 1}
    arr_ref, missing = refs.make("NumpyArray"), refs.make("NumpyArray")
    cached.put(np.arange(12.0).reshape(4, 3), arr_ref)
    sliced = cached.get_many([arr_ref], parameters={"rows": slice(1, 2)})
    assert sliced[arr_ref].tolist() == [[3.0, 4.0, 5.0]]
    with pytest.raises(DatasetNotFoundError):
        cached.get_many([arr_ref, missing])


def test_get_many_partial_reads_over_s3(
    backend: S3Datastore, cached: CachingDatastore, counter: RequestCounter, refs: RefMaker
) -> None:
    np = pytest.importorskip("numpy")
    arrays = {refs.make("NumpyArray"): np.full((2000, 4), float(i)) for i in range(3)}
    backend.put_many([(arr, ref) for ref, arr in arrays.items()])
    backend.stats.reset()
    counter.reset()
    got = cached.get_many(list(arrays), parameters={"rows": slice(0, 2)})
    assert all(np.array_equal(got[ref], arr[:2]) for ref, arr in arrays.items())
    # One GET each: an object of a single checksum block is read whole and verified.
    assert counter.requests == {"GetObject": 3}
    assert backend.stats.bytes_read == sum(a.nbytes + 128 for a in arrays.values())
    assert cached.cache_stats.entries == 0


def test_close_closes_backend_and_cache(refs: RefMaker) -> None:
    backend = memory_backend()
    cache = memory_cache()
    with CachingDatastore(backend, cache) as cached:
        cached.put({"a": 1}, refs.make())
        assert len(cache) == 1
    assert len(cache) == 0 and len(backend) == 0


def test_transfer_delegates(refs: RefMaker) -> None:
    source, cached = memory_backend(), CachingDatastore(memory_backend(), memory_cache())
    ref = refs.make()
    source.put({"from": "source"}, ref)
    cached.transfer(source, ref)
    assert cached.backend.knows(ref) and cached.get(ref) == {"from": "source"}


# --------------------------------------------------------------- concurrency


class _GatedBackend(InMemoryDatastore):
    """A memory backend whose reads wait for a gate, to stage a race with a removal."""

    def __init__(self) -> None:
        super().__init__(name="gated", storageClassFactory=example_storage_classes())
        self.reading = threading.Event()
        self.gate = threading.Event()

    def get(
        self,
        ref: DatasetRef,
        parameters: Mapping[str, Any] | None = None,
        storageClass: StorageClass | str | None = None,
    ) -> Any:
        obj = super().get(ref, parameters, storageClass)
        self.reading.set()
        assert self.gate.wait(10)
        return obj


def test_read_racing_with_remove_does_not_cache_stale_data(refs: RefMaker) -> None:
    backend = _GatedBackend()
    cached = CachingDatastore(backend, memory_cache())
    ref = refs.make()
    backend.put({"old": 1}, ref)
    results: list[Any] = []
    reader = threading.Thread(target=lambda: results.append(cached.get(ref)))
    reader.start()
    assert backend.reading.wait(10)
    cached.remove(ref)  # while the read is in flight
    backend.gate.set()
    reader.join(10)
    assert results == [{"old": 1}]  # read before the removal finished: fine to return
    assert cached.cache_stats.skipped_stale == 1 and cached.cache_stats.entries == 0
    with pytest.raises(DatasetNotFoundError):
        cached.get(ref)


def test_concurrent_mixed_operations(refs: RefMaker) -> None:
    backend = memory_backend()
    cached = CachingDatastore(backend, memory_cache(max_entries=16))
    items = [({"i": i}, refs.make()) for i in range(64)]
    cached.put_many(items)
    errors: list[BaseException] = []

    def work(chunk: Iterable[tuple[dict[str, int], DatasetRef]], remove: bool) -> None:
        try:
            for obj, ref in chunk:
                for _ in range(3):
                    assert cached.get(ref) == obj
                if remove:
                    cached.remove(ref)
                    assert not cached.exists(ref)
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(items[i::8], i % 2 == 0)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    removed = {ref for i in range(0, 8, 2) for _, ref in items[i::8]}
    for obj, ref in items:
        if ref in removed:
            with pytest.raises(DatasetNotFoundError):
                cached.get(ref)
        else:
            assert cached.get(ref) == obj
    assert cached.cache_stats.entries <= 16
