"""InMemoryDatastore: an ephemeral datastore holding Python objects, optionally bounded (LRU).

Copy semantics: `InMemoryDatastore.put` stores a deep copy of the object and
`InMemoryDatastore.get` returns a deep copy of what is stored, so no caller can
change stored data by mutating an object it passed in or got back. Immutable
objects (see `is_immutable`: `bytes`, `str`, numbers, tuples of those, frozen
models, read-only NumPy arrays, Arrow tables ...) are shared, not copied.

With ``max_bytes`` and/or ``max_entries`` the datastore evicts its least
recently used datasets to respect the bound; that is how it serves as a cache
tier in front of a persistent datastore. An unbounded InMemoryDatastore never
evicts.
"""

from __future__ import annotations

__all__ = ["InMemoryDatastore", "StoredMemoryItemInfo", "is_immutable"]

import copy
import dataclasses
import datetime
import decimal
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Collection, Hashable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from ..core.dataset_ref import DatasetRef, ensure_resolved
from ..core.uri import DatasetRefURIs, ResourceURI
from ..errors import (
    ConfigError,
    DatasetExistsError,
    DatasetNotFoundError,
    DatastoreCapacityError,
    RecordExistsError,
    RecordNotFoundError,
)
from .base import Datastore, DatastoreCapabilities
from .sizes import estimate_nbytes

if TYPE_CHECKING:
    from ..core.ids import DatasetId
    from ..core.storage_class import StorageClass, StorageClassFactory


@dataclass(frozen=True, slots=True)
class StoredMemoryItemInfo:
    """Record of a dataset held by an `InMemoryDatastore`.

    Parameters
    ----------
    timestamp : `float`
        When the dataset was stored (Unix time).
    storageClass : `StorageClass`
        Storage class it was stored with.
    parentID : `uuid.UUID`
        ID of the dataset (components share their parent's ID).
    dataset_id : `uuid.UUID`
        ID of the dataset.
    file_size : `int`
        Estimated size in bytes of the stored object (see `estimate_nbytes`).
    """

    timestamp: float
    storageClass: StorageClass
    parentID: DatasetId
    dataset_id: DatasetId
    file_size: int = -1


_IMMUTABLE = frozenset(
    {
        bytes,
        str,
        int,
        float,
        complex,
        bool,
        type(None),
        range,
        datetime.date,
        datetime.datetime,
        datetime.time,
        datetime.timedelta,
        uuid.UUID,
        decimal.Decimal,
    }
)
_MUTABLE = frozenset({dict, list, set, bytearray})
_MISSING = object()
_MAX_DEPTH = 32


def is_immutable(obj: Any, _depth: int = 0) -> bool:
    """Return whether an object can be shared without a copy: nothing can change it in place.

    Immutable are: `bytes`, `str`, numbers, `None`, dates and times, UUIDs;
    tuples and frozensets of immutable objects; frozen dataclasses and frozen
    pydantic models whose fields are immutable (and that have no private
    attributes); Arrow tables and record batches; NumPy scalars; and read-only
    NumPy arrays of a non-object dtype whose memory no writable array shares.

    Parameters
    ----------
    obj : `object`
        Object to check.

    Returns
    -------
    immutable : `bool`
        `True` if ``obj`` can be shared; `False` when in doubt.

    Notes
    -----
    A read-only NumPy array that owns its memory could be made writable again
    (``flags.writeable = True``); sharing it assumes no one does that.
    """
    cls = type(obj)
    if cls in _IMMUTABLE:
        return True
    if cls in _MUTABLE or _depth > _MAX_DEPTH:
        return False
    if isinstance(obj, tuple | frozenset):
        return all(is_immutable(o, _depth + 1) for o in obj)
    module = cls.__module__
    if module == "numpy":
        return _numpy_immutable(obj)
    if module.startswith("pyarrow"):
        return cls.__name__ in ("Table", "RecordBatch")
    params = getattr(cls, "__dataclass_params__", None)
    if params is not None:
        return bool(params.frozen) and all(
            is_immutable(getattr(obj, f.name), _depth + 1) for f in dataclasses.fields(obj)
        )
    config = getattr(cls, "model_config", None)
    fields = getattr(cls, "__pydantic_fields__", None)
    if isinstance(config, dict) and isinstance(fields, dict):
        return (
            bool(config.get("frozen"))
            and not getattr(obj, "__pydantic_private__", None)
            and all(is_immutable(getattr(obj, name), _depth + 1) for name in fields)
            and all(is_immutable(v, _depth + 1) for v in _extra(obj))
        )
    return False


def _extra(obj: Any) -> Iterable[Any]:
    extra = getattr(obj, "__pydantic_extra__", None)
    return extra.values() if extra else ()


def _numpy_immutable(obj: Any) -> bool:
    import numpy as np

    if isinstance(obj, np.generic):
        return not obj.dtype.hasobject
    if not isinstance(obj, np.ndarray) or obj.flags.writeable or obj.dtype.hasobject:
        return False
    base = obj.base
    while isinstance(base, np.ndarray):  # a read-only view of a writable array changes with it
        if base.flags.writeable:
            return False
        base = base.base
    return base is None or isinstance(base, bytes)


def _copy(obj: Any) -> Any:
    return obj if is_immutable(obj) else copy.deepcopy(obj)


def _load_config(config: Mapping[str, Any] | str | Path | None) -> dict[str, Any]:
    if config is None:
        return {}
    if isinstance(config, Mapping):
        return dict(config)
    path = Path(config)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"Cannot read InMemoryDatastore config file {str(path)!r}: {err}") from err
    import yaml

    loaded = yaml.safe_load(text) or {}
    if not isinstance(loaded, Mapping):
        raise ConfigError(f"InMemoryDatastore config file {str(path)!r} must hold a mapping.")
    return dict(loaded.get("datastore", loaded))


class InMemoryDatastore(Datastore):
    """Ephemeral datastore of Python objects, ``mem://`` URIs, optional LRU bound.

    Parameters
    ----------
    config : `~collections.abc.Mapping`, `str` or `~pathlib.Path`, optional
        Configuration mapping or the path of a YAML/JSON file holding one. Keys:
        ``name``, ``max_bytes``, ``max_entries``.
    registry : `object`, optional
        Accepted for API compatibility and ignored (s3qbb datastores keep their own records).
    name : `str`, optional
        Datastore name; overrides ``config["name"]``.
    max_bytes : `int`, optional
        Bound on the estimated total size of stored objects; LRU eviction beyond it.
    max_entries : `int`, optional
        Bound on the number of stored datasets; LRU eviction beyond it.
    storageClassFactory : `StorageClassFactory`, optional
        Factory resolving storage class names.

    Examples
    --------
    >>> from s3qbb.datastores.memory import InMemoryDatastore
    >>> from s3qbb.core import DatasetRef, DatasetType, DimensionUniverse
    >>> store = InMemoryDatastore(name="scratch")
    >>> dt = DatasetType("counts", ["instrument"], "StructuredDataDict", universe=DimensionUniverse())
    >>> ref = DatasetRef(dt, {"instrument": "Cam"}, run="run1")
    >>> store.put({"n": 1}, ref)
    >>> store.get(ref)
    {'n': 1}
    """

    defaultConfigFile = "datastores/inMemoryDatastore.yaml"
    isEphemeral: ClassVar[bool] = True  # a class attribute, as in the seed
    """A new datastore is created every time and datasets disappear when the process shuts down."""

    def __init__(
        self,
        config: Mapping[str, Any] | str | Path | None = None,
        registry: Any = None,
        *,
        name: str | None = None,
        max_bytes: int | None = None,
        max_entries: int | None = None,
        storageClassFactory: StorageClassFactory | None = None,
    ) -> None:
        cfg = _load_config(config)
        unknown = set(cfg) - {"name", "max_bytes", "max_entries", "cls"}
        if unknown:
            raise ConfigError(f"Unknown InMemoryDatastore config keys {sorted(unknown)}.")
        super().__init__(name or cfg.get("name") or "InMemoryDatastore", storageClassFactory)
        self.max_bytes = max_bytes if max_bytes is not None else cfg.get("max_bytes")
        self.max_entries = max_entries if max_entries is not None else cfg.get("max_entries")
        for label, bound in (("max_bytes", self.max_bytes), ("max_entries", self.max_entries)):
            if bound is not None and (not isinstance(bound, int) or isinstance(bound, bool) or bound <= 0):
                raise ConfigError(f"InMemoryDatastore {label} must be a positive int or None, got {bound!r}.")
        bounded = self.max_bytes is not None or self.max_entries is not None
        self.config: dict[str, Any] = {
            **cfg,
            "name": self.name,
            "max_bytes": self.max_bytes,
            "max_entries": self.max_entries,
        }
        """The effective configuration (seed API: the configuration used to create the datastore)."""
        self.capabilities = DatastoreCapabilities(ephemeral=True, predicted_uris=True, bounded=bounded)
        self._objects: OrderedDict[Hashable, Any] = OrderedDict()  # datasets, or raw cache entries
        self._records: dict[DatasetId, StoredMemoryItemInfo] = {}
        self._sizes: dict[Hashable, int] = {}
        self._trash: dict[DatasetId, Any] = {}
        self._nbytes = 0
        self._lock = threading.RLock()

    # ------------------------------------------------------------- properties

    @property
    def nbytes(self) -> int:
        """Estimated total size of the stored objects."""
        return self._nbytes

    def __len__(self) -> int:
        return len(self._objects)

    # ---------------------------------------------------------------- records

    def addStoredItemInfo(self, ref: DatasetRef, info: StoredMemoryItemInfo) -> None:
        """Record internal storage information associated with a dataset.

        Raises
        ------
        RecordExistsError
            If a record for this dataset already exists (also a `KeyError`, as in daf_butler).
        """
        ensure_resolved(ref, "addStoredItemInfo")
        with self._lock:
            if ref.id in self._records:
                raise RecordExistsError(f"Datastore {self.name!r} already has a record for dataset {ref}.")
            self._records[ref.id] = info

    def getStoredItemInfo(self, ref: DatasetRef) -> StoredMemoryItemInfo:
        """Return the record of a dataset.

        Raises
        ------
        RecordNotFoundError
            If there is no record for the dataset (a `KeyError`).
        """
        ensure_resolved(ref, "getStoredItemInfo")
        try:
            return self._records[ref.id]
        except KeyError:
            raise RecordNotFoundError(f"Datastore {self.name!r} has no record of dataset {ref}.") from None

    def removeStoredItemInfo(self, ref: DatasetRef) -> None:
        """Remove the record of a dataset (and the object, which is unreachable without it).

        Raises
        ------
        RecordNotFoundError
            If there is no record for the dataset (a `KeyError`).
        """
        ensure_resolved(ref, "removeStoredItemInfo")
        with self._lock:
            if ref.id not in self._records:
                raise RecordNotFoundError(
                    f"Cannot remove the record of dataset {ref}: datastore {self.name!r} has none."
                )
            self._records.pop(ref.id)
            self._drop_object(ref.id)

    def _drop_object(self, dataset_id: Hashable) -> Any:
        obj = self._objects.pop(dataset_id, None)
        self._nbytes -= self._sizes.pop(dataset_id, 0)
        return obj

    # ------------------------------------------------------------- primitives

    def put(self, inMemoryDataset: Any, ref: DatasetRef) -> None:
        """Store a copy of a dataset.

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
        DatastoreCapacityError
            If the datastore is bounded and the object alone exceeds ``max_bytes``.
        """
        sc = self._check_put(inMemoryDataset, ref)
        stored = _copy(inMemoryDataset)
        nbytes = estimate_nbytes(stored)
        if self.max_bytes is not None and nbytes > self.max_bytes:
            raise DatastoreCapacityError(
                f"Dataset {ref} needs ~{nbytes} bytes, more than datastore {self.name!r} may hold "
                f"(max_bytes={self.max_bytes}); raise max_bytes."
            )
        with self._lock:
            if ref.id in self._records:
                raise DatasetExistsError(
                    f"Dataset {ref} is already stored in datastore {self.name!r}; "
                    "the stored copy is unchanged. "
                    "Remove it first to replace it."
                )
            self._records[ref.id] = StoredMemoryItemInfo(time.time(), sc, ref.id, ref.id, nbytes)
            self._put_raw(ref.id, stored, nbytes)
            self.stats.count_request("put")
            self.stats.add(bytes_written=nbytes)

    # Entries kept as given (no validation, no copy, no record): the cache tier of `CachingDatastore`
    # keeps its own entry objects here, under keys of its own, bounded and evicted like datasets.

    def _put_raw(self, key: Hashable, value: Any, nbytes: int) -> bool:
        """Keep ``value`` under ``key`` as is, counting ``nbytes``; `False` (keeping nothing) if taken.

        The caller checks ``nbytes`` against ``max_bytes`` first.
        """
        with self._lock:
            if key in self._objects:
                return False
            self._objects[key] = value
            self._sizes[key] = nbytes
            self._nbytes += nbytes
            self._evict(keep=key)
        return True

    def _get_raw(self, key: Hashable) -> tuple[bool, Any]:
        """Return ``(True, value)`` kept under ``key`` (now the most recently used), or ``(False, None)``."""
        with self._lock:
            value = self._objects.get(key, _MISSING)
            if value is _MISSING:
                return False, None
            self._objects.move_to_end(key)
            return True, value

    def _replace_raw(self, key: Hashable, old: Any, new: Any, nbytes: int) -> None:
        """Replace the value under ``key`` if it is still ``old``, counting ``nbytes`` for it now."""
        with self._lock:
            if self._objects.get(key) is not old:
                return
            self._objects[key] = new
            self._nbytes += nbytes - self._sizes.get(key, 0)
            self._sizes[key] = nbytes
            self._evict(keep=key)

    def _has_raw(self, key: Hashable) -> bool:
        """Return whether a value is kept under ``key``."""
        return key in self._objects

    def _drop_raw(self, keys: Iterable[Hashable]) -> None:
        """Forget the values under ``keys`` (unknown keys are ignored)."""
        with self._lock:
            for key in keys:
                self._drop_object(key)

    def _evict(self, keep: Hashable) -> None:
        while self._objects and (
            (self.max_bytes is not None and self._nbytes > self.max_bytes)
            or (self.max_entries is not None and len(self._objects) > self.max_entries)
        ):
            oldest = next(iter(self._objects))
            if oldest == keep:
                break
            self._drop_object(oldest)
            self._records.pop(oldest, None)
            self.stats.add(evictions=1)

    def get(
        self,
        ref: DatasetRef,
        parameters: Mapping[str, Any] | None = None,
        storageClass: StorageClass | str | None = None,
    ) -> Any:
        """Return a copy of a stored dataset, a component of it, or a subset.

        Raises
        ------
        DatasetNotFoundError
            If the dataset is not stored here.
        InvalidParameterError
            If a parameter is not declared by the storage class.
        StorageClassError
            If the storage class override cannot be converted.
        """
        plan = self._plan_read(ref, parameters, storageClass)
        self.stats.count_request("get")
        found, obj = self._get_raw(ref.id) if ref.id in self._records else (False, None)
        self.stats.add(**{"hits" if found else "misses": 1})
        if not found:
            raise DatasetNotFoundError(
                f"Dataset {ref} is not in datastore {self.name!r} ({self._uri(plan.parent, False)})."
            )
        # Component extraction, parameters and conversion all work on a private copy.
        return self._finish_read(plan, _copy(obj))

    def exists(self, ref: DatasetRef) -> bool:
        """Return whether the dataset is stored here."""
        ensure_resolved(ref, "exists")
        return ref.id in self._records and ref.id in self._objects

    def knows(self, ref: DatasetRef) -> bool:
        """Return whether there is a record of the dataset."""
        ensure_resolved(ref, "knows")
        return ref.id in self._records

    def remove(self, ref: DatasetRef) -> None:
        """Delete a dataset now.

        Raises
        ------
        DatasetNotFoundError
            If the dataset is not stored here.
        """
        ensure_resolved(ref, "remove")
        with self._lock:
            if ref.id not in self._records:
                raise DatasetNotFoundError(
                    f"Cannot remove dataset {ref}: it is not in datastore {self.name!r}."
                )
            self._records.pop(ref.id)
            self._drop_object(ref.id)
            self.stats.count_request("delete")

    def trash(self, ref: DatasetRef | Iterable[DatasetRef], ignore_errors: bool = False) -> None:
        """Forget datasets now; their objects are released by `emptyTrash`.

        ``ignore_errors`` is `False` by default, as in daf_butler's ``InMemoryDatastore``.

        Raises
        ------
        DatasetNotFoundError
            If a dataset is unknown and ``ignore_errors`` is `False` (a `FileNotFoundError`).
        """
        refs = [ref] if isinstance(ref, DatasetRef) else list(ref)
        with self._lock:
            for r in refs:
                ensure_resolved(r, "trash")
                if r.id not in self._records:
                    if ignore_errors:
                        continue
                    raise DatasetNotFoundError(
                        f"Cannot trash dataset {r}: it is not in datastore {self.name!r}."
                    )
                self._records.pop(r.id)
                obj = self._drop_object(r.id)
                if obj is not None:
                    self._trash[r.id] = obj

    def emptyTrash(
        self, ignore_errors: bool = False, refs: Collection[DatasetRef] | None = None, dry_run: bool = False
    ) -> set[ResourceURI]:
        """Release the objects of trashed datasets (of ``refs`` only, if given); return no URI, as daf_butler.

        Nothing here can fail: ``ignore_errors`` (`False` by default, as daf_butler's) changes nothing.
        """
        with self._lock:
            ids = list(self._trash) if refs is None else [r.id for r in refs if r.id in self._trash]
            for dataset_id in [] if dry_run else ids:
                del self._trash[dataset_id]
        return set()

    def forget(self, refs: Iterable[DatasetRef]) -> None:
        """Drop datasets (for a memory datastore the record and the object are one)."""
        with self._lock:
            for ref in refs:
                ensure_resolved(ref, "forget")
                self._records.pop(ref.id, None)
                self._drop_object(ref.id)

    def _uri(self, ref: DatasetRef, predicted: bool) -> ResourceURI:
        uri = f"mem://{quote(self.name, safe='')}/{ref.datasetType.name}/{ref.id}"
        return ResourceURI(uri + "#predicted" if predicted else uri)

    def getURIs(self, ref: DatasetRef, predict: bool = False) -> DatasetRefURIs:
        """Return ``mem://`` URIs; predicted ones end with ``#predicted``.

        Raises
        ------
        DatasetNotFoundError
            If the dataset is not stored and ``predict`` is `False`.
        """
        ensure_resolved(ref, "getURIs")
        stored = self.exists(ref)
        if not stored and not predict:
            raise DatasetNotFoundError(
                f"Dataset {ref} is not in datastore {self.name!r}; pass predict=True for a predicted URI."
            )
        return DatasetRefURIs(self._uri(ref, not stored))

    def clear(self) -> None:
        """Drop every dataset, record and trashed object."""
        with self._lock:
            self._objects.clear()
            self._sizes.clear()
            self._records.clear()
            self._trash.clear()
            self._nbytes = 0

    def close(self) -> None:
        """Release every stored object."""
        self.clear()
