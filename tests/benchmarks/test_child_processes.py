"""Measured job processes start as an installed s3qbb's do: from bytecode, without the caller's settings."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

from benchmarks.child_processes import compile_bytecode, job_environment
from benchmarks.servers import REPO_ROOT


def test_the_environment_drops_aws_s3qbb_and_the_no_bytecode_switch() -> None:
    parent = {
        "PATH": "/usr/bin",
        "PYTHONDONTWRITEBYTECODE": "1",
        "AWS_PROFILE": "mine",
        "S3QBB_S3_ENDPOINT_URL": "http://elsewhere",
        "HOME": "/home/u",
    }
    assert job_environment(parent) == {"PATH": "/usr/bin", "HOME": "/home/u"}
    done = subprocess.run(
        [sys.executable, "-c", "import sys; print(sys.dont_write_bytecode)"],
        env=job_environment(parent),
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "False"


def test_compile_bytecode_writes_what_a_job_imports() -> None:
    compile_bytecode()
    for module in ("s3qbb/config.py", "s3qbb/repo.py", "s3qbb/cli/run_quantum.py", "benchmarks/job_task.py"):
        source = REPO_ROOT / module
        cached = importlib.util.cache_from_source(str(source))
        assert (REPO_ROOT / cached).exists(), cached
        assert (REPO_ROOT / cached).stat().st_mtime >= source.stat().st_mtime
