"""Tests for s3qbb.formatters.base and the package surface."""

from __future__ import annotations

import subprocess
import sys

import pytest

from s3qbb.errors import FormatterError, InvalidParameterError
from s3qbb.formatters import (
    BytesFormatter,
    JsonFormatter,
    NpyFormatter,
    ParquetFormatter,
    RangeReadable,
    YamlFormatter,
)
from s3qbb.formatters.base import check_native_type, type_name


def test_package_import_is_cheap() -> None:
    code = (
        "import sys, s3qbb.formatters\n"
        "print(sorted(m for m in ('numpy', 'pyarrow', 'yaml') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_parameters_declared() -> None:
    assert NpyFormatter.parameters == frozenset({"rows"})
    assert ParquetFormatter.parameters == frozenset({"columns"})
    for cls in (JsonFormatter, YamlFormatter, BytesFormatter):
        assert cls.parameters == frozenset()


def test_validate_parameters_lists_supported() -> None:
    with pytest.raises(InvalidParameterError, match=r"'a', 'b'; supported: none"):
        JsonFormatter().validate_parameters({"b": 1, "a": 2})
    with pytest.raises(InvalidParameterError, match="supported: 'columns'"):
        ParquetFormatter().validate_parameters({"rows": 1})
    JsonFormatter().validate_parameters(None)
    JsonFormatter().validate_parameters({})
    NpyFormatter().validate_parameters({"rows": slice(1, None)})


def test_range_readable_protocol() -> None:
    assert isinstance(NpyFormatter(), RangeReadable)
    for formatter in (JsonFormatter(), YamlFormatter(), BytesFormatter(), ParquetFormatter()):
        assert not isinstance(formatter, RangeReadable)


def test_type_name() -> None:
    assert type_name(1) == "int"
    assert type_name(dict) == "dict"
    assert type_name(InvalidParameterError("x")) == "s3qbb.errors.InvalidParameterError"


def test_check_native_type() -> None:
    assert check_native_type([1], tuple, "JSON") == (1,)
    assert check_native_type(2, float, "JSON") == 2.0
    assert check_native_type(True, bool, "JSON") is True
    assert check_native_type({"a": 1}, None, "JSON") == {"a": 1}
    with pytest.raises(FormatterError, match="JSON formatter: the document holds a 'bool' but a 'float'"):
        check_native_type(False, float, "JSON")
