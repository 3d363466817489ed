"""Dimensions and data IDs.

A `DimensionUniverse` is defined by configuration: each dimension has a value
type, the dimensions it *requires* (part of its primary key) and the ones it
*implies* (determined by it). A `DimensionGroup` is a closed set of dimensions
of one universe; a `DataCoordinate` gives values to a group's dimensions.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_UNIVERSE_CONFIG",
    "DataCoordinate",
    "DataIdValue",
    "Dimension",
    "DimensionGroup",
    "DimensionUniverse",
]

import json
import numbers
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

from ..errors import ConfigError, DataIdError, DimensionNameError
from .text import INT64_MAX, INT64_MIN, MAX_DATA_ID_CHARS, MAX_VALUE_CHARS, storable_text_problem

DataIdValue = str | int
"""Type of a data ID value."""

_NAME_RE = re.compile(r"[a-z_][a-z0-9_]*")

DEFAULT_UNIVERSE_CONFIG: Mapping[str, Any] = MappingProxyType(
    {
        "namespace": "s3qbb",
        "version": 1,
        "dimensions": {
            "instrument": {"type": "str"},
            "band": {"type": "str"},
            "physical_filter": {"type": "str", "requires": ["instrument"], "implies": ["band"]},
            "day_obs": {"type": "int", "requires": ["instrument"]},
            "detector": {"type": "int", "requires": ["instrument"]},
            "exposure": {
                "type": "int",
                "requires": ["instrument"],
                "implies": ["physical_filter", "day_obs"],
            },
            "visit": {"type": "int", "requires": ["instrument"], "implies": ["physical_filter", "day_obs"]},
            "skymap": {"type": "str"},
            "tract": {"type": "int", "requires": ["skymap"]},
            "patch": {"type": "int", "requires": ["skymap", "tract"]},
        },
    }
)
"""The shipped default universe: instruments, observations and sky maps."""

_TYPES: Mapping[str, type] = {"str": str, "int": int}


@dataclass(frozen=True, slots=True)
class Dimension:
    """One dimension of a universe.

    Parameters
    ----------
    name : `str`
        Dimension name (lower case, digits and underscores).
    value_type : `type`
        `str` or `int`.
    requires : `tuple` [`str`, ...]
        Dimensions that are part of this dimension's primary key.
    implies : `tuple` [`str`, ...]
        Dimensions whose values this dimension determines.
    """

    name: str
    value_type: type
    requires: tuple[str, ...] = ()
    implies: tuple[str, ...] = ()


class DimensionUniverse:
    """All dimensions known to a repository, defined by configuration.

    Parameters
    ----------
    config : `~collections.abc.Mapping`, optional
        ``{"namespace": str, "version": int, "dimensions": {name: {"type":
        "str"|"int", "requires": [...], "implies": [...]}}}``. Defaults to
        `DEFAULT_UNIVERSE_CONFIG`.

    Raises
    ------
    ConfigError
        If the configuration is malformed, names an unknown dimension, or has a cycle.

    Examples
    --------
    >>> from s3qbb.core.dimensions import DimensionUniverse
    >>> universe = DimensionUniverse()
    >>> sorted(universe.conform(["visit"]).required)
    ['instrument', 'visit']
    """

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        config = DEFAULT_UNIVERSE_CONFIG if config is None else config
        try:
            self.namespace = str(config.get("namespace", "s3qbb"))
            self.version = int(config.get("version", 0))
            raw = config["dimensions"]
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ConfigError(
                f"Dimension universe config is malformed ({err!r}); it needs a 'dimensions' mapping."
            ) from err
        if not isinstance(raw, Mapping):
            raise ConfigError(
                f"Dimension universe 'dimensions' must be a mapping of name to spec, got {raw!r}."
            )
        dims: dict[str, Dimension] = {}
        for name, spec in raw.items():
            if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
                raise ConfigError(
                    f"Dimension name {name!r} is invalid: use lower case letters, digits and '_'."
                )
            spec = spec or {}
            if not isinstance(spec, Mapping):
                raise ConfigError(f"Dimension {name!r} spec must be a mapping, got {spec!r}.")
            extra = set(spec) - {"type", "requires", "implies"}
            if extra:
                raise ConfigError(f"Dimension {name!r} spec has unknown keys {sorted(extra)}.")
            for key in ("requires", "implies"):
                if isinstance(spec.get(key, ()), str):
                    raise ConfigError(f"Dimension {name!r}: {key!r} must be a list of names, not a str.")
            type_name = spec.get("type", "str")
            if type_name not in _TYPES:
                raise ConfigError(f"Dimension {name!r} has type {type_name!r}; expected 'str' or 'int'.")
            dims[name] = Dimension(
                name, _TYPES[type_name], tuple(spec.get("requires", ())), tuple(spec.get("implies", ()))
            )
        for dim in dims.values():
            for other in (*dim.requires, *dim.implies):
                if other not in dims:
                    raise ConfigError(f"Dimension {dim.name!r} refers to unknown dimension {other!r}.")
            both = set(dim.requires) & set(dim.implies)
            if both or dim.name in (*dim.requires, *dim.implies):
                raise ConfigError(
                    f"Dimension {dim.name!r} cannot require and imply the same dimension, nor itself "
                    f"(a cycle through {sorted(both) or dim.name})."
                )
        self._dimensions = dims
        self._order = self._topological_order()
        self._groups: dict[frozenset[str], DimensionGroup] = {}
        self.empty = self.conform(())

    def _topological_order(self) -> dict[str, int]:
        order: dict[str, int] = {}
        visiting: set[str] = set()

        def visit(name: str) -> None:
            if name in order:
                return
            if name in visiting:
                raise ConfigError(f"Dimension universe has a cycle through {name!r}.")
            visiting.add(name)
            for dep in (*self._dimensions[name].requires, *self._dimensions[name].implies):
                visit(dep)
            visiting.discard(name)
            order[name] = len(order)

        for name in self._dimensions:
            visit(name)
        return order

    @classmethod
    def default(cls) -> DimensionUniverse:
        """Return the shipped default universe (a new instance each call).

        Returns
        -------
        universe : `DimensionUniverse`
            The universe of `DEFAULT_UNIVERSE_CONFIG`.
        """
        return cls()

    def __getitem__(self, name: str) -> Dimension:
        try:
            return self._dimensions[name]
        except KeyError:
            raise DimensionNameError(
                f"Unknown dimension {name!r}; this universe knows {sorted(self._dimensions)}."
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._dimensions

    @property
    def names(self) -> frozenset[str]:
        """Names of every dimension of the universe."""
        return frozenset(self._dimensions)

    def sorted(self, names: Iterable[str]) -> tuple[str, ...]:
        """Return names in the universe's dependency order (required dimensions first)."""
        return tuple(sorted(names, key=lambda n: (self._order[n], n)))

    def conform(self, names: Iterable[str]) -> DimensionGroup:
        """Return the group of the given dimensions and everything they require or imply.

        Parameters
        ----------
        names : iterable of `str`
            Dimension names.

        Returns
        -------
        group : `DimensionGroup`
            The closed group.

        Raises
        ------
        DataIdError
            If a name is not a dimension of this universe.
        """
        if isinstance(names, str):
            names = (names,)
        start = frozenset(names)
        cached = self._groups.get(start)
        if cached is not None:
            return cached
        closure: set[str] = set()
        stack = list(start)
        while stack:
            name = stack.pop()
            if name in closure:
                continue
            dim = self[name]
            closure.add(name)
            stack.extend(dim.requires)
            stack.extend(dim.implies)
        implied = {i for n in closure for i in self._dimensions[n].implies}
        group = DimensionGroup(
            self, self.sorted(closure), self.sorted(closure - implied), self.sorted(implied)
        )
        self._groups[start] = group
        return group

    def to_config(self) -> dict[str, Any]:
        """Return the configuration that recreates this universe."""
        inverse = {v: k for k, v in _TYPES.items()}
        return {
            "namespace": self.namespace,
            "version": self.version,
            "dimensions": {
                d.name: {
                    "type": inverse[d.value_type],
                    **({"requires": list(d.requires)} if d.requires else {}),
                    **({"implies": list(d.implies)} if d.implies else {}),
                }
                for d in self._dimensions.values()
            },
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DimensionUniverse):
            return NotImplemented
        return (self.namespace, self.version, self._dimensions) == (
            other.namespace,
            other.version,
            other._dimensions,
        )

    def __hash__(self) -> int:
        return hash((self.namespace, self.version))

    def __reduce__(self) -> tuple[type[DimensionUniverse], tuple[dict[str, Any]]]:
        # Rebuilt from its configuration: the cache of groups is not pickled.
        return (DimensionUniverse, (self.to_config(),))

    def __repr__(self) -> str:
        return f"DimensionUniverse(namespace={self.namespace!r}, version={self.version})"


class DimensionGroup:
    """A closed, immutable set of dimensions of one universe.

    Obtain instances from `DimensionUniverse.conform`.

    Parameters
    ----------
    universe : `DimensionUniverse`
        The universe the dimensions belong to.
    names : `tuple` [`str`, ...]
        All dimensions, in universe order.
    required : `tuple` [`str`, ...]
        Dimensions not implied by another dimension of the group.
    implied : `tuple` [`str`, ...]
        Dimensions implied by another dimension of the group.
    """

    __slots__ = ("_hash", "implied", "names", "required", "universe")

    def __init__(
        self,
        universe: DimensionUniverse,
        names: tuple[str, ...],
        required: tuple[str, ...],
        implied: tuple[str, ...],
    ) -> None:
        self.universe = universe
        self.names = names
        self.required = required
        self.implied = implied
        self._hash = hash(frozenset(names))

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DimensionGroup):
            return self.names == other.names
        return NotImplemented

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt by the universe: the hash is recomputed in the unpickling process.
        return (_unpickle_dimension_group, (self.universe, self.names))

    def issubset(self, other: DimensionGroup) -> bool:
        """Return whether every dimension of this group is in ``other``."""
        return set(self.names) <= set(other.names)

    def __repr__(self) -> str:
        return "{" + ", ".join(self.names) + "}"


class DataCoordinate(Mapping[str, DataIdValue]):
    """A validated, immutable, hashable data ID.

    Equality and hashing use the dimension group and the *required* values
    only; implied values are carried along when known.

    Use `standardize` (or `makeEmpty`) rather than the constructor.

    Parameters
    ----------
    dimensions : `DimensionGroup`
        The dimensions this data ID identifies.
    values : `~collections.abc.Mapping`
        Validated values for every required and any implied dimension.
    """

    __slots__ = ("_hash", "_required", "_values", "dimensions")

    _MAX_STR_LEN: ClassVar[int] = MAX_VALUE_CHARS

    def __init__(self, dimensions: DimensionGroup, values: Mapping[str, DataIdValue]) -> None:
        self.dimensions = dimensions
        self._values = dict(values)
        self._required = tuple(self._values[n] for n in dimensions.required)
        self._hash = hash((dimensions, self._required))

    @classmethod
    def standardize(
        cls,
        mapping: Mapping[str, Any] | None = None,
        *,
        universe: DimensionUniverse | None = None,
        dimensions: DimensionGroup | Iterable[str] | None = None,
        defaults: DataCoordinate | None = None,
        **kwargs: Any,
    ) -> DataCoordinate:
        """Validate a mapping and return a data ID.

        Parameters
        ----------
        mapping : `~collections.abc.Mapping`, optional
            Dimension values (a `DataCoordinate` is accepted too).
        universe : `DimensionUniverse`, optional
            Universe of the dimensions; taken from ``dimensions`` or ``mapping`` if not given.
        dimensions : `DimensionGroup` or iterable of `str`, optional
            Dimensions the result identifies. Values of other known dimensions
            are dropped. Defaults to the dimensions of the given keys.
        defaults : `DataCoordinate`, optional
            Values used for dimensions of the result that ``mapping`` and
            ``kwargs`` lack. As in daf_butler, never used to infer the dimensions.
        **kwargs
            More values, overriding ``mapping``.

        Returns
        -------
        dataId : `DataCoordinate`
            The validated data ID.

        Raises
        ------
        DataIdError
            If a required dimension is missing, a name is unknown, or a value has the wrong type.
        """
        values: dict[str, Any] = dict(mapping) if mapping is not None else {}
        values.update(kwargs)
        if isinstance(dimensions, DimensionGroup):
            universe = dimensions.universe
        elif universe is None and isinstance(mapping, DataCoordinate):
            universe = mapping.dimensions.universe
        elif universe is None and defaults is not None:
            universe = defaults.universe
        if universe is None:
            raise DataIdError("DataCoordinate.standardize needs a universe (or a DimensionGroup).")
        unknown = [k for k in values if k not in universe]
        if unknown:
            raise DimensionNameError(
                f"Data ID {values!r} names unknown dimension(s) {sorted(map(str, unknown))}; "
                f"known dimensions are {sorted(universe.names)}."
            )
        group = (
            dimensions
            if isinstance(dimensions, DimensionGroup)
            else universe.conform(values if dimensions is None else dimensions)
        )
        if dimensions is None:
            # Implied-only keys must not pull their own requirements in as required values.
            group = universe.conform([k for k in values if k not in _implied_by_others(universe, values)])
        if defaults is not None:
            _fill_defaults(values, group, defaults)
        missing = [n for n in group.required if n not in values]
        if missing:
            raise DimensionNameError(
                f"Data ID {values!r} lacks required dimension(s) {missing} for dimensions {group}."
            )
        clean: dict[str, DataIdValue] = {}
        for name in group.names:
            if name in values:
                clean[name] = cls._check_value(universe[name], values[name])
        size = len(json.dumps(clean, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
        if size > MAX_DATA_ID_CHARS:
            raise DataIdError(
                f"Data ID {clean!r:.300} takes {size} characters as JSON, over the {MAX_DATA_ID_CHARS} "
                "a registry stores; use shorter values."
            )
        return cls(group, clean)

    @classmethod
    def _check_value(cls, dim: Dimension, value: Any) -> DataIdValue:
        if dim.value_type is int:
            # Any integral number but bool (numpy.int64 too) becomes an int, as in daf_butler.
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise DataIdError(
                    f"Dimension {dim.name!r} takes an int; got {type(value).__name__} {value!r:.200}."
                )
            number = int(value)
            if not INT64_MIN <= number <= INT64_MAX:
                raise DataIdError(
                    f"Dimension {dim.name!r} takes a signed 64-bit int (what the registry stores); "
                    f"got {number:.3e}."
                )
            return number
        if not isinstance(value, str):
            raise DataIdError(
                f"Dimension {dim.name!r} takes a str; got {type(value).__name__} {value!r:.200}."
            )
        if not value or len(value) > cls._MAX_STR_LEN:
            raise DataIdError(
                f"Dimension {dim.name!r} takes a non-empty str of at most {cls._MAX_STR_LEN} characters; "
                f"got one of length {len(value)}."
            )
        problem = storable_text_problem(value)
        if problem is not None:
            raise DataIdError(f"Dimension {dim.name!r} value {value!r:.200} has {problem}.")
        return str.__str__(value)

    @classmethod
    def makeEmpty(cls, universe: DimensionUniverse) -> DataCoordinate:
        """Return the data ID with no dimensions."""
        return cls(universe.empty, {})

    @property
    def universe(self) -> DimensionUniverse:
        """The universe of the dimensions."""
        return self.dimensions.universe

    @property
    def required(self) -> Mapping[str, DataIdValue]:
        """Values of the required dimensions."""
        return MappingProxyType(dict(zip(self.dimensions.required, self._required, strict=True)))

    @property
    def mapping(self) -> Mapping[str, DataIdValue]:
        """All known values: required and implied."""
        return MappingProxyType(self._values)

    def hasFull(self) -> bool:
        """Return whether values for implied dimensions are all known."""
        return all(n in self._values for n in self.dimensions.implied)

    def subset(self, dimensions: DimensionGroup | Iterable[str]) -> DataCoordinate:
        """Return the data ID of a subset of the dimensions.

        Raises
        ------
        DataIdError
            If a required value of the subset is not known here.
        """
        return DataCoordinate.standardize(self._values, dimensions=dimensions, universe=self.universe)

    def __getitem__(self, key: str) -> DataIdValue:
        try:
            return self._values[key]
        except KeyError:
            raise KeyError(f"Data ID {self} has no value for dimension {key!r}.") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        # As daf_butler: a plain mapping is standardized first (an invalid one is just unequal).
        if not isinstance(other, DataCoordinate):
            if not isinstance(other, Mapping):
                return NotImplemented
            try:
                other = DataCoordinate.standardize(other, universe=self.universe)
            except DataIdError:
                return False
        return self.dimensions == other.dimensions and self._required == other._required

    def __lt__(self, other: object) -> bool:
        # As daf_butler: by required values only, so that < and == are never both true.
        if not isinstance(other, DataCoordinate):
            return NotImplemented
        return self._required < other._required

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self) -> tuple[type[DataCoordinate], tuple[DimensionGroup, dict[str, DataIdValue]]]:
        # Rebuilt through the constructor: the hash is recomputed in the unpickling process.
        return (DataCoordinate, (self.dimensions, self._values))

    def __setattr__(self, name: str, value: Any) -> None:
        if hasattr(self, "_hash"):
            raise AttributeError("DataCoordinate is immutable.")
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        raise AttributeError("DataCoordinate is immutable.")

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{k}: {v!r}" for k, v in self.required.items()) + "}"

    def to_simple(self) -> dict[str, DataIdValue]:
        """Return the values as a plain dict (required and implied)."""
        return dict(self._values)


def _fill_defaults(values: dict[str, Any], group: DimensionGroup, defaults: DataCoordinate) -> None:
    """Fill missing required values of ``group`` from ``defaults``, and implied ones if they still hold."""
    known = defaults.mapping
    for name in group.required:
        if name in known:
            values.setdefault(name, known[name])
    # Implied values of the defaults hold only if every required value is the defaults' own.
    if all(n in known and values.get(n) == known[n] for n in group.required):
        for name in group.implied:
            if name in known:
                values.setdefault(name, known[name])


def _implied_by_others(universe: DimensionUniverse, names: Iterable[str]) -> set[str]:
    keys = set(names)
    return {i for k in keys for i in universe[k].implies if i in keys}


def _unpickle_dimension_group(universe: DimensionUniverse, names: tuple[str, ...]) -> DimensionGroup:
    """Return the group of ``names`` of a pickled `DimensionGroup`, from the universe's cache."""
    return universe.conform(names)
