"""Shared fixtures of the core model tests."""

from __future__ import annotations

import pytest

from s3qbb.core.dataset_type import DatasetType
from s3qbb.core.dimensions import DimensionUniverse
from s3qbb.core.storage_class import StorageClassFactory


@pytest.fixture
def universe() -> DimensionUniverse:
    return DimensionUniverse()


@pytest.fixture
def storage_classes() -> StorageClassFactory:
    return StorageClassFactory.default()


@pytest.fixture
def calexp_meta(universe: DimensionUniverse) -> DatasetType:
    """A visit+detector dataset type of a plain dict."""
    return DatasetType("calexp_meta", ["visit", "detector"], "StructuredDataDict", universe=universe)


@pytest.fixture
def composite(universe: DimensionUniverse) -> DatasetType:
    """A visit+detector dataset type with components."""
    return DatasetType("result", ["visit", "detector"], "StructuredComposite", universe=universe)
