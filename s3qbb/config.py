"""Configuration models for s3qbb.

Every model is a frozen pydantic model that rejects unknown fields. Each field
documents its default and the environment variable that
:meth:`EnvConfigModel.from_env` reads it from; nothing here reads the
environment at import time and there is no module-global configuration.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Self

from pydantic import (
    BaseModel,
    ByteSize,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .config_checks import (
    OTHER_ENV_VARIABLES,
    blank_credential_problem,
    endpoint_url_problem,
    region_problem,
    shown_url,
    warn_unknown_variables,
    with_sources,
)
from .redaction import register_secrets, registered_secrets

__all__ = [
    "ENV_PREFIX",
    "EnvConfigModel",
    "RetryConfig",
    "S3EndpointConfig",
    "known_env_variables",
    "register_secrets",
    "registered_secrets",
]

ENV_PREFIX = "S3QBB_"
"""Prefix shared by every environment variable s3qbb reads."""

_MIB = 1024**2
_GIB = 1024**3

_HIDDEN = "<hidden>"
"""Shown instead of the input of a validation error that may hold a secret."""


def _env_field(
    default: Any,
    env: str | None,
    description: str,
    *,
    shown: str | None = None,
    fallbacks: tuple[str, ...] = (),
    **constraints: Any,
) -> Any:
    """Build a documented field whose description names its default and variable.

    Parameters
    ----------
    default : `object`
        Default value of the field.
    env : `str` or `None`
        Name of the environment variable read by
        :meth:`EnvConfigModel.from_env`, or `None` if it has none.
    description : `str`
        What the field means (one or two sentences).
    shown : `str`, optional
        How the default is shown in the description, if not its ``repr``.
    fallbacks : `tuple` [`str`, ...], optional
        Variables read, in this order, when ``env`` is unset (the
        description must say so).
    **constraints
        Extra keyword arguments for `pydantic.Field` (``ge``, ``gt`` ...).

    Returns
    -------
    field : `pydantic.fields.FieldInfo`
        The field definition.
    """
    source = f"Environment variable: ``{env}``." if env else "No environment variable."
    extra: dict[str, Any] | None = None
    if env:
        extra = {"env": env, "env_fallbacks": list(fallbacks)} if fallbacks else {"env": env}
    return Field(
        default,
        description=f"{description} Default: ``{shown or repr(default)}``. {source}",
        json_schema_extra=extra,
        **constraints,
    )


class EnvConfigModel(BaseModel):
    """Base of the s3qbb configuration models.

    Instances are immutable and hashable; unknown fields are rejected. A field
    that can be set from the environment records the variable name in its
    ``json_schema_extra["env"]`` (and the variables read when it is unset in
    ``json_schema_extra["env_fallbacks"]``), which :meth:`from_env` reads
    (`s3qbb.config_env` offers the same as a pydantic-settings view). Each
    instance remembers where each of its fields came from (`field_sources`). Constructing a model reads no
    environment: only `from_env` and `layered_on_env` do.
    """

    # defer_build: the base is never validated, so its validator is not built (a job's start-up pays
    # every model built at import); the models validated set defer_build=False, so that a model
    # nesting them reuses their schema instead of generating it again.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    _nested_env: ClassVar[dict[str, type[EnvConfigModel]]] = {}
    """Fields holding another `EnvConfigModel` that `from_env` fills recursively."""

    _sources: dict[str, str] = PrivateAttr(default_factory=dict)

    def __eq__(self, other: object) -> bool:
        # Configurations are equal when their fields are; where a value came from does not count.
        if not isinstance(other, BaseModel):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__

    __hash__ = BaseModel.__hash__

    @classmethod
    def env_variables(cls) -> dict[str, str]:
        """Return the environment variable of every field that has one.

        Returns
        -------
        variables : `dict` [`str`, `str`]
            Mapping of field name to environment variable name.
        """
        return {name: names[0] for name, names in cls.env_aliases().items()}

    @classmethod
    def env_aliases(cls) -> dict[str, tuple[str, ...]]:
        """Return the environment variables of every field that has some, in order of precedence.

        Returns
        -------
        aliases : `dict` [`str`, `tuple` [`str`, ...]]
            Mapping of field name to its variable followed by its fallbacks
            (``RetryConfig.max_attempts``: ``S3QBB_RETRY_MAX_ATTEMPTS``, then
            ``AWS_MAX_ATTEMPTS``).
        """
        aliases: dict[str, tuple[str, ...]] = {}
        for name, info in cls.model_fields.items():
            extra = info.json_schema_extra
            if isinstance(extra, dict) and isinstance(extra.get("env"), str):
                fallbacks = extra.get("env_fallbacks") or []
                assert isinstance(fallbacks, list)
                aliases[name] = (str(extra["env"]), *(str(v) for v in fallbacks))
        return aliases

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Self:
        """Build a configuration from environment variables.

        Settings layer per field: a value in ``overrides`` wins over the
        field's environment variable, which wins over the default.

        Parameters
        ----------
        environ : `~collections.abc.Mapping` [`str`, `str`], optional
            Environment to read; `os.environ` if not given. Empty values count
            as unset.
        **overrides
            Field values that take precedence over the environment. A nested
            configuration given here (``retry=RetryConfig(max_attempts=2)``)
            keeps only the fields it set explicitly; its other fields still
            come from the environment.

        Returns
        -------
        config : `EnvConfigModel`
            The validated configuration; `field_sources` says where each
            field came from.

        Raises
        ------
        pydantic.ValidationError
            Raised if a value (from the environment or an override) is invalid;
            the error names the field, and the variable of a value read from
            the environment (``(from environment S3QBB_RETRY_MAX_ATTEMPTS)``).

        Notes
        -----
        A set ``S3QBB_*`` variable that no setting reads (a misspelt name) is
        logged at WARNING on the ``s3qbb.config`` logger, once per process,
        with the closest names s3qbb reads (see `known_env_variables`).
        """
        env = os.environ if environ is None else environ
        warn_unknown_variables(env, ENV_PREFIX, known_env_variables)
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        aliases = cls.env_aliases()
        # Plain look-ups, the rules of `s3qbb.config_env`'s pydantic-settings view (case-sensitive
        # names, empty values unset, raw text validated by the model): importing pydantic-settings
        # would cost a batch job, whose S3QBB_* variables are usually set, 20-40 ms of CPU.
        for name, variables in aliases.items():
            for variable in variables:
                raw = env.get(variable)
                if raw:
                    values[name] = raw
                    sources[name] = f"environment {variable}"
                    break
        for name, model in cls._nested_env.items():
            given = overrides.pop(name, None)
            if isinstance(given, EnvConfigModel):
                values[name] = given.layered_on_env(env)
            elif isinstance(given, Mapping):
                values[name] = model.from_env(env, **given)
            elif given is not None:
                values[name] = given  # Let validation report the wrong type.
            else:
                values[name] = model.from_env(env)
            sources[name] = "nested"
        values.update(overrides)
        sources.update(dict.fromkeys(overrides, "configuration"))
        try:
            config = cls.model_validate(values)
        except ValidationError as err:
            raise with_sources(err, sources) from None
        config._sources.update(sources)
        return config

    def layered_on_env(self, environ: Mapping[str, str] | None = None) -> Self:
        """Return this configuration with the environment filling the fields it did not set.

        Only fields given explicitly when this configuration was made (its
        ``model_fields_set``, e.g. the keys of an ``endpoint:`` section of a
        repository configuration file) are kept; every other field is read
        from its environment variable, else left at its default. Nested
        configurations layer the same way, field by field.

        Parameters
        ----------
        environ : `~collections.abc.Mapping` [`str`, `str`], optional
            Environment to read; `os.environ` if not given.

        Returns
        -------
        config : `EnvConfigModel`
            The layered configuration.

        Raises
        ------
        pydantic.ValidationError
            Raised if the combination is invalid.
        """
        explicit = {
            name: getattr(self, name)
            for name, source in self.field_sources.items()
            if source == "configuration" or name in self._nested_env
        }
        return self.from_env(environ, **explicit)

    @property
    def field_sources(self) -> dict[str, str]:
        """Where each field's value came from.

        Returns
        -------
        sources : `dict` [`str`, `str`]
            For every field: ``"configuration"`` (given explicitly),
            ``"environment VARIABLE"``, ``"default"``, or ``"nested"`` for a
            nested configuration (see its own `field_sources`).
        """
        given = dict.fromkeys(self.model_fields_set, "configuration")
        return {
            name: self._sources.get(name) or given.get(name, "default") for name in type(self).model_fields
        }


class RetryConfig(EnvConfigModel):
    """How transient storage failures are retried (see `s3qbb.retry.RetryPolicy`).

    Errors the service answered (throttling, 500, 503 ...) and broken
    connections are retried until whichever comes first: ``max_attempts``
    attempts, or a retry that would end past ``max_total_time`` seconds (its
    backoff plus the duration of the attempt that just failed, so an endpoint
    that accepts connections and never answers fails the operation within
    ``max_total_time``). Failures to *reach* the service (connection refused,
    DNS failure, connect timeout) are retried for ``connect_retry_time``
    seconds whatever ``max_attempts`` says, so a service restarting for a few
    seconds does not fail a batch job.

    `from_env` reads ``AWS_MAX_ATTEMPTS`` as ``max_attempts`` when
    ``S3QBB_RETRY_MAX_ATTEMPTS`` is not set. ``AWS_RETRY_MODE`` is not used:
    botocore's own retries stay off (a single retry layer), and s3qbb's policy
    behaves like botocore's ``standard`` mode (exponential backoff, full jitter).
    """

    model_config = ConfigDict(defer_build=False)

    max_attempts: int = _env_field(
        5,
        "S3QBB_RETRY_MAX_ATTEMPTS",
        "Maximum number of attempts of one operation, the first included (1 disables retries); "
        "``AWS_MAX_ATTEMPTS`` (the AWS SDKs' variable) sets it when ``S3QBB_RETRY_MAX_ATTEMPTS`` is unset.",
        fallbacks=("AWS_MAX_ATTEMPTS",),
        ge=1,
    )
    initial_backoff: float = _env_field(
        0.05,
        "S3QBB_RETRY_INITIAL_BACKOFF",
        "Backoff in seconds before the first retry; it doubles on each further retry.",
        ge=0.0,
    )
    max_backoff: float = _env_field(
        5.0, "S3QBB_RETRY_MAX_BACKOFF", "Upper bound in seconds of a single backoff.", ge=0.0
    )
    max_total_time: float = _env_field(
        60.0,
        "S3QBB_RETRY_MAX_TOTAL_TIME",
        "Seconds after the first attempt started beyond which no retry is started.",
        gt=0.0,
    )
    jitter: bool = _env_field(
        True,
        "S3QBB_RETRY_JITTER",
        "Draw each backoff uniformly between zero and its exponential bound ('full jitter').",
    )
    connect_retry_time: float = _env_field(
        30.0,
        "S3QBB_RETRY_CONNECT_TIME",
        "Seconds after the first attempt during which failures to reach the service (connection "
        "refused, DNS failure, connect timeout) are retried, however many attempts that takes; "
        "0 counts them like other transient errors.",
        ge=0.0,
    )

    @model_validator(mode="after")
    def _check_backoff_bounds(self) -> Self:
        if self.max_backoff < self.initial_backoff:
            raise ValueError(
                f"max_backoff ({self.max_backoff}) must not be smaller than "
                f"initial_backoff ({self.initial_backoff})"
            )
        return self


class S3EndpointConfig(EnvConfigModel):
    """How to reach an S3 service and how to write objects to it.

    Credentials come from the standard AWS chain (environment, shared files,
    ``profile``, instance metadata) unless ``access_key_id`` and
    ``secret_access_key`` are given. Secrets are `pydantic.SecretStr` and are
    never shown in ``repr`` or serialised output.
    """

    model_config = ConfigDict(defer_build=False)

    _nested_env: ClassVar[dict[str, type[EnvConfigModel]]] = {"retry": RetryConfig}

    endpoint_url: str | None = _env_field(
        None,
        "S3QBB_S3_ENDPOINT_URL",
        "URL of the S3 service, e.g. ``http://127.0.0.1:9000``. `None` lets boto3 choose: it honours "
        "``AWS_ENDPOINT_URL_S3`` then ``AWS_ENDPOINT_URL``, else the AWS endpoint of the region.",
    )
    region: str | None = _env_field(
        None,
        "S3QBB_S3_REGION",
        "Region name. `None` uses ``AWS_REGION``, then the AWS chain (``AWS_DEFAULT_REGION``, then the "
        "profile), falling back to ``us-east-1``.",
    )
    profile: str | None = _env_field(
        None, "S3QBB_S3_PROFILE", "Named profile of the AWS shared config files; `None` uses the default."
    )
    access_key_id: str | None = _env_field(
        None,
        None,
        "Access key id used instead of the AWS credential chain (needs ``secret_access_key``); "
        "use the standard ``AWS_ACCESS_KEY_ID`` variable to set it from the environment.",
    )
    secret_access_key: SecretStr | None = _env_field(
        None, None, "Secret key paired with ``access_key_id``; never shown."
    )
    session_token: SecretStr | None = _env_field(
        None, None, "Session token paired with ``access_key_id`` for temporary credentials; never shown."
    )
    addressing_style: Literal["auto", "path", "virtual"] = _env_field(
        "auto",
        "S3QBB_S3_ADDRESSING_STYLE",
        "Bucket addressing: ``path`` (``host/bucket/key``, what most local servers need), "
        "``virtual`` (``bucket.host/key``) or ``auto``.",
    )
    connect_timeout: float = _env_field(
        5.0,
        "S3QBB_S3_CONNECT_TIMEOUT",
        "Seconds to wait for a TCP (and TLS) connection to open; a timeout is retried like a refused "
        "connection, for ``retry.connect_retry_time``.",
        gt=0.0,
    )
    read_timeout: float = _env_field(
        30.0,
        "S3QBB_S3_READ_TIMEOUT",
        "Seconds to wait for each piece of data on an open connection (not for a whole transfer); "
        "a timeout is retried within ``retry.max_attempts`` and ``retry.max_total_time``.",
        gt=0.0,
    )
    max_pool_connections: int = _env_field(
        32, "S3QBB_S3_MAX_POOL_CONNECTIONS", "Size of the HTTP connection pool of a client.", ge=1
    )
    server_side_encryption: Literal["AES256", "aws:kms"] | None = _env_field(
        None,
        "S3QBB_S3_SERVER_SIDE_ENCRYPTION",
        "Server-side encryption requested on upload; `None` leaves the bucket default.",
    )
    sse_kms_key_id: str | None = _env_field(
        None,
        "S3QBB_S3_SSE_KMS_KEY_ID",
        "KMS key id or ARN for ``server_side_encryption='aws:kms'``; `None` uses the AWS managed key.",
    )
    checksum_algorithm: Literal["CRC32C", "SHA256"] = _env_field(
        "CRC32C",
        "S3QBB_S3_CHECKSUM_ALGORITHM",
        "S3 checksum sent with every upload, stored in records and verified on read.",
    )
    checksum_block_size: ByteSize = _env_field(
        ByteSize(_MIB),
        "S3QBB_S3_CHECKSUM_BLOCK_SIZE",
        "Smallest block of the per-block CRC32C checksums that verify partial reads (a power of two, "
        "at least 1 KiB; doubled for objects of more than 256 blocks). A partial read fetches whole "
        "blocks: smaller blocks read fewer extra bytes.",
        shown="1 MiB",
        ge=1024,
    )
    multipart_threshold: ByteSize = _env_field(
        ByteSize(16 * _MIB),
        "S3QBB_S3_MULTIPART_THRESHOLD",
        "Objects at least this large (bytes, or a string such as ``'64MiB'``) use multipart upload.",
        shown="16 MiB",
        ge=1,
    )
    multipart_chunksize: ByteSize = _env_field(
        ByteSize(8 * _MIB),
        "S3QBB_S3_MULTIPART_CHUNKSIZE",
        "Part size of multipart uploads and ranged downloads (bytes or ``'8MiB'``; 5 MiB to 5 GiB).",
        shown="8 MiB",
        ge=5 * _MIB,
        le=5 * _GIB,
    )
    max_concurrency: int = _env_field(
        8, "S3QBB_S3_MAX_CONCURRENCY", "Parallel requests of one multipart transfer or bulk call.", ge=1
    )
    conditional_put_atomic: bool = _env_field(
        True,
        "S3QBB_S3_CONDITIONAL_PUT_ATOMIC",
        "Whether the server's create-only PUT (``If-None-Match: *``) is atomic: of writers racing on "
        "one key, exactly one succeeds. True of AWS S3, SeaweedFS 4.48, moto 5.2 and LocalStack 4.13 "
        "(tests/reliability/test_write_races.py measures it). Set it false for any other server: "
        "every create-only PUT is then confirmed with a HEAD (one more request per write).",
    )
    transport: Literal["boto3", "obstore"] = _env_field(
        "boto3",
        "S3QBB_S3_TRANSPORT",
        "Library that sends the requests: ``boto3``, or ``obstore`` (``pip install 's3qbb[obstore]'``; "
        "faster, with the same guarantees; see the Transports section of docs/datastores.rst).",
    )
    retry: RetryConfig = Field(
        default_factory=RetryConfig,
        description="Retry policy of requests to this endpoint; `from_env` fills it from the "
        "``S3QBB_RETRY_*`` variables. Default: ``RetryConfig()``.",
    )

    @field_validator("checksum_block_size")
    @classmethod
    def _check_block_size(cls, value: ByteSize) -> ByteSize:
        if value & (value - 1):
            raise ValueError(f"checksum_block_size {int(value)} must be a power of two")
        return value

    @field_validator("endpoint_url")
    @classmethod
    def _check_endpoint_url(cls, value: str | None) -> str | None:
        if value is not None and (problem := endpoint_url_problem(value)) is not None:
            raise ValueError(
                f"endpoint_url {shown_url(value)!r} is not a well-formed http(s) URL: {problem} "
                "(expected e.g. http://127.0.0.1:9000 or https://s3.example.org)"
            )
        return value

    @field_validator("region")
    @classmethod
    def _check_region(cls, value: str | None) -> str | None:
        if value is not None and (problem := region_problem(value)) is not None:
            raise ValueError(f"region {value!r} is not a valid region name: {problem}")
        return value

    @field_validator("access_key_id", "secret_access_key", "session_token")
    @classmethod
    def _check_not_blank(cls, value: str | SecretStr | None, info: ValidationInfo) -> str | SecretStr | None:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if text is not None and (problem := blank_credential_problem(str(info.field_name), text)):
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> Self:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("access_key_id and secret_access_key must be given together")
        if self.session_token is not None and self.access_key_id is None:
            raise ValueError("session_token needs access_key_id and secret_access_key")
        if self.sse_kms_key_id is not None and self.server_side_encryption != "aws:kms":
            raise ValueError("sse_kms_key_id needs server_side_encryption='aws:kms'")
        return self

    @model_validator(mode="after")
    def _register_credentials(self) -> Self:
        register_secrets((self.access_key_id, self.secret_access_key, self.session_token))
        return self

    @model_validator(mode="wrap")
    @classmethod
    def _hide_secret_inputs(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Self:
        # pydantic puts the offending input into every error (``input_value=...`` in its text,
        # ``errors()[i]["input"]``), and an error of the whole model carries the whole mapping: a
        # secret of the wrong type, or beside an inconsistent field, would be echoed in a traceback.
        # Defined last, so that it wraps every other validator of the model.
        try:
            result: Self = handler(data)
        except ValidationError as err:
            raise ValidationError.from_exception_data(
                err.title, [_hidden_line_error(error) for error in err.errors()]
            ) from None
        return result

    @property
    def has_explicit_credentials(self) -> bool:
        """Whether credentials are given here rather than by the AWS chain."""
        return self.access_key_id is not None


_SECRET_FIELDS = frozenset({"access_key_id", "secret_access_key", "session_token"})


def _hidden_line_error(error: Any) -> Any:
    """Return a line error of `S3EndpointConfig` whose input cannot hold a secret."""
    loc = tuple(error["loc"])
    secret = not loc or loc[0] in _SECRET_FIELDS
    message = str(error["msg"]).replace("{", "{{").replace("}", "}}")
    shown = error["input"]
    if loc == ("endpoint_url",) and isinstance(shown, str):
        shown = shown_url(shown)  # a user name and password in the URL (refused) are not echoed either
    return {
        "type": PydanticCustomError(str(error["type"]), message),
        "loc": loc,
        "input": _HIDDEN if secret else shown,
    }


def known_env_variables() -> frozenset[str]:
    """Return every ``S3QBB_*`` environment variable s3qbb reads.

    The variables of the configuration models (every subclass of
    `EnvConfigModel`: their fields' variables and fallbacks), and those read
    elsewhere (`s3qbb.config_checks.OTHER_ENV_VARIABLES`:
    ``S3QBB_GRACE_PERIOD``, the test servers' variables).

    Returns
    -------
    names : `frozenset` [`str`]
        The variable names.
    """
    import importlib

    # The models defined outside this module (CacheConfig) exist once their module is imported.
    importlib.import_module(f"{__package__}.repo")
    names: set[str] = set(OTHER_ENV_VARIABLES)
    models: list[type[EnvConfigModel]] = [EnvConfigModel]
    while models:
        model = models.pop()
        models.extend(model.__subclasses__())
        if model is not EnvConfigModel:
            names.update(v for variables in model.env_aliases().values() for v in variables)
    return frozenset(n for n in names if n.startswith(ENV_PREFIX))
