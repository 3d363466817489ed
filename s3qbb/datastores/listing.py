"""Bulk existence checks on an object store: one LIST per 1,000 keys, or concurrent HEADs.

`find_existing` lists the key range spanned by the wanted keys (ListObjectsV2
with ``StartAfter``, stopping past the last wanted key) and switches to
concurrent HEADs for the keys still unresolved as soon as listing has cost as
many requests as those HEADs would, so the total never exceeds the cheaper
strategy by more than one request.
"""

from __future__ import annotations

__all__ = ["find_existing"]

import os
from concurrent.futures import Executor
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..s3.objects import S3Bucket

_HEAD_ONLY_BELOW = 2


def _common_prefix(keys: list[str]) -> str:
    prefix = os.path.commonprefix(keys)  # noqa: RUF071 (character-wise is what a key prefix needs)
    return prefix[: prefix.rfind("/") + 1] if "/" in prefix else ""


def find_existing(bucket: S3Bucket, keys: set[str], pool: Executor) -> set[str]:
    """Return the subset of ``keys`` that exist in the bucket.

    Parameters
    ----------
    bucket : `s3qbb.s3.objects.S3Bucket`
        Where to look.
    keys : `set` [`str`]
        Object keys.
    pool : `concurrent.futures.Executor`
        Threads for concurrent HEADs.

    Returns
    -------
    found : `set` [`str`]
        Keys that exist.
    """
    if not keys:
        return set()
    remaining = set(keys)
    found: set[str] = set()
    if len(keys) >= _HEAD_ONLY_BELOW:
        ordered = sorted(keys)
        first, last = ordered[0], ordered[-1]
        listing = bucket.list_keys(_common_prefix(ordered), start_after=first[:-1] or None)
        for pages, page in enumerate(listing, start=1):
            hits = remaining.intersection(page)
            found |= hits
            remaining -= hits
            if not remaining or not page or page[-1] >= last:
                return found  # the listing covered the whole range: the rest does not exist
            if pages >= len(remaining):
                break  # listing now costs as much as HEADing what is left
        else:
            return found  # the listing was exhausted
    heads = pool.map(lambda k: (k, bucket.head(k) is not None), sorted(remaining))
    found.update(k for k, ok in heads if ok)
    return found
