"""The formatter interface: bytes in, Python objects out, and back.

A formatter knows nothing about datasets, storage classes or storage: it is
given an object to serialise, or bytes plus the Python type the caller wants
and the read parameters to apply.
"""

from __future__ import annotations

__all__ = ["Formatter", "RangeReadable", "check_native_type", "pydantic_model_class", "type_name"]

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self, runtime_checkable

from ..errors import FormatterError, InvalidParameterError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pydantic import BaseModel


def type_name(obj_or_type: Any) -> str:
    """Return the fully qualified name of an object's type (or of a type).

    Parameters
    ----------
    obj_or_type : `object`
        An instance, or a class.

    Returns
    -------
    name : `str`
        ``module.QualName``, without the module for builtins.
    """
    cls = obj_or_type if isinstance(obj_or_type, type) else type(obj_or_type)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def pydantic_model_class(pytype: Any) -> type[BaseModel] | None:
    """Return ``pytype`` if it is a pydantic model class, else `None`.

    Parameters
    ----------
    pytype : `object`
        The Python type a caller asked for (may be `None` or a typing construct).

    Returns
    -------
    model : `type` [`pydantic.BaseModel`] or `None`
        The model class, or `None` when ``pytype`` is not one.
    """
    if not isinstance(pytype, type):
        return None
    from pydantic import BaseModel

    return pytype if issubclass(pytype, BaseModel) else None


# Builtin types a JSON or YAML document can produce, and what each accepts.
_NATIVE_ACCEPTS: dict[type[Any], tuple[type[Any], ...]] = {
    dict: (dict,),
    list: (list,),
    str: (str,),
    int: (int,),
    float: (float, int),
    bool: (bool,),
}


def check_native_type(value: Any, pytype: type[Any] | None, formatter: str) -> Any:
    """Check that a decoded document matches a requested builtin type.

    Parameters
    ----------
    value : `object`
        The decoded document.
    pytype : `type` or `None`
        The type the caller asked for. Only `dict`, `list`, `tuple`, `str`,
        `int`, `float` and `bool` are checked; anything else is returned as is.
    formatter : `str`
        Formatter name, used in the error message.

    Returns
    -------
    value : `object`
        ``value``, converted to a `tuple` if a tuple was requested and a list
        was decoded, or to a `float` if a float was requested and an int decoded.

    Raises
    ------
    FormatterError
        Raised if the decoded value is not of the requested builtin type.
    """
    if pytype is None or not isinstance(pytype, type):
        return value
    if pytype is tuple and isinstance(value, list):
        return tuple(value)
    accepts = _NATIVE_ACCEPTS.get(pytype)
    if accepts is None:
        return value
    ok = isinstance(value, accepts) and not (pytype is not bool and isinstance(value, bool))
    if not ok:
        raise FormatterError(
            f"{formatter} formatter: the document holds a {type_name(value)!r} but a {pytype.__name__!r} "
            "was requested; check the storage class of the dataset or read it with a matching type."
        )
    return float(value) if pytype is float else value


class Formatter(ABC):
    """Converts between Python objects and the bytes of one file format.

    Subclasses set the class attributes below and implement `write` and
    `read`. Instances are stateless and cheap; a `FormatterFactory` creates
    them by name.
    """

    name: ClassVar[str]
    """Short registry name, e.g. ``"json"``."""

    extension: ClassVar[str]
    """File extension, with its leading dot, e.g. ``".json"``."""

    parameters: ClassVar[frozenset[str]] = frozenset()
    """Names of the read parameters this formatter applies while reading."""

    unsafe: ClassVar[bool] = False
    """`True` if reading can execute code embedded in the data (pickle)."""

    copy_by_decoding: ClassVar[bool] = True
    """Whether decoding the bytes is a cheaper way to get a fresh object than `copy.deepcopy` of one.

    `True` for JSON, pickle and raw bytes: a cache tier keeps such datasets as
    bytes and decodes them on every hit. `False` where decoding costs more than
    copying (NumPy's header parsing, YAML's parser, Parquet): the cache decodes
    once and copies the decoded object (or shares it, if it is immutable).
    """

    aliases: ClassVar[tuple[str, ...]] = ()
    """Other names (e.g. daf_butler class paths) the registry accepts for this formatter.

    The first alias naming a class of ``lsst.daf.butler`` is the formatter's
    daf_butler equivalent (`daf_butler_name`).
    """

    @classmethod
    def daf_butler_name(cls) -> str | None:
        """Return the daf_butler formatter class that reads this formatter's files, if there is one.

        Returns
        -------
        name : `str` or `None`
            For example ``"lsst.daf.butler.formatters.json.JsonFormatter"``;
            what daf_butler-compatible records name (``daf_butler_compat``).
        """
        return next((a for a in cls.aliases if a.startswith("lsst.daf.butler.")), None)

    @classmethod
    def qualified_name(cls) -> str:
        """Return the name stored in datastore records for this formatter.

        Returns
        -------
        name : `str`
            ``module.ClassName``, e.g. ``"s3qbb.formatters.json.JsonFormatter"``.
        """
        return f"{cls.__module__}.{cls.__qualname__}"

    @classmethod
    def create(cls, *, allow_pickle: bool = False) -> Self:
        """Construct the formatter, honouring the pickle permission.

        Parameters
        ----------
        allow_pickle : `bool`, optional
            Whether unsafe (code-executing) formatters may be constructed.
            Ignored by safe formatters.

        Returns
        -------
        formatter : `Formatter`
            A new instance.
        """
        return cls()

    @abstractmethod
    def write(self, obj: Any) -> bytes:
        """Serialise an object.

        Parameters
        ----------
        obj : `object`
            The object to serialise.

        Returns
        -------
        data : `bytes`
            The serialised object.

        Raises
        ------
        FormatterError
            Raised if the object cannot be serialised by this formatter; the
            message names the Python type.
        """
        raise NotImplementedError()

    @abstractmethod
    def read(
        self,
        data: bytes | memoryview,
        pytype: type[Any] | None = None,
        parameters: Mapping[str, Any] | None = None,
    ) -> Any:
        """Deserialise bytes into an object.

        Parameters
        ----------
        data : `bytes` or `memoryview`
            The serialised object (the whole file).
        pytype : `type`, optional
            The Python type the caller wants; formatters use it to pick a
            decoding (e.g. a pydantic model) and to check the result.
        parameters : `~collections.abc.Mapping`, optional
            Read parameters; only names in `parameters` are accepted.

        Returns
        -------
        obj : `object`
            The deserialised object.

        Raises
        ------
        FormatterError
            Raised if the bytes cannot be decoded or do not match ``pytype``.
        InvalidParameterError
            Raised if a parameter is unknown or has a bad value.
        """
        raise NotImplementedError()

    def validate_parameters(self, parameters: Mapping[str, Any] | None) -> None:
        """Check read parameters before reading.

        The default checks only the names; subclasses extend it to check values.

        Parameters
        ----------
        parameters : `~collections.abc.Mapping` or `None`
            Read parameters.

        Raises
        ------
        InvalidParameterError
            Raised if a name is not in `parameters` or a value is invalid.
        """
        if not parameters:
            return
        unknown = sorted(str(k) for k in parameters if k not in self.parameters)
        if unknown:
            supported = ", ".join(repr(p) for p in sorted(self.parameters)) or "none"
            raise InvalidParameterError(
                f"The {self.name} formatter does not support read parameter(s) "
                f"{', '.join(repr(u) for u in unknown)}; supported: {supported}. "
                "Remove them or read the dataset with a storage class that declares them."
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


@runtime_checkable
class RangeReadable(Protocol):
    """Optional formatter surface for partial reads with HTTP Range requests.

    A datastore fetches at least the first `header_nbytes` bytes, asks
    `plan_range` which byte range the read parameters need, fetches that range
    (the S3 datastore widens both to whole checksum blocks and verifies them),
    and hands both to `read_range`. When `plan_range` returns `None` the datastore
    reads the whole object and calls `Formatter.read` instead. When
    ``stop <= len(header)`` the planned bytes are already in the header and
    ``header[start:stop]`` can be passed without another request.
    """

    header_nbytes: int
    """How many leading bytes to fetch first to plan a ranged read."""

    def plan_range(self, header: bytes, parameters: Mapping[str, Any]) -> tuple[int, int] | None:
        """Return the byte range needed for a read, or `None` to read everything.

        Parameters
        ----------
        header : `bytes`
            The leading bytes of the object: at least `header_nbytes` (fewer
            only if the object is smaller), possibly more (the S3 datastore
            passes whole checksum blocks).
        parameters : `~collections.abc.Mapping`
            Read parameters.

        Returns
        -------
        span : `tuple` [`int`, `int`] or `None`
            ``(start, stop)`` byte offsets into the object, ``stop`` exclusive
            and ``stop > start``; `None` if the whole object must be read.
        """
        ...

    def read_range(
        self,
        header: bytes,
        data: bytes,
        parameters: Mapping[str, Any],
        pytype: type[Any] | None,
    ) -> Any:
        """Build the object from the header and the bytes of the planned range.

        Parameters
        ----------
        header : `bytes`
            The same leading bytes given to `plan_range`.
        data : `bytes`
            The bytes ``[start, stop)`` of the object, as planned.
        parameters : `~collections.abc.Mapping`
            The same read parameters given to `plan_range`.
        pytype : `type` or `None`
            The Python type the caller wants.

        Returns
        -------
        obj : `object`
            The object, equal to what `Formatter.read` returns for the whole file.
        """
        ...
