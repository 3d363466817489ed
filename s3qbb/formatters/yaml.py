"""YAML formatter: safe YAML only (no Python object tags), and pydantic models."""

from __future__ import annotations

__all__ = ["YamlFormatter", "yaml_classes"]

import functools
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import FormatterError
from .base import Formatter, check_native_type, pydantic_model_class, type_name

if TYPE_CHECKING:
    from collections.abc import Mapping


@functools.cache
def yaml_classes() -> tuple[type[Any], type[Any]]:
    """Return PyYAML's safe dumper and loader classes: libyaml's (C) when PyYAML was built with it.

    ``CSafeDumper``/``CSafeLoader`` do what ``safe_dump``/``safe_load`` do
    (same representer, constructor and resolver; only the emitter and parser
    are C), 5-10 times faster. Their output is byte-identical for ASCII text;
    escaped non-ASCII strings longer than a line may be folded at another
    column, and both forms read back to the same value. Without libyaml the
    pure-Python ``SafeDumper``/``SafeLoader`` are used.

    Returns
    -------
    classes : `tuple` [`type`, `type`]
        The dumper and the loader.
    """
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return dumper, loader


class YamlFormatter(Formatter):
    """Read and write YAML documents with PyYAML's *safe* dumper and loader (libyaml's when available).

    Documents carrying Python-specific tags (``!!python/object`` and friends)
    are refused: constructing arbitrary Python objects from stored data would
    let whoever writes the data run code on the reader. Pydantic models are
    written as ``model_dump(mode="json")`` and read with ``model_validate``.
    """

    name: ClassVar[str] = "yaml"
    extension: ClassVar[str] = ".yaml"
    copy_by_decoding: ClassVar[bool] = False  # decoding costs more than copying
    aliases: ClassVar[tuple[str, ...]] = (
        "lsst.daf.butler.formatters.yaml.YamlFormatter",
        "lsst.daf.butler.formatters.yamlFormatter.YamlFormatter",
    )

    def write(self, obj: Any) -> bytes:
        """Serialise a YAML-safe value or a pydantic model.

        Parameters
        ----------
        obj : `object`
            Builtin values (dict, list, tuple, set, str, int, float, bool,
            `None`, bytes, dates), nested freely, or a pydantic model instance.

        Returns
        -------
        data : `bytes`
            YAML (ASCII, non-ASCII characters escaped); dict key order is preserved.

        Raises
        ------
        FormatterError
            Raised if ``obj`` holds a value safe YAML cannot represent.
        """
        import yaml

        value = obj
        if pydantic_model_class(type(obj)) is not None:
            try:
                value = obj.model_dump(mode="json")
            except Exception as err:
                raise FormatterError(
                    f"YAML formatter cannot serialise pydantic model {type_name(obj)!r}: {err}"
                ) from err
        try:
            # allow_unicode stays off: PyYAML then folds U+0085 (NEL) inside quoted scalars, corrupting
            # the text silently; escaped non-ASCII characters always round trip.
            text = yaml.dump(value, Dumper=yaml_classes()[0], sort_keys=False)
        except yaml.representer.RepresenterError as err:
            bad = err.args[1] if len(err.args) > 1 else obj
            inner = "" if type(bad) is type(obj) else f" (inside a {type_name(obj)!r})"
            raise FormatterError(
                f"YAML formatter cannot serialise an object of type {type_name(bad)!r}{inner} with the safe "
                "dumper; convert it to builtin types, use a pydantic model, or use another formatter."
            ) from err
        except (yaml.YAMLError, TypeError, ValueError, RecursionError) as err:
            raise FormatterError(
                f"YAML formatter cannot serialise an object of type {type_name(obj)!r}: {err}"
            ) from err
        return text.encode("utf-8")

    def read(
        self,
        data: bytes | memoryview,
        pytype: type[Any] | None = None,
        parameters: Mapping[str, Any] | None = None,
    ) -> Any:
        """Deserialise a YAML document with the safe loader.

        Parameters
        ----------
        data : `bytes` or `memoryview`
            The YAML document.
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
            Raised if the document is not valid YAML, uses tags the safe
            loader refuses (``!!python/...``), fails model validation, or does
            not match a requested builtin type.
        """
        import yaml

        self.validate_parameters(parameters)
        try:
            value = yaml.load(bytes(data), Loader=yaml_classes()[1])
        except yaml.constructor.ConstructorError as err:
            raise FormatterError(
                "YAML formatter refused the document: it uses a tag the safe loader does not construct "
                f"({err.problem}). Python object tags are never loaded, because building arbitrary objects "
                "from stored data can run code; store builtin values or a pydantic model instead."
            ) from err
        except (yaml.YAMLError, ValueError, RecursionError) as err:
            raise FormatterError(f"YAML formatter: the bytes are not a valid YAML document: {err}") from err
        model = pydantic_model_class(pytype)
        if model is not None:
            try:
                return model.model_validate(value)
            except ValueError as err:
                raise FormatterError(
                    f"YAML formatter: the document does not validate as {type_name(model)!r}: {err}"
                ) from err
        return check_native_type(value, pytype, "YAML")
