"""Helpers shared by the provenance models: name validation and deterministic JSON."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

import pydantic

from .files import redact

_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def _no_control(value: str) -> str:
    if _CONTROL_RE.search(value):
        raise ValueError(f"{value[:80]!r} contains NUL or control characters")
    return value


_Name = Annotated[str, pydantic.StringConstraints(min_length=1), pydantic.AfterValidator(_no_control)]


def _dump(obj: Any) -> bytes:
    """Serialize JSON-ready data deterministically: 2-space indent, ASCII, trailing newline."""
    return (json.dumps(obj, indent=2, ensure_ascii=True, allow_nan=False) + "\n").encode("ascii")


def _describe(err: pydantic.ValidationError) -> str:
    """Summarize validation errors by location and message, without echoing input values."""
    details = err.errors(include_url=False, include_input=False, include_context=False)
    parts = [f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in details[:5]]
    if len(details) > 5:
        parts.append(f"({len(details) - 5} more errors)")
    return redact("; ".join(parts))
