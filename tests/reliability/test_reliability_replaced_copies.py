"""An object copied over a dataset from another dataset (metadata kept) is not "another attempt".

`aws s3 cp` and most copy tools keep an object's user metadata, s3qbb's write token
among it. Another dataset's object at a recorded dataset's location was not written by
an attempt of the quantum that produced this dataset: a retry reads the same object
and fails the same way, so it is damage (exit 1), not `DatasetReplacedError` (75).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from s3qbb.batch.exitcodes import ExitCode, exit_code_for_error
from s3qbb.datastores.s3 import S3Datastore
from s3qbb.errors import DatasetIntegrityError, DatasetReplacedError
from s3qbb.s3 import make_retry_policy
from s3qbb.s3.client import new_client
from s3qbb.testing.backdoors import S3Backdoor
from s3qbb.testing.data import RefMaker, example_storage_classes
from s3qbb.testing.servers import S3TestEndpoint
from s3qbb.testing.transports import with_transport


def make_store(endpoint: S3TestEndpoint) -> S3Datastore:
    config = endpoint.config.model_copy(update={"checksum_block_size": 4096})
    return S3Datastore(
        f"s3://{endpoint.bucket}/repo",
        config=config,
        client=new_client(config) if config.transport == "boto3" else None,
        retry=make_retry_policy(config, sleep=lambda s: None),
        storageClassFactory=example_storage_classes(),
    )


@pytest.fixture
def endpoint(s3_endpoint: S3TestEndpoint, s3_transport: str) -> S3TestEndpoint:
    return with_transport(s3_endpoint, s3_transport)


@pytest.fixture
def store(endpoint: S3TestEndpoint) -> Iterator[S3Datastore]:
    store = make_store(endpoint)
    yield store
    store.close()


def test_another_datasets_object_copied_over_a_dataset_is_damage_not_a_rerun(
    endpoint: S3TestEndpoint, store: S3Datastore
) -> None:
    maker = RefMaker()
    ref, other = maker.make("Bytes"), maker.make("Bytes")
    store.put(b"the bytes of this dataset", ref)
    store.put(b"the bytes of another dataset, longer", other)
    backdoor = S3Backdoor(endpoint.client, endpoint.bucket, "repo")
    key = backdoor.location(ref)
    assert key is not None
    source = backdoor.location(other)
    endpoint.client.copy_object(  # metadata kept, as `aws s3 cp` does
        Bucket=endpoint.bucket, Key=key, CopySource={"Bucket": endpoint.bucket, "Key": source}
    )
    with pytest.raises(DatasetIntegrityError) as info:
        store.get(ref)
    assert not isinstance(info.value, DatasetReplacedError), str(info.value)
    assert str(ref) in str(info.value) and str(store.getURI(ref)) in str(info.value)
    assert exit_code_for_error(info.value, in_task=True) == ExitCode.TASK_FAILED
