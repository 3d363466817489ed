"""CachingDatastore: a bounded in-memory cache in front of another datastore (S3 in practice).

* ``put`` writes to the backend first and then keeps the dataset in the cache
  (write-through): the bytes the backend sent, for a backend that serialises
  (`~s3qbb.datastores.encoding.EncodingDatastore`, i.e. S3), else a copy. A
  dataset bigger than ``max_put_bytes`` or the cache, or a cache failure,
  never fails the put: the dataset is stored, just not cached.
* ``get`` serves a cached dataset with no backend request; a miss reads the
  backend and caches the bytes read (or a copy of the object). Whole parent
  datasets are cached (in the storage class of the parent ref, once per
  storage class read); components, read parameters and ``storageClass``
  overrides are applied to the caller's own object. A partial read of a
  dataset that is not cached uses the backend's partial read (HTTP ranges)
  and is not cached.
* ``exists``, ``stored`` and ``stored_many`` always ask the backend, and drop
  the cached copy of a dataset the backend reports missing.
* ``remove``, ``trash`` and ``forget`` drop cached copies before and after the
  backend call; a read racing with them cannot put the old object back.
* URIs, records and the root are the backend's; ``stats`` is the backend's
  `DatastoreStats`, `CachingDatastore.cache_stats` has the cache's counters.

A hit returns an object of the caller's own (decoded anew, copied, or
immutable: see `s3qbb.datastores.cache_tier`), equal to what a backend read
returns: over S3 it is decoded from the same bytes by the same formatter
(JSON turns tuples into lists either way). It does not see an artifact
changed behind the datastore's back until `CachingDatastore.invalidate` (or a
negative ``exists``).
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_CACHE_MAX_BYTES",
    "DEFAULT_CACHE_MAX_ENTRIES",
    "DEFAULT_CACHE_MAX_PUT_BYTES",
    "CacheStats",
    "CacheTier",
    "CachingDatastore",
    "NullCache",
    "StoreOutcome",
]

import copy
import logging
import threading
from collections.abc import Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..core.dataset_ref import DatasetRef, ensure_resolved
from ..errors import ConfigError
from .base import Datastore, raise_first
from .cache_tier import CacheStats, CacheTier, NullCache, StoreOutcome, _MemoryTier
from .encoding import EncodingDatastore
from .memory import InMemoryDatastore, is_immutable
from .sizes import estimate_nbytes

if TYPE_CHECKING:
    from pathlib import Path

    from ..core.attempt import WriteToken
    from ..core.dataset_type import DatasetType
    from ..core.ids import DatasetId
    from ..core.records import DatastoreRecordData
    from ..core.storage_class import StorageClass
    from ..core.uri import DatasetRefURIs, ResourceURI
    from .base import ReadPlan
    from .encoding import Encoded

_LOG = logging.getLogger(__name__)

DEFAULT_CACHE_MAX_BYTES = 256 * 1024 * 1024
"""Size bound of the default cache (256 MiB, estimated with `estimate_nbytes`)."""
DEFAULT_CACHE_MAX_ENTRIES = 10_000
"""Entry bound of the default cache."""
DEFAULT_CACHE_MAX_PUT_BYTES = 16 * 1024 * 1024
"""Datasets larger than this (16 MiB, serialised) are not cached when put; they are when read."""

_STRIPES = 64  # generation counters, by dataset ID; a power of two


class CachingDatastore(Datastore):
    """A datastore putting a bounded in-memory cache in front of another datastore.

    Parameters
    ----------
    backend : `Datastore`
        The datastore that owns the data (an `S3Datastore` in practice).
    cache : `InMemoryDatastore` or `CacheTier`, optional
        The cache: a *bounded* `InMemoryDatastore` (``max_bytes`` and/or
        ``max_entries``), a `NullCache` to disable caching, or `None` for an
        `InMemoryDatastore` bounded by `DEFAULT_CACHE_MAX_BYTES` and
        `DEFAULT_CACHE_MAX_ENTRIES`.
    name : `str`, optional
        Name of this datastore; the backend's name by default (records and
        provenance always carry the backend's name).
    write_through : `bool`, optional
        Keep every dataset put (default). With `False` the cache is filled by
        reads only.
    max_put_bytes : `int` or `None`, optional
        Datasets bigger than this (their serialised size over S3, else
        `estimate_nbytes`) are not cached when put, only when read;
        `DEFAULT_CACHE_MAX_PUT_BYTES` by default, `None` for no bound but the cache's.

    Raises
    ------
    ConfigError
        If ``backend`` is not a `Datastore` or ``cache`` is an unbounded `InMemoryDatastore`.

    Examples
    --------
    >>> from s3qbb.datastores.caching import CachingDatastore
    >>> from s3qbb.datastores.memory import InMemoryDatastore
    >>> from s3qbb.testing.data import RefMaker
    >>> store = CachingDatastore(InMemoryDatastore(name="backend"))
    >>> ref = RefMaker().make("StructuredDataDict")
    >>> store.put({"a": 1}, ref)
    >>> store.get(ref)
    {'a': 1}
    >>> store.cache_stats.hits
    1
    """

    def __init__(
        self,
        backend: Datastore,
        cache: InMemoryDatastore | CacheTier | None = None,
        *,
        name: str | None = None,
        write_through: bool = True,
        max_put_bytes: int | None = DEFAULT_CACHE_MAX_PUT_BYTES,
    ) -> None:
        if not isinstance(backend, Datastore):
            raise ConfigError(f"CachingDatastore needs a Datastore backend, got {type(backend).__name__}.")
        super().__init__(name or backend.name, backend.storageClassFactory)
        self.backend = backend
        self.capabilities = backend.capabilities
        self.stats = backend.stats
        self.write_through = write_through
        self.max_put_bytes = max_put_bytes
        # A backend that serialises hands over the bytes it wrote or read: the cache keeps them as is.
        self._encoding: EncodingDatastore | None = backend if isinstance(backend, EncodingDatastore) else None
        if cache is None:
            cache = InMemoryDatastore(
                name=f"{self.name}-cache",
                max_bytes=DEFAULT_CACHE_MAX_BYTES,
                max_entries=DEFAULT_CACHE_MAX_ENTRIES,
                storageClassFactory=backend.storageClassFactory,
            )
        if isinstance(cache, InMemoryDatastore):
            if not cache.capabilities.bounded:
                raise ConfigError(
                    f"The cache of datastore {self.name!r} must be bounded: give the InMemoryDatastore "
                    "max_bytes and/or max_entries, or pass cache=None for the default bounds."
                )
            if cache is backend:
                raise ConfigError(f"Datastore {self.name!r}: the cache cannot be the backend itself.")
            self._tier: CacheTier = _MemoryTier(cache)
        elif isinstance(cache, CacheTier):
            self._tier = cache
        else:
            raise ConfigError(
                f"The cache of datastore {self.name!r} must be an InMemoryDatastore or a NullCache, "
                f"got {type(cache).__name__}."
            )
        self.cache = cache
        self._lock = threading.RLock()
        self._generations = [0] * _STRIPES
        self._hits = self._misses = 0
        self._skipped_too_large = self._skipped_stale = self._store_errors = self._skipped_large_puts = 0

    @classmethod
    def disabled(cls, backend: Datastore, *, name: str | None = None) -> CachingDatastore:
        """Return a wrapper of ``backend`` whose cache, a `NullCache`, holds nothing."""
        return cls(backend, NullCache(), name=name)

    # -------------------------------------------------------------- counters

    @property
    def cache_stats(self) -> CacheStats:
        """Counters of the cache tier (a consistent snapshot)."""
        with self._lock:
            return CacheStats(
                hits=self._hits,
                misses=self._misses,
                evictions=self._tier.evictions,
                bytes_cached=self._tier.nbytes,
                entries=self._tier.entries,
                skipped_too_large=self._skipped_too_large,
                skipped_stale=self._skipped_stale,
                store_errors=self._store_errors,
                skipped_large_puts=self._skipped_large_puts,
            )

    # ------------------------------------------------------- cache plumbing

    @staticmethod
    def _stripe(dataset_id: DatasetId) -> int:
        return dataset_id.int & (_STRIPES - 1)

    def _token(self, dataset_id: DatasetId) -> int:
        """Return the generation of a dataset ID; read it *before* the backend call."""
        with self._lock:
            return self._generations[self._stripe(dataset_id)]

    def _lookup(self, plan: ReadPlan) -> tuple[bool, Any]:
        found, obj = self._tier.lookup(plan.parent, plan.stored)  # copies outside our lock
        with self._lock:
            if found:
                self._hits += 1
            else:
                self._misses += 1
        return found, obj

    def _populate(self, obj: Any, parent: DatasetRef, token: int, encoded: Encoded | None = None) -> None:
        """Cache a whole dataset (its bytes if given) unless it was invalidated since ``token`` was read."""
        with self._lock:
            if self._generations[self._stripe(parent.id)] != token:
                self._skipped_stale += 1
                return
            try:
                if encoded is not None:
                    outcome = self._tier.store_encoded(encoded, parent)
                else:
                    outcome = self._tier.store(obj, parent)
            except Exception as err:  # a cache failure must never fail the read or write
                self._store_errors += 1
                _LOG.warning("Datastore %r could not cache dataset %s: %r", self.name, parent, err)
                return
            if outcome == "too_large":
                self._skipped_too_large += 1

    def _keep_put(self, obj: Any, ref: DatasetRef, token: int, encoded: Encoded | None) -> None:
        """Cache a dataset just put (write-through), unless it is bigger than ``max_put_bytes``."""
        if self.max_put_bytes is not None:
            size = len(encoded.data) if encoded is not None else estimate_nbytes(obj)
            if size > self.max_put_bytes:
                with self._lock:
                    self._skipped_large_puts += 1
                return
        if encoded is None:
            try:
                obj = self.backend.round_trip(obj, ref)
            except Exception as err:  # caching is an optimisation: never fail a stored put
                _LOG.warning("Not caching %s: %s", ref, err)
                return
        self._populate(obj, ref, token, encoded)

    def _invalidate(self, refs: list[DatasetRef]) -> None:
        with self._lock:
            for ref in refs:
                self._generations[self._stripe(ref.id)] += 1
            self._tier.drop(refs)

    def _partial_read(self, plan: ReadPlan) -> bool:
        """Whether a read not served by the cache should go to the backend's partial read."""
        return bool(plan.parameters) and plan.component is None and self.backend.capabilities.partial_reads

    def invalidate(self, refs: DatasetRef | Iterable[DatasetRef]) -> None:
        """Drop the cached copies of datasets (unknown ones are ignored; the backend is untouched).

        Raises
        ------
        AmbiguousDatasetError
            If a ref is not a resolved `DatasetRef`.
        """
        refs = [refs] if isinstance(refs, DatasetRef) else list(refs)
        self._invalidate([ensure_resolved(r, "CachingDatastore.invalidate") for r in refs])

    def clear_cache(self) -> None:
        """Drop every cached copy (the backend is untouched)."""
        with self._lock:
            self._generations = [g + 1 for g in self._generations]
            self._tier.clear()

    # ------------------------------------------------------------- put/get

    def put(self, inMemoryDataset: Any, ref: DatasetRef) -> None:
        """Store a dataset in the backend, then keep a copy in the cache.

        Raises
        ------
        AmbiguousDatasetError
            If ``ref`` is not a resolved `DatasetRef`.
        DatasetTypeError
            If ``ref`` is a component ref.
        StorageClassError
            If the object does not match the storage class.
        DatasetExistsError
            If the dataset is already stored (the stored copy is left intact).
        """
        ensure_resolved(ref, "CachingDatastore.put")
        token = self._token(ref.id)
        encoded = None
        if self._encoding is not None:
            encoded = self._encoding.put_encoded(inMemoryDataset, ref)
        else:
            self.backend.put(inMemoryDataset, ref)
        if self.write_through:
            self._keep_put(inMemoryDataset, ref, token, encoded)

    def get(
        self,
        ref: DatasetRef,
        parameters: Mapping[str, Any] | None = None,
        storageClass: StorageClass | str | None = None,
    ) -> Any:
        """Read a dataset from the cache, or from the backend on a miss (caching it).

        Raises
        ------
        DatasetNotFoundError
            If the dataset is neither cached nor stored in the backend.
        InvalidParameterError
            If a parameter is not declared by the storage class.
        StorageClassError
            If the storage class override cannot be converted.
        """
        plan = self._plan_read(ref, parameters, storageClass)
        found, obj = self._lookup(plan)
        if found:
            return self._finish_read(plan, obj)
        if self._partial_read(plan):
            return self.backend.get(ref, parameters, storageClass)
        token = self._token(plan.parent.id)
        encoded = None
        if self._encoding is not None:
            # A plain read of the whole dataset is planned already: the backend need not plan it again.
            whole = plan.ref is plan.parent and not plan.parameters and plan.target is plan.stored
            obj, encoded = self._encoding.get_encoded(plan.parent, plan=plan if whole else None)
        else:
            obj = self.backend.get(plan.parent)
        self._populate(obj, plan.parent, token, _worth_keeping(obj, encoded))
        return self._finish_read(plan, obj)

    def put_many(self, items: Iterable[tuple[Any, DatasetRef]]) -> None:
        """Store many datasets with the backend's bulk put; cache them if all succeeded.

        If some fail, the first error is raised (see `Datastore.put_many`) and
        nothing is cached: which items succeeded is not known here.
        """
        items = list(items)
        tokens = {ref.id: self._token(ref.id) for _, ref in items if isinstance(ref, DatasetRef)}
        encoded: Mapping[DatasetRef, Encoded] = {}
        if self._encoding is not None:
            encoded = self._encoding.put_many_encoded(items)
        else:
            self.backend.put_many(items)
        if self.write_through:
            for obj, ref in items:
                self._keep_put(obj, ref, tokens[ref.id], encoded.get(ref))

    def get_many(
        self, refs: Iterable[DatasetRef], parameters: Mapping[str, Any] | None = None
    ) -> dict[DatasetRef, Any]:
        """Read many datasets: hits from the cache, misses with the backend's bulk read.

        Raises
        ------
        DatasetNotFoundError
            If any dataset is missing (after the others were read).
        """
        refs = list(refs)
        errors: list[BaseException] = []
        out: dict[DatasetRef, Any] = {}
        partial: list[DatasetRef] = []
        by_parent: dict[DatasetRef, list[ReadPlan]] = {}
        for ref in dict.fromkeys(refs):
            try:
                plan = self._plan_read(ref, parameters, None)
                found, obj = self._lookup(plan)
                if found:
                    out[ref] = self._finish_read(plan, obj)
                elif self._partial_read(plan):
                    partial.append(ref)
                else:
                    by_parent.setdefault(plan.parent, []).append(plan)
            except Exception as err:
                errors.append(err)
        tokens = {parent: self._token(parent.id) for parent in by_parent}
        if partial:
            try:
                out.update(self.backend.get_many(partial, parameters))
            except Exception as err:
                errors.append(err)
        fetched: dict[DatasetRef, Any] = {}
        encodings: dict[DatasetRef, Encoded] = {}
        if by_parent:
            try:
                if self._encoding is not None:
                    for parent, (obj, enc) in self._encoding.get_many_encoded(list(by_parent)).items():
                        fetched[parent], encodings[parent] = obj, enc
                else:
                    fetched = self.backend.get_many(list(by_parent))
            except Exception as err:
                errors.append(err)
        for parent, obj in fetched.items():
            self._populate(obj, parent, tokens[parent], _worth_keeping(obj, encodings.get(parent)))
            for i, plan in enumerate(by_parent[parent]):
                try:  # several refs of one parent (components) must not share objects
                    out[plan.ref] = self._finish_read(plan, obj if i == 0 else copy.deepcopy(obj))
                except Exception as err:
                    errors.append(err)
        raise_first(errors, "get_many")
        return {ref: out[ref] for ref in refs}

    def transfer(self, inputDatastore: Datastore, ref: DatasetRef) -> None:
        """Let the backend copy a dataset from another datastore (cached on first read)."""
        self.backend.transfer(inputDatastore, ref)

    # ----------------------------------------------------------- existence

    def exists(self, ref: DatasetRef) -> bool:
        """Ask the backend whether the artifact exists; drop the cached copy if it does not."""
        present = self.backend.exists(ref)
        if not present:
            self._invalidate([ref])
        return present

    def stored_many(self, refs: Iterable[DatasetRef]) -> dict[DatasetRef, bool]:
        """Ask the backend which artifacts exist; drop the cached copies of missing ones."""
        result = self.backend.stored_many(refs)
        missing = [ref for ref, present in result.items() if not present]
        if missing:
            self._invalidate(missing)
        return result

    def knows(self, ref: DatasetRef) -> bool:
        """Return whether the backend has a record of the dataset."""
        return self.backend.knows(ref)

    # ------------------------------------------------------------- removal

    def remove(self, ref: DatasetRef) -> None:
        """Drop the cached copy and delete the dataset from the backend (which raises if unknown)."""
        refs = [ensure_resolved(ref, "CachingDatastore.remove")]
        self._invalidate(refs)
        try:
            self.backend.remove(ref)
        finally:  # a read that raced with the removal may have cached the dataset again
            self._invalidate(refs)

    def trash(self, ref: DatasetRef | Iterable[DatasetRef], ignore_errors: bool = True) -> None:
        """Drop the cached copies and trash the datasets in the backend."""
        refs = [ref] if isinstance(ref, DatasetRef) else list(ref)
        refs = [ensure_resolved(r, "CachingDatastore.trash") for r in refs]
        self._invalidate(refs)
        try:
            self.backend.trash(refs, ignore_errors=ignore_errors)
        finally:
            self._invalidate(refs)

    def emptyTrash(
        self, ignore_errors: bool = True, refs: Collection[DatasetRef] | None = None, dry_run: bool = False
    ) -> set[ResourceURI]:
        """Let the backend delete the artifacts of trashed datasets (already uncached)."""
        return self.backend.emptyTrash(ignore_errors=ignore_errors, refs=refs, dry_run=dry_run)

    def forget(self, refs: Iterable[DatasetRef]) -> None:
        """Drop the cached copies and the backend's records of datasets."""
        refs = [ensure_resolved(r, "CachingDatastore.forget") for r in refs]
        self._invalidate(refs)
        try:
            self.backend.forget(refs)
        finally:
            self._invalidate(refs)

    def validateConfiguration(
        self, entities: Iterable[DatasetRef | DatasetType | StorageClass], logFailures: bool = False
    ) -> None:
        """Validate with the backend, which stores the datasets (the cache keeps what it stores)."""
        self.backend.validateConfiguration(entities, logFailures)

    # --------------------------------------------------- URIs and records

    def getURIs(self, ref: DatasetRef, predict: bool = False) -> DatasetRefURIs:
        """Return the backend's URIs of a dataset (never a cache URI)."""
        return self.backend.getURIs(ref, predict)

    def getURI(self, ref: DatasetRef, predict: bool = False) -> ResourceURI:
        """Return the backend's URI of a dataset (never a cache URI)."""
        return self.backend.getURI(ref, predict)

    def get_many_uris(
        self, refs: Iterable[DatasetRef], predict: bool = False, allow_missing: bool = False
    ) -> dict[DatasetRef, DatasetRefURIs]:
        """Return the backend's URIs of many datasets."""
        return self.backend.get_many_uris(refs, predict=predict, allow_missing=allow_missing)

    def export_records(self, refs: Iterable[DatasetRef]) -> dict[str, DatastoreRecordData]:
        """Return the backend's records (the cache never appears in records)."""
        return self.backend.export_records(refs)

    def import_records(self, data: Mapping[str, DatastoreRecordData]) -> None:
        """Import records into the backend."""
        self.backend.import_records(data)

    @property
    def write_token(self) -> WriteToken:
        """The backend's write token (setting it sets the backend's)."""
        return self.backend.write_token

    @write_token.setter
    def write_token(self, token: WriteToken) -> None:
        self.backend.write_token = token

    def put_sidecar(
        self, path: str, data: bytes, *, overwrite: bool = False, replace_earlier: bool = False
    ) -> ResourceURI | None:
        """Write a non-dataset file through the backend."""
        return self.backend.put_sidecar(path, data, overwrite=overwrite, replace_earlier=replace_earlier)

    def read_sidecar(self, path: str) -> bytes | None:
        """Read a non-dataset file through the backend."""
        return self.backend.read_sidecar(path)

    def delete_sidecar(self, path: str) -> None:
        """Delete a non-dataset file through the backend."""
        self.backend.delete_sidecar(path)

    def export_records_file(self, path: Path) -> Path | None:
        """Write the backend's records as a SQLite file."""
        return self.backend.export_records_file(path)

    def round_trip(self, obj: Any, ref: DatasetRef) -> Any:
        """Return ``obj`` as the backend's reads return it."""
        return self.backend.round_trip(obj, ref)

    def get_root(self) -> str | None:
        """Return the backend's root URI."""
        return self.backend.get_root()

    def close(self) -> None:
        """Close the backend and drop every cached copy."""
        try:
            self.backend.close()
        finally:
            self.clear_cache()

    def __repr__(self) -> str:
        return f"CachingDatastore({self.name!r}, backend={self.backend!r}, cache={self._tier!r})"


_KEEP_BYTES_ABOVE = 1024 * 1024
"""Size above which a read dataset is kept as its bytes even where decoding costs more than copying."""


def _worth_keeping(obj: Any, encoded: Encoded | None) -> Encoded | None:
    """Return the bytes a read decoded if the cache should keep them, `None` to keep the object.

    Keeping the bytes is free, and each hit then decodes them. The object is
    kept instead when that is free too (it is immutable: shared), and where
    decoding costs more than copying (NumPy, YAML: ``copy_by_decoding`` is
    `False`) for a dataset of at most `_KEEP_BYTES_ABOVE` bytes: copying a
    small object now is cheaper than decoding it on a hit. A bigger one is kept
    as bytes: its copy would cost every read, its decode only a hit.
    """
    if encoded is None or is_immutable(obj):
        return None
    if encoded.copy_by_decoding or len(encoded.data) > _KEEP_BYTES_ABOVE:
        return encoded
    return None
