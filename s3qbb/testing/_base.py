"""What every test S3 server has: credentials, a prepared endpoint, free ports, the base class.

Shared by `s3qbb.testing.servers` (moto, SeaweedFS) and
`s3qbb.testing.localstack`; import these names from `s3qbb.testing.servers`.
"""

from __future__ import annotations

import abc
import contextlib
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

import boto3

from ..config import S3EndpointConfig
from ..errors import S3qbbError
from ..s3.client import botocore_config

if TYPE_CHECKING:
    from types import TracebackType

    from mypy_boto3_s3 import S3Client

__all__ = [
    "DEFAULT_TEST_BUCKET",
    "S3Credentials",
    "S3TestEndpoint",
    "S3TestServer",
    "ServerStartError",
    "free_ports",
]

_LOOPBACK = "127.0.0.1"
_REGION = "us-east-1"
DEFAULT_TEST_BUCKET = "s3qbb-test"
"""Bucket created by `S3TestServer.endpoint` unless told otherwise."""


class ServerStartError(S3qbbError, RuntimeError):
    """A test S3 server did not start or did not become ready in time."""


@dataclass(frozen=True)
class S3Credentials:
    """An access key pair of a test server (the secret is hidden from ``repr``)."""

    access_key_id: str
    secret_access_key: str = field(repr=False)


@dataclass(frozen=True)
class S3TestEndpoint:
    """A test server prepared for one test: state reset and a fresh bucket.

    Attributes
    ----------
    name : `str`
        ``"moto"`` or ``"seaweedfs"``.
    endpoint_url : `str`
        URL of the server.
    bucket : `str`
        Name of an empty bucket created for the test.
    config : `s3qbb.config.S3EndpointConfig`
        Configuration with the admin identity's credentials.
    client : `mypy_boto3_s3.S3Client`
        Admin "back door" client (not from the `s3qbb.s3.make_client` cache,
        botocore retries off) for checking what the code under test stored.
    server : `S3TestServer`
        The server itself.
    """

    name: str
    endpoint_url: str
    bucket: str
    config: S3EndpointConfig
    client: S3Client
    server: S3TestServer

    def config_for(self, identity: str, **overrides: Any) -> S3EndpointConfig:
        """Return `S3TestServer.endpoint_config` for ``identity`` (``"reader"``, ``"writer"`` ...)."""
        return self.server.endpoint_config(identity, **overrides)


def free_ports(count: int, host: str = _LOOPBACK, *, offset: int | None = None) -> list[int]:
    """Return distinct TCP ports that are free on ``host`` right now.

    Parameters
    ----------
    count : `int`
        Number of ports.
    host : `str`, optional
        Interface to probe.
    offset : `int`, optional
        If given, only return ports ``p`` such that ``p + offset`` is free too
        (and reserve those as well, so no returned port equals another's partner).

    Returns
    -------
    ports : `list` [`int`]
        Ports the kernel handed out for ``host:0``; another process may take
        them before they are used, so callers retry on a bind failure.
    """
    with contextlib.ExitStack() as stack:  # Keep every probed port bound until all are found.
        ports: list[int] = []
        for _ in range(count * 50):
            sock = stack.enter_context(socket.socket())
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
            if offset is not None:
                if port + offset > 65535:
                    continue
                try:
                    stack.enter_context(socket.socket()).bind((host, port + offset))
                except OSError:
                    continue
            ports.append(port)
            if len(ports) == count:
                return ports
    raise OSError(f"could not find {count} free ports on {host}")


class S3TestServer(abc.ABC):
    """Base of the test servers: credentials, configurations and back-door clients."""

    name = ""
    """Short name of the server kind."""

    def __init__(self) -> None:
        self._clients: dict[str, S3Client] = {}

    @abc.abstractmethod
    def start(self) -> Self:
        """Start the server if it is not running and return it."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop the server; does nothing if it is not running."""

    @property
    @abc.abstractmethod
    def endpoint_url(self) -> str:
        """URL of the running server."""

    @abc.abstractmethod
    def credentials(self, identity: str = "admin") -> S3Credentials:
        """Return the access key pair of an identity."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Delete every bucket and object."""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def endpoint_config(self, identity: str = "admin", **overrides: Any) -> S3EndpointConfig:
        """Return a configuration for this server with ``identity``'s credentials.

        It uses path-style addressing and region ``us-east-1``; ``overrides``
        sets other `~s3qbb.config.S3EndpointConfig` fields.
        """
        creds = self.credentials(identity)
        values: dict[str, Any] = {
            "endpoint_url": self.endpoint_url,
            "region": _REGION,
            "addressing_style": "path",
            "access_key_id": creds.access_key_id,
            "secret_access_key": creds.secret_access_key,
        }
        values.update(overrides)
        return S3EndpointConfig(**values)

    def client(self, identity: str = "admin") -> S3Client:
        """Return a raw boto3 client of ``identity`` with botocore retries off.

        The client belongs to this server object (it is not shared with
        `s3qbb.s3.make_client`) and is created once per identity.
        """
        client = self._clients.get(identity)
        if client is None:
            config = self.endpoint_config(identity)
            creds = self.credentials(identity)
            session = boto3.Session(
                aws_access_key_id=creds.access_key_id,
                aws_secret_access_key=creds.secret_access_key,
                region_name=_REGION,
            )
            client = session.client(
                "s3", endpoint_url=self.endpoint_url, config=botocore_config(config, _REGION)
            )
            self._clients[identity] = client
        return client

    def endpoint(self, bucket: str | None = DEFAULT_TEST_BUCKET) -> S3TestEndpoint:
        """Reset the server, create ``bucket`` (unless `None`) and return it prepared for a test."""
        self.reset()
        client = self.client("admin")
        if bucket is not None:
            client.create_bucket(Bucket=bucket)
        return S3TestEndpoint(
            self.name, self.endpoint_url, bucket or "", self.endpoint_config("admin"), client, self
        )

    def _close_clients(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
