"""s3qbb raises errors that daf_butler callers' ``except`` clauses catch."""

from __future__ import annotations

import pytest

from s3qbb.core.dataset_ref import DatasetRef
from s3qbb.core.dataset_type import DatasetType
from s3qbb.core.dimensions import DataCoordinate, DimensionUniverse
from s3qbb.core.storage_class import StorageClassFactory
from s3qbb.errors import (
    DataIdError,
    DatasetTypeError,
    DimensionNameError,
    S3qbbError,
    StorageClassError,
    UnknownComponentError,
    UnknownStorageClassError,
)


@pytest.fixture
def ref() -> DatasetRef:
    universe = DimensionUniverse()
    dt = DatasetType("m", ["instrument", "detector"], "StructuredDataDict", universe=universe)
    return DatasetRef(dt, {"instrument": "Cam", "detector": 7}, run="r")


def test_unconvertible_override_is_a_value_error(ref: DatasetRef) -> None:
    with pytest.raises(ValueError, match="NumpyArray") as info:
        ref.overrideStorageClass("NumpyArray")
    assert isinstance(info.value, StorageClassError)
    assert isinstance(info.value, TypeError)


def test_unknown_component_is_a_key_error(ref: DatasetRef) -> None:
    with pytest.raises(KeyError) as info:
        ref.makeComponentRef("nope")
    assert isinstance(info.value, UnknownComponentError)
    assert isinstance(info.value, DatasetTypeError)
    assert isinstance(info.value, S3qbbError)
    assert str(info.value).startswith("Dataset type 'm'")  # not a quoted key


def test_unknown_storage_class_is_a_key_error() -> None:
    with pytest.raises(KeyError) as info:
        StorageClassFactory.default().getStorageClass("Nope")
    assert isinstance(info.value, UnknownStorageClassError)
    assert isinstance(info.value, LookupError)
    assert not str(info.value).startswith(("'", '"'))
    assert "Nope" in str(info.value)


@pytest.mark.parametrize(
    "values", [{"instrument": "Cam", "nope": 1}, {"detector": 1}], ids=["unknown", "missing"]
)
def test_dimension_name_errors_are_key_errors(values: dict[str, object]) -> None:
    with pytest.raises(KeyError) as info:
        DataCoordinate.standardize(values, universe=DimensionUniverse())
    assert isinstance(info.value, DimensionNameError)
    assert isinstance(info.value, DataIdError)
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith("Data ID")


def test_unknown_universe_dimension_is_a_key_error() -> None:
    with pytest.raises(KeyError, match="Unknown dimension 'nope'"):
        DimensionUniverse()["nope"]
