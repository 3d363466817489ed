"""Bulk existence checks on an object store: one LIST per 1,000 keys, or concurrent HEADs.

`find_existing` lists the key range spanned by the wanted keys (ListObjectsV2
with ``StartAfter``, stopping past the last wanted key) and switches to
concurrent HEADs for the keys still unresolved as soon as listing has cost as
many requests as those HEADs would, so the total never exceeds the cheaper
strategy by more than one request.

Servers do not all list in the same order. AWS S3, MinIO, moto and LocalStack
list keys in byte order; SeaweedFS walks its folders, ordering keys by their
``/``-separated parts: it lists ``run/x`` before ``run-b/x`` (byte order puts
``-`` before ``/``), and a ``StartAfter`` inside ``run-b/`` skips the whole of
``run/``, as one of ``run/a`` skips a folder ``run/a/``
(``tests/datastores/test_listing_order.py`` checks both orders on the servers).
A key the listing did not return is therefore taken as absent only if, in
*both* orders, it falls between the ``StartAfter`` and the last key listed (or
after the ``StartAfter`` once the listing has ended); any other is HEADed.
Where the two orders agree, which is everywhere but around folder names one of
which starts with the other followed by a character sorting before ``/``
(``run`` and ``run-b``), this costs nothing.

A multipart upload's placeholder (`s3qbb.s3.multipart.PLACEHOLDER_SIZE`
bytes, metadata ``s3qbb-pending: 1``) holds a key while the upload runs, and
after its writer died. A listing shows sizes but no metadata: a listed object
of exactly the placeholder's size is confirmed by a HEAD (a placeholder is
not a dataset); an object of any other size needs no request.
"""

from __future__ import annotations

__all__ = ["find_existing"]

import os
from collections.abc import Mapping, Set
from concurrent.futures import Executor
from typing import TYPE_CHECKING

from ..s3.multipart import PLACEHOLDER_SIZE

if TYPE_CHECKING:
    from ..s3.objects import S3Bucket

_HEAD_ONLY_BELOW = 2


def _common_prefix(keys: list[str]) -> str:
    prefix = os.path.commonprefix(keys)  # noqa: RUF071 (character-wise is what a key prefix needs)
    return prefix[: prefix.rfind("/") + 1] if "/" in prefix else ""


def find_existing(
    bucket: S3Bucket, keys: set[str], pool: Executor, *, unconfirmed: Set[str] | None = None
) -> set[str]:
    """Return the subset of ``keys`` that exist in the bucket as finished objects.

    Parameters
    ----------
    bucket : `s3qbb.s3.objects.S3Bucket`
        Where to look.
    keys : `set` [`str`]
        Object keys.
    pool : `concurrent.futures.Executor`
        Threads for concurrent HEADs.
    unconfirmed : `collections.abc.Set` [`str`], optional
        The keys that may hold a multipart upload's placeholder (those of
        datasets without a record); all of ``keys`` by default.

    Returns
    -------
    found : `set` [`str`]
        Keys that exist, placeholders of multipart uploads excluded.

    Notes
    -----
    A placeholder is not a dataset. A HEAD shows it (metadata
    ``s3qbb-pending: 1``); a listing does not, so a listed key of
    ``unconfirmed`` whose size is exactly
    `~s3qbb.s3.multipart.PLACEHOLDER_SIZE` is HEADed too (one extra request
    for each object of that size, none for any other size).
    """
    if not keys:
        return set()
    remaining = set(keys)
    found: set[str] = set()
    ambiguous: list[str] = []
    if len(keys) >= _HEAD_ONLY_BELOW:
        ordered = sorted(keys)
        after = ordered[0][:-1] or None
        check = keys if unconfirmed is None else unconfirmed
        parts = {key: key.split("/") for key in keys}
        listing = bucket.list_sizes(_common_prefix(ordered), start_after=after)
        for pages, page in enumerate(listing, start=1):
            hits = remaining.intersection(page)
            remaining -= hits
            for key in hits:
                if page[key] == PLACEHOLDER_SIZE and key in check:
                    ambiguous.append(key)  # perhaps a placeholder: a HEAD tells
                else:
                    found.add(key)
            if page:  # the keys up to the last one listed, in the server's order, were all listed
                last = next(reversed(page))
                remaining = {key for key in remaining if not _listed_range(key, after, last, parts)}
            if not remaining or pages >= len(remaining):
                break  # all resolved, or listing now costs as much as HEADing what is left
        else:  # the listing ended: every key after the StartAfter, in the server's order, was listed
            remaining = {key for key in remaining if not _listed_range(key, after, None, parts)}
    to_head = sorted(remaining) + sorted(ambiguous)
    if to_head:
        heads = pool.map(lambda k: (k, _finished(bucket, k)), to_head)
        found.update(k for k, ok in heads if ok)
    return found


def _listed_range(key: str, after: str | None, last: str | None, parts: Mapping[str, list[str]]) -> bool:
    """Whether a listing from ``after`` (exclusive) to ``last`` (inclusive; `None`: to the end) holds ``key``.

    True only if it does both in byte order and in SeaweedFS's order of the ``/``-separated parts
    (``parts``: those of each key), where a ``StartAfter`` of ``a/b`` skips the object ``a/b``
    *and everything in a folder* ``a/b/``: a key is after it if its first parts, as many as
    ``after`` has, sort after those of ``after``.
    """
    # str comparison is code point order, which is the byte order of UTF-8.
    if after is not None:
        start = after.split("/")
        if not (key > after and parts[key][: len(start)] > start):
            return False
    return last is None or (key <= last and parts[key] <= last.split("/"))


def _finished(bucket: S3Bucket, key: str) -> bool:
    """HEAD ``key``: tell whether it holds an object that is no placeholder."""
    head = bucket.head(key)
    return head is not None and not head.pending
