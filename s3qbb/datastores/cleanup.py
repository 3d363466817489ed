"""Clean up what interrupted writes leave behind in a bucket: incomplete multipart uploads.

A process killed while uploading a large dataset in parts (SIGKILL, a lost
node, a batch-system timeout) never reaches ``CompleteMultipartUpload`` nor
``AbortMultipartUpload``. No object appears, so readers are unaffected, but
the parts already sent stay in the bucket, invisible to ``ListObjectsV2``
and billed as storage, until the upload is aborted.

`abort_stale_uploads` aborts such uploads under a prefix once they are old
enough that no live writer can still own them. In production, pair it with
(or replace it by) the bucket lifecycle rule ``AbortIncompleteMultipartUpload``
(see ``docs/security.rst``).
"""

from __future__ import annotations

__all__ = ["DEFAULT_MAX_PASSES", "abort_stale_uploads"]

import datetime
import logging
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..s3.objects import S3Bucket

if TYPE_CHECKING:
    from ..s3.objects import MultipartUpload
    from .base import Datastore

_LOG = logging.getLogger(__name__)

DEFAULT_MAX_PASSES = 10
"""Listings of the prefix `abort_stale_uploads` makes at most."""


def _resolve(target: Datastore | S3Bucket, prefix: str) -> tuple[S3Bucket, str]:
    """Return the bucket layer and the full key prefix of a datastore (or bucket) and a prefix."""
    if isinstance(target, S3Bucket):
        return target, prefix
    store: object = target
    # Wrappers (the caching tier) keep the datastore they wrap as ``backend``.
    while not hasattr(store, "bucket") and hasattr(store, "backend"):
        store = store.backend
    bucket = getattr(store, "bucket", None)
    key = getattr(store, "key", None)
    if not isinstance(bucket, S3Bucket) or not callable(key):
        raise ConfigError(
            f"Cannot clean up multipart uploads of {target!r}: it keeps no objects in an S3 bucket. "
            "Pass an S3Datastore (or a datastore wrapping one) or an S3Bucket."
        )
    # S3Datastore.key("") is the root's prefix with a trailing slash ("" for a bucket root).
    return bucket, str(key(prefix))


def _is_stale(upload: MultipartUpload, cutoff: datetime.datetime) -> bool:
    if upload.initiated is None:
        return False  # Age unknown: a live writer may own it.
    initiated = upload.initiated
    if initiated.tzinfo is None:
        initiated = initiated.replace(tzinfo=datetime.UTC)
    return initiated <= cutoff


def abort_stale_uploads(
    target: Datastore | S3Bucket,
    prefix: str = "",
    older_than_s: float = 86400.0,
    *,
    now: datetime.datetime | None = None,
    page_size: int = 1000,
    max_passes: int = DEFAULT_MAX_PASSES,
) -> list[tuple[str, str]]:
    """Abort the incomplete multipart uploads under a prefix that are older than a given age.

    Parameters
    ----------
    target : `~s3qbb.datastores.s3.S3Datastore` or `~s3qbb.s3.objects.S3Bucket`
        A datastore keeping its objects in S3 (possibly wrapped by the cache
        tier), or the bucket layer itself.
    prefix : `str`, optional
        For a datastore, a path relative to its root (``"my/run/"``; ``""``
        for the whole root); for an `~s3qbb.s3.objects.S3Bucket`, a key
        prefix (``""`` for the whole bucket).
    older_than_s : `float`, optional
        Only uploads created at least this many seconds before ``now`` are
        aborted (one day by default). Choose it longer than the slowest
        upload a live writer can be in the middle of.
    now : `datetime.datetime`, optional
        Reference time (aware); the current UTC time by default. Upload
        ages come from the server's clock, so allow for clock skew.
    page_size : `int`, optional
        Uploads listed per ListMultipartUploads request.
    max_passes : `int`, optional
        Listings of the prefix made at most (see Notes).

    Returns
    -------
    aborted : `list` [`tuple` [`str`, `str`]]
        Key and upload ID of every upload this call aborted, in the order
        they were aborted. Uploads that vanished meanwhile (completed or
        aborted by someone else) are left out.

    Raises
    ------
    ValueError
        If ``older_than_s`` is negative or ``max_passes`` is below 1.
    ConfigError
        If ``target`` keeps no objects in S3.
    AccessDeniedError
        If the credentials may not list or abort multipart uploads there
        (``s3:ListBucketMultipartUploads``, ``s3:AbortMultipartUpload``).

    Notes
    -----
    Cost: one ListMultipartUploads request per page of uploads and one
    AbortMultipartUpload per stale upload. Because some servers page
    multipart listings unreliably (SeaweedFS 4.48 ignores part of the
    markers), the prefix is listed again from the start after every pass
    that aborted something, until a pass aborts nothing or ``max_passes``
    is reached; each upload is tried at most once. Uploads without a
    creation time are never aborted.
    """
    if older_than_s < 0:
        raise ValueError(f"older_than_s must not be negative, got {older_than_s}")
    if max_passes < 1:
        raise ValueError(f"max_passes must be at least 1, got {max_passes}")
    bucket, key_prefix = _resolve(target, prefix)
    reference = now if now is not None else datetime.datetime.now(datetime.UTC)
    cutoff = reference - datetime.timedelta(seconds=older_than_s)
    aborted: list[tuple[str, str]] = []
    tried: set[tuple[str, str]] = set()
    for _ in range(max_passes):
        aborted_this_pass = 0
        for page in bucket.list_multipart_uploads(key_prefix, page_size=page_size):
            for upload in page:
                ident = (upload.key, upload.upload_id)
                if ident in tried or not _is_stale(upload, cutoff):
                    continue
                tried.add(ident)
                if bucket.abort_upload(upload.key, upload.upload_id):
                    _LOG.info(
                        "Aborted multipart upload %s of %s (started %s).",
                        upload.upload_id,
                        bucket.uri(upload.key),
                        upload.initiated,
                    )
                    aborted.append(ident)
                    aborted_this_pass += 1
        if not aborted_this_pass:
            break
    return aborted
