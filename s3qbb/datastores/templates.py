"""File templates: map a dataset to a storage path relative to a datastore root.

A template is a ``/``-separated string of literals and fields, for example
``{run}/{datasetType}.{component:?}/{visit:?}/{datasetType}_{detector}_{id}``.
Fields are ``{run}``, ``{datasetType}``, ``{component}``, ``{id}``,
``{id_hash}`` and any dimension name; a ``:?`` suffix makes a field optional.
``{id_hash:N}`` renders the first ``N`` (1 to 32, default 2) hex digits of the
SHA-256 of the dataset ID: put after ``{run}/``, it spreads a run's keys
evenly over ``16**N`` prefixes.  A missing optional
field is dropped together with the separator characters (``_``, ``.``, ``-``)
written just before it in the same path segment (or just after it, when it
starts the segment); a segment left with nothing but separators is dropped.

Every value is passed through :func:`sanitize_segment` (or :func:`sanitize_run`
for the run), so that whatever a data ID contains (``..``, ``/``, ``%2F``, NUL,
control characters, arbitrary unicode) it renders to exactly one harmless path
segment.  Templates must start with ``{run}/``, which keeps every run's
artifacts under its own prefix.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_TEMPLATE",
    "ID_HASH_DEFAULT_WIDTH",
    "ID_HASH_FIELD",
    "MAX_PATH_LENGTH",
    "FileTemplate",
    "FileTemplates",
    "TemplateFields",
    "sanitize_run",
    "sanitize_segment",
]

import hashlib
import re
import string
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..core.text import RECORDS_DIR
from ..errors import ConfigError, DataIdError, DatasetTypeError
from .sanitize import _short, sanitize_run, sanitize_segment

RESERVED_SEGMENT = RECORDS_DIR
"""Folder below a run reserved for per-quantum records files; a rendered segment equal to it is escaped."""

DEFAULT_TEMPLATE = (
    "{run}/{datasetType}.{component:?}/{band:?}/{day_obs:?}/{visit:?}/{exposure:?}/{tract:?}/{patch:?}/"
    "{datasetType}_{component:?}_{detector:?}_{id}"
)
"""Template used when nothing more specific is configured.

A typical ``calexp`` renders to ``<run>/calexp/r/20240101/903334/calexp_16_<uuid>``.
It ends with the dataset ID, so it is unique for every dataset.
"""

MAX_PATH_LENGTH = 900
"""Longest rendered path accepted, in bytes (S3 allows 1024 and a root prefix precedes it)."""

_SEPARATORS = "_.-"
_UNSAFE_PIECES = frozenset({"", ".", ".."})
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LOOKUP_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")
_FIELD_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::(\?|[0-9]+))?")
_TEMPLATE_CHARS = frozenset(string.ascii_letters + string.digits + "_.=+-{}/:?")
_ALWAYS_PRESENT = frozenset({"run", "datasetType", "id", "id_hash"})
ID_HASH_FIELD = "id_hash"
"""Field rendering hex digits of a hash of the dataset ID: ``{id_hash}`` or ``{id_hash:N}``."""
ID_HASH_DEFAULT_WIDTH = 2
"""Hex digits rendered by ``{id_hash}`` without a width (256 prefixes)."""
_ID_HASH_MAX_WIDTH = 32


# --- what a dataset contributes ---------------------------------------------


@dataclass(frozen=True, slots=True)
class TemplateFields:
    """The values a dataset contributes to its storage path.

    Parameters
    ----------
    run : `str`
        Run the dataset belongs to.
    dataset_type : `str`
        Name of the parent dataset type (without component).
    component : `str` or `None`
        Component name, or `None` for the parent dataset.
    dataset_id : `uuid.UUID`
        Dataset ID.
    data_id : `~collections.abc.Mapping` [`str`, `str` | `int`]
        Dimension name to value, required and implied dimensions alike.
    required_dimensions : `frozenset` [`str`]
        Required dimensions of the dataset type.

    Raises
    ------
    DatasetTypeError
        If ``dataset_type`` is not a valid name or ``dataset_id`` is not a UUID.
    """

    run: str
    dataset_type: str
    component: str | None
    dataset_id: uuid.UUID
    data_id: Mapping[str, str | int]
    required_dimensions: frozenset[str]

    def __post_init__(self) -> None:
        if not isinstance(self.dataset_type, str) or not _NAME_RE.fullmatch(self.dataset_type):
            raise DatasetTypeError(
                f"Dataset type name {self.dataset_type!r} is invalid; it must match "
                "[A-Za-z_][A-Za-z0-9_]* (pass components separately)."
            )
        if not isinstance(self.dataset_id, uuid.UUID):
            raise DatasetTypeError(
                f"Dataset {self.dataset_type!r} has dataset_id {self.dataset_id!r}; expected a uuid.UUID."
            )

    def describe(self) -> str:
        """Return a short human-readable description for error messages."""
        name = self.dataset_type if self.component is None else f"{self.dataset_type}.{self.component}"
        data_id = _short.repr(dict(self.data_id))
        return f"dataset {_short.repr(name)} {data_id} (id={self.dataset_id}, run={_short.repr(self.run)})"


# --- one template ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    optional: bool
    width: int | None = None


_Part = str | _Field
_Plan = tuple[tuple[_Part, ...], ...]


def _droppable(segment: tuple[_Part, ...]) -> bool:
    """Return whether a segment can vanish when its optional fields are missing."""
    for part in segment:
        if isinstance(part, _Field):
            if not part.optional:
                return False
        elif part.strip(_SEPARATORS):
            return False
    return True


class FileTemplate:
    """A parsed, validated file template.

    Parameters
    ----------
    template : `str`
        Template text such as ``{run}/{datasetType}/{visit}_{detector}_{id}``.

    Raises
    ------
    ConfigError
        If the template is malformed; the message gives the position.
    """

    __slots__ = ("_fields", "_optional", "_plans", "_segments", "_template")

    def __init__(self, template: str) -> None:
        if not isinstance(template, str):
            raise ConfigError(f"File templates must be str, not {type(template).__name__}.")
        self._template = template
        self._segments = self._parse(template)
        self._fields = frozenset(part.name for part in self._all_fields()) | {"run"}
        # Fields that may be missing (what a data ID lacks drops them).
        self._optional = self._fields - _ALWAYS_PRESENT
        # The layout of a path depends only on which fields are present, so it is worked out once per
        # (component given, data ID keys): a format string and its fields, or a missing field's name.
        self._plans: dict[tuple[bool, tuple[str, ...]], tuple[str, tuple[_Field, ...]] | str] = {}

    @property
    def template(self) -> str:
        """The template text (`str`)."""
        return self._template

    @property
    def fields(self) -> frozenset[str]:
        """Names of all fields used, optional or not (`frozenset` [`str`])."""
        return self._fields

    def __repr__(self) -> str:
        return f"FileTemplate({self._template!r})"

    def __str__(self) -> str:
        return self._template

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FileTemplate):
            return NotImplemented
        return self._template == other._template

    def __hash__(self) -> int:
        return hash(self._template)

    def _all_fields(self) -> list[_Field]:
        return [part for segment in self._segments for part in segment if isinstance(part, _Field)]

    # -- parsing --

    def _error(self, problem: str, position: int, hint: str = "") -> ConfigError:
        message = f"Invalid file template {self._template!r}: {problem} at position {position}."
        return ConfigError(f"{message} {hint}".rstrip())

    def _parse(self, template: str) -> tuple[tuple[_Part, ...], ...]:
        """Parse the template into segments after the leading ``{run}``."""
        for position, char in enumerate(template):
            if char not in _TEMPLATE_CHARS:
                raise self._error(
                    f"character {char!r} is not allowed",
                    position,
                    "Literals may use only [A-Za-z0-9_.=+-], '/' between segments and {field} or {field:?}.",
                )
        if template.startswith("/"):
            raise self._error("leading '/'", 0, "Paths are relative to the datastore root.")
        if not template.startswith("{run}/"):
            raise self._error(
                "it does not start with '{run}/'",
                0,
                "Every template starts with '{run}/' so each run's artifacts stay under its own prefix.",
            )
        segments: list[tuple[_Part, ...]] = []
        parts: list[_Part] = []
        literal: list[str] = []
        last_start = start = len("{run}/")
        i = start
        while i <= len(template):
            char = template[i] if i < len(template) else "/"
            if char == "/":
                if literal:
                    parts.append("".join(literal))
                    literal = []
                self._check_segment(parts, start, i)
                segments.append(tuple(parts))
                parts = []
                last_start, start = start, i + 1
            elif char == "{":
                end = template.find("}", i)
                if end == -1:
                    raise self._error("'{' is never closed", i)
                content = template[i + 1 : end]
                match = _FIELD_RE.fullmatch(content)
                if match is None:
                    raise self._error(
                        f"field {{{content}}} is malformed",
                        i,
                        "Write {name} or {name:?} with a valid name, or {id_hash:N}.",
                    )
                name, suffix = match.group(1), match.group(2)
                optional = suffix == "?"
                width = int(suffix) if suffix is not None and not optional else None
                if width is not None and name != ID_HASH_FIELD:
                    raise self._error(
                        f"field {{{content}}} has a width",
                        i,
                        f"Only {{{ID_HASH_FIELD}:N}} takes one; write {{{name}}} or {{{name}:?}}.",
                    )
                if width is not None and not 1 <= width <= _ID_HASH_MAX_WIDTH:
                    raise self._error(
                        f"field {{{content}}} has width {width}",
                        i,
                        f"The width of {{{ID_HASH_FIELD}:N}} is 1 to {_ID_HASH_MAX_WIDTH} hex digits.",
                    )
                if name == "run":
                    raise self._error("'{run}' appears again", i, "It may appear only once, at the start.")
                if optional and name in _ALWAYS_PRESENT:
                    raise self._error(
                        f"'{{{name}}}' is always present and cannot be optional", i, f"Write '{{{name}}}'."
                    )
                if literal:
                    parts.append("".join(literal))
                    literal = []
                parts.append(_Field(name, optional, width))
                i = end
            elif char == "}":
                raise self._error("'}' has no matching '{'", i)
            elif char in ":?":
                raise self._error(f"{char!r} outside a field", i, "Only '{name:?}' may use ':' and '?'.")
            else:
                literal.append(char)
            i += 1
        if not segments or _droppable(segments[-1]):
            raise self._error(
                "the last segment can be empty",
                last_start,
                "End the template with a segment holding a non-optional field such as {id}.",
            )
        return tuple(segments)

    def _check_segment(self, parts: list[_Part], start: int, end: int) -> None:
        if not parts:
            problem = "the template ends with '/'" if end == len(self._template) else "empty segment ('//')"
            raise self._error(problem, end)
        if all(isinstance(part, str) for part in parts):
            text = "".join(part for part in parts if isinstance(part, str))
            if not text.strip("."):
                raise self._error(f"segment {text!r} is only dots", start, "'.' and '..' are not allowed.")

    # -- uniqueness --

    def validate_for(self, required_dimensions: Iterable[str], *, with_components: bool = True) -> None:
        """Check that the template gives distinct paths to distinct datasets.

        A template is unique if it contains ``{id}``; otherwise it must contain
        ``{datasetType}``, a component field and every required dimension as a
        non-optional field (``{run}`` is always present).  Component artifacts
        share their parent's dataset ID, so with ``with_components`` a component
        field is needed even when ``{id}`` is present.

        Values sharing one segment are separated only by literal characters,
        so a template without ``{id}`` whose string values contain those
        separators may still render two data IDs alike; create-only writes
        then fail instead of overwriting.  Templates with ``{id}`` are immune.

        Parameters
        ----------
        required_dimensions : `~collections.abc.Iterable` [`str`]
            Required dimensions of the dataset type.
        with_components : `bool`, optional
            Whether component artifacts of composite datasets may be stored
            with this template (default `True`).

        Raises
        ------
        ConfigError
            If the template is not unique; the message lists what is missing.
        """
        present = {part.name: part.optional for part in self._all_fields()}
        missing: list[str] = []
        if with_components and "component" not in present:
            missing.append("{component:?}")
        if "id" not in present:
            if "datasetType" not in present:
                missing.append("{datasetType}")
            for dimension in sorted(set(required_dimensions)):
                if dimension not in present:
                    missing.append(f"{{{dimension}}}")
                elif present[dimension]:
                    missing.append(f"{{{dimension}}} (it is optional; drop ':?')")
        if missing:
            dims = ", ".join(sorted(set(required_dimensions))) or "none"
            raise ConfigError(
                f"File template {self._template!r} is not unique for datasets with required dimensions "
                f"[{dims}]: missing {', '.join(missing)}. Add them, or include {{id}}"
                + (" and {component:?}." if with_components else ".")
            )

    # -- rendering --

    def _value(self, name: str, fields: TemplateFields, width: int | None = None) -> str | None:
        if name == "datasetType":
            return fields.dataset_type
        if name == "id":
            return str(fields.dataset_id)
        if name == ID_HASH_FIELD:
            # Hex digits only: always one safe segment, never "_records", "." or "..".
            digest = hashlib.sha256(fields.dataset_id.bytes).hexdigest()
            return digest[: width or ID_HASH_DEFAULT_WIDTH]
        value: str | int
        if name == "component":
            if fields.component is None:
                return None
            value = fields.component
        elif name in fields.data_id:
            value = fields.data_id[name]  # None or a float is refused by sanitize_segment
        else:
            return None
        try:
            return sanitize_segment(value)
        except DataIdError as err:
            err.add_note(f"While rendering {{{name}}} of {self._template!r} for {fields.describe()}.")
            raise

    def _compile(self, has_component: bool, keys: tuple[str, ...]) -> tuple[str, tuple[_Field, ...]] | str:
        """Return a format string of the path below the run and the fields it takes, in order.

        Or the name of a non-optional field that is missing.
        """
        missing = self._optional - set(keys) - ({"component"} if has_component else set())
        plan = self._plan(missing)
        if isinstance(plan, str):
            return plan
        order: list[_Field] = []
        texts = []
        for segment in plan:
            text = []
            for part in segment:
                if isinstance(part, str):
                    text.append(part)  # literals never hold braces (see _TEMPLATE_CHARS and _parse)
                    continue
                if part not in order:
                    order.append(part)
                text.append(f"{{{order.index(part)}}}")
            texts.append("".join(text))
        return "/".join(texts), tuple(order)

    def _plan(self, missing: frozenset[str]) -> _Plan | str:
        """Return the parts each kept segment renders, or the name of a missing non-optional field.

        A missing optional field drops out with the separators (``_.-``) next
        to it, and a segment left with nothing but separators drops out. Values
        are never empty, so which parts survive depends only on which fields
        are present.
        """
        plan: list[tuple[_Part, ...]] = []
        for segment in self._segments:
            out: list[_Part] = []
            strip_next = False
            dropped = False
            for part in segment:
                if isinstance(part, str):
                    text = part.lstrip(_SEPARATORS) if strip_next else part
                    strip_next = False
                    if text:
                        out.append(text)
                    continue
                if part.name not in missing:
                    out.append(part)
                    strip_next = False
                    continue
                if not part.optional:
                    return part.name
                dropped = True
                if not out:
                    strip_next = True
                elif isinstance(out[-1], str):
                    out[-1] = out[-1].rstrip(_SEPARATORS)
                    if not out[-1]:
                        out.pop()
                        strip_next = not out
            literal = all(isinstance(part, str) for part in out)
            if dropped and literal and not "".join(map(str, out)).strip(_SEPARATORS):
                continue  # only separators are left of a segment whose optional fields are all missing
            plan.append(tuple(out))
        return tuple(plan)

    def render(self, fields: TemplateFields) -> str:
        """Return the path of a dataset, relative to the datastore root.

        Parameters
        ----------
        fields : `TemplateFields`
            What the dataset contributes.

        Returns
        -------
        path : `str`
            ASCII path without extension; it always starts with
            ``sanitize_run(fields.run) + "/"``.

        Raises
        ------
        DataIdError
            If a non-optional field has no value, a value is invalid, or the
            path is longer than `MAX_PATH_LENGTH` bytes.
        InvalidNameError
            If the run name is invalid.
        """
        key = (fields.component is not None, tuple(fields.data_id))
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._compile(*key)
        if isinstance(plan, str):
            raise DataIdError(
                f"File template {self._template!r} needs {{{plan}}}, but {fields.describe()} "
                f"has no value for it; add it to the data ID or write {{{plan}:?}} in the template."
            )
        form, parts = plan
        text = form.format(*[self._value(part.name, fields, part.width) for part in parts])
        if RESERVED_SEGMENT in text:
            # "_records" below a run holds the per-quantum files: no dataset may land there.
            text = "/".join("%5Frecords" if t == RESERVED_SEGMENT else t for t in text.split("/"))
        path = f"{sanitize_run(fields.run)}/{text}"
        if len(path) > MAX_PATH_LENGTH:
            raise DataIdError(
                f"File template {self._template!r} renders a {len(path)}-byte path for {fields.describe()}, "
                f"over the {MAX_PATH_LENGTH}-byte limit; use shorter run names or data ID values, "
                "or a template with fewer fields."
            )
        # Belt and braces: construction and sanitisation already guarantee this.
        if "\\" in path or not path.isprintable() or not _UNSAFE_PIECES.isdisjoint(path.split("/")):
            raise DataIdError(f"Refusing unsafe path {path!r} rendered for {fields.describe()}.")
        return path


# --- lookup ----------------------------------------------------------------


class FileTemplates:
    """Templates looked up by dataset type name, then storage class, then default.

    Parameters
    ----------
    templates : `~collections.abc.Mapping` [`str`, `str`], optional
        Keys are dataset type names (optionally ``parent.component``) or
        storage class names; the key ``"default"`` replaces ``default``.
    default : `str`, optional
        Template used when no key matches (`DEFAULT_TEMPLATE`).

    Raises
    ------
    ConfigError
        If a key is not a valid name or a template is invalid.
    """

    __slots__ = ("_default", "_templates")

    def __init__(self, templates: Mapping[str, str] | None = None, default: str = DEFAULT_TEMPLATE) -> None:
        parsed: dict[str, FileTemplate] = {}
        for key, text in (templates or {}).items():
            if not isinstance(key, str) or not _LOOKUP_KEY_RE.fullmatch(key):
                raise ConfigError(
                    f"File template key {key!r} is not a dataset type or storage class name "
                    "([A-Za-z_][A-Za-z0-9_]*, optionally '.component')."
                )
            try:
                parsed[key] = FileTemplate(text)
            except ConfigError as err:
                err.add_note(f"In the file template configured for {key!r}.")
                raise
        self._default = parsed.pop("default") if "default" in parsed else FileTemplate(default)
        self._templates = parsed

    @property
    def default(self) -> FileTemplate:
        """Template used when no key matches (`FileTemplate`)."""
        return self._default

    def template_for(self, dataset_type: str, storage_class: str) -> FileTemplate:
        """Return the template for a dataset type.

        Parameters
        ----------
        dataset_type : `str`
            Dataset type name, possibly ``parent.component``; a component
            falls back to its parent's template before the storage class.
        storage_class : `str`
            Storage class name.

        Returns
        -------
        template : `FileTemplate`
            The first match among dataset type, parent, storage class, default.
        """
        candidates = [dataset_type]
        if "." in dataset_type:
            candidates.append(dataset_type.split(".", 1)[0])
        candidates.append(storage_class)
        for key in candidates:
            template = self._templates.get(key)
            if template is not None:
                return template
        return self._default
