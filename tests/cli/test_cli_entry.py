"""How the ``s3qbb`` command starts and ends: ``python -m s3qbb``, ``--version``, a closed pipe."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import s3qbb

REPO_ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{path}" if path else str(REPO_ROOT)}


def test_python_dash_m_s3qbb_shows_the_commands() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "s3qbb", "--help"], capture_output=True, text=True, env=_env(), check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Usage: s3qbb ")
    for command in ("run-quantum", "inspect", "ingest", "datasets", "provenance"):
        assert command in proc.stdout


def test_version_is_the_package_version() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "s3qbb", "--version"], capture_output=True, text=True, env=_env(), check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"s3qbb {s3qbb.__version__}"


def test_a_reader_closing_the_pipe_ends_the_command_quietly() -> None:
    # A command printing more than a pipe holds, read like `s3qbb datasets ... | head -1`.
    script = textwrap.dedent(
        """
        import importlib
        import sys

        cli = importlib.import_module("s3qbb.cli.main")

        def many_rows(argv):
            for i in range(200_000):
                print(f"dataset {i}")
            return 0

        cli._main = many_rows
        sys.exit(cli.main([]))
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env()
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline() == b"dataset 0\n"
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141  # 128 + SIGPIPE, as the shell reports a command it killed
    assert stderr == ""


def test_demo_without_its_optional_packages_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A plain `pip install s3qbb` has neither moto nor NumPy: no ModuleNotFoundError traceback.
    from s3qbb import demo

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name in ("moto", "numpy") else real(name, *a)
    )
    assert demo.main([]) == 2
    err = capsys.readouterr().err
    assert (
        "needs numpy and moto, which are not installed" in err and "pip install 's3qbb[testing,numpy]'" in err
    )
