"""Single puts of `~s3qbb.datastores.s3.S3Datastore`: serialise, one create-only PUT, record.

The record is written only once the stored object is known to be this
write's (see `s3qbb.s3.objects.S3Bucket.put_new`). `InFlight` keeps the
threads of one datastore, which share its write token, from writing the same
dataset at once.
"""

from __future__ import annotations

__all__ = [
    "InFlight",
    "put_file",
    "put_one",
    "reason",
    "stored_already",
    "write_object",
    "written_concurrently",
]

import threading
from typing import TYPE_CHECKING, Any

from ..core.attempt import WriteToken
from ..core.records import StoredFileInfo
from ..errors import DatasetExistsError, FormatterError, PreconditionFailedError, RecordExistsError
from ..s3 import checksums
from ..s3.ownership import WRITE_DATASET, WriteConflictError
from .encoding import Encoded

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..core.dataset_ref import DatasetRef
    from ..core.ids import DatasetId
    from ..core.storage_class import StorageClass
    from .s3 import S3Datastore


class InFlight:
    """Datasets the threads of one datastore are writing.

    The threads share the datastore's write token, so the token cannot tell
    them apart: a second put of a dataset while the first is in flight could
    take the first's stored object for its own (a retried PUT after a lost
    response) and record its own checksum against the other's bytes.
    """

    def __init__(self) -> None:
        self._ids: set[DatasetId] = set()
        self._lock = threading.Lock()

    def claim(self, ids: Iterable[DatasetId]) -> set[DatasetId]:
        """Mark datasets as being written by this thread; return those another thread is writing."""
        with self._lock:
            busy = {i for i in ids if i in self._ids}
            self._ids.update(i for i in ids if i not in busy)
        return busy

    def release(self, ids: Iterable[DatasetId]) -> None:
        """Mark datasets as no longer being written."""
        with self._lock:
            self._ids.difference_update(ids)


def reason(err: PreconditionFailedError) -> str:
    """Return whose object a refused create-only write found."""
    return err.reason if isinstance(err, WriteConflictError) else "written by another writer"


def stored_already(store: S3Datastore, ref: DatasetRef) -> DatasetExistsError:
    """Return the error of a put of a dataset that ``store`` has a record of."""
    return DatasetExistsError(
        f"Dataset {ref} is already stored in datastore {store.name!r}; the stored copy is unchanged."
    )


def written_concurrently(store: S3Datastore, ref: DatasetRef) -> DatasetExistsError:
    """Return the error of a put of a dataset that another thread of ``store`` is writing."""
    return DatasetExistsError(
        f"Dataset {ref} is being written by another thread of datastore {store.name!r}; "
        "each output may be written once."
    )


def put_one(store: S3Datastore, obj: Any, ref: DatasetRef) -> Encoded:
    """Check, write and record one dataset (`S3Datastore.put_encoded <s3qbb.datastores.s3.S3Datastore>`)."""
    sc = store._check_put(obj, ref)
    if store.records.has(ref.id):
        raise stored_already(store, ref)
    if store.in_flight.claim([ref.id]):
        raise written_concurrently(store, ref)
    try:
        info, encoded = store._write_object(obj, ref, sc)
        try:
            store.records.insert([info])
        except RecordExistsError as err:
            raise DatasetExistsError(f"Dataset {ref} was recorded concurrently in {store.name!r}.") from err
    finally:
        store.in_flight.release([ref.id])
    return encoded


def write_object(
    store: S3Datastore, obj: Any, ref: DatasetRef, sc: StorageClass
) -> tuple[StoredFileInfo, Encoded]:
    """Serialize a checked dataset and write it with one create-only PUT; return its record, unwritten."""
    formatter = store.layout.formatter_for(ref.datasetType)
    path = store.layout.relpath(ref)
    try:
        data = formatter.write(obj)
    except FormatterError as err:
        err.add_note(f"While writing dataset {ref} to {store.bucket_uri(path)}.")
        raise
    checksum, metadata = checksums.compute_for_upload(
        store.config.checksum_algorithm, data, store.config.checksum_block_size
    )
    metadata[WRITE_DATASET] = ref.id.hex  # which dataset this is, where no record says (trust mode)
    try:
        store.bucket.put_new(store.key(path), data, checksum, token=store.write_token, metadata=metadata)
    except PreconditionFailedError as err:
        raise DatasetExistsError(
            f"Dataset {ref} already exists at {store.bucket_uri(path)} ({reason(err)}); the stored copy "
            "is unchanged and no record was written. Each output may be written once."
        ) from err
    except Exception as err:
        err.add_note(f"While writing dataset {ref} to {store.bucket_uri(path)}.")
        raise
    store.stats.add_written(len(data))
    formatter_name = store.layout.record_formatter_name(formatter)
    info = StoredFileInfo(ref.id, path, formatter_name, sc.name, None, str(checksum), len(data))
    pytype = sc.pytype

    def decode(body: bytes) -> Any:  # what `get` returns for these bytes
        return sc.coerce_type(formatter.read(body, pytype))

    return info, Encoded(data, decode, formatter.copy_by_decoding)


def put_file(store: S3Datastore, path: str, data: bytes, *, overwrite: bool, replace_earlier: bool) -> None:
    """Write a non-dataset file (`S3Datastore.put_sidecar <s3qbb.datastores.s3.S3Datastore>`)."""
    if overwrite:
        store.bucket.put_raw(store.key(path), data, token=store.write_token)
        store.stats.add(bytes_written=len(data))
        return
    checksum = checksums.compute(store.config.checksum_algorithm, data)
    # Files replace one another by the uploads' own rule (`s3qbb.butler.uploads`), not by the
    # attempt guard of the write token, which is about datasets.
    token = store.write_token
    unguarded = WriteToken(token.quantum_id, token.attempt_id) if token.guard is not None else token
    try:
        store.bucket.put_new(
            store.key(path), data, checksum, token=unguarded, replace_earlier=replace_earlier
        )
    except PreconditionFailedError as err:
        raise DatasetExistsError(
            f"{store.bucket_uri(path)} already exists ({reason(err)}) and is not quantum "
            f"{store.write_token.quantum_id}'s to replace; it was left untouched."
        ) from err
    store.stats.add(bytes_written=len(data))
