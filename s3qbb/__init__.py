"""s3qbb: a quantum-backed butler on S3-compatible object storage.

The names below are the public API. They are imported on first use, so
``import s3qbb`` is cheap and does not import boto3, SQLAlchemy or NumPy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "CachingDatastore",
    "DataCoordinate",
    "DatasetId",
    "DatasetIdFactory",
    "DatasetIdGenEnum",
    "DatasetRef",
    "DatasetRefURIs",
    "DatasetType",
    "Datastore",
    "DeferredDatasetHandle",
    "DimensionUniverse",
    "InMemoryDatastore",
    "LimitedButler",
    "Quantum",
    "QuantumBackedButler",
    "QuantumGraph",
    "QuantumProvenanceData",
    "RepoConfig",
    "ResourceURI",
    "RetryConfig",
    "S3Datastore",
    "S3EndpointConfig",
    "S3qbbError",
    "StorageClass",
    "StorageClassFactory",
    "__version__",
]

_LAZY: dict[str, str] = {
    "CachingDatastore": "s3qbb.datastores.caching",
    "DataCoordinate": "s3qbb.core.dimensions",
    "DatasetId": "s3qbb.core.ids",
    "DatasetIdFactory": "s3qbb.core.ids",
    "DatasetIdGenEnum": "s3qbb.core.ids",
    "DatasetRef": "s3qbb.core.dataset_ref",
    "DatasetRefURIs": "s3qbb.core.uri",
    "DatasetType": "s3qbb.core.dataset_type",
    "Datastore": "s3qbb.datastores.base",
    "DeferredDatasetHandle": "s3qbb.butler.limited",
    "DimensionUniverse": "s3qbb.core.dimensions",
    "InMemoryDatastore": "s3qbb.datastores.memory",
    "LimitedButler": "s3qbb.butler.limited",
    "Quantum": "s3qbb.core.quantum",
    "QuantumBackedButler": "s3qbb.butler.quantum_backed",
    "QuantumGraph": "s3qbb.batch.graph",
    "QuantumProvenanceData": "s3qbb.provenance.model",
    "RepoConfig": "s3qbb.repo",
    "ResourceURI": "s3qbb.core.uri",
    "RetryConfig": "s3qbb.config",
    "S3Datastore": "s3qbb.datastores.s3",
    "S3EndpointConfig": "s3qbb.config",
    "S3qbbError": "s3qbb.errors",
    "StorageClass": "s3qbb.core.storage_class",
    "StorageClassFactory": "s3qbb.core.storage_class",
}

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .batch.graph import QuantumGraph
    from .butler.limited import DeferredDatasetHandle, LimitedButler
    from .butler.quantum_backed import QuantumBackedButler
    from .config import RetryConfig, S3EndpointConfig
    from .core.dataset_ref import DatasetRef
    from .core.dataset_type import DatasetType
    from .core.dimensions import DataCoordinate, DimensionUniverse
    from .core.ids import DatasetId, DatasetIdFactory, DatasetIdGenEnum
    from .core.quantum import Quantum
    from .core.storage_class import StorageClass, StorageClassFactory
    from .core.uri import DatasetRefURIs, ResourceURI
    from .datastores.base import Datastore
    from .datastores.caching import CachingDatastore
    from .datastores.memory import InMemoryDatastore
    from .datastores.s3 import S3Datastore
    from .errors import S3qbbError
    from .provenance.model import QuantumProvenanceData
    from .repo import RepoConfig


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 's3qbb' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
