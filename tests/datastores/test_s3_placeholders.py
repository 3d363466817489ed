"""A multipart upload's placeholder is not a dataset (moto server and SeaweedFS).

A writer of a large object first claims its key with a small placeholder
(metadata ``s3qbb-pending: 1``). A reader in trust mode (no record) that finds
it must see no dataset: the upload is still running, or its writer died.
"""

from __future__ import annotations

import pytest

from s3qbb.core.attempt import WriteToken
from s3qbb.datastores.s3 import S3Datastore
from s3qbb.errors import DatasetNotFoundError
from s3qbb.s3.client import new_client
from s3qbb.s3.objects import WRITE_PENDING, WRITE_TOKEN
from s3qbb.testing.data import RefMaker, example_storage_classes
from s3qbb.testing.servers import S3TestEndpoint


def _trusting_store(endpoint: S3TestEndpoint) -> S3Datastore:
    return S3Datastore(
        f"s3://{endpoint.bucket}/placeholders",
        name="s3",
        config=endpoint.config,
        client=new_client(endpoint.config),
        storageClassFactory=example_storage_classes(),
        trust_mode=True,
    )


def test_trust_mode_takes_no_placeholder_for_a_dataset(s3_endpoint: S3TestEndpoint) -> None:
    store = _trusting_store(s3_endpoint)
    ref = RefMaker().make("Bytes")
    key = str(store.getURI(ref, predict=True)).removesuffix("#predicted").split("/", 3)[3]
    token = WriteToken.new()
    s3_endpoint.client.put_object(
        Bucket=s3_endpoint.bucket,
        Key=key,
        Body=str(token).encode(),
        Metadata={WRITE_TOKEN: str(token), WRITE_PENDING: "1"},
    )
    assert store.exists(ref) is False
    with pytest.raises(DatasetNotFoundError, match="placeholder"):
        store.get(ref)
    store.close()
