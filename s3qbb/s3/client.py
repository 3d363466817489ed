"""Factory of boto3 S3 clients and of the retry policy used with them.

`make_client` returns one client per distinct connection configuration and
reuses it: boto3 clients are thread-safe and own the connection pool, while
boto3 sessions are not thread-safe, so each cached client gets its own
session, created under a lock. botocore's own retries are turned off
(``total_max_attempts=1``, whatever ``AWS_MAX_ATTEMPTS`` and
``AWS_RETRY_MODE`` say) because `s3qbb.retry.RetryPolicy` is the only retry
layer, and botocore only computes or validates checksums when an operation
requires it because s3qbb sends and verifies them itself. Response
timestamps are parsed by `parse_timestamp` (the standard library for S3's
forms) rather than by ``dateutil``, about a sixth of a small GET's client CPU.
Each request is logged at INFO level by the ``s3qbb.s3.requests`` logger
(``s3qbb -v``): operation, URI, HTTP status, bytes and milliseconds.
"""

from __future__ import annotations

import datetime
import email.utils
import logging
import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import boto3
import botocore.config
import botocore.loaders
import botocore.session
import botocore.utils

from ..config import S3EndpointConfig, register_secrets
from .policy import make_retry_policy
from .profiles import checked_region, profile_errors
from .transport import connection_key

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_s3 import S3Client

__all__ = [
    "DEFAULT_REGION",
    "botocore_config",
    "clear_client_cache",
    "client_cache_size",
    "make_client",
    "make_retry_policy",
    "new_client",
    "parse_timestamp",
    "resolve_region",
]

_LOG = logging.getLogger(__name__)

DEFAULT_REGION = "us-east-1"
"""Region used when neither the configuration nor the AWS chain names one."""

_USER_AGENT_EXTRA = "s3qbb"


def botocore_config(config: S3EndpointConfig, region: str) -> botocore.config.Config:
    """Return the botocore client configuration for an endpoint configuration.

    Parameters
    ----------
    config : `s3qbb.config.S3EndpointConfig`
        Endpoint configuration.
    region : `str`
        Resolved region name.

    Returns
    -------
    botocore_config : `botocore.config.Config`
        Timeouts, pool size and addressing style from ``config``; a single
        attempt per request; checksums only where an operation requires them.
    """
    return botocore.config.Config(
        region_name=region,
        connect_timeout=config.connect_timeout,
        read_timeout=config.read_timeout,
        max_pool_connections=config.max_pool_connections,
        retries={"mode": "standard", "total_max_attempts": 1},
        s3={"addressing_style": config.addressing_style},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        user_agent_extra=_USER_AGENT_EXTRA,
    )


def parse_timestamp(value: Any) -> datetime.datetime:
    """Parse a timestamp of an S3 response as botocore does, without dateutil for S3's two forms.

    botocore parses every timestamp with ``dateutil`` (about 45 us per value):
    the ``Last-Modified`` header of each GET and HEAD, and the ``LastModified``
    of each of up to 1,000 keys of a LIST page. S3 writes headers as RFC 7231
    HTTP dates (``Mon, 07 Dec 2026 02:37:13 GMT``) and XML bodies in ISO 8601
    UTC (``2026-12-07T02:37:13.000Z``); these are parsed by the standard
    library (3 us and 0.1 us), any other form by botocore's own parser.

    Parameters
    ----------
    value : `str`, `int` or `float`
        The timestamp as the response carries it.

    Returns
    -------
    timestamp : `datetime.datetime`
        The same instant botocore's parser returns, in UTC.
    """
    if isinstance(value, str):
        if value.endswith(" GMT"):
            try:
                return email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                pass
        elif value.endswith("Z") and "T" in value:
            try:
                return datetime.datetime.fromisoformat(value)
            except ValueError:
                pass
    parsed: datetime.datetime = botocore.utils.parse_timestamp(value)
    return parsed


def _session(config: S3EndpointConfig, loader: botocore.loaders.Loader | None = None) -> boto3.Session:
    kwargs: dict[str, Any] = {"profile_name": config.profile, "region_name": config.region}
    core = botocore.session.get_session()
    core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=parse_timestamp)
    kwargs["botocore_session"] = core
    if loader is not None:
        # Reuse parsed service models (read-only once loaded) instead of reloading them per session.
        core.register_component("data_loader", loader)
    if config.access_key_id is not None and config.secret_access_key is not None:
        kwargs["aws_access_key_id"] = config.access_key_id
        kwargs["aws_secret_access_key"] = config.secret_access_key.get_secret_value()
        if config.session_token is not None:
            kwargs["aws_session_token"] = config.session_token.get_secret_value()
    with profile_errors(config):
        return boto3.Session(**kwargs)


def resolve_region(config: S3EndpointConfig, session: boto3.Session | None = None) -> str:
    """Return the region a client for ``config`` uses.

    Parameters
    ----------
    config : `s3qbb.config.S3EndpointConfig`
        Endpoint configuration.
    session : `boto3.Session`, optional
        Session whose AWS chain is consulted when ``config.region`` is `None`.

    Returns
    -------
    region : `str`
        ``config.region`` (the configuration, else ``S3QBB_S3_REGION``), else
        ``AWS_REGION`` (which botocore does not read), else the chain's region
        (``AWS_DEFAULT_REGION``, then the profile), else `DEFAULT_REGION`.

    Raises
    ------
    s3qbb.errors.ConfigError
        Raised if the region of the AWS chain is not a valid region name, or
        the profile is in none of the AWS config files.
    """
    if config.region is not None:
        return config.region
    if aws_region := os.environ.get("AWS_REGION", "").strip():
        return checked_region(aws_region, "environment AWS_REGION")
    if session is None:
        session = _session(config)
    with profile_errors(config):
        region = session.region_name
    return checked_region(region, _region_source(config, session)) if region else DEFAULT_REGION


def _cache_key(config: S3EndpointConfig) -> tuple[object, ...]:
    """Fields of ``config`` that shape a client (retry and transfer settings do not)."""
    return connection_key(config)


class _ClientCache:
    """Lock-protected cache of S3 clients keyed on their connection settings."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[tuple[object, ...], S3Client] = {}
        self._loader: botocore.loaders.Loader | None = None

    def get(
        self,
        config: S3EndpointConfig,
        factory: Callable[[S3EndpointConfig, botocore.loaders.Loader], S3Client],
    ) -> S3Client:
        key = _cache_key(config)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                if self._loader is None:
                    self._loader = botocore.loaders.create_loader()
                client = factory(config, self._loader)  # Under the lock: the loader is shared.
                self._clients[key] = client
            return client

    def clear(self) -> None:
        with self._lock:
            clients = list(self._clients.values())
            self._clients.clear()
        for client in clients:
            client.close()

    def __len__(self) -> int:
        with self._lock:
            return len(self._clients)


_CLIENTS = _ClientCache()


_ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
"""botocore's endpoint variables, in its order of precedence (below an explicit ``endpoint_url``)."""


def _endpoint_source(config: S3EndpointConfig) -> str:
    """Say where the endpoint of a client for ``config`` comes from."""
    if config.endpoint_url is not None:
        return config.field_sources["endpoint_url"]
    if os.environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").strip().lower() != "true":
        for variable in _ENDPOINT_VARIABLES:
            if os.environ.get(variable, "").strip():
                return f"environment {variable}"
    return "AWS chain (profile endpoint_url, else the AWS endpoint of the region)"


def _region_source(config: S3EndpointConfig, session: boto3.Session) -> str:
    if config.region is not None:
        return config.field_sources["region"]
    if os.environ.get("AWS_REGION", "").strip():
        return "environment AWS_REGION"
    if session.region_name is None:
        return "s3qbb default"
    if os.environ.get("AWS_DEFAULT_REGION", "").strip():
        return "environment AWS_DEFAULT_REGION"
    return "AWS chain (profile)"


def _credentials_source(config: S3EndpointConfig, session: boto3.Session) -> str:
    """Register the credentials a client resolved for redaction, and say where they come from."""
    if config.has_explicit_credentials:
        return f"explicit ({config.field_sources['access_key_id']})"
    # Already resolved (and cached by the session) when the client was created: no extra lookup.
    credentials = session.get_credentials()
    if credentials is None:
        return "none found (unsigned requests will be refused)"
    frozen = credentials.get_frozen_credentials()
    register_secrets((frozen.access_key, frozen.secret_key, frozen.token))
    profile = (
        f" profile {config.profile or session.profile_name}" if credentials.method in _PROFILE_METHODS else ""
    )
    return f"AWS chain: {credentials.method}{profile}"


_PROFILE_METHODS = frozenset(
    {"shared-credentials-file", "config-file", "assume-role", "sso", "custom-process"}
)


_REQUESTS = logging.getLogger("s3qbb.s3.requests")
"""Logs each S3 request at INFO level (``s3qbb -v``): operation, URI, status, bytes, milliseconds."""


def _size(value: object) -> int | None:
    if isinstance(value, bytes | bytearray | memoryview):
        return len(value)
    return None


def _provide_client_params(
    params: dict[str, Any], model: Any, context: dict[str, Any], **kwargs: Any
) -> None:
    if _REQUESTS.isEnabledFor(logging.INFO):
        context["s3qbb_started"] = time.perf_counter()
        context["s3qbb_operation"] = model.name
        context["s3qbb_uri"] = f"s3://{params.get('Bucket', '')}/{params.get('Key', '')}".rstrip("/")
        context["s3qbb_sent"] = params.get("ContentLength") or _size(params.get("Body"))


def _after_call(
    http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any], **kwargs: Any
) -> None:
    started = context.get("s3qbb_started")
    if started is None:
        return
    status = getattr(http_response, "status_code", None)
    sent = context.get("s3qbb_sent")
    received = parsed.get("ContentLength") if model.name == "GetObject" else None
    size = f", {sent} bytes sent" if sent else ""
    size += f", {received} bytes" if received is not None else ""
    _REQUESTS.info(
        "%s %s: HTTP %s%s, %.1f ms",
        model.name,
        context.get("s3qbb_uri", "?"),
        status,
        size,
        1e3 * (time.perf_counter() - started),
    )


def _after_call_error(exception: BaseException, context: dict[str, Any], **kwargs: Any) -> None:
    started = context.get("s3qbb_started")
    if started is not None:
        _REQUESTS.info(
            "%s %s: %s after %.1f ms",
            context.get("s3qbb_operation", "?"),
            context.get("s3qbb_uri", "?"),
            type(exception).__name__,
            1e3 * (time.perf_counter() - started),
        )


EXPECT_CONTINUE_MIN_BYTES = 1024 * 1024
"""Smallest PutObject body sent with ``Expect: 100-continue``.

botocore asks for ``100 Continue`` before every PUT body, whatever its size,
and then reads the interim response a byte at a time: for a small body that
is a wait of one round trip and some 25 socket reads holding the GIL, to
save sending a few bytes that a refused request (a create-only conflict, a
denied write) would have sent in vain. Larger bodies, and every multipart
part, keep the header.
"""


def _small_put_without_expect(model: Any, params: dict[str, Any], **kwargs: Any) -> None:
    # Registered after botocore's `add_expect_header` on the same event, so it runs after it.
    if model.name != "PutObject":
        return
    headers = params.get("headers", {})
    if "Expect" not in headers:
        return
    size = botocore.utils.determine_content_length(params.get("body"))
    if size is not None and size < EXPECT_CONTINUE_MIN_BYTES:
        del headers["Expect"]


def _create_client(config: S3EndpointConfig, loader: botocore.loaders.Loader | None = None) -> S3Client:
    with profile_errors(config):  # AWS_PROFILE is only looked up when the session is first used
        return _configured_client(config, loader)


def _configured_client(config: S3EndpointConfig, loader: botocore.loaders.Loader | None) -> S3Client:
    session = _session(config, loader)
    region = resolve_region(config, session)
    client = session.client("s3", endpoint_url=config.endpoint_url, config=botocore_config(config, region))
    client.meta.events.register("provide-client-params.s3", _provide_client_params)
    client.meta.events.register("after-call.s3", _after_call)
    client.meta.events.register("after-call-error.s3", _after_call_error)
    client.meta.events.register_last("before-call.s3", _small_put_without_expect)
    # Where data goes is worth one line per client at INFO: a wrong endpoint writes to the wrong place.
    _LOG.info(
        "S3 client: endpoint %s (from %s), region %s (from %s), credentials: %s",
        client.meta.endpoint_url,
        _endpoint_source(config),
        region,
        _region_source(config, session),
        _credentials_source(config, session),
    )
    return client


def make_client(config: S3EndpointConfig) -> S3Client:
    """Return the shared S3 client for an endpoint configuration.

    Parameters
    ----------
    config : `s3qbb.config.S3EndpointConfig`
        Endpoint configuration. Configurations that differ only in retry,
        checksum, encryption or transfer settings share one client.

    Returns
    -------
    client : `mypy_boto3_s3.S3Client`
        A thread-safe boto3 client. It is created on first use and cached for
        the life of the process (see `clear_client_cache`); credentials from
        the AWS chain are resolved when it is created.

    Raises
    ------
    s3qbb.errors.ConfigError
        Raised if the profile (``config.profile``, else ``AWS_PROFILE``) is
        in none of the AWS config files.
    """
    return _CLIENTS.get(config, _create_client)


def new_client(config: S3EndpointConfig) -> S3Client:
    """Return a new client configured like `make_client` would, outside the cache.

    Parameters
    ----------
    config : `s3qbb.config.S3EndpointConfig`
        Endpoint configuration.

    Returns
    -------
    client : `mypy_boto3_s3.S3Client`
        A client nobody else holds, e.g. for attaching fault injection
        without affecting other users of the cached client; close it after use.
    """
    return _create_client(config)


def clear_client_cache() -> None:
    """Close and forget every cached client, of both transports (for tests, or after credentials change)."""
    _CLIENTS.clear()
    obstore_transport = sys.modules.get(f"{__package__}.obstore_transport")
    if obstore_transport is not None:
        obstore_transport.clear_store_cache()


def client_cache_size() -> int:
    """Return the number of cached clients.

    Returns
    -------
    size : `int`
        Number of distinct clients created since the cache was last cleared.
    """
    return len(_CLIENTS)
