"""How `s3qbb.batch.local` starts the process of each quantum: forked from a preloaded server, or a new one.

Each quantum of a local run gets its own process running ``s3qbb run-quantum
ARGS``: exit code, signal handling and records upload are those of a batch
job, and a task that crashes or leaks cannot harm the next quantum. Two ways
to start it:

``forkserver`` (the default on POSIX systems)
    A *fork server*, started once per run as ``python -c ...`` with the
    quanta's environment, imports s3qbb's job modules (and the configured
    transport's) once, then forks a fresh child per quantum: the child skips
    the interpreter start and the imports that make up most of a small
    quantum's cost. Its objects are frozen out of the garbage collector's
    reach (`gc.freeze`), so children neither walk nor copy them. The server is
    single-threaded and holds no S3 client,
    records store or task module, so every child starts from the same clean,
    preloaded state; it runs ``python -m s3qbb.cli ARGS`` in-process and
    exits with its status (atexit handlers run). Unlike `multiprocessing`'s
    fork server, it never imports the runner's ``__main__`` module.
``subprocess``
    ``python -m s3qbb.cli run-quantum ...``: a new interpreter per quantum.

Either way the runner waits for the process, reads its exit status (``-N``
for a process killed by signal ``N``, as `subprocess` reports it), sends it
SIGTERM/SIGINT itself, and keeps the end of its standard error (written to a
file, not a pipe, so a chatty quantum cannot block).

The server's protocol: one JSON request per line on its standard input
(``{"id", "args", "cwd", "stderr"}``), replies on its standard output
(``started ID PID`` after each fork, ``exited PID STATUS`` when a child ends).
It ignores SIGINT (a Ctrl-C reaches the quanta, and the runner decides) and
exits once its input is closed and its children have ended.
"""

from __future__ import annotations

__all__ = [
    "START_METHODS",
    "ForkServer",
    "QuantumProcess",
    "default_start_method",
    "preload_modules",
    "serve",
    "start_subprocess",
]

import contextlib
import gc
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import IO, Literal, Protocol

START_METHODS = ("forkserver", "subprocess")
"""How quanta of a local run may be started (see the module documentation)."""

StartMethod = Literal["forkserver", "subprocess"]

SERVER_DIED = 75
"""Exit status reported for a quantum whose fork server ended before it did (retryable)."""

_JOB_MODULES = (
    "s3qbb.cli.main",
    "s3qbb.cli.run_quantum",
    "s3qbb.batch.job",
    "s3qbb.batch.execution",
    "s3qbb.batch.graph",
    "s3qbb.batch.upstream",
    "s3qbb.repo",
    "s3qbb.butler.quantum_backed",
    "s3qbb.datastores.s3",
    "s3qbb.datastores.caching",
    "s3qbb.records.store",
    "s3qbb.provenance.model",
    "s3qbb.formatters.json",
    "s3qbb.formatters.yaml",
)
"""What every quantum's process imports (the graph, the butler, records, provenance)."""

_TRANSPORT_MODULES: dict[str, tuple[str, ...]] = {
    "boto3": ("s3qbb.s3.boto3_transport", "s3qbb.s3.client"),
    "obstore": ("s3qbb.s3.obstore_transport",),
}


class QuantumProcess(Protocol):
    """A started quantum process."""

    @property
    def pid(self) -> int:
        """Its process ID."""

    def wait(self) -> int:
        """Wait for it to end; return its exit status (``-N`` if killed by signal ``N``)."""

    def send_signal(self, signum: int) -> None:
        """Send it a signal, if it is still running."""


def default_start_method() -> StartMethod:
    """Return ``forkserver`` where the platform can fork, else ``subprocess``."""
    return "forkserver" if hasattr(os, "fork") and sys.platform != "win32" else "subprocess"


def preload_modules(transport: str | None) -> list[str]:
    """Return the modules the fork server imports before forking quanta.

    Parameters
    ----------
    transport : `str` or `None`
        The endpoint's transport (``boto3``, ``obstore``); `None` for a
        datastore that does not use S3.

    Returns
    -------
    modules : `list` [`str`]
        s3qbb's job modules and those of the transport.
    """
    return [*_JOB_MODULES, *_TRANSPORT_MODULES.get(transport or "", ())]


# --- a new interpreter per quantum ----------------------------------------------------------


class _Subprocess:
    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen

    @property
    def pid(self) -> int:
        return self._popen.pid

    def wait(self) -> int:
        return self._popen.wait()

    def send_signal(self, signum: int) -> None:
        if self._popen.poll() is None:
            self._popen.send_signal(signum)


def start_subprocess(
    args: Sequence[str], *, env: Mapping[str, str] | None, stderr_path: str
) -> QuantumProcess:
    """Start ``python -m s3qbb.cli ARGS`` (standard error to ``stderr_path``, output discarded)."""
    with open(stderr_path, "wb") as stderr:
        popen = subprocess.Popen(
            [sys.executable, "-m", "s3qbb.cli", *args],
            env=dict(env) if env is not None else None,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    return _Subprocess(popen)


# --- the fork server, runner side ---------------------------------------------------------------


class _Forked:
    def __init__(self, server: ForkServer, pid: int) -> None:
        self._server = server
        self._pid = pid

    @property
    def pid(self) -> int:
        return self._pid

    def wait(self) -> int:
        return self._server.wait(self._pid)

    def send_signal(self, signum: int) -> None:
        if not self._server.ended(self._pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._pid, signum)


_SERVER_CODE = "import sys; from s3qbb.batch.workers import serve; sys.exit(serve(sys.argv[1:]))"


class ForkServer:
    """The runner's handle on a fork server (see the module documentation).

    Parameters
    ----------
    preload : `~collections.abc.Sequence` [`str`]
        Modules the server imports before forking (`preload_modules`).
    env : `~collections.abc.Mapping` [`str`, `str`], optional
        Environment of the server, hence of every quantum; this process's by default.
    """

    def __init__(self, preload: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _SERVER_CODE, *preload],
            env=dict(env) if env is not None else None,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )  # fmt: skip
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._next_id = 0
        self._started: dict[int, int] = {}
        self._exited: dict[int, int] = {}
        self._closed = False
        self._reader = threading.Thread(target=self._read, name="s3qbb-forkserver", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            kind, first, second = line.split()
            with self._cond:
                if kind == "started":
                    self._started[int(first)] = int(second)
                else:
                    self._exited[int(first)] = int(second)
                self._cond.notify_all()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def start(self, args: Sequence[str], *, stderr_path: str) -> QuantumProcess:
        """Fork ``s3qbb ARGS`` (standard error to ``stderr_path``); return it once it runs.

        Raises
        ------
        OSError
            If the server has ended.
        """
        with self._cond:
            if self._closed or self._proc.stdin is None:
                raise OSError(f"the s3qbb fork server ended (exit {self._proc.poll()})")
            self._next_id += 1
            ident = self._next_id
            request = {"id": ident, "args": list(args), "cwd": os.getcwd(), "stderr": stderr_path}
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
            while ident not in self._started:
                if self._closed:
                    raise OSError(f"the s3qbb fork server ended (exit {self._proc.wait()})")
                self._cond.wait()
            return _Forked(self, self._started.pop(ident))

    def ended(self, pid: int) -> bool:
        """Whether the quantum process ``pid`` has ended."""
        with self._cond:
            return pid in self._exited

    def wait(self, pid: int) -> int:
        """Wait for the quantum process ``pid``; return its exit status (`SERVER_DIED` if the server died)."""
        with self._cond:
            while pid not in self._exited:
                if self._closed:
                    return SERVER_DIED
                self._cond.wait()
            return self._exited[pid]

    def close(self) -> None:
        """Let the server end once its children have (it forks nothing more); wait for it."""
        with self._cond:
            if self._proc.stdin is not None and not self._proc.stdin.closed:
                self._proc.stdin.close()
        self._proc.wait()
        self._reader.join()


# --- the fork server, server side -------------------------------------------------------------------


def serve(preload: Sequence[str]) -> int:
    """Run a fork server on standard input and output (what `ForkServer` starts).

    Parameters
    ----------
    preload : `~collections.abc.Sequence` [`str`]
        Modules to import first; those that fail to import are left to the
        quanta, which report the error.

    Returns
    -------
    status : `int`
        0 for the server; a forked child returns its own exit status instead.
    """
    import importlib

    for name in preload:
        try:
            importlib.import_module(name)
        except Exception:  # a quantum importing it reports the error
            continue
    if "s3qbb.s3.client" in sys.modules:
        _warm_boto3()
    # The preloaded objects live as long as the server: the collector of each child need not walk
    # them (nor, touching them, copy their memory pages).
    gc.collect()
    gc.freeze()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    wakeup_r, wakeup_w = os.pipe()
    os.set_blocking(wakeup_w, False)
    signal.set_wakeup_fd(wakeup_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so that SIGCHLD wakes the selector
    requests = sys.stdin
    replies = sys.stdout
    selector = selectors.DefaultSelector()
    selector.register(requests, selectors.EVENT_READ)
    selector.register(wakeup_r, selectors.EVENT_READ)
    children: set[int] = set()
    open_input = True
    while open_input or children:
        for key, _ in selector.select(timeout=1.0):
            if key.fd == requests.fileno():
                line = requests.readline()
                if not line:
                    open_input = False
                    selector.unregister(requests)
                    continue
                request = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    selector.close()
                    os.close(wakeup_r)
                    os.close(wakeup_w)
                    return _child(request)
                children.add(pid)
                replies.write(f"started {request['id']} {pid}\n")
                replies.flush()
            else:
                os.read(wakeup_r, 512)
        _reap(children, replies)
    return 0


def _warm_boto3() -> None:
    """Load botocore's S3 service model once, for every child's client (most of a client's creation).

    A client of a placeholder endpoint is made and dropped (no request, no
    connection, no credential lookup); the process's shared botocore loader
    keeps the service model, endpoint rules and partitions it read.
    """
    from ..config import S3EndpointConfig
    from ..s3.client import clear_client_cache, make_client

    try:
        placeholder = S3EndpointConfig(
            endpoint_url="http://127.0.0.1:9", region="us-east-1", access_key_id="-", secret_access_key="-"
        )
        make_client(placeholder)
    except Exception:  # only a warm-up: each quantum makes its own client anyway
        pass
    finally:
        clear_client_cache()


def _reap(children: set[int], replies: IO[str]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        children.discard(pid)
        replies.write(f"exited {pid} {os.waitstatus_to_exitcode(status)}\n")
        replies.flush()


def _child(request: dict[str, object]) -> int:
    """In a forked child: become ``python -m s3qbb.cli ARGS``; return its exit status."""
    import runpy

    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    devnull = os.open(os.devnull, os.O_RDWR)
    err = os.open(str(request["stderr"]), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    for fd, target in ((devnull, 0), (devnull, 1), (err, 2)):
        os.dup2(fd, target)
    os.close(devnull)
    os.close(err)
    os.chdir(str(request["cwd"]))
    args = request["args"]
    assert isinstance(args, list)
    sys.argv = ["s3qbb", *map(str, args)]
    try:
        runpy.run_module("s3qbb.cli", run_name="__main__", alter_sys=True)
    except SystemExit as done:
        code = done.code
        if code is None or isinstance(code, int):
            return code or 0
        print(code, file=sys.stderr)
        return 1
    return 0
