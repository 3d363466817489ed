"""JSON formatter: builtin JSON values and pydantic models."""

from __future__ import annotations

__all__ = ["JsonFormatter"]

import json
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import FormatterError
from .base import Formatter, check_native_type, pydantic_model_class, type_name

if TYPE_CHECKING:
    from collections.abc import Mapping


class _UnserialisableError(TypeError):
    """Raised from the ``default`` hook to report the offending type."""

    def __init__(self, obj: Any) -> None:
        super().__init__(type_name(obj))
        self.type_name = type_name(obj)


def _reject(obj: Any) -> Any:
    raise _UnserialisableError(obj)


def _is_pydantic_model(obj: Any) -> bool:
    return pydantic_model_class(type(obj)) is not None


class JsonFormatter(Formatter):
    """Read and write JSON documents (UTF-8, compact separators).

    Writes dicts, lists and other builtin JSON values with `json.dumps`, and
    pydantic models with ``model_dump_json``. Reads with `json.loads`, or with
    ``model_validate_json`` when the requested type is a pydantic model.
    """

    name: ClassVar[str] = "json"
    extension: ClassVar[str] = ".json"
    aliases: ClassVar[tuple[str, ...]] = (
        "lsst.daf.butler.formatters.json.JsonFormatter",
        "lsst.daf.butler.formatters.jsonFormatter.JsonFormatter",
    )

    def write(self, obj: Any) -> bytes:
        """Serialise a JSON value or a pydantic model.

        Parameters
        ----------
        obj : `object`
            A dict, list, str, int, float, bool, `None` (nested freely), or a
            pydantic model instance.

        Returns
        -------
        data : `bytes`
            UTF-8 encoded JSON.

        Raises
        ------
        FormatterError
            Raised if ``obj`` (or a value inside it) is not JSON serialisable.
        """
        if _is_pydantic_model(obj):
            try:
                return bytes(obj.model_dump_json().encode("utf-8"))
            except Exception as err:
                raise FormatterError(
                    f"JSON formatter cannot serialise pydantic model {type_name(obj)!r}: {err}"
                ) from err
        try:
            text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=_reject)
        except _UnserialisableError as err:
            inner = "" if err.type_name == type_name(obj) else f" (inside a {type_name(obj)!r})"
            raise FormatterError(
                f"JSON formatter cannot serialise an object of type {err.type_name!r}{inner}; convert it to "
                "dict, list, str, int, float, bool or None, or use a pydantic model or another formatter."
            ) from err
        except (TypeError, ValueError, RecursionError) as err:
            raise FormatterError(
                f"JSON formatter cannot serialise an object of type {type_name(obj)!r}: {err}"
            ) from err
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            # Lone surrogates cannot be UTF-8 encoded; \u escapes keep them and still round trip.
            return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode("ascii")

    def read(
        self,
        data: bytes | memoryview,
        pytype: type[Any] | None = None,
        parameters: Mapping[str, Any] | None = None,
    ) -> Any:
        """Deserialise a JSON document.

        Parameters
        ----------
        data : `bytes` or `memoryview`
            UTF-8 (or UTF-16/32) encoded JSON.
        pytype : `type`, optional
            A pydantic model class to validate into, or a builtin type
            (`dict`, `list`, `tuple`, `str`, `int`, `float`, `bool`) the
            document must have; other types are not checked.
        parameters : `~collections.abc.Mapping`, optional
            Must be empty: this formatter applies no read parameters.

        Returns
        -------
        obj : `object`
            The decoded value or model instance.

        Raises
        ------
        FormatterError
            Raised if the bytes are not valid JSON, fail model validation, or
            do not match a requested builtin type.
        """
        self.validate_parameters(parameters)
        raw = bytes(data)
        model = pydantic_model_class(pytype)
        if model is not None:
            try:
                return model.model_validate_json(raw)
            except ValueError as err:  # pydantic.ValidationError is a ValueError
                raise FormatterError(
                    f"JSON formatter: the document does not validate as {type_name(model)!r}: {err}"
                ) from err
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError) as err:  # JSONDecodeError and UnicodeDecodeError
            raise FormatterError(f"JSON formatter: the bytes are not a valid JSON document: {err}") from err
        return check_native_type(value, pytype, "JSON")
