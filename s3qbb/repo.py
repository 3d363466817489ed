"""Repository configuration: the datastore stack, templates, storage classes, loaded from YAML or JSON.

A minimal configuration is two lines::

    datastore:
      root: s3://my-bucket/repo

Everything else has a default: a bounded in-memory cache tier in front of an
`~s3qbb.datastores.s3.S3Datastore`, the shipped storage classes and
dimension universe, the endpoint and credentials from the environment
(`~s3qbb.config.S3EndpointConfig.from_env`).
"""

from __future__ import annotations

__all__ = [
    "CONFIG_FILENAMES",
    "DAF_BUTLER_DATASTORE_NAME",
    "CacheConfig",
    "DatastoreConfig",
    "RepoConfig",
    "build_datastore",
    "load_repo_config",
]

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ByteSize, ConfigDict, Field, ValidationError, field_validator

from .config import EnvConfigModel, S3EndpointConfig, _env_field
from .core.dimensions import DimensionUniverse
from .core.storage_class import StorageClassFactory
from .errors import ConfigError
from .redaction import redact

if TYPE_CHECKING:
    from .datastores.base import Datastore

CONFIG_FILENAMES = ("butler.yaml", "s3qbb.yaml", "butler.json")
"""Names looked for when a configuration location is a directory or a prefix."""

DAF_BUTLER_DATASTORE_NAME = "FileDatastore@<butlerRoot>"
"""The datastore name of a default daf_butler repository (records and provenance are keyed by it)."""


class _Model(BaseModel):
    # hide_input_in_errors: the endpoint section may hold secrets (S3EndpointConfig hides its own).
    # defer_build: only RepoConfig is validated on its own (DatastoreConfig only inside it), see
    # EnvConfigModel.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True, defer_build=True)


class CacheConfig(EnvConfigModel):
    """The in-memory cache tier in front of the primary datastore.

    A field this section does not set is read from its environment variable,
    if it has one, when the datastore is built (`build_datastore`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True, defer_build=False)

    enabled: bool = Field(True, description="Put a bounded in-memory cache in front of the datastore.")
    max_bytes: ByteSize = Field(ByteSize(256 * 1024**2), description="Bound on cached bytes (LRU beyond).")
    max_entries: int = Field(10_000, gt=0, description="Bound on cached datasets (LRU beyond).")
    max_put_bytes: ByteSize = _env_field(
        ByteSize(16 * 1024**2),
        "S3QBB_CACHE_MAX_PUT_BYTES",
        "Datasets bigger than this (serialised) are not cached when put, only when read.",
        shown="16MiB",
    )


class DatastoreConfig(_Model):
    """The primary datastore."""

    cls: Literal["s3", "memory"] = Field("s3", description="Kind of datastore: 's3' or 'memory'.")
    name: str | None = Field(
        None, description="Datastore name; 'S3Datastore' or 'InMemoryDatastore' by default."
    )
    root: str | None = Field(None, description="Root URI, 's3://bucket/prefix' (required for 's3').")
    endpoint: S3EndpointConfig | None = Field(
        None,
        description="S3 endpoint settings; each field not set here is read from its S3QBB_* environment "
        "variable (see `endpoint_config`).",
    )
    templates: dict[str, str] = Field(
        default_factory=dict, description="Key templates by dataset type or class."
    )
    formatters: dict[str, str] = Field(
        default_factory=dict, description="Formatter by dataset type or class."
    )
    trust_mode: bool = Field(
        False, description="Read datasets without records from their templated location."
    )
    allow_pickle: bool = Field(False, description="Allow the pickle formatter (it runs code when reading).")
    daf_butler_compat: bool = Field(
        False,
        description=(
            "Write records daf_butler can read: daf_butler's formatter class names where s3qbb's formatter "
            "has an equivalent (JSON, YAML, Parquet, pickle) and, unless 'name' is set, the datastore name "
            f"of a default daf_butler repository, {DAF_BUTLER_DATASTORE_NAME!r}."
        ),
    )

    @field_validator("root")
    @classmethod
    def _check_root(cls, root: str | None) -> str | None:
        # Checked when the configuration is read, so the error names the file and `datastore.root`.
        if root is not None and root.startswith("s3://"):
            from .datastores.layout import parse_s3_root

            parse_s3_root(root)  # a ConfigError is a ValueError: pydantic reports it at this field
        return root

    def endpoint_config(self, environ: Mapping[str, str] | None = None) -> S3EndpointConfig:
        """Return the effective S3 endpoint settings, layered per field.

        A field set in the ``endpoint:`` section wins over its ``S3QBB_*``
        environment variable, which wins over the default; a section holding
        only ``checksum_algorithm`` still takes the endpoint URL, region and
        retry settings from the environment.

        Parameters
        ----------
        environ : `~collections.abc.Mapping` [`str`, `str`], optional
            Environment to read; `os.environ` if not given.

        Returns
        -------
        config : `~s3qbb.config.S3EndpointConfig`
            The layered settings; their ``field_sources`` say where each came from.

        Raises
        ------
        ConfigError
            If the combination of configuration and environment is invalid.
        """
        try:
            if self.endpoint is None:
                return S3EndpointConfig.from_env(environ)
            return self.endpoint.layered_on_env(environ)
        except ValidationError as err:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
            raise ConfigError(
                "Invalid S3 endpoint settings (configuration file and S3QBB_* variables together): "
                f"{redact(problems)}"
            ) from None


class RepoConfig(_Model):
    """A repository: datastore stack, storage classes and dimension universe."""

    model_config = ConfigDict(defer_build=False)

    version: int = Field(1, description="Configuration format version.")
    datastore: DatastoreConfig = Field(description="The primary datastore.")
    cache: CacheConfig = Field(default_factory=CacheConfig, description="The cache tier.")
    storageClasses: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Storage classes added to the shipped ones."
    )
    dimensions: dict[str, Any] | None = Field(
        None, description="Dimension universe config; the shipped one if absent."
    )
    source: str | None = Field(None, description="Where the configuration was read from (set by the loader).")

    def storage_class_factory(self) -> StorageClassFactory:
        """Return the shipped storage classes plus those of this configuration.

        Raises
        ------
        ConfigError
            If a storage class definition is malformed or conflicts with a shipped one.
        """
        factory = StorageClassFactory.default()
        factory.addFromConfig(self.storageClasses)
        return factory

    def universe(self) -> DimensionUniverse:
        """Return the dimension universe of this configuration."""
        return DimensionUniverse(self.dimensions)


def _parse(text: str, where: str) -> Any:
    if where.endswith(".json"):
        try:
            return json.loads(text)
        except ValueError as err:
            raise ConfigError(f"Configuration {where} is not valid JSON: {err}") from err
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        # Not str(err): PyYAML quotes the offending source line, which may hold a credential.
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or type(err).__name__
        raise ConfigError(f"Configuration {where} is not valid YAML{at}: {problem}.") from None


def _read_s3(uri: str) -> tuple[str, str]:
    from .s3.config_files import read_s3_text

    if uri.endswith("/") or not uri.rsplit("/", 1)[-1].count("."):
        base = uri.rstrip("/")
        errors = []
        for name in CONFIG_FILENAMES:
            try:
                return read_s3_text(f"{base}/{name}"), f"{base}/{name}"
            except FileNotFoundError as err:
                errors.append(str(err))
        raise ConfigError(f"No configuration file ({', '.join(CONFIG_FILENAMES)}) under {uri}.")
    try:
        return read_s3_text(uri), uri
    except FileNotFoundError as err:
        raise ConfigError(f"Configuration {uri} not found: {err}") from err


def _candidates(path: Path) -> list[Path]:
    if path.is_dir():
        return [path / name for name in CONFIG_FILENAMES]
    return [path]


def _read_local(location: str | os.PathLike[str], search_paths: Iterable[str]) -> tuple[str, str]:
    path = Path(location)
    tried: list[str] = []
    bases = [Path()] if path.is_absolute() else [Path(), *(Path(p) for p in search_paths)]
    for base in bases:
        for candidate in _candidates(base / path):
            tried.append(str(candidate))
            if candidate.is_file():
                try:
                    return candidate.read_text(), str(candidate)
                except OSError as err:
                    raise ConfigError(f"Cannot read configuration {candidate}: {err}") from err
    hint = "Pass search_paths or a full path." if search_paths else "Give its full path or an s3:// URI."
    raise ConfigError(f"Configuration {str(location)!r} not found; looked at {tried}. {hint}")


def load_repo_config(
    config: RepoConfig | Mapping[str, Any] | str | os.PathLike[str],
    search_paths: Iterable[str] | None = None,
) -> RepoConfig:
    """Load a repository configuration.

    Parameters
    ----------
    config : `RepoConfig`, `~collections.abc.Mapping`, `str` or `os.PathLike`
        A configuration, its contents, a local file or directory, or an
        ``s3://`` URI of a file or of a prefix holding ``butler.yaml``.
    search_paths : iterable of `str`, optional
        Directories searched, in order, for a relative local path not found
        in the working directory.

    Returns
    -------
    config : `RepoConfig`
        The validated configuration.

    Raises
    ------
    ConfigError
        If the file cannot be found or read, or its contents are invalid.
    """
    if isinstance(config, RepoConfig):
        return config
    source: str | None = None
    if isinstance(config, Mapping):
        data: Any = dict(config)
    elif isinstance(config, str | os.PathLike):
        location = os.fspath(config)
        if location.startswith("s3://"):
            text, source = _read_s3(location)
        else:
            text, source = _read_local(location, search_paths or ())
        data = _parse(text, source)
        if not isinstance(data, Mapping):
            raise ConfigError(f"Configuration {source} must hold a mapping, not {type(data).__name__}.")
        data = {**data, "source": source}
    else:
        raise ConfigError(f"Cannot load a repository configuration from {type(config).__name__}.")
    try:
        return RepoConfig.model_validate(data)
    except ValidationError as err:
        # Only the messages, never the inputs, and no chained traceback: an input may be a secret.
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise ConfigError(
            f"Invalid repository configuration{f' {source}' if source else ''}: {redact(problems)}"
        ) from None


def build_datastore(
    config: RepoConfig,
    *,
    filename: str = ":memory:",
    storage_classes: StorageClassFactory | None = None,
) -> Datastore:
    """Build the datastore stack a configuration describes.

    Parameters
    ----------
    config : `RepoConfig`
        The repository configuration.
    filename : `str`, optional
        SQLite file of the primary datastore's records (in memory by default).
    storage_classes : `StorageClassFactory`, optional
        Storage classes; ``config.storage_class_factory()`` by default.

    Returns
    -------
    datastore : `~s3qbb.datastores.base.Datastore`
        The primary datastore, wrapped by the cache tier when it is enabled.

    Raises
    ------
    ConfigError
        If the configuration is incomplete (an S3 datastore without a root, ...).
    """
    storage_classes = storage_classes or config.storage_class_factory()
    ds = config.datastore
    backend: Datastore
    if ds.cls == "s3":
        from .datastores.s3 import S3Datastore

        if not ds.root:
            raise ConfigError(
                "Datastore 's3' needs a root such as 's3://bucket/prefix' "
                f"(configuration {config.source or 'given'})."
            )
        default_name = DAF_BUTLER_DATASTORE_NAME if ds.daf_butler_compat else "S3Datastore"
        backend = S3Datastore(
            ds.root,
            name=ds.name or default_name,
            config=ds.endpoint_config(),
            records=filename,
            templates=ds.templates or None,
            formatter_overrides=ds.formatters,
            storageClassFactory=storage_classes,
            trust_mode=ds.trust_mode,
            allow_pickle=ds.allow_pickle,
            daf_butler_compat=ds.daf_butler_compat,
        )
        # Custom formatters registered when a job imported its task are known by now.
        backend.layout.check_formatter_overrides()
    else:
        from .datastores.memory import InMemoryDatastore

        backend = InMemoryDatastore(name=ds.name or "InMemoryDatastore", storageClassFactory=storage_classes)
    try:
        settings = config.cache.layered_on_env()
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise ConfigError(
            f"Invalid cache settings (configuration file and S3QBB_CACHE_* variables together): {problems}"
        ) from None
    if not settings.enabled:
        return backend
    from .datastores.caching import CachingDatastore
    from .datastores.memory import InMemoryDatastore

    cache = InMemoryDatastore(
        name=f"{backend.name}-cache",
        max_bytes=int(settings.max_bytes),
        max_entries=settings.max_entries,
        storageClassFactory=storage_classes,
    )
    return CachingDatastore(backend, cache, max_put_bytes=int(settings.max_put_bytes))
