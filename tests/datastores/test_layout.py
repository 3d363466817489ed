"""Tests of s3qbb.datastores.layout.S3Layout: the formatter a record names."""

from __future__ import annotations

import pytest

from s3qbb.datastores.layout import S3Layout
from s3qbb.errors import PickleDisabledError, UnknownFormatterError


def test_formatter_named_is_one_instance_per_name() -> None:
    layout = S3Layout("s3://bucket/repo")
    json_formatter = layout.formatter_named("s3qbb.formatters.json.JsonFormatter")
    assert layout.formatter_named("s3qbb.formatters.json.JsonFormatter") is json_formatter
    assert json_formatter.read(json_formatter.write({"a": 1})) == {"a": 1}


def test_formatter_named_refusals_are_never_memoised() -> None:
    layout = S3Layout("s3://bucket/repo")
    for _ in range(2):
        with pytest.raises(PickleDisabledError):
            layout.formatter_named("pickle")
        with pytest.raises(UnknownFormatterError):
            layout.formatter_named("no.such.Formatter")
    assert S3Layout("s3://bucket/repo", allow_pickle=True).formatter_named("pickle").name == "pickle"
