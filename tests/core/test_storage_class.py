"""Tests of s3qbb.core.storage_class: types, conversion, parameters, components and the factory."""

from __future__ import annotations

import collections
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from typing import Any

import pytest

from s3qbb.core.storage_class import StorageClass, StorageClassFactory, import_dotted
from s3qbb.errors import (
    ConfigError,
    InvalidParameterError,
    S3qbbError,
    StorageClassError,
    UnknownStorageClassError,
)

DEFAULT_NAMES = {
    "StructuredDataDict",
    "StructuredDataList",
    "StructuredDataDictYaml",
    "StructuredComposite",
    "Bytes",
    "PydanticModel",
    "NumpyArray",
    "ArrowTable",
    "Pickle",
}


def _double(obj: Any) -> list[Any]:
    return [*obj, *obj]


def _fail(obj: Any) -> Any:
    raise RuntimeError("converter exploded")


def _take_first(obj: Any, parameters: Mapping[str, Any]) -> Any:
    return obj[: parameters["first"]]


# --- import_dotted ----------------------------------------------------------


def test_import_dotted() -> None:
    assert import_dotted("builtins.dict") is dict
    assert import_dotted("collections.OrderedDict") is collections.OrderedDict
    assert import_dotted("os.path.join") is __import__("os").path.join
    with pytest.raises(ImportError, match="no attribute"):
        import_dotted("collections.NoSuchThing")
    with pytest.raises(ImportError, match="Cannot import"):
        import_dotted("no_such_module_s3qbb_test.thing")


# --- defaults --------------------------------------------------------------


def test_default_factory_contents(storage_classes: StorageClassFactory) -> None:
    assert storage_classes.names() == DEFAULT_NAMES
    for name in DEFAULT_NAMES:
        assert name in storage_classes
        assert storage_classes.getStorageClass(name).name == name
    assert "Nope" not in storage_classes
    numpy_sc = storage_classes.getStorageClass("NumpyArray")
    assert numpy_sc.pytype_name == "numpy.ndarray"
    assert numpy_sc.formatter == "npy"
    assert numpy_sc.parameters == {"rows"}
    assert storage_classes.getStorageClass("ArrowTable").parameters == {"columns"}
    assert storage_classes.getStorageClass("StructuredDataDict").formatter == "json"
    assert storage_classes.getStorageClass("StructuredDataDictYaml").formatter == "yaml"
    assert storage_classes.getStorageClass("Bytes").pytype is bytes
    assert storage_classes.getStorageClass("Pickle").pytype is object
    assert dict(storage_classes.getStorageClass("StructuredComposite").components) == {
        "summary": "StructuredDataDict",
        "output": "StructuredDataDict",
        "data": "StructuredDataList",
    }
    # Factories are independent.
    other = StorageClassFactory.default()
    other.registerStorageClass(StorageClass("Extra", dict))
    assert "Extra" not in storage_classes


def test_unknown_storage_class(storage_classes: StorageClassFactory) -> None:
    with pytest.raises(UnknownStorageClassError, match="'Nope'") as info:
        storage_classes.getStorageClass("Nope")
    assert isinstance(info.value, LookupError)
    assert isinstance(info.value, S3qbbError)
    assert "NumpyArray" in str(info.value)  # lists known classes
    with pytest.raises(UnknownStorageClassError):
        storage_classes.resolve("Nope")
    with pytest.raises(UnknownStorageClassError):
        StorageClassFactory().getStorageClass("StructuredDataDict")


def test_resolve(storage_classes: StorageClassFactory) -> None:
    sc = StorageClass("Loose", dict)
    assert storage_classes.resolve(sc) is sc
    assert storage_classes.resolve("Bytes") is storage_classes.getStorageClass("Bytes")
    with pytest.raises(StorageClassError, match="int"):
        storage_classes.resolve(3)  # type: ignore[arg-type]


# --- instances -------------------------------------------------------------


def test_is_type_and_validate_instance(storage_classes: StorageClassFactory) -> None:
    sdd = storage_classes.getStorageClass("StructuredDataDict")
    assert sdd.validateInstance({})
    assert sdd.validateInstance(collections.OrderedDict())  # subclasses count
    assert not sdd.validateInstance([])
    sdd.validate_instance({"a": 1})
    with pytest.raises(StorageClassError) as info:
        sdd.validate_instance([1, 2], what="dataset calexp_meta@{visit: 1}")
    message = str(info.value)
    assert "builtins.dict" in message  # expected
    assert "builtins.list" in message  # actual
    assert "'StructuredDataDict'" in message
    assert "calexp_meta@{visit: 1}" in message
    assert isinstance(info.value, TypeError)


def test_pytype_given_as_type_or_path() -> None:
    by_type = StorageClass("A", collections.OrderedDict)
    by_path = StorageClass("A", "collections.OrderedDict")
    assert by_type.pytype_name == "collections.OrderedDict"
    assert by_path.pytype is collections.OrderedDict
    assert by_type == by_path
    assert repr(by_path) == "StorageClass('A', collections.OrderedDict)"


def test_unimportable_or_non_type_pytype() -> None:
    missing = StorageClass("Missing", "no_such_module_s3qbb_test.Thing")
    assert missing.pytype_name == "no_such_module_s3qbb_test.Thing"  # no import needed
    with pytest.raises(StorageClassError, match="install") as info:
        _ = missing.pytype
    assert isinstance(info.value.__cause__, ImportError)
    with pytest.raises(StorageClassError):
        missing.validateInstance(1)
    not_a_type = StorageClass("Fn", "os.path.join")
    with pytest.raises(StorageClassError, match="not a type"):
        _ = not_a_type.pytype


@pytest.mark.parametrize("name", ["", None, 3])
def test_bad_storage_class_name(name: Any) -> None:
    with pytest.raises(ConfigError):
        StorageClass(name, dict)


def test_equality_and_hash() -> None:
    a = StorageClass("A", dict, formatter="json", parameters=["x", "y"], components={"c": "B"})
    b = StorageClass("A", "builtins.dict", formatter="json", parameters=("y", "x"), components={"c": "B"})
    assert a == b
    assert hash(a) == hash(b)
    assert a != StorageClass("A", dict, formatter="yaml", parameters=["x", "y"], components={"c": "B"})
    assert a != StorageClass("A", dict, formatter="json", parameters=["x"], components={"c": "B"})
    assert a != StorageClass("B", dict, formatter="json", parameters=["x", "y"], components={"c": "B"})
    assert a != "A"


def test_attributes_are_read_only_mappings() -> None:
    sc = StorageClass("A", dict, components={"c": "B"}, converters={"builtins.list": "builtins.dict"})
    with pytest.raises(TypeError):
        sc.components["d"] = "B"  # type: ignore[index]
    with pytest.raises(TypeError):
        sc.converters["x"] = "y"  # type: ignore[index]
    assert isinstance(sc.parameters, frozenset)


# --- conversion ------------------------------------------------------------


def test_can_convert(storage_classes: StorageClassFactory) -> None:
    get = storage_classes.getStorageClass
    assert get("NumpyArray").can_convert(get("StructuredDataList"))
    assert get("StructuredDataList").can_convert(get("NumpyArray"))
    assert get("StructuredDataDict").can_convert(get("StructuredDataDictYaml"))  # same pytype
    assert get("StructuredDataDict").can_convert(get("StructuredDataDict"))
    assert get("Pickle").can_convert(get("Bytes"))  # bytes is a subclass of object
    assert not get("Bytes").can_convert(get("StructuredDataDict"))
    assert not get("StructuredDataDict").can_convert(get("StructuredDataList"))
    # Unimportable types cannot be converted to or from.
    missing = StorageClass("Missing", "no_such_module_s3qbb_test.Thing")
    assert not get("StructuredDataDict").can_convert(missing)
    assert not missing.can_convert(get("StructuredDataDict"))


def test_coerce_type_numpy(storage_classes: StorageClassFactory) -> None:
    np = pytest.importorskip("numpy")
    numpy_sc = storage_classes.getStorageClass("NumpyArray")
    array = numpy_sc.coerce_type([1, 2, 3])
    assert isinstance(array, np.ndarray)
    assert array.tolist() == [1, 2, 3]
    assert numpy_sc.coerce_type((4, 5)).tolist() == [4, 5]
    same = np.arange(3)
    assert numpy_sc.coerce_type(same) is same
    as_list = storage_classes.getStorageClass("StructuredDataList").coerce_type(np.arange(3))
    assert type(as_list) is list
    assert as_list == [0, 1, 2]
    assert all(type(v) is int for v in as_list)


def test_coerce_type_tuple_to_list(storage_classes: StorageClassFactory) -> None:
    sdl = storage_classes.getStorageClass("StructuredDataList")
    result = sdl.coerce_type((1, "a"))
    assert type(result) is list
    assert result == [1, "a"]
    original = [1]
    assert sdl.coerce_type(original) is original


def test_coerce_type_dict_to_arrow(storage_classes: StorageClassFactory) -> None:
    pa = pytest.importorskip("pyarrow")
    arrow = storage_classes.getStorageClass("ArrowTable")
    table = arrow.coerce_type({"a": [1, 2], "b": ["x", "y"]})
    assert isinstance(table, pa.Table)
    assert table.column_names == ["a", "b"]
    assert table.num_rows == 2


def test_coerce_type_inconvertible(storage_classes: StorageClassFactory) -> None:
    with pytest.raises(StorageClassError) as info:
        storage_classes.getStorageClass("StructuredDataDict").coerce_type([1])
    message = str(info.value)
    assert "builtins.list" in message
    assert "'StructuredDataDict'" in message
    assert isinstance(info.value, TypeError)


def test_converter_uses_mro_and_wraps_failures() -> None:
    sc = StorageClass(
        "L", list, converters={"builtins.tuple": f"{__name__}._double", "builtins.set": f"{__name__}._fail"}
    )

    class MyTuple(tuple[int, ...]):
        pass

    assert sc.coerce_type(MyTuple((1, 2))) == [1, 2, 1, 2]
    with pytest.raises(StorageClassError, match="exploded") as info:
        sc.coerce_type({1})
    assert isinstance(info.value.__cause__, RuntimeError)


def test_non_callable_converter() -> None:
    sc = StorageClass("L", list, converters={"builtins.tuple": "os.sep"})
    with pytest.raises(StorageClassError, match="not callable"):
        sc.coerce_type((1,))


def test_unimportable_converter_raises_storage_class_error() -> None:
    sc = StorageClass("L", list, converters={"builtins.tuple": "no_such_module_s3qbb_test.convert"})
    with pytest.raises(StorageClassError):
        sc.coerce_type((1,))
    # can_convert must not leak the ImportError either: it answers False or raises StorageClassError.
    source = StorageClass("T", tuple)
    with pytest.raises(StorageClassError, match="cannot be imported"):
        sc.can_convert(source)


# --- parameters ------------------------------------------------------------


def test_validate_parameters(storage_classes: StorageClassFactory) -> None:
    numpy_sc = storage_classes.getStorageClass("NumpyArray")
    numpy_sc.validate_parameters(None)
    numpy_sc.validate_parameters({})
    numpy_sc.validate_parameters({"rows": slice(0, 1)})
    with pytest.raises(InvalidParameterError) as info:
        numpy_sc.validate_parameters({"rows": 1, "columns": ["a"], "bbox": 2}, what="dataset img")
    message = str(info.value)
    assert "['bbox', 'columns']" in message  # rejected ones
    assert "['rows']" in message  # accepted ones
    assert "dataset img" in message
    assert isinstance(info.value, ValueError)
    with pytest.raises(InvalidParameterError, match="none"):
        storage_classes.getStorageClass("Bytes").validate_parameters({"rows": 1})


def test_apply_rows(storage_classes: StorageClassFactory) -> None:
    np = pytest.importorskip("numpy")
    numpy_sc = storage_classes.getStorageClass("NumpyArray")
    array = np.arange(10)
    assert numpy_sc.apply_parameters(array, None) is array
    assert numpy_sc.apply_parameters(array, {"rows": (2, 5)}).tolist() == [2, 3, 4]
    assert numpy_sc.apply_parameters(array, {"rows": slice(None, None, 3)}).tolist() == [0, 3, 6, 9]
    assert numpy_sc.apply_parameters(array, {"rows": None}) is array
    with pytest.raises(InvalidParameterError, match="rows"):
        numpy_sc.apply_parameters(array, {"rows": 3})
    with pytest.raises(InvalidParameterError, match="bbox"):
        numpy_sc.apply_parameters(array, {"bbox": 3})


def test_apply_columns(storage_classes: StorageClassFactory) -> None:
    pa = pytest.importorskip("pyarrow")
    arrow = storage_classes.getStorageClass("ArrowTable")
    table = pa.table({"a": [1, 2], "b": [3, 4], "c": [5, 6]})
    picked = arrow.apply_parameters(table, {"columns": ["c", "a"]})
    assert picked.column_names == ["c", "a"]
    assert picked.column("c").to_pylist() == [5, 6]
    assert arrow.apply_parameters(table, {"columns": None}) is table
    with pytest.raises(InvalidParameterError, match="'zz'"):
        arrow.apply_parameters(table, {"columns": ["a", "zz"]})


def test_apply_parameters_custom_handler_and_missing_handler() -> None:
    sc = StorageClass("L", list, parameters=["first"], parameter_handler=f"{__name__}._take_first")
    assert sc.apply_parameters([1, 2, 3], {"first": 2}) == [1, 2]
    no_handler = StorageClass("L", list, parameters=["first"])
    with pytest.raises(InvalidParameterError, match="no parameter handler"):
        no_handler.apply_parameters([1], {"first": 1})


# --- components ------------------------------------------------------------


def test_get_component(storage_classes: StorageClassFactory) -> None:
    composite = storage_classes.getStorageClass("StructuredComposite")
    obj = {"summary": {"n": 1}, "output": {}, "data": [1]}
    assert composite.get_component(obj, "summary") == {"n": 1}
    assert composite.get_component(obj, "data") == [1]

    class Holder:
        def __init__(self) -> None:
            self.summary = {"attr": True}

    assert composite.get_component(Holder(), "summary") == {"attr": True}
    with pytest.raises(StorageClassError, match="no component 'nope'") as info:
        composite.get_component(obj, "nope")
    assert "['data', 'output', 'summary']" in str(info.value)
    with pytest.raises(StorageClassError, match="'output'"):
        composite.get_component({"summary": {}}, "output")
    with pytest.raises(StorageClassError, match="'output'"):
        composite.get_component(Holder(), "output")
    with pytest.raises(StorageClassError, match="none"):
        storage_classes.getStorageClass("Bytes").get_component(b"", "x")


# --- factory configuration ---------------------------------------------------


def test_add_from_config_and_to_config_round_trip() -> None:
    spec = {
        "pytype": "builtins.list",
        "formatter": "json",
        "parameters": ["b", "a"],
        "components": {"first": "StructuredDataDict"},
        "converters": {"builtins.tuple": "builtins.list"},
        "parameter_handler": f"{__name__}._take_first",
    }
    factory = StorageClassFactory()
    factory.addFromConfig({"Custom": spec})
    sc = factory.getStorageClass("Custom")
    assert sc.to_config() == {**spec, "parameters": ["a", "b"]}
    assert (
        StorageClass("Custom", **{k: v for k, v in sc.to_config().items() if k != "pytype"}, pytype=list)
        == sc
    )
    assert StorageClass("Minimal", dict).to_config() == {"pytype": "builtins.dict"}
    # Redefining identically is allowed.
    factory.addFromConfig({"Custom": dict(spec)})
    assert factory.getStorageClass("Custom") == sc


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"X": {"formatter": "json"}}, "'pytype'"),
        ({"X": "builtins.dict"}, "'pytype'"),
        ({"X": None}, "'pytype'"),
        ({"X": {"pytype": "builtins.dict", "formater": "json"}}, r"\['formater'\]"),
        ({"": {"pytype": "builtins.dict"}}, "non-empty"),
    ],
)
def test_add_from_config_errors(config: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        StorageClassFactory().addFromConfig(config)


def test_conflicting_redefinition(storage_classes: StorageClassFactory) -> None:
    with pytest.raises(ConfigError, match="'NumpyArray' is already defined differently"):
        storage_classes.addFromConfig({"NumpyArray": {"pytype": "builtins.list"}})
    assert storage_classes.getStorageClass("NumpyArray").pytype_name == "numpy.ndarray"
    with pytest.raises(ConfigError):
        storage_classes.registerStorageClass(StorageClass("Bytes", bytes, formatter="other"))
    storage_classes.registerStorageClass(StorageClass("Bytes", bytes, formatter="bytes"))


def test_parameters_as_str_is_rejected() -> None:
    factory = StorageClassFactory()
    with pytest.raises(ConfigError):
        factory.addFromConfig({"X": {"pytype": "builtins.list", "parameters": "rows"}})


# --- lazy imports ----------------------------------------------------------


def test_default_factory_does_not_import_heavy_modules() -> None:
    code = textwrap.dedent(
        """
        import sys
        from s3qbb.core.storage_class import StorageClassFactory
        from s3qbb.core import DatasetType, DimensionUniverse
        factory = StorageClassFactory.default()
        numpy_sc = factory.getStorageClass("NumpyArray")
        assert numpy_sc.pytype_name == "numpy.ndarray"
        assert numpy_sc.parameters == {"rows"}
        assert numpy_sc.can_convert(factory.getStorageClass("NumpyArray"))
        DatasetType("img", ["visit"], "NumpyArray", universe=DimensionUniverse())
        heavy = sorted(m for m in ("numpy", "pyarrow", "pandas") if m in sys.modules)
        assert not heavy, heavy
        numpy_sc.validateInstance([1])
        assert "numpy" in sys.modules
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_is_type_takes_a_type_as_daf_butler(storage_classes: StorageClassFactory) -> None:
    sdd = storage_classes.getStorageClass("StructuredDataDict")
    assert sdd.is_type(dict)
    assert not sdd.is_type(collections.OrderedDict)  # the type itself, not a subclass
    assert not sdd.is_type(list)
    with pytest.raises(StorageClassError, match="validateInstance"):
        sdd.is_type({})  # type: ignore[arg-type]
    lazy = StorageClass("LazyOD", "collections.OrderedDict")
    assert lazy.is_type(collections.OrderedDict)  # by name, without importing
    assert not StorageClass("Gone", "no_such_module_s3qbb_test.Thing").is_type(dict, compare_types=True)


def test_coerce_type_of_none_is_none(storage_classes: StorageClassFactory) -> None:
    assert storage_classes.getStorageClass("StructuredDataDict").coerce_type(None) is None
