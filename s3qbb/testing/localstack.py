"""LocalStack's S3 as a test server, run on the host without Docker.

LocalStack pins its own boto3 and needs Python 3.11 for the release used here,
so it lives in a virtual environment of its own in the user's cache directory
(`default_localstack_venv`), built once on first use by `ensure_localstack_venv`
(about a minute; ``localstack/start.sh`` and ``make localstack-venv`` build the
same environment). `LocalStackServer`
then runs LocalStack's runtime (``localstack.runtime.main``) with only S3
enabled, on 127.0.0.1 and a free port, with a private data directory; it
starts in about 2 s. It can also drive a LocalStack that runs elsewhere (the repository's
``localstack/docker-compose.yml``): give it ``endpoint_url``.

LocalStack accepts any credentials; it answers 501 to conditional DELETE
(s3qbb does not send any).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from .servers import DEFAULT_TEST_BUCKET, S3Credentials, S3TestServer, ServerStartError, free_ports

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

__all__ = [
    "DEFAULT_LOCALSTACK_PYTHON",
    "LOCALSTACK_CONSTRAINTS",
    "LOCALSTACK_REQUIREMENTS",
    "LOCALSTACK_VERSION",
    "LocalStackServer",
    "LocalStackUnavailableError",
    "default_localstack_venv",
    "ensure_localstack_venv",
]

LOCALSTACK_VERSION = "4.13.1"
"""Release of ``localstack-core`` installed (the last one that runs on Python 3.11)."""

LOCALSTACK_REQUIREMENTS: tuple[str, ...] = (f"localstack-core[base-runtime]=={LOCALSTACK_VERSION}",)
"""What is installed into the virtual environment (as in ``localstack/requirements.txt``)."""

LOCALSTACK_CONSTRAINTS: tuple[str, ...] = ("cbor2<6", "pyopenssl<25", "cryptography<45")
"""Upper bounds this release needs but does not declare (as in ``localstack/constraints.txt``)."""

DEFAULT_LOCALSTACK_PYTHON = "python3.11"
"""Interpreter that builds the virtual environment unless ``S3QBB_LOCALSTACK_PYTHON`` names another."""

_LOOPBACK = "127.0.0.1"
# Files inside the virtual environment; localstack/start.sh uses the same names and contents.
_STAMP = ".s3qbb-localstack"
_FAILED = ".s3qbb-localstack-failed"
_INSTALL_LOG = ".s3qbb-localstack-install.log"
_HOME = "home"
_FAILURE_MEMORY_S = 600.0
# Without a network pip would retry each download 5 times with the configured timeout: give up sooner.
_PIP_NET = ("--timeout", "60", "--retries", "2")
# LocalStack 4.13 keeps S3 data in a fixed /tmp/localstack-s3-storage, shared by every LocalStack on
# the machine (parallel test sessions then delete each other's bucket folders): this launcher points
# it into the server's private folder. localstack/start.sh uses the same one.
_LAUNCH = """import os
import localstack.services.s3.provider as s3
s3.DEFAULT_S3_TMP_DIR = os.environ["S3QBB_LOCALSTACK_S3_DIR"]
from localstack.runtime.main import main
main()"""
_WARM_PLUX = "from plux.runtime.cache import EntryPointsCache; EntryPointsCache.instance().get_entry_points()"


class LocalStackUnavailableError(ServerStartError):
    """LocalStack cannot be installed on this machine (no suitable Python, or pip failed)."""


def default_localstack_venv() -> Path:
    """Return where LocalStack's virtual environment lives.

    Returns
    -------
    venv : `pathlib.Path`
        ``$S3QBB_LOCALSTACK_VENV`` if set, else ``localstack-venv`` in the
        user's cache directory for s3qbb (``platformdirs.user_cache_dir``:
        ``~/.cache/s3qbb`` or ``$XDG_CACHE_HOME/s3qbb`` on Linux,
        ``~/Library/Caches/s3qbb`` on macOS), shared by every project of the
        user and never inside one. Its build lock is ``<venv>.lock`` beside it.

    Raises
    ------
    LocalStackUnavailableError
        If ``S3QBB_LOCALSTACK_VENV`` is unset and platformdirs is not installed.
    """
    explicit = os.environ.get("S3QBB_LOCALSTACK_VENV")
    if explicit:
        return Path(explicit).absolute()
    try:
        import platformdirs
    except ImportError as err:
        raise LocalStackUnavailableError(
            "platformdirs is needed to find the cache directory of LocalStack's virtual environment: "
            "pip install 's3qbb[testing]', or set S3QBB_LOCALSTACK_VENV to a directory"
        ) from err
    return Path(platformdirs.user_cache_dir("s3qbb")).absolute() / "localstack-venv"


def _stamp_text() -> str:
    return "".join(f"{line}\n" for line in (*LOCALSTACK_REQUIREMENTS, *LOCALSTACK_CONSTRAINTS))


def _venv_ready(venv: Path) -> bool:
    try:
        stamp = (venv / _STAMP).read_text()
    except OSError:
        return False
    return stamp == _stamp_text() and (venv / "bin" / "python").exists()


def _find_python(python: str | None) -> str:
    name = python or os.environ.get("S3QBB_LOCALSTACK_PYTHON") or DEFAULT_LOCALSTACK_PYTHON
    found = shutil.which(name)
    if found is None:
        raise LocalStackUnavailableError(
            f"{name} not found: LocalStack {LOCALSTACK_VERSION} needs Python 3.11 "
            "(install it, or set S3QBB_LOCALSTACK_PYTHON to its path)"
        )
    check = "import sys; sys.exit(sys.version_info < (3, 11))"
    try:
        subprocess.run([found, "-c", check], check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as err:
        raise LocalStackUnavailableError(
            f"{found} is not a working Python >= 3.11 (set S3QBB_LOCALSTACK_PYTHON to a Python 3.11)"
        ) from err
    return found


def _run_logged(cmd: list[str], log: Path, timeout: float, env: dict[str, str] | None = None) -> None:
    with log.open("ab") as out:
        subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=True,
            timeout=timeout,
            env=env,
        )


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def ensure_localstack_venv(
    venv: str | os.PathLike[str] | None = None,
    python: str | None = None,
    *,
    timeout: float = 600.0,
    retry_failed: bool = False,
) -> Path:
    """Build LocalStack's virtual environment unless it is already there; return its interpreter.

    Holds an exclusive lock on ``<venv>.lock`` meanwhile (the one
    ``localstack/start.sh`` takes), so parallel pytest workers build it once.

    Parameters
    ----------
    venv : `str` or `os.PathLike`, optional
        The environment; `default_localstack_venv` by default.
    python : `str`, optional
        Interpreter building it: ``$S3QBB_LOCALSTACK_PYTHON`` or
        `DEFAULT_LOCALSTACK_PYTHON` by default.
    timeout : `float`, optional
        Seconds allowed for the build.
    retry_failed : `bool`, optional
        Try again even if a build failed less than 10 minutes ago (otherwise
        that failure is reported at once, so a machine without network does
        not pay for it in every test session).

    Returns
    -------
    python : `pathlib.Path`
        The environment's interpreter.

    Raises
    ------
    LocalStackUnavailableError
        If there is no suitable Python or the installation failed.
    """
    path = Path(venv).absolute() if venv is not None else default_localstack_venv()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not _venv_ready(path):
            _build_venv(path, python, timeout, retry_failed)
    return path / "bin" / "python"


def _build_venv(venv: Path, python: str | None, timeout: float, retry_failed: bool) -> None:
    failed = venv / _FAILED
    log = venv / _INSTALL_LOG
    with contextlib.suppress(OSError):
        if (
            not retry_failed
            and failed.read_text() == _stamp_text()
            and time.time() - failed.stat().st_mtime < _FAILURE_MEMORY_S
        ):
            raise LocalStackUnavailableError(
                f"installing LocalStack into {venv} failed less than {_FAILURE_MEMORY_S / 60:.0f} minutes "
                f"ago (log {log}); run `make localstack-venv` to retry now:\n{_tail(log)}"
            )
    interpreter = _find_python(python)
    venv_python = str(venv / "bin" / "python")
    step = "creating the virtual environment"
    try:
        subprocess.run(
            [interpreter, "-m", "venv", "--clear", str(venv)],
            check=True,
            capture_output=True,
            timeout=timeout,
        )
        step = "pip install"
        deadline = time.monotonic() + timeout
        pip = [venv_python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", *_PIP_NET]
        with tempfile.TemporaryDirectory(prefix="s3qbb-localstack-") as tmp:
            requirements, constraints = Path(tmp, "requirements.txt"), Path(tmp, "constraints.txt")
            requirements.write_text("\n".join(LOCALSTACK_REQUIREMENTS) + "\n")
            constraints.write_text("\n".join(LOCALSTACK_CONSTRAINTS) + "\n")
            _run_logged([*pip, "-r", str(requirements), "-c", str(constraints)], log, timeout)
        step = "warming the plugin cache"
        env = {**os.environ, "HOME": str(venv / _HOME)}
        _run_logged([venv_python, "-P", "-c", _WARM_PLUX], log, max(1.0, deadline - time.monotonic()), env)
    except (OSError, subprocess.SubprocessError) as err:
        with contextlib.suppress(OSError):
            failed.write_text(_stamp_text())
        detail = _tail(log) or getattr(err, "stderr", b"").decode(errors="replace")
        raise LocalStackUnavailableError(
            f"installing LocalStack into {venv} failed while {step} ({err}); full log {log}:\n{detail}"
        ) from err
    failed.unlink(missing_ok=True)
    (venv / _STAMP).write_text(_stamp_text())


def _s3_running(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_localstack/health", timeout=2.0) as response:
            health = json.load(response)
    except (OSError, ValueError):
        return False
    services = health.get("services") if isinstance(health, dict) else None
    return isinstance(services, dict) and services.get("s3") == "running"


def _terminated(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the process group, SIGKILL it after ``grace`` s (LocalStack hangs 1 stop in 4)."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _abandoned(proc: subprocess.Popen[bytes], grace: float, workdir: Path | None) -> None:
    _terminated(proc, grace)
    if workdir is not None:
        shutil.rmtree(workdir, ignore_errors=True)


class LocalStackServer(S3TestServer):
    """LocalStack's S3 on 127.0.0.1: a subprocess of its own, or a server that runs elsewhere.

    Parameters
    ----------
    venv : `str` or `os.PathLike`, optional
        LocalStack's virtual environment, built by `start` if missing;
        `default_localstack_venv` by default.
    python : `str`, optional
        Interpreter that builds the environment (see `ensure_localstack_venv`).
    endpoint_url : `str`, optional
        Use the LocalStack already serving at this URL instead of starting one
        (`stop` then leaves it running).
    bucket_prefix : `str`, optional
        Make `reset` delete only buckets whose names start with this, so
        several test sessions can share one server.
    port : `int`, optional
        Port to listen on; 0 (the default) picks a free one.
    startup_timeout : `float`, optional
        Seconds to wait for S3 to be ready.
    stop_timeout : `float`, optional
        Seconds to wait after SIGTERM before SIGKILL.
    install_timeout : `float`, optional
        Seconds allowed to build the virtual environment.
    """

    name = "localstack"

    def __init__(
        self,
        venv: str | os.PathLike[str] | None = None,
        *,
        python: str | None = None,
        endpoint_url: str | None = None,
        bucket_prefix: str | None = None,
        port: int = 0,
        startup_timeout: float = 90.0,
        stop_timeout: float = 5.0,
        install_timeout: float = 600.0,
    ) -> None:
        super().__init__()
        self.venv = Path(venv).absolute() if venv is not None else default_localstack_venv()
        self.python = python
        self.bucket_prefix = bucket_prefix
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.install_timeout = install_timeout
        self._external_url = endpoint_url.rstrip("/") if endpoint_url else None
        self._port = port
        self._url: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self.install_seconds: float | None = None
        """Seconds the last `start` spent checking or building the virtual environment."""
        self.startup_seconds: float | None = None
        """Seconds from launching LocalStack to S3 being ready in the last `start`."""

    # --- lifecycle ----------------------------------------------------------

    def start(self) -> Self:
        """Start LocalStack if it is not running (building its environment first if needed).

        Raises
        ------
        LocalStackUnavailableError
            If the virtual environment cannot be built.
        ServerStartError
            If LocalStack does not serve S3 within ``startup_timeout``.
        """
        if self._url is not None:
            return self
        if self._external_url is not None:
            started = time.monotonic()
            self._wait_ready(self._external_url, None)
            self.startup_seconds = time.monotonic() - started
            self._url = self._external_url
            return self
        started = time.monotonic()
        python = ensure_localstack_venv(self.venv, self.python, timeout=self.install_timeout)
        self.install_seconds = time.monotonic() - started
        attempts = 3 if self._port == 0 else 1
        for attempt in range(1, attempts + 1):
            port = self._port or free_ports(1)[0]
            url = f"http://{_LOOPBACK}:{port}"
            started = time.monotonic()
            self._launch(python, port)
            try:
                self._wait_ready(url, self._proc)
            except ServerStartError:
                taken = "address already in use" in self.log_tail(200).lower()
                if taken and attempt < attempts:
                    self.stop()
                    continue  # Another process took the free port meanwhile.
                self._terminate()  # The workdir stays, with the log the error names.
                self._workdir = None
                raise
            self.startup_seconds = time.monotonic() - started
            self._url = url
            break
        return self

    def _launch(self, python: Path, port: int) -> None:
        workdir = Path(tempfile.mkdtemp(prefix="s3qbb-localstack-"))
        for sub in ("filesystem", "tmp", "tmp/s3-storage"):
            (workdir / sub).mkdir()
        self._workdir = workdir
        # A clean environment: no AWS_* or LocalStack setting of the caller leaks in. HOME is the
        # environment's own (it holds the warm plugin cache); data goes to the private workdir.
        env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "HOME": str(self.venv / _HOME),
            "LANG": "C.UTF-8",
            "TMP": str(workdir / "tmp"),
            "GATEWAY_SERVER": "hypercorn",
            "GATEWAY_LISTEN": f"{_LOOPBACK}:{port}",
            "SERVICES": "s3",
            "EAGER_SERVICE_LOADING": "1",
            "DNS_ADDRESS": "0",
            "SKIP_SSL_CERT_DOWNLOAD": "1",
            "DISABLE_EVENTS": "1",
            "FILESYSTEM_ROOT": str(workdir / "filesystem"),
            "CONFIG_DIR": str(workdir / "filesystem" / "config"),
            "S3QBB_LOCALSTACK_S3_DIR": str(workdir / "tmp" / "s3-storage"),
        }
        # -P and another working directory: a `localstack` folder in the caller's directory
        # (this repository has one) must not shadow the installed package.
        cmd = [str(python), "-P", "-c", _LAUNCH]
        with open(self.log_path, "ab") as log:
            try:
                self._proc = subprocess.Popen(
                    cmd,
                    cwd=workdir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as err:
                raise ServerStartError(f"cannot run LocalStack with {python}: {err}") from err
        self._finalizer = weakref.finalize(self, _abandoned, self._proc, self.stop_timeout, workdir)

    def _wait_ready(self, url: str, proc: subprocess.Popen[bytes] | None) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if proc is not None and proc.poll() is not None:
                raise ServerStartError(
                    f"LocalStack exited with status {proc.returncode} while starting "
                    f"(log {self.log_path}):\n{self.log_tail()}"
                )
            if _s3_running(url):
                return
            if time.monotonic() > deadline:
                where = f" (log {self.log_path}):\n{self.log_tail()}" if proc is not None else ""
                raise ServerStartError(
                    f"LocalStack S3 at {url} was not ready within {self.startup_timeout} s "
                    f"(GET /_localstack/health did not report s3 running){where}"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop LocalStack (SIGTERM, SIGKILL after ``stop_timeout`` s) and remove its data.

        Does nothing to a server given by ``endpoint_url``, nor when not running.
        """
        self._terminate()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def _terminate(self) -> None:
        self._close_clients()
        self._url = None
        proc, self._proc = self._proc, None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if proc is not None:
            _terminated(proc, self.stop_timeout)

    # --- access -------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the server was started and (for a subprocess) is alive."""
        if self._url is None:
            return False
        return self._proc is None or self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """Process ID of the LocalStack subprocess (`None` for an external server or when stopped)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def test_bucket(self) -> str:
        """Bucket name for tests: ``s3qbb-test``, or ``<bucket_prefix>bucket`` when sharing a server."""
        return DEFAULT_TEST_BUCKET if self.bucket_prefix is None else f"{self.bucket_prefix}bucket"

    @property
    def endpoint_url(self) -> str:
        """URL of the S3 service."""
        if self._url is None:
            raise RuntimeError("LocalStackServer is not running: call start() or use it as a context manager")
        return self._url

    @property
    def log_path(self) -> Path:
        """File receiving the subprocess's output."""
        if self._workdir is None:
            raise RuntimeError("LocalStackServer has no subprocess: it was not started here")
        return self._workdir / "localstack.log"

    def log_tail(self, lines: int = 40) -> str:
        """Return the last ``lines`` lines of the log (``""`` if there is none)."""
        try:
            return _tail(self.log_path, lines)
        except RuntimeError:
            return ""

    def credentials(self, identity: str = "admin") -> S3Credentials:
        """Return LocalStack's conventional ``test``/``test`` key pair (it checks no credentials).

        Every identity gets the same pair: LocalStack maps access keys to
        accounts, and the test identities must all see the same buckets.
        """
        return S3Credentials("test", "test")

    def reset(self) -> None:
        """Delete every bucket (only those starting with ``bucket_prefix``, if set) and its contents."""
        client = self.client("admin")
        for bucket in client.list_buckets().get("Buckets", []):
            name = bucket.get("Name", "")
            if name and (self.bucket_prefix is None or name.startswith(self.bucket_prefix)):
                _delete_bucket(client, name)


def _delete_bucket(client: S3Client, bucket: str) -> None:
    """Delete ``bucket`` with every object version, delete marker and unfinished multipart upload."""
    for uploads in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
        for upload in uploads.get("Uploads", []):
            client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
        doomed: list[ObjectIdentifierTypeDef] = [
            {"Key": item["Key"], "VersionId": item["VersionId"]} for item in page.get("Versions", [])
        ]
        doomed.extend(
            {"Key": item["Key"], "VersionId": item["VersionId"]} for item in page.get("DeleteMarkers", [])
        )
        if doomed:
            response = client.delete_objects(Bucket=bucket, Delete={"Objects": doomed, "Quiet": True})
            if response.get("Errors"):
                raise RuntimeError(f"could not empty bucket {bucket}: {response['Errors'][:3]}")
    client.delete_bucket(Bucket=bucket)
