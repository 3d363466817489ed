"""In-process fault injection and request counting for boto3 S3 clients.

Both helpers hook a client's ``before-send.s3.*`` event, which botocore emits
once per HTTP request, after signing and before sending. A handler that
returns a response replaces the request; one that raises makes the request
fail as a network error would. Hooks are per client: attach them to the client
the code under test uses (for example ``make_client(config)``) and detach them
afterwards, since cached clients are shared.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, Literal, Self, cast, get_args

import botocore.awsrequest
import botocore.compat
import botocore.exceptions
import urllib3

from .counting import OperationCounts
from .faultplan import FaultCounters, FaultPlan, error_xml

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from types import TracebackType

    from mypy_boto3_s3 import S3Client

__all__ = [
    "FAULT_KINDS",
    "FaultInjector",
    "FaultKind",
    "RequestCounter",
]

_EVENT: Final = "before-send.s3.*"

FaultKind = Literal["slowdown", "internal", "throttle429", "reset", "timeout", "lost_response", "corrupt"]
"""Faults `FaultInjector` can inject:

- ``slowdown``: 503 ``SlowDown`` error response, request not sent;
- ``internal``: 500 ``InternalError`` error response, request not sent;
- ``throttle429``: 429 ``TooManyRequests`` error response, request not sent;
- ``reset``: `botocore.exceptions.ConnectionClosedError`, request not sent;
- ``timeout``: `botocore.exceptions.ReadTimeoutError`, request not sent;
- ``lost_response``: the request IS sent to the server, then its response is
  dropped and `~botocore.exceptions.ConnectionClosedError` raised (the case
  where a retried create-only write meets its own first write);
- ``corrupt``: the request IS sent to the server, and its response returned
  with one bit of its body flipped (the lowest bit of the middle byte), as a
  faulty network path would; a response without a body is returned unchanged.
"""

FAULT_KINDS: Final[tuple[str, ...]] = get_args(FaultKind)

_ERROR_RESPONSES: Final[Mapping[str, tuple[int, str, str]]] = {
    "slowdown": (503, "SlowDown", "Please reduce your request rate."),
    "internal": (500, "InternalError", "We encountered an internal error. Please try again."),
    "throttle429": (429, "TooManyRequests", "Too many requests."),
}


class _RawBody:
    """The ``raw`` of a canned `botocore.awsrequest.AWSResponse`."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **kwargs: Any) -> Iterable[bytes]:
        yield self._body

    def read(self, amt: int | None = None) -> bytes:
        body, self._body = self._body, b""
        return body


def _error_response(url: str, kind: str, request_number: int) -> botocore.awsrequest.AWSResponse:
    status, code, message = _ERROR_RESPONSES[kind]
    request_id = f"s3qbb-fault-{request_number}"
    body = error_xml(code, message, request_id)
    headers = botocore.compat.HTTPHeaders()
    headers["Content-Type"] = "application/xml"
    headers["Content-Length"] = str(len(body))
    headers["x-amz-request-id"] = request_id
    return botocore.awsrequest.AWSResponse(url, status, headers, _RawBody(body))


def _operation(event_name: str) -> str:
    return event_name.rsplit(".", 1)[-1]


class _Hook:
    """Registration of a handler on one client's events."""

    def __init__(self, client: S3Client, *, first: bool) -> None:
        self._client: S3Client | None = client
        self._unique_id = f"s3qbb-{type(self).__name__}-{id(self)}"
        # The stubs want handlers returning None; botocore uses what before-send handlers return.
        handler = cast("Callable[..., None]", self._handle)
        if first:
            client.meta.events.register_first(_EVENT, handler, unique_id=self._unique_id)
        else:
            client.meta.events.register(_EVENT, handler, unique_id=self._unique_id)

    def _handle(self, **kwargs: Any) -> botocore.awsrequest.AWSResponse | None:  # pragma: no cover
        raise NotImplementedError

    def detach(self) -> None:
        """Stop observing the client (idempotent)."""
        if self._client is not None:
            self._client.meta.events.unregister(_EVENT, unique_id=self._unique_id)
            self._client = None

    @property
    def attached(self) -> bool:
        """Whether the hook is still registered."""
        return self._client is not None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.detach()


class RequestCounter(OperationCounts, _Hook):
    """Count the HTTP requests a client sends, per S3 operation.

    Requests replaced by a `FaultInjector` are counted too: every attempt
    counts, which is what "one request per operation" tests need.

    Parameters
    ----------
    client : `mypy_boto3_s3.S3Client`
        Client to observe; the counter attaches at once.
    """

    def __init__(self, client: S3Client) -> None:
        OperationCounts.__init__(self)
        _Hook.__init__(self, client, first=False)

    def _handle(self, **kwargs: Any) -> None:
        self._add(_operation(str(kwargs.get("event_name", ""))))


class FaultInjector(FaultCounters, _Hook):
    """Make some requests of a client fail, following a script or at random.

    Parameters
    ----------
    client : `mypy_boto3_s3.S3Client`
        Client to break; the injector attaches at once, ahead of other handlers.
    script : `~collections.abc.Mapping` [`str`, `~collections.abc.Iterable` [`str`]], optional
        Per operation name, what its next requests do, in order: a fault kind
        (see `FaultKind`) or ``"ok"`` to let one through, e.g.
        ``{"PutObject": ["slowdown", "ok"]}``. Operations whose script is
        used up (or absent) fall back to random faults.
    rate : `float`, optional
        Probability in ``[0, 1]`` of a random fault on a request without a
        script entry; 0 by default.
    kinds : `~collections.abc.Sequence` [`str`], optional
        Kinds random faults are drawn from; all but ``lost_response`` and ``corrupt`` by default.
    operations : `~collections.abc.Iterable` [`str`], optional
        Operations random faults apply to; all by default.
    seed : `int`, optional
        Seed of the random faults.

    Notes
    -----
    Counters: `requests` (every request seen, per operation), `injected`
    (faults per kind) and `injected_by_operation`. Thread-safe.
    """

    def __init__(
        self,
        client: S3Client,
        script: Mapping[str, Iterable[str]] | None = None,
        *,
        rate: float = 0.0,
        kinds: Sequence[str] = ("slowdown", "internal", "throttle429", "reset", "timeout"),
        operations: Iterable[str] | None = None,
        seed: int = 0,
    ) -> None:
        if rate > 0.0 and not kinds:
            raise ValueError("random faults need at least one kind")
        self._plan = FaultPlan(FAULT_KINDS, script, rate=rate, kinds=kinds, operations=operations, seed=seed)
        self._lock = threading.Lock()
        self._http: urllib3.PoolManager | None = None
        super().__init__(client, first=True)

    def detach(self) -> None:
        """Stop injecting faults (idempotent)."""
        super().detach()
        if self._http is not None:
            self._http.clear()
            self._http = None

    # --- the hook -----------------------------------------------------------

    def _handle(self, **kwargs: Any) -> botocore.awsrequest.AWSResponse | None:
        request: botocore.awsrequest.AWSPreparedRequest = kwargs["request"]
        kind, number = self._plan.choose(_operation(str(kwargs.get("event_name", ""))))
        if kind is None:
            return None
        if kind in _ERROR_RESPONSES:
            return _error_response(request.url, kind, number)
        if kind == "reset":
            raise botocore.exceptions.ConnectionClosedError(endpoint_url=request.url)
        if kind == "timeout":
            raise botocore.exceptions.ReadTimeoutError(endpoint_url=request.url)
        response = self._forward(request)
        if kind == "corrupt":
            body = bytearray(response.data)
            if body:
                body[len(body) // 2] ^= 0x01
            headers = botocore.compat.HTTPHeaders()
            for name, value in response.headers.items():
                headers[name] = value
            return botocore.awsrequest.AWSResponse(
                request.url, response.status, headers, _RawBody(bytes(body))
            )
        raise botocore.exceptions.ConnectionClosedError(endpoint_url=request.url)  # lost_response

    def _forward(self, request: botocore.awsrequest.AWSPreparedRequest) -> urllib3.BaseHTTPResponse:
        """Send a request to the server and return its (fully read) response."""
        body: Any = request.body
        if body is not None and not isinstance(body, bytes | bytearray | str):
            data = body.read()
            request.reset_stream()
        else:
            data = body
        # "Expect: 100-continue" is not signed; urllib3 cannot handle the interim response.
        headers = {
            k: v.decode() if isinstance(v, bytes) else str(v)
            for k, v in request.headers.items()
            if k.lower() != "expect"
        }
        with self._lock:
            if self._http is None:
                self._http = urllib3.PoolManager(num_pools=2)
            http = self._http
        return http.request(
            request.method,
            request.url,
            body=data,
            headers=headers,
            retries=False,
            preload_content=True,
            decode_content=False,
        )
