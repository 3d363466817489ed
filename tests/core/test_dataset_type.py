"""Tests of s3qbb.core.dataset_type: names, components, storage class overrides, equality."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from s3qbb.core.dataset_type import DatasetType, default_storage_classes, validate_dataset_type_name
from s3qbb.core.dimensions import DimensionUniverse
from s3qbb.core.storage_class import StorageClass, StorageClassFactory
from s3qbb.errors import DatasetTypeError, S3qbbError, StorageClassError

# The documented pattern: letters, digits and '_', not starting with a digit, optionally '.component',
# at most 128 characters.
DOCUMENTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")

_UNIVERSE = DimensionUniverse()
_NAME_CHARS = st.sampled_from("abcXYZ_019.-/ \té\n\x00")


def _documented(name: str) -> bool:
    return DOCUMENTED.fullmatch(name) is not None and len(name) <= 128


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=20), st.text(_NAME_CHARS, max_size=20)))
@example("a" * 128)
@example("a" * 129)
@example("a.b.c")
@example("_.b")
@example("a.")
@example(".a")
@example("1a")
@example("a.1")
def test_name_validation_matches_documented_pattern(name: str) -> None:
    if _documented(name):
        assert validate_dataset_type_name(name) == name
    else:
        with pytest.raises(DatasetTypeError, match="Invalid dataset type name"):
            validate_dataset_type_name(name)


@settings(max_examples=100, deadline=None)
@given(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,40}", fullmatch=True))
def test_valid_names_build_dataset_types(name: str) -> None:
    dt = DatasetType(name, ["instrument"], "StructuredDataDict", universe=_UNIVERSE)
    assert dt.name == name
    assert dt.component() is None


@pytest.mark.parametrize("name", ["calexp\n", "calexp.wcs\n"])
def test_trailing_newline_is_rejected(name: str) -> None:
    with pytest.raises(DatasetTypeError):
        validate_dataset_type_name(name)


@pytest.mark.parametrize("name", [None, 3, b"calexp", ["a"]])
def test_non_str_names(name: object) -> None:
    with pytest.raises(DatasetTypeError) as info:
        validate_dataset_type_name(name)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, S3qbbError)


def test_construction(universe: DimensionUniverse) -> None:
    dt = DatasetType("calexp_meta", ["visit", "detector"], "StructuredDataDict", universe=universe)
    assert dt.name == "calexp_meta"
    assert dt.dimensions == universe.conform(["visit", "detector"])
    assert dt.dimensions.required == ("instrument", "detector", "visit")
    assert dt.storageClass is default_storage_classes().getStorageClass("StructuredDataDict")
    assert dt.storageClass_name == "StructuredDataDict"
    assert dt.parentStorageClass is None
    assert dt.isCalibration() is False
    assert not dt.isComponent()
    assert not dt.isComposite()
    assert dt.nameAndComponent() == ("calexp_meta", None)
    assert repr(dt) == (
        "DatasetType('calexp_meta', {instrument, band, physical_filter, day_obs, detector, visit}, "
        "StructuredDataDict)"
    )
    by_group = DatasetType("calexp_meta", dt.dimensions, dt.storageClass)
    assert by_group == dt
    assert default_storage_classes() is default_storage_classes()


def test_dimension_names_need_universe() -> None:
    with pytest.raises(DatasetTypeError, match="universe"):
        DatasetType("a", ["visit"], "StructuredDataDict")


def test_custom_storage_class_factory(universe: DimensionUniverse) -> None:
    factory = StorageClassFactory()
    factory.registerStorageClass(StorageClass("Mine", list))
    dt = DatasetType("a", ["instrument"], "Mine", universe=universe, storage_classes=factory)
    assert dt.storageClass.pytype is list
    loose = DatasetType("b", ["instrument"], StorageClass("Loose", set), universe=universe)
    assert loose.storageClass.name == "Loose"


def test_bad_storage_class_argument(universe: DimensionUniverse) -> None:
    with pytest.raises(DatasetTypeError, match="'a'") as info:
        DatasetType("a", ["instrument"], 3, universe=universe)  # type: ignore[arg-type]
    assert isinstance(info.value.__cause__, StorageClassError)


def test_unknown_storage_class_name(universe: DimensionUniverse) -> None:
    # Which S3qbbError is raised is checked for the wire form in test_wire.py.
    with pytest.raises(S3qbbError, match="'NoSuchStorageClass'"):
        DatasetType("a", ["instrument"], "NoSuchStorageClass", universe=universe)


# --- components ------------------------------------------------------------


def test_component_dataset_types(composite: DatasetType) -> None:
    assert composite.isComposite()
    summary = composite.makeComponentDatasetType("summary")
    assert summary.name == "result.summary"
    assert summary.isComponent()
    assert summary.component() == "summary"
    assert summary.nameAndComponent() == ("result", "summary")
    assert summary.storageClass.name == "StructuredDataDict"
    assert summary.parentStorageClass is not None
    assert summary.parentStorageClass.name == "StructuredComposite"
    assert summary.dimensions == composite.dimensions
    data = composite.makeComponentDatasetType("data")
    assert data.storageClass.name == "StructuredDataList"
    assert summary.makeCompositeDatasetType() == composite
    with pytest.raises(RuntimeError, match="'result' is not a component"):
        composite.makeCompositeDatasetType()


def test_component_keeps_calibration_flag(universe: DimensionUniverse) -> None:
    calib = DatasetType("flat", ["detector"], "StructuredComposite", universe=universe, isCalibration=True)
    component = calib.makeComponentDatasetType("data")
    assert component.isCalibration()
    assert component.makeCompositeDatasetType() == calib


def test_component_errors(
    composite: DatasetType, calexp_meta: DatasetType, universe: DimensionUniverse
) -> None:
    with pytest.raises(DatasetTypeError, match="no component 'nope'") as info:
        composite.makeComponentDatasetType("nope")
    assert "['data', 'output', 'summary']" in str(info.value)
    with pytest.raises(DatasetTypeError, match="none"):
        calexp_meta.makeComponentDatasetType("summary")
    with pytest.raises(DatasetTypeError, match="already a component"):
        composite.makeComponentDatasetType("summary").makeComponentDatasetType("summary")
    with pytest.raises(DatasetTypeError, match="parentStorageClass"):
        DatasetType("result.summary", ["visit"], "StructuredDataDict", universe=universe)
    with pytest.raises(DatasetTypeError, match="no component 'other'"):
        DatasetType(
            "result.other",
            ["visit"],
            "StructuredDataDict",
            "StructuredComposite",
            universe=universe,
        )
    with pytest.raises(DatasetTypeError, match="not a component"):
        DatasetType("result", ["visit"], "StructuredDataDict", "StructuredComposite", universe=universe)


def test_explicit_component_type_equals_made_one(composite: DatasetType, universe: DimensionUniverse) -> None:
    explicit = DatasetType(
        "result.output",
        ["visit", "detector"],
        "StructuredDataDict",
        "StructuredComposite",
        universe=universe,
    )
    assert explicit == composite.makeComponentDatasetType("output")


# --- storage class overrides -------------------------------------------------


def test_override_storage_class(universe: DimensionUniverse) -> None:
    as_list = DatasetType("values", ["visit"], "StructuredDataList", universe=universe)
    as_array = as_list.overrideStorageClass("NumpyArray")
    assert as_array.storageClass.name == "NumpyArray"
    assert as_array.name == as_list.name
    assert as_array.dimensions == as_list.dimensions
    assert as_array != as_list
    assert as_array.overrideStorageClass("StructuredDataList") == as_list
    with pytest.raises(StorageClassError, match="'StructuredDataList' cannot be converted to 'Bytes'"):
        as_list.overrideStorageClass("Bytes")
    custom = StorageClassFactory()
    custom.registerStorageClass(StorageClass("ListLike", list))
    assert as_list.overrideStorageClass("ListLike", custom).storageClass.name == "ListLike"


def test_override_storage_class_of_component(composite: DatasetType) -> None:
    data = composite.makeComponentDatasetType("data")
    as_array = data.overrideStorageClass("NumpyArray")
    assert as_array.name == "result.data"
    assert as_array.parentStorageClass == data.parentStorageClass


def test_is_compatible_with(universe: DimensionUniverse) -> None:
    as_list = DatasetType("values", ["visit"], "StructuredDataList", universe=universe)
    as_array = as_list.overrideStorageClass("NumpyArray")
    assert as_array.is_compatible_with(as_list)
    assert as_list.is_compatible_with(as_array)
    assert as_list.is_compatible_with(as_list)
    other_dims = DatasetType("values", ["visit", "detector"], "StructuredDataList", universe=universe)
    assert not as_list.is_compatible_with(other_dims)
    other_name = DatasetType("values2", ["visit"], "StructuredDataList", universe=universe)
    assert not as_list.is_compatible_with(other_name)
    as_bytes = DatasetType("values", ["visit"], "Bytes", universe=universe)
    assert not as_list.is_compatible_with(as_bytes)
    calib = DatasetType("values", ["visit"], "StructuredDataList", universe=universe, isCalibration=True)
    assert not as_list.is_compatible_with(calib)  # as daf_butler: the calibration flag must match
    assert not calib.is_compatible_with(as_list)


# --- equality, hash, immutability ---------------------------------------------


def test_equality_and_hash(universe: DimensionUniverse) -> None:
    a = DatasetType("a", ["visit"], "StructuredDataDict", universe=universe)
    b = DatasetType("a", ["visit"], "StructuredDataDict", universe=DimensionUniverse())
    assert a == b
    assert hash(a) == hash(b)
    assert a != DatasetType("b", ["visit"], "StructuredDataDict", universe=universe)
    assert a != DatasetType("a", ["exposure"], "StructuredDataDict", universe=universe)
    assert a != DatasetType("a", ["visit"], "StructuredDataDictYaml", universe=universe)
    assert a != DatasetType("a", ["visit"], "StructuredDataDict", universe=universe, isCalibration=True)
    assert a != "a"
    assert len({a, b}) == 1


def test_immutability(calexp_meta: DatasetType, universe: DimensionUniverse) -> None:
    for attr, value in [
        ("name", "other"),
        ("dimensions", universe.empty),
        ("storageClass", None),
        ("isCalibration", True),
        ("new_attribute", 1),
    ]:
        with pytest.raises(AttributeError):
            setattr(calexp_meta, attr, value)
    assert calexp_meta.name == "calexp_meta"
    assert calexp_meta.isCalibration() is False


def test_attributes_cannot_be_deleted(calexp_meta: DatasetType) -> None:
    with pytest.raises(AttributeError):
        del calexp_meta.name


def test_is_calibration_is_a_method_as_in_daf_butler(universe: DimensionUniverse) -> None:
    calib = DatasetType("bias", ["detector"], "NumpyArray", universe=universe, isCalibration=True)
    assert calib.isCalibration() is True
    plain = DatasetType("bias", ["detector"], "NumpyArray", universe=universe)
    assert plain.isCalibration() is False
    assert calib != plain
