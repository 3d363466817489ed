"""The cache tier of `s3qbb.datastores.caching.CachingDatastore`: what it needs from a cache, and counters.

`CacheTier` is the protocol; an `InMemoryDatastore` (bounded by bytes and
entries, least recently used first) is adapted to it, and `NullCache` keeps
nothing. `CacheStats` is a snapshot of the tier's counters.

What an entry holds, and what each operation costs (measured, see ``docs/cache.rst``):

* a dataset put through an `~s3qbb.datastores.encoding.EncodingDatastore` (S3) is
  kept as the bytes the PUT sent: no serialisation, decoding or copy is added
  to the put;
* a dataset read through one is kept as the bytes the GET read and verified,
  or, when that is cheaper overall, as the decoded object: shared if it is
  immutable (`is_immutable`), a copy if it is small and its formatter decodes
  slowly (``copy_by_decoding`` is `False`: NumPy, YAML);
* a hit on bytes decodes them: the decoded object is new, so it is the copy
  (JSON, pickle: decoding is cheaper than `copy.deepcopy`). Where decoding
  costs more than copying, or the object is immutable, the first hit keeps
  the decoded object instead, and later hits copy it, or share it;
* a dataset from a datastore that keeps no bytes (memory) is kept as a deep
  copy of the object (shared if immutable), and each hit copies it again.
"""

from __future__ import annotations

__all__ = ["CacheStats", "CacheTier", "NullCache", "StoreOutcome"]

import copy
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from .memory import is_immutable
from .sizes import estimate_nbytes

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..core.dataset_ref import DatasetRef
    from ..core.ids import DatasetId
    from ..core.storage_class import StorageClass
    from .encoding import Encoded
    from .memory import InMemoryDatastore


StoreOutcome = Literal["stored", "too_large", "present", "disabled"]
"""What `CacheTier.store` did: kept the object, found it too large or already there, or keeps nothing."""


@runtime_checkable
class CacheTier(Protocol):
    """What `CachingDatastore` needs from its cache (an `InMemoryDatastore` is adapted to it)."""

    def lookup(self, parent: DatasetRef, stored: StorageClass) -> tuple[bool, Any]:
        """Return ``(True, obj)`` if the dataset is cached with storage class ``stored``.

        ``obj`` is the caller's own: a copy, a newly decoded object, or an immutable one.
        """

    def store(self, obj: Any, parent: DatasetRef) -> StoreOutcome:
        """Keep a copy of a whole dataset; report whether it was too large or already there."""

    def store_encoded(self, encoded: Encoded, parent: DatasetRef) -> StoreOutcome:
        """Keep a whole dataset as the bytes a datastore wrote or read (the bytes are not copied)."""

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

    def store_encoded(self, encoded: Encoded, parent: DatasetRef) -> StoreOutcome:
        """Keep nothing."""
        return "disabled"

    def drop(self, refs: Iterable[DatasetRef]) -> None:
        """Do nothing."""

    def clear(self) -> None:
        """Do nothing."""

    def __repr__(self) -> str:
        return "NullCache()"


_Key = tuple["DatasetId", str]
"""Key of a cache entry: the dataset ID and `_class_key` of the storage class it was cached as."""


def _class_key(storage_class: StorageClass) -> str:
    return f"{storage_class.name}|{storage_class.pytype_name}"


class _Entry:
    """One cached dataset: its bytes and decoder, or an object (shared if immutable, else copied)."""

    __slots__ = ("copy_by_decoding", "data", "decode", "obj", "shared")

    def __init__(
        self,
        *,
        data: bytes | None = None,
        decode: Callable[[bytes], Any] | None = None,
        copy_by_decoding: bool = True,
        obj: Any = None,
        shared: bool = False,
    ) -> None:
        self.data = data
        self.decode = decode
        self.copy_by_decoding = copy_by_decoding
        self.obj = obj
        self.shared = shared


class _MemoryTier:
    """Adapt a bounded `InMemoryDatastore` to `CacheTier`; it holds `_Entry` objects.

    A dataset read through refs of different storage classes (a task may
    declare another, convertible storage class than the producer) is cached
    once per storage class, keyed by the dataset ID and the class. An index
    from dataset ID to those keys lets invalidation
    find them; entries evicted by the LRU are pruned from it lazily.
    """

    def __init__(self, store: InMemoryDatastore) -> None:
        self.store_ = store
        self._index: dict[DatasetId, dict[str, _Key]] = {}
        self._lock = threading.Lock()  # guards the index; decoding and copies happen outside it

    def lookup(self, parent: DatasetRef, stored: StorageClass) -> tuple[bool, Any]:
        with self._lock:
            by_class = self._index.get(parent.id)
            key = by_class.get(_class_key(stored)) if by_class is not None else None
        if key is None:
            return False, None
        found, entry = self.store_._get_raw(key)
        if not found:  # evicted
            return False, None
        if entry.data is None:
            return True, entry.obj if entry.shared else copy.deepcopy(entry.obj)
        try:
            obj = entry.decode(entry.data)
        except Exception:  # what a backend read would fail with too: let the miss report it
            self.store_._drop_raw([key])
            return False, None
        shared = is_immutable(obj)
        if entry.copy_by_decoding and not shared:
            return True, obj  # stays bytes: the next hit decodes again
        nbytes = estimate_nbytes(obj)
        if self.store_.max_bytes is None or nbytes <= self.store_.max_bytes:
            self.store_._replace_raw(key, entry, _Entry(obj=obj, shared=shared), nbytes)
        return True, obj if shared else copy.deepcopy(obj)

    def store(self, obj: Any, parent: DatasetRef) -> StoreOutcome:
        nbytes = estimate_nbytes(obj)
        if self._too_large(nbytes):
            return "too_large"  # checked before the object is copied
        shared = is_immutable(obj)
        return self._keep(parent, _Entry(obj=obj if shared else copy.deepcopy(obj), shared=shared), nbytes)

    def store_encoded(self, encoded: Encoded, parent: DatasetRef) -> StoreOutcome:
        data = encoded.data if type(encoded.data) is bytes else bytes(encoded.data)
        if self._too_large(len(data)):
            return "too_large"
        entry = _Entry(data=data, decode=encoded.decode, copy_by_decoding=encoded.copy_by_decoding)
        return self._keep(parent, entry, len(data))

    def _too_large(self, nbytes: int) -> bool:
        return self.store_.max_bytes is not None and nbytes > self.store_.max_bytes

    def _keep(self, parent: DatasetRef, entry: _Entry, nbytes: int) -> StoreOutcome:
        class_key = _class_key(parent.datasetType.storageClass)
        key = (parent.id, class_key)
        if not self.store_._put_raw(key, entry, nbytes):
            return "present"
        with self._lock:
            self._index.setdefault(parent.id, {})[class_key] = key
            if len(self._index) > 2 * max(len(self.store_), 1024):
                self._prune()
        return "stored"

    def _prune(self) -> None:
        """Forget index entries of evicted datasets (amortized: runs when the index doubles)."""
        for dataset_id in list(self._index):
            live = {k: key for k, key in self._index[dataset_id].items() if self.store_._has_raw(key)}
            if live:
                self._index[dataset_id] = live
            else:
                del self._index[dataset_id]

    def drop(self, refs: Iterable[DatasetRef]) -> None:
        with self._lock:
            keys = [key for ref in refs for key in self._index.pop(ref.id, {}).values()]
        if keys:
            self.store_._drop_raw(keys)

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
    skipped_large_puts : `int`
        Datasets not cached when put because they exceed the size bound of
        write-through (``max_put_bytes``); they are cached when read.
    """

    hits: int = 0
    misses: int = 0
    evictions: int = 0
    bytes_cached: int = 0
    entries: int = 0
    skipped_too_large: int = 0
    skipped_stale: int = 0
    store_errors: int = 0
    skipped_large_puts: int = 0

    @property
    def hit_rate(self) -> float:
        """Fraction of reads served from the cache (0 before any read)."""
        reads = self.hits + self.misses
        return self.hits / reads if reads else 0.0

    def as_dict(self) -> dict[str, int]:
        """Return the counters as a plain `dict`."""
        return asdict(self)
