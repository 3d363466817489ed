"""S3Datastore: datasets as objects in an S3-compatible bucket, records in memory or SQLite.

Request budget (what users pay for):

* `S3Datastore.put` of a small dataset: one create-only PUT (``If-None-Match: *``)
  carrying its checksum; size and checksum are recorded from what was sent, no HEAD.
* `S3Datastore.get`: one GET, body read retried with it, checksum verified.
  Read parameters a formatter can serve from a byte range (NumPy rows) cost
  at most one ranged GET for the leading checksum blocks (the header) and one
  for the blocks holding the rows, every block verified (objects of one block
  are read whole: one GET). A read that fails its checksum is read once more.
* `S3Datastore.getURI` / ``getURIs`` with ``predict=True``: zero requests.
* `S3Datastore.stored_many`: about one LIST per 1,000 keys where refs share a
  prefix, else concurrent HEADs.
"""

from __future__ import annotations

__all__ = ["S3Datastore"]

import logging
import threading
from collections.abc import Collection, Iterable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from ..config import S3EndpointConfig
from ..core.dataset_ref import DatasetRef, ensure_resolved
from ..core.records import StoredFileInfo, check_record_path
from ..core.uri import DatasetRefURIs, ResourceURI
from ..errors import (
    DatasetNotFoundError,
    DatasetTypeError,
)
from ..records.contract import open_records_store
from ..s3.ownership import other_dataset
from ..s3.policy import make_retry_policy
from . import bulk, writes
from .base import Datastore, DatastoreCapabilities, DatastoreStats
from .encoding import Encoded
from .layout import S3Layout, parse_s3_root  # noqa: F401 (imported from here too)
from .listing import find_existing
from .verified_read import ReadTarget, VerifiedReader

if TYPE_CHECKING:
    from pathlib import Path

    from mypy_boto3_s3 import S3Client

    from ..core.dataset_type import DatasetType
    from ..core.records import DatastoreRecordData
    from ..core.storage_class import StorageClass, StorageClassFactory
    from ..formatters import FormatterFactory
    from ..records.contract import RecordsStore
    from ..retry import RetryPolicy
    from ..s3.objects import S3Bucket
    from .base import ReadPlan
    from .templates import FileTemplates

_LOG = logging.getLogger(__name__)
_T = TypeVar("_T")
_J = TypeVar("_J")


class S3Datastore(Datastore):
    """Datastore on an S3-compatible bucket.

    Parameters
    ----------
    root : `str`
        ``s3://bucket/prefix`` under which every artifact is written.
    name : `str`, optional
        Datastore name (appears in records and provenance).
    config : `s3qbb.config.S3EndpointConfig`, optional
        Endpoint, credentials, checksum, encryption, multipart and retry settings;
        `S3EndpointConfig.from_env` if not given.
    records : `~s3qbb.records.contract.RecordsStore` or `str`, optional
        Records store, or the SQLite filename of a new one; ``":memory:"`` (the default)
        makes a `~s3qbb.records.memory.MemoryRecordsStore`.
    templates : `FileTemplates` or `~collections.abc.Mapping`, optional
        Key templates by dataset type or storage class name.
    formatters : `FormatterFactory`, optional
        Formatter registry; the shipped formatters by default.
    formatter_overrides : `~collections.abc.Mapping` [`str`, `str`], optional
        Formatter name by dataset type name or storage class name.
    storageClassFactory : `StorageClassFactory`, optional
        Storage class registry.
    trust_mode : `bool`, optional
        Read datasets that have no record from their templated location.
    allow_pickle : `bool`, optional
        Allow the pickle formatter (it executes code when reading).
    client : `mypy_boto3_s3.S3Client`, optional
        boto3 client to use instead of the shared one for ``config`` (tests).
    retry : `s3qbb.retry.RetryPolicy`, optional
        Retry policy; one built from ``config.retry`` by default.
    max_workers : `int`, optional
        Threads for bulk operations; ``config.max_concurrency`` by default.
    daf_butler_compat : `bool`, optional
        Name in records the daf_butler formatter class of each formatter that
        has one (JSON, YAML, Parquet, pickle), so daf_butler can read the datasets.

    Examples
    --------
    A datastore over a bucket (requests are only made when datasets move)::

        store = S3Datastore("s3://my-bucket/repo", config=S3EndpointConfig(endpoint_url=url))
        store.put({"a": 1}, ref)
        store.get(ref)
    """

    capabilities = DatastoreCapabilities(
        ephemeral=False, predicted_uris=True, partial_reads=True, persistent_records=True, checksums=True
    )

    def __init__(
        self,
        root: str,
        *,
        name: str = "S3Datastore",
        config: S3EndpointConfig | None = None,
        records: RecordsStore | str = ":memory:",
        templates: FileTemplates | Mapping[str, str] | None = None,
        formatters: FormatterFactory | None = None,
        formatter_overrides: Mapping[str, str] | None = None,
        storageClassFactory: StorageClassFactory | None = None,
        trust_mode: bool = False,
        allow_pickle: bool = False,
        client: S3Client | None = None,
        retry: RetryPolicy | None = None,
        max_workers: int | None = None,
        daf_butler_compat: bool = False,
    ) -> None:
        super().__init__(name, storageClassFactory)
        self.layout = S3Layout(
            root,
            templates,
            formatters,
            formatter_overrides,
            allow_pickle=allow_pickle,
            daf_butler_compat=daf_butler_compat,
        )
        self.bucket_name, self.prefix, self.root = (
            self.layout.bucket_name,
            self.layout.prefix,
            self.layout.root,
        )
        self.config = config if config is not None else S3EndpointConfig.from_env()
        self.retry = retry if retry is not None else make_retry_policy(self.config)
        self.stats = DatastoreStats(retry_source=lambda: self.retry.stats.retries)
        self._client = client
        self._client_lock = threading.Lock()
        self._bucket: S3Bucket | None = None
        self._reader: VerifiedReader | None = None
        self._records = open_records_store(records, name)
        self._pending_imports: list[DatastoreRecordData] = []
        self.trust_mode = trust_mode
        self.max_workers = max_workers or self.config.max_concurrency
        self._pool: ThreadPoolExecutor | None = None
        self.in_flight = writes.InFlight()
        """Datasets this datastore's threads are writing (`~s3qbb.datastores.writes.InFlight`)."""

    # ------------------------------------------------------------ plumbing

    @property
    def bucket(self) -> S3Bucket:
        """The object layer (created, with its client, on first use)."""
        if self._bucket is None:
            with self._client_lock:
                if self._bucket is None:
                    from ..s3.objects import S3Bucket  # the transport's library is imported on first use

                    self._bucket = S3Bucket.open(
                        self.config,
                        self.bucket_name,
                        retry=self.retry,
                        count=self.stats.count_request,
                        client=self._client,
                    )
        return self._bucket

    @property
    def reader(self) -> VerifiedReader:
        """Verified reads of datasets (whole, or by checksum block), on `bucket`."""
        if self._reader is None:
            self._reader = VerifiedReader(self.bucket, self.stats, self.retry.stats)
        return self._reader

    @property
    def records(self) -> RecordsStore:
        """The records store (imports deferred by `import_records` are applied first)."""
        if self._pending_imports:
            with self._client_lock:
                while self._pending_imports:
                    self._records.import_records(self._pending_imports.pop(0))
        return self._records

    @property
    def pool(self) -> Executor:
        """Thread pool of the bulk operations (created on first use)."""
        if self._pool is None:
            with self._client_lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix=f"s3qbb-{self.name}")
        return self._pool

    def get_root(self) -> str:
        """Return ``s3://bucket/prefix``."""
        return self.root

    def key(self, path: str) -> str:
        """Return the object key of a path relative to the root."""
        return self.layout.key(path)

    def bucket_uri(self, path: str) -> str:
        """Return ``s3://bucket/key`` of a path relative to the root, the key as it is (for messages)."""
        return self.layout.bucket_uri(path)

    def resource_uri(self, path: str, *, predicted: bool = False) -> ResourceURI:
        """Return the `ResourceURI` of a path relative to the root (its key percent-encoded)."""
        return ResourceURI.for_key("s3", self.bucket_name, self.key(path), predicted=predicted)

    def predicted_record(self, ref: DatasetRef) -> StoredFileInfo:
        """Return the record a put of ``ref`` would write, without size or checksum (no request).

        Used to adopt objects found at their templated location (trust mode, recovery).
        """
        return self.layout.predicted_info(ref)

    def _record(self, ref: DatasetRef) -> StoredFileInfo | None:
        infos = self.records.get(ref.id)
        return infos[0] if infos else None

    def _record_or_raise(self, ref: DatasetRef) -> StoredFileInfo:
        return self._found_or_raise(ref, self._record(ref))

    def _found_or_raise(self, ref: DatasetRef, info: StoredFileInfo | None) -> StoredFileInfo:
        """Return ``info`` (the record of ``ref`` found), the predicted record in trust mode, else raise."""
        if info is not None:
            return info
        if self.trust_mode:
            return self.layout.predicted_info(ref)
        predicted = self.bucket_uri(self.layout.predicted_info(ref).path)
        raise DatasetNotFoundError(
            f"Dataset {ref} is not in datastore {self.name!r} (no record; predicted location {predicted}). "
            "Check that the producing quantum ran and its records were imported, or enable trust mode to "
            "read by location."
        )

    # ----------------------------------------------------------------- put

    def put(self, inMemoryDataset: Any, ref: DatasetRef) -> None:
        """Write a dataset with one create-only PUT and record it (see `put_encoded`)."""
        self.put_encoded(inMemoryDataset, ref)

    def put_encoded(self, inMemoryDataset: Any, ref: DatasetRef) -> Encoded:
        """Write a dataset with one create-only PUT and record it; return the bytes written.

        The object carries `write_token`. An object left at the same key by an
        earlier attempt of the same quantum is replaced (with a warning); one of
        any other writer makes the put fail and is left untouched. The record is
        written only once the stored object is known to be this write's (see
        `s3qbb.s3.objects.S3Bucket.put_new`).

        Raises
        ------
        AmbiguousDatasetError
            If ``ref`` is not a resolved `DatasetRef`.
        DatasetTypeError
            If ``ref`` is a component ref.
        StorageClassError
            If the object does not match the storage class.
        DatasetExistsError
            If the dataset is already stored (here or by another writer); the stored copy is untouched.
        FormatterError
            If the object cannot be serialized.

        Returns
        -------
        encoded : `Encoded`
            The bytes stored, and how to decode them as a read of ``ref`` does.
        """
        return writes.put_one(self, inMemoryDataset, ref)

    def _write_object(
        self, inMemoryDataset: Any, ref: DatasetRef, sc: StorageClass
    ) -> tuple[StoredFileInfo, Encoded]:
        """Serialize a checked dataset and write it with one create-only PUT; return its record, unwritten."""
        return writes.write_object(self, inMemoryDataset, ref, sc)

    # ----------------------------------------------------------------- get

    def get(
        self,
        ref: DatasetRef,
        parameters: Mapping[str, Any] | None = None,
        storageClass: StorageClass | str | None = None,
    ) -> Any:
        """Read a dataset with one GET (or two ranged GETs for a partial read), verifying its checksum.

        Raises
        ------
        DatasetNotFoundError
            If the dataset has no record (outside trust mode) or its object is missing.
        DatasetIntegrityError
            If the bytes read do not match the recorded size or checksum (or, for
            a partial read, the block checksums the record authenticates), twice:
            a read that fails its check is read once more from the server first.
        InvalidParameterError
            If a parameter is not declared by the storage class.
        StorageClassError
            If the storage class override cannot be converted.
        """
        return self._read(ref, self._plan_read(ref, parameters, storageClass))[0]

    def get_encoded(self, ref: DatasetRef, *, plan: ReadPlan | None = None) -> tuple[Any, Encoded]:
        """Read a whole dataset as `get` does (one GET, verified); also return the bytes read.

        ``plan``, if given, is the caller's `_plan_read` of ``ref`` without
        parameters or storage class override (the plan this method makes otherwise).

        Raises
        ------
        DatasetTypeError
            If ``ref`` is a component ref; otherwise what `get` raises.
        """
        if ref.isComponent():
            raise DatasetTypeError(f"get_encoded reads whole datasets, not component {ref}.")
        obj, encoded = self._read(ref, plan if plan is not None else self._plan_read(ref, None, None))
        assert encoded is not None  # a whole read
        return obj, encoded

    def _read(self, ref: DatasetRef, plan: ReadPlan) -> tuple[Any, Encoded | None]:
        """Read what ``plan`` asks for (see `VerifiedReader.read_dataset`)."""
        info = self._record(plan.parent)
        return self._read_recorded(ref, plan, self._found_or_raise(plan.parent, info), info is None)

    def _read_recorded(
        self, ref: DatasetRef, plan: ReadPlan, info: StoredFileInfo, predicted: bool = False
    ) -> tuple[Any, Encoded | None]:
        """Read what ``plan`` asks for, of the dataset ``info`` records (or predicts, in trust mode)."""
        plan = self._as_stored(plan, info.storage_class)
        formatter = self.layout.formatter_named(info.formatter)
        target = ReadTarget(plan.parent, info, self.key(info.path), self.bucket_name, self.name, predicted)
        return self.reader.read_dataset(ref, target, formatter, plan, self._finish_read)

    def _storage_problem(self, entity: DatasetRef | DatasetType | StorageClass) -> str | None:
        """Return why no formatter writes ``entity`` here (see `S3Layout.formatter_problem`)."""
        return self.layout.formatter_problem(entity)

    # ------------------------------------------------------------ existence

    def knows(self, ref: DatasetRef) -> bool:
        """Return whether the datastore has a record of the dataset (no request)."""
        ensure_resolved(ref, "knows")
        return self.records.has(ref.id)

    def exists(self, ref: DatasetRef) -> bool:
        """Return whether the dataset's object exists (one HEAD if it has a record or in trust mode)."""
        ensure_resolved(ref, "exists")
        parent = ref.makeCompositeRef() if ref.isComponent() else ref
        info = recorded = self._record(parent)
        if info is None:
            if not self.trust_mode:
                return False
            info = self.layout.predicted_info(parent)
        head = self.bucket.head(self.key(info.path))
        if head is None or head.pending:  # a multipart upload's placeholder is no dataset
            return False
        # By location (trust mode), an object another dataset's put wrote is not this dataset.
        return recorded is not None or other_dataset(head.metadata, parent.id) is None

    def stored_many(self, refs: Iterable[DatasetRef]) -> dict[DatasetRef, bool]:
        """Return existence of many datasets: LIST where keys share a prefix, else concurrent HEADs.

        A multipart upload's placeholder (an upload still running, or whose
        writer died) is no dataset. A dataset without a record (trust mode)
        listed with exactly a placeholder's size
        (`s3qbb.s3.multipart.PLACEHOLDER_SIZE`) costs one HEAD more, which
        tells (see `s3qbb.datastores.listing.find_existing`).
        """
        refs = [ensure_resolved(r, "stored_many") for r in refs]
        parents = {r: (r.makeCompositeRef() if r.isComponent() else r) for r in refs}
        records = self.records.get_many({p.id for p in parents.values()})
        keys: dict[DatasetRef, str] = {}
        predicted: set[str] = set()
        result: dict[DatasetRef, bool] = {}
        for ref, parent in parents.items():
            infos = records.get(parent.id)
            if infos:
                keys[ref] = self.key(infos[0].path)
            elif self.trust_mode:
                keys[ref] = key = self.key(self.layout.predicted_info(parent).path)
                predicted.add(key)
            else:
                result[ref] = False
        found = find_existing(self.bucket, set(keys.values()), self.pool, unconfirmed=predicted)
        result.update({ref: key in found for ref, key in keys.items()})
        return {ref: result[ref] for ref in refs}

    # ------------------------------------------------------------- removal

    def remove(self, ref: DatasetRef) -> None:
        """Delete a dataset's object and record now.

        Raises
        ------
        DatasetNotFoundError
            If the dataset has no record.
        """
        ensure_resolved(ref, "remove")
        info = self._record(ref)
        if info is None:
            raise DatasetNotFoundError(
                f"Cannot remove dataset {ref}: datastore {self.name!r} has no record of it."
            )
        self.bucket.delete(self.key(info.path))
        self.records.delete([ref.id])

    def trash(self, ref: DatasetRef | Iterable[DatasetRef], ignore_errors: bool = True) -> None:
        """Forget datasets now; `emptyTrash` deletes their objects.

        Raises
        ------
        DatasetNotFoundError
            If a dataset has no record and ``ignore_errors`` is `False`.
        """
        refs = [ref] if isinstance(ref, DatasetRef) else list(ref)
        ids = [ensure_resolved(r, "trash").id for r in refs]
        if not ignore_errors:
            known = self.records.get_many(ids)
            missing = [r for r in refs if r.id not in known]
            if missing:
                raise DatasetNotFoundError(
                    f"Cannot trash {len(missing)} dataset(s) unknown to datastore {self.name!r}, "
                    f"e.g. {missing[0]}."
                )
        self.records.move_to_trash(ids)

    def emptyTrash(
        self, ignore_errors: bool = True, refs: Collection[DatasetRef] | None = None, dry_run: bool = False
    ) -> set[ResourceURI]:
        """Delete the objects of trashed datasets (of ``refs`` only, if given) with batched DeleteObjects.

        Returns the URIs of the objects deleted (that would be, with ``dry_run``: no request then).

        Raises
        ------
        S3qbbError
            If some objects could not be deleted and ``ignore_errors`` is `False`.
        """
        return bulk.empty_trash(self, ignore_errors=ignore_errors, refs=refs, dry_run=dry_run)

    def forget(self, refs: Iterable[DatasetRef]) -> None:
        """Drop records without touching objects."""
        self.records.delete([ensure_resolved(r, "forget").id for r in refs])

    # ----------------------------------------------------------------- URIs

    def getURIs(self, ref: DatasetRef, predict: bool = False) -> DatasetRefURIs:
        """Return ``s3://`` URIs; predicted ones (zero requests) end with ``#predicted``.

        Raises
        ------
        DatasetNotFoundError
            If the dataset has no record and ``predict`` is `False`.
        """
        ensure_resolved(ref, "getURIs")
        parent = ref.makeCompositeRef() if ref.isComponent() else ref
        info = self._record(parent)
        if info is not None:
            return DatasetRefURIs(self.resource_uri(info.path))
        if not predict:
            raise DatasetNotFoundError(
                f"Dataset {ref} is not in datastore {self.name!r}; pass predict=True for its predicted URI."
            )
        return DatasetRefURIs(self.resource_uri(self.layout.predicted_info(parent).path, predicted=True))

    # ----------------------------------------------------------------- bulk

    def put_many(self, items: Iterable[tuple[Any, DatasetRef]]) -> None:
        """Write many datasets concurrently (see `put_many_encoded`)."""
        self.put_many_encoded(items)

    def put_many_encoded(self, items: Iterable[tuple[Any, DatasetRef]]) -> dict[DatasetRef, Encoded]:
        """Write many datasets concurrently, as `put_many` does; return the bytes written, by ref.

        Each dataset is written as `put_encoded` writes it (one create-only PUT),
        on `pool`'s threads. Records are looked up with one query before the
        PUTs and written in one transaction after them, rather than twice per
        dataset by the threads. Every item is attempted and each succeeds or
        fails whole: a dataset is recorded only if its object was written, and
        the first error is raised after the others were recorded (see
        `Datastore.put_many`). A ref given twice is written once, its other
        items fail with `DatasetExistsError`.

        Raises
        ------
        DatasetExistsError
            If a dataset is already stored, or given twice (the other items are stored).
        S3qbbError
            If some datasets could not be written (the first error; the other items are stored).
        """
        return bulk.put_many(self, items)

    def get_many(
        self, refs: Iterable[DatasetRef], parameters: Mapping[str, Any] | None = None
    ) -> dict[DatasetRef, Any]:
        """Read many datasets concurrently, as `get` does (see `get_many_encoded`)."""
        return {
            ref: obj for ref, (obj, _) in bulk.read_many(self, list(refs), parameters, whole=False).items()
        }

    def get_many_encoded(self, refs: Iterable[DatasetRef]) -> dict[DatasetRef, tuple[Any, Encoded]]:
        """Read many whole datasets concurrently, as `get_many` does; also return the bytes read.

        The records of all datasets are read with one query, then each dataset
        with one GET (verified as `get` verifies it) on `pool`'s threads.
        Every dataset is attempted; the first error is raised after the others
        were read.

        Raises
        ------
        DatasetTypeError
            If a ref is a component ref; otherwise what `get` raises.
        """
        out: dict[DatasetRef, tuple[Any, Encoded]] = {}
        for ref, (obj, encoded) in bulk.read_many(self, list(refs), None, whole=True).items():
            assert encoded is not None  # whole reads
            out[ref] = (obj, encoded)
        return out

    # -------------------------------------------------------------- records

    def export_records(self, refs: Iterable[DatasetRef]) -> dict[str, DatastoreRecordData]:
        """Return the records of the given datasets under this datastore's name."""
        ids = [ensure_resolved(r, "export_records").id for r in refs]
        data = self.records.export(ids)
        return {self.name: data} if data.records else {}

    def import_records(self, data: Mapping[str, DatastoreRecordData]) -> None:
        """Import records exported under this datastore's name (other names are ignored).

        The import is applied on the first use of the records, so building a
        datastore for a quantum costs no database work until it reads or writes.
        """
        mine = data.get(self.name)
        if mine is not None and mine.records:
            self._pending_imports.append(mine)

    def put_sidecar(
        self, path: str, data: bytes, *, overwrite: bool = False, replace_earlier: bool = False
    ) -> ResourceURI:
        """Write a non-dataset file under the root with one PUT (create-only unless ``overwrite``).

        With ``replace_earlier``, a file left by an earlier attempt of the same
        quantum (by `write_token`) is replaced, with a warning.

        Raises
        ------
        DatasetExistsError
            If the file exists, ``overwrite`` is `False` and it may not be
            replaced (it is left untouched).
        """
        check_record_path(path)
        writes.put_file(self, path, data, overwrite=overwrite, replace_earlier=replace_earlier)
        return self.resource_uri(path)

    def round_trip(self, obj: Any, ref: DatasetRef) -> Any:
        """Return ``obj`` as a read returns it: serialized and read back with the dataset's formatter."""
        formatter, sc = self.layout.formatter_for(ref.datasetType), ref.datasetType.storageClass
        return sc.coerce_type(formatter.read(formatter.write(obj), sc.pytype))

    def read_sidecar(self, path: str) -> bytes | None:
        """Read a non-dataset file under the root, checked (`S3Bucket.get_checked`); `None` if missing."""
        check_record_path(path)
        try:
            return self.bucket.get_checked(self.key(path)).body
        except DatasetNotFoundError:
            return None

    def delete_sidecar(self, path: str) -> None:
        """Delete a non-dataset file under the root (one DELETE)."""
        self.bucket.delete(self.key(check_record_path(path)))

    def export_records_file(self, path: Path) -> Path:
        """Write the records as one SQLite file (the store's own file if it has one) and return its path."""
        return self.records.flush_to_file(path)

    def close(self) -> None:
        """Stop the thread pool and close the records store."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._records.close()

    def __repr__(self) -> str:
        return f"S3Datastore({self.name!r}, {self.root!r})"
