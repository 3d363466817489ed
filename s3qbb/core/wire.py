"""Versioned pydantic wire models of the core types.

Field names follow daf_butler's ``Serialized*`` models where those exist
(``datasetType``, ``dataId``, ``run``, ``id``, ``storageClass`` ...), so the
JSON reads naturally to users of either library. Every model carries a
``version``; readers refuse versions newer than they know.
"""

from __future__ import annotations

__all__ = [
    "WIRE_VERSION",
    "SerializedDataCoordinate",
    "SerializedDatasetRef",
    "SerializedDatasetType",
    "SerializedDimensionUniverse",
    "SerializedQuantum",
    "SerializedStorageClass",
    "dataset_ref_from_simple",
    "dataset_ref_to_simple",
    "dataset_type_from_simple",
    "dataset_type_to_simple",
    "quantum_from_simple",
    "quantum_to_simple",
]

import uuid
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..errors import DatasetTypeError
from .dataset_ref import DatasetRef
from .dataset_type import DatasetType
from .dimensions import DataCoordinate, DimensionUniverse
from .quantum import Quantum
from .records import DatastoreRecordData, SerializedDatastoreRecordData
from .storage_class import StorageClass

if TYPE_CHECKING:
    from .storage_class import StorageClassFactory

WIRE_VERSION = 1
"""Version of the wire models written by this release."""


class _Versioned(BaseModel):
    # defer_build: what a job reads (SerializedQuantum and the models in it) is built at import
    # (defer_build=False); the base and the models a job does not read are built on first use.
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    version: int = Field(default=WIRE_VERSION, description="Wire format version.")

    @field_validator("version")
    @classmethod
    def _known_version(cls, v: int) -> int:
        if v < 0 or v > WIRE_VERSION:
            raise ValueError(
                f"{cls.__name__} version {v} is newer than this s3qbb understands ({WIRE_VERSION}); "
                "upgrade s3qbb."
            )
        return v


class SerializedDimensionUniverse(_Versioned):
    """A dimension universe's configuration."""

    namespace: str
    universe_version: int
    dimensions: dict[str, dict[str, Any]]

    @classmethod
    def from_universe(cls, universe: DimensionUniverse) -> SerializedDimensionUniverse:
        """Serialize a universe."""
        cfg = universe.to_config()
        return cls(namespace=cfg["namespace"], universe_version=cfg["version"], dimensions=cfg["dimensions"])

    def to_universe(self) -> DimensionUniverse:
        """Rebuild the universe."""
        return DimensionUniverse(
            {"namespace": self.namespace, "version": self.universe_version, "dimensions": self.dimensions}
        )


class SerializedStorageClass(_Versioned):
    """A storage class definition."""

    name: str
    pytype: str
    formatter: str | None = None
    parameters: list[str] = Field(default_factory=list)
    components: dict[str, str] = Field(default_factory=dict)
    converters: dict[str, str] = Field(default_factory=dict)
    parameter_handler: str | None = None

    @classmethod
    def from_storage_class(cls, sc: StorageClass) -> SerializedStorageClass:
        """Serialize a storage class."""
        return cls(name=sc.name, **sc.to_config())

    def to_storage_class(self) -> StorageClass:
        """Rebuild the storage class."""
        return StorageClass(
            self.name,
            self.pytype,
            formatter=self.formatter,
            parameters=self.parameters,
            components=self.components,
            converters=self.converters,
            parameter_handler=self.parameter_handler,
        )


class SerializedDatasetType(_Versioned):
    """A dataset type (daf_butler field names)."""

    model_config = ConfigDict(defer_build=False)

    name: str
    storageClass: str | None = None
    dimensions: list[str] | None = None
    parentStorageClass: str | None = None
    isCalibration: bool = False


class SerializedDataCoordinate(_Versioned):
    """A data ID (daf_butler field names)."""

    model_config = ConfigDict(defer_build=False)

    dataId: dict[str, int | str]


class SerializedDatasetRef(_Versioned):
    """A resolved dataset reference (daf_butler field names)."""

    model_config = ConfigDict(defer_build=False)

    id: uuid.UUID
    datasetType: SerializedDatasetType | None = None
    dataId: SerializedDataCoordinate | None = None
    run: str | None = None
    component: str | None = None


class SerializedQuantum(_Versioned):
    """A quantum; refs are stored without their dataset type, which ``datasetTypeMapping`` holds."""

    model_config = ConfigDict(defer_build=False)

    id: uuid.UUID
    taskName: str | None = None
    taskLabel: str | None = None
    dataId: SerializedDataCoordinate | None = None
    datasetTypeMapping: dict[str, SerializedDatasetType] = Field(default_factory=dict)
    initInputs: dict[str, list[SerializedDatasetRef]] = Field(default_factory=dict)
    inputs: dict[str, list[SerializedDatasetRef]] = Field(default_factory=dict)
    outputs: dict[str, list[SerializedDatasetRef]] = Field(default_factory=dict)
    datastoreRecords: dict[str, SerializedDatastoreRecordData] = Field(default_factory=dict)


def dataset_type_to_simple(dataset_type: DatasetType) -> SerializedDatasetType:
    """Serialize a dataset type."""
    return SerializedDatasetType(
        name=dataset_type.name,
        storageClass=dataset_type.storageClass.name,
        dimensions=list(dataset_type.dimensions.names),
        parentStorageClass=dataset_type.parentStorageClass.name if dataset_type.parentStorageClass else None,
        isCalibration=dataset_type.isCalibration(),
    )


def dataset_type_from_simple(
    simple: SerializedDatasetType,
    universe: DimensionUniverse,
    storage_classes: StorageClassFactory | None = None,
) -> DatasetType:
    """Rebuild a dataset type.

    Raises
    ------
    DatasetTypeError
        If the storage class or dimensions are missing or unknown.
    """
    if simple.storageClass is None or simple.dimensions is None:
        raise DatasetTypeError(
            f"Serialized dataset type {simple.name!r} lacks its storage class or dimensions."
        )
    return DatasetType(
        simple.name,
        simple.dimensions,
        simple.storageClass,
        simple.parentStorageClass,
        universe=universe,
        isCalibration=simple.isCalibration,
        storage_classes=storage_classes,
    )


def dataset_ref_to_simple(ref: DatasetRef, *, minimal: bool = False) -> SerializedDatasetRef:
    """Serialize a dataset ref; ``minimal`` leaves out the dataset type."""
    return SerializedDatasetRef(
        id=ref.id,
        datasetType=None if minimal else dataset_type_to_simple(ref.datasetType),
        dataId=SerializedDataCoordinate(dataId=ref.dataId.to_simple()),
        run=ref.run,
        component=ref.datasetType.component() if minimal else None,
    )


def dataset_ref_from_simple(
    simple: SerializedDatasetRef,
    universe: DimensionUniverse,
    storage_classes: StorageClassFactory | None = None,
    dataset_type: DatasetType | None = None,
) -> DatasetRef:
    """Rebuild a dataset ref; ``dataset_type`` is needed for minimal refs.

    Raises
    ------
    DatasetTypeError
        If no dataset type is available.
    DataIdError
        If the data ID is invalid.
    """
    if dataset_type is None:
        if simple.datasetType is None:
            raise DatasetTypeError(f"Serialized ref {simple.id} has no dataset type and none was given.")
        dataset_type = dataset_type_from_simple(simple.datasetType, universe, storage_classes)
    if simple.component is not None and not dataset_type.isComponent():
        dataset_type = dataset_type.makeComponentDatasetType(simple.component, storage_classes)
    if simple.run is None or simple.dataId is None:
        raise DatasetTypeError(f"Serialized ref {simple.id} lacks its run or data ID; it cannot be resolved.")
    data_id = DataCoordinate.standardize(simple.dataId.dataId, dimensions=dataset_type.dimensions)
    return DatasetRef(dataset_type, data_id, simple.run, id=simple.id)


def quantum_to_simple(quantum: Quantum) -> SerializedQuantum:
    """Serialize a quantum."""
    mapping = {name: dataset_type_to_simple(dt) for name, dt in quantum.dataset_types().items()}

    def refs(group: Any) -> dict[str, list[SerializedDatasetRef]]:
        return {dt.name: [dataset_ref_to_simple(r, minimal=True) for r in rs] for dt, rs in group.items()}

    return SerializedQuantum(
        id=quantum.id,
        taskName=quantum.taskName,
        taskLabel=quantum.taskLabel,
        dataId=SerializedDataCoordinate(dataId=quantum.dataId.to_simple())
        if quantum.dataId is not None
        else None,
        datasetTypeMapping=mapping,
        initInputs=refs(quantum.initInputs),
        inputs=refs(quantum.inputs),
        outputs=refs(quantum.outputs),
        datastoreRecords={name: data.to_simple() for name, data in quantum.datastore_records.items()},
    )


def quantum_from_simple(
    simple: SerializedQuantum,
    universe: DimensionUniverse,
    storage_classes: StorageClassFactory | None = None,
) -> Quantum:
    """Rebuild a quantum.

    Raises
    ------
    DatasetTypeError
        If a ref names a dataset type missing from ``datasetTypeMapping``.
    """
    types = {
        n: dataset_type_from_simple(s, universe, storage_classes)
        for n, s in simple.datasetTypeMapping.items()
    }

    def refs(group: dict[str, list[SerializedDatasetRef]]) -> dict[DatasetType, list[DatasetRef]]:
        out: dict[DatasetType, list[DatasetRef]] = {}
        for name, items in group.items():
            if name not in types:
                raise DatasetTypeError(
                    f"Serialized quantum {simple.id} uses dataset type {name!r} with no definition."
                )
            out[types[name]] = [
                dataset_ref_from_simple(r, universe, storage_classes, types[name]) for r in items
            ]
        return out

    data_id = None
    if simple.dataId is not None:
        data_id = DataCoordinate.standardize(simple.dataId.dataId, universe=universe)
    return Quantum(
        id=simple.id,
        taskName=simple.taskName,
        taskLabel=simple.taskLabel,
        dataId=data_id,
        initInputs=refs(simple.initInputs),
        inputs=refs(simple.inputs),
        outputs=refs(simple.outputs),
        datastore_records={n: DatastoreRecordData.from_simple(d) for n, d in simple.datastoreRecords.items()},
    )
