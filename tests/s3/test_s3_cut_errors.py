"""A GET whose 404 error response is cut short (`FaultProxy`'s ``truncate``): a clean not-found on both
transports, not a transient failure retried until it gives up (moto server and SeaweedFS).

botocore reads the status of a cut response; obstore loses it (it reads the body before it builds the
error), so the obstore transport asks the object's state with one HEAD, which has no body to lose.
"""

from __future__ import annotations

import pytest

from s3qbb.errors import DatasetNotFoundError
from s3qbb.s3.objects import S3Bucket
from s3qbb.s3.policy import make_retry_policy
from s3qbb.testing.proxy import FaultProxy
from s3qbb.testing.servers import S3TestEndpoint
from s3qbb.testing.transports import with_transport


@pytest.fixture
def s3_endpoint(s3_endpoint: S3TestEndpoint, s3_transport: str) -> S3TestEndpoint:
    """Each server (moto, SeaweedFS) on each transport (boto3, obstore)."""
    return with_transport(s3_endpoint, s3_transport)


def _bucket(proxy: FaultProxy, endpoint: S3TestEndpoint) -> tuple[S3Bucket, dict[str, int]]:
    config = proxy.endpoint_config(endpoint.config)
    counts: dict[str, int] = {}

    def count(operation: str) -> None:
        counts[operation] = counts.get(operation, 0) + 1

    retry = make_retry_policy(config, sleep=lambda s: None)
    return S3Bucket.open(config, endpoint.bucket, retry=retry, count=count), counts


@pytest.mark.parametrize("byte_range", [None, (0, 4)], ids=["whole", "range"])
def test_get_whose_404_body_is_cut_short_is_not_found(
    s3_endpoint: S3TestEndpoint, byte_range: tuple[int, int] | None
) -> None:
    with FaultProxy(s3_endpoint.endpoint_url, {"GetObject": ["truncate"] * 20}) as proxy:
        bucket, counts = _bucket(proxy, s3_endpoint)
        with pytest.raises(
            DatasetNotFoundError, match=f"s3://{s3_endpoint.bucket}/cut/missing does not exist"
        ):
            bucket.get("cut/missing", byte_range)
        assert proxy.injected == {"truncate": 1}  # not retried
        # boto3 reads the cut response's status; obstore sends one HEAD (only on this fault).
        heads = 1 if s3_endpoint.config.transport == "obstore" else 0
        assert proxy.requests["HeadObject"] == heads
    assert counts == {"GetObject": 1}  # the transport's HEAD is not one of S3Bucket's requests


def test_get_whose_body_is_cut_short_is_still_retried(s3_endpoint: S3TestEndpoint) -> None:
    """The object is there: a cut body (of the object, or of an error) stays a transient failure."""
    s3_endpoint.client.put_object(Bucket=s3_endpoint.bucket, Key="cut/there", Body=b"0123456789")
    with FaultProxy(s3_endpoint.endpoint_url, {"GetObject": ["truncate"]}) as proxy:
        bucket, counts = _bucket(proxy, s3_endpoint)
        assert bucket.get("cut/there").body == b"0123456789"
        assert proxy.injected == {"truncate": 1}
    assert counts == {"GetObject": 2}
