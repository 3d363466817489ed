"""The PostgreSQL database of the ``postgres`` tests, found or started without any setting.

`postgres_url` answers, once per test session, in this order:

1. ``$S3QBB_TEST_POSTGRES_URL`` when set (used as given, not probed);
2. ``postgresql+psycopg://postgres@127.0.0.1:5432/test`` when a quick connection (2 s) succeeds;
3. a throwaway cluster made from the installed binaries (``initdb`` and ``pg_ctl`` on ``PATH`` or
   under ``/usr/lib/postgresql/*/bin``) in a temporary folder, on a free loopback port, trust
   authentication, database ``test``. As root (``initdb`` refuses root) it runs as the
   ``postgres`` system user when there is one;
4. otherwise the test is skipped with the reason, or fails when ``S3QBB_REQUIRE_POSTGRES=1``
   (``.ci/run`` sets it).

The cluster is started lazily, by the first test that needs it, so sessions without
PostgreSQL tests never pay for it. Under pytest-xdist the workers share one cluster: the
controller names the folder (`prepare`, exported as ``$S3QBB_TEST_POSTGRES_DIR``), the first
worker starts the server in it under a file lock, the others read its URL, and the controller
stops it at the end (`cleanup`). This is why it is not pytest-postgresql: that plugin's
process fixture is per worker, cannot hand its URL to the subprocesses the CLI and benchmark
tests start, and does not run as root.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

__all__ = [
    "DEFAULT_URL",
    "available_url",
    "cleanup",
    "find_binaries",
    "postgres_url",
    "prepare",
    "start_cluster",
]

URL_ENV = "S3QBB_TEST_POSTGRES_URL"
REQUIRE_ENV = "S3QBB_REQUIRE_POSTGRES"
DIR_ENV = "S3QBB_TEST_POSTGRES_DIR"
DEFAULT_PORT = 5432
DEFAULT_URL = f"postgresql+psycopg://postgres@127.0.0.1:{DEFAULT_PORT}/test"

_resolved: tuple[str | None, str] | None = None  # (url, reason when None), per process


def _required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")


def available_url() -> str | None:
    """Return the URL of the test database, or None without one (the test goes on)."""
    global _resolved
    if _resolved is None:
        _resolved = _resolve()
    return _resolved[0]


def postgres_url() -> str:
    """Return the URL of the test database; skip (or fail, if required) the test without one."""
    url = available_url()
    assert _resolved is not None
    reason = _resolved[1]
    if url is None:
        if _required():
            pytest.fail(f"PostgreSQL is required ({REQUIRE_ENV}=1) but unavailable: {reason}")
        pytest.skip(f"PostgreSQL unavailable: {reason}")
    return url


def _resolve() -> tuple[str | None, str]:
    explicit = os.environ.get(URL_ENV)
    if explicit:
        return explicit, ""
    try:
        import psycopg
    except ImportError:
        return None, "psycopg is not installed (pip install 's3qbb[postgres]')"
    try:
        conn = psycopg.connect(
            host="127.0.0.1", port=DEFAULT_PORT, user="postgres", dbname="test", connect_timeout=2
        )
        conn.close()
    except psycopg.Error as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        probe = f"no database at 127.0.0.1:{DEFAULT_PORT}/test ({first})"
    else:
        return f"postgresql+psycopg://postgres@127.0.0.1:{DEFAULT_PORT}/test", ""
    binaries = find_binaries()
    if binaries is None:
        return None, f"{probe}, and no initdb/pg_ctl on PATH or under /usr/lib/postgresql/*/bin"
    folder = os.environ.get(DIR_ENV) or prepare()
    try:
        return start_cluster(Path(folder), binaries), ""
    except (OSError, subprocess.SubprocessError, RuntimeError) as err:
        return None, f"{probe}, and starting a cluster with {binaries[0]} failed: {err}"


def find_binaries() -> tuple[str, str] | None:
    """Return ``(initdb, pg_ctl)`` from ``PATH`` or the newest ``/usr/lib/postgresql/*/bin``."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return initdb, pg_ctl
    for bindir in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True):
        initdb, pg_ctl = os.path.join(bindir, "initdb"), os.path.join(bindir, "pg_ctl")
        if os.access(initdb, os.X_OK) and os.access(pg_ctl, os.X_OK):
            return initdb, pg_ctl
    return None


def _version_key(bindir: str) -> tuple[int, ...]:
    version = Path(bindir).parent.name
    return tuple(int(p) for p in version.split(".") if p.isdigit())


def prepare() -> str:
    """Name the folder a cluster may be started in and export it to the pytest-xdist workers.

    The folder is made only when a cluster starts, so sessions that need none leave nothing.
    """
    folder = os.path.join(tempfile.gettempdir(), f"s3qbb-test-pg-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    os.environ[DIR_ENV] = folder
    return folder


def _as_owner() -> tuple[list[str], int | None]:
    """Command prefix and uid running the server: ourselves, or ``postgres`` when we are root."""
    if os.geteuid() != 0:
        return [], None
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        raise RuntimeError("initdb cannot run as root and there is no 'postgres' user") from None
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise RuntimeError("initdb cannot run as root and setpriv (util-linux) is missing") from None
    return [setpriv, f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups"], user.pw_uid


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_cluster(folder: Path, binaries: tuple[str, str], timeout: float = 60.0) -> str:
    """Start (once per folder, under a lock) a trust-auth cluster in ``folder``; return its URL."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    url_file = folder / "url"
    with open(folder / "lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if url_file.exists():
            return url_file.read_text()
        initdb, pg_ctl = binaries
        prefix, uid = _as_owner()
        data, sockets = folder / "data", folder / "sockets"
        sockets.mkdir(exist_ok=True)
        if uid is not None:
            os.chown(folder, uid, -1)
            os.chown(sockets, uid, -1)
        run = {"check": True, "capture_output": True, "timeout": timeout, "cwd": folder}
        subprocess.run(
            [*prefix, initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"],
            **run,  # type: ignore[call-overload]
        )
        wait = ["-w", "-t", str(int(timeout)), "start"]
        for _attempt in range(3):
            port = _free_port()
            options = f"-h 127.0.0.1 -p {port} -k {sockets} -F -c fsync=off -c full_page_writes=off"
            started = subprocess.run(
                [*prefix, pg_ctl, "-D", str(data), "-l", str(folder / "server.log"), "-o", options, *wait],
                capture_output=True,
                timeout=timeout + 10,
                cwd=folder,
                check=False,
            )
            if started.returncode == 0:
                break
        else:
            log = (folder / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"pg_ctl start failed: {started.stderr.decode(errors='replace')}{log}")
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres") as conn:
            conn.autocommit = True
            conn.execute("CREATE DATABASE test")
        url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/test"
        url_file.write_text(url)
        return url


def cleanup(folder: str | None) -> None:
    """Stop the cluster started in ``folder`` (if any) and delete the folder."""
    if not folder:
        return
    data = Path(folder) / "data"
    binaries = find_binaries()
    if (data / "postmaster.pid").exists() and binaries is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError, RuntimeError):
            prefix, _uid = _as_owner()
            subprocess.run(
                [*prefix, binaries[1], "-D", str(data), "-m", "immediate", "-w", "-t", "30", "stop"],
                capture_output=True,
                timeout=40,
                check=False,
                cwd=folder,
            )
    shutil.rmtree(folder, ignore_errors=True)
