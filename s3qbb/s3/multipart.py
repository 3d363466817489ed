"""The multipart write path of `S3Bucket.put_new <s3qbb.s3.objects.S3Bucket.put_new>`: claim, upload, confirm.

A conditional CompleteMultipartUpload is not atomic on SeaweedFS 4.48, moto
5.2 or LocalStack 4.13, so a large object's key is claimed first by an atomic
create-only PUT of a small placeholder (metadata `WRITE_PENDING`), and only
the claim's winner uploads. These functions work on an
`~s3qbb.s3.objects.S3Bucket` and use its counted, retried requests.
"""

from __future__ import annotations

__all__ = ["PLACEHOLDER_SIZE", "put_multipart"]

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Final

from ..core.attempt import ATTEMPT_ID_LENGTH
from ..errors import DatasetNotFoundError, PreconditionFailedError
from . import checksums
from .errors import S3ServiceError, http_status
from .ownership import WRITE_CHECKSUM, WRITE_PENDING, WRITE_TOKEN, HeadResult, WriteConflictError

if TYPE_CHECKING:
    from ..core.attempt import WriteToken
    from .objects import S3Bucket

_LOG = logging.getLogger(__name__)

PLACEHOLDER_SIZE: Final = 32 + 1 + ATTEMPT_ID_LENGTH
"""Bytes in the body of every placeholder: its write token's text, ``<32 hex digits>.<attempt ID>``.

`~s3qbb.core.attempt.WriteToken` admits no other form, so every placeholder
has this size; a listing (which shows sizes, not metadata) can take any other
object for a finished one (see `s3qbb.datastores.listing.find_existing`).
"""


def put_multipart(
    bucket: S3Bucket,
    key: str,
    data: bytes,
    checksum: checksums.Checksum,
    token: WriteToken,
    metadata: dict[str, str],
    *,
    replace_earlier: bool,
) -> None:
    """Claim the key, upload the parts, complete, confirm.

    A conditional CompleteMultipartUpload is not atomic on SeaweedFS 4.48,
    moto 5.2 or LocalStack 4.13: several writers can each be told they
    created the object. So the key is claimed first with a create-only PUT
    of a small placeholder (metadata ``s3qbb-pending: 1`` and our token),
    which is atomic; only the claim's winner uploads. The complete carries
    ``If-Match`` on the placeholder's ETag (checked by SeaweedFS, LocalStack
    and AWS; ignored by moto), and a HEAD confirms that the stored object is
    ours and complete before success is reported.

    Parameters
    ----------
    bucket : `s3qbb.s3.objects.S3Bucket`
        The bucket (its counted, retried requests).
    key : `str`
        Object key.
    data : `bytes`
        Content.
    checksum : `s3qbb.s3.checksums.Checksum`
        Full-object checksum of ``data`` (its algorithm checksums each part).
    token : `s3qbb.core.attempt.WriteToken`
        The writing attempt.
    metadata : `dict` [`str`, `str`]
        Metadata of the completed object (with ``token``).
    replace_earlier : `bool`
        Replace an object of an earlier attempt of ``token``'s quantum.

    Raises
    ------
    PreconditionFailedError
        If the key is another writer's, or another writer's object is stored
        when the upload ends.
    """
    placeholder = {WRITE_TOKEN: str(token), WRITE_PENDING: "1"}
    body = str(token).encode()  # PLACEHOLDER_SIZE bytes, whatever the token
    try:
        claim = bucket._create(key, body, placeholder, token, None, replace_earlier=replace_earlier)
    except WriteConflictError as err:
        # This very write may be stored complete already: a put that gave up after its upload was
        # completed (its confirming HEAD failed), repeated. Then there is nothing left to upload.
        # The claim's own HEAD tells (the error carries what it saw).
        head = err.head
        if (
            isinstance(head, HeadResult)
            and head.is_complete_write_of(token)
            and head.metadata.get(WRITE_CHECKSUM) == metadata.get(WRITE_CHECKSUM)
        ):
            return
        raise
    algorithm = checksum.algorithm
    transport = bucket.transport
    try:
        upload_id = bucket._request(
            "CreateMultipartUpload",
            key,
            lambda: transport.create_multipart_upload(key, metadata=metadata, algorithm=algorithm),
        )
    except Exception:
        _release(bucket, key, token)
        raise
    size = int(bucket.config.multipart_chunksize)
    view = memoryview(data)
    chunks = [(i + 1, view[off : off + size]) for i, off in enumerate(range(0, len(data), size))]

    def upload(part: tuple[int, memoryview]) -> dict[str, Any]:
        number, chunk = part
        part_sum = checksums.compute(algorithm, chunk)
        return bucket._request(
            "UploadPart", key, lambda: transport.upload_part(key, upload_id, number, bytes(chunk), part_sum)
        )

    try:
        with ThreadPoolExecutor(max_workers=min(bucket.config.max_concurrency, len(chunks))) as pool:
            parts = list(pool.map(upload, chunks))
        tries = 0

        def complete() -> None:
            nonlocal tries
            tries += 1
            # A retry may follow a complete that was applied (response lost); some servers
            # (moto) then answer 500 rather than 404 NoSuchUpload: look before sending again.
            if tries > 1 and _completed_by(bucket, key, token):
                return
            transport.complete_multipart_upload(key, upload_id, parts, if_match=claim or None)

        bucket._request("CompleteMultipartUpload", key, complete)
    except (PreconditionFailedError, DatasetNotFoundError) as err:
        # 412: our placeholder was replaced (by a later attempt of our quantum); 404 NoSuchUpload:
        # a retried complete whose first attempt was applied (response lost), or an upload
        # aborted under us. Ours only if the stored object says so.
        bucket.abort_multipart(key, upload_id)
        head = bucket._head_readable(key)
        if isinstance(head, HeadResult) and head.is_complete_write_of(token):
            return
        if isinstance(err, DatasetNotFoundError):
            _release(bucket, key, token)
            raise
        raise bucket._conflict(key, head, lost=True) from err
    except BaseException:
        bucket.abort_multipart(key, upload_id)
        _release(bucket, key, token)
        raise
    bucket._confirm(key, token, complete=True)


def _completed_by(bucket: S3Bucket, key: str, token: WriteToken) -> bool:
    """Within a retried request: tell whether ``key`` holds ``token``'s completed object (one HEAD)."""
    bucket._count("HeadObject")
    try:
        head = bucket.transport.head_object(key)
    except Exception as err:
        if http_status(err) == 403:
            return False  # not readable by this identity: send the request again
        raise
    return head is not None and head.is_complete_write_of(token)  # missing: send it again


def _release(bucket: S3Bucket, key: str, token: WriteToken) -> None:
    """Delete our placeholder after a failed upload, if it is still ours (best effort).

    The DELETE carries ``If-Match`` on the placeholder's ETag: a later attempt
    may replace the placeholder between the HEAD and the DELETE.
    """
    try:
        head = bucket._head_readable(key)
        if isinstance(head, HeadResult) and head.token == token and head.pending:
            try:
                bucket.delete(key, if_match=head.etag or None)
            except S3ServiceError as err:
                if err.status != 501 or not head.etag:
                    raise
                bucket.delete(key)  # no conditional DELETE on this server (LocalStack 4.13)
    except (PreconditionFailedError, DatasetNotFoundError):
        pass  # replaced or removed since the HEAD: not ours to delete any more
    except Exception as err:  # the original failure matters more
        _LOG.warning("Could not remove the upload placeholder %s: %s", bucket.uri(key), err)
