"""A HEAD refused for the host's clock: S3 says ``RequestTimeTooSkewed`` only in an error body, which a
HEAD's 403 does not have, so the error names clock skew as a possible cause next to missing rights
(`FaultProxy`'s ``skewed`` fault; moto server and SeaweedFS, both transports)."""

from __future__ import annotations

import pytest

from s3qbb.errors import AccessDeniedError
from s3qbb.s3.objects import S3Bucket
from s3qbb.s3.policy import make_retry_policy
from s3qbb.testing.proxy import FaultProxy
from s3qbb.testing.servers import S3TestEndpoint
from s3qbb.testing.transports import with_transport


@pytest.fixture
def s3_endpoint(s3_endpoint: S3TestEndpoint, s3_transport: str) -> S3TestEndpoint:
    """Each server (moto, SeaweedFS) on each transport (boto3, obstore)."""
    return with_transport(s3_endpoint, s3_transport)


@pytest.mark.parametrize("operation", ["HeadObject", "GetObject"])
def test_clock_skew_refusal_of_a_head_mentions_the_clock(s3_endpoint: S3TestEndpoint, operation: str) -> None:
    s3_endpoint.client.put_object(Bucket=s3_endpoint.bucket, Key="skew/k", Body=b"x")
    with FaultProxy(s3_endpoint.endpoint_url, {operation: ["skewed"]}) as proxy:
        config = proxy.endpoint_config(s3_endpoint.config)
        retry = make_retry_policy(config, sleep=lambda s: None)
        bucket = S3Bucket.open(config, s3_endpoint.bucket, retry=retry)
        with pytest.raises(AccessDeniedError) as info:
            bucket.head("skew/k") if operation == "HeadObject" else bucket.get("skew/k")
        assert proxy.injected == {"skewed": 1}  # refused once, not retried
    message = str(info.value)
    assert f"{operation} on s3://{s3_endpoint.bucket}/skew/k" in message
    assert "clock of this host is off" in message and "synchronise it" in message
    if operation == "HeadObject":  # no body: either cause
        assert "bare 403" in message and "grant it" in message
    else:  # the body names the cause
        assert "RequestTimeTooSkewed" in message and "grant" not in message
