"""Sphinx directives generating the configuration reference from the pydantic models.

``config-fields``: one table per model, one row per field::

    .. config-fields:: s3qbb.config.S3EndpointConfig

with the field's name, type, default, environment variable (from
``json_schema_extra["env"]``, as `s3qbb.config.EnvConfigModel.from_env`
reads it; for a nested model, the variables that fill it) and description.

``config-env-vars``: one table of every environment variable of the given
models, with the field it sets and its default::

    .. config-env-vars:: s3qbb.config.S3EndpointConfig s3qbb.config.RetryConfig

The tables are built from the models each time the documentation is built,
so they cannot drift from the code. `field_rows` and `env_rows` return the
same content as data; ``tests/docs/test_config_reference.py`` checks them
and the rendered tables.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import types
import typing
from typing import Any

from docutils import nodes
from docutils.parsers.rst import Directive
from docutils.statemachine import StringList
from pydantic import BaseModel, ByteSize
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

__all__ = [
    "ConfigEnvVarsDirective",
    "ConfigFieldsDirective",
    "EnvRow",
    "FieldRow",
    "env_rows",
    "field_rows",
    "import_model",
    "setup",
]

_DEFAULT_RE = re.compile(r"\s*Default: ``(?P<default>.*?)``\.")
_ENV_RE = re.compile(r"\s*(Environment variable: ``[A-Za-z0-9_]+``\.|No environment variable\.)")
NO_ENV = "none"
"""What the environment variable column says for a field no variable sets."""


@dataclasses.dataclass(frozen=True)
class FieldRow:
    """One row of a ``config-fields`` table, as reStructuredText cell contents."""

    name: str
    type: str
    default: str
    env: str
    meaning: str


@dataclasses.dataclass(frozen=True)
class EnvRow:
    """One row of a ``config-env-vars`` table."""

    variable: str
    field: str
    default: str


def import_model(path: str) -> type[BaseModel]:
    """Import ``package.module.Model`` and check that it is a pydantic model."""
    module_name, _, class_name = path.rpartition(".")
    model = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(f"{path} is not a pydantic model")
    return model


def _type_text(annotation: Any) -> str:
    """Return a short readable spelling of a field's type."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_text(a) for a in args)
    if origin is not None:
        inner = ", ".join(_type_text(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation))


def _default_text(info: FieldInfo) -> str:
    match = _DEFAULT_RE.search(info.description or "")
    if match:
        return f"``{match['default']}``"
    if isinstance(info.default, ByteSize):
        return f"``{int(info.default)}`` ({info.default.human_readable(decimal=False)})"
    if info.default is not PydanticUndefined:
        return f"``{info.default!r}``"
    if info.default_factory is not None:
        factory: Any = info.default_factory
        name = getattr(factory, "__name__", "")
        if isinstance(factory, type) and issubclass(factory, BaseModel):
            return f"``{name}()``"
        return f"``{factory()!r}``"
    return "required"


def _nested_models(annotation: Any) -> list[type[BaseModel]]:
    """Return the pydantic models a field's type refers to (``X``, ``X | None``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _nested_models(arg)]


def _own_env(info: FieldInfo) -> str | None:
    extra = info.json_schema_extra
    env = extra.get("env") if isinstance(extra, dict) else None
    return env if isinstance(env, str) else None


def _variables(model: type[BaseModel]) -> list[str]:
    """Every environment variable that fills ``model``, nested models included."""
    found: list[str] = []
    for info in model.model_fields.values():
        env = _own_env(info)
        if env:
            found.append(env)
        for nested in _nested_models(info.annotation):
            found.extend(_variables(nested))
    return found


def _env_text(info: FieldInfo) -> str:
    env = _own_env(info)
    if env:
        return f"``{env}``"
    prefixes: list[str] = []
    for nested in _nested_models(info.annotation):
        for variable in _variables(nested):
            prefix = "_".join(variable.split("_")[:2]) + "_*"
            if prefix not in prefixes:
                prefixes.append(prefix)
    if prefixes:
        return ", ".join(f"``{p}``" for p in prefixes)
    return NO_ENV


def _meaning_text(info: FieldInfo) -> str:
    description = info.description or ""
    return _ENV_RE.sub("", _DEFAULT_RE.sub("", description)).strip()


def _cell(text: str) -> str:
    return " ".join(text.split())


def field_rows(model: type[BaseModel]) -> list[FieldRow]:
    """Return the ``config-fields`` rows of a model, one per field, in definition order."""
    return [
        FieldRow(
            name=f"``{name}``",
            type=f"``{_type_text(info.annotation)}``",
            default=_cell(_default_text(info)),
            env=_env_text(info),
            meaning=_cell(_meaning_text(info)),
        )
        for name, info in model.model_fields.items()
    ]


def env_rows(models: list[type[BaseModel]]) -> list[EnvRow]:
    """Return the ``config-env-vars`` rows of models: every variable, sorted by name."""
    rows = [
        EnvRow(f"``{env}``", f"``{model.__name__}.{name}``", _default_text(info))
        for model in models
        for name, info in model.model_fields.items()
        if (env := _own_env(info))
    ]
    return sorted(rows, key=lambda row: row.variable)


def _list_table(header: list[str], widths: list[int], rows: list[list[str]]) -> list[str]:
    lines = [".. list-table::", "   :header-rows: 1", f"   :widths: {' '.join(map(str, widths))}", ""]
    for row in [header, *rows]:
        lines.append(f"   * - {row[0]}")
        lines.extend(f"     - {cell}" if cell else "     -" for cell in row[1:])
    return lines


class _TableDirective(Directive):
    def _render(self, lines: list[str]) -> list[nodes.Node]:
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source=self.arguments[0]), self.content_offset, container)
        return list(container.children)

    def _models(self) -> list[type[BaseModel]]:
        try:
            return [import_model(path) for path in self.arguments]
        except (ImportError, AttributeError, TypeError) as err:
            raise self.error(str(err)) from err


class ConfigFieldsDirective(_TableDirective):
    """Render the fields of a pydantic model as a list table."""

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        (model,) = self._models()
        rows = [[r.name, r.type, r.default, r.env, r.meaning] for r in field_rows(model)]
        header = ["Field", "Type", "Default", "Environment variable", "Meaning"]
        return self._render(_list_table(header, [18, 16, 14, 22, 40], rows))


class ConfigEnvVarsDirective(_TableDirective):
    """Render every environment variable of some pydantic models as a list table."""

    required_arguments = 1
    optional_arguments = 20
    has_content = False

    def run(self) -> list[nodes.Node]:
        rows = [[r.variable, r.field, r.default] for r in env_rows(self._models())]
        return self._render(_list_table(["Variable", "Sets", "Default"], [40, 40, 20], rows))


def setup(app: Any) -> dict[str, Any]:
    """Register the directives."""
    app.add_directive("config-fields", ConfigFieldsDirective)
    app.add_directive("config-env-vars", ConfigEnvVarsDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
