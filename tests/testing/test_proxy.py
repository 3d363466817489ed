"""FaultProxy: HTTP relaying (stub server), and S3Datastore under each fault (moto, SeaweedFS)."""

from __future__ import annotations

import http.client
import http.server
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import botocore.awsrequest
import botocore.compat
import pytest

from s3qbb.config import S3EndpointConfig
from s3qbb.datastores.s3 import S3Datastore
from s3qbb.errors import DatasetExistsError, DatasetIntegrityError, TransientStorageError
from s3qbb.retry import RetryPolicy
from s3qbb.s3 import make_client, make_retry_policy
from s3qbb.s3.objects import WRITE_TOKEN
from s3qbb.testing.data import RefMaker
from s3qbb.testing.proxy import PROXY_FAULT_KINDS, FaultProxy, s3_operation
from s3qbb.testing.servers import S3TestEndpoint

MIB = 1024**2
READ_TIMEOUT = 2.0
SLOW_DELAY = 2.5  # > READ_TIMEOUT: a slow_first_byte fault makes the client time out
MAX_ATTEMPTS = 4
APPLIED_KINDS = ("reset_after", "slow_first_byte", "truncate")  # the server applies the request


# --------------------------------------------------------------------------- operation names


@pytest.mark.parametrize(
    ("method", "target", "headers", "expected"),
    [
        ("PUT", "/b/k", {}, "PutObject"),
        ("PUT", "/b/k", {"x-amz-copy-source": "/b/j"}, "CopyObject"),
        ("GET", "/b/k", {}, "GetObject"),
        ("HEAD", "/b/dir/k", {}, "HeadObject"),
        ("DELETE", "/b/k", {}, "DeleteObject"),
        ("GET", "/b?list-type=2&prefix=p", {}, "ListObjectsV2"),
        ("GET", "/b/?list-type=2", {}, "ListObjectsV2"),
        ("GET", "/b", {}, "ListObjects"),
        ("POST", "/b/k?uploads", {}, "CreateMultipartUpload"),
        ("PUT", "/b/k?partNumber=2&uploadId=u", {}, "UploadPart"),
        ("POST", "/b/k?uploadId=u", {}, "CompleteMultipartUpload"),
        ("DELETE", "/b/k?uploadId=u", {}, "AbortMultipartUpload"),
        ("GET", "/b/k?uploadId=u", {}, "ListParts"),
        ("POST", "/b?delete", {}, "DeleteObjects"),
        ("PUT", "/b", {}, "CreateBucket"),
        ("HEAD", "/b", {}, "HeadBucket"),
        ("GET", "/", {}, "ListBuckets"),
        ("GET", "/b/k?x-id=GetObject", {}, "GetObject"),
    ],
)
def test_s3_operation_names(method: str, target: str, headers: dict[str, str], expected: str) -> None:
    assert s3_operation(method, target, headers) == expected


def test_s3_operation_virtual_host_addressing() -> None:
    assert s3_operation("GET", "/k", addressing_style="virtual") == "GetObject"
    assert s3_operation("GET", "/?list-type=2", addressing_style="virtual") == "ListObjectsV2"


def test_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        FaultProxy("http://127.0.0.1:1", {"GetObject": ["explode"]})
    with pytest.raises(ValueError, match="within"):
        FaultProxy("http://127.0.0.1:1", rate=1.5)
    with pytest.raises(ValueError, match="plain HTTP"):
        FaultProxy("https://s3.amazonaws.com")
    with pytest.raises(ValueError, match="positive weight"):
        FaultProxy("http://127.0.0.1:1", rate=0.5, kinds={"slowdown": 0.0})
    with pytest.raises(RuntimeError, match="not running"):
        _ = FaultProxy("http://127.0.0.1:1").url


# --------------------------------------------------------------------------- HTTP relaying (stub upstream)


class _StubHandler(http.server.BaseHTTPRequestHandler):
    """Echo server: PUT answers with the body length it read; GET /chunked answers chunked."""

    protocol_version = "HTTP/1.1"
    server: _StubServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def handle_expect_100(self) -> bool:
        if self.path.startswith("/early"):  # refuse before the body: a final answer, no 100
            self.close_connection = True
            self._answer(403, b"no")
            return False
        if self.path.startswith("/silent"):  # never sends 100: the client must send the body anyway
            return True
        return super().handle_expect_100()

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            data = b""
            while size := int(self.rfile.readline().split(b";")[0], 16):
                data += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b""):
                pass
            return data
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def do_PUT(self) -> None:
        body = self._body()
        self.server.seen.append((self.requestline, self.headers.get("Host", ""), self.client_address[1]))
        self._answer(200, str(len(body)).encode())

    def do_GET(self) -> None:
        self.server.seen.append((self.requestline, self.headers.get("Host", ""), self.client_address[1]))
        if self.path.startswith("/b/chunked"):
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (b"hello ", b"chunked ", b"world"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self._answer(200, self.path.encode() * 100)


class _StubServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    seen: list[tuple[str, str, int]]


@pytest.fixture(scope="module")
def stub() -> Iterator[_StubServer]:
    server = _StubServer(("127.0.0.1", 0), _StubHandler)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def stub_proxy(stub: _StubServer) -> Iterator[FaultProxy]:
    stub.seen.clear()
    with FaultProxy(f"http://127.0.0.1:{stub.server_address[1]}", continue_timeout=0.2) as proxy:
        yield proxy


def _recv_head(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\r\n\r\n"):
        piece = sock.recv(1)
        if not piece:
            break
        data += piece
    return data


def _expect_put(proxy: FaultProxy, path: str, body: bytes) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    sock.sendall(
        f"PUT {path} HTTP/1.1\r\nHost: signed.example:1234\r\nContent-Length: {len(body)}\r\n"
        "Expect: 100-continue\r\n\r\n".encode()
    )
    return sock, _recv_head(sock)


def test_relays_upstream_100_continue_before_the_body(stub_proxy: FaultProxy, stub: _StubServer) -> None:
    sock, interim = _expect_put(stub_proxy, "/b/key", b"x" * 70000)
    with sock:
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"  # before any body byte was sent
        sock.sendall(b"x" * 70000)
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert (response.status, response.read()) == (200, b"70000")
    assert stub_proxy.continues == 1
    assert stub.seen[-1][:2] == ("PUT /b/key HTTP/1.1", "signed.example:1234")  # Host kept as signed


def test_relays_an_early_final_answer_without_the_body(stub_proxy: FaultProxy) -> None:
    sock, head = _expect_put(stub_proxy, "/early/key", b"x" * 1000)
    with sock:
        assert head.startswith(b"HTTP/1.0 403") or head.startswith(b"HTTP/1.1 403")
        assert b"Connection: close" in head  # the body was never read: the connection cannot be reused
        assert sock.recv(10) == b"no"
    assert stub_proxy.continues == 0


def test_sends_continue_itself_when_the_server_stays_silent(stub_proxy: FaultProxy) -> None:
    sock, interim = _expect_put(stub_proxy, "/silent/key", b"y" * 10)
    with sock:
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"y" * 10)
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert response.read() == b"10"


def test_keep_alive_chunked_request_and_response(stub_proxy: FaultProxy, stub: _StubServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", stub_proxy.port, timeout=5)
    conn.request("PUT", "/b/k", body=iter([b"ab", b"cde", b"f"]), encode_chunked=True)
    assert conn.getresponse().read() == b"6"
    first_socket = conn.sock
    conn.request("GET", "/b/chunked")
    response = conn.getresponse()
    assert response.read() == b"hello chunked world"
    conn.request("GET", "/b/plain")
    assert conn.getresponse().read() == b"/b/plain" * 100
    assert conn.sock is first_socket  # one client connection served all three
    assert len({port for _, _, port in stub.seen}) == 1  # and one upstream connection
    assert stub_proxy.requests == {"PutObject": 1, "GetObject": 2}
    conn.close()


def test_truncates_a_chunked_response_to_half_its_real_length(stub_proxy: FaultProxy) -> None:
    stub_proxy.script("GetObject", "truncate")
    conn = http.client.HTTPConnection("127.0.0.1", stub_proxy.port, timeout=5)
    conn.request("GET", "/b/chunked")
    response = conn.getresponse()
    assert response.getheader("Content-Length") == "19"
    with pytest.raises(http.client.IncompleteRead) as info:
        response.read()
    assert info.value.partial == b"hello chu"
    conn.close()


def test_unreachable_upstream_answers_502() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with FaultProxy(f"http://127.0.0.1:{port}") as proxy:
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
        conn.request("GET", "/b/k")
        response = conn.getresponse()
        assert response.status == 502
        assert b"<Code>BadGateway</Code>" in response.read()
        assert proxy.relay_errors == 1


def test_seeded_random_faults_are_reproducible(stub: _StubServer) -> None:
    def outcomes(seed: int) -> list[int]:
        url = f"http://127.0.0.1:{stub.server_address[1]}"
        with FaultProxy(url, rate=0.4, kinds={"slowdown": 1, "internal": 3}, seed=seed) as proxy:
            statuses = []
            for _ in range(40):
                conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
                conn.request("GET", "/b/k")
                statuses.append(conn.getresponse().status)
                conn.close()
            assert sum(proxy.injected.values()) == sum(s != 200 for s in statuses)
            assert set(proxy.injected) <= {"slowdown", "internal"}
            return statuses

    first = outcomes(7)
    assert first == outcomes(7)
    assert first != outcomes(8)
    assert {200, 500, 503} == set(first)


def test_stop_closes_connections_and_joins_threads(stub: _StubServer) -> None:
    proxy = FaultProxy(f"http://127.0.0.1:{stub.server_address[1]}").start()
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    conn.request("GET", "/b/k")
    conn.getresponse().read()  # leaves an idle keep-alive connection (and its thread) behind
    port = proxy.port
    proxy.stop()
    assert not [t for t in threading.enumerate() if t.name.startswith("s3qbb-fault-proxy")]
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    proxy.stop()  # idempotent
    conn.close()


# --------------------------------------------------------------------------- S3Datastore under faults


@dataclass
class Rig:
    proxy: FaultProxy
    endpoint: S3TestEndpoint
    config: S3EndpointConfig
    store: S3Datastore
    policy: RetryPolicy
    refs: RefMaker

    def stored(self, key: str) -> bytes:
        body: bytes = self.endpoint.client.get_object(Bucket=self.endpoint.bucket, Key=key)["Body"].read()
        return body

    def key(self, ref: Any) -> str:
        return str(self.store.getURI(ref)).removeprefix(f"s3://{self.endpoint.bucket}/")


@pytest.fixture
def rig(s3_endpoint: S3TestEndpoint, s3_transport: str) -> Iterator[Rig]:
    """A datastore behind a fault proxy, on each server and each transport."""
    with FaultProxy(s3_endpoint.endpoint_url, slow_delay=SLOW_DELAY) as proxy:
        values = {
            **proxy.endpoint_config(s3_endpoint.config).model_dump(),
            "read_timeout": READ_TIMEOUT,
            "multipart_threshold": 5 * MIB,
            "multipart_chunksize": 5 * MIB,
            "retry": {"max_attempts": MAX_ATTEMPTS},
            "transport": s3_transport,
        }
        config = S3EndpointConfig.model_validate(values)
        # Cached per test (s3_endpoint clears the cache afterwards); the obstore transport makes its own.
        client = make_client(config) if s3_transport == "boto3" else None
        policy = make_retry_policy(config, sleep=lambda s: None)
        store = S3Datastore(f"s3://{s3_endpoint.bucket}/repo", config=config, client=client, retry=policy)
        yield Rig(proxy, s3_endpoint, config, store, policy, RefMaker())
        store.close()


def _data(size: int) -> bytes:
    return bytes(range(256)) * (size // 256) + b"tail"


# PUT answers have no body; a flipped request bit is refused, not retried (test_flipped_upload_bit_...);
# nor is a request refused for the client's clock (``skewed``, test_clock_skew_... in tests/cli).
@pytest.mark.parametrize(
    "kind", [k for k in PROXY_FAULT_KINDS if k not in ("corrupt", "corrupt_request", "skewed")]
)
def test_put_fault_retried_to_success(rig: Rig, kind: str) -> None:
    ref, data = rig.refs.make("Bytes"), _data(100_000)
    rig.proxy.script("PutObject", kind)
    rig.store.put(data, ref)  # no DatasetExistsError, even when the first attempt was applied
    assert rig.stored(rig.key(ref)) == data
    assert rig.proxy.injected == {kind: 1}
    assert rig.policy.stats.retries == 1
    # A retried create-only PUT whose first attempt was applied answers 412: one HEAD proves it ours.
    expected = {"PutObject": 2, "HeadObject": 1} if kind in APPLIED_KINDS else {"PutObject": 2}
    assert rig.proxy.requests == expected
    assert rig.store.get(ref) == data


@pytest.mark.parametrize("kind", [k for k in PROXY_FAULT_KINDS if k not in ("corrupt_request", "skewed")])
def test_get_fault_retried_to_success(rig: Rig, kind: str) -> None:
    ref, data = rig.refs.make("Bytes"), _data(300_000)
    rig.store.put(data, ref)
    rig.proxy.reset_counters()
    rig.proxy.script("GetObject", kind)
    assert rig.store.get(ref) == data
    assert rig.proxy.requests == {"GetObject": 2}
    assert rig.policy.stats.retries == 1


def test_reset_after_create_only_put_is_recognised_as_our_write(rig: Rig) -> None:
    ref, data = rig.refs.make("Bytes"), _data(50_000)
    rig.proxy.script("PutObject", "reset_after")
    rig.store.put(data, ref)
    assert rig.store.knows(ref)
    head = rig.endpoint.client.head_object(Bucket=rig.endpoint.bucket, Key=rig.key(ref))
    assert WRITE_TOKEN in head["Metadata"]
    assert rig.stored(rig.key(ref)) == data
    # Control: an object another writer created is still a conflict, and is left untouched.
    other = rig.refs.make("Bytes")
    key = str(rig.store.getURI(other, predict=True)).removesuffix("#predicted").split("/", 3)[3]
    rig.endpoint.client.put_object(Bucket=rig.endpoint.bucket, Key=key, Body=b"theirs")
    rig.proxy.script("PutObject", "reset_after")
    with pytest.raises(DatasetExistsError):
        rig.store.put(data, other)
    assert rig.stored(key) == b"theirs"


def test_truncated_get_retries_the_request_and_the_read_together(rig: Rig) -> None:
    ref, data = rig.refs.make("Bytes"), _data(1 * MIB)
    rig.store.put(data, ref)
    rig.proxy.script("GetObject", "truncate", "truncate")
    assert rig.store.get(ref) == data
    assert rig.proxy.requests["GetObject"] == 3
    kind = {"boto3": "ResponseStreamingError", "obstore": "TransportError(interrupted)"}[rig.config.transport]
    assert rig.policy.stats.errors == {kind: 2}


def test_slow_first_byte_beyond_the_read_timeout_is_retried(rig: Rig) -> None:
    ref, data = rig.refs.make("Bytes"), _data(10_000)
    rig.store.put(data, ref)
    rig.proxy.script("GetObject", "slow_first_byte")
    started = time.monotonic()
    assert rig.store.get(ref) == data
    assert time.monotonic() - started >= READ_TIMEOUT
    kind = {"boto3": "ReadTimeoutError", "obstore": "TransportError(timeout)"}[rig.config.transport]
    assert rig.policy.stats.errors == {kind: 1}


def test_slow_first_byte_within_the_read_timeout_is_only_slow(rig: Rig) -> None:
    ref, data = rig.refs.make("Bytes"), _data(10_000)
    rig.store.put(data, ref)
    rig.proxy.slow_delay = 0.2
    rig.proxy.script("GetObject", "slow_first_byte")
    started = time.monotonic()
    assert rig.store.get(ref) == data
    assert time.monotonic() - started >= 0.2
    assert rig.policy.stats.retries == 0


def test_truncated_listing_is_retried(rig: Rig) -> None:
    refs = [rig.refs.make("Bytes", visit=1, detector=d) for d in range(3)]
    for ref in refs:
        rig.store.put(_data(1000), ref)
    rig.proxy.script("ListObjectsV2", "truncate", "reset_after")
    assert rig.store.stored_many(refs) == dict.fromkeys(refs, True)
    assert rig.policy.stats.retries == 2


def test_exhausted_budget_raises_transient_storage_error(rig: Rig) -> None:
    ref, data = rig.refs.make("Bytes"), _data(10_000)
    rig.proxy.script("PutObject", *["reset_before"] * MAX_ATTEMPTS)
    with pytest.raises(TransientStorageError, match=f"after {MAX_ATTEMPTS} attempts"):
        rig.store.put(data, ref)
    assert not rig.store.knows(ref)
    rig.store.put(data, ref)  # nothing was applied: a later put succeeds
    rig.proxy.reset_counters()
    rig.proxy.set_rate(1.0, {"internal": 1.0, "slowdown": 1.0}, operations={"GetObject"})
    with pytest.raises(TransientStorageError):
        rig.store.get(ref)
    assert rig.proxy.requests == {"GetObject": MAX_ATTEMPTS}
    assert rig.proxy.injected_by_operation == {"GetObject": MAX_ATTEMPTS}
    assert rig.policy.stats.give_ups == 2


@pytest.mark.parametrize(
    ("operation", "kind"),
    [
        ("HeadObject", "reset_before"),
        ("CreateMultipartUpload", "reset_after"),
        ("CreateMultipartUpload", "truncate"),
        ("UploadPart", "reset_after"),
        ("UploadPart", "truncate"),
        ("UploadPart", "slowdown"),
        ("CompleteMultipartUpload", "reset_after"),
        ("CompleteMultipartUpload", "truncate"),
        ("CompleteMultipartUpload", "internal"),
    ],
)
def test_multipart_put_fault_retried_to_success(rig: Rig, operation: str, kind: str) -> None:
    ref, data = rig.refs.make("Bytes"), _data(6 * MIB)
    rig.proxy.script(operation, kind)
    rig.store.put(data, ref)
    assert rig.proxy.injected == {kind: 1}
    assert rig.proxy.requests["UploadPart"] >= 2
    assert rig.stored(rig.key(ref)) == data


def test_large_put_relays_100_continue(rig: Rig) -> None:
    if rig.config.transport != "boto3":
        pytest.skip("obstore does not send Expect: 100-continue")
    ref, data = rig.refs.make("Bytes"), _data(2 * MIB)
    rig.proxy.continue_timeout = 30.0  # were the server's 100 not relayed, the proxy would wait 30 s
    started = time.monotonic()
    rig.store.put(data, ref)
    assert time.monotonic() - started < 10.0
    assert rig.proxy.continues == 1
    assert rig.stored(rig.key(ref)) == data


@pytest.mark.seaweedfs
def test_flipped_upload_bit_is_refused_by_the_server(
    seaweedfs_endpoint: S3TestEndpoint, s3_transport: str
) -> None:
    """Each transport sends a checksum SeaweedFS checks: boto3 s3qbb's CRC32C, obstore a SHA-256."""
    config = seaweedfs_endpoint.config.model_copy(update={"transport": s3_transport})
    with FaultProxy(seaweedfs_endpoint.endpoint_url, {"PutObject": ["corrupt_request"]}) as proxy:
        store = S3Datastore(f"s3://{seaweedfs_endpoint.bucket}/repo", config=proxy.endpoint_config(config))
        ref = RefMaker().make("Bytes")
        with pytest.raises(DatasetIntegrityError, match="BadDigest"):
            store.put(_data(10_000), ref)
        assert proxy.injected == {"corrupt_request": 1} and proxy.requests == {"PutObject": 1}
        assert not store.knows(ref)
        store.put(_data(10_000), ref)  # nothing was stored: the put can be made again
        assert store.get(ref) == _data(10_000)
        store.close()


# --------------------------------------------------------- requests the server applied, answers lost


def test_put_applied_whose_every_answer_was_lost_succeeds(rig: Rig) -> None:
    """The first attempt is applied, no attempt is answered: once the retries run out, one HEAD finds
    this write's token and checksum, and the put succeeds (it gave up, and only a repeat succeeded)."""
    ref, data = rig.refs.make("Bytes"), _data(10_000)
    rig.proxy.script("PutObject", "reset_after", *["reset_before"] * (MAX_ATTEMPTS - 1))
    rig.store.put(data, ref)
    assert rig.proxy.injected == {"reset_after": 1, "reset_before": MAX_ATTEMPTS - 1}
    assert rig.stored(rig.key(ref)) == data
    assert rig.store.get(ref) == data


def test_retried_complete_answered_no_such_upload_is_our_write(rig: Rig) -> None:
    ref, data = rig.refs.make("Bytes"), _data(6 * MIB)
    sent: list[str] = []

    def aws_like(request: botocore.awsrequest.AWSPreparedRequest, **kwargs: Any) -> Any:
        sent.append(request.url)
        return _no_such_upload_response(request.url) if len(sent) > 1 else None

    if rig.config.transport != "boto3":
        pytest.skip("hooks botocore; on obstore the multipart requests are those of a boto3 client too")
    client = rig.store.bucket.client
    client.meta.events.register_first("before-send.s3.CompleteMultipartUpload", aws_like)
    rig.proxy.script("CompleteMultipartUpload", "reset_after")  # completed, response lost
    rig.store.put(data, ref)
    assert rig.stored(rig.key(ref)) == data


def _no_such_upload_response(url: str) -> botocore.awsrequest.AWSResponse:
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchUpload</Code><Message>The specified '
        b"upload does not exist. The upload ID may be invalid, or the upload may have been aborted or "
        b"completed.</Message></Error>"
    )
    headers = botocore.compat.HTTPHeaders()
    headers["Content-Type"] = "application/xml"
    headers["Content-Length"] = str(len(body))

    class Raw:
        def stream(self, **kwargs: Any) -> Iterator[bytes]:
            yield body

    return botocore.awsrequest.AWSResponse(url, 404, headers, Raw())
