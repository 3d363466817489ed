"""LimitedButler: the butler API of a batch job that only handles resolved refs; DeferredDatasetHandle."""

from __future__ import annotations

__all__ = ["DeferredDatasetHandle", "LimitedButler"]

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from .deprecated import DeprecatedButlerMethods

if TYPE_CHECKING:
    from ..core.dataset_ref import DatasetRef
    from ..core.dimensions import DataCoordinate, DimensionUniverse
    from ..core.storage_class import StorageClass
    from ..core.uri import DatasetRefURIs, ResourceURI


class LimitedButler(DeprecatedButlerMethods, ABC):
    """A butler that reads and writes datasets given only resolved `DatasetRef` objects.

    There is no registry behind it: every dataset is named by its resolved
    ref (ID, dataset type, data ID, run).
    """

    GENERATION: ClassVar[int] = 3
    """This is a Generation 3 Butler (kept for compatibility)."""

    def isWriteable(self) -> bool:
        """Return whether `put` may be called (always `True` here)."""
        return True

    @property
    @abstractmethod
    def dimensions(self) -> DimensionUniverse:
        """The dimension universe of the repository."""

    @abstractmethod
    def get(
        self,
        ref: DatasetRef,
        /,
        *,
        parameters: Mapping[str, Any] | None = None,
        storageClass: StorageClass | str | None = None,
    ) -> Any:
        """Retrieve a stored dataset given its resolved ref."""

    @abstractmethod
    def getDeferred(
        self,
        ref: DatasetRef,
        /,
        *,
        parameters: Mapping[str, Any] | None = None,
        storageClass: StorageClass | str | None = None,
    ) -> DeferredDatasetHandle:
        """Return a handle that reads the dataset later."""

    @abstractmethod
    def put(self, obj: Any, ref: DatasetRef, /, *, provenance: Any = None) -> DatasetRef:
        """Store a dataset under a resolved ref and return the ref.

        ``provenance`` (daf_butler's ``DatasetProvenance``) is accepted so daf_butler
        task code runs unchanged; s3qbb's formatters do not embed it (daf_butler's
        formatters may ignore it too): a quantum's provenance is its provenance file.
        """

    @abstractmethod
    def stored(self, ref: DatasetRef) -> bool:
        """Return whether the dataset's artifacts are present."""

    @abstractmethod
    def stored_many(self, refs: Iterable[DatasetRef]) -> dict[DatasetRef, bool]:
        """Return artifact existence of many datasets."""

    def markInputUnused(self, ref: DatasetRef) -> None:
        """Record that a predicted input was not actually used (no-op without provenance)."""

    @abstractmethod
    def pruneDatasets(
        self,
        refs: Iterable[DatasetRef],
        *,
        disassociate: bool = True,
        unstore: bool = False,
        tags: Iterable[str] = (),
        purge: bool = False,
    ) -> None:
        """Remove datasets from collections and/or storage."""

    @abstractmethod
    def getURI(self, ref: DatasetRef, /, *, predict: bool = False) -> ResourceURI:
        """Return the URI of a dataset."""

    @abstractmethod
    def getURIs(self, ref: DatasetRef, /, *, predict: bool = False) -> DatasetRefURIs:
        """Return the URIs of a dataset's artifacts."""

    @abstractmethod
    def get_many_uris(
        self, refs: Iterable[DatasetRef], predict: bool = False, allow_missing: bool = False
    ) -> dict[DatasetRef, DatasetRefURIs]:
        """Return URIs of many datasets."""

    @abstractmethod
    def get_datastore_names(self) -> tuple[str, ...]:
        """Return the names of the datastores of this butler."""

    @abstractmethod
    def get_datastore_roots(self) -> dict[str, ResourceURI | None]:
        """Return the root URI of each datastore (`None` where there is none)."""


class DeferredDatasetHandle:
    """A handle that reads a dataset when asked, through the butler that made it.

    Parameters
    ----------
    butler : `LimitedButler`
        The butler to read with.
    ref : `DatasetRef`
        The dataset.
    parameters : `~collections.abc.Mapping`, optional
        Default read parameters.
    storageClass : `StorageClass` or `str`, optional
        Default storage class override.
    """

    __slots__ = ("butler", "parameters", "ref", "storageClass")

    def __init__(
        self,
        butler: LimitedButler,
        ref: DatasetRef,
        parameters: Mapping[str, Any] | None = None,
        storageClass: StorageClass | str | None = None,
    ) -> None:
        self.butler = butler
        self.ref = ref
        self.parameters = dict(parameters) if parameters else None
        self.storageClass = storageClass

    @property
    def dataId(self) -> DataCoordinate:
        """The data ID of the dataset."""
        return self.ref.dataId

    def get(
        self,
        *,
        component: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        storageClass: StorageClass | str | None = None,
    ) -> Any:
        """Read the dataset (or one component of it).

        Parameters
        ----------
        component : `str`, optional
            Component to read instead of the whole dataset.
        parameters : `~collections.abc.Mapping`, optional
            Read parameters, merged over the handle's defaults.
        storageClass : `StorageClass` or `str`, optional
            Storage class override; the handle's default if not given.
        """
        merged = {**(self.parameters or {}), **(parameters or {})} or None
        ref = self.ref.makeComponentRef(component) if component else self.ref
        return self.butler.get(ref, parameters=merged, storageClass=storageClass or self.storageClass)

    def __repr__(self) -> str:
        return f"DeferredDatasetHandle({self.ref!r})"
