"""S3 access: the object layer, its transports, client factory, retry classification, error translation.

This package (with `s3qbb.testing`) is the only place that imports boto3 or
obstore: `s3qbb.s3.objects.S3Bucket` sends its requests through a transport
(`s3qbb.s3.transport`), boto3 by default or obstore. Its names are loaded on
first use, so importing s3qbb imports neither.
"""

from __future__ import annotations

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

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import clear_client_cache, make_client, new_client
    from .errors import (
        S3ServiceError,
        TruncatedBodyError,
        is_transient,
        s3_uri,
        translate_client_error,
        translate_error,
    )
    from .policy import make_retry_policy

_WHERE = {
    "S3ServiceError": ".errors",
    "TruncatedBodyError": ".errors",
    "clear_client_cache": ".client",
    "is_transient": ".errors",
    "make_client": ".client",
    "make_retry_policy": ".policy",
    "new_client": ".client",
    "s3_uri": ".errors",
    "translate_client_error": ".errors",
    "translate_error": ".errors",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
