"""S3Datastore: the conformance suite on moto and SeaweedFS, on the boto3 and the obstore transport."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from s3qbb.datastores.s3 import S3Datastore
from s3qbb.testing.backdoors import S3Backdoor
from s3qbb.testing.conformance import DatastoreConformance
from s3qbb.testing.data import example_storage_classes
from s3qbb.testing.servers import S3TestEndpoint
from s3qbb.testing.transports import with_transport

PREFIX = "repo/root"


class S3ConformanceBase(DatastoreConformance):
    endpoint: S3TestEndpoint

    @pytest.fixture
    def datastore(self, s3_server_endpoint: S3TestEndpoint, s3_transport: str) -> Iterator[S3Datastore]:
        store = S3Datastore(
            f"s3://{s3_server_endpoint.bucket}/{PREFIX}",
            name="s3",
            config=with_transport(s3_server_endpoint, s3_transport).config,
            storageClassFactory=example_storage_classes(),
        )
        assert store.bucket.transport.name == s3_transport
        yield store
        store.close()

    @pytest.fixture
    def backdoor(self, s3_server_endpoint: S3TestEndpoint) -> S3Backdoor:
        return S3Backdoor(s3_server_endpoint.client, s3_server_endpoint.bucket, PREFIX)


class TestMotoServerConformance(S3ConformanceBase):
    @pytest.fixture
    def s3_server_endpoint(self, moto_endpoint: S3TestEndpoint) -> S3TestEndpoint:
        return moto_endpoint


@pytest.mark.seaweedfs
class TestSeaweedFSConformance(S3ConformanceBase):
    @pytest.fixture
    def s3_server_endpoint(self, seaweedfs_endpoint: S3TestEndpoint) -> S3TestEndpoint:
        return seaweedfs_endpoint
