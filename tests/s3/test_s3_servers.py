"""MotoServer and SeaweedFSServer: lifecycle, isolation, credentials and permissions."""

from __future__ import annotations

import socket
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import botocore.exceptions
import pytest

from s3qbb.errors import AccessDeniedError, BucketNotFoundError, CredentialsError
from s3qbb.s3 import make_client, translate_client_error
from s3qbb.testing.servers import (
    SEAWEEDFS_IDENTITIES,
    MotoServer,
    S3TestEndpoint,
    SeaweedFSServer,
    ServerStartError,
    find_weed_binary,
    free_ports,
)


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_free_ports() -> None:
    ports = free_ports(5)
    assert len(set(ports)) == 5
    assert all(0 < p < 65536 for p in ports)
    paired = free_ports(5, offset=10000)
    assert len(set(paired) | {p + 10000 for p in paired}) == 10
    assert all(p + 10000 < 65536 for p in paired)


@pytest.mark.moto_server
def test_moto_server_lifecycle(s3_env_scrubber: None) -> None:
    with MotoServer() as server:
        url = server.endpoint_url
        assert url.startswith("http://127.0.0.1:")
        assert not url.endswith(":0")
        client = server.client()
        client.create_bucket(Bucket="lifecycle")
        client.put_object(Bucket="lifecycle", Key="k", Body=b"v")
        assert client.get_object(Bucket="lifecycle", Key="k")["Body"].read() == b"v"
        server.reset()
        assert client.list_buckets()["Buckets"] == []
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.endpoint_url
    port = int(url.rsplit(":", 1)[1])
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


@pytest.mark.moto_server
def test_moto_endpoint_is_reset_per_test(moto_endpoint: S3TestEndpoint) -> None:
    assert [b["Name"] for b in moto_endpoint.client.list_buckets()["Buckets"]] == [moto_endpoint.bucket]
    assert moto_endpoint.client.list_objects_v2(Bucket=moto_endpoint.bucket)["KeyCount"] == 0
    moto_endpoint.client.put_object(Bucket=moto_endpoint.bucket, Key="leftover", Body=b"x")
    moto_endpoint.client.create_bucket(Bucket="another-bucket")


@pytest.mark.moto_server
def test_moto_endpoint_is_reset_per_test_again(moto_endpoint: S3TestEndpoint) -> None:
    test_moto_endpoint_is_reset_per_test(moto_endpoint)


def test_s3_endpoint_put_get_through_make_client(s3_endpoint: S3TestEndpoint) -> None:
    client = make_client(s3_endpoint.config)
    client.put_object(Bucket=s3_endpoint.bucket, Key="dir/obj", Body=b"hello", ChecksumAlgorithm="CRC32C")
    got = s3_endpoint.client.get_object(Bucket=s3_endpoint.bucket, Key="dir/obj", ChecksumMode="ENABLED")
    assert got["Body"].read() == b"hello"
    assert got.get("ChecksumCRC32C")


def test_s3_env_scrubber(s3_env_scrubber: None) -> None:
    import os

    assert os.environ["AWS_ACCESS_KEY_ID"] == "testing"
    assert os.environ["AWS_CONFIG_FILE"] == os.devnull
    assert "AWS_PROFILE" not in os.environ
    assert "AWS_ENDPOINT_URL" not in os.environ


# --- SeaweedFS ------------------------------------------------------------


@pytest.mark.seaweedfs
def test_seaweedfs_server_lifecycle(s3_env_scrubber: None) -> None:
    if find_weed_binary() is None:
        pytest.skip("SeaweedFS 'weed' executable not found")
    server = SeaweedFSServer()
    with server:
        assert server.running
        assert server.startup_seconds is not None and server.startup_seconds < 30
        assert set(server.ports) >= {"s3.port", "master.port", "volume.port", "filer.port", "admin.port.grpc"}
        assert len(set(server.ports.values())) == len(server.ports)
        for port in server.ports.values():  # every port it was told to use opens on loopback
            wait_for_port(port)
        assert server.endpoint_url == f"http://127.0.0.1:{server.ports['s3.port']}"
        client = server.client()
        client.create_bucket(Bucket="lifecycle")
        client.put_object(Bucket="lifecycle", Key="k", Body=b"v" * 1000)
        assert client.get_object(Bucket="lifecycle", Key="k")["Body"].read() == b"v" * 1000
        workdir = server.workdir
        ports = dict(server.ports)
        assert server.log_path.exists()
        assert server.credentials("admin").secret_access_key not in " ".join(server.command)
    assert not server.running
    assert not workdir.exists()
    grpc_ports = [port for flag, port in ports.items() if flag.endswith(".grpc")]
    assert grpc_ports and all(
        port == ports[flag[: -len(".grpc")]] + 10000 for flag, port in ports.items() if flag.endswith(".grpc")
    )
    leftovers = [
        p
        for p in Path(tempfile.gettempdir()).glob("seaweedfs-*-grpc-*.sock")
        if int(p.stem.rsplit("-", 1)[1]) in grpc_ports
    ]
    assert leftovers == []
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.endpoint_url


def test_seaweedfs_start_failure_reports_log_tail(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "parent-secret-value")
    fake = tmp_path / "weed"
    fake.write_text("#!/bin/sh\necho \"fake weed sees $(env | grep -c '^AWS_') AWS variables\"\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(ServerStartError, match="exited with status 3") as info:
        SeaweedFSServer(fake, startup_timeout=5).start()
    assert "fake weed sees 0 AWS variables" in str(info.value)  # AWS_* variables are not passed to weed


def test_seaweedfs_refuses_to_start_where_it_could_store_nothing(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Below 1% free disk SeaweedFS makes every volume read-only: say so instead of serving 500s."""
    from types import SimpleNamespace

    from s3qbb.testing import _weed

    gib = 1024**3
    full = SimpleNamespace(total=100 * gib, used=99 * gib, free=gib // 2)
    monkeypatch.setattr(_weed.shutil, "disk_usage", lambda path: full)
    fake = tmp_path / "weed"
    fake.write_text("#!/bin/sh\ntouch ran\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(ServerStartError, match="SeaweedFS cannot store anything") as info:
        SeaweedFSServer(fake, workdir=tmp_path / "w", startup_timeout=5).start()
    message = str(info.value)
    assert "512 MiB free of 102400 MiB" in message and "1088 MiB" in message and "TMPDIR" in message
    assert not (tmp_path / "ran").exists()  # weed was not started


@pytest.mark.seaweedfs
def test_seaweedfs_volume_budget_and_log_do_not_depend_on_the_machine(s3_env_scrubber: None) -> None:
    """A fixed volume budget (not free disk / volume size) and weed's own log in ``log_path``.

    With the budget ``weed mini`` derives from free space, a machine with a few GiB free ran out
    of volumes after a few buckets and every PUT answered 500.
    """
    if find_weed_binary() is None:
        pytest.skip("SeaweedFS 'weed' executable not found")
    before = set(Path(tempfile.gettempdir()).glob("weed.*"))
    with SeaweedFSServer() as server:
        client = server.client()
        for i in range(24):  # Every bucket is a collection with volumes of its own.
            client.create_bucket(Bucket=f"budget-{i}")
            client.put_object(Bucket=f"budget-{i}", Key="k", Body=b"v")
        log = server.log_path.read_text()
    assert "Volume Count:     1000" in log
    assert log.count("Created Volume") >= 24  # weed's INFO log reaches the server log
    assert set(Path(tempfile.gettempdir()).glob("weed.*")) == before  # and leaves no files in /tmp


def test_seaweedfs_start_timeout(tmp_path) -> None:
    fake = tmp_path / "weed"
    fake.write_text("#!/bin/sh\necho waiting forever\nexec sleep 30\n")
    fake.chmod(0o755)
    server = SeaweedFSServer(fake, startup_timeout=0.5, stop_timeout=5)
    with pytest.raises(ServerStartError, match="did not answer S3 requests") as info:
        server.start()
    assert "waiting forever" in str(info.value)
    assert not server.running


def test_seaweedfs_missing_binary(tmp_path) -> None:
    with pytest.raises(ServerStartError, match="cannot run"):
        SeaweedFSServer(tmp_path / "no-such-weed").start()


@pytest.mark.seaweedfs
def test_seaweedfs_reset_removes_buckets_and_objects(seaweedfs_endpoint: S3TestEndpoint) -> None:
    client = seaweedfs_endpoint.client
    client.create_bucket(Bucket="second")
    for i in range(5):
        client.put_object(Bucket="second", Key=f"k{i}", Body=b"x")
    seaweedfs_endpoint.server.reset()
    assert client.list_buckets().get("Buckets", []) == []
    client.create_bucket(Bucket="second")
    assert client.list_objects_v2(Bucket="second")["KeyCount"] == 0


@pytest.mark.seaweedfs
def test_seaweedfs_wrong_secret_is_a_credentials_error(seaweedfs_endpoint: S3TestEndpoint) -> None:
    good = seaweedfs_endpoint.config
    bad_secret = "definitely-not-the-secret"
    server = seaweedfs_endpoint.server
    for config in (
        server.endpoint_config("admin", secret_access_key=bad_secret),
        server.endpoint_config("admin", access_key_id="S3QBBUNKNOWNKEY0000", secret_access_key=bad_secret),
    ):
        client = make_client(config)
        with pytest.raises(botocore.exceptions.ClientError) as info:
            client.list_objects_v2(Bucket=seaweedfs_endpoint.bucket)
        err = translate_client_error(
            info.value,
            operation="ListObjectsV2",
            bucket=seaweedfs_endpoint.bucket,
            endpoint=good.endpoint_url,
        )
        assert isinstance(err, CredentialsError)
        assert bad_secret not in str(err)
        assert str(config.access_key_id) not in str(err)


@pytest.mark.seaweedfs
def test_seaweedfs_reader_cannot_put(seaweedfs_endpoint: S3TestEndpoint) -> None:
    bucket = seaweedfs_endpoint.bucket
    seaweedfs_endpoint.client.put_object(Bucket=bucket, Key="existing", Body=b"data")
    reader = make_client(seaweedfs_endpoint.config_for("reader"))
    assert reader.get_object(Bucket=bucket, Key="existing")["Body"].read() == b"data"
    assert reader.list_objects_v2(Bucket=bucket)["KeyCount"] == 1
    with pytest.raises(botocore.exceptions.ClientError) as info:
        reader.put_object(Bucket=bucket, Key="new", Body=b"x")
    err = translate_client_error(info.value, operation="PutObject", bucket=bucket, key="new")
    assert isinstance(err, AccessDeniedError)
    assert "s3://" + bucket + "/new" in str(err)


@pytest.mark.seaweedfs
def test_seaweedfs_writer_cannot_read(seaweedfs_endpoint: S3TestEndpoint) -> None:
    bucket = seaweedfs_endpoint.bucket
    writer = make_client(seaweedfs_endpoint.config_for("writer"))
    writer.put_object(Bucket=bucket, Key="w", Body=b"x")
    with pytest.raises(botocore.exceptions.ClientError) as info:
        writer.get_object(Bucket=bucket, Key="w")
    err = translate_client_error(info.value, operation="GetObject", bucket=bucket, key="w")
    assert isinstance(err, AccessDeniedError)


@pytest.mark.seaweedfs
def test_seaweedfs_missing_bucket_is_not_created(seaweedfs_endpoint: S3TestEndpoint) -> None:
    client = make_client(seaweedfs_endpoint.config)
    with pytest.raises(botocore.exceptions.ClientError) as info:
        client.put_object(Bucket="no-such-bucket", Key="k", Body=b"x")
    err = translate_client_error(info.value, operation="PutObject", bucket="no-such-bucket", key="k")
    assert isinstance(err, BucketNotFoundError)


@pytest.mark.seaweedfs
def test_seaweedfs_identities(seaweedfs_server: SeaweedFSServer) -> None:
    assert set(SEAWEEDFS_IDENTITIES) == {"admin", "reader", "writer"}
    keys = {seaweedfs_server.credentials(n).access_key_id for n in SEAWEEDFS_IDENTITIES}
    assert len(keys) == 3
    admin = seaweedfs_server.credentials("admin")
    assert admin.secret_access_key not in repr(admin)
    with pytest.raises(KeyError, match="unknown SeaweedFS identity"):
        seaweedfs_server.credentials("root")
    # Anonymous requests are refused.
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(seaweedfs_server.endpoint_url + "/", timeout=5)
    assert info.value.code == 403
