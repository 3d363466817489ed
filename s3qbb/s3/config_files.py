"""Small text files on S3 (configuration, quantum descriptions) read with the environment's endpoint."""

from __future__ import annotations

__all__ = ["bucket_for_uri", "read_s3_bytes", "read_s3_text", "split_s3_uri"]

import urllib.parse

from ..config import S3EndpointConfig
from ..errors import ConfigError, DatasetNotFoundError
from .objects import S3Bucket


def split_s3_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/key`` into bucket and key.

    Raises
    ------
    ConfigError
        If the URI has no bucket or no key.
    """
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not uri.startswith("s3://") or not bucket or not key:
        raise ConfigError(f"Expected an s3://bucket/key URI, got {uri!r}.")
    return bucket, key


def read_s3_bytes(uri: str, config: S3EndpointConfig | None = None) -> bytes:
    """Read an object in one GET (retried by the standard policy).

    Parameters
    ----------
    uri : `str`
        ``s3://bucket/key``.
    config : `s3qbb.config.S3EndpointConfig`, optional
        Endpoint; `S3EndpointConfig.from_env` by default.

    Raises
    ------
    DatasetNotFoundError
        If the object does not exist (a `FileNotFoundError`).

    Notes
    -----
    The key is the URI's path as written. If no object has it and the path
    holds percent-escapes, the key they decode to is read (one more GET): the
    URIs s3qbb prints percent-encode their keys (`s3qbb.core.uri.ResourceURI`),
    so a key ``run%20x/f`` is printed as ``s3://bucket/run%2520x/f``.
    """
    bucket, key = bucket_for_uri(uri, config)
    try:
        return bucket.get_checked(key).body
    except DatasetNotFoundError as err:
        decoded = urllib.parse.unquote(key)
        if decoded == key:
            raise
        try:
            return bucket.get_checked(decoded).body
        except DatasetNotFoundError:
            err.add_note(f"No object has the key it decodes to ({decoded!r}) either.")
            raise err from None


def bucket_for_uri(uri: str, config: S3EndpointConfig | None = None) -> tuple[S3Bucket, str]:
    """Return the object layer (shared client, standard policy) of ``s3://bucket/key`` and the key.

    Parameters
    ----------
    uri : `str`
        ``s3://bucket/key``.
    config : `s3qbb.config.S3EndpointConfig`, optional
        Endpoint; `S3EndpointConfig.from_env` by default.

    Raises
    ------
    ConfigError
        If the URI has no bucket or no key.
    """
    config = config or S3EndpointConfig.from_env()
    bucket_name, key = split_s3_uri(uri)
    return S3Bucket.open(config, bucket_name), key


def read_s3_text(uri: str, config: S3EndpointConfig | None = None) -> str:
    """Read a UTF-8 text object (see `read_s3_bytes`)."""
    return read_s3_bytes(uri, config).decode("utf-8")
