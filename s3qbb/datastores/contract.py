"""Plain data of the datastore contract: what a datastore can do, and what a read asks for.

`DatastoreCapabilities` and `ReadPlan` are used by `s3qbb.datastores.base.Datastore`
(which exports them too) and by every backend.
"""

from __future__ import annotations

__all__ = ["DatastoreCapabilities", "ReadPlan"]

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..core.dataset_ref import DatasetRef
    from ..core.storage_class import StorageClass


@dataclass(frozen=True, slots=True)
class DatastoreCapabilities:
    """What a datastore can do; callers and the conformance suite branch on these flags.

    Parameters
    ----------
    ephemeral : `bool`
        Contents vanish with the process.
    predicted_uris : `bool`
        ``getURI(ref, predict=True)`` gives a meaningful URI before a write.
    partial_reads : `bool`
        Read parameters are applied while reading (e.g. HTTP ranges), not after a full read.
    persistent_records : `bool`
        Records can be exported and imported (`Datastore.export_records`).
    bounded : `bool`
        Contents may be evicted to respect a size bound (a cache tier).
    checksums : `bool`
        Stored bytes are verified against recorded checksums on read.
    """

    ephemeral: bool
    predicted_uris: bool = True
    partial_reads: bool = False
    persistent_records: bool = False
    bounded: bool = False
    checksums: bool = False


@dataclass(frozen=True, slots=True)
class ReadPlan:
    """What a `Datastore.get` call asked for, validated before any I/O.

    Parameters
    ----------
    ref : `DatasetRef`
        The ref as given (possibly a component ref).
    parent : `DatasetRef`
        The ref of the stored (parent) dataset.
    component : `str` or `None`
        Component to extract.
    stored : `StorageClass`
        Storage class the dataset was written with (of the parent).
    target : `StorageClass`
        Storage class of the object to return (component and override applied).
    parameters : `~collections.abc.Mapping`
        Validated read parameters.
    """

    ref: DatasetRef
    parent: DatasetRef
    component: str | None
    stored: StorageClass
    target: StorageClass
    parameters: Mapping[str, Any]
