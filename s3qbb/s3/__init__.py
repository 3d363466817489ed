"""S3 access: client factory, retry classification and error translation.

This package (with `s3qbb.testing`) is the only place that imports boto3.
"""

from __future__ import annotations

from .client import clear_client_cache, make_client, make_retry_policy, new_client
from .errors import (
    S3ServiceError,
    TruncatedBodyError,
    is_transient,
    s3_uri,
    translate_client_error,
    translate_error,
)

__all__ = [
    "S3ServiceError",
    "TruncatedBodyError",
    "clear_client_cache",
    "is_transient",
    "make_client",
    "make_retry_policy",
    "new_client",
    "s3_uri",
    "translate_client_error",
    "translate_error",
]
