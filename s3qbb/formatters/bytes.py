"""Bytes formatter: opaque binary blobs stored as they are."""

from __future__ import annotations

__all__ = ["BytesFormatter"]

from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import FormatterError
from .base import Formatter, type_name

if TYPE_CHECKING:
    from collections.abc import Mapping


class BytesFormatter(Formatter):
    """Store `bytes`, `bytearray` or `memoryview` objects unchanged; read `bytes`."""

    name: ClassVar[str] = "bytes"
    extension: ClassVar[str] = ".bin"

    def write(self, obj: Any) -> bytes:
        """Return the bytes of a bytes-like object.

        Parameters
        ----------
        obj : `bytes`, `bytearray` or `memoryview`
            The blob.

        Returns
        -------
        data : `bytes`
            The same bytes.

        Raises
        ------
        FormatterError
            Raised if ``obj`` is not bytes-like.
        """
        if isinstance(obj, bytes):
            return obj
        if isinstance(obj, bytearray | memoryview):
            return bytes(obj)
        raise FormatterError(
            f"Bytes formatter cannot store an object of type {type_name(obj)!r}; pass bytes, bytearray or "
            "memoryview (encode text first), or use another formatter."
        )

    def read(
        self,
        data: bytes | memoryview,
        pytype: type[Any] | None = None,
        parameters: Mapping[str, Any] | None = None,
    ) -> Any:
        """Return the stored bytes.

        Parameters
        ----------
        data : `bytes` or `memoryview`
            The stored blob.
        pytype : `type`, optional
            `bytes` (the default), `bytearray` or `memoryview`; any other
            class that `bytes` is not a subclass of is refused.
        parameters : `~collections.abc.Mapping`, optional
            Must be empty: this formatter applies no read parameters.

        Returns
        -------
        obj : `bytes`, `bytearray` or `memoryview`
            The blob, as the requested type.

        Raises
        ------
        FormatterError
            Raised if ``pytype`` is not a bytes type.
        """
        self.validate_parameters(parameters)
        if pytype is bytearray:
            return bytearray(data)
        if pytype is memoryview:
            return memoryview(bytes(data))
        if isinstance(pytype, type) and not issubclass(bytes, pytype):
            raise FormatterError(
                f"Bytes formatter returns bytes, but a {type_name(pytype)!r} was requested; "
                "check the storage class of the dataset."
            )
        return data if isinstance(data, bytes) else bytes(data)
