"""Tests for s3qbb.formatters.json."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from s3qbb.errors import FormatterError, InvalidParameterError, S3qbbError
from s3qbb.formatters.json import JsonFormatter


class Metrics(BaseModel):
    name: str
    values: list[float]
    tags: dict[str, int] = {}


json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5),
    max_leaves=30,
)


@given(st.dictionaries(st.text(), json_values, max_size=6) | st.lists(json_values, max_size=6))
def test_round_trip_dict_and_list(value: Any) -> None:
    fmt = JsonFormatter()
    data = fmt.write(value)
    assert isinstance(data, bytes)
    assert fmt.read(data, type(value)) == value
    assert fmt.read(memoryview(data)) == value


def test_compact_separators_and_utf8() -> None:
    fmt = JsonFormatter()
    assert fmt.write({"a": [1, 2], "b": None}) == b'{"a":[1,2],"b":null}'
    assert fmt.write({"name": "Ωmega"}) == '{"name":"Ωmega"}'.encode()


def test_lone_surrogate_round_trips() -> None:
    fmt = JsonFormatter()
    value = {"s": "a\ud800b"}
    assert fmt.read(fmt.write(value)) == value


def test_scalars_and_infinity() -> None:
    fmt = JsonFormatter()
    assert fmt.read(fmt.write(42), int) == 42
    assert fmt.read(fmt.write(3), float) == 3.0
    assert math.isinf(fmt.read(fmt.write(math.inf)))
    assert fmt.read(fmt.write([1, 2]), tuple) == (1, 2)


def test_pydantic_round_trip() -> None:
    fmt = JsonFormatter()
    model = Metrics(name="m", values=[1.5, 2.0], tags={"x": 1})
    data = fmt.write(model)
    assert data == model.model_dump_json().encode()
    back = fmt.read(data, Metrics)
    assert isinstance(back, Metrics)
    assert back == model
    # Without a model type the document is plain JSON.
    assert fmt.read(data) == {"name": "m", "values": [1.5, 2.0], "tags": {"x": 1}}


def test_pydantic_validation_failure() -> None:
    with pytest.raises(FormatterError, match="Metrics"):
        JsonFormatter().read(b'{"name": 1}', Metrics)


@pytest.mark.parametrize(
    ("obj", "type_fragment"),
    [
        ({"a": {1, 2}}, "'set'"),
        (object(), "'object'"),
        ([1, b"raw"], "'bytes'"),
        ({"when": __import__("datetime").date(2024, 1, 1)}, "'datetime.date'"),
    ],
)
def test_non_serialisable_names_type(obj: Any, type_fragment: str) -> None:
    with pytest.raises(FormatterError, match=type_fragment) as info:
        JsonFormatter().write(obj)
    assert isinstance(info.value, S3qbbError)
    assert isinstance(info.value, ValueError)
    assert info.value.__cause__ is not None


def test_circular_reference() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(FormatterError, match="'list'"):
        JsonFormatter().write(loop)


@pytest.mark.parametrize(
    ("value", "pytype"),
    [([1, 2], dict), ({"a": 1}, list), ("x", int), (True, int), (1, str), (1, bool)],
)
def test_wrong_pytype(value: Any, pytype: type[Any]) -> None:
    fmt = JsonFormatter()
    with pytest.raises(FormatterError, match=repr(pytype.__name__)):
        fmt.read(fmt.write(value), pytype)


def test_unchecked_pytype_returns_value() -> None:
    fmt = JsonFormatter()
    assert fmt.read(b"[1]", object) == [1]


@pytest.mark.parametrize("data", [b"{not json", b"", b"\xff\xfe\xfa", b"[1,]"])
def test_invalid_document(data: bytes) -> None:
    with pytest.raises(FormatterError, match="not a valid JSON"):
        JsonFormatter().read(data)


def test_parameters_refused() -> None:
    with pytest.raises(InvalidParameterError, match="'rows'"):
        JsonFormatter().read(b"{}", dict, {"rows": slice(0, 1)})
    JsonFormatter().read(b"{}", dict, {})
