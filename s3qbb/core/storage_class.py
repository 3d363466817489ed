"""Storage classes: the Python type of a dataset, how it is serialized, read and converted.

Python types, converters and parameter handlers are named by dotted paths and
imported lazily, so defining a storage class for ``numpy.ndarray`` does not
import NumPy until such a dataset is actually used. Dotted paths come only from
trusted configuration (the repository config), never from stored records.
"""

from __future__ import annotations

__all__ = ["StorageClass", "StorageClassFactory", "import_dotted"]

import importlib
import threading
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

from ..errors import ConfigError, InvalidParameterError, StorageClassError, UnknownStorageClassError


def import_dotted(path: str) -> Any:
    """Import and return the object named by a dotted path such as ``"numpy.ndarray"``.

    Parameters
    ----------
    path : `str`
        Module path followed by attribute names.

    Returns
    -------
    obj : `object`
        The named object.

    Raises
    ------
    ImportError
        If no prefix of the path is an importable module or an attribute is missing.
    """
    if path.startswith("builtins."):
        import builtins

        return getattr(builtins, path.removeprefix("builtins."))
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError as err:
            raise ImportError(
                f"{path!r}: module {'.'.join(parts[:i])!r} has no attribute path {parts[i:]}"
            ) from err
        return obj
    raise ImportError(f"Cannot import any module of {path!r}.")


def _type_path(t: type) -> str:
    return f"{t.__module__}.{t.__qualname__}"


class StorageClass:
    """How datasets of one kind are represented in memory and in storage.

    Parameters
    ----------
    name : `str`
        Storage class name.
    pytype : `type` or `str`
        The Python type (or its dotted path, imported lazily).
    formatter : `str`, optional
        Name of the default formatter (see `s3qbb.formatters`).
    parameters : iterable of `str`, optional
        Read parameters datasets of this class accept.
    components : `~collections.abc.Mapping` [`str`, `str`], optional
        Component name to the storage class name of that component.
    converters : `~collections.abc.Mapping` [`str`, `str`], optional
        Dotted path of a source Python type to the dotted path of a function
        converting an instance of it to this class's type.
    parameter_handler : `str`, optional
        Dotted path of ``f(obj, parameters) -> obj`` applying read parameters
        to an in-memory object (used where a formatter cannot apply them while reading).

    Notes
    -----
    Storage classes pickle (and `copy.deepcopy`) by definition: the Python
    type, converters and parameter handler travel as dotted paths and are
    imported lazily on the other side, as here. A storage class whose
    definition equals one of the shipped storage classes (see
    `s3qbb.core.dataset_type.default_storage_classes`) unpickles to that
    shared instance; any other unpickles to a new, equal instance.

    Examples
    --------
    >>> from s3qbb.core.storage_class import StorageClass
    >>> sc = StorageClass("Counts", dict, formatter="json")
    >>> sc.is_type(dict), sc.validateInstance({"a": 1})
    (True, True)
    """

    __slots__ = (
        "_pytype",
        "_pytype_name",
        "components",
        "converters",
        "formatter",
        "name",
        "parameter_handler",
        "parameters",
    )

    def __init__(
        self,
        name: str,
        pytype: type | str,
        *,
        formatter: str | None = None,
        parameters: Iterable[str] = (),
        components: Mapping[str, str] | None = None,
        converters: Mapping[str, str] | None = None,
        parameter_handler: str | None = None,
    ) -> None:
        if not name or not isinstance(name, str):
            raise ConfigError(f"Storage class name must be a non-empty str, got {name!r}.")
        if isinstance(parameters, str):
            raise ConfigError(
                f"Storage class {name!r}: parameters must be a list of names, not {parameters!r}."
            )
        self.name = name
        self._pytype: type | None = pytype if isinstance(pytype, type) else None
        self._pytype_name = _type_path(pytype) if isinstance(pytype, type) else str(pytype)
        self.formatter = formatter
        self.parameters = frozenset(parameters)
        self.components: Mapping[str, str] = MappingProxyType(dict(components or {}))
        self.converters: Mapping[str, str] = MappingProxyType(dict(converters or {}))
        self.parameter_handler = parameter_handler

    @property
    def pytype_name(self) -> str:
        """Dotted path of the Python type."""
        return self._pytype_name

    @property
    def pytype(self) -> type:
        """The Python type (imported on first use).

        Raises
        ------
        StorageClassError
            If the type cannot be imported.
        """
        if self._pytype is None:
            try:
                obj = import_dotted(self._pytype_name)
            except ImportError as err:
                raise StorageClassError(
                    f"Storage class {self.name!r} names Python type {self._pytype_name!r}, which cannot be "
                    f"imported ({err}); install the package providing it."
                ) from err
            if not isinstance(obj, type):
                raise StorageClassError(f"Storage class {self.name!r}: {self._pytype_name!r} is not a type.")
            self._pytype = obj
        return self._pytype

    def is_type(self, other: type, compare_types: bool = False) -> bool:
        """Return whether ``other`` is this type (as daf_butler: by name until imported or compare_types).

        Raises
        ------
        StorageClassError
            If ``other`` is not a type (use `validateInstance` for an object).
        """
        if not isinstance(other, type):
            raise StorageClassError(
                f"StorageClass.is_type takes a type, as in daf_butler; got {_type_path(type(other))} "
                "instance. Use validateInstance(obj) to check an object."
            )
        if self._pytype is not None:
            return self._pytype is other
        if self._pytype_name == _type_path(other):
            return True
        try:
            return compare_types and self.pytype is other
        except StorageClassError:  # the type cannot be imported: not this one
            return False

    def validateInstance(self, instance: Any) -> bool:
        """Return whether ``instance`` is an instance of this storage class's type (as daf_butler)."""
        return isinstance(instance, self.pytype)

    def validate_instance(self, obj: Any, what: str = "dataset") -> None:
        """Raise unless ``obj`` is an instance of this storage class's type.

        Parameters
        ----------
        obj : `object`
            Object to check.
        what : `str`, optional
            Description of the dataset, used in the error message.

        Raises
        ------
        StorageClassError
            If ``obj`` has the wrong type.
        """
        if not self.validateInstance(obj):
            raise StorageClassError(
                f"Cannot store {what}: storage class {self.name!r} expects {self._pytype_name}, "
                f"got {_type_path(type(obj))}. Convert the object or use a dataset type with a matching "
                "storage class."
            )

    def _converter_for(self, source: type) -> Callable[[Any], Any] | None:
        for klass in source.__mro__:
            path = self.converters.get(_type_path(klass))
            if path is not None:
                try:
                    fn = import_dotted(path)
                except ImportError as err:
                    raise StorageClassError(
                        f"Converter {path!r} of storage class {self.name!r} cannot be imported ({err}); "
                        "fix the storage class definition or install the package providing it."
                    ) from err
                if not callable(fn):
                    raise StorageClassError(
                        f"Converter {path!r} of storage class {self.name!r} is not callable."
                    )
                return fn  # type: ignore[no-any-return]
        return None

    def can_convert(self, other: StorageClass) -> bool:
        """Return whether an object of storage class ``other`` can be returned as this class.

        Parameters
        ----------
        other : `StorageClass`
            The storage class the dataset was stored with.

        Returns
        -------
        ok : `bool`
            `True` if the types match, ``other``'s type is a subclass, or a converter exists.
        """
        if other.name == self.name or other.pytype_name == self.pytype_name:
            return True
        try:
            source = other.pytype
            target = self.pytype
        except StorageClassError:
            return False
        return issubclass(source, target) or self._converter_for(source) is not None

    def coerce_type(self, obj: Any) -> Any:
        """Return ``obj`` as an instance of this storage class's type (`None` stays `None`, as daf_butler).

        Raises
        ------
        StorageClassError
            If no conversion from the object's type exists.
        """
        if obj is None or self.validateInstance(obj):
            return obj
        fn = self._converter_for(type(obj))
        if fn is None:
            raise StorageClassError(
                f"Cannot convert {_type_path(type(obj))} to storage class {self.name!r} "
                f"({self._pytype_name}): no converter is declared; "
                f"known converters: {sorted(self.converters)}."
            )
        try:
            return fn(obj)
        except Exception as err:
            raise StorageClassError(
                f"Converting {_type_path(type(obj))} to storage class {self.name!r} failed: {err}"
            ) from err

    def validate_parameters(self, parameters: Mapping[str, Any] | None, what: str = "dataset") -> None:
        """Raise unless every parameter name is declared by this storage class.

        Raises
        ------
        InvalidParameterError
            If a parameter is not declared.
        """
        if not parameters:
            return
        unknown = set(parameters) - self.parameters
        if unknown:
            raise InvalidParameterError(
                f"Read parameter(s) {sorted(unknown)} for {what} are not supported by storage class "
                f"{self.name!r}; it accepts {sorted(self.parameters) or 'none'}."
            )

    def apply_parameters(self, obj: Any, parameters: Mapping[str, Any] | None) -> Any:
        """Apply read parameters to an in-memory object.

        Returns
        -------
        obj : `object`
            The object, or a subset of it.
        """
        if not parameters:
            return obj
        self.validate_parameters(parameters)
        if self.parameter_handler is None:
            raise InvalidParameterError(
                f"Storage class {self.name!r} declares parameters but no parameter handler "
                "to apply them in memory."
            )
        return import_dotted(self.parameter_handler)(obj, parameters)

    def get_component(self, obj: Any, component: str) -> Any:
        """Extract a component from a composite object.

        Raises
        ------
        StorageClassError
            If the storage class has no such component or the object lacks it.
        """
        if component not in self.components:
            raise StorageClassError(
                f"Storage class {self.name!r} has no component {component!r}; "
                f"it has {sorted(self.components) or 'none'}."
            )
        try:
            if isinstance(obj, Mapping):
                return obj[component]
            return getattr(obj, component)
        except (KeyError, AttributeError) as err:
            raise StorageClassError(
                f"Object of storage class {self.name!r} has no value for component {component!r}."
            ) from err

    def to_config(self) -> dict[str, Any]:
        """Return a config mapping that recreates this storage class."""
        out: dict[str, Any] = {"pytype": self._pytype_name}
        if self.formatter:
            out["formatter"] = self.formatter
        if self.parameters:
            out["parameters"] = sorted(self.parameters)
        if self.components:
            out["components"] = dict(self.components)
        if self.converters:
            out["converters"] = dict(self.converters)
        if self.parameter_handler:
            out["parameter_handler"] = self.parameter_handler
        return out

    def _key(self) -> tuple[Any, ...]:
        return (
            self.name,
            self._pytype_name,
            self.formatter,
            self.parameters,
            tuple(sorted(self.components.items())),
            tuple(sorted(self.converters.items())),
            self.parameter_handler,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StorageClass):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self.name)

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _unpickle_storage_class,
            (
                self.name,
                self._pytype_name,
                self.formatter,
                tuple(sorted(self.parameters)),
                dict(self.components),
                dict(self.converters),
                self.parameter_handler,
            ),
        )

    def __repr__(self) -> str:
        return f"StorageClass({self.name!r}, {self._pytype_name})"


def _unpickle_storage_class(
    name: str,
    pytype: str,
    formatter: str | None,
    parameters: tuple[str, ...],
    components: dict[str, str],
    converters: dict[str, str],
    parameter_handler: str | None,
) -> StorageClass:
    """Rebuild a pickled `StorageClass`, as the shared shipped instance if it is one."""
    sc = StorageClass(
        name,
        pytype,
        formatter=formatter,
        parameters=parameters,
        components=components,
        converters=converters,
        parameter_handler=parameter_handler,
    )
    from .dataset_type import default_storage_classes

    shipped = default_storage_classes()
    if name in shipped:
        existing = shipped.getStorageClass(name)
        if existing == sc:
            return existing
    return sc


def _rows_handler(obj: Any, parameters: Mapping[str, Any]) -> Any:
    rows = parameters.get("rows")
    if rows is None:
        return obj
    from .rows import normalize_rows

    return obj[normalize_rows(rows)]


def _columns_handler(obj: Any, parameters: Mapping[str, Any]) -> Any:
    columns = parameters.get("columns")
    if columns is None:
        return obj
    missing = [c for c in columns if c not in obj.column_names]
    if missing:
        raise InvalidParameterError(f"Unknown column(s) {missing}; the table has {obj.column_names}.")
    return obj.select(list(columns))


def _ndarray_to_list(obj: Any) -> list[Any]:
    return list(obj.tolist())


_BUILTIN: dict[str, dict[str, Any]] = {
    "StructuredDataDict": {"pytype": "builtins.dict", "formatter": "json"},
    "StructuredDataList": {
        "pytype": "builtins.list",
        "formatter": "json",
        "converters": {"builtins.tuple": "builtins.list", "numpy.ndarray": f"{__name__}._ndarray_to_list"},
    },
    "StructuredDataDictYaml": {"pytype": "builtins.dict", "formatter": "yaml"},
    "StructuredComposite": {
        "pytype": "builtins.dict",
        "formatter": "json",
        "components": {
            "summary": "StructuredDataDict",
            "output": "StructuredDataDict",
            "data": "StructuredDataList",
        },
    },
    "Bytes": {"pytype": "builtins.bytes", "formatter": "bytes"},
    "PydanticModel": {"pytype": "pydantic.BaseModel", "formatter": "json"},
    "NumpyArray": {
        "pytype": "numpy.ndarray",
        "formatter": "npy",
        "parameters": ["rows"],
        "converters": {"builtins.list": "numpy.asarray", "builtins.tuple": "numpy.asarray"},
        "parameter_handler": f"{__name__}._rows_handler",
    },
    "ArrowTable": {
        "pytype": "pyarrow.Table",
        "formatter": "parquet",
        "parameters": ["columns"],
        "converters": {"builtins.dict": "pyarrow.Table.from_pydict"},
        "parameter_handler": f"{__name__}._columns_handler",
    },
    "Pickle": {"pytype": "builtins.object", "formatter": "pickle"},
}


class StorageClassFactory:
    """A registry of storage classes, by name.

    Instances are independent: there is no module-global registry. Use
    `default` for one pre-loaded with the shipped storage classes. A factory
    pickles (and `copy.deepcopy` copies) as a new, independent factory holding
    equal storage classes.

    Examples
    --------
    >>> from s3qbb.core.storage_class import StorageClassFactory
    >>> factory = StorageClassFactory.default()
    >>> factory.getStorageClass("NumpyArray").parameters
    frozenset({'rows'})
    """

    def __init__(self) -> None:
        self._classes: dict[str, StorageClass] = {}
        self._lock = threading.Lock()

    @classmethod
    def default(cls) -> StorageClassFactory:
        """Return a new factory holding the shipped storage classes."""
        factory = cls()
        factory.addFromConfig(_BUILTIN)
        return factory

    def addFromConfig(self, config: Mapping[str, Mapping[str, Any]]) -> None:
        """Define storage classes from configuration.

        Parameters
        ----------
        config : `~collections.abc.Mapping`
            Storage class name to ``{"pytype": ..., "formatter": ..., "parameters": [...],
            "components": {...}, "converters": {...}, "parameter_handler": ...}``.

        Raises
        ------
        ConfigError
            If an entry is malformed or conflicts with an existing definition.
        """
        allowed = {"pytype", "formatter", "parameters", "components", "converters", "parameter_handler"}
        for name, spec in config.items():
            if not isinstance(spec, Mapping) or "pytype" not in spec:
                raise ConfigError(f"Storage class {name!r} config must be a mapping with a 'pytype' entry.")
            extra = set(spec) - allowed
            if extra:
                raise ConfigError(f"Storage class {name!r} config has unknown keys {sorted(extra)}.")
            self.registerStorageClass(
                StorageClass(
                    name,
                    spec["pytype"],
                    formatter=spec.get("formatter"),
                    parameters=spec.get("parameters", ()),
                    components=spec.get("components"),
                    converters=spec.get("converters"),
                    parameter_handler=spec.get("parameter_handler"),
                )
            )

    def registerStorageClass(self, storageClass: StorageClass) -> None:
        """Add a storage class; redefining a name identically is allowed.

        Raises
        ------
        ConfigError
            If a different storage class of the same name is registered.
        """
        with self._lock:
            existing = self._classes.get(storageClass.name)
            if existing is not None and existing != storageClass:
                raise ConfigError(
                    f"Storage class {storageClass.name!r} is already defined differently "
                    f"({existing.to_config()} vs {storageClass.to_config()})."
                )
            self._classes[storageClass.name] = storageClass

    def getStorageClass(self, name: str) -> StorageClass:
        """Return the storage class of that name.

        Raises
        ------
        UnknownStorageClassError
            If no storage class has that name.
        """
        try:
            return self._classes[name]
        except KeyError:
            raise UnknownStorageClassError(
                f"Unknown storage class {name!r}; known: {sorted(self._classes)}. "
                "Define it under 'storageClasses' in the repository config."
            ) from None

    def resolve(self, storageClass: StorageClass | str) -> StorageClass:
        """Return a storage class given itself or its name."""
        if isinstance(storageClass, StorageClass):
            return storageClass
        if isinstance(storageClass, str):
            return self.getStorageClass(storageClass)
        raise StorageClassError(f"Expected a StorageClass or its name, got {type(storageClass).__name__}.")

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def __reduce__(self) -> tuple[Any, ...]:
        with self._lock:
            classes = tuple(self._classes.values())
        return (_unpickle_factory, (classes,))

    def names(self) -> frozenset[str]:
        """Return the names of every registered storage class."""
        return frozenset(self._classes)


def _unpickle_factory(classes: tuple[StorageClass, ...]) -> StorageClassFactory:
    """Rebuild a pickled `StorageClassFactory` (its lock is not pickled)."""
    factory = StorageClassFactory()
    for storage_class in classes:
        factory.registerStorageClass(storage_class)
    return factory
