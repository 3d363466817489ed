"""Tests of s3qbb.core.dimensions: universes, groups and data IDs."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from s3qbb.core.dimensions import (
    DEFAULT_UNIVERSE_CONFIG,
    DataCoordinate,
    Dimension,
    DimensionGroup,
    DimensionUniverse,
)
from s3qbb.errors import ConfigError, DataIdError, S3qbbError

ALL_DIMENSIONS = {
    "instrument",
    "band",
    "physical_filter",
    "day_obs",
    "detector",
    "exposure",
    "visit",
    "skymap",
    "tract",
    "patch",
}


def _config(**dimensions: Any) -> dict[str, Any]:
    return {"namespace": "test", "version": 3, "dimensions": dimensions}


# --- default universe ----------------------------------------------------


def test_default_universe_has_the_ten_dimensions(universe: DimensionUniverse) -> None:
    assert universe.names == frozenset(ALL_DIMENSIONS)
    assert universe.namespace == "s3qbb"
    assert universe.version == 1
    for name in ALL_DIMENSIONS:
        assert name in universe
        assert isinstance(universe[name], Dimension)
        assert universe[name].name == name
    assert "nope" not in universe
    assert DimensionUniverse.default() == universe
    assert DimensionUniverse.default() is not DimensionUniverse.default()


@pytest.mark.parametrize(
    ("name", "value_type", "requires", "implies"),
    [
        ("instrument", str, (), ()),
        ("band", str, (), ()),
        ("physical_filter", str, ("instrument",), ("band",)),
        ("day_obs", int, ("instrument",), ()),
        ("detector", int, ("instrument",), ()),
        ("exposure", int, ("instrument",), ("physical_filter", "day_obs")),
        ("visit", int, ("instrument",), ("physical_filter", "day_obs")),
        ("skymap", str, (), ()),
        ("tract", int, ("skymap",), ()),
        ("patch", int, ("skymap", "tract"), ()),
    ],
)
def test_default_dimension_definitions(
    universe: DimensionUniverse,
    name: str,
    value_type: type,
    requires: tuple[str, ...],
    implies: tuple[str, ...],
) -> None:
    dim = universe[name]
    assert dim == Dimension(name, value_type, requires, implies)


def test_unknown_dimension_lookup(universe: DimensionUniverse) -> None:
    with pytest.raises(DataIdError, match="'nope'") as info:
        universe["nope"]
    assert "visit" in str(info.value)  # lists what is known


def test_conform_visit(universe: DimensionUniverse) -> None:
    group = universe.conform(["visit"])
    assert isinstance(group, DimensionGroup)
    assert set(group.names) == {"instrument", "visit", "physical_filter", "day_obs", "band"}
    assert group.required == ("instrument", "visit")
    assert set(group.implied) == {"physical_filter", "day_obs", "band"}
    assert len(group) == 5
    assert list(group) == list(group.names)
    assert "band" in group
    assert "detector" not in group
    assert group.universe is universe


def test_conform_patch_requires_skymap_and_tract(universe: DimensionUniverse) -> None:
    group = universe.conform(["patch"])
    assert group.names == ("skymap", "tract", "patch")
    assert group.required == ("skymap", "tract", "patch")
    assert group.implied == ()


def test_conform_physical_filter_and_str_argument(universe: DimensionUniverse) -> None:
    group = universe.conform("physical_filter")
    assert group.required == ("instrument", "physical_filter")
    assert group.implied == ("band",)


def test_conform_orders_required_first_and_is_cached(universe: DimensionUniverse) -> None:
    group = universe.conform(["detector", "visit"])
    assert group.required == ("instrument", "detector", "visit")
    # Requirements precede the dimensions requiring them.
    for name in group.names:
        for dep in universe[name].requires:
            assert group.names.index(dep) < group.names.index(name)
    assert universe.conform(["detector", "visit"]) is group
    assert universe.conform(["visit", "detector", "instrument"]) == group
    assert hash(universe.conform(["visit", "detector", "instrument"])) == hash(group)


def test_conform_empty_and_unknown(universe: DimensionUniverse) -> None:
    assert universe.empty == universe.conform([])
    assert len(universe.empty) == 0
    assert universe.empty.required == ()
    with pytest.raises(DataIdError, match="'nope'"):
        universe.conform(["visit", "nope"])


def test_group_subset(universe: DimensionUniverse) -> None:
    visit = universe.conform(["visit"])
    visit_detector = universe.conform(["visit", "detector"])
    assert visit.issubset(visit_detector)
    assert not visit_detector.issubset(visit)
    assert universe.empty.issubset(visit)
    assert repr(universe.conform(["patch"])) == "{skymap, tract, patch}"


def test_sorted(universe: DimensionUniverse) -> None:
    assert universe.sorted(["patch", "tract", "skymap"]) == ("skymap", "tract", "patch")
    assert universe.sorted(["visit", "instrument"]) == ("instrument", "visit")


# --- custom and malformed configs -----------------------------------------


def test_custom_universe() -> None:
    config = _config(
        site={"type": "str"},
        telescope={"type": "str", "requires": ["site"]},
        night={"type": "int", "requires": ["site"]},
        frame={"type": "int", "requires": ["telescope"], "implies": ["night"]},
    )
    universe = DimensionUniverse(config)
    assert universe.namespace == "test"
    assert universe.version == 3
    assert universe.names == {"site", "telescope", "night", "frame"}
    assert universe["night"].value_type is int
    assert universe["site"].value_type is str
    group = universe.conform(["frame"])
    assert group.required == ("site", "telescope", "frame")
    assert group.implied == ("night",)
    coord = DataCoordinate.standardize(site="x", telescope="t", frame=4, night=2, universe=universe)
    assert coord.required == {"site": "x", "telescope": "t", "frame": 4}
    assert coord["night"] == 2


def test_default_type_is_str_and_spec_may_be_empty() -> None:
    universe = DimensionUniverse(_config(a=None, b={}))
    assert universe["a"].value_type is str
    assert universe["b"] == Dimension("b", str)


def test_to_config_round_trip(universe: DimensionUniverse) -> None:
    config = universe.to_config()
    assert config["namespace"] == "s3qbb"
    assert config["version"] == 1
    assert config["dimensions"]["patch"] == {"type": "int", "requires": ["skymap", "tract"]}
    assert config["dimensions"]["band"] == {"type": "str"}
    assert config == {
        "namespace": DEFAULT_UNIVERSE_CONFIG["namespace"],
        "version": DEFAULT_UNIVERSE_CONFIG["version"],
        "dimensions": {
            k: {"type": v["type"], **{r: list(v[r]) for r in ("requires", "implies") if r in v}}
            for k, v in DEFAULT_UNIVERSE_CONFIG["dimensions"].items()
        },
    }
    again = DimensionUniverse(copy.deepcopy(config))
    assert again == universe
    assert hash(again) == hash(universe)
    assert again.to_config() == config


def test_equality() -> None:
    a = DimensionUniverse(_config(x={"type": "int"}))
    b = DimensionUniverse(_config(x={"type": "int"}))
    assert a == b
    assert a != DimensionUniverse(_config(x={"type": "str"}))
    assert a != DimensionUniverse(_config(x={"type": "int"}, y={}))
    assert a != DimensionUniverse({**_config(x={"type": "int"}), "namespace": "other"})
    assert a != DimensionUniverse({**_config(x={"type": "int"}), "version": 4})
    assert a != "universe"
    assert "test" in repr(a)


def test_default_config_is_read_only() -> None:
    with pytest.raises(TypeError):
        DEFAULT_UNIVERSE_CONFIG["namespace"] = "x"  # type: ignore[index]


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({}, "dimensions"),
        ({"namespace": "x"}, "dimensions"),
        ({"version": "not-a-number", "dimensions": {}}, "malformed"),
        (_config(a={"requires": ["nope"]}), "'nope'"),
        (_config(a={"implies": ["nope"]}), "'nope'"),
        (_config(a={"type": "float"}), "'float'"),
        (_config(a={"type": "int"}, b={"type": int}), "'b'"),
        (_config(A={}), "'A'"),
        (_config(**{"1a": {}}), "'1a'"),
        (_config(**{"a-b": {}}), "'a-b'"),
        (_config(**{"": {}}), "''"),
        (_config(a={"requires": ["a"]}), "cycle"),
        (_config(a={"requires": ["b"]}, b={"requires": ["c"]}, c={"requires": ["a"]}), "cycle"),
    ],
)
def test_malformed_configs(config: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        DimensionUniverse(config)
    assert isinstance(info.value, S3qbbError)
    assert isinstance(info.value, ValueError)


def test_non_str_dimension_name_is_rejected() -> None:
    with pytest.raises(ConfigError):
        DimensionUniverse({"dimensions": {1: {}}})


@pytest.mark.parametrize(
    "config",
    [
        {"dimensions": ["a", "b"]},
        {"dimensions": "a"},
        {"dimensions": {"a": "str"}},
        {"dimensions": {"a": ["requires"]}},
    ],
    ids=["dims-list", "dims-str", "spec-str", "spec-list"],
)
def test_non_mapping_configs_raise_config_error(config: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        DimensionUniverse(config)


def test_unknown_spec_keys_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="typ"):
        DimensionUniverse(_config(a={"typ": "int"}))


@pytest.mark.parametrize(
    "dims",
    [
        {"a": {"implies": ["b"]}, "b": {"implies": ["a"]}},
        {"a": {"implies": ["a"]}},
        {"a": {"requires": ["b"], "implies": ["b"]}, "b": {}},
    ],
    ids=["implies-cycle", "implies-self", "requires-and-implies"],
)
def test_inconsistent_relations_raise_config_error(dims: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        DimensionUniverse(_config(**dims))


def test_dimension_name_with_trailing_newline_is_rejected() -> None:
    with pytest.raises(ConfigError):
        DimensionUniverse(_config(**{"a\n": {}}))


# --- DataCoordinate.standardize ---------------------------------------------


def test_standardize_from_kwargs_and_mapping(universe: DimensionUniverse) -> None:
    a = DataCoordinate.standardize(instrument="Cam", visit=1, detector=2, universe=universe)
    b = DataCoordinate.standardize({"instrument": "Cam", "visit": 1}, detector=2, universe=universe)
    c = DataCoordinate.standardize(
        {"instrument": "Cam", "visit": 99, "detector": 2}, visit=1, universe=universe
    )
    assert a == b == c
    assert a.dimensions == universe.conform(["visit", "detector"])
    assert dict(a.required) == {"instrument": "Cam", "detector": 2, "visit": 1}
    assert a["visit"] == 1
    assert a.universe is universe


def test_standardize_universe_from_group_or_coordinate(universe: DimensionUniverse) -> None:
    group = universe.conform(["detector"])
    coord = DataCoordinate.standardize({"instrument": "Cam", "detector": 3}, dimensions=group)
    assert coord.universe is universe
    again = DataCoordinate.standardize(coord)
    assert again == coord
    extended = DataCoordinate.standardize(coord, visit=5)
    assert extended.dimensions == universe.conform(["visit", "detector"])
    with pytest.raises(DataIdError, match="universe"):
        DataCoordinate.standardize({"instrument": "Cam"})
    with pytest.raises(DataIdError, match="universe"):
        DataCoordinate.standardize({"instrument": "Cam"}, dimensions=["instrument"])


def test_standardize_dimensions_subset_drops_extras(universe: DimensionUniverse) -> None:
    values = {"instrument": "Cam", "visit": 1, "detector": 2, "skymap": "sky", "tract": 9}
    coord = DataCoordinate.standardize(values, dimensions=["visit"], universe=universe)
    assert coord.dimensions == universe.conform(["visit"])
    assert dict(coord.mapping) == {"instrument": "Cam", "visit": 1}
    assert "detector" not in coord
    by_group = DataCoordinate.standardize(values, dimensions=universe.conform(["patch"]), patch=4)
    assert dict(by_group.required) == {"skymap": "sky", "tract": 9, "patch": 4}


def test_standardize_unknown_dimension_is_named(universe: DimensionUniverse) -> None:
    with pytest.raises(DataIdError, match="'filter'") as info:
        DataCoordinate.standardize(instrument="Cam", filter="g", universe=universe)
    assert "physical_filter" in str(info.value)  # known dimensions listed
    # Unknown names are refused even when they would be dropped by `dimensions`.
    with pytest.raises(DataIdError, match="'nope'"):
        DataCoordinate.standardize(
            {"instrument": "Cam", "nope": 1}, dimensions=["instrument"], universe=universe
        )


def test_standardize_missing_required_is_named(universe: DimensionUniverse) -> None:
    with pytest.raises(DataIdError, match=r"\['instrument'\]"):
        DataCoordinate.standardize(visit=1, universe=universe)
    with pytest.raises(DataIdError) as info:
        DataCoordinate.standardize({"instrument": "Cam"}, dimensions=["visit", "detector"], universe=universe)
    assert "'detector'" in str(info.value)
    assert "'visit'" in str(info.value)
    with pytest.raises(DataIdError, match=r"\['skymap', 'tract'\]"):
        DataCoordinate.standardize(patch=1, universe=universe)


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"instrument": "Cam", "visit": True}, "'visit' takes an int; got bool"),
        ({"instrument": "Cam", "visit": "1"}, "'visit' takes an int; got str"),
        ({"instrument": "Cam", "visit": 1.0}, "'visit' takes an int; got float"),
        ({"instrument": "Cam", "visit": None}, "'visit' takes an int; got NoneType"),
        ({"instrument": 5, "visit": 1}, "'instrument' takes a str; got int"),
        ({"instrument": b"Cam", "visit": 1}, "'instrument' takes a str; got bytes"),
        ({"instrument": "", "visit": 1}, "non-empty str"),
        ({"instrument": "x" * 513, "visit": 1}, "length 513"),
        ({"instrument": "Cam", "visit": 1, "physical_filter": 3}, "'physical_filter' takes a str"),
        ({"instrument": "Cam", "visit": 1, "day_obs": "today"}, "'day_obs' takes an int"),
    ],
)
def test_standardize_wrong_value_types(
    universe: DimensionUniverse, values: dict[str, Any], match: str
) -> None:
    with pytest.raises(DataIdError, match=match):
        DataCoordinate.standardize(values, universe=universe)


def test_standardize_accepts_boundary_values(universe: DimensionUniverse) -> None:
    coord = DataCoordinate.standardize(instrument="x" * 256, visit=0, universe=universe)
    assert coord["instrument"] == "x" * 256
    negative = DataCoordinate.standardize(instrument="é/../%2F \u0085", visit=-(2**63), universe=universe)
    assert negative["visit"] == -(2**63)
    assert (
        DataCoordinate.standardize(instrument="i", visit=2**63 - 1, universe=universe)["visit"] == 2**63 - 1
    )


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("r\udae3", "lone surrogate U\\+DAE3 at index 1"),
        ("\ud800x", "lone surrogate U\\+D800 at index 0"),
        ("a\x00b", "control character U\\+0000 at index 1"),
        ("tab\there", "control character U\\+0009"),
        ("del\x7f", "control character U\\+007F"),
        ("x" * 257, "at most 256 characters"),
    ],
)
def test_standardize_refuses_text_no_store_can_hold(
    universe: DimensionUniverse, value: str, match: str
) -> None:
    # Refused when the data ID is made: at the quantum's exit the records could no longer be written.
    with pytest.raises(DataIdError, match=match):
        DataCoordinate.standardize(instrument=value, visit=1, universe=universe)


@pytest.mark.parametrize("visit", [2**63, -(2**63) - 1, 2**70])
def test_standardize_refuses_ints_beyond_64_bits(universe: DimensionUniverse, visit: int) -> None:
    with pytest.raises(DataIdError, match="signed 64-bit int"):
        DataCoordinate.standardize(instrument="i", visit=visit, universe=universe)


def test_standardize_refuses_data_ids_too_long_for_a_registry(universe: DimensionUniverse) -> None:
    # Each value fits, but JSON doubles every backslash: the whole data ID is over 2048 characters.
    ints = {"visit": 1, "day_obs": 1, "tract": 1}
    texts = dict.fromkeys(("instrument", "physical_filter", "band", "skymap"), "\\" * 256)
    with pytest.raises(DataIdError, match="over the 2048 a registry stores"):
        DataCoordinate.standardize({**texts, **ints}, universe=universe)
    texts["skymap"] = "s"
    assert DataCoordinate.standardize({**texts, **ints}, universe=universe)["band"] == "\\" * 256


def test_implied_values_are_carried(universe: DimensionUniverse) -> None:
    coord = DataCoordinate.standardize(
        instrument="Cam", visit=1, physical_filter="g_01", day_obs=20240101, universe=universe
    )
    assert coord.dimensions == universe.conform(["visit"])
    assert dict(coord.required) == {"instrument": "Cam", "visit": 1}
    assert coord["physical_filter"] == "g_01"
    assert coord["day_obs"] == 20240101
    assert coord.hasFull() is False
    with pytest.raises(KeyError, match="'band'"):
        coord["band"]
    full = DataCoordinate.standardize(coord, band="g", universe=universe)
    assert full.hasFull() is True
    assert full.to_simple() == {
        "instrument": "Cam",
        "band": "g",
        "physical_filter": "g_01",
        "day_obs": 20240101,
        "visit": 1,
    }
    assert len(full) == 5
    assert set(full) == {"instrument", "band", "physical_filter", "day_obs", "visit"}


def test_implied_only_keys_stay_implied(universe: DimensionUniverse) -> None:
    coord = DataCoordinate.standardize(instrument="Cam", physical_filter="g", band="g", universe=universe)
    assert coord.dimensions.required == ("instrument", "physical_filter")
    assert coord.dimensions.implied == ("band",)
    alone = DataCoordinate.standardize(band="r", universe=universe)
    assert alone.dimensions.required == ("band",)


def test_equality_and_hash_use_required_values_only(universe: DimensionUniverse) -> None:
    bare = DataCoordinate.standardize(instrument="Cam", visit=1, universe=universe)
    full = DataCoordinate.standardize(instrument="Cam", visit=1, physical_filter="g", universe=universe)
    other = DataCoordinate.standardize(instrument="Cam", visit=2, universe=universe)
    assert bare == full
    assert hash(bare) == hash(full)
    assert bare != other
    assert len({bare, full, other}) == 2
    # Same values, other dimensions: not equal.
    exposure = DataCoordinate.standardize(instrument="Cam", exposure=1, universe=universe)
    assert exposure != bare
    assert bare == {"instrument": "Cam", "visit": 1}  # a mapping is standardized, as in daf_butler
    assert repr(full) == "{instrument: 'Cam', visit: 1}"


def test_equal_across_equal_universes() -> None:
    a = DataCoordinate.standardize(instrument="Cam", universe=DimensionUniverse())
    b = DataCoordinate.standardize(instrument="Cam", universe=DimensionUniverse())
    assert a == b
    assert hash(a) == hash(b)


def test_coordinate_is_immutable(universe: DimensionUniverse) -> None:
    coord = DataCoordinate.standardize(instrument="Cam", visit=1, universe=universe)
    with pytest.raises(AttributeError):
        coord.dimensions = universe.empty
    with pytest.raises(AttributeError):
        coord._values = {}
    with pytest.raises(AttributeError):
        coord.anything = 1
    with pytest.raises(TypeError):
        coord["visit"] = 2  # type: ignore[index]
    with pytest.raises(TypeError):
        coord.mapping["visit"] = 2  # type: ignore[index]
    with pytest.raises(TypeError):
        coord.required["visit"] = 2  # type: ignore[index]
    # The result of to_simple is a copy.
    simple = coord.to_simple()
    simple["visit"] = 2
    assert coord["visit"] == 1


def test_coordinate_attributes_cannot_be_deleted(universe: DimensionUniverse) -> None:
    coord = DataCoordinate.standardize(instrument="Cam", universe=universe)
    with pytest.raises(AttributeError):
        del coord.dimensions


def test_mapping_input_is_not_aliased(universe: DimensionUniverse) -> None:
    values: dict[str, Any] = {"instrument": "Cam", "visit": 1}
    coord = DataCoordinate.standardize(values, universe=universe)
    values["visit"] = 2
    assert coord["visit"] == 1


def test_subset(universe: DimensionUniverse) -> None:
    coord = DataCoordinate.standardize(
        instrument="Cam", visit=1, detector=2, physical_filter="g", universe=universe
    )
    sub = coord.subset(["visit"])
    assert sub == DataCoordinate.standardize(instrument="Cam", visit=1, universe=universe)
    assert sub["physical_filter"] == "g"
    assert "detector" not in sub
    assert coord.subset(universe.conform(["instrument"])).to_simple() == {"instrument": "Cam"}
    assert coord.subset([]) == DataCoordinate.makeEmpty(universe)
    with pytest.raises(DataIdError, match="skymap"):
        coord.subset(["tract"])


def test_make_empty(universe: DimensionUniverse) -> None:
    empty = DataCoordinate.makeEmpty(universe)
    assert len(empty) == 0
    assert empty.dimensions == universe.empty
    assert empty == DataCoordinate.standardize({}, universe=universe)
    assert empty.hasFull()
    assert repr(empty) == "{}"


def test_data_coordinate_equals_plain_mapping_as_daf_butler() -> None:
    universe = DimensionUniverse()
    coord = DataCoordinate.standardize({"instrument": "Cam", "detector": 7}, universe=universe)
    assert coord == {"instrument": "Cam", "detector": 7}
    assert {"detector": 7, "instrument": "Cam"} == coord  # noqa: SIM300 (the reflected ==)
    assert coord != {"instrument": "Cam", "detector": 8}
    assert coord != {"instrument": "Cam"}
    assert coord != {"instrument": "Cam", "detector": 7, "visit": 1}
    assert coord != {"instrument": "Cam", "nope": 7}
    assert coord != {"instrument": "Cam", "detector": "x"}
    assert coord != 5
    assert coord != None  # noqa: E711


def test_numpy_integers_are_int_dimension_values() -> None:
    np = pytest.importorskip("numpy")
    universe = DimensionUniverse()
    for value in (np.int64(7), np.int32(7), np.uint16(7)):
        coord = DataCoordinate.standardize({"instrument": "Cam", "detector": value}, universe=universe)
        assert type(coord["detector"]) is int and coord["detector"] == 7
        assert coord == DataCoordinate.standardize(instrument="Cam", detector=7, universe=universe)
    for bad in (np.bool_(True), True, np.float64(7.0)):
        with pytest.raises(DataIdError, match="takes an int"):
            DataCoordinate.standardize({"instrument": "Cam", "detector": bad}, universe=universe)
    with pytest.raises(DataIdError, match="signed 64-bit"):
        DataCoordinate.standardize({"instrument": "Cam", "detector": np.uint64(2**64 - 1)}, universe=universe)


def test_standardize_with_defaults_as_daf_butler() -> None:
    universe = DimensionUniverse()
    cam = DataCoordinate.standardize(instrument="Cam", universe=universe)
    coord = DataCoordinate.standardize({"detector": 7}, universe=universe, defaults=cam)
    assert coord == {"instrument": "Cam", "detector": 7}
    # Given values win; defaults never add dimensions; the universe may come from the defaults.
    other = DataCoordinate.standardize({"instrument": "X", "detector": 7}, defaults=cam)
    assert other["instrument"] == "X"
    assert DataCoordinate.standardize(defaults=cam) == DataCoordinate.makeEmpty(universe)
    assert DataCoordinate.standardize({"detector": 1}, dimensions=["detector"], defaults=cam) == {
        "instrument": "Cam",
        "detector": 1,
    }
    # Implied values of the defaults are kept only while every required value is the defaults' own.
    full = DataCoordinate.standardize(instrument="Cam", visit=1, physical_filter="g", universe=universe)
    assert DataCoordinate.standardize({"visit": 1}, defaults=full).mapping["physical_filter"] == "g"
    assert "physical_filter" not in DataCoordinate.standardize({"visit": 2}, defaults=full).mapping
    with pytest.raises(DataIdError, match="lacks required"):
        DataCoordinate.standardize({"tract": 1}, defaults=cam)
