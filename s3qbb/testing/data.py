"""Example data for tests: a universe, storage classes, sample objects and a ref maker."""

from __future__ import annotations

__all__ = ["SAMPLES", "ExampleModel", "RefMaker", "example_storage_classes", "sample_object"]

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel

from ..core.dataset_ref import DatasetRef
from ..core.dataset_type import DatasetType
from ..core.dimensions import DimensionUniverse
from ..core.storage_class import StorageClassFactory


class ExampleModel(BaseModel):
    """A small pydantic model stored with the ``ExampleModel`` storage class."""

    name: str
    values: list[float]
    meta: dict[str, str] = {}


def example_storage_classes() -> StorageClassFactory:
    """Return the shipped storage classes plus ``ExampleModel``."""
    factory = StorageClassFactory.default()
    factory.addFromConfig({"ExampleModel": {"pytype": f"{__name__}.ExampleModel", "formatter": "json"}})
    return factory


def _numpy() -> Any:
    import numpy as np

    return np.arange(60, dtype="float64").reshape(20, 3)


def _arrow() -> Any:
    import pyarrow as pa

    return pa.table({"a": [1, 2, 3], "b": ["x", "y", "z"], "c": [0.5, 1.5, 2.5]})


SAMPLES: Mapping[str, Callable[[], Any]] = {
    "StructuredDataDict": lambda: {"a": 1, "b": [1, 2, {"c": "d"}], "e": None},
    "StructuredDataList": lambda: [1, "two", {"three": 3.0}],
    "StructuredDataDictYaml": lambda: {"key": "value", "nested": {"n": [1, 2]}},
    "StructuredComposite": lambda: {"summary": {"n": 3}, "output": {"ok": True}, "data": [1, 2, 3]},
    "Bytes": lambda: b"\x00\x01binary\xff" * 10,
    "NumpyArray": _numpy,
    "ArrowTable": _arrow,
    "ExampleModel": lambda: ExampleModel(name="m", values=[1.0, 2.5], meta={"k": "v"}),
}
"""Factories of a sample object per storage class name."""


def sample_object(storage_class: str) -> Any:
    """Return a fresh sample object of a storage class."""
    return SAMPLES[storage_class]()


class RefMaker:
    """Make dataset types and resolved refs with little ceremony.

    Parameters
    ----------
    universe : `DimensionUniverse`, optional
        Universe of the data IDs; the default one if not given.
    storage_classes : `StorageClassFactory`, optional
        Storage classes; `example_storage_classes` if not given.
    run : `str`, optional
        Default run of the refs.

    Examples
    --------
    >>> from s3qbb.testing.data import RefMaker
    >>> refs = RefMaker()
    >>> refs.make("StructuredDataDict", visit=3).dataId["visit"]
    3
    """

    def __init__(
        self,
        universe: DimensionUniverse | None = None,
        storage_classes: StorageClassFactory | None = None,
        run: str = "test_run",
    ) -> None:
        self.universe = universe or DimensionUniverse()
        self.storage_classes = storage_classes or example_storage_classes()
        self.run = run
        self._counter = 0

    def dataset_type(
        self, storage_class: str, name: str | None = None, dimensions: tuple[str, ...] = ("visit", "detector")
    ) -> DatasetType:
        """Return a dataset type named after its storage class unless ``name`` is given."""
        return DatasetType(
            name or f"dt_{storage_class}",
            dimensions,
            storage_class,
            universe=self.universe,
            storage_classes=self.storage_classes,
        )

    def make(
        self,
        storage_class: str = "StructuredDataDict",
        *,
        name: str | None = None,
        run: str | None = None,
        dimensions: tuple[str, ...] = ("visit", "detector"),
        **data_id: Any,
    ) -> DatasetRef:
        """Return a new resolved ref; missing data ID values are filled with fresh numbers."""
        dataset_type = self.dataset_type(storage_class, name, dimensions)
        self._counter += 1
        values: dict[str, Any] = {"instrument": "Cam", "skymap": "sky"}
        for dim in dataset_type.dimensions.required:
            if dim not in values and dim not in data_id:
                kind = self.universe[dim].value_type
                values[dim] = self._counter if kind is int else f"v{self._counter}"
        values.update(data_id)
        keep = {k: v for k, v in values.items() if k in dataset_type.dimensions.names}
        return DatasetRef(dataset_type, keep, run or self.run)
