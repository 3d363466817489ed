"""The cache tier of `s3qbb.datastores.caching.CachingDatastore`: what it needs from a cache, and counters.

`CacheTier` is the protocol; an `InMemoryDatastore` (bounded by bytes and
entries, least recently used first) is adapted to it, and `NullCache` keeps
nothing. `CacheStats` is a snapshot of the tier's counters.
"""

from __future__ import annotations

__all__ = ["CacheStats", "CacheTier", "NullCache", "StoreOutcome"]

import threading
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from ..errors import DatasetExistsError, DatasetNotFoundError, DatastoreCapacityError
from .memory import estimate_nbytes

if TYPE_CHECKING:
    from ..core.dataset_ref import DatasetRef
    from ..core.ids import DatasetId
    from ..core.storage_class import StorageClass
    from .memory import InMemoryDatastore


StoreOutcome = Literal["stored", "too_large", "present", "disabled"]
"""What `CacheTier.store` did: kept the object, found it too large or already there, or keeps nothing."""


@runtime_checkable
class CacheTier(Protocol):
    """What `CachingDatastore` needs from its cache (an `InMemoryDatastore` is adapted to it)."""

    def lookup(self, parent: DatasetRef, stored: StorageClass) -> tuple[bool, Any]:
        """Return ``(True, copy)`` if the dataset is cached with storage class ``stored``."""

    def store(self, obj: Any, parent: DatasetRef) -> StoreOutcome:
        """Keep a copy of a whole dataset; report whether it was too large or already there."""

    def drop(self, refs: Iterable[DatasetRef]) -> None:
        """Forget cached copies of datasets (unknown ones are ignored)."""

    def clear(self) -> None:
        """Forget every cached copy."""

    @property
    def evictions(self) -> int:
        """Entries evicted to respect the bounds, so far."""

    @property
    def nbytes(self) -> int:
        """Estimated size of the cached objects."""

    @property
    def entries(self) -> int:
        """Number of cached datasets."""


class NullCache:
    """A cache that holds nothing: every read is a miss, every store a no-op.

    Use it (or `CachingDatastore.disabled`) to turn the cache tier off without
    changing the code around it.
    """

    evictions = 0
    nbytes = 0
    entries = 0

    def lookup(self, parent: DatasetRef, stored: StorageClass) -> tuple[bool, Any]:
        """Return a miss."""
        return False, None

    def store(self, obj: Any, parent: DatasetRef) -> StoreOutcome:
        """Keep nothing."""
        return "disabled"

    def drop(self, refs: Iterable[DatasetRef]) -> None:
        """Do nothing."""

    def clear(self) -> None:
        """Do nothing."""

    def __repr__(self) -> str:
        return "NullCache()"


def _class_key(storage_class: StorageClass) -> str:
    return f"{storage_class.name}|{storage_class.pytype_name}"


class _MemoryTier:
    """Adapt a bounded `InMemoryDatastore` to `CacheTier`.

    A dataset read through refs of different storage classes (a task may
    declare another, convertible storage class than the producer) is cached
    once per storage class, under an ID derived from the dataset ID and the
    class. An index from dataset ID to those derived refs lets invalidation
    find them; entries evicted by the LRU are pruned from it lazily.
    """

    def __init__(self, store: InMemoryDatastore) -> None:
        self.store_ = store
        self._index: dict[DatasetId, dict[str, DatasetRef]] = {}
        self._lock = threading.Lock()  # guards the index; copies are made outside it

    def lookup(self, parent: DatasetRef, stored: StorageClass) -> tuple[bool, Any]:
        with self._lock:
            cache_ref = self._index.get(parent.id, {}).get(_class_key(stored))
        if cache_ref is None:
            return False, None
        try:
            return True, self.store_.get(cache_ref)
        except DatasetNotFoundError:  # evicted
            return False, None

    def store(self, obj: Any, parent: DatasetRef) -> StoreOutcome:
        limit = self.store_.max_bytes
        if limit is not None and estimate_nbytes(obj) > limit:
            return "too_large"  # checked before InMemoryDatastore.put copies the object
        key = _class_key(parent.datasetType.storageClass)
        cache_ref = parent.replace(id=uuid.uuid5(parent.id, key))
        try:
            self.store_.put(obj, cache_ref)
        except DatastoreCapacityError:
            return "too_large"
        except DatasetExistsError:
            return "present"
        with self._lock:
            self._index.setdefault(parent.id, {})[key] = cache_ref
            if len(self._index) > 2 * max(len(self.store_), 1024):
                self._prune()
        return "stored"

    def _prune(self) -> None:
        """Forget index entries of evicted datasets (amortized: runs when the index doubles)."""
        for dataset_id in list(self._index):
            live = {k: r for k, r in self._index[dataset_id].items() if self.store_.knows(r)}
            if live:
                self._index[dataset_id] = live
            else:
                del self._index[dataset_id]

    def drop(self, refs: Iterable[DatasetRef]) -> None:
        with self._lock:
            cache_refs = [r for ref in refs for r in self._index.pop(ref.id, {}).values()]
        if cache_refs:
            self.store_.forget(cache_refs)

    def clear(self) -> None:
        with self._lock:
            self._index.clear()
            self.store_.clear()

    @property
    def evictions(self) -> int:
        return self.store_.stats.evictions

    @property
    def nbytes(self) -> int:
        return self.store_.nbytes

    @property
    def entries(self) -> int:
        return len(self.store_)

    def __repr__(self) -> str:
        return repr(self.store_)


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Counters of a `CachingDatastore`'s cache tier, at one moment.

    Parameters
    ----------
    hits : `int`
        Reads served from the cache (no backend request).
    misses : `int`
        Reads that went to the backend.
    evictions : `int`
        Entries evicted to respect the cache's bounds.
    bytes_cached : `int`
        Estimated size of the cached objects now.
    entries : `int`
        Number of cached datasets now.
    skipped_too_large : `int`
        Datasets not cached because they alone exceed the cache's byte bound.
    skipped_stale : `int`
        Datasets not cached because they were invalidated while being read or written.
    store_errors : `int`
        Datasets not cached because the cache failed unexpectedly (logged as warnings).
    """

    hits: int = 0
    misses: int = 0
    evictions: int = 0
    bytes_cached: int = 0
    entries: int = 0
    skipped_too_large: int = 0
    skipped_stale: int = 0
    store_errors: int = 0

    @property
    def hit_rate(self) -> float:
        """Fraction of reads served from the cache (0 before any read)."""
        reads = self.hits + self.misses
        return self.hits / reads if reads else 0.0

    def as_dict(self) -> dict[str, int]:
        """Return the counters as a plain `dict`."""
        return asdict(self)
