"""Tests for s3qbb.formatters.bytes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s3qbb.errors import FormatterError, InvalidParameterError
from s3qbb.formatters.bytes import BytesFormatter


@given(st.binary())
def test_round_trip(blob: bytes) -> None:
    fmt = BytesFormatter()
    for obj in (blob, bytearray(blob), memoryview(blob)):
        data = fmt.write(obj)
        assert type(data) is bytes
        assert data == blob
        assert fmt.read(data) == blob
        assert fmt.read(memoryview(data), bytes) == blob


def test_requested_bytes_types() -> None:
    fmt = BytesFormatter()
    assert type(fmt.read(memoryview(b"ab"))) is bytes
    assert fmt.read(b"ab", bytearray) == bytearray(b"ab")
    assert isinstance(fmt.read(b"ab", bytearray), bytearray)
    assert bytes(fmt.read(b"ab", memoryview)) == b"ab"


@pytest.mark.parametrize("obj", ["text", 1, [1, 2], None])
def test_write_refuses_non_bytes(obj: Any) -> None:
    with pytest.raises(FormatterError, match=repr(type(obj).__name__)):
        BytesFormatter().write(obj)


def test_read_refuses_wrong_pytype() -> None:
    with pytest.raises(FormatterError, match="'str'"):
        BytesFormatter().read(b"x", str)


def test_parameters_refused() -> None:
    with pytest.raises(InvalidParameterError):
        BytesFormatter().read(b"x", bytes, {"rows": (0, 1)})
