"""Exceptions raised by s3qbb.

Every exception derives from :class:`S3qbbError` *and* from the builtin that
matches its category, so callers can write either ``except S3qbbError`` or the
idiomatic ``except FileNotFoundError`` / ``except LookupError``.

Messages say what failed, on which dataset or URI, and what to do about it.
Context discovered higher up the stack is attached with
:meth:`BaseException.add_note` rather than by re-wrapping.
"""

from __future__ import annotations

__all__ = [
    "AccessDeniedError",
    "AmbiguousDatasetError",
    "BucketNotFoundError",
    "ButlerClosedError",
    "ConfigError",
    "CredentialsError",
    "DataIdError",
    "DatasetExistsError",
    "DatasetIntegrityError",
    "DatasetNotFoundError",
    "DatasetReplacedError",
    "DatasetTypeError",
    "DatastoreCapacityError",
    "DatastoreValidationError",
    "DimensionNameError",
    "FormatterError",
    "InvalidNameError",
    "InvalidParameterError",
    "NotAComponentError",
    "PickleDisabledError",
    "PreconditionFailedError",
    "RecordDataError",
    "RecordExistsError",
    "RecordNotFoundError",
    "RecordsStoreError",
    "RecordsUploadError",
    "RegistryConnectionError",
    "RegistryError",
    "S3qbbError",
    "StorageClassError",
    "TLSError",
    "TransientStorageError",
    "UnknownComponentError",
    "UnknownFormatterError",
    "UnknownStorageClassError",
    "UnpredictedDatasetError",
]


class S3qbbError(Exception):
    """Base class of every exception raised by s3qbb."""


# --- lookups -------------------------------------------------------------


class DatasetNotFoundError(S3qbbError, FileNotFoundError, LookupError):
    """A dataset (or its artifact) is not stored where it was expected."""


class RecordNotFoundError(S3qbbError, KeyError):
    """No datastore record exists for a dataset."""

    def __str__(self) -> str:  # KeyError quotes its argument; we do not.
        return str(self.args[0]) if self.args else ""


class UnknownStorageClassError(S3qbbError, KeyError):
    """A storage class name is not known to the storage class factory.

    Also a `KeyError` (a `LookupError`), which daf_butler's ``getStorageClass`` raises.
    """

    def __str__(self) -> str:  # KeyError would quote its argument; we do not.
        return str(self.args[0]) if self.args else ""


class UnknownFormatterError(S3qbbError, LookupError):
    """A formatter name is not registered or not allowed."""


class BucketNotFoundError(S3qbbError, FileNotFoundError):
    """The bucket holding a datastore root does not exist."""


# --- conflicts -----------------------------------------------------------


class DatasetExistsError(S3qbbError, FileExistsError):
    """A dataset is already stored; the existing copy was left untouched."""


class RecordExistsError(S3qbbError, FileExistsError, KeyError):
    """A datastore record already exists for a dataset.

    Also a `KeyError`, which daf_butler's ``addStoredItemInfo`` raises for a duplicate record.
    """

    def __str__(self) -> str:  # KeyError would quote its argument; we do not.
        return str(self.args[0]) if self.args else ""


class PreconditionFailedError(S3qbbError, FileExistsError):
    """A conditional request failed (HTTP 412) for a reason other than our own write."""


# --- bad input -----------------------------------------------------------


class AmbiguousDatasetError(S3qbbError, TypeError):
    """A dataset was given without a resolved dataset ID."""


class StorageClassError(S3qbbError, TypeError, ValueError):
    """An object is inconsistent with a storage class, or cannot be converted.

    Also a `ValueError`, which daf_butler raises for storage classes that cannot be converted.
    """


class DatasetTypeError(S3qbbError, ValueError):
    """A dataset type is malformed or disagrees with its registry definition."""


class NotAComponentError(DatasetTypeError, RuntimeError):
    """The parent of a dataset type or ref that is not a component was asked for.

    Also a `RuntimeError`, which daf_butler's ``makeCompositeDatasetType`` and ``makeCompositeRef`` raise.
    """


class DataIdError(S3qbbError, ValueError):
    """A data ID is missing required dimensions, names unknown ones, or has bad values."""


class DimensionNameError(DataIdError, KeyError):
    """A data ID names an unknown dimension or lacks a required one.

    Also a `KeyError`, as daf_butler's ``DimensionNameError``.
    """

    def __str__(self) -> str:  # KeyError would quote its argument; we do not.
        return str(self.args[0]) if self.args else ""


class UnknownComponentError(DatasetTypeError, KeyError):
    """A storage class has no component of the given name.

    Also a `KeyError`, as daf_butler's ``UnknownComponentError``.
    """

    def __str__(self) -> str:  # KeyError would quote its argument; we do not.
        return str(self.args[0]) if self.args else ""


class InvalidParameterError(S3qbbError, ValueError):
    """A read parameter is not declared by the storage class or has a bad value."""


class ConfigError(S3qbbError, ValueError):
    """A configuration value is missing, unknown or inconsistent."""


class UnpredictedDatasetError(S3qbbError, LookupError, RuntimeError):
    """A dataset is not among the predicted inputs or outputs of the quantum.

    Also a `RuntimeError`, which daf_butler's ``QuantumBackedButler.put`` raises for an unpredicted output.
    """


class FormatterError(S3qbbError, ValueError):
    """A formatter could not serialize or deserialize a dataset."""


class PickleDisabledError(FormatterError, PermissionError):
    """The pickle formatter was asked for but is not enabled in configuration."""


# --- lifecycle ----------------------------------------------------------


class ButlerClosedError(S3qbbError, RuntimeError):
    """A butler was used after its quantum ended (``with`` block left, `finish` or `close` called)."""


# --- storage -------------------------------------------------------------


class DatasetIntegrityError(S3qbbError, OSError):
    """Stored bytes do not match their recorded checksum or size."""


class DatasetReplacedError(DatasetIntegrityError):
    """A stored dataset was replaced after its record was read (a ``--rerun`` of its producer).

    Another s3qbb write left a complete object of other bytes at its location,
    or is uploading over it: not damage. A reader holding the old records stops
    rather than mix old and new data; run it again once the other write has
    finished, and it reads the new records (``s3qbb run-quantum`` and ``s3qbb
    run`` exit 75, retryable).
    """


class AccessDeniedError(S3qbbError, PermissionError):
    """The storage service refused an action on a key or bucket."""


class CredentialsError(S3qbbError, PermissionError):
    """Credentials are missing, malformed or rejected (the secret is never shown)."""


class TransientStorageError(S3qbbError, ConnectionError):
    """A transient storage failure persisted after every retry allowed by the policy."""


class TLSError(S3qbbError, ConnectionError):
    """A TLS connection to the storage service failed: certificate not trusted, scheme wrong (not retried)."""


class DatastoreCapacityError(S3qbbError, MemoryError):
    """A bounded datastore cannot hold an object even after evicting everything."""


class DatastoreValidationError(S3qbbError, ValueError, RuntimeError):
    """A datastore cannot store some datasets, dataset types or storage classes: no usable formatter.

    Also a `RuntimeError`, as daf_butler's ``DatastoreValidationError`` (a ``ValidationError``).
    """


# --- names ---------------------------------------------------------------


class InvalidNameError(S3qbbError, ValueError):
    """A run or collection name cannot be a safe storage path, or a task label or name cannot be stored."""


# --- datastore records ---------------------------------------------------


class RecordDataError(S3qbbError, ValueError):
    """Datastore record data are malformed or use a record class s3qbb does not understand."""


class RecordsStoreError(S3qbbError, OSError):
    """The datastore records database failed: closed, unreadable, corrupt or of another schema version."""


class RecordsUploadError(S3qbbError, OSError):
    """A quantum's records, provenance or report could not be uploaded beside its outputs."""


# --- central registry ----------------------------------------------------


class RegistryError(S3qbbError, OSError):
    """The central registry database failed, is unreadable, or has another schema version."""


class RegistryConnectionError(RegistryError, ConnectionError):
    """The central registry database cannot be reached (the password is never shown)."""
