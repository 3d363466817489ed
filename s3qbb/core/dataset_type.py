"""Dataset types: a name, the dimensions of its data IDs, and a storage class."""

from __future__ import annotations

__all__ = ["DatasetType", "default_storage_classes", "validate_dataset_type_name"]

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from ..errors import (
    DataIdError,
    DatasetTypeError,
    NotAComponentError,
    StorageClassError,
    UnknownComponentError,
    UnknownStorageClassError,
)
from .dimensions import DimensionGroup, DimensionUniverse
from .storage_class import StorageClass, StorageClassFactory

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")
_MAX_NAME = 128


@lru_cache(maxsize=1)
def default_storage_classes() -> StorageClassFactory:
    """Return the read-only, shared factory of shipped storage classes.

    Used to resolve storage class names when no factory is given. Define
    custom storage classes in your own `StorageClassFactory` instead of
    registering them here.
    """
    return StorageClassFactory.default()


def validate_dataset_type_name(name: object) -> str:
    """Return ``name`` if it is a valid dataset type name (``parent`` or ``parent.component``).

    Raises
    ------
    DatasetTypeError
        If the name is not a str, is too long, or has characters outside ``[A-Za-z0-9_]``.
    """
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or len(name) > _MAX_NAME:
        raise DatasetTypeError(
            f"Invalid dataset type name {name!r}: use letters, digits and '_' (not starting with a digit), "
            f"at most {_MAX_NAME} characters, optionally '.component'."
        )
    return name


class DatasetType:
    """The kind of a dataset: name, dimensions and storage class.

    Parameters
    ----------
    name : `str`
        ``parent`` or ``parent.component``.
    dimensions : `DimensionGroup` or iterable of `str`
        Dimensions of the data IDs of this dataset type.
    storageClass : `StorageClass` or `str`
        Storage class (or its name, resolved with ``storage_classes``).
    parentStorageClass : `StorageClass` or `str`, optional
        Storage class of the parent; required for component dataset types.
    universe : `DimensionUniverse`, optional
        Needed when ``dimensions`` are names.
    isCalibration : `bool`, optional
        Whether datasets of this type are calibrations.
    storage_classes : `StorageClassFactory`, optional
        Factory resolving storage class names; defaults to the shipped ones.

    Raises
    ------
    DatasetTypeError
        If the name is malformed or a component dataset type lacks a valid parent storage class.

    Examples
    --------
    >>> from s3qbb.core.dimensions import DimensionUniverse
    >>> from s3qbb.core.dataset_type import DatasetType
    >>> dt = DatasetType("calexp_meta", ["visit", "detector"], "StructuredDataDict",
    ...                  universe=DimensionUniverse())
    >>> dt.dimensions.required
    ('instrument', 'detector', 'visit')
    """

    __slots__ = (
        "_factory",
        "_hash",
        "_isCalibration",
        "dimensions",
        "name",
        "parentStorageClass",
        "storageClass",
    )

    def __init__(
        self,
        name: str,
        dimensions: DimensionGroup | Iterable[str],
        storageClass: StorageClass | str,
        parentStorageClass: StorageClass | str | None = None,
        *,
        universe: DimensionUniverse | None = None,
        isCalibration: bool = False,
        storage_classes: StorageClassFactory | None = None,
    ) -> None:
        validate_dataset_type_name(name)
        if not isinstance(dimensions, DimensionGroup):
            if universe is None:
                raise DatasetTypeError(f"Dataset type {name!r}: dimension names need a universe.")
            try:
                dimensions = universe.conform(dimensions)
            except DataIdError as err:
                raise DatasetTypeError(f"Dataset type {name!r}: {err}") from err
        factory = storage_classes or default_storage_classes()
        try:
            sc = factory.resolve(storageClass)
            parent = factory.resolve(parentStorageClass) if parentStorageClass is not None else None
        except (StorageClassError, UnknownStorageClassError) as err:
            raise DatasetTypeError(f"Dataset type {name!r}: {err}") from err
        if "." in name:
            component = name.split(".", 1)[1]
            if parent is None:
                raise DatasetTypeError(f"Component dataset type {name!r} needs a parentStorageClass.")
            if component not in parent.components:
                raise UnknownComponentError(
                    f"Dataset type {name!r}: parent storage class {parent.name!r} has no component "
                    f"{component!r}; it has {sorted(parent.components) or 'none'}."
                )
        elif parent is not None:
            raise DatasetTypeError(
                f"Dataset type {name!r} is not a component; do not give a parentStorageClass."
            )
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "dimensions", dimensions)
        object.__setattr__(self, "storageClass", sc)
        object.__setattr__(self, "parentStorageClass", parent)
        object.__setattr__(self, "_isCalibration", bool(isCalibration))
        object.__setattr__(self, "_factory", factory)
        object.__setattr__(self, "_hash", hash((name, dimensions, sc.name)))

    name: str
    dimensions: DimensionGroup
    storageClass: StorageClass
    parentStorageClass: StorageClass | None
    _isCalibration: bool
    _factory: StorageClassFactory

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("DatasetType is immutable.")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("DatasetType is immutable.")

    @property
    def storageClass_name(self) -> str:
        """Name of the storage class."""
        return self.storageClass.name

    def nameAndComponent(self) -> tuple[str, str | None]:
        """Return the parent name and the component name (or `None`)."""
        parent, _, component = self.name.partition(".")
        return parent, component or None

    def component(self) -> str | None:
        """Return the component name, or `None` for a parent dataset type."""
        return self.nameAndComponent()[1]

    def isCalibration(self) -> bool:
        """Return whether datasets of this type may be in calibration collections (as daf_butler)."""
        return self._isCalibration

    def isComponent(self) -> bool:
        """Return whether this is a component dataset type."""
        return "." in self.name

    def isComposite(self) -> bool:
        """Return whether the storage class has components."""
        return bool(self.storageClass.components)

    def makeComponentDatasetType(
        self, component: str, storage_classes: StorageClassFactory | None = None
    ) -> DatasetType:
        """Return the dataset type of one component of this (parent) dataset type.

        Raises
        ------
        DatasetTypeError
            If this is already a component or the storage class has no such component.
        """
        if self.isComponent():
            raise DatasetTypeError(f"{self.name!r} is already a component dataset type.")
        if component not in self.storageClass.components:
            raise UnknownComponentError(
                f"Dataset type {self.name!r} (storage class {self.storageClass.name!r}) has no component "
                f"{component!r}; it has {sorted(self.storageClass.components) or 'none'}."
            )
        return DatasetType(
            f"{self.name}.{component}",
            self.dimensions,
            self.storageClass.components[component],
            parentStorageClass=self.storageClass,
            isCalibration=self._isCalibration,
            storage_classes=storage_classes or self._factory,
        )

    def makeCompositeDatasetType(self) -> DatasetType:
        """Return the parent dataset type of a component dataset type.

        Raises
        ------
        NotAComponentError
            If this is not a component dataset type (a `RuntimeError`, as in daf_butler).
        """
        if self.parentStorageClass is None:
            raise NotAComponentError(
                f"Dataset type {self.name!r} is not a component, so it has no composite (parent) dataset "
                "type; check isComponent() first."
            )
        return DatasetType(
            self.nameAndComponent()[0],
            self.dimensions,
            self.parentStorageClass,
            isCalibration=self._isCalibration,
        )

    def overrideStorageClass(
        self, storageClass: StorageClass | str, storage_classes: StorageClassFactory | None = None
    ) -> DatasetType:
        """Return a copy with another, convertible storage class.

        Raises
        ------
        StorageClassError
            If the new storage class cannot be converted from the current one.
        """
        new = (storage_classes or self._factory).resolve(storageClass)
        if not new.can_convert(self.storageClass):
            raise StorageClassError(
                f"Dataset type {self.name!r}: storage class {self.storageClass.name!r} "
                "cannot be converted to "
                f"{new.name!r}; declare a converter in {new.name!r} or read with the original storage class."
            )
        return DatasetType(
            self.name,
            self.dimensions,
            new,
            self.parentStorageClass,
            isCalibration=self._isCalibration,
            storage_classes=storage_classes or self._factory,
        )

    def is_compatible_with(self, other: DatasetType) -> bool:
        """Return whether refs of ``other`` may be used where this type is expected.

        Same name, dimensions and calibration flag (as daf_butler), and this storage class can be
        converted from the other's.
        """
        return (
            self.name == other.name
            and self.dimensions == other.dimensions
            and self._isCalibration == other._isCalibration
            and self.storageClass.can_convert(other.storageClass)
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DatasetType):
            return NotImplemented
        return (
            self.name == other.name
            and self.dimensions == other.dimensions
            and self.storageClass.name == other.storageClass.name
            and self._isCalibration == other._isCalibration
            and (self.parentStorageClass.name if self.parentStorageClass else None)
            == (other.parentStorageClass.name if other.parentStorageClass else None)
        )

    def __lt__(self, other: object) -> bool:
        # As daf_butler: by name.
        if not isinstance(other, DatasetType):
            return NotImplemented
        return self.name < other.name

    def __hash__(self) -> int:
        return self._hash

    _hash: int

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt through the constructor, so the hash is recomputed in the unpickling process (str hashes
        # differ between processes). The shared factory of shipped storage classes is not pickled: the
        # copy uses the unpickling process's one; a custom factory is pickled with the dataset type.
        factory = None if self._factory is default_storage_classes() else self._factory
        return (
            _unpickle_dataset_type,
            (
                self.name,
                self.dimensions,
                self.storageClass,
                self.parentStorageClass,
                self._isCalibration,
                factory,
            ),
        )

    def __repr__(self) -> str:
        return f"DatasetType({self.name!r}, {self.dimensions}, {self.storageClass.name})"


def _unpickle_dataset_type(
    name: str,
    dimensions: DimensionGroup,
    storageClass: StorageClass,
    parentStorageClass: StorageClass | None,
    isCalibration: bool,
    storage_classes: StorageClassFactory | None,
) -> DatasetType:
    """Rebuild a pickled `DatasetType` through its constructor."""
    return DatasetType(
        name,
        dimensions,
        storageClass,
        parentStorageClass,
        isCalibration=isCalibration,
        storage_classes=storage_classes,
    )
