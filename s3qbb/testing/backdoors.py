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

    def delete_artifact(self, ref: DatasetRef) -> None:
        """Delete the object."""
        self.client.delete_object(Bucket=self.bucket, Key=self._key(ref))
