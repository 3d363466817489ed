"""Tests for s3qbb.formatters.yaml."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from s3qbb.errors import FormatterError, InvalidParameterError
from s3qbb.formatters.yaml import YamlFormatter


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
