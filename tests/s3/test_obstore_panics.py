"""A panic of obstore's Rust code (pyo3's PanicException, a BaseException) never leaves the transport.

The configuration refuses the endpoint URLs known to make object_store panic
(tests/s3/test_s3_endpoint_config.py); these tests bypass that validation
(``model_copy`` does not validate) to check the defence behind it: a panic is
a `TransportError` naming the request, or a `ConfigError` while the store is
built, both saying what to do, and never an exception ``except Exception``
misses.
"""

from __future__ import annotations

import pytest

from s3qbb.config import RetryConfig, S3EndpointConfig
from s3qbb.errors import ConfigError, S3qbbError
from s3qbb.s3 import checksums
from s3qbb.s3.objects import S3Bucket
from s3qbb.s3.transport import TransportError
from s3qbb.testing.transports import obstore_available

pytestmark = [
    pytest.mark.obstore,
    pytest.mark.skipif(not obstore_available(), reason="obstore is not installed (s3qbb[obstore])"),
    pytest.mark.usefixtures("s3_env_scrubber"),
]


def _config(endpoint_url: str = "http://") -> S3EndpointConfig:
    valid = S3EndpointConfig(
        transport="obstore",
        access_key_id="k",
        secret_access_key="s",
        addressing_style="path",
        retry=RetryConfig(max_attempts=1, connect_retry_time=0),
    )
    return valid.model_copy(update={"endpoint_url": endpoint_url})  # not validated: object_store panics


def test_a_panic_of_a_request_is_a_transport_error_naming_it() -> None:
    from s3qbb.s3.obstore_transport import transport_for

    transport = transport_for(_config(), "my-bucket")
    with pytest.raises(TransportError) as info:  # was pyo3_runtime.PanicException
        transport.put_object("a/key", b"x", metadata={}, checksum=None)
    message = str(info.value)
    assert message.startswith("PutObject s3://my-bucket/a/key failed: obstore panicked (")
    assert "endpoint_url (S3QBB_S3_ENDPOINT_URL)" in message and "S3QBB_S3_TRANSPORT=boto3" in message
    assert info.value.kind == "unknown" and info.value.status is None
    assert type(info.value.__cause__).__name__ == "PanicException"


def test_a_panic_reaches_the_caller_as_an_s3qbb_error() -> None:
    bucket = S3Bucket.open(_config("http://127.0.0.1:9/a`b"), "my-bucket")
    with pytest.raises(S3qbbError, match=r"s3://my-bucket/k .*obstore panicked \(.*InvalidUri"):
        bucket.put_new("k", b"x", checksums.compute("CRC32C", b"x"))


def test_a_panic_while_the_store_is_built_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import obstore.store

    from s3qbb.s3.obstore_transport import transport_for

    with pytest.raises(TransportError) as real:
        transport_for(_config(), "b").head_object("k")
    panic = type(real.value.__cause__)
    assert not issubclass(panic, Exception)

    def panics(*args: object, **kwargs: object) -> None:
        raise panic("called `Result::unwrap()` on an `Err` value: InvalidIpv4Address")

    monkeypatch.setattr(obstore.store, "S3Store", panics)
    with pytest.raises(
        ConfigError, match=r"store of bucket 'other' at http://127\.0\.0\.1:9 .*obstore panicked"
    ):
        transport_for(_config("http://127.0.0.1:9"), "other")


def test_interrupts_still_go_through(monkeypatch: pytest.MonkeyPatch) -> None:
    from s3qbb.s3.obstore_transport import transport_for

    transport = transport_for(_config("http://127.0.0.1:9"), "b")

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        transport._call("GetObject", "k", interrupted)
