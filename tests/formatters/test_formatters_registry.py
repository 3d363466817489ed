"""Tests for s3qbb.formatters.registry."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest

from s3qbb.errors import ConfigError, PickleDisabledError, UnknownFormatterError
from s3qbb.formatters import (
    BytesFormatter,
    Formatter,
    FormatterFactory,
    JsonFormatter,
    NpyFormatter,
    ParquetFormatter,
    PickleFormatter,
    YamlFormatter,
)


class EchoFormatter(Formatter):
    name: ClassVar[str] = "echo"
    extension: ClassVar[str] = ".echo"

    def write(self, obj: Any) -> bytes:
        return bytes(obj)

    def read(self, data: Any, pytype: Any = None, parameters: Any = None) -> Any:
        return bytes(data)


def test_default_names() -> None:
    assert FormatterFactory.default().names() == ["bytes", "json", "npy", "parquet", "pickle", "yaml"]


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("json", JsonFormatter),
        ("s3qbb.formatters.json.JsonFormatter", JsonFormatter),
        ("lsst.daf.butler.formatters.json.JsonFormatter", JsonFormatter),
        ("lsst.daf.butler.formatters.jsonFormatter.JsonFormatter", JsonFormatter),
        ("yaml", YamlFormatter),
        ("s3qbb.formatters.yaml.YamlFormatter", YamlFormatter),
        ("lsst.daf.butler.formatters.yaml.YamlFormatter", YamlFormatter),
        ("bytes", BytesFormatter),
        ("s3qbb.formatters.bytes.BytesFormatter", BytesFormatter),
        ("npy", NpyFormatter),
        ("s3qbb.formatters.npy.NpyFormatter", NpyFormatter),
        ("parquet", ParquetFormatter),
        ("s3qbb.formatters.parquet.ParquetFormatter", ParquetFormatter),
        ("lsst.daf.butler.formatters.parquet.ParquetFormatter", ParquetFormatter),
    ],
)
def test_lookup_by_any_name(name: str, cls: type[Formatter]) -> None:
    factory = FormatterFactory.default()
    formatter = factory.get(name)
    assert type(formatter) is cls
    assert name in factory
    assert factory.get_class(name) is cls


def test_qualified_names_and_extensions() -> None:
    expected = {
        JsonFormatter: ("s3qbb.formatters.json.JsonFormatter", ".json"),
        YamlFormatter: ("s3qbb.formatters.yaml.YamlFormatter", ".yaml"),
        BytesFormatter: ("s3qbb.formatters.bytes.BytesFormatter", ".bin"),
        NpyFormatter: ("s3qbb.formatters.npy.NpyFormatter", ".npy"),
        ParquetFormatter: ("s3qbb.formatters.parquet.ParquetFormatter", ".parq"),
        PickleFormatter: ("s3qbb.formatters.pickle.PickleFormatter", ".pickle"),
    }
    for cls, (qualified, extension) in expected.items():
        assert cls.qualified_name() == qualified
        assert cls.extension == extension
        assert cls.unsafe is (cls is PickleFormatter)


@pytest.mark.parametrize(
    "name",
    [
        "pickle",
        "s3qbb.formatters.pickle.PickleFormatter",
        "lsst.daf.butler.formatters.pickle.PickleFormatter",
    ],
)
def test_pickle_needs_permission(name: str) -> None:
    factory = FormatterFactory.default()
    with pytest.raises(PickleDisabledError, match="allow_pickle: true"):
        factory.get(name)
    formatter = factory.get(name, allow_pickle=True)
    assert isinstance(formatter, PickleFormatter)
    assert formatter.read(formatter.write({1, 2})) == {1, 2}


@pytest.mark.parametrize(
    "name",
    ["", "JSON", "xml", "lsst.daf.butler.formatters.logs.ButlerLogRecordsFormatter", "os.system"],
)
def test_unknown_name_lists_known(name: str) -> None:
    with pytest.raises(UnknownFormatterError) as info:
        FormatterFactory.default().get(name)
    message = str(info.value)
    assert repr(name) in message
    assert "bytes, json, npy, parquet, pickle, yaml" in message
    assert isinstance(info.value, LookupError)


def test_dotted_paths_are_never_imported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "imported"
    (tmp_path / "s3qbb_evil_module.py").write_text(
        "from pathlib import Path\n"
        f"Path({str(marker)!r}).write_text('ran')\n"
        "from s3qbb.formatters.json import JsonFormatter as EvilFormatter\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UnknownFormatterError):
        FormatterFactory.default().get("s3qbb_evil_module.EvilFormatter")
    assert not marker.exists()
    assert "s3qbb_evil_module" not in sys.modules


def test_register_custom_and_factories_are_independent() -> None:
    factory = FormatterFactory()
    assert factory.names() == []
    assert factory.register(EchoFormatter, aliases=["legacy.Echo"]) is EchoFormatter
    factory.register(EchoFormatter)  # idempotent
    assert factory.names() == ["echo"]
    assert type(factory.get("legacy.Echo")) is EchoFormatter
    assert type(factory.get(EchoFormatter.qualified_name())) is EchoFormatter
    assert "echo" not in FormatterFactory.default()
    with pytest.raises(UnknownFormatterError, match="known formatters: echo"):
        factory.get("json")


def test_register_conflicts_and_bad_classes() -> None:
    factory = FormatterFactory.default()

    class OtherJson(EchoFormatter):
        name: ClassVar[str] = "json"

    with pytest.raises(ConfigError, match=r"already refers to 's3qbb\.formatters\.json\.JsonFormatter'"):
        factory.register(OtherJson)
    with pytest.raises(ConfigError, match="already refers"):
        factory.register(EchoFormatter, aliases=["lsst.daf.butler.formatters.yaml.YamlFormatter"])
    assert "echo" not in factory
    with pytest.raises(ConfigError, match="not a concrete Formatter"):
        factory.register(dict)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="not a concrete Formatter"):
        factory.register(Formatter)  # type: ignore[type-abstract]

    anonymous = type("Anonymous", (Formatter,), {"write": EchoFormatter.write, "read": EchoFormatter.read})
    with pytest.raises(ConfigError, match="'name' and 'extension'"):
        factory.register(anonymous)


def test_unsafe_custom_formatter_needs_permission() -> None:
    class Risky(EchoFormatter):
        name: ClassVar[str] = "risky"
        unsafe: ClassVar[bool] = True

    factory = FormatterFactory()
    factory.register(Risky)
    with pytest.raises(PickleDisabledError, match="'risky' is unsafe"):
        factory.get("risky")
    assert type(factory.get("risky", allow_pickle=True)) is Risky
