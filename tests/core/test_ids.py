"""Tests of s3qbb.core.ids: random and deterministic dataset IDs."""

from __future__ import annotations

import uuid

import pytest

from s3qbb.core.dataset_type import DatasetType
from s3qbb.core.dimensions import DataCoordinate, DimensionUniverse
from s3qbb.core.ids import DatasetId, DatasetIdFactory, DatasetIdGenEnum
from s3qbb.errors import DataIdError, S3qbbError

DETERMINISTIC = [DatasetIdGenEnum.DATAID_TYPE, DatasetIdGenEnum.DATAID_TYPE_RUN]


@pytest.fixture
def data_id(universe: DimensionUniverse) -> DataCoordinate:
    return DataCoordinate.standardize(instrument="Cam", visit=42, detector=7, universe=universe)


def test_dataset_id_is_uuid() -> None:
    assert DatasetId is uuid.UUID


def test_random_mode_gives_distinct_v4_ids(calexp_meta: DatasetType, data_id: DataCoordinate) -> None:
    factory = DatasetIdFactory()
    ids = [factory.makeDatasetId("run", calexp_meta, data_id) for _ in range(200)]
    assert all(isinstance(i, uuid.UUID) and i.version == 4 for i in ids)
    assert len(set(ids)) == len(ids)
    # Random mode needs neither dataset type nor data ID.
    explicit = factory.makeDatasetId("run", None, None, DatasetIdGenEnum.UNIQUE)
    assert explicit.version == 4
    assert explicit not in ids


@pytest.mark.parametrize("mode", DETERMINISTIC)
def test_deterministic_modes_are_stable_uuid5(
    mode: DatasetIdGenEnum, calexp_meta: DatasetType, data_id: DataCoordinate, universe: DimensionUniverse
) -> None:
    first = DatasetIdFactory().makeDatasetId("run1", calexp_meta, data_id, mode)
    assert first.version == 5
    # A new factory, an equal (not identical) dataset type and data ID: same ID.
    same_type = DatasetType("calexp_meta", ["visit", "detector"], "StructuredDataDict", universe=universe)
    same_id = DataCoordinate.standardize({"detector": 7, "visit": 42, "instrument": "Cam"}, universe=universe)
    assert DatasetIdFactory().makeDatasetId("run1", same_type, same_id, mode) == first


def test_run_changes_only_the_run_mode(calexp_meta: DatasetType, data_id: DataCoordinate) -> None:
    factory = DatasetIdFactory()
    type_only = DatasetIdGenEnum.DATAID_TYPE
    with_run = DatasetIdGenEnum.DATAID_TYPE_RUN
    assert factory.makeDatasetId("run1", calexp_meta, data_id, type_only) == factory.makeDatasetId(
        "run2", calexp_meta, data_id, type_only
    )
    assert factory.makeDatasetId("run1", calexp_meta, data_id, with_run) != factory.makeDatasetId(
        "run2", calexp_meta, data_id, with_run
    )
    # The two modes never collide with each other.
    assert factory.makeDatasetId("run1", calexp_meta, data_id, type_only) != factory.makeDatasetId(
        "run1", calexp_meta, data_id, with_run
    )


@pytest.mark.parametrize("mode", DETERMINISTIC)
def test_different_data_ids_and_types_differ(
    mode: DatasetIdGenEnum, calexp_meta: DatasetType, universe: DimensionUniverse
) -> None:
    factory = DatasetIdFactory()
    ids = set()
    for visit in range(5):
        for detector in range(5):
            coord = DataCoordinate.standardize(
                instrument="Cam", visit=visit, detector=detector, universe=universe
            )
            ids.add(factory.makeDatasetId("run", calexp_meta, coord, mode))
    assert len(ids) == 25
    coord = DataCoordinate.standardize(instrument="Cam", visit=1, detector=1, universe=universe)
    other_type = DatasetType("calexp_other", ["visit", "detector"], "StructuredDataDict", universe=universe)
    assert factory.makeDatasetId("run", calexp_meta, coord, mode) != factory.makeDatasetId(
        "run", other_type, coord, mode
    )
    # Another instrument with the same numbers is another dataset.
    other_cam = DataCoordinate.standardize(instrument="Cam2", visit=1, detector=1, universe=universe)
    assert factory.makeDatasetId("run", calexp_meta, coord, mode) != factory.makeDatasetId(
        "run", calexp_meta, other_cam, mode
    )


@pytest.mark.parametrize("mode", DETERMINISTIC)
def test_implied_values_do_not_change_the_id(
    mode: DatasetIdGenEnum, calexp_meta: DatasetType, universe: DimensionUniverse
) -> None:
    bare = DataCoordinate.standardize(instrument="Cam", visit=1, detector=2, universe=universe)
    full = DataCoordinate.standardize(
        instrument="Cam", visit=1, detector=2, physical_filter="g", day_obs=20240101, universe=universe
    )
    assert full.hasFull() is False  # band is still unknown
    factory = DatasetIdFactory()
    assert factory.makeDatasetId("run", calexp_meta, bare, mode) == factory.makeDatasetId(
        "run", calexp_meta, full, mode
    )


@pytest.mark.parametrize("mode", DETERMINISTIC)
def test_no_ambiguity_from_separator_characters(mode: DatasetIdGenEnum, universe: DimensionUniverse) -> None:
    dt = DatasetType("summary", ["skymap", "tract"], "StructuredDataDict", universe=universe)
    factory = DatasetIdFactory()
    a = DataCoordinate.standardize(skymap="a,b", tract=1, universe=universe)
    b = DataCoordinate.standardize(skymap="a", tract=1, universe=universe)
    assert factory.makeDatasetId("r", dt, a, mode) != factory.makeDatasetId("r", dt, b, mode)


def test_namespace_matters(calexp_meta: DatasetType, data_id: DataCoordinate) -> None:
    mode = DatasetIdGenEnum.DATAID_TYPE
    default = DatasetIdFactory().makeDatasetId("run", calexp_meta, data_id, mode)
    explicit_default = DatasetIdFactory(DatasetIdFactory.NS_UUID).makeDatasetId(
        "run", calexp_meta, data_id, mode
    )
    other_ns = uuid.UUID("00000000-0000-0000-0000-000000000001")
    other = DatasetIdFactory(other_ns).makeDatasetId("run", calexp_meta, data_id, mode)
    assert default == explicit_default
    assert other != default
    assert DatasetIdFactory(other_ns).makeDatasetId("run", calexp_meta, data_id, mode) == other


@pytest.mark.parametrize("mode", DETERMINISTIC)
@pytest.mark.parametrize("missing", ["datasetType", "dataId", "both"])
def test_deterministic_modes_need_type_and_data_id(
    mode: DatasetIdGenEnum, missing: str, calexp_meta: DatasetType, data_id: DataCoordinate
) -> None:
    dt = None if missing in ("datasetType", "both") else calexp_meta
    coord = None if missing in ("dataId", "both") else data_id
    with pytest.raises(DataIdError, match=mode.name) as info:
        DatasetIdFactory().makeDatasetId("run", dt, coord, mode)
    assert isinstance(info.value, S3qbbError)
    assert isinstance(info.value, ValueError)
    assert "UNIQUE" in str(info.value)
