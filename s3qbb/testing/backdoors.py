"""Back doors into object storage for the conformance suite: a raw boto3 client, not the datastore."""

from __future__ import annotations

__all__ = ["S3Backdoor"]

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from ..core.dataset_ref import DatasetRef


class S3Backdoor:
    """Inspect and tamper with a bucket through a raw boto3 client.

    Objects are found by listing the datastore's prefix for a key that
    contains the dataset ID, so no code of the datastore under test is used
    (key templates must include ``{id}``, as the default one does).

    Parameters
    ----------
    client : `mypy_boto3_s3.S3Client`
        A raw client (botocore retries off), e.g. `S3TestEndpoint.client`.
    bucket : `str`
        Bucket of the datastore.
    prefix : `str`, optional
        Prefix of the datastore's root inside the bucket.
    """

    def __init__(self, client: S3Client, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def keys(self) -> list[str]:
        """Return every key under the prefix."""
        out: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            out.extend(item["Key"] for item in page.get("Contents", []))
        return out

    def location(self, ref: DatasetRef) -> str | None:
        """Return the key holding the dataset, or `None` if there is none."""
        matches = [k for k in self.keys() if str(ref.id) in k and "/_records/" not in k]
        if len(matches) > 1:
            raise AssertionError(f"Several objects hold dataset {ref.id}: {matches}")
        return matches[0] if matches else None

    def has_artifact(self, ref: DatasetRef) -> bool:
        """Return whether an object holds the dataset."""
        return self.location(ref) is not None

    def _key(self, ref: DatasetRef) -> str:
        key = self.location(ref)
        if key is None:
            raise AssertionError(f"No object holds dataset {ref.id}")
        return key

    def read_artifact(self, ref: DatasetRef) -> Any:
        """Return the stored bytes."""
        return self.client.get_object(Bucket=self.bucket, Key=self._key(ref))["Body"].read()

    def corrupt(self, ref: DatasetRef) -> None:
        """Overwrite the object with the same number of different bytes."""
        key = self._key(ref)
        data = bytearray(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        data[len(data) // 2] ^= 0xFF
        self.client.put_object(Bucket=self.bucket, Key=key, Body=bytes(data))

    def flip_bit(self, ref: DatasetRef, offset: int, bit: int = 0) -> None:
        """Flip one bit of the stored object, keeping its metadata (bit rot on the server).

        Parameters
        ----------
        ref : `DatasetRef`
            The dataset.
        offset : `int`
            Byte offset in the object.
        bit : `int`, optional
            Bit of that byte, 0 (lowest) to 7.
        """
        key = self._key(ref)
        response = self.client.get_object(Bucket=self.bucket, Key=key)
        data = bytearray(response["Body"].read())
        data[offset] ^= 1 << bit
        self.client.put_object(Bucket=self.bucket, Key=key, Body=bytes(data), Metadata=response["Metadata"])

    def metadata(self, ref: DatasetRef) -> dict[str, str]:
        """Return the object's user metadata (keys without ``x-amz-meta-``)."""
        return dict(self.client.head_object(Bucket=self.bucket, Key=self._key(ref))["Metadata"])

    def rewrite(
        self, ref: DatasetRef, data: bytes | None = None, metadata: dict[str, str] | None = None
    ) -> None:
        """Replace the object's bytes and/or user metadata (what is not given is kept).

        Parameters
        ----------
        ref : `DatasetRef`
            The dataset.
        data : `bytes`, optional
            New bytes.
        metadata : `dict` [`str`, `str`], optional
            New user metadata, replacing all of it.
        """
        key = self._key(ref)
        response = self.client.get_object(Bucket=self.bucket, Key=key)
        body = response["Body"].read() if data is None else data
        meta = response["Metadata"] if metadata is None else metadata
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body, Metadata=meta)

    def delete_artifact(self, ref: DatasetRef) -> None:
        """Delete the object."""
        self.client.delete_object(Bucket=self.bucket, Key=self._key(ref))
