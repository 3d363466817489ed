"""Registry of formatter classes, looked up by the names datastore records store.

Records come from storage, so a formatter name is never imported as a dotted
path: only classes registered explicitly can be found.
"""

from __future__ import annotations

__all__ = ["FormatterFactory"]

from typing import TYPE_CHECKING

from ..errors import ConfigError, PickleDisabledError, UnknownFormatterError
from .base import Formatter
from .pickle import PICKLE_DISABLED_MESSAGE

if TYPE_CHECKING:
    from collections.abc import Iterable


class FormatterFactory:
    """Create formatters by short name, qualified name or daf_butler alias.

    A new factory is empty; `default` returns one with the built-in
    formatters registered.
    """

    def __init__(self) -> None:
        self._classes: dict[str, type[Formatter]] = {}  # short name -> class
        self._lookup: dict[str, str] = {}  # every accepted name -> short name

    @classmethod
    def default(cls) -> FormatterFactory:
        """Return a new factory with all built-in formatters registered.

        Returns
        -------
        factory : `FormatterFactory`
            A factory knowing json, yaml, bytes, npy, parquet and pickle.
        """
        from .bytes import BytesFormatter
        from .json import JsonFormatter
        from .npy import NpyFormatter
        from .parquet import ParquetFormatter
        from .pickle import PickleFormatter
        from .yaml import YamlFormatter

        factory = cls()
        for formatter in (
            JsonFormatter,
            YamlFormatter,
            BytesFormatter,
            NpyFormatter,
            ParquetFormatter,
            PickleFormatter,
        ):
            factory.register(formatter)
        return factory

    def register(self, cls: type[Formatter], *, aliases: Iterable[str] = ()) -> type[Formatter]:
        """Register a formatter class.

        It becomes available under its `~Formatter.name`, its
        `~Formatter.qualified_name`, its `~Formatter.aliases` and ``aliases``.
        Registering the same class again is a no-op (new aliases are added).

        Parameters
        ----------
        cls : `type` [`Formatter`]
            A concrete formatter class.
        aliases : `~collections.abc.Iterable` [`str`], optional
            Extra names to accept for this class.

        Returns
        -------
        cls : `type` [`Formatter`]
            ``cls``, so this method can be used as a class decorator.

        Raises
        ------
        ConfigError
            Raised if ``cls`` is not a concrete formatter class, or one of its
            names is already taken by another class.
        """
        if not (isinstance(cls, type) and issubclass(cls, Formatter)) or getattr(
            cls, "__abstractmethods__", None
        ):
            raise ConfigError(
                f"Cannot register {cls!r} as a formatter: it is not a concrete Formatter subclass."
            )
        short = getattr(cls, "name", None)
        if not isinstance(short, str) or not short or not isinstance(getattr(cls, "extension", None), str):
            raise ConfigError(
                f"Cannot register formatter {cls!r}: it must define the class attributes 'name' and "
                "'extension'."
            )
        names = [short, cls.qualified_name(), *cls.aliases, *aliases]
        for name in names:
            owner = self._lookup.get(name)
            if owner is not None and self._classes[owner] is not cls:
                raise ConfigError(
                    f"Cannot register formatter {cls.qualified_name()!r} under {name!r}: that name already "
                    f"refers to {self._classes[owner].qualified_name()!r}."
                )
        self._classes[short] = cls
        for name in names:
            self._lookup[name] = short
        return cls

    def get_class(self, name: str) -> type[Formatter]:
        """Return the formatter class registered under a name, without creating it.

        Parameters
        ----------
        name : `str`
            Short name, qualified name or alias.

        Returns
        -------
        cls : `type` [`Formatter`]
            The registered class.

        Raises
        ------
        UnknownFormatterError
            Raised if no formatter is registered under ``name``.
        """
        short = self._lookup.get(name)
        if short is None:
            known = ", ".join(self.names()) or "none"
            raise UnknownFormatterError(
                f"Unknown formatter {name!r}; known formatters: {known} (also accepted by their qualified "
                "names and daf_butler aliases). Formatter names are never imported as Python paths: "
                "register a custom formatter class with FormatterFactory.register."
            )
        return self._classes[short]

    def get(self, name: str, *, allow_pickle: bool = False) -> Formatter:
        """Create the formatter registered under a name.

        Parameters
        ----------
        name : `str`
            Short name (``"json"``), qualified name
            (``"s3qbb.formatters.json.JsonFormatter"``) or alias
            (``"lsst.daf.butler.formatters.json.JsonFormatter"``).
        allow_pickle : `bool`, optional
            Whether unsafe formatters (pickle) may be created; from the
            ``allow_pickle`` configuration key.

        Returns
        -------
        formatter : `Formatter`
            A new formatter instance.

        Raises
        ------
        UnknownFormatterError
            Raised if no formatter is registered under ``name``.
        PickleDisabledError
            Raised if the formatter is unsafe and ``allow_pickle`` is `False`.
        """
        cls = self.get_class(name)
        if cls.unsafe and not allow_pickle:
            # Checked here too so that unsafe formatters without their own guard stay disabled.
            prefix = "" if cls.name == "pickle" else f"Formatter {cls.name!r} is unsafe like pickle. "
            raise PickleDisabledError(prefix + PICKLE_DISABLED_MESSAGE)
        return cls.create(allow_pickle=allow_pickle)

    def names(self) -> list[str]:
        """Return the short names of the registered formatters.

        Returns
        -------
        names : `list` [`str`]
            Sorted short names.
        """
        return sorted(self._classes)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._lookup

    def __repr__(self) -> str:
        return f"FormatterFactory({self.names()})"
