"""The boto3 transport: each `~s3qbb.s3.transport.Transport` request as one boto3 client call.

The client comes from `s3qbb.s3.client.make_client` (one per connection
configuration, botocore's own retries off, requests logged at ``-v``).
Errors are botocore's, left as they are for `s3qbb.s3.errors`.
"""

from __future__ import annotations

__all__ = ["Boto3Transport", "transport_for"]

from typing import TYPE_CHECKING, Any

import botocore.exceptions

from . import checksums
from .errors import TruncatedBodyError, error_code, http_status, is_missing, s3_uri
from .ownership import HeadResult, object_metadata
from .transport import GetResult, ListPage, MultipartUpload, UploadsPage

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import DeleteTypeDef

    from ..config import S3EndpointConfig


def transport_for(config: S3EndpointConfig, bucket: str, *, client: S3Client | None = None) -> Boto3Transport:
    """Return a `Boto3Transport` on ``bucket`` with ``client``, or the shared client of ``config``."""
    if client is None:
        from .client import make_client

        client = make_client(config)
    return Boto3Transport(client, bucket, config)


class Boto3Transport:
    """Single requests on one bucket through a boto3 client.

    Parameters
    ----------
    client : `mypy_boto3_s3.S3Client`
        boto3 client (shared between threads).
    bucket : `str`
        Bucket name.
    config : `s3qbb.config.S3EndpointConfig`
        Endpoint configuration (server-side encryption).
    """

    name = "boto3"

    def __init__(self, client: S3Client, bucket: str, config: S3EndpointConfig) -> None:
        self.client = client
        self.bucket = bucket
        self.endpoint: str | None = client.meta.endpoint_url
        self._sse: dict[str, str] = {}
        if config.server_side_encryption:
            self._sse["ServerSideEncryption"] = config.server_side_encryption
            if config.sse_kms_key_id:
                self._sse["SSEKMSKeyId"] = config.sse_kms_key_id

    def __repr__(self) -> str:
        return f"Boto3Transport({self.endpoint or 'AWS'}, bucket={self.bucket!r})"

    # ---------------------------------------------------------------- reads

    def get_object(
        self,
        key: str,
        byte_range: tuple[int, int] | None,
        digest: Callable[[], checksums.Digest] | None = None,
    ) -> GetResult:
        """See `~s3qbb.s3.transport.Transport.get_object`; the digest is fed the whole body once read."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if byte_range is not None:
            kwargs["Range"] = f"bytes={byte_range[0]}-{byte_range[1] - 1}"
        response = self.client.get_object(**kwargs)
        body = response["Body"].read()
        expected = response.get("ContentLength")
        if expected is not None and len(body) != expected:
            raise TruncatedBodyError(
                f"GET {s3_uri(self.bucket, key)} returned {len(body)} of {expected} bytes; "
                "the read will be retried."
            )
        size = len(body)
        content_range = response.get("ContentRange")
        if content_range and "/" in content_range:
            total = content_range.rsplit("/", 1)[1]
            size = int(total) if total.isdigit() else size
        server = None
        for algorithm in checksums.ALGORITHMS:
            value = response.get(checksums.request_parameter(algorithm))
            if isinstance(value, str) and "-" not in value:
                server = checksums.Checksum(algorithm, value)
                break
        fed = None
        if digest is not None:
            fed = digest()
            fed.update(body)
        return GetResult(body, size, server, dict(response.get("Metadata", {})), fed)

    def head_object(self, key: str) -> HeadResult | None:
        """See `~s3qbb.s3.transport.Transport.head_object`."""
        try:
            response = self.client.head_object(Bucket=self.bucket, Key=key)
        except botocore.exceptions.ClientError as err:
            if is_missing(err):
                return None
            raise
        return HeadResult(
            int(response.get("ContentLength", -1)),
            object_metadata(response.get("Metadata")),
            response.get("ETag"),
        )

    def list_objects(self, prefix: str, *, token: str | None, start_after: str | None) -> ListPage:
        """See `~s3qbb.s3.transport.Transport.list_objects`."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": 1000}
        if token:
            kwargs["ContinuationToken"] = token
        elif start_after:
            kwargs["StartAfter"] = start_after
        response = self.client.list_objects_v2(**kwargs)
        contents = response.get("Contents", [])
        entries = [(item["Key"], str(item.get("ETag", ""))) for item in contents]
        more = response.get("IsTruncated") and response.get("NextContinuationToken")
        return ListPage(entries, more or None, [int(item.get("Size", -1)) for item in contents])

    def list_multipart_uploads(
        self, prefix: str, *, markers: tuple[str, str] | None, page_size: int
    ) -> UploadsPage:
        """See `~s3qbb.s3.transport.Transport.list_multipart_uploads`."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxUploads": page_size}
        if markers is not None:
            kwargs["KeyMarker"], kwargs["UploadIdMarker"] = markers
        response = self.client.list_multipart_uploads(**kwargs)
        uploads = [
            MultipartUpload(item["Key"], item["UploadId"], item.get("Initiated"))
            for item in response.get("Uploads", [])
            if "Key" in item and "UploadId" in item
        ]
        return UploadsPage(
            uploads,
            bool(response.get("IsTruncated")),
            (response.get("NextKeyMarker"), response.get("NextUploadIdMarker")),
        )

    # --------------------------------------------------------------- writes

    def put_object(
        self,
        key: str,
        body: bytes,
        *,
        metadata: Mapping[str, str],
        checksum: checksums.Checksum | None,
        if_none_match: bool = False,
        if_match: str | None = None,
    ) -> str | None:
        """See `~s3qbb.s3.transport.Transport.put_object`."""
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "Body": body,
            "Metadata": dict(metadata),
            **self._sse,
        }
        if checksum is not None:
            kwargs[checksums.request_parameter(checksum.algorithm)] = checksum.value
        if if_none_match:
            kwargs["IfNoneMatch"] = "*"
        if if_match is not None:
            kwargs["IfMatch"] = if_match
        etag: str | None = self.client.put_object(**kwargs).get("ETag")
        return etag

    def create_multipart_upload(
        self, key: str, *, metadata: Mapping[str, str], algorithm: checksums.Algorithm
    ) -> str:
        """See `~s3qbb.s3.transport.Transport.create_multipart_upload`."""
        created = self.client.create_multipart_upload(
            Bucket=self.bucket,
            Key=key,
            ChecksumAlgorithm=algorithm,
            Metadata=dict(metadata),
            **self._sse,  # type: ignore[arg-type]
        )
        return created["UploadId"]

    def upload_part(
        self, key: str, upload_id: str, number: int, body: bytes, checksum: checksums.Checksum
    ) -> dict[str, Any]:
        """See `~s3qbb.s3.transport.Transport.upload_part`."""
        param = checksums.request_parameter(checksum.algorithm)
        response = self.client.upload_part(
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=body,
            **{param: checksum.value},  # type: ignore[arg-type]
        )
        return {"PartNumber": number, "ETag": response["ETag"], param: checksum.value}

    def complete_multipart_upload(
        self, key: str, upload_id: str, parts: Iterable[Mapping[str, Any]], *, if_match: str | None
    ) -> None:
        """See `~s3qbb.s3.transport.Transport.complete_multipart_upload`."""
        condition = {"IfMatch": if_match} if if_match else {}
        self.client.complete_multipart_upload(
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": list(parts)},  # type: ignore[arg-type]
            **condition,  # type: ignore[arg-type]
        )

    def abort_multipart_upload(self, key: str, upload_id: str) -> bool:
        """See `~s3qbb.s3.transport.Transport.abort_multipart_upload`."""
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except botocore.exceptions.ClientError as err:
            if error_code(err) == "NoSuchUpload" or http_status(err) == 404:
                return False
            raise
        return True

    # -------------------------------------------------------------- deletes

    def delete_object(self, key: str, *, if_match: str | None = None) -> None:
        """See `~s3qbb.s3.transport.Transport.delete_object`."""
        condition: dict[str, Any] = {"IfMatch": if_match} if if_match else {}
        self.client.delete_object(Bucket=self.bucket, Key=key, **condition)

    def delete_objects(self, keys: Sequence[str]) -> dict[str, str]:
        """See `~s3qbb.s3.transport.Transport.delete_objects`."""
        payload: DeleteTypeDef = {"Objects": [{"Key": k} for k in keys], "Quiet": True}
        response = self.client.delete_objects(Bucket=self.bucket, Delete=payload)
        return {error.get("Key", "?"): error.get("Code", "?") for error in response.get("Errors", [])}
