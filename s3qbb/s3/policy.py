"""The retry policy of S3 requests, buildable without importing boto3 (imported on the first error)."""

from __future__ import annotations

__all__ = ["is_connection_error", "make_retry_policy"]

from typing import Any

from ..config import RetryConfig, S3EndpointConfig
from ..retry import RetryPolicy, RetryStats


def _is_transient(exc: BaseException) -> bool:
    from .errors import is_transient

    return is_transient(exc)


def is_connection_error(exc: BaseException) -> bool:
    """Tell whether an error of an S3 request means the service could not be reached.

    Parameters
    ----------
    exc : `BaseException`
        The error raised by a transport's request.

    Returns
    -------
    connection_error : `bool`
        `True` for a refused connection, a DNS failure, an unreachable host or
        a connect timeout (botocore's ``EndpointConnectionError``,
        ``ConnectTimeoutError``, ``ProxyConnectionError``, a
        `~s3qbb.s3.transport.TransportError` of kind ``"connect"``) and a plain
        `ConnectionRefusedError`. A connection reset *during* a request is not
        one: it counts as an attempt, like a 503.
    """
    if isinstance(exc, ConnectionRefusedError):
        return True
    from .transport import TransportError

    if isinstance(exc, TransportError):
        return exc.kind == "connect"
    if not _botocore_loaded():
        return False
    import botocore.exceptions

    return isinstance(
        exc,
        botocore.exceptions.EndpointConnectionError
        | botocore.exceptions.ConnectTimeoutError
        | botocore.exceptions.ProxyConnectionError,
    )


def _botocore_loaded() -> bool:
    import sys

    return "botocore.exceptions" in sys.modules


def _error_kind(exc: BaseException) -> str:
    from .errors import error_kind

    return error_kind(exc)


def make_retry_policy(
    config: RetryConfig | S3EndpointConfig | None = None,
    *,
    stats: RetryStats | None = None,
    **kwargs: Any,
) -> RetryPolicy:
    """Return a retry policy that classifies errors of S3 requests.

    Parameters
    ----------
    config : `s3qbb.config.RetryConfig` or `s3qbb.config.S3EndpointConfig`, optional
        Retry bounds, or an endpoint configuration whose ``retry`` is used;
        `RetryConfig` defaults if not given.
    stats : `s3qbb.retry.RetryStats`, optional
        Counters to update.
    **kwargs
        Other keyword arguments of `s3qbb.retry.RetryPolicy` (``sleep``,
        ``clock``, ``rng``).

    Returns
    -------
    policy : `s3qbb.retry.RetryPolicy`
        Policy using `s3qbb.s3.errors.is_transient`, naming errors by S3 code,
        retrying failures to reach the service (`is_connection_error`) for
        ``connect_retry_time`` seconds.
    """
    retry_config = config.retry if isinstance(config, S3EndpointConfig) else config
    return RetryPolicy(
        retry_config,
        is_transient=_is_transient,
        error_kind=_error_kind,
        is_connection_error=is_connection_error,
        stats=stats,
        **kwargs,
    )
