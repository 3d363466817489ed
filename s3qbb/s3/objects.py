"""Object operations on one bucket: every request counted, retried by one policy, errors translated.

`S3Bucket` is the only object that issues data requests, through its
`~s3qbb.s3.transport.Transport` (boto3 or obstore, per endpoint), which sends
single requests; everything that decides ownership lives here, shared by both
transports. Each public method
makes the minimum number of requests for its job: `S3Bucket.put_new` of a small
object is one create-only PUT (plus a HEAD only when the PUT answers 412, or to
confirm the write on an endpoint whose conditional PUT is not known to be
atomic), `S3Bucket.get` is one GET whose body read is retried together with it.
Every write carries the writer's `~s3qbb.core.attempt.WriteToken` in metadata
(`WRITE_TOKEN`), and ownership of an existing object is decided by it alone.
"""

from __future__ import annotations

__all__ = [
    "WRITE_CHECKSUM",
    "WRITE_PENDING",
    "WRITE_TOKEN",
    "GetResult",
    "HeadResult",
    "MultipartUpload",
    "S3Bucket",
    "WriteConflictError",
]

import functools
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, TypeVar

from ..core.attempt import WriteToken
from ..errors import (
    AccessDeniedError,
    DatasetIntegrityError,
    DatasetNotFoundError,
    PreconditionFailedError,
    S3qbbError,
    TransientStorageError,
)
from . import checksums
from .errors import s3_uri, translate_error
from .multipart import put_multipart
from .ownership import (
    WRITE_CHECKSUM,
    WRITE_PENDING,
    WRITE_TOKEN,
    HeadResult,
    WriteConflictError,
    conflict,
    object_metadata,
)
from .transport import GetResult, ListPage, MultipartUpload, Transport, TransportError, make_transport

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from ..config import S3EndpointConfig
    from ..retry import RetryPolicy

_LOG = logging.getLogger(__name__)
_R = TypeVar("_R")


def _is_this_write(head: HeadResult | bool | None, token: WriteToken, metadata: Mapping[str, str]) -> bool:
    """Whether a stored object is the write of ``metadata`` by ``token``, retried after a lost response.

    The token alone names the attempt, which the threads of one process share;
    the recorded checksum must match too, so that another thread's bytes under
    the same token are never taken for this write's.
    """
    return (
        isinstance(head, HeadResult)
        and head.token == token
        and head.metadata.get(WRITE_CHECKSUM) == metadata.get(WRITE_CHECKSUM)
    )


class S3Bucket:
    """Counted, retried, translated object operations on one bucket.

    Parameters
    ----------
    transport : `~s3qbb.s3.transport.Transport` or `mypy_boto3_s3.S3Client`
        How requests are sent (see `open` to choose it from the configuration);
        a boto3 client means the boto3 transport on that client.
    bucket : `str`, optional
        Bucket name (needed with a boto3 client; a transport knows its bucket).
    config : `s3qbb.config.S3EndpointConfig`
        Endpoint configuration (checksum, encryption, multipart settings).
    retry : `s3qbb.retry.RetryPolicy`
        The one retry policy.
    count : `~collections.abc.Callable` [[`str`], `None`]
        Called with the operation name before every request attempt.
    """

    def __init__(
        self,
        transport: Transport | S3Client,
        bucket: str | None = None,
        *,
        config: S3EndpointConfig,
        retry: RetryPolicy,
        count: Callable[[str], None],
    ) -> None:
        if hasattr(transport, "list_objects_v2"):  # a boto3 client
            if bucket is None:
                raise TypeError("S3Bucket needs the bucket name with a boto3 client")
            transport = make_transport(config, bucket, client=transport)
        self.transport: Transport = transport
        self.bucket = self.transport.bucket
        self.config = config
        self.retry = retry
        self._count = count
        self.endpoint = self.transport.endpoint

    @classmethod
    def open(
        cls,
        config: S3EndpointConfig,
        bucket: str,
        *,
        retry: RetryPolicy | None = None,
        count: Callable[[str], None] | None = None,
        client: S3Client | None = None,
    ) -> S3Bucket:
        """Return the object layer of ``bucket`` on the transport ``config.transport`` chooses.

        Parameters
        ----------
        config : `s3qbb.config.S3EndpointConfig`
            Endpoint configuration.
        bucket : `str`
            Bucket name.
        retry : `s3qbb.retry.RetryPolicy`, optional
            The retry policy; `s3qbb.s3.make_retry_policy` of ``config`` by default.
        count : `~collections.abc.Callable` [[`str`], `None`], optional
            Called with the operation name before every request attempt.
        client : `mypy_boto3_s3.S3Client`, optional
            A boto3 client to use instead of the shared one (the boto3 transport).
        """
        if retry is None:
            from .policy import make_retry_policy

            retry = make_retry_policy(config)
        return cls(
            make_transport(config, bucket, client=client),
            config=config,
            retry=retry,
            count=count if count is not None else _no_count,
        )

    @property
    def client(self) -> S3Client:
        """The boto3 client of the boto3 transport (tests hook it); `AttributeError` on another transport."""
        client: S3Client | None = getattr(self.transport, "client", None)
        if client is None:
            raise AttributeError(f"the {self.transport.name} transport has no boto3 client")
        return client

    # ----------------------------------------------------------------- core

    def _request(self, operation: str, key: str | None, fn: Callable[[], _R]) -> _R:
        """Run one logical request (retried), translating permanent errors."""

        def attempt() -> _R:
            self._count(operation)
            return fn()

        try:
            return self.retry.call(attempt, description=f"{operation} {s3_uri(self.bucket, key)}")
        except Exception as err:
            if isinstance(err, S3qbbError) and not isinstance(err, TransportError):
                raise
            translated = translate_error(
                err, operation=operation, bucket=self.bucket, key=key, endpoint=self.endpoint
            )
            if translated is None:
                raise
            raise translated from err

    def uri(self, key: str) -> str:
        """Return ``s3://bucket/key``."""
        return s3_uri(self.bucket, key)

    # ---------------------------------------------------------------- reads

    def get(
        self,
        key: str,
        byte_range: tuple[int, int] | None = None,
        *,
        digest: Callable[[], checksums.Digest] | None = None,
    ) -> GetResult:
        """Read an object (or the byte range ``[start, stop)``) with one GET, body read included.

        ``digest`` makes the `~s3qbb.s3.checksums.Digest` each attempt feeds
        its body to as it arrives (`GetResult.digest`); see
        `~s3qbb.s3.transport.Transport.get_object`.

        Raises
        ------
        DatasetNotFoundError
            If the key does not exist.
        TransientStorageError
            If transient failures outlast the retry policy.
        """
        return self._request("GetObject", key, lambda: self.transport.get_object(key, byte_range, digest))

    def get_checked(self, key: str, byte_range: tuple[int, int] | None = None) -> GetResult:
        """Read a file s3qbb wrote (records, provenance, report) and check it against its metadata checksum.

        A file's full-object checksum is in its metadata (`WRITE_CHECKSUM`);
        a whole read (or a range covering the object) is checked against it,
        and a failed check is read once more, since bits flipped in transit do
        not come back twice. A file without that metadata (another tool's) is
        returned as read. One GET, two on a failed check.

        Raises
        ------
        DatasetIntegrityError
            If the file fails its check on both reads: the stored file is damaged.
        DatasetNotFoundError
            If the key does not exist.
        """
        result = self.get(key, byte_range)
        problem = _checksum_problem(result)
        if problem is None:
            return result
        _LOG.warning(
            "%s %s; reading it again (a bit flipped in transit does not repeat).", self.uri(key), problem
        )
        self.retry.stats.record_transient("ChecksumMismatch", gave_up=False)
        self.retry.stats.record_attempt(is_retry=True)
        result = self.get(key, byte_range)
        problem = _checksum_problem(result)
        if problem is not None:
            self.retry.stats.record_transient("ChecksumMismatch", gave_up=True)
            raise DatasetIntegrityError(
                f"{self.uri(key)} {problem} on two reads: the stored file is damaged."
            )
        return result

    def head(self, key: str) -> HeadResult | None:
        """Return an object's size and metadata, or `None` if it does not exist (one HEAD)."""
        return self._request("HeadObject", key, lambda: self.transport.head_object(key))

    def list_keys(self, prefix: str, *, start_after: str | None = None) -> Iterator[list[str]]:
        """Yield pages of keys under a prefix (one ListObjectsV2 request per page of up to 1,000)."""
        for page in self._list(prefix, start_after):
            yield [key for key, _ in page.entries]

    def list_etags(self, prefix: str) -> Iterator[list[tuple[str, str]]]:
        """Yield pages of ``(key, ETag)`` under a prefix (one ListObjectsV2 request per 1,000 keys)."""
        for page in self._list(prefix, None):
            yield page.entries

    def list_sizes(self, prefix: str, *, start_after: str | None = None) -> Iterator[dict[str, int]]:
        """Yield pages of key to size in bytes under a prefix, in key order (one ListObjectsV2 per page)."""
        for page in self._list(prefix, start_after):
            yield dict(zip([key for key, _ in page.entries], page.sizes, strict=True))

    def _list(self, prefix: str, after: str | None) -> Iterator[ListPage]:
        token: str | None = None
        while True:
            request = functools.partial(self.transport.list_objects, prefix, token=token, start_after=after)
            page = self._request("ListObjectsV2", prefix, request)
            yield page
            if page.next_token is None:
                return
            token = page.next_token

    def list_multipart_uploads(
        self, prefix: str, *, page_size: int = 1000
    ) -> Iterator[list[MultipartUpload]]:
        """Yield pages of the incomplete multipart uploads under a prefix (one ListMultipartUploads each).

        Parameters
        ----------
        prefix : `str`
            Key prefix (``""`` for the whole bucket).
        page_size : `int`, optional
            Uploads asked for per request (at most 1,000 on AWS).

        Notes
        -----
        Later pages start after the key and upload ID markers of the previous
        one (the last upload's when the server sends none). Some servers
        misread those markers (SeaweedFS 4.48 skips uploads), and iteration
        stops if the markers repeat, so a caller that must see every upload
        lists again after acting on what it saw (as
        `s3qbb.datastores.cleanup.abort_stale_uploads` does).
        """
        markers: tuple[str, str] | None = None
        seen: set[tuple[str, str]] = set()
        while True:
            request = functools.partial(
                self.transport.list_multipart_uploads, prefix, markers=markers, page_size=page_size
            )
            page = self._request("ListMultipartUploads", prefix, request)
            uploads = page.uploads
            yield uploads
            if not page.truncated or not uploads:
                return
            markers = (
                page.next_markers[0] or uploads[-1].key,
                page.next_markers[1] or uploads[-1].upload_id,
            )
            if markers in seen:
                return
            seen.add(markers)

    # --------------------------------------------------------------- writes

    def put_new(
        self,
        key: str,
        data: bytes,
        checksum: checksums.Checksum,
        *,
        token: WriteToken | None = None,
        metadata: Mapping[str, str] | None = None,
        replace_earlier: bool = True,
    ) -> None:
        """Create an object that must not exist yet, as the write of ``token``.

        A small object is one create-only PUT (``If-None-Match: *``), plus one
        HEAD to confirm it when the endpoint's conditional PUT is not known to
        be atomic (`S3EndpointConfig.conditional_put_atomic`). A large one is
        claimed first by a create-only PUT of a placeholder, then uploaded in
        parts and always confirmed by a HEAD (see `s3qbb.s3.multipart.put_multipart`).

        Ownership is decided by the write token in the object's metadata, never
        by content alone: an object carrying ``token`` and this write's recorded
        checksum is ours (a retried PUT whose first response was lost); an object
        carrying an earlier attempt of the same quantum is replaced (``If-Match``
        on its ETag, with a warning); anything else is another writer's.

        Parameters
        ----------
        key : `str`
            Object key.
        data : `bytes`
            Content.
        checksum : `s3qbb.s3.checksums.Checksum`
            Checksum of ``data`` (sent to the server and kept in metadata).
        token : `s3qbb.core.attempt.WriteToken`, optional
            The writing attempt; a new one (of a random quantum) by default.
        metadata : `~collections.abc.Mapping` [`str`, `str`], optional
            More object metadata (s3qbb's own keys take precedence).
        replace_earlier : `bool`, optional
            Replace an object of an earlier attempt of ``token``'s quantum
            (`True` by default); if `False`, such an object is a conflict too.

        Raises
        ------
        PreconditionFailedError
            If the object exists and is not this quantum's (it is left untouched),
            or if another writer's object is stored when the write ends.
        """
        token = token if token is not None else WriteToken.new()
        meta = {**(metadata or {}), WRITE_TOKEN: str(token), WRITE_CHECKSUM: str(checksum)}
        if len(data) >= self.config.multipart_threshold:
            put_multipart(self, key, data, checksum, token, meta, replace_earlier=replace_earlier)
            return
        self._create(key, data, meta, token, checksum, replace_earlier=replace_earlier)

    def _head_readable(self, key: str) -> HeadResult | bool | None:
        """HEAD ``key``: its metadata, `None` if missing, `False` if this identity may not read it."""
        try:
            return self.head(key)
        except AccessDeniedError:  # a write-only identity cannot look
            return False

    def _create(
        self,
        key: str,
        body: bytes,
        metadata: dict[str, str],
        token: WriteToken,
        checksum: checksums.Checksum | None,
        *,
        replace_earlier: bool,
    ) -> str | None:
        """One create-only PUT as the write of ``token``; return the stored object's ETag if known."""
        put = self.transport.put_object
        try:
            etag = self._request(
                "PutObject",
                key,
                lambda: put(key, body, metadata=metadata, checksum=checksum, if_none_match=True),
            )
        except PreconditionFailedError as err:
            head = self._head_readable(key)
            if _is_this_write(head, token, metadata):
                assert isinstance(head, HeadResult)
                return head.etag  # our own write, retried after its response was lost
            if (
                not replace_earlier
                or not isinstance(head, HeadResult)
                or head.token is None
                or not token.is_earlier_attempt(head.token)
            ):
                raise self._conflict(key, head, mine=token) from err
            token.check_replace(head.token, self.uri(key))  # that attempt may still be running
            return self._replace(key, body, metadata, checksum, head, token)
        except TransientStorageError:
            landed = self._landed(key, token, metadata)
            if landed is None:
                raise
            return landed.etag
        if not self.config.conditional_put_atomic:
            self._confirm(key, token)
        return etag

    def _replace(
        self,
        key: str,
        body: bytes,
        metadata: dict[str, str],
        checksum: checksums.Checksum | None,
        head: HeadResult,
        token: WriteToken,
    ) -> str | None:
        """Replace an earlier attempt's object (``If-Match`` on the ETag seen) with this attempt's."""
        if not head.etag:
            raise self._conflict(key, head)
        earlier = head.token
        _LOG.warning(
            "Replacing %s%s, left by an earlier attempt (%s) of quantum %s, with the write of attempt %s.",
            self.uri(key),
            " (an unfinished upload's placeholder)" if head.pending else "",
            earlier.attempt_id if earlier is not None else "?",
            token.quantum_id,
            token.attempt_id,
        )
        seen = head.etag
        put = self.transport.put_object
        try:
            etag = self._request(
                "PutObject", key, lambda: put(key, body, metadata=metadata, checksum=checksum, if_match=seen)
            )
        except (PreconditionFailedError, DatasetNotFoundError) as err:
            # Changed or deleted since the HEAD: ours only if a retry after a lost response says so.
            again = self._head_readable(key)
            if _is_this_write(again, token, metadata):
                assert isinstance(again, HeadResult)
                return again.etag
            raise self._conflict(key, again) from err
        except TransientStorageError:
            landed = self._landed(key, token, metadata)
            if landed is None:
                raise
            return landed.etag
        if not self.config.conditional_put_atomic:
            self._confirm(key, token)
        return etag

    def _landed(self, key: str, token: WriteToken, metadata: Mapping[str, str]) -> HeadResult | None:
        """After a conditional PUT gave up unanswered: the stored object if it is this write (one HEAD).

        Every attempt's response was lost (connections reset after the server
        stored the first, answers later than the read timeout), so no 412
        ever settled it. The object is this write's only if it carries its
        token and checksum (`_is_this_write`): another attempt's or another
        thread's object never is. `None` if it is not, or cannot be looked at.
        """
        try:
            head = self._head_readable(key)
        except S3qbbError:
            return None
        if not _is_this_write(head, token, metadata):
            return None
        assert isinstance(head, HeadResult)
        _LOG.warning(
            "No answer to the PUT of %s reached this process, but the object stored there is this "
            "write's (its write token and checksum): the write landed.",
            self.uri(key),
        )
        return head

    def _confirm(self, key: str, token: WriteToken, *, complete: bool = False) -> None:
        """Raise `PreconditionFailedError` unless the stored object carries ``token`` (one HEAD)."""
        head = self._head_readable(key)
        if head is False:
            _LOG.debug("Cannot confirm the write of %s: this identity may not read it.", self.uri(key))
            return
        if not isinstance(head, HeadResult) or head.token != token or (complete and head.pending):
            raise self._conflict(key, head, lost=True)

    def _conflict(
        self,
        key: str,
        head: HeadResult | bool | None,
        *,
        lost: bool = False,
        mine: WriteToken | None = None,
    ) -> WriteConflictError:
        return conflict(self.uri(key), head, lost=lost, mine=mine)

    def abort_upload(self, key: str, upload_id: str) -> bool:
        """Abort a multipart upload (one AbortMultipartUpload request).

        Returns
        -------
        aborted : `bool`
            `False` if the upload no longer exists (completed or aborted already).

        Raises
        ------
        AccessDeniedError
            If the credentials may not abort uploads under the key.
        """
        return self._request(
            "AbortMultipartUpload", key, lambda: self.transport.abort_multipart_upload(key, upload_id)
        )

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Abort a multipart upload, logging (not raising) failures."""
        try:
            self.abort_upload(key, upload_id)
        except Exception as err:  # the original failure matters more
            _LOG.warning("Could not abort multipart upload %s of %s: %s", upload_id, self.uri(key), err)

    def put_raw(
        self,
        key: str,
        data: bytes,
        *,
        token: WriteToken | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Write an object unconditionally (for files s3qbb owns outright, not datasets).

        The object carries ``token`` (a new one of a random quantum by default)
        and its checksum in metadata, like every object s3qbb writes.
        """
        checksum = checksums.compute(self.config.checksum_algorithm, data)
        token = token if token is not None else WriteToken.new()
        meta = {**(metadata or {}), WRITE_TOKEN: str(token), WRITE_CHECKSUM: str(checksum)}
        put = self.transport.put_object
        self._request("PutObject", key, lambda: put(key, data, metadata=meta, checksum=checksum))

    # -------------------------------------------------------------- deletes

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        """Delete one object (no error if it is already gone), only if its ETag is ``if_match`` if given."""
        self._request("DeleteObject", key, lambda: self.transport.delete_object(key, if_match=if_match))

    def delete_many(self, keys: Iterable[str]) -> dict[str, str]:
        """Delete objects in batches of 1,000 (one DeleteObjects request each).

        Returns
        -------
        failures : `dict` [`str`, `str`]
            Key to error code of every object that could not be deleted.
        """
        pending = list(dict.fromkeys(keys))
        failures: dict[str, str] = {}
        for start in range(0, len(pending), 1000):
            batch = pending[start : start + 1000]
            request = functools.partial(self.transport.delete_objects, batch)
            failures.update(self._request("DeleteObjects", batch[0], request))
        return failures


def _no_count(operation: str) -> None:
    """Count nothing (the default ``count`` of `S3Bucket.open`)."""


def _checksum_problem(result: GetResult) -> str | None:
    """Say how a whole object's body fails the checksum in its metadata; `None` if it passes or has none."""
    text = object_metadata(result.metadata).get(WRITE_CHECKSUM)
    if not text or len(result.body) != result.size:
        return None
    try:
        expected = checksums.parse(text)
    except ValueError:
        return None  # not s3qbb's form: nothing to check against
    actual = checksums.compute(expected.algorithm, result.body)
    if actual.same_value(expected):
        return None
    return f"fails its {expected.algorithm} checksum (expected {expected.value}, read {actual.value})"
