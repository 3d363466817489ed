"""Resolved dataset references: an ID, a dataset type, a data ID and a run."""

from __future__ import annotations

__all__ = ["DatasetRef", "ensure_resolved", "validate_run_name"]

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from ..errors import AmbiguousDatasetError, DataIdError, DatasetTypeError, RecordDataError
from .dimensions import DataCoordinate
from .ids import DatasetId, DatasetIdFactory, DatasetIdGenEnum
from .text import RECORDS_DIR, storable_text_problem

if TYPE_CHECKING:
    from .dataset_type import DatasetType
    from .storage_class import StorageClass, StorageClassFactory

_ID_FACTORY = DatasetIdFactory()
_MAX_RUN = 256


def validate_run_name(run: object) -> str:
    """Return ``run`` if it is a valid run collection name.

    Run names may contain ``/`` to form a hierarchy (``u/someone/run1``) but
    no empty, ``.`` or ``..`` segment, no ``_records`` segment (the folder
    of every run that holds its per-quantum files), no control characters and
    no text that cannot be encoded as UTF-8 (lone surrogates).

    Raises
    ------
    DataIdError
        If the run name is not acceptable; the message says why and what to use.
    """
    if not isinstance(run, str) or not run or len(run) > _MAX_RUN:
        raise DataIdError(
            f"Run name must be a non-empty str of at most {_MAX_RUN} characters; got {run!r:.300}."
        )
    problem = storable_text_problem(run)
    if problem is not None:
        raise DataIdError(f"Run name {run!r:.300} has {problem}.")
    segments = run.split("/")
    if any(seg in ("", ".", "..") for seg in segments):
        raise DataIdError(
            f"Run name {run!r:.300} has an empty, '.' or '..' segment between '/'; use non-empty parts "
            "other than '.' and '..' (no leading, trailing or doubled '/')."
        )
    if RECORDS_DIR in segments:
        raise DataIdError(
            f"Run name {run!r:.300} has a {RECORDS_DIR!r} segment, which is reserved: every run keeps the "
            f"records of its quanta in '<run>/{RECORDS_DIR}/', so such a run could never be ingested. "
            f"Rename that part (e.g. 'records')."
        )
    return run


def ensure_resolved(ref: object, what: str = "this operation") -> DatasetRef:
    """Return ``ref`` if it is a resolved `DatasetRef`, else raise.

    Raises
    ------
    AmbiguousDatasetError
        If ``ref`` is not a `DatasetRef` (for example a dataset type name or a data ID).
    """
    if isinstance(ref, DatasetRef):
        return ref
    raise AmbiguousDatasetError(
        f"{what} needs a resolved DatasetRef (with a dataset ID and run); "
        f"got {type(ref).__name__} {ref!r:.200}."
    )


class DatasetRef:
    """A resolved reference to one dataset. Immutable and hashable.

    Parameters
    ----------
    datasetType : `DatasetType`
        The dataset type (a component dataset type for component refs).
    dataId : `DataCoordinate` or `~collections.abc.Mapping`
        The data ID; a mapping is standardized against the dataset type's dimensions.
    run : `str`
        The run collection.
    id : `uuid.UUID` or `str`, optional
        The dataset ID; made with ``id_generation_mode`` when not given.
    id_generation_mode : `DatasetIdGenEnum`, optional
        How to make the ID when not given.

    Raises
    ------
    DataIdError
        If the data ID does not match the dataset type's dimensions or the run name is invalid.
    AmbiguousDatasetError
        If ``id`` is not a UUID.

    Examples
    --------
    >>> from s3qbb.core import DatasetRef, DatasetType, DimensionUniverse
    >>> u = DimensionUniverse()
    >>> dt = DatasetType("summary", ["instrument"], "StructuredDataDict", universe=u)
    >>> ref = DatasetRef(dt, {"instrument": "Cam"}, run="run1")
    >>> ref.run
    'run1'
    """

    __slots__ = ("_hash", "dataId", "datasetType", "id", "run")

    datasetType: DatasetType
    dataId: DataCoordinate
    run: str
    id: DatasetId

    def __init__(
        self,
        datasetType: DatasetType,
        dataId: DataCoordinate | Mapping[str, Any],
        run: str,
        *,
        id: DatasetId | str | None = None,
        id_generation_mode: DatasetIdGenEnum = DatasetIdGenEnum.UNIQUE,
    ) -> None:
        from .dataset_type import DatasetType

        if not isinstance(datasetType, DatasetType):
            raise DatasetTypeError(f"DatasetRef needs a DatasetType, got {type(datasetType).__name__}.")
        if isinstance(dataId, DataCoordinate) and dataId.dimensions == datasetType.dimensions:
            coord = dataId
        elif isinstance(dataId, Mapping):
            try:
                coord = DataCoordinate.standardize(dataId, dimensions=datasetType.dimensions)
            except DataIdError as err:
                err.add_note(
                    f"While making a DatasetRef of dataset type {datasetType.name!r} in run {run!r}."
                )
                raise
        else:
            raise DataIdError(
                f"DatasetRef of {datasetType.name!r} needs a data ID mapping, got {type(dataId).__name__}."
            )
        validate_run_name(run)
        if id is None:
            id = _ID_FACTORY.makeDatasetId(run, datasetType, coord, id_generation_mode)
        elif isinstance(id, str):
            try:
                id = uuid.UUID(id)
            except ValueError as err:
                raise AmbiguousDatasetError(f"Dataset ID {id!r} is not a valid UUID.") from err
        elif not isinstance(id, uuid.UUID):
            raise AmbiguousDatasetError(f"Dataset ID must be a UUID, got {type(id).__name__} {id!r}.")
        set_ = object.__setattr__
        set_(self, "datasetType", datasetType)
        set_(self, "dataId", coord)
        set_(self, "run", run)
        set_(self, "id", id)
        set_(self, "_hash", hash((datasetType.name, coord, id)))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("DatasetRef is immutable; use replace().")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("DatasetRef is immutable.")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DatasetRef):
            return NotImplemented
        return (
            self.id == other.id
            and self.datasetType == other.datasetType
            and self.dataId == other.dataId
            and self.run == other.run
        )

    def __lt__(self, other: object) -> bool:
        # As daf_butler: by run, then dataset type name, then data ID.
        if not isinstance(other, DatasetRef):
            return NotImplemented
        return (self.run, self.datasetType, self.dataId) < (other.run, other.datasetType, other.dataId)

    def __hash__(self) -> int:
        return self._hash

    _hash: int

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt through the constructor: the hash is recomputed in the unpickling process.
        return (_unpickle_dataset_ref, (self.datasetType, self.dataId, self.run, self.id))

    def __repr__(self) -> str:
        return f"DatasetRef({self.datasetType.name!r}, {self.dataId}, run={self.run!r}, id={self.id})"

    def __str__(self) -> str:
        return f"{self.datasetType.name}@{self.dataId} [run={self.run} id={self.id}]"

    def replace(
        self,
        *,
        id: DatasetId | None = None,
        run: str | None = None,
        storage_class: str | StorageClass | None = None,
        datastore_records: Mapping[str, Any] | Literal[False] | None = False,
        datasetType: DatasetType | None = None,
    ) -> DatasetRef:
        """Return a copy with some attributes replaced (daf_butler's keywords, plus ``datasetType``).

        Parameters
        ----------
        id : `uuid.UUID`, optional
            New dataset ID.
        run : `str`, optional
            New run. As in daf_butler, a new run without a new ``id`` makes a new (unique) dataset ID.
        storage_class : `str` or `StorageClass`, optional
            A convertible storage class to read as (see `overrideStorageClass`).
        datastore_records : `None` or `False`, optional
            Accepted for daf_butler's signature: s3qbb refs carry no datastore records.
        datasetType : `DatasetType`, optional
            New dataset type (s3qbb only); the data ID is standardized against its dimensions.

        Raises
        ------
        RecordDataError
            If ``datastore_records`` holds records.
        StorageClassError
            If ``storage_class`` is not convertible.
        """
        if datastore_records:
            raise RecordDataError(
                f"DatasetRef.replace got datastore records for {self}, but s3qbb refs carry none; "
                "pass them in the Quantum's datastore_records, or to the datastore's import_records."
            )
        dataset_type = datasetType if datasetType is not None else self.datasetType
        if storage_class is not None:
            dataset_type = dataset_type.overrideStorageClass(storage_class)
        if run is None:
            run = self.run
            id = id if id is not None else self.id
        return DatasetRef(dataset_type, self.dataId, run, id=id)

    def isComponent(self) -> bool:
        """Return whether this is a reference to a component."""
        return self.datasetType.isComponent()

    def isComposite(self) -> bool:
        """Return whether the dataset has components."""
        return self.datasetType.isComposite()

    def makeComponentRef(self, name: str, storage_classes: StorageClassFactory | None = None) -> DatasetRef:
        """Return the ref of one component (same ID and run).

        Parameters
        ----------
        name : `str`
            Component name.
        storage_classes : `StorageClassFactory`, optional
            Factory resolving the component's storage class (the shipped one by default).

        Raises
        ------
        DatasetTypeError
            If the storage class has no such component.
        """
        return self.replace(datasetType=self.datasetType.makeComponentDatasetType(name, storage_classes))

    def makeCompositeRef(self) -> DatasetRef:
        """Return the ref of the parent dataset of a component ref.

        Raises
        ------
        NotAComponentError
            If this is not a component ref (a `RuntimeError`, as in daf_butler).
        """
        return self.replace(datasetType=self.datasetType.makeCompositeDatasetType())

    def overrideStorageClass(
        self, storageClass: StorageClass | str, storage_classes: StorageClassFactory | None = None
    ) -> DatasetRef:
        """Return a copy whose dataset type has another, convertible storage class.

        Raises
        ------
        StorageClassError
            If the storage classes are not convertible.
        """
        return self.replace(datasetType=self.datasetType.overrideStorageClass(storageClass, storage_classes))


def _unpickle_dataset_ref(
    datasetType: DatasetType, dataId: DataCoordinate, run: str, id: DatasetId
) -> DatasetRef:
    """Rebuild a pickled `DatasetRef` through its constructor."""
    return DatasetRef(datasetType, dataId, run, id=id)
