"""The seed's deprecated butler methods, in one place: their replacements' behaviour plus a warning."""

from __future__ import annotations

__all__ = ["DeprecatedButlerMethods"]

import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..core.dataset_ref import DatasetRef
    from ..core.storage_class import StorageClass
    from ..datastores.base import Datastore
    from .limited import DeferredDatasetHandle


def _warn(old: str, new: str) -> None:
    warnings.warn(
        f"{old} is deprecated since daf_butler v26.0 and will be removed; use {new} instead.",
        FutureWarning,  # daf_butler's category for these: shown by default, unlike DeprecationWarning
        stacklevel=3,
    )


class DeprecatedButlerMethods:
    """Mixin of deprecated aliases; each warns (`FutureWarning`, as daf_butler) naming its replacement."""

    _datastore: Datastore

    if TYPE_CHECKING:  # provided by LimitedButler

        def get(  # noqa: D102
            self,
            ref: DatasetRef,
            /,
            *,
            parameters: Mapping[str, Any] | None = None,
            storageClass: StorageClass | str | None = None,
        ) -> Any: ...

        def getDeferred(  # noqa: D102
            self,
            ref: DatasetRef,
            /,
            *,
            parameters: Mapping[str, Any] | None = None,
            storageClass: StorageClass | str | None = None,
        ) -> DeferredDatasetHandle: ...

        def put(self, obj: Any, ref: DatasetRef, /, *, provenance: Any = None) -> DatasetRef: ...  # noqa: D102

        def stored(self, ref: DatasetRef) -> bool: ...  # noqa: D102

    def getDirect(
        self,
        ref: DatasetRef,
        *,
        parameters: Mapping[str, Any] | None = None,
        storageClass: StorageClass | str | None = None,
    ) -> Any:
        """Read a dataset (deprecated: use ``get``)."""
        _warn("getDirect()", "get()")
        return self.get(ref, parameters=parameters, storageClass=storageClass)

    def getDirectDeferred(
        self,
        ref: DatasetRef,
        *,
        parameters: Mapping[str, Any] | None = None,
        storageClass: StorageClass | str | None = None,
    ) -> DeferredDatasetHandle:
        """Return a deferred handle (deprecated: use ``getDeferred``)."""
        _warn("getDirectDeferred()", "getDeferred()")
        return self.getDeferred(ref, parameters=parameters, storageClass=storageClass)

    def putDirect(self, obj: Any, ref: DatasetRef, /) -> DatasetRef:
        """Store a dataset (deprecated: use ``put``)."""
        _warn("putDirect()", "put()")
        return self.put(obj, ref)

    def datasetExistsDirect(self, ref: DatasetRef) -> bool:
        """Return whether a dataset is stored (deprecated: use ``stored``)."""
        _warn("datasetExistsDirect()", "stored()")
        return self.stored(ref)

    @property
    def datastore(self) -> Datastore:
        """The datastore (deprecated: use the butler's own methods)."""
        _warn("The datastore property", "the butler's methods (get, put, stored, getURI ...)")
        return self._datastore
