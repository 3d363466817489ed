"""Where an S3 datastore puts each dataset, and with which formatter: keys, URIs, predicted records.

`S3Layout` holds the naming half of `~s3qbb.datastores.s3.S3Datastore`: the
root (``s3://bucket/prefix``), the key templates and the formatter choice.
It makes no request and keeps no state but what it is built with, and a
per-dataset-type memo of the template and formatter (both fixed once built).
"""

from __future__ import annotations

__all__ = ["S3Layout", "parse_s3_root"]

import string
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..core.records import StoredFileInfo
from ..errors import ConfigError, PickleDisabledError, UnknownFormatterError
from ..formatters import FormatterFactory
from .templates import FileTemplate, FileTemplates, TemplateFields

if TYPE_CHECKING:
    from ..core.dataset_ref import DatasetRef
    from ..core.dataset_type import DatasetType
    from ..core.storage_class import StorageClass
    from ..formatters import Formatter


_ROOT_CHARACTERS = frozenset(string.ascii_letters + string.digits + "-_.~!$&'()*+,;=:@/")
"""Characters of a root's prefix: those a URI path keeps as they are (RFC 3986 ``pchar``, no ``%``)."""


def parse_s3_root(root: str) -> tuple[str, str]:
    """Split ``s3://bucket/prefix`` into the bucket and the prefix (without slashes at the ends).

    Raises
    ------
    ConfigError
        If the URI is not an ``s3://`` URI with a valid bucket name and a clean prefix.
    """
    if not isinstance(root, str) or not root.startswith("s3://"):
        raise ConfigError(f"S3 datastore root must look like 's3://bucket/prefix', got {root!r}.")
    bucket, _, prefix = root.removeprefix("s3://").partition("/")
    if (
        not (3 <= len(bucket) <= 63)
        or not all(c.isalnum() or c in "-." for c in bucket)
        or not bucket.isascii()
    ):
        raise ConfigError(f"S3 datastore root {root!r}: {bucket!r} is not a valid bucket name.")
    doubled = prefix.startswith("/")
    if prefix.endswith("/"):
        prefix = prefix[:-1]  # one trailing slash: 's3://bucket/repo/' is 's3://bucket/repo'
    if doubled or (prefix and any(seg in ("", ".", "..") for seg in prefix.split("/"))):
        # A doubled slash is a typo that would silently write elsewhere: refuse it, as '.' and '..'.
        raise ConfigError(
            f"S3 datastore root {root!r}: the prefix has an empty, '.' or '..' segment; "
            "write it with single slashes, e.g. 's3://bucket/repo'."
        )
    unsafe = sorted({c for c in prefix if c not in _ROOT_CHARACTERS})
    if unsafe:
        # Every URI s3qbb prints and every command that takes one (inspect, ingest) must agree on the
        # root's keys: a character that a URI escapes or cuts at ('?', '#', ' ', '%', non-ASCII)
        # would print as one thing and be stored as another.
        raise ConfigError(
            f"S3 datastore root {root!r}: the prefix has {', '.join(map(repr, unsafe))}, which URIs "
            "must escape; use ASCII letters, digits and - _ . ~ ! $ & ' ( ) * + , ; = : @ in a root. "
            "(Run names and data IDs below the root may use any character: s3qbb escapes them in keys.)"
        )
    return bucket, prefix


class S3Layout:
    """Object keys, URIs and formatters of the datasets under one ``s3://bucket/prefix`` root.

    Parameters
    ----------
    root : `str`
        ``s3://bucket/prefix``.
    templates : `FileTemplates` or `~collections.abc.Mapping`, optional
        Key templates by dataset type or storage class name.
    formatters : `FormatterFactory`, optional
        Formatter registry; the shipped formatters by default.
    formatter_overrides : `~collections.abc.Mapping` [`str`, `str`], optional
        Formatter name by dataset type name or storage class name.
    allow_pickle : `bool`, optional
        Allow the pickle formatter.
    daf_butler_compat : `bool`, optional
        Name daf_butler's formatter class in records where there is one.

    Raises
    ------
    ConfigError
        If ``root`` is not a valid ``s3://`` root.
    """

    def __init__(
        self,
        root: str,
        templates: FileTemplates | Mapping[str, str] | None = None,
        formatters: FormatterFactory | None = None,
        formatter_overrides: Mapping[str, str] | None = None,
        *,
        allow_pickle: bool = False,
        daf_butler_compat: bool = False,
    ) -> None:
        self.bucket_name, self.prefix = parse_s3_root(root)
        self.root = f"s3://{self.bucket_name}/{self.prefix}" if self.prefix else f"s3://{self.bucket_name}"
        self.templates = templates if isinstance(templates, FileTemplates) else FileTemplates(templates)
        self.formatters = formatters or FormatterFactory.default()
        self.formatter_overrides = dict(formatter_overrides or {})
        self.allow_pickle = allow_pickle
        self.daf_butler_compat = daf_butler_compat
        # Per dataset type: formatter, template, required dimensions, parent name (a put looks them up).
        self._memo: dict[DatasetType, tuple[Formatter, FileTemplate, frozenset[str], str]] = {}
        self._readers: dict[str, Formatter] = {}  # formatter by the name records carry
        self._lock = threading.Lock()

    def check_formatter_overrides(self) -> None:
        """Check that every formatter override names a formatter this layout may use.

        The datastore does not check them when it is made, as daf_butler's
        does not (`~s3qbb.datastores.s3.S3Datastore.validateConfiguration`
        lists them); a configured repository does, when its butler is built
        (`s3qbb.repo.build_datastore`), so a misspelt name is a setup error
        before any task runs rather than a failed first ``put``.

        Raises
        ------
        ConfigError
            If an override names no registered formatter. (One naming pickle
            without ``allow_pickle`` is refused when a dataset is written or
            read with it: a reader's configuration may name it for datasets it
            never reads.)
        """
        for target, name in self.formatter_overrides.items():
            try:
                self.formatters.get_class(name)  # pickle without allow_pickle is refused when used
            except UnknownFormatterError as err:
                raise ConfigError(f"Configuration datastore.formatters, {target!r}: {err}") from err

    def key(self, path: str) -> str:
        """Return the object key of a path relative to the root."""
        return f"{self.prefix}/{path}" if self.prefix else path

    def bucket_uri(self, path: str) -> str:
        """Return ``s3://bucket/key`` of a path relative to the root, the key as it is (for messages)."""
        return f"s3://{self.bucket_name}/{self.key(path)}"

    def formatter_for(self, dataset_type: DatasetType) -> Formatter:
        """Return the formatter that writes datasets of a (parent) dataset type.

        Raises
        ------
        ConfigError
            If neither the overrides nor the storage class name a formatter.
        UnknownFormatterError
            If the formatter named is not registered.
        """
        return self._lookup(dataset_type)[0]

    def _lookup(self, dataset_type: DatasetType) -> tuple[Formatter, FileTemplate, frozenset[str], str]:
        memo = self._memo.get(dataset_type)
        if memo is not None:
            return memo
        parent_name, sc = _parent(dataset_type)
        formatter = self.formatters.get(self.formatter_name(sc, parent_name), allow_pickle=self.allow_pickle)
        template = self.templates.template_for(parent_name, dataset_type.storageClass.name)
        memo = (formatter, template, frozenset(dataset_type.dimensions.required), parent_name)
        with self._lock:
            self._memo[dataset_type] = memo
        return memo

    def formatter_name(self, storage_class: StorageClass, dataset_type: str | None = None) -> str:
        """Return the name of the formatter writing a storage class (of a parent dataset type, if given).

        An override by dataset type name wins, then one by storage class name,
        then the storage class's own formatter.

        Raises
        ------
        ConfigError
            If none of them names a formatter.
        """
        overrides = self.formatter_overrides
        name = (dataset_type and overrides.get(dataset_type)) or overrides.get(storage_class.name)
        if name or storage_class.formatter:
            return name or str(storage_class.formatter)
        what = f"dataset type {dataset_type!r} (storage class " if dataset_type else "storage class "
        raise ConfigError(
            f"No formatter for {what}{storage_class.name!r}{')' if dataset_type else ''}; set one in the "
            "storage class or in the datastore's formatter overrides."
        )

    def formatter_problem(self, entity: DatasetRef | DatasetType | StorageClass) -> str | None:
        """Return why no formatter writes ``entity`` here, naming it and what to do; `None` if one does.

        For `S3Datastore.validateConfiguration <s3qbb.datastores.s3.S3Datastore>`; no request.
        """
        from ..core.dataset_ref import DatasetRef
        from ..core.dataset_type import DatasetType
        from ..core.storage_class import StorageClass

        if isinstance(entity, DatasetRef):
            entity = entity.datasetType
        try:
            if isinstance(entity, DatasetType):
                parent_name, sc = _parent(entity)
                what, name = f"dataset type {parent_name!r}", self.formatter_name(sc, parent_name)
            elif isinstance(entity, StorageClass):
                what, name = f"storage class {entity.name!r}", self.formatter_name(entity)
            else:
                return f"{entity!r}: not a DatasetRef, DatasetType or StorageClass"
            self.formatters.get(name, allow_pickle=self.allow_pickle)
        except ConfigError as err:  # no formatter named; the message names the entity
            return str(err)
        except (UnknownFormatterError, PickleDisabledError) as err:
            return f"{what}: {err}"
        return None

    def formatter_named(self, name: str) -> Formatter:
        """Return the formatter a record names (one instance per name, as `formatter_for` keeps one per type).

        Raises
        ------
        UnknownFormatterError
            If the formatter named is not registered.
        PickleDisabledError
            If it is unsafe and pickle is not allowed (raised on every call, never memoised).
        """
        formatter = self._readers.get(name)
        if formatter is None:
            formatter = self.formatters.get(name, allow_pickle=self.allow_pickle)
            with self._lock:
                self._readers[name] = formatter
        return formatter

    def record_formatter_name(self, formatter: Formatter) -> str:
        """Return the formatter name records carry (daf_butler's class name in compatibility mode)."""
        compat = formatter.daf_butler_name() if self.daf_butler_compat else None
        return compat or formatter.qualified_name()

    def relpath(self, ref: DatasetRef) -> str:
        """Return the path of a (parent) dataset relative to the root, extension included.

        Raises
        ------
        DataIdError
            If the data ID cannot be rendered into a safe path.
        """
        formatter, template, required, parent_name = self._lookup(ref.datasetType)
        fields = TemplateFields(
            run=ref.run,
            dataset_type=parent_name,
            component=None,
            dataset_id=ref.id,
            data_id=ref.dataId.mapping,
            required_dimensions=required,
        )
        return template.render(fields) + formatter.extension

    def predicted_info(self, ref: DatasetRef) -> StoredFileInfo:
        """Return the record a put of ``ref`` (or of its parent) writes, without size or checksum."""
        parent = ref.makeCompositeRef() if ref.isComponent() else ref
        return StoredFileInfo(
            ref.id,
            self.relpath(parent),
            self.record_formatter_name(self.formatter_for(parent.datasetType)),
            parent.datasetType.storageClass.name,
            None,
            None,
            -1,
        )


def _parent(dataset_type: DatasetType) -> tuple[str, StorageClass]:
    """Return the name and storage class of the parent of a (component) dataset type."""
    sc = dataset_type.parentStorageClass if dataset_type.isComponent() else dataset_type.storageClass
    assert sc is not None
    return dataset_type.nameAndComponent()[0], sc
