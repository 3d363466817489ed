"""Sphinx directive ``config-fields``: a table of a pydantic configuration model's fields.

Usage in a page::

    .. config-fields:: s3qbb.config.S3EndpointConfig

One row per field: name, type, default, environment variable (from
``json_schema_extra["env"]``, as `s3qbb.config.EnvConfigModel.from_env`
reads it) and description, so the documentation cannot drift from the code.
"""

from __future__ import annotations

import importlib
import re
import types
import typing
from typing import Any

from docutils import nodes
from docutils.parsers.rst import Directive
from docutils.statemachine import StringList
from pydantic import BaseModel, ByteSize
from pydantic_core import PydanticUndefined

__all__ = ["ConfigFieldsDirective", "setup"]

_DEFAULT_RE = re.compile(r"\s*Default: ``(?P<default>.*?)``\.")
_ENV_RE = re.compile(r"\s*(Environment variable: ``[A-Za-z0-9_]+``\.|No environment variable\.)")


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


def _default_text(info: Any) -> str:
    if isinstance(info.default, ByteSize):
        return f"``{int(info.default)}`` ({info.default.human_readable(decimal=False)})"
    if info.default is not PydanticUndefined:
        return f"``{info.default!r}``"
    if info.default_factory is not None:
        factory = info.default_factory
        name = getattr(factory, "__name__", "")
        if isinstance(factory, type) and issubclass(factory, BaseModel):
            return f"``{name}()``"
        return f"``{factory()!r}``"
    return "required"


def _escape_cell(text: str) -> str:
    return " ".join(text.split())


class ConfigFieldsDirective(Directive):
    """Render the fields of a pydantic model as a list table."""

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        module_name, _, class_name = self.arguments[0].rpartition(".")
        model = getattr(importlib.import_module(module_name), class_name)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise self.error(f"{self.arguments[0]} is not a pydantic model")
        rows = [".. list-table::", "   :header-rows: 1", "   :widths: 18 16 14 22 40", ""]
        rows += [
            "   * - Field",
            "     - Type",
            "     - Default",
            "     - Environment variable",
            "     - Meaning",
        ]
        for name, info in model.model_fields.items():
            description = info.description or ""
            match = _DEFAULT_RE.search(description)
            default = f"``{match['default']}``" if match else _default_text(info)
            description = _ENV_RE.sub("", _DEFAULT_RE.sub("", description)).strip()
            extra = info.json_schema_extra
            env = extra.get("env") if isinstance(extra, dict) else None
            rows += [
                f"   * - ``{name}``",
                f"     - ``{_type_text(info.annotation)}``",
                f"     - {_escape_cell(default)}",
                f"     - ``{env}``" if env else "     - ",
                f"     - {_escape_cell(description)}",
            ]
        container = nodes.container()
        self.state.nested_parse(StringList(rows, source=self.arguments[0]), self.content_offset, container)
        return list(container.children)


def setup(app: Any) -> dict[str, Any]:
    """Register the directive."""
    app.add_directive("config-fields", ConfigFieldsDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
