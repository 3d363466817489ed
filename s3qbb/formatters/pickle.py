"""Pickle formatter: any picklable object; disabled unless explicitly allowed."""

from __future__ import annotations

__all__ = ["PICKLE_DISABLED_MESSAGE", "PickleFormatter"]

from typing import TYPE_CHECKING, Any, ClassVar, Self

from ..errors import FormatterError, PickleDisabledError
from .base import Formatter, type_name

if TYPE_CHECKING:
    from collections.abc import Mapping

PICKLE_DISABLED_MESSAGE = (
    "The pickle formatter is disabled: loading a pickle executes code chosen by whoever wrote the file, "
    "so a crafted object in storage could run arbitrary code on this machine. Enable it only for "
    "repositories whose writers you trust, with the configuration key `allow_pickle: true` "
    "(or allow_pickle=True when asking the FormatterFactory for it); otherwise store the dataset with a "
    "safe formatter (json, yaml, npy, parquet)."
)
"""Message of the `PickleDisabledError` raised when pickle is not allowed."""


class PickleFormatter(Formatter):
    """Read and write Python pickles (protocol 5).

    Unsafe: unpickling runs code embedded in the data. Constructing or using
    an instance without ``allow_pickle=True`` raises `PickleDisabledError`.

    Parameters
    ----------
    allow_pickle : `bool`, optional
        Must be `True`; the caller states that the stored data is trusted.

    Raises
    ------
    PickleDisabledError
        Raised if ``allow_pickle`` is not `True`.
    """

    name: ClassVar[str] = "pickle"
    extension: ClassVar[str] = ".pickle"
    unsafe: ClassVar[bool] = True
    aliases: ClassVar[tuple[str, ...]] = (
        "lsst.daf.butler.formatters.pickle.PickleFormatter",
        "lsst.daf.butler.formatters.pickleFormatter.PickleFormatter",
    )

    protocol: ClassVar[int] = 5
    """Pickle protocol used for writing (readable by Python >= 3.8)."""

    def __init__(self, *, allow_pickle: bool = False) -> None:
        if allow_pickle is not True:
            raise PickleDisabledError(PICKLE_DISABLED_MESSAGE)
        self._allowed = True

    @classmethod
    def create(cls, *, allow_pickle: bool = False) -> Self:
        """Construct the formatter if pickle is allowed.

        Parameters
        ----------
        allow_pickle : `bool`, optional
            Whether pickle is allowed by configuration.

        Returns
        -------
        formatter : `PickleFormatter`
            A new instance.

        Raises
        ------
        PickleDisabledError
            Raised if ``allow_pickle`` is not `True`.
        """
        return cls(allow_pickle=allow_pickle)

    def _check_allowed(self) -> None:
        # Guards instances made without __init__ (copy, __new__, subclass overrides).
        if getattr(self, "_allowed", False) is not True:
            raise PickleDisabledError(PICKLE_DISABLED_MESSAGE)

    def write(self, obj: Any) -> bytes:
        """Pickle an object.

        Parameters
        ----------
        obj : `object`
            Any picklable object.

        Returns
        -------
        data : `bytes`
            The pickle.

        Raises
        ------
        PickleDisabledError
            Raised if this instance was not created with pickle allowed.
        FormatterError
            Raised if ``obj`` cannot be pickled.
        """
        self._check_allowed()
        import pickle  # on use: every butler imports the formatters, few pickle (about 1 ms)

        try:
            return pickle.dumps(obj, protocol=self.protocol)
        except (pickle.PicklingError, TypeError, AttributeError, ValueError, RecursionError) as err:
            raise FormatterError(
                f"Pickle formatter cannot pickle an object of type {type_name(obj)!r}: {err}"
            ) from err

    def read(
        self,
        data: bytes | memoryview,
        pytype: type[Any] | None = None,
        parameters: Mapping[str, Any] | None = None,
    ) -> Any:
        """Unpickle an object (this runs code from the data: trusted data only).

        Parameters
        ----------
        data : `bytes` or `memoryview`
            The pickle.
        pytype : `type`, optional
            If a class, the unpickled object must be an instance of it.
        parameters : `~collections.abc.Mapping`, optional
            Must be empty: this formatter applies no read parameters.

        Returns
        -------
        obj : `object`
            The unpickled object.

        Raises
        ------
        PickleDisabledError
            Raised if this instance was not created with pickle allowed.
        FormatterError
            Raised if the bytes are not a valid pickle or the object is not a ``pytype``.
        """
        self._check_allowed()
        self.validate_parameters(parameters)
        import pickle

        try:
            obj = pickle.loads(data)
        except Exception as err:  # unpickling can raise anything
            raise FormatterError(f"Pickle formatter: the bytes could not be unpickled: {err!r}") from err
        if isinstance(pytype, type) and not isinstance(obj, pytype):
            raise FormatterError(
                f"Pickle formatter: the pickle holds a {type_name(obj)!r} but a {type_name(pytype)!r} was "
                "requested; check the storage class of the dataset."
            )
        return obj
