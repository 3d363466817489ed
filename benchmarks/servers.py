"""The S3 servers the benchmarks run against, each outside the measuring process.

SeaweedFS is a subprocess already (`s3qbb.testing.servers.SeaweedFSServer`).
moto's `s3qbb.testing.servers.MotoServer` runs in a thread of the process
that starts it, which would make the server share the client's GIL and add
its CPU time to the client's; `MotoProcessServer` therefore runs that same
`MotoServer` in a child Python process (``python -m benchmarks.servers``)
and exposes it through the `S3TestServer` interface.
"""

from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import IO, TYPE_CHECKING, Self

from s3qbb.testing.servers import MotoServer, S3Credentials, S3TestServer, SeaweedFSServer, ServerStartError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["SERVER_KINDS", "MotoProcessServer", "make_server", "process_cpu_seconds", "server_pid"]

REPO_ROOT = Path(__file__).resolve().parents[1]


class MotoProcessServer(S3TestServer):
    """`MotoServer` running in a child process on 127.0.0.1 and a free port.

    The child prints its URL on stdout and stops when its stdin closes, so it
    also goes away if the parent dies.
    """

    name = "moto"

    def __init__(self, startup_timeout: float = 30.0) -> None:
        super().__init__()
        self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen[str] | None = None
        self._url: str | None = None

    def start(self) -> Self:
        """Start the child process and wait for its URL."""
        if self._proc is not None:
            return self
        proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.servers"],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert proc.stdout is not None
        line = _readline(proc.stdout, self.startup_timeout)
        if not line.startswith("http://"):
            proc.kill()
            proc.wait()
            raise ServerStartError(f"moto child process did not start (said {line!r})")
        self._proc = proc
        self._url = line.strip()
        return self

    @property
    def endpoint_url(self) -> str:
        """URL of the running server."""
        if self._url is None:
            raise RuntimeError("MotoProcessServer is not running")
        return self._url

    @property
    def pid(self) -> int:
        """Process id of the server."""
        if self._proc is None:
            raise RuntimeError("MotoProcessServer is not running")
        return self._proc.pid

    def credentials(self, identity: str = "admin") -> S3Credentials:
        """Return moto's dummy credentials (moto does not check them)."""
        return MotoServer().credentials(identity)

    def reset(self) -> None:
        """Delete every bucket and object."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()

    def stop(self) -> None:
        """Close the child's stdin and wait for it to exit (kill it after 10 s)."""
        self._close_clients()
        proc, self._proc, self._url = self._proc, None, None
        if proc is None:
            return
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _readline(stream: IO[str], timeout: float) -> str:
    import threading

    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return lines[0] if lines else ""


SERVER_KINDS: dict[str, Callable[[], S3TestServer]] = {
    "moto": MotoProcessServer,
    "seaweedfs": SeaweedFSServer,
}
"""Server factories by name."""


def make_server(kind: str) -> S3TestServer:
    """Return an unstarted server of a kind named in `SERVER_KINDS`."""
    try:
        return SERVER_KINDS[kind]()
    except KeyError:
        raise ValueError(f"unknown server {kind!r}; choose from {sorted(SERVER_KINDS)}") from None


def server_pid(server: S3TestServer) -> int | None:
    """Return the process id of a server running in its own process, or `None`."""
    if isinstance(server, MotoProcessServer):
        return server.pid
    proc = getattr(server, "_proc", None)  # SeaweedFSServer does not expose its pid.
    pid = getattr(proc, "pid", None)
    return pid if isinstance(pid, int) else None


def process_cpu_seconds(pid: int) -> float:
    """Return the user + system CPU seconds a process (all its threads) has used so far (Linux).

    Reads ``/proc/<pid>/stat`` (clock-tick resolution, usually 10 ms); NaN where unavailable.
    """
    import math
    import os

    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds all cores of the machine have been busy (``/proc/stat``; NaN where unavailable)."""
    try:
        with open("/proc/stat") as stat:
            values = [int(v) for v in stat.readline().split()[1:]]
    except OSError:
        return math.nan
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU seconds of this process and of its children that have ended (servers once stopped)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _serve_moto() -> None:
    """Child process: run moto until stdin closes."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with MotoServer() as server:
        print(server.endpoint_url, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    _serve_moto()
