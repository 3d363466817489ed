"""Tests for s3qbb.formatters.parquet."""

from __future__ import annotations

import sys
from typing import Any

import pyarrow as pa
import pytest

from s3qbb.errors import FormatterError, InvalidParameterError
from s3qbb.formatters.parquet import ParquetFormatter


@pytest.fixture
def table() -> pa.Table:
    return pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int64()),
            "flux": pa.array([1.5, None, -2.0], pa.float32()),
            "name": ["a", "β", "c"],
            "tags": pa.array([[1], [], [2, 3]], pa.list_(pa.int16())),
        }
    )


def test_round_trip(table: pa.Table) -> None:
    fmt = ParquetFormatter()
    data = fmt.write(table)
    assert data[:4] == b"PAR1"
    back = fmt.read(data, pa.Table)
    assert back.equals(table)
    assert back.schema.equals(table.schema)
    assert fmt.read(memoryview(data)).equals(table)


def test_columns_subset_in_given_order(table: pa.Table) -> None:
    fmt = ParquetFormatter()
    data = fmt.write(table)
    back = fmt.read(data, pa.Table, {"columns": ["name", "id"]})
    assert back.column_names == ["name", "id"]
    assert back.column("id").to_pylist() == [1, 2, 3]
    assert fmt.read(data, None, {"columns": "flux"}).column_names == ["flux"]
    assert fmt.read(data, None, {"columns": ()}).num_columns == 0


def test_unknown_column(table: pa.Table) -> None:
    fmt = ParquetFormatter()
    with pytest.raises(InvalidParameterError, match="'nope'") as info:
        fmt.read(fmt.write(table), None, {"columns": ["id", "nope"]})
    message = str(info.value)
    assert "available columns: 'id', 'flux', 'name', 'tags'" in message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("columns", [5, ["id", 3], {"id": 1}, None])
def test_bad_columns_value(table: pa.Table, columns: Any) -> None:
    fmt = ParquetFormatter()
    with pytest.raises(InvalidParameterError, match="list of column names"):
        fmt.read(fmt.write(table), None, {"columns": columns})


def test_unknown_parameter(table: pa.Table) -> None:
    with pytest.raises(InvalidParameterError, match="'rows'"):
        ParquetFormatter().read(ParquetFormatter().write(table), None, {"rows": (0, 1)})


@pytest.mark.parametrize("obj", [{"id": [1, 2]}, [1, 2], pa.array([1, 2])])
def test_write_refuses_non_tables(obj: Any) -> None:
    with pytest.raises(FormatterError, match=r"pyarrow\.Table objects, not"):
        ParquetFormatter().write(obj)


@pytest.mark.parametrize("data", [b"", b"junk", b"PAR1" + b"\0" * 20 + b"PAR1"])
def test_invalid_bytes(data: bytes) -> None:
    with pytest.raises(FormatterError, match="not a readable Parquet file"):
        ParquetFormatter().read(data)


def test_wrong_pytype(table: pa.Table) -> None:
    with pytest.raises(FormatterError, match="'dict'"):
        ParquetFormatter().read(ParquetFormatter().write(table), dict)


def test_missing_pyarrow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(FormatterError, match=r"pip install s3qbb\[parquet\]"):
        ParquetFormatter().write(object())
    with pytest.raises(FormatterError, match=r"pip install s3qbb\[parquet\]"):
        ParquetFormatter().read(b"PAR1")
