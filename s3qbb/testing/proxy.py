"""Fault injection from outside the client: an HTTP/1.1 reverse proxy in front of an S3 endpoint.

`FaultProxy` listens on the loopback interface and relays every request to
an upstream S3 URL unchanged (same request line, same headers, so SigV4
signatures stay valid), except those it chooses to break. Unlike the
in-process `s3qbb.testing.faults.FaultInjector`, it breaks the real HTTP
exchange: connections are really reset, bodies really cut short, responses
really late, so the whole client stack (botocore, urllib3, sockets) is
exercised. Point the code under test at `FaultProxy.url` with path-style
addressing, e.g. ``proxy.endpoint_config(config)``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Final, Literal, Self, get_args

from ._http11 import (
    _CLOSE,
    _close,
    _copy_body,
    _discard,
    _Head,
    _keep_alive,
    _ProtocolError,
    _read_head,
    _request_framing,
    _response_framing,
    _Stream,
)
from .faultplan import FaultCounters, FaultPlan, error_xml

if TYPE_CHECKING:
    from types import TracebackType

    from ..config import S3EndpointConfig

__all__ = ["PROXY_FAULT_KINDS", "FaultProxy", "ProxyFaultKind", "s3_operation"]

ProxyFaultKind = Literal[
    "slowdown",
    "internal",
    "reset_before",
    "reset_after",
    "slow_first_byte",
    "truncate",
    "corrupt",
    "corrupt_request",
    "skewed",
]
"""Faults `FaultProxy` injects into one request:

- ``slowdown``: answer 503 ``SlowDown`` (S3 error XML); the request is not forwarded;
- ``internal``: answer 500 ``InternalError``; the request is not forwarded;
- ``reset_before``: reset the client connection; the request is not forwarded;
- ``reset_after``: forward the request, let the server apply it and answer, then
  reset the client connection before any response byte (a write applied whose
  response is lost);
- ``slow_first_byte``: forward the request, then wait `FaultProxy.slow_delay`
  seconds before relaying the response (beyond the client's read timeout, it
  times out; the server applied the request anyway);
- ``truncate``: forward the request, send the response head with the real
  ``Content-Length`` but only half the body, then close. A response without a
  body (HEAD, PUT ...) is cut in the middle of its status line instead;
- ``corrupt``: forward the request, then relay the complete response with one
  bit of its body flipped (the lowest bit of the middle byte), as a faulty
  network path or NIC would; a response without a body is relayed unchanged.
  The stored object is untouched, so reading it again returns good bytes;
- ``corrupt_request``: forward the request with one bit of its body flipped
  (the lowest bit of its first byte), as a faulty path would on an upload: a
  server that checks the checksum the client sent rejects it (``BadDigest``).
  A request without a body, or with a chunked one, is forwarded unchanged;
- ``skewed``: answer 403 ``RequestTimeTooSkewed``, as S3 does to a request signed by a
  host whose clock is off by more than 15 minutes; the request is not forwarded.
"""

PROXY_FAULT_KINDS: Final[tuple[str, ...]] = get_args(ProxyFaultKind)

_RANDOM_KINDS: Final = tuple(
    k for k in PROXY_FAULT_KINDS if k not in ("corrupt", "corrupt_request", "skewed")
)
"""Default kinds of random faults: ``corrupt`` (twice in a row it fails a read),
``corrupt_request`` and ``skewed`` (a rejected request is not retried) only when asked for."""

_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
_ERRORS: Final[Mapping[str, tuple[bytes, str, str]]] = {
    "slowdown": (b"503 Slow Down", "SlowDown", "Please reduce your request rate."),
    "internal": (b"500 Internal Server Error", "InternalError", "We encountered an internal error."),
    "skewed": (
        b"403 Forbidden",
        "RequestTimeTooSkewed",
        "The difference between the request time and the current time is too large.",
    ),
    "bad_gateway": (b"502 Bad Gateway", "BadGateway", "The fault proxy could not reach the upstream server."),
}


# (method, on an object?, query parameter that must be present, operation): the first match wins.
_OPERATIONS: Final = (
    ("GET", False, "list-type", "ListObjectsV2"), ("GET", False, "uploads", "ListMultipartUploads"),
    ("GET", False, "versions", "ListObjectVersions"), ("GET", False, "location", "GetBucketLocation"),
    ("GET", False, "", "ListObjects"), ("PUT", False, "", "CreateBucket"), ("HEAD", False, "", "HeadBucket"),
    ("DELETE", False, "", "DeleteBucket"), ("POST", False, "delete", "DeleteObjects"),
    ("PUT", True, "partNumber", "UploadPart"), ("PUT", True, "tagging", "PutObjectTagging"),
    ("PUT", True, "", "PutObject"), ("POST", True, "uploads", "CreateMultipartUpload"),
    ("POST", True, "uploadId", "CompleteMultipartUpload"),
    ("DELETE", True, "uploadId", "AbortMultipartUpload"), ("DELETE", True, "", "DeleteObject"),
    ("GET", True, "uploadId", "ListParts"), ("GET", True, "tagging", "GetObjectTagging"),
    ("GET", True, "", "GetObject"), ("HEAD", True, "", "HeadObject"),
)  # fmt: skip
_COPIES: Final = {"PutObject": "CopyObject", "UploadPart": "UploadPartCopy"}


def s3_operation(
    method: str,
    target: str,
    headers: Mapping[str, str] | None = None,
    *,
    addressing_style: Literal["path", "virtual"] = "path",
) -> str:
    """Name the S3 operation of an HTTP request.

    Parameters
    ----------
    method : `str`
        HTTP method, e.g. ``"PUT"``.
    target : `str`
        Request target (path and query), e.g. ``"/bucket/key?partNumber=1&uploadId=x"``.
    headers : `~collections.abc.Mapping` [`str`, `str`], optional
        Request headers with lower-case names (``x-amz-copy-source`` tells a copy).
    addressing_style : `str`, optional
        ``"path"`` (bucket first in the path) or ``"virtual"`` (bucket in the host name).

    Returns
    -------
    operation : `str`
        The botocore operation name, e.g. ``"PutObject"``, ``"ListObjectsV2"``,
        ``"UploadPart"``; the ``x-id`` query parameter botocore adds wins when present.
    """
    parts = urllib.parse.urlsplit(target)
    params = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
    if params.get("x-id"):
        return params["x-id"][0]
    method = method.upper()
    path = parts.path.lstrip("/")
    if addressing_style == "path":
        bucket, _, key = path.partition("/")
        if not bucket:
            return "ListBuckets" if method == "GET" else f"{method}Service"
    else:
        key = path
    for verb, on_object, parameter, operation in _OPERATIONS:
        if verb == method and on_object == bool(key) and (not parameter or parameter in params):
            copy = "x-amz-copy-source" in (headers or {})
            return _COPIES.get(operation, operation) if copy else operation
    return f"{method}{'Object' if key else 'Bucket'}"


class _Session:
    """One client connection, served by one thread, with the upstream connection it reuses."""

    def __init__(self, proxy: FaultProxy, sock: socket.socket) -> None:
        self.proxy = proxy
        self.client = _Stream(sock)
        self.upstream: _Stream | None = None

    def run(self) -> None:
        try:
            while not self.proxy.stopping:
                request = _read_head(self.client)
                if request is None or not self.handle(request):
                    break
        except (OSError, ValueError, _ProtocolError):
            pass  # The client went away or spoke garbage: drop the connection.
        finally:
            self.close()
            self.proxy._forget(self)

    def close(self) -> None:
        _close(self.client.sock)
        self.drop_upstream()

    def drop_upstream(self) -> None:
        if self.upstream is not None:
            _close(self.upstream.sock)
            self.upstream = None

    def connect(self) -> _Stream:
        if self.upstream is not None and self.upstream.readable(0.0):
            self.drop_upstream()  # An idle connection with something to read was closed by the server.
        if self.upstream is None:
            sock = socket.create_connection(self.proxy.upstream_address, timeout=self.proxy.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.upstream = _Stream(sock)
        return self.upstream

    def handle(self, request: _Head) -> bool:
        """Serve one request; return whether the client connection stays open."""
        fields = request.start.split()
        if len(fields) != 3:
            raise _ProtocolError(f"bad request line {request.start[:80]!r}")
        method, target = fields[0].decode("latin-1").upper(), fields[1].decode("latin-1")
        headers = request.headers
        framing = _request_framing(headers)
        expects = framing != 0 and headers.get("expect", "").lower() == "100-continue"
        keep = _keep_alive(fields[2], headers)
        operation = s3_operation(method, target, headers, addressing_style=self.proxy.addressing_style)
        only = self.proxy.only_keys
        kind = None
        if only is None or only in urllib.parse.unquote(urllib.parse.urlsplit(target).path):
            kind, _ = self.proxy._plan.choose(operation)
        if kind == "reset_before":
            _close(self.client.sock, reset=True)
            return False
        if kind in ("slowdown", "internal", "skewed"):
            if framing and not expects:
                _copy_body(self.client, framing, _discard)
            keep = keep and not expects  # The client holds back its body: close instead of reading it.
            self.client.send(self.proxy._error_response(kind, method, target, keep=keep))
            return keep
        for attempt in (1, 2):
            reused = self.upstream is not None
            try:
                response, body_sent = self.forward(request, framing, expects, flip=kind == "corrupt_request")
                break
            except (OSError, _ProtocolError):
                self.drop_upstream()
                if attempt == 1 and reused and framing == 0:
                    continue  # A kept-alive upstream connection went stale: nothing was lost, try afresh.
                self.proxy._count("relay_errors")
                with contextlib.suppress(OSError):
                    self.client.send(self.proxy._error_response("bad_gateway", method, target, keep=False))
                return False
        assert self.upstream is not None
        upstream = self.upstream
        resp_framing = _response_framing(response, method)
        upstream_keep = (
            body_sent and resp_framing != _CLOSE and _keep_alive(response.start[:8], response.headers)
        )
        if kind in ("reset_after", "truncate", "corrupt"):
            parts: list[bytes] = []
            _copy_body(upstream, resp_framing, parts.append, decode=True)
            if not upstream_keep:
                self.drop_upstream()
            if kind == "reset_after":
                _close(self.client.sock, reset=True)
                return False
            body = b"".join(parts)
            if kind == "corrupt":
                flipped = bytearray(body)
                if flipped:
                    flipped[len(flipped) // 2] ^= 0x01
                head = response.with_header("Content-Length", str(len(body)), drop=["transfer-encoding"])
                self.client.send(head.with_header("Connection", "close").raw() + bytes(flipped))
                return False
            if body:
                head = response.with_header("Content-Length", str(len(body)), drop=["transfer-encoding"])
                self.client.send(head.with_header("Connection", "close").raw() + body[: len(body) // 2])
            else:
                self.client.send(response.start[: len(response.start) // 2])
            return False
        if kind == "slow_first_byte" and self.proxy._stopped.wait(self.proxy.slow_delay):
            return False
        keep = keep and upstream_keep
        self.client.send((response if keep else response.with_header("Connection", "close")).raw())
        _copy_body(upstream, resp_framing, self.client.send)
        if not upstream_keep:
            self.drop_upstream()
        return keep

    def forward(
        self, request: _Head, framing: int, expects: bool, *, flip: bool = False
    ) -> tuple[_Head, bool]:
        """Send a request upstream; return the final response head and whether the body was sent.

        With ``flip``, the lowest bit of the first byte of a body of known length is flipped.
        """
        upstream = self.connect()
        upstream.send(request.raw())
        if expects:
            # Relay the server's decision: its final answer (body never sent), or "continue". A server
            # that stays silent gets the body after continue_timeout, as RFC 9110 lets clients do.
            while upstream.readable(self.proxy.continue_timeout):
                interim = _read_head(upstream)
                if interim is None:
                    raise _ProtocolError("upstream closed the connection before answering")
                if interim.status == 100:
                    break
                if interim.status >= 200:
                    return interim, False
                self.client.send(interim.raw())
            self.client.send(_CONTINUE)
            self.proxy._count("continues")
        if framing:
            _copy_body(
                self.client,
                framing,
                _flip_first_bit(upstream.send) if flip and framing > 0 else upstream.send,
            )
        while True:
            response = _read_head(upstream)
            if response is None:
                raise _ProtocolError("upstream closed the connection before answering")
            if response.status >= 200 or response.status == 101:
                return response, True
            if response.status != 100:
                self.client.send(response.raw())


class FaultProxy(FaultCounters):
    """A threaded HTTP/1.1 reverse proxy that breaks some of the requests it relays to an S3 endpoint.

    Parameters
    ----------
    upstream_url : `str`
        ``http://host:port`` of the S3 service to relay to.
    script : `~collections.abc.Mapping` [`str`, `~collections.abc.Iterable` [`str`]], optional
        Per operation name (see `s3_operation`), what its next requests do, in
        order: a fault kind (see `ProxyFaultKind`) or ``"ok"``, e.g.
        ``{"PutObject": ["reset_after", "ok"]}``. Operations whose script is
        used up (or absent) fall back to random faults.
    rate : `float`, optional
        Probability in ``[0, 1]`` of a random fault on a request without a script entry.
    kinds : `~collections.abc.Mapping` [`str`, `float`] or `~collections.abc.Sequence` [`str`], optional
        Kinds random faults are drawn from, with relative weights if a mapping;
        every kind but ``corrupt``, equally likely, by default.
    operations : `~collections.abc.Iterable` [`str`], optional
        Operations random faults apply to; all by default.
    seed : `int`, optional
        Seed of the random faults.
    slow_delay : `float`, optional
        Seconds ``slow_first_byte`` holds a response back.
    continue_timeout : `float`, optional
        Seconds to wait for the server's ``100 Continue`` before sending a body anyway.
    timeout : `float`, optional
        Socket timeout in seconds (an idle client connection is closed after it).
    host : `str`, optional
        Interface to listen on.
    port : `int`, optional
        Port to listen on; 0 (the default) lets the kernel choose (see `port`).
    addressing_style : `str`, optional
        How clients address buckets (``"path"`` or ``"virtual"``), for naming operations.
    only_keys : `str`, optional
        Break only requests whose (decoded) path contains this text, e.g.
        ``"/_records/"``; the others are relayed untouched, neither counted nor
        using up a script. All requests by default (`only_keys` can be changed).

    Notes
    -----
    Requests are relayed unchanged, ``Host`` header included, so SigV4
    signatures made for the proxy's address stay valid; use path-style
    addressing. ``Expect: 100-continue`` is relayed: the server's ``100
    Continue`` (or its early final answer) reaches the client before the body
    moves. Keep-alive, ``Content-Length`` and chunked bodies are supported.
    Counters (`requests`, `injected`, `injected_by_operation`) are thread-safe.

    Examples
    --------
    A response cut short is noticed by the checksum and retried:

    >>> from s3qbb import S3Datastore
    >>> from s3qbb.testing.data import RefMaker
    >>> from s3qbb.testing.servers import MotoServer
    >>> server = MotoServer().start()
    >>> endpoint = server.endpoint(bucket="proxied")
    >>> with FaultProxy(server.endpoint_url, {"GetObject": ["truncate"]}) as proxy:
    ...     store = S3Datastore("s3://proxied/repo", config=proxy.endpoint_config(endpoint.config))
    ...     ref = RefMaker().make("StructuredDataDict")
    ...     store.put({"a": 1}, ref)
    ...     store.get(ref), proxy.injected, store.stats.retries
    ({'a': 1}, Counter({'truncate': 1}), 1)
    >>> server.stop()
    """

    def __init__(
        self,
        upstream_url: str,
        script: Mapping[str, Iterable[str]] | None = None,
        *,
        rate: float = 0.0,
        kinds: Mapping[str, float] | Sequence[str] | None = None,
        operations: Iterable[str] | None = None,
        seed: int = 0,
        slow_delay: float = 1.0,
        continue_timeout: float = 1.0,
        timeout: float = 60.0,
        host: str = "127.0.0.1",
        port: int = 0,
        addressing_style: Literal["path", "virtual"] = "path",
        only_keys: str | None = None,
    ) -> None:
        parts = urllib.parse.urlsplit(upstream_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"FaultProxy relays plain HTTP only; got upstream {upstream_url!r}")
        self.upstream_url = upstream_url.rstrip("/")
        self.upstream_address = (parts.hostname, parts.port or 80)
        self.slow_delay = slow_delay
        self.continue_timeout = continue_timeout
        self.timeout = timeout
        self.addressing_style: Literal["path", "virtual"] = addressing_style
        self.only_keys = only_keys
        self._bind = (host, port)
        self._lock = threading.Lock()
        self._plan = FaultPlan(
            PROXY_FAULT_KINDS,
            script,
            rate=rate,
            kinds=_RANDOM_KINDS if kinds is None else kinds,
            operations=operations,
            seed=seed,
        )
        self._events: Counter[str] = Counter()
        self._number = 0
        self._listener: socket.socket | None = None
        self._accepter: threading.Thread | None = None
        self._sessions: dict[_Session, threading.Thread] = {}
        self._stopped = threading.Event()

    # --- control -----------------------------------------------------------

    def set_rate(
        self,
        rate: float,
        kinds: Mapping[str, float] | Sequence[str] | None = None,
        operations: Iterable[str] | None = None,
    ) -> None:
        """Change the random faults (see the class parameters of the same names)."""
        self._plan.set_rate(rate, _RANDOM_KINDS if kinds is None else kinds, operations)

    @property
    def continues(self) -> int:
        """``100 Continue`` interim responses relayed to clients so far."""
        with self._lock:
            return self._events["continues"]

    @property
    def relay_errors(self) -> int:
        """Requests that could not be relayed (upstream unreachable, a peer closed mid-message)."""
        with self._lock:
            return self._events["relay_errors"]

    def reset_counters(self) -> None:
        """Set every counter back to zero (scripts and rate are kept)."""
        self._plan.reset_counters()
        with self._lock:
            self._events.clear()

    # --- lifecycle ---------------------------------------------------------

    @property
    def stopping(self) -> bool:
        """Whether `stop` was called."""
        return self._stopped.is_set()

    @property
    def port(self) -> int:
        """Port the proxy listens on."""
        if self._listener is None:
            raise RuntimeError("FaultProxy is not running: call start() or use it as a context manager")
        return int(self._listener.getsockname()[1])

    @property
    def url(self) -> str:
        """``http://host:port`` of the proxy: the endpoint URL to give the client under test."""
        return f"http://{self._bind[0]}:{self.port}"

    def endpoint_config(self, config: S3EndpointConfig) -> S3EndpointConfig:
        """Return ``config`` pointing at the proxy (path-style addressing)."""
        values = {**config.model_dump(), "endpoint_url": self.url, "addressing_style": "path"}
        return type(config).model_validate(values)

    def start(self) -> Self:
        """Start listening (if not already) and return the proxy."""
        if self._listener is None:
            self._stopped.clear()
            listener = socket.create_server(self._bind, backlog=128)
            listener.settimeout(0.1)  # accept() polls so that stop() is noticed promptly
            self._listener = listener
            self._accepter = threading.Thread(target=self._accept, name="s3qbb-fault-proxy", daemon=True)
            self._accepter.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, close every connection and join every thread; idempotent."""
        self._stopped.set()
        if self._accepter is not None:
            self._accepter.join(timeout)
            self._accepter = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            sessions = dict(self._sessions)
        for session in sessions:
            session.close()
        for thread in sessions.values():
            thread.join(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._listener is not None else "stopped"
        return f"FaultProxy({where} -> {self.upstream_url}, rate={self._plan.rate})"

    # --- internals ---------------------------------------------------------

    def _accept(self) -> None:
        listener = self._listener
        assert listener is not None
        while not self._stopped.is_set():
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:  # out of file descriptors, or the listener closed by stop()
                self._stopped.wait(0.05)
                continue
            sock.settimeout(self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            session = _Session(self, sock)
            thread = threading.Thread(target=session.run, name="s3qbb-fault-proxy-conn", daemon=True)
            with self._lock:
                self._sessions[session] = thread
            thread.start()

    def _forget(self, session: _Session) -> None:
        with self._lock:
            self._sessions.pop(session, None)

    def _count(self, event: str) -> None:
        with self._lock:
            self._events[event] += 1

    def _error_response(self, kind: str, method: str, target: str, *, keep: bool) -> bytes:
        status, code, message = _ERRORS[kind]
        with self._lock:
            self._number += 1
            request_id = f"s3qbb-proxy-{self._number}"
        resource = urllib.parse.urlsplit(target).path
        body = error_xml(code, message, request_id, resource)
        head = [
            b"HTTP/1.1 " + status,
            b"Content-Type: application/xml",
            b"Content-Length: %d" % len(body),
            f"x-amz-request-id: {request_id}".encode(),
            b"Connection: " + (b"keep-alive" if keep else b"close"),
        ]
        return _Head(head[0], head[1:]).raw() + (b"" if method == "HEAD" else body)


def _flip_first_bit(send: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """Wrap a sink so that the first byte it is given has its lowest bit flipped."""
    done = False

    def sink(data: bytes) -> None:
        nonlocal done
        if not done and data:
            done = True
            data = bytes([data[0] ^ 0x01]) + data[1:]
        send(data)

    return sink
