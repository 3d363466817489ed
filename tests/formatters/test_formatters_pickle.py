"""Tests for s3qbb.formatters.pickle."""

from __future__ import annotations

import collections
import pickle

import pytest

from s3qbb.errors import FormatterError, InvalidParameterError, PickleDisabledError
from s3qbb.formatters.pickle import PickleFormatter


def test_disabled_by_default() -> None:
    with pytest.raises(PickleDisabledError) as info:
        PickleFormatter()
    message = str(info.value)
    assert "allow_pickle: true" in message
    assert "code" in message
    assert isinstance(info.value, PermissionError)
    assert isinstance(info.value, FormatterError)
    with pytest.raises(PickleDisabledError):
        PickleFormatter(allow_pickle=False)
    with pytest.raises(PickleDisabledError):
        PickleFormatter.create()


def test_instance_made_without_init_is_disabled() -> None:
    rogue = object.__new__(PickleFormatter)
    with pytest.raises(PickleDisabledError):
        rogue.read(pickle.dumps(1))
    with pytest.raises(PickleDisabledError):
        rogue.write(1)


def test_round_trip_when_allowed() -> None:
    fmt = PickleFormatter.create(allow_pickle=True)
    assert fmt.unsafe is True
    value = collections.OrderedDict(a={1, 2}, b=(1.5, b"x"))
    data = fmt.write(value)
    assert data[:2] == b"\x80\x05"  # protocol 5
    back = fmt.read(memoryview(data), collections.OrderedDict)
    assert back == value
    assert type(back) is collections.OrderedDict


def test_errors_when_allowed() -> None:
    fmt = PickleFormatter(allow_pickle=True)
    with pytest.raises(FormatterError, match="function"):
        fmt.write(lambda: None)
    with pytest.raises(FormatterError, match="could not be unpickled"):
        fmt.read(b"not a pickle")
    with pytest.raises(FormatterError, match=r"'int'.*'str'"):
        fmt.read(fmt.write(1), str)
    with pytest.raises(InvalidParameterError):
        fmt.read(fmt.write(1), int, {"rows": (0, 1)})
