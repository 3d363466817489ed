"""The datastore contract: a small ABC with capability flags and concrete defaults.

A backend implements eight primitives (`Datastore.put`, `Datastore.get`,
`Datastore.exists`, `Datastore.knows`, `Datastore.remove`, `Datastore.trash`,
`Datastore.emptyTrash`, `Datastore.getURIs`) plus `Datastore.forget`; everything
else (bulk existence, URIs of many datasets, transfer, bulk put/get,
read-parameter and storage-class handling) has a working default that
backends may override for speed. Every backend must pass the conformance
suite in `s3qbb.testing.conformance`.
"""

from __future__ import annotations

__all__ = ["Datastore", "DatastoreCapabilities", "DatastoreStats", "ReadPlan", "raise_first"]

import logging
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

from ..core.attempt import WriteToken
from ..core.dataset_ref import DatasetRef, ensure_resolved
from ..core.dataset_type import default_storage_classes
from ..core.storage_class import StorageClass, StorageClassFactory
from ..core.uri import DatasetRefURIs, ResourceURI
from ..errors import (
    DatasetNotFoundError,
    DatasetTypeError,
    DatastoreValidationError,
    S3qbbError,
    StorageClassError,
)
from .contract import DatastoreCapabilities, ReadPlan
from .stats import DatastoreStats

if TYPE_CHECKING:
    from pathlib import Path
    from types import TracebackType

    from ..core.dataset_type import DatasetType
    from ..core.records import DatastoreRecordData


_LOG = logging.getLogger(__name__)


class Datastore(ABC):
    """Abstract datastore: stores and retrieves datasets identified by resolved refs.

    Parameters
    ----------
    name : `str`
        Label of the datastore (appears in records and provenance).
    storageClassFactory : `StorageClassFactory`, optional
        Factory resolving storage class names; the shipped one by default.
    """

    capabilities: DatastoreCapabilities = DatastoreCapabilities(ephemeral=True)
    """What this datastore can do (class default; instances may refine it)."""
    defaultConfigFile: ClassVar[str | None] = None
    """Path of configuration defaults (unused by s3qbb; kept for API compatibility)."""

    def __init__(self, name: str, storageClassFactory: StorageClassFactory | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise S3qbbError(f"Datastore name must be a non-empty str, got {name!r}.")
        self.name = name
        self.storageClassFactory = storageClassFactory or default_storage_classes()
        self.stats = DatastoreStats()
        self._write_token = WriteToken.new()

    @property
    def write_token(self) -> WriteToken:
        """The write token every object this datastore writes carries in its metadata.

        A new attempt of a random quantum per datastore by default; a butler sets
        its quantum's attempt token (`s3qbb.butler.setup.QuantumInfo.token`), so
        that the datastore recognises its own writes after a lost response and
        replaces only what earlier attempts of the same quantum left.
        """
        return self._write_token

    @write_token.setter
    def write_token(self, token: WriteToken) -> None:
        if not isinstance(token, WriteToken):
            raise TypeError(f"Datastore.write_token must be a WriteToken, got {type(token).__name__}.")
        self._write_token = token

    # ------------------------------------------------------------- primitives

    @abstractmethod
    def put(self, inMemoryDataset: Any, ref: DatasetRef) -> None:
        """Store a dataset.

        Parameters
        ----------
        inMemoryDataset : `object`
            The dataset; must match the ref's storage class.
        ref : `DatasetRef`
            Resolved, non-component ref.

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

    @abstractmethod
    def get(
        self,
        ref: DatasetRef,
        parameters: Mapping[str, Any] | None = None,
        storageClass: StorageClass | str | None = None,
    ) -> Any:
        """Read a dataset, a component of it, or a subset selected by read parameters.

        Parameters
        ----------
        ref : `DatasetRef`
            Resolved ref (a component ref reads that component).
        parameters : `~collections.abc.Mapping`, optional
            Read parameters declared by the storage class.
        storageClass : `StorageClass` or `str`, optional
            Storage class of the returned object, convertible from the stored one.

        Returns
        -------
        obj : `object`
            The dataset; never an object whose mutation changes what is stored.

        Raises
        ------
        DatasetNotFoundError
            If the dataset is not stored here.
        InvalidParameterError
            If a parameter is not declared by the storage class.
        StorageClassError
            If the storage class override cannot be converted.
        """

    @abstractmethod
    def exists(self, ref: DatasetRef) -> bool:
        """Return whether the dataset is known and its artifact present."""

    @abstractmethod
    def knows(self, ref: DatasetRef) -> bool:
        """Return whether the datastore has a record of the dataset (no artifact check)."""

    @abstractmethod
    def remove(self, ref: DatasetRef) -> None:
        """Delete a dataset's artifact and record now.

        Raises
        ------
        DatasetNotFoundError
            If the dataset is not stored here.
        """

    @abstractmethod
    def trash(self, ref: DatasetRef | Iterable[DatasetRef], ignore_errors: bool = True) -> None:
        """Forget datasets now and schedule their artifacts for deletion by `emptyTrash`.

        Parameters
        ----------
        ref : `DatasetRef` or iterable of `DatasetRef`
            The datasets.
        ignore_errors : `bool`, optional
            Skip unknown datasets instead of raising. The default is that of
            the daf_butler datastore a backend stands for: `True` here and for
            ``FileDatastore``, `False` for ``InMemoryDatastore``. Internal
            callers pass it explicitly.

        Raises
        ------
        DatasetNotFoundError
            If a dataset is unknown and ``ignore_errors`` is `False` (a
            `FileNotFoundError`, as daf_butler raises).
        """

    @abstractmethod
    def emptyTrash(
        self, ignore_errors: bool = True, refs: Collection[DatasetRef] | None = None, dry_run: bool = False
    ) -> set[ResourceURI]:
        """Delete the artifacts of trashed datasets (daf_butler's signature).

        Parameters
        ----------
        ignore_errors : `bool`, optional
            Log artifacts that could not be deleted instead of raising.
        refs : `~collections.abc.Collection` [`DatasetRef`], optional
            Empty only the trash of these datasets (those not in the trash
            are ignored); the whole trash if `None`.
        dry_run : `bool`, optional
            Delete nothing; return what would be deleted.

        Returns
        -------
        removed : `set` [`ResourceURI`]
            URIs of the artifacts deleted (or that would be); empty for
            datastores whose artifacts have no URI of their own (memory).
        """

    @abstractmethod
    def getURIs(self, ref: DatasetRef, predict: bool = False) -> DatasetRefURIs:
        """Return the URIs of a dataset's artifacts.

        Parameters
        ----------
        ref : `DatasetRef`
            Resolved ref.
        predict : `bool`, optional
            Allow URIs of datasets not yet written; they carry ``#predicted``.

        Raises
        ------
        DatasetNotFoundError
            If the dataset is not stored and ``predict`` is `False`.
        """

    @abstractmethod
    def forget(self, refs: Iterable[DatasetRef]) -> None:
        """Drop records of datasets without touching artifacts."""

    def validateConfiguration(
        self, entities: Iterable[DatasetRef | DatasetType | StorageClass], logFailures: bool = False
    ) -> None:
        """Check that this datastore can store each entity: it has a formatter for its storage class.

        Parameters
        ----------
        entities : iterable of `DatasetRef`, `DatasetType` or `StorageClass`
            What to check (daf_butler's API); kinds may be mixed.
        logFailures : `bool`, optional
            Also log each failure, at CRITICAL level (as daf_butler).

        Raises
        ------
        DatastoreValidationError
            If some entities cannot be stored; the message lists every one and why.
        """
        failures: list[str] = []
        entities = list(entities)
        for entity in entities:
            problem = self._storage_problem(entity)
            if problem is not None:
                failures.append(problem)
                if logFailures:
                    _LOG.critical("Datastore %r cannot store %s", self.name, problem)
        if failures:
            raise DatastoreValidationError(
                f"Datastore {self.name!r} cannot store {len(failures)} of the {len(entities)} entities "
                "validated:\n- " + "\n- ".join(failures)
            )

    def _storage_problem(self, entity: DatasetRef | DatasetType | StorageClass) -> str | None:
        """Return why this datastore cannot store ``entity`` (`None` if it can: the default, for objects)."""
        return None

    @property
    def isEphemeral(self) -> bool:
        """Whether contents disappear when the process ends (``capabilities.ephemeral``).

        `~s3qbb.datastores.memory.InMemoryDatastore` makes it a class attribute, as in the seed.
        """
        return self.capabilities.ephemeral

    # --------------------------------------------------------------- defaults

    def stored(self, ref: DatasetRef) -> bool:
        """Return whether the dataset's artifact is present (same as `exists`)."""
        return self.exists(ref)

    def stored_many(self, refs: Iterable[DatasetRef]) -> dict[DatasetRef, bool]:
        """Return existence of many datasets at once.

        Parameters
        ----------
        refs : iterable of `DatasetRef`
            Datasets to check.

        Returns
        -------
        existence : `dict` [`DatasetRef`, `bool`]
            Whether each dataset's artifact is present.
        """
        return {ref: self.exists(ensure_resolved(ref, "stored_many")) for ref in refs}

    def knows_these(self, refs: Iterable[DatasetRef]) -> dict[DatasetRef, bool]:
        """Return which datasets the datastore has a record of (daf_butler API; no artifact check)."""
        return {ref: self.knows(ref) for ref in refs}

    def mexists(
        self, refs: Iterable[DatasetRef], artifact_existence: dict[str, bool] | None = None
    ) -> dict[DatasetRef, bool]:
        """Return existence of many datasets (daf_butler's name for `stored_many`).

        Parameters
        ----------
        refs : iterable of `DatasetRef`
            Datasets to check.
        artifact_existence : `dict` [`str`, `bool`], optional
            Accepted for daf_butler compatibility; s3qbb does not fill it.
        """
        return self.stored_many(refs)

    def getManyURIs(
        self, refs: Iterable[DatasetRef], predict: bool = False, allow_missing: bool = False
    ) -> dict[DatasetRef, DatasetRefURIs]:
        """Return the URIs of many datasets (daf_butler's name for `get_many_uris`)."""
        return self.get_many_uris(refs, predict, allow_missing)

    def getURI(self, ref: DatasetRef, predict: bool = False) -> ResourceURI:
        """Return the single URI of a dataset.

        Raises
        ------
        RuntimeError
            If the dataset is stored as several artifacts.
        DatasetNotFoundError
            If the dataset is not stored and ``predict`` is `False`.
        """
        uris = self.getURIs(ref, predict)
        if uris.primaryURI is None or uris.componentURIs:
            raise RuntimeError(
                f"Dataset {ref} is stored as several artifacts ({sorted(uris.componentURIs)}); use getURIs()."
            )
        return uris.primaryURI

    def getUri(self, ref: DatasetRef, predict: bool = False) -> str:
        """Return the URI of a dataset as a plain `str` (seed API; see `getURI`).

        Raises
        ------
        DatasetNotFoundError
            If the dataset is not stored and ``predict`` is `False`.
        """
        return str(self.getURI(ref, predict))

    def get_many_uris(
        self, refs: Iterable[DatasetRef], predict: bool = False, allow_missing: bool = False
    ) -> dict[DatasetRef, DatasetRefURIs]:
        """Return the URIs of many datasets.

        Parameters
        ----------
        refs : iterable of `DatasetRef`
            Datasets.
        predict : `bool`, optional
            Allow predicted URIs for datasets not yet written.
        allow_missing : `bool`, optional
            Leave out datasets that are unknown (instead of raising).

        Raises
        ------
        DatasetNotFoundError
            If a dataset is unknown and neither ``predict`` nor ``allow_missing`` is set.
        """
        out: dict[DatasetRef, DatasetRefURIs] = {}
        for ref in refs:
            try:
                out[ref] = self.getURIs(ref, predict)
            except DatasetNotFoundError:
                if not allow_missing:
                    raise
        return out

    def transfer(self, inputDatastore: Datastore, ref: DatasetRef) -> None:
        """Read a dataset from another datastore and store it here.

        Raises
        ------
        DatasetNotFoundError
            If the input datastore does not hold the dataset.
        DatasetExistsError
            If this datastore already holds it.
        """
        self.put(inputDatastore.get(ref), ref)

    def put_many(self, items: Iterable[tuple[Any, DatasetRef]]) -> None:
        """Store many datasets; backends may do so concurrently.

        Every item is attempted; if some fail, the first error is raised after
        the others were stored, with a note listing how many failed.
        """
        errors: list[BaseException] = []
        for obj, ref in items:
            try:
                self.put(obj, ref)
            except Exception as err:
                errors.append(err)
        raise_first(errors, "put_many")

    def get_many(
        self, refs: Iterable[DatasetRef], parameters: Mapping[str, Any] | None = None
    ) -> dict[DatasetRef, Any]:
        """Read many datasets; backends may do so concurrently.

        Raises
        ------
        DatasetNotFoundError
            If any dataset is missing (after the others were read).
        """
        out: dict[DatasetRef, Any] = {}
        errors: list[BaseException] = []
        for ref in refs:
            try:
                out[ref] = self.get(ref, parameters)
            except Exception as err:
                errors.append(err)
        raise_first(errors, "get_many")
        return out

    def export_records(self, refs: Iterable[DatasetRef]) -> dict[str, DatastoreRecordData]:
        """Return the records of datasets, by datastore name (empty for ephemeral datastores)."""
        return {}

    def import_records(self, data: Mapping[str, DatastoreRecordData]) -> None:  # noqa: B027 (no-op default)
        """Import records exported by `export_records` (ignored by ephemeral datastores)."""

    def get_root(self) -> str | None:
        """Return the root URI of the datastore, or `None` if it has none."""
        return None

    def put_sidecar(
        self, path: str, data: bytes, *, overwrite: bool = False, replace_earlier: bool = False
    ) -> ResourceURI | None:
        """Write a file that is not a dataset (records, provenance) under the root, create-only.

        Parameters
        ----------
        path : `str`
            Path relative to the root.
        data : `bytes`
            Content.
        overwrite : `bool`, optional
            Replace an existing file instead of refusing.
        replace_earlier : `bool`, optional
            Replace a file written by an earlier attempt of this datastore's
            quantum (by `write_token`), and only such a file.

        Returns
        -------
        uri : `ResourceURI` or `None`
            Where it was written; `None` for datastores that keep no files.

        Raises
        ------
        DatasetExistsError
            If the file already exists and may not be replaced (it is left untouched).
        """
        return None

    def invalidate(self, refs: DatasetRef | Iterable[DatasetRef]) -> None:  # noqa: B027 (no-op default)
        """Drop cached copies of datasets (a no-op for datastores without a cache tier).

        Storage changed behind the datastore's back (by another process or a
        back door) is seen by cached datastores only after this call.
        """

    def round_trip(self, obj: Any, ref: DatasetRef) -> Any:
        """Return the object a read of ``ref`` returns after ``put(obj, ref)``.

        Datastores that serialize (S3) may return an object of a different
        but equal-valued shape (a JSON tuple comes back as a list); a cache
        tier in front of them stores this form so hits and misses agree.
        """
        return obj

    def read_sidecar(self, path: str) -> bytes | None:
        """Read a file written by `put_sidecar`; `None` if it does not exist (or there are no files)."""
        return None

    def delete_sidecar(self, path: str) -> None:
        """Delete a file written by `put_sidecar` (nothing if it does not exist, or there are no files)."""
        return None

    def export_records_file(self, path: Path) -> Path | None:
        """Write the datastore's records as a SQLite file and return its path (`None` if it keeps none).

        Parameters
        ----------
        path : `pathlib.Path`
            Where to write the file when the records live in memory; a
            file-backed records store returns its own file instead.
        """
        return None

    @classmethod
    def setConfigRoot(cls, root: str, config: Any, full: Any) -> None:
        """Set filesystem-dependent config for a new repository (does nothing in s3qbb)."""
        return None

    def close(self) -> None:  # noqa: B027 (no-op default)
        """Release resources held by the datastore."""

    def __enter__(self) -> Datastore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    # ---------------------------------------------------------- for backends

    def _check_put(self, obj: Any, ref: DatasetRef) -> StorageClass:
        """Validate a put before any I/O; return the storage class to write with."""
        ensure_resolved(ref, f"{type(self).__name__}.put")
        if ref.isComponent():
            raise DatasetTypeError(
                f"Cannot put component dataset {ref}: components are written with their parent; "
                f"put the parent dataset ({ref.datasetType.nameAndComponent()[0]!r}) instead."
            )
        sc = ref.datasetType.storageClass
        if not sc.validateInstance(obj):  # the message (str(ref)) only when it is needed
            sc.validate_instance(obj, f"dataset {ref}")
        return sc

    def _plan_read(
        self,
        ref: DatasetRef,
        parameters: Mapping[str, Any] | None,
        storageClass: StorageClass | str | None,
    ) -> ReadPlan:
        """Validate a get before any I/O."""
        ensure_resolved(ref, f"{type(self).__name__}.get")
        component = ref.datasetType.component()
        parent = ref.makeCompositeRef() if component else ref
        stored = parent.datasetType.storageClass
        target = ref.datasetType.storageClass
        if parameters:  # the message (str(ref)) only when there is something to check
            target.validate_parameters(parameters, f"dataset {ref}")
        if storageClass is not None:
            override = self.storageClassFactory.resolve(storageClass)
            if not override.can_convert(target):
                raise StorageClassError(
                    f"Cannot read dataset {ref} as storage class {override.name!r}: it is stored as "
                    f"{target.name!r} and no conversion exists."
                )
            target = override
        return ReadPlan(ref, parent, component, stored, target, dict(parameters or {}))

    def _as_stored(self, plan: ReadPlan, storage_class: str) -> ReadPlan:
        """Return ``plan`` reading with the storage class the dataset was written with.

        A ref may carry another storage class than the one its dataset was
        stored with (`DatasetRef.overrideStorageClass`); the bytes must be
        decoded as written, then converted. ``storage_class`` comes from the
        dataset's record.
        """
        if storage_class == plan.stored.name:
            return plan
        try:
            stored = self.storageClassFactory.getStorageClass(storage_class)
        except LookupError:
            return plan  # written with a class this process does not know: decode as the ref says
        if plan.component is None and not plan.target.can_convert(stored):
            raise StorageClassError(
                f"Cannot read dataset {plan.ref} as storage class {plan.target.name!r}: it is stored as "
                f"{stored.name!r} and no conversion exists. Read it as {stored.name!r} instead."
            )
        return replace(plan, stored=stored)

    @staticmethod
    def _finish_read(plan: ReadPlan, obj: Any, parameters_applied: bool = False) -> Any:
        """Extract the component, apply parameters not yet applied, convert to the target class."""
        if plan.component is not None:
            obj = plan.stored.get_component(obj, plan.component)
        if plan.parameters and not parameters_applied:
            obj = plan.ref.datasetType.storageClass.apply_parameters(obj, plan.parameters)
        return plan.target.coerce_type(obj)


def raise_first(errors: list[BaseException], what: str) -> None:
    """Raise the first of several errors of a bulk operation, noting how many failed."""
    if errors:
        first = errors[0]
        if len(errors) > 1:
            first.add_note(f"{what}: {len(errors)} items failed; this is the first.")
        raise first
