"""Tests for s3qbb.formatters.yaml."""

from __future__ import annotations

import datetime
import string
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from s3qbb.errors import FormatterError, InvalidParameterError
from s3qbb.formatters.yaml import YamlFormatter, yaml_classes


class Config(BaseModel):
    name: str
    when: datetime.date
    limits: dict[str, float]


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(), yaml_values, max_size=5))
def test_round_trip(value: dict[str, Any]) -> None:
    fmt = YamlFormatter()
    assert fmt.read(fmt.write(value), dict) == value


def test_key_order_preserved_and_unicode_escaped() -> None:
    fmt = YamlFormatter()
    value = {"z": 1, "a": "Ωmega", "nel": "x\x85y"}
    data = fmt.write(value)
    assert data.decode("ascii").splitlines()[:2] == ["z: 1", 'a: "\\u03A9mega"']
    back = fmt.read(memoryview(data))
    assert list(back) == ["z", "a", "nel"]
    assert back == value


def test_pydantic_round_trip() -> None:
    fmt = YamlFormatter()
    model = Config(name="c", when=datetime.date(2024, 5, 1), limits={"x": 1.5})
    data = fmt.write(model)
    assert b"!!" not in data
    assert fmt.read(data) == {"name": "c", "when": "2024-05-01", "limits": {"x": 1.5}}
    assert fmt.read(data, Config) == model


def test_pydantic_validation_failure() -> None:
    with pytest.raises(FormatterError, match="Config"):
        YamlFormatter().read(b"name: c\n", Config)


@pytest.mark.parametrize(
    "document",
    [
        b"!!python/object:collections.OrderedDict {}\n",
        b"!!python/object/apply:os.system ['echo owned']\n",
        b"x: !!python/name:os.system ''\n",
        b"- !!python/tuple [1, 2]\n",
    ],
)
def test_python_tags_refused(document: bytes) -> None:
    with pytest.raises(FormatterError, match="refused") as info:
        YamlFormatter().read(document)
    assert "python" in str(info.value)


class Opaque:
    pass


def test_unsafe_object_refused_on_write() -> None:
    with pytest.raises(FormatterError, match="Opaque") as info:
        YamlFormatter().write({"x": [Opaque()]})
    assert "'dict'" in str(info.value)


def test_wrong_pytype() -> None:
    fmt = YamlFormatter()
    with pytest.raises(FormatterError, match="'dict'"):
        fmt.read(fmt.write([1, 2]), dict)
    with pytest.raises(FormatterError, match="'list'"):
        fmt.read(b"a: 1\n", list)


def test_invalid_document() -> None:
    with pytest.raises(FormatterError, match="not a valid YAML"):
        YamlFormatter().read(b"a: [1, 2\n")


def test_parameters_refused() -> None:
    with pytest.raises(InvalidParameterError, match="'columns'"):
        YamlFormatter().read(b"{}", None, {"columns": ["a"]})


# --------------------------------------------------------------- libyaml


def test_libyaml_classes_used(monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    if not yaml.__with_libyaml__:
        pytest.skip("PyYAML built without libyaml")
    assert yaml_classes() == (yaml.CSafeDumper, yaml.CSafeLoader)
    seen: list[type[Any]] = []
    real_load, real_dump = yaml.load, yaml.dump

    def load(stream: Any, Loader: type[Any]) -> Any:
        seen.append(Loader)
        return real_load(stream, Loader=Loader)

    def dump(data: Any, stream: Any = None, Dumper: type[Any] = yaml.Dumper, **kwargs: Any) -> Any:
        seen.append(Dumper)
        return real_dump(data, stream, Dumper=Dumper, **kwargs)

    monkeypatch.setattr(yaml, "load", load)
    monkeypatch.setattr(yaml, "dump", dump)
    fmt = YamlFormatter()
    assert fmt.read(fmt.write({"a": [1, 2]})) == {"a": [1, 2]}
    assert seen == [yaml.CSafeDumper, yaml.CSafeLoader]


def test_pure_python_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    monkeypatch.delattr(yaml, "CSafeDumper", raising=False)
    monkeypatch.delattr(yaml, "CSafeLoader", raising=False)
    yaml_classes.cache_clear()
    try:
        assert yaml_classes() == (yaml.SafeDumper, yaml.SafeLoader)
        fmt = YamlFormatter()
        assert fmt.read(fmt.write({"z": 1, "a": "Ωmega"})) == {"z": 1, "a": "Ωmega"}
        with pytest.raises(FormatterError, match="refused"):
            fmt.read(b"- !!python/tuple [1, 2]\n")
    finally:
        yaml_classes.cache_clear()


_KEYS = st.text(alphabet=string.ascii_letters + string.digits + "_-.", min_size=1, max_size=20)
typical_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(string.printable, max_size=100)
    | st.dates(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(_KEYS, children, max_size=5),
    max_leaves=30,
)


@given(st.dictionaries(_KEYS, typical_values, max_size=8))
def test_same_bytes_as_pure_python_for_typical_data(value: dict[str, Any]) -> None:
    import yaml

    data = YamlFormatter().write(value)
    assert data == yaml.safe_dump(value, sort_keys=False).encode("utf-8")
    assert repr(YamlFormatter().read(data)) == repr(yaml.safe_load(data))


@given(st.dictionaries(st.text(), yaml_values, max_size=5))
def test_any_text_reads_back_with_either_loader(value: dict[str, Any]) -> None:
    """Escaped non-ASCII text may fold at another column than PyYAML's; both read back the same."""
    import yaml

    data = YamlFormatter().write(value)
    assert YamlFormatter().read(data, dict) == value == yaml.safe_load(data)
    assert YamlFormatter().read(yaml.safe_dump(value, sort_keys=False).encode()) == value
