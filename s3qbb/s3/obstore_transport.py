"""The obstore transport: `~s3qbb.s3.transport.Transport` requests through obstore (Rust object_store).

Chosen with ``S3EndpointConfig(transport="obstore")`` (``S3QBB_S3_TRANSPORT=obstore``;
``pip install 's3qbb[obstore]'``). Small PUT, GET, ranged GET, HEAD, LIST and
DELETE go through one cached `obstore.store.S3Store` per endpoint and bucket,
with obstore's own retries off (``max_retries=0``: `s3qbb.retry.RetryPolicy`
is the one retry layer). None of them imports boto3 or botocore.

What obstore 0.12 cannot send goes through a boto3 client of the same
configuration, created (and boto3 imported) on first need, so no guarantee is
weakened: multipart uploads (object_store cannot complete one with
``If-Match`` on the placeholder it replaces, nor send per-part checksums of
s3qbb's choice), conditional and batch deletes, listings of incomplete
multipart uploads, and a listing that meets a key object_store cannot
represent (an empty or ``.``/``..`` path segment). See docs/datastores.rst,
"Transports".

obstore raises exceptions without the HTTP status or the S3 error code as
attributes; `s3qbb.s3.obstore_errors.transport_error` reads them from the
error's text and returns a `~s3qbb.s3.transport.TransportError`, which the
error tables classify and translate by code and status like a botocore
``ClientError``.
"""

from __future__ import annotations

__all__ = ["ObstoreTransport", "clear_store_cache", "resolve_region", "transport_for"]

import datetime
import io
import logging
import os
import threading
import time
import urllib.parse
from typing import TYPE_CHECKING, Any, TypeVar

from ..config import register_secrets
from ..errors import ConfigError, CredentialsError, S3qbbError
from .errors import TruncatedBodyError, s3_uri
from .obstore_errors import (
    BODY_CUT,
    cut_get_error,
    is_panic,
    panic_advice,
    refused_conditional_put,
    transport_error,
    unsettled_conditional_put,
)
from .ownership import HeadResult
from .profiles import checked_region, profile_errors
from .transport import GetResult, ListPage, TransportError, UploadsPage, connection_key

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from obstore.store import S3Store

    from ..config import S3EndpointConfig
    from .boto3_transport import Boto3Transport
    from .checksums import Algorithm, Checksum, Digest

_LOG = logging.getLogger(__name__)
_REQUESTS = logging.getLogger("s3qbb.s3.requests")
_R = TypeVar("_R")

DEFAULT_REGION = "us-east-1"
"""Region used when neither the configuration, the environment nor the AWS config file names one."""

_PAGE = 1000
"""Keys per LIST request (the S3 maximum and default)."""

_NO_REQUEST_TIMEOUT = datetime.timedelta(days=1)
"""object_store bounds a whole request (30 s by default); boto3 does not: only reads are bounded."""

_STREAM_CHUNK = 256 * 1024
"""Bodies larger than this are read in chunks of this size (see `_read_body`)."""

_STANDARD_ATTRIBUTES = frozenset(
    {
        "content-disposition",
        "content-encoding",
        "content-language",
        "content-type",
        "cache-control",
        "storage-class",
    }
)
"""obstore attributes that are HTTP headers, not user metadata."""


def transport_for(config: S3EndpointConfig, bucket: str, *, client: Any = None) -> ObstoreTransport:
    """Return an `ObstoreTransport` on ``bucket`` sharing the cached store of ``config``.

    Raises
    ------
    ConfigError
        If obstore is not installed.
    CredentialsError
        If no credentials can be found.
    """
    if client is not None:
        raise TypeError("the obstore transport does not take a boto3 client")
    store, endpoint = _STORES.get(config, bucket)
    return ObstoreTransport(store, bucket, config, endpoint)


class ObstoreTransport:
    """Single requests on one bucket through an `obstore.store.S3Store`.

    Parameters
    ----------
    store : `obstore.store.S3Store`
        The store (its own retries off).
    bucket : `str`
        Bucket name.
    config : `s3qbb.config.S3EndpointConfig`
        Endpoint configuration (for the boto3 client of the requests obstore cannot send).
    endpoint : `str` or `None`
        Endpoint URL, `None` for AWS.
    """

    name = "obstore"

    def __init__(self, store: S3Store, bucket: str, config: S3EndpointConfig, endpoint: str | None) -> None:
        import obstore

        self._obstore = obstore
        self._store = store
        self.bucket = bucket
        self.endpoint = endpoint
        self._config = config
        self._boto3: Boto3Transport | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ObstoreTransport({self.endpoint or 'AWS'}, bucket={self.bucket!r})"

    def _call(self, operation: str, key: str, fn: Callable[[], _R], sent: int | None = None) -> _R:
        """Run one obstore request: errors as `TransportError`, logged at INFO on ``s3qbb.s3.requests``."""
        started = time.perf_counter() if _REQUESTS.isEnabledFor(logging.INFO) else None
        try:
            result = fn()
        except S3qbbError:  # TransportError, TruncatedBodyError: already in s3qbb's terms
            raise
        except BaseException as err:
            # A Rust panic is a BaseException (pyo3's PanicException): no `except Exception` catches it.
            if not isinstance(err, Exception) and not is_panic(err):
                raise  # KeyboardInterrupt, SystemExit
            failure = transport_error(err, f"{operation} {s3_uri(self.bucket, key)}")
            if started is not None:
                _REQUESTS.info(
                    "%s %s: %s after %.1f ms",
                    operation,
                    s3_uri(self.bucket, key).rstrip("/"),
                    f"HTTP {failure.status}"
                    if failure.status is not None
                    else f"TransportError({failure.kind})",
                    1e3 * (time.perf_counter() - started),
                )
            raise failure from err
        if started is not None:
            received = len(result.body) if isinstance(result, GetResult) else None
            size = f", {sent} bytes sent" if sent else ""
            size += f", {received} bytes" if received is not None else ""
            _REQUESTS.info(
                "%s %s: ok%s, %.1f ms (obstore)",
                operation,
                s3_uri(self.bucket, key).rstrip("/"),
                size,
                1e3 * (time.perf_counter() - started),
            )
        return result

    def _fallback(self) -> Boto3Transport:
        """Return the boto3 transport of this configuration, for the requests obstore cannot send."""
        if self._boto3 is None:
            with self._lock:
                if self._boto3 is None:
                    from .boto3_transport import transport_for as boto3_transport_for

                    _LOG.debug("obstore transport: creating a boto3 client for requests obstore cannot send")
                    self._boto3 = boto3_transport_for(self._config, self.bucket)
        return self._boto3

    # ---------------------------------------------------------------- reads

    def get_object(
        self,
        key: str,
        byte_range: tuple[int, int] | None,
        digest: Callable[[], Digest] | None = None,
    ) -> GetResult:
        """See `~s3qbb.s3.transport.Transport.get_object`.

        A whole read's size is the end of its range (object_store's range of
        a GET without one is ``(0, size)``); only a ranged read asks for the
        object's metadata (its total size), which costs a dict with a
        `~datetime.datetime` per response. The digest is fed each chunk of a
        streamed body as it arrives (see `_read_body`).
        """
        get, store = self._obstore.get, self._store
        answered = False  # an error raised before: of the request, not of a streamed body

        def fetch() -> GetResult:
            nonlocal answered
            response = get(store, key, options={"range": byte_range}) if byte_range else get(store, key)
            answered = True
            start, stop = response.range
            fed = digest() if digest is not None else None
            body, received = _read_body(response, stop - start, fed)
            if received != stop - start:
                raise TruncatedBodyError(
                    f"GET {s3_uri(self.bucket, key)} returned {received} of {stop - start} bytes; "
                    "the read will be retried."
                )
            size = stop if byte_range is None else int(response.meta["size"])
            return GetResult(body, size, None, _user_metadata(response.attributes), fed)

        try:
            return self._call("GetObject", key, fetch)
        except TransportError as failure:
            if failure.reason != BODY_CUT or answered:
                raise
            # An error response of lost status (a 404? a 503?): a HEAD, which has no body to lose, tells.
            raise cut_get_error(failure, lambda: self.head_object(key)) from failure

    def head_object(self, key: str) -> HeadResult | None:
        """See `~s3qbb.s3.transport.Transport.head_object` (a HEAD: obstore's ``head`` has no metadata)."""

        def fetch() -> HeadResult | None:
            try:
                response = self._obstore.get(self._store, key, options={"head": True})
            except FileNotFoundError:
                return None
            meta = response.meta
            return HeadResult(int(meta["size"]), _user_metadata(response.attributes), meta["e_tag"])

        return self._call("HeadObject", key, fetch)

    def list_objects(self, prefix: str, *, token: str | None, start_after: str | None) -> ListPage:
        """See `~s3qbb.s3.transport.Transport.list_objects`; the token is the last key listed.

        object_store lists whole path segments: a prefix not ending in ``/``,
        or a listing that meets a key it cannot represent, is listed by boto3.
        """
        after = token or start_after
        if prefix and not prefix.endswith("/"):
            return self._fallback_list(prefix, after)

        def fetch() -> tuple[list[tuple[str, str]], list[int]]:
            stream = self._obstore.list(
                self._store, prefix.rstrip("/") or None, offset=after, chunk_size=_PAGE
            )
            items: list[Any] = next(iter(stream), [])
            return [(item["path"], item["e_tag"] or "") for item in items], [item["size"] for item in items]

        try:
            entries, sizes = self._call("ListObjectsV2", prefix, fetch)
        except TransportError as err:
            if not isinstance(err.__cause__, self._obstore.exceptions.InvalidPathError):
                raise
            return self._fallback_list(prefix, after)
        # obstore does not say whether the server truncated the page: a full page may be followed
        # by another (an empty one when the keys are an exact multiple of 1,000).
        return ListPage(entries, entries[-1][0] if len(entries) >= _PAGE else None, sizes)

    def _fallback_list(self, prefix: str, after: str | None) -> ListPage:
        page = self._fallback().list_objects(prefix, token=None, start_after=after)
        more = page.entries[-1][0] if page.next_token and page.entries else None
        return ListPage(page.entries, more, page.sizes)

    def list_multipart_uploads(
        self, prefix: str, *, markers: tuple[str, str] | None, page_size: int
    ) -> UploadsPage:
        """See `~s3qbb.s3.transport.Transport.list_multipart_uploads` (boto3: obstore cannot)."""
        return self._fallback().list_multipart_uploads(prefix, markers=markers, page_size=page_size)

    # --------------------------------------------------------------- writes

    def put_object(
        self,
        key: str,
        body: bytes,
        *,
        metadata: Mapping[str, str],
        checksum: Checksum | None,
        if_none_match: bool = False,
        if_match: str | None = None,
    ) -> str | None:
        """See `~s3qbb.s3.transport.Transport.put_object`.

        obstore cannot send a CRC32C ``checksum`` (it is kept in the object
        metadata and the record by `~s3qbb.s3.objects.S3Bucket`, and verified
        on read); instead every PUT carries the body's SHA-256 both signed
        (``x-amz-content-sha256``) and as ``x-amz-checksum-sha256``, which the
        server checks (AWS and SeaweedFS do; moto does not).
        """
        mode: Any = "create" if if_none_match else ({"e_tag": if_match} if if_match else "overwrite")
        attributes: dict[str, str] = dict(metadata)

        def send() -> str | None:
            result = self._obstore.put(
                self._store, key, body, mode=mode, attributes=attributes, use_multipart=False
            )
            etag: str | None = result["e_tag"]
            return etag

        try:
            return self._call("PutObject", key, send, sent=len(body))
        except TransportError as failure:
            if failure.reason != BODY_CUT or not (if_none_match or if_match):
                raise
            # An error of lost status (a 412? a 503?): the object tells, as botocore's status does.
            what = f"PutObject {s3_uri(self.bucket, key)}"
            try:
                head = self.head_object(key)
            except TransportError as err:
                raise unsettled_conditional_put(failure, err, what) from err
            raise refused_conditional_put(failure, head, what, if_match=if_match) from failure

    def create_multipart_upload(self, key: str, *, metadata: Mapping[str, str], algorithm: Algorithm) -> str:
        """See `~s3qbb.s3.transport.Transport.create_multipart_upload` (boto3: obstore cannot)."""
        return self._fallback().create_multipart_upload(key, metadata=metadata, algorithm=algorithm)

    def upload_part(
        self, key: str, upload_id: str, number: int, body: bytes, checksum: Checksum
    ) -> dict[str, Any]:
        """See `~s3qbb.s3.transport.Transport.upload_part` (boto3: obstore cannot)."""
        return self._fallback().upload_part(key, upload_id, number, body, checksum)

    def complete_multipart_upload(
        self, key: str, upload_id: str, parts: Iterable[Mapping[str, Any]], *, if_match: str | None
    ) -> None:
        """See `~s3qbb.s3.transport.Transport.complete_multipart_upload` (boto3: obstore cannot)."""
        self._fallback().complete_multipart_upload(key, upload_id, parts, if_match=if_match)

    def abort_multipart_upload(self, key: str, upload_id: str) -> bool:
        """See `~s3qbb.s3.transport.Transport.abort_multipart_upload` (boto3: obstore cannot)."""
        return self._fallback().abort_multipart_upload(key, upload_id)

    # -------------------------------------------------------------- deletes

    def delete_object(self, key: str, *, if_match: str | None = None) -> None:
        """See `~s3qbb.s3.transport.Transport.delete_object` (a conditional DELETE goes through boto3)."""
        if if_match:
            self._fallback().delete_object(key, if_match=if_match)
            return
        self._call("DeleteObject", key, lambda: self._obstore.delete(self._store, key))

    def delete_objects(self, keys: Sequence[str]) -> dict[str, str]:
        """See `~s3qbb.s3.transport.Transport.delete_objects` (boto3: obstore reports no per-key errors)."""
        return self._fallback().delete_objects(keys)


def _read_body(response: Any, expected: int, digest: Digest | None) -> tuple[bytes, int]:
    """Return the body of a GET response as `bytes`, copied once, and the number of bytes received.

    ``digest`` (if any) is fed the body: each chunk as it arrives, while it
    is hot in the cache and the next is still on the wire, so a verified
    read has only a comparison left when the last byte lands (checksumming
    the whole 64 MiB body afterwards was ~7 ms, serial after the download).

    ``bytes(response.bytes())`` copies twice: object_store first gathers the
    body into one buffer of its own, then `bytes` copies that into Python;
    each copy writes (and page-faults) a fresh buffer of the body's size,
    which made a 64 MiB read ~30 ms of CPU slower than raw obstore's
    ``.bytes()``. A body of more than one `_STREAM_CHUNK` is streamed
    instead: chunks of `_STREAM_CHUNK` bytes (small, cache-hot) are written
    into an `io.BytesIO` made on a zeroed `bytes` of the body's size (growing
    it chunk by chunk reallocates, which copies when the allocator cannot
    extend in place; ``bytes(n)`` is calloc'd, so zeroing it costs no pass
    over the memory), whose buffer ``getvalue`` returns without a copy. The
    count of bytes received, not the buffer's length, tells a short body.
    """
    if expected <= _STREAM_CHUNK:
        body = bytes(response.bytes())
        if digest is not None:
            digest.update(body)
        return body, len(body)
    buffer = io.BytesIO(bytes(expected))  # calloc'd: no pass to zero it; the only reference: no copy
    received = 0
    update = digest.update if digest is not None else None
    for chunk in response.stream(min_chunk_size=_STREAM_CHUNK):
        received += buffer.write(chunk)
        if update is not None:
            update(chunk)
    return buffer.getvalue(), received


def _user_metadata(attributes: Mapping[str, str]) -> dict[str, str]:
    """Return the user metadata among obstore's attributes, keys lowercase (as `object_metadata` does)."""
    return {low: v for k, v in attributes.items() if (low := k.lower()) not in _STANDARD_ATTRIBUTES}


# -------------------------------------------------------------- the stores


def _environ_value(name: str) -> str:
    return os.environ.get(name, "").strip()


def resolve_region(config: S3EndpointConfig) -> tuple[str, str]:
    """Return the region of ``config`` and where it comes from, without boto3.

    ``config.region``, else ``AWS_REGION``, else ``AWS_DEFAULT_REGION``, else
    the ``region`` of the profile (``config.profile``, ``AWS_PROFILE`` or
    ``default``) in the AWS config file (``AWS_CONFIG_FILE``, ``~/.aws/config``),
    else `DEFAULT_REGION`: the order boto3 follows.

    Parameters
    ----------
    config : `s3qbb.config.S3EndpointConfig`
        Endpoint configuration.

    Returns
    -------
    region, source : `tuple` [`str`, `str`]
        The region and a description of its source.
    """
    if config.region is not None:
        return config.region, config.field_sources["region"]
    for variable in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        if value := _environ_value(variable):
            return checked_region(value, f"environment {variable}"), f"environment {variable}"
    profile = config.profile or _environ_value("AWS_PROFILE") or "default"
    path = _environ_value("AWS_CONFIG_FILE") or os.path.expanduser("~/.aws/config")
    if os.path.isfile(path):
        # Imported here: a job whose region is set does not pay for configparser (measured with
        # benchmarks.job_start).
        import configparser

        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, OSError, UnicodeDecodeError):
            parser = configparser.RawConfigParser()
        section = "default" if profile == "default" else f"profile {profile}"
        if parser.has_option(section, "region"):
            source = f"AWS config file, profile {profile}"
            return checked_region(parser.get(section, "region").strip(), source), source
    return DEFAULT_REGION, "s3qbb default"


def _endpoint(config: S3EndpointConfig) -> tuple[str | None, str]:
    if config.endpoint_url is not None:
        return config.endpoint_url, config.field_sources["endpoint_url"]
    if _environ_value("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS").lower() != "true":
        for variable in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
            if value := _environ_value(variable):
                return value, f"environment {variable}"
    return None, "AWS endpoint of the region"


def _credentials(config: S3EndpointConfig) -> tuple[dict[str, Any], str]:
    """Return the credential arguments of an `S3Store` and where they come from.

    Explicit credentials, else ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``
    (``AWS_SESSION_TOKEN``) unless a profile is named, else object_store's own
    chain when a web identity token file or an ECS container endpoint is
    configured, else boto3's chain (profiles, SSO, instance metadata ...)
    through obstore's ``Boto3CredentialProvider``, which imports boto3.
    """
    if config.access_key_id is not None and config.secret_access_key is not None:
        explicit: dict[str, Any] = {
            "access_key_id": config.access_key_id,
            "secret_access_key": config.secret_access_key.get_secret_value(),
        }
        if config.session_token is not None:
            explicit["session_token"] = config.session_token.get_secret_value()
        return explicit, f"explicit ({config.field_sources['access_key_id']})"
    profile = config.profile or _environ_value("AWS_PROFILE")
    key, secret = _environ_value("AWS_ACCESS_KEY_ID"), _environ_value("AWS_SECRET_ACCESS_KEY")
    if key and secret and not config.profile:
        register_secrets((key, secret, _environ_value("AWS_SESSION_TOKEN")))
        found: dict[str, Any] = {"access_key_id": key, "secret_access_key": secret}
        if token := _environ_value("AWS_SESSION_TOKEN"):
            found["session_token"] = token
        return found, "environment AWS_ACCESS_KEY_ID"
    if not profile and (
        _environ_value("AWS_WEB_IDENTITY_TOKEN_FILE")
        or _environ_value("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        or _environ_value("AWS_CONTAINER_CREDENTIALS_FULL_URI")
    ):
        return {}, "object_store chain (web identity or container credentials)"
    import boto3
    from obstore.auth.boto3 import Boto3CredentialProvider

    with profile_errors(config):
        session = boto3.Session(profile_name=config.profile)
        credentials = session.get_credentials()
    if credentials is None:
        raise CredentialsError(
            "No usable credentials were found for the obstore transport; set AWS_ACCESS_KEY_ID / "
            "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or the credentials of the S3 endpoint configuration."
        )
    frozen = credentials.get_frozen_credentials()
    register_secrets((frozen.access_key, frozen.secret_key, frozen.token))
    return {"credential_provider": Boto3CredentialProvider(session)}, f"boto3 chain: {credentials.method}"


def _create_store(config: S3EndpointConfig, bucket: str) -> tuple[S3Store, str | None]:
    try:
        from obstore.store import S3Store
    except ImportError as err:
        raise ConfigError(
            "S3 transport 'obstore' needs the obstore package: pip install 's3qbb[obstore]' "
            "(or set transport to 'boto3', S3QBB_S3_TRANSPORT=boto3)."
        ) from err
    endpoint, endpoint_source = _endpoint(config)
    region, region_source = resolve_region(config)
    credentials, credentials_source = _credentials(config)
    virtual = config.addressing_style == "virtual" or (config.addressing_style == "auto" and endpoint is None)
    url = endpoint
    if endpoint is not None and virtual:
        parts = urllib.parse.urlsplit(endpoint)  # object_store wants the bucket in a custom endpoint's host
        url = urllib.parse.urlunsplit(parts._replace(netloc=f"{bucket}.{parts.netloc}"))
    seconds = datetime.timedelta
    options: dict[str, Any] = {
        "connect_timeout": seconds(seconds=config.connect_timeout),
        "read_timeout": seconds(seconds=config.read_timeout),
        "timeout": _NO_REQUEST_TIMEOUT,
        "pool_max_idle_per_host": str(config.max_pool_connections),
        "user_agent": "s3qbb obstore",
    }
    if url is not None and url.startswith("http://"):
        options["allow_http"] = True
    kwargs: dict[str, Any] = {
        "region": region,
        "virtual_hosted_style_request": virtual,
        "conditional_put": "etag",
        "unsigned_payload": False,
        **credentials,
    }
    if url is not None:
        kwargs["endpoint"] = url
    # obstore cannot send s3qbb's CRC32C. Servers verify x-amz-checksum-sha256 (AWS, SeaweedFS), not all
    # verify the signed x-amz-content-sha256 (SeaweedFS 4.48 does not): send the former, the same digest.
    kwargs["checksum_algorithm"] = "sha256"
    if config.server_side_encryption:
        kwargs["server_side_encryption"] = config.server_side_encryption
        if config.sse_kms_key_id:
            kwargs["sse_kms_key_id"] = config.sse_kms_key_id
    try:
        store = S3Store(
            bucket,
            client_options=options,  # type: ignore[arg-type]
            retry_config={"max_retries": 0, "retry_timeout": seconds(seconds=config.read_timeout)},
            **kwargs,
        )
    except BaseException as err:
        if not is_panic(err):
            raise
        raise ConfigError(
            f"obstore could not build the store of bucket {bucket!r} at {endpoint or 'AWS'} "
            f"(endpoint from {endpoint_source}, region {region!r} from {region_source}): {panic_advice(err)}"
        ) from None
    _LOG.info(
        "S3 client (obstore): endpoint %s (from %s), region %s (from %s), credentials: %s",
        endpoint or "AWS",
        endpoint_source,
        region,
        region_source,
        credentials_source,
    )
    return store, endpoint


class _StoreCache:
    """Lock-protected cache of stores: one per connection configuration and bucket."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stores: dict[tuple[object, ...], tuple[S3Store, str | None]] = {}

    def get(self, config: S3EndpointConfig, bucket: str) -> tuple[S3Store, str | None]:
        key = (
            *connection_key(config),
            bucket,
            config.server_side_encryption,
            config.sse_kms_key_id,
        )
        with self._lock:
            found = self._stores.get(key)
            if found is None:
                found = self._stores[key] = _create_store(config, bucket)
            return found

    def clear(self) -> None:
        with self._lock:
            self._stores.clear()


_STORES = _StoreCache()


def clear_store_cache() -> None:
    """Forget every cached store (for tests, or after credentials change)."""
    _STORES.clear()
