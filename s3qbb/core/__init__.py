"""Pure domain types of s3qbb: no I/O happens in this package."""

from __future__ import annotations

__all__ = [
    "DataCoordinate",
    "DatasetId",
    "DatasetIdFactory",
    "DatasetIdGenEnum",
    "DatasetRef",
    "DatasetType",
    "DimensionGroup",
    "DimensionUniverse",
    "Quantum",
    "StorageClass",
    "StorageClassFactory",
]

from .dataset_ref import DatasetRef
from .dataset_type import DatasetType
from .dimensions import DataCoordinate, DimensionGroup, DimensionUniverse
from .ids import DatasetId, DatasetIdFactory, DatasetIdGenEnum
from .quantum import Quantum
from .storage_class import StorageClass, StorageClassFactory
