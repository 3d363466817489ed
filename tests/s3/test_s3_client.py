"""make_client: one cached client per connection configuration, botocore retries off."""

from __future__ import annotations

import datetime
import logging
import threading
from typing import Any

import boto3
import botocore.config
import botocore.utils
import pytest

from s3qbb.config import RetryConfig, S3EndpointConfig
from s3qbb.errors import ConfigError, PreconditionFailedError
from s3qbb.s3 import clear_client_cache, make_client
from s3qbb.s3.client import client_cache_size, parse_timestamp, resolve_region
from s3qbb.testing.servers import S3TestEndpoint

pytestmark = pytest.mark.usefixtures("s3_env_scrubber")

URL = "http://127.0.0.1:1"


def test_same_config_same_client() -> None:
    config = S3EndpointConfig(endpoint_url=URL)
    client = make_client(config)
    assert make_client(config) is client
    assert make_client(S3EndpointConfig(endpoint_url=URL)) is client
    # Retry and transfer settings do not shape the client.
    assert make_client(S3EndpointConfig(endpoint_url=URL, retry=RetryConfig(max_attempts=2))) is client
    assert make_client(S3EndpointConfig(endpoint_url=URL, multipart_threshold=64 * 1024**2)) is client
    assert client_cache_size() == 1


def test_different_config_different_client() -> None:
    first = make_client(S3EndpointConfig(endpoint_url=URL))
    assert make_client(S3EndpointConfig(endpoint_url="http://127.0.0.1:2")) is not first
    assert make_client(S3EndpointConfig(endpoint_url=URL, read_timeout=1.0)) is not first
    assert (
        make_client(S3EndpointConfig(endpoint_url=URL, access_key_id="a", secret_access_key="b")) is not first
    )
    assert client_cache_size() == 4


def test_clear_client_cache() -> None:
    config = S3EndpointConfig(endpoint_url=URL)
    first = make_client(config)
    clear_client_cache()
    assert client_cache_size() == 0
    assert make_client(config) is not first


def test_concurrent_creation_yields_one_client() -> None:
    config = S3EndpointConfig(endpoint_url=URL)
    barrier = threading.Barrier(16)
    clients: list[object] = []

    def get() -> None:
        barrier.wait()
        clients.append(make_client(config))

    threads = [threading.Thread(target=get) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in clients}) == 1


def test_botocore_configuration() -> None:
    config = S3EndpointConfig(
        endpoint_url=URL,
        region="eu-west-2",
        addressing_style="path",
        connect_timeout=1.5,
        read_timeout=7.0,
        max_pool_connections=3,
    )
    meta = make_client(config).meta
    assert meta.endpoint_url == URL
    assert meta.region_name == "eu-west-2"
    bc = meta.config
    assert bc.retries == {"mode": "standard", "total_max_attempts": 1}
    assert (bc.connect_timeout, bc.read_timeout, bc.max_pool_connections) == (1.5, 7.0, 3)
    assert bc.s3 == {"addressing_style": "path"}
    assert bc.request_checksum_calculation == "when_required"
    assert bc.response_checksum_validation == "when_required"


def test_region_from_chain_then_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    assert make_client(S3EndpointConfig(endpoint_url=URL)).meta.region_name == "ap-south-1"
    clear_client_cache()
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    assert resolve_region(S3EndpointConfig()) == "us-east-1"
    assert make_client(S3EndpointConfig(endpoint_url=URL)).meta.region_name == "us-east-1"


def test_endpoint_from_standard_aws_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:3")
    assert make_client(S3EndpointConfig()).meta.endpoint_url == "http://127.0.0.1:3"
    clear_client_cache()
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:4")
    assert make_client(S3EndpointConfig()).meta.endpoint_url == "http://127.0.0.1:4"


def test_explicit_credentials_used_and_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    config = S3EndpointConfig(endpoint_url=URL, access_key_id="AKIATEST", secret_access_key="very-secret-42")
    clear_client_cache()  # the line is logged when the client is built, not when it is reused
    with caplog.at_level(logging.DEBUG):
        client = make_client(config)
    creds = client._request_signer._credentials  # the only way to see what boto3 will sign with
    assert creds.access_key == "AKIATEST"
    assert creds.secret_key == "very-secret-42"
    assert "very-secret-42" not in caplog.text
    assert f"S3 client: endpoint {URL} (from configuration)" in caplog.text
    assert "credentials: explicit (configuration)" in caplog.text


def test_unknown_profile_is_a_config_error_naming_it_its_source_and_the_files(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # It was botocore's ProfileNotFound, not an S3qbbError, naming no setting.
    with pytest.raises(ConfigError, match=r"'no-such-profile' \(from configuration\).*/dev/null") as info:
        make_client(S3EndpointConfig(endpoint_url=URL, profile="no-such-profile"))
    assert "AWS_CONFIG_FILE" in str(info.value) and "AWS_SHARED_CREDENTIALS_FILE" in str(info.value)
    config = S3EndpointConfig.from_env({"S3QBB_S3_ENDPOINT_URL": URL, "S3QBB_S3_PROFILE": "nosuch"})
    with pytest.raises(ConfigError, match=r"'nosuch' \(from environment S3QBB_S3_PROFILE\)"):
        make_client(config)
    monkeypatch.setenv("AWS_PROFILE", "from-aws-profile")  # looked up only when the session is used
    with pytest.raises(ConfigError, match=r"'from-aws-profile' \(from environment AWS_PROFILE\)"):
        make_client(S3EndpointConfig(endpoint_url=URL))


def test_a_bad_region_of_the_aws_chain_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "not a region!")  # was botocore's InvalidRegionError
    with pytest.raises(ConfigError, match=r"'not a region!' \(from environment AWS_REGION\)"):
        make_client(S3EndpointConfig(endpoint_url=URL))
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.setenv("AWS_DEFAULT_REGION", " x")
    with pytest.raises(ConfigError, match=r"\(from environment AWS_DEFAULT_REGION\)"):
        make_client(S3EndpointConfig(endpoint_url=URL))


def test_new_client_is_not_cached() -> None:
    from s3qbb.s3 import new_client

    config = S3EndpointConfig(endpoint_url=URL)
    cached = make_client(config)
    fresh = new_client(config)
    assert fresh is not cached
    assert fresh.meta.config.retries == cached.meta.config.retries
    assert make_client(config) is cached


def test_region_precedence_aws_region_then_default_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_REGION", "eu-west-3")  # alone: honoured (botocore reads only AWS_DEFAULT_REGION)
    clear_client_cache()
    assert resolve_region(S3EndpointConfig()) == "eu-west-3"
    assert make_client(S3EndpointConfig(endpoint_url=URL)).meta.region_name == "eu-west-3"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")  # AWS_REGION first, as the AWS SDKs do
    assert resolve_region(S3EndpointConfig()) == "eu-west-3"
    monkeypatch.setenv("S3QBB_S3_REGION", "ca-central-1")  # s3qbb's own variable before both
    assert resolve_region(S3EndpointConfig.from_env()) == "ca-central-1"
    assert resolve_region(S3EndpointConfig(region="sa-east-1")) == "sa-east-1"
    clear_client_cache()


# --- Expect: 100-continue -----------------------------------------------------------------------------


def test_small_puts_skip_expect_continue_large_puts_and_parts_keep_it(s3_endpoint: S3TestEndpoint) -> None:
    """A PutObject below EXPECT_CONTINUE_MIN_BYTES goes without ``Expect: 100-continue``; the rest keep it.

    Real servers (moto, SeaweedFS) accept both forms; a refused create-only PUT is refused as before.
    """
    from s3qbb.core.attempt import WriteToken
    from s3qbb.s3 import checksums
    from s3qbb.s3.client import EXPECT_CONTINUE_MIN_BYTES
    from s3qbb.s3.objects import S3Bucket

    config = s3_endpoint.config.model_copy(update={"multipart_threshold": 6 * 1024 * 1024})
    bucket = S3Bucket.open(config, s3_endpoint.bucket)
    client = make_client(config)
    seen: list[tuple[str, str | None]] = []

    def capture(request: Any, **kwargs: Any) -> None:
        op = kwargs.get("event_name", "").rsplit(".", 1)[-1]
        expect = request.headers.get("Expect")
        seen.append((op, expect.decode() if isinstance(expect, bytes) else expect))

    client.meta.events.register("before-send.s3", capture)
    try:
        token = WriteToken.new()
        bodies = {
            "small": b"x" * 1024,
            "edge": b"y" * (EXPECT_CONTINUE_MIN_BYTES - 1),
            "big": b"z" * EXPECT_CONTINUE_MIN_BYTES,
            "multipart": bytes(7 * 1024 * 1024),
        }
        for name, body in bodies.items():
            seen.clear()
            bucket.put_new(f"expect/{name}", body, checksums.compute("CRC32C", body), token=token)
            puts = [expect for op, expect in seen if op in ("PutObject", "UploadPart")]
            assert puts, (name, seen)
            if name in ("small", "edge"):
                assert puts == [None], (name, seen)
            elif name == "big":
                assert puts == ["100-continue"], (name, seen)
            else:  # the placeholder is small; every part keeps the header
                parts = [expect for op, expect in seen if op == "UploadPart"]
                assert parts and all(e == "100-continue" for e in parts), seen
            assert bucket.get(f"expect/{name}").body == body
        with pytest.raises(PreconditionFailedError):
            bucket.put_new("expect/small", b"other", checksums.compute("CRC32C", b"other"))
    finally:
        client.meta.events.unregister("before-send.s3", capture)


@pytest.mark.parametrize(
    "value",
    [
        "Mon, 07 Dec 2026 02:37:13 GMT",
        "Tue, 29 Feb 2028 23:59:59 GMT",
        "2026-12-07T02:37:13.000Z",
        "2026-12-07T02:37:13Z",
        "2026-12-07T02:37:13.123456Z",
        "2026-12-07T02:37:13+00:00",  # not S3's forms: botocore's own parser
        "2026-12-07 02:37:13",
        1765075033,
        "1765075033.5",
    ],
)
def test_timestamps_parse_as_botocore_parses_them(value: Any) -> None:
    ours, theirs = parse_timestamp(value), botocore.utils.parse_timestamp(value)
    assert ours == theirs
    assert (ours.utcoffset(), ours.tzinfo is None) == (theirs.utcoffset(), theirs.tzinfo is None)


@pytest.mark.parametrize("value", ["Mon, 99 Dec 2026 02:37:13 GMT", "2026-13-07T02:37:13Z", "garbage"])
def test_bad_timestamps_fail_as_in_botocore(value: str) -> None:
    with pytest.raises(ValueError) as theirs:
        botocore.utils.parse_timestamp(value)
    with pytest.raises(type(theirs.value)):
        parse_timestamp(value)


def test_response_timestamps_equal_a_default_boto3_clients(s3_endpoint: S3TestEndpoint) -> None:
    # Headers (HEAD, GET) carry HTTP dates, XML bodies (LIST, uploads) ISO 8601: both parse as boto3's.
    ours = make_client(s3_endpoint.config)
    creds = s3_endpoint.config
    plain = boto3.client(
        "s3",
        endpoint_url=s3_endpoint.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key.get_secret_value() if creds.secret_access_key else None,
        config=botocore.config.Config(s3={"addressing_style": "path"}),
    )
    bucket, key = s3_endpoint.bucket, "timestamps/object"
    ours.put_object(Bucket=bucket, Key=key, Body=b"x")
    upload = ours.create_multipart_upload(Bucket=bucket, Key="timestamps/upload")["UploadId"]
    try:
        for client in (ours, plain):
            assert isinstance(client.head_object(Bucket=bucket, Key=key)["LastModified"], datetime.datetime)
        assert (
            ours.head_object(Bucket=bucket, Key=key)["LastModified"]
            == plain.head_object(Bucket=bucket, Key=key)["LastModified"]
        )
        assert (
            ours.get_object(Bucket=bucket, Key=key)["LastModified"]
            == plain.get_object(Bucket=bucket, Key=key)["LastModified"]
        )
        listed = [
            [
                item["LastModified"]
                for item in c.list_objects_v2(Bucket=bucket, Prefix="timestamps/")["Contents"]
            ]
            for c in (ours, plain)
        ]
        assert listed[0] == listed[1] and len(listed[0]) == 1
        initiated = [
            [u["Initiated"] for u in c.list_multipart_uploads(Bucket=bucket, Prefix="timestamps/")["Uploads"]]
            for c in (ours, plain)
        ]
        assert initiated[0] == initiated[1] and len(initiated[0]) == 1
        assert all(t.utcoffset() == datetime.timedelta(0) for t in listed[0] + initiated[0])
    finally:
        ours.abort_multipart_upload(Bucket=bucket, Key="timestamps/upload", UploadId=upload)
        plain.close()
