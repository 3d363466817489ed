"""What a batch job imports: ``s3qbb run-quantum`` keeps heavy packages it does not need off its path.

A small quantum's cost is mostly the start of its process, so the job path
must not import the registry's SQLAlchemy, the terminal's rich, or data
packages (NumPy, pandas, pyarrow) a JSON task never touches; with the obstore
transport it must not import boto3 or botocore either. The job runs in a
subprocess exactly as a batch job runs it, then reports its ``sys.modules``.
This is a behaviour test, not a timing one (timings live in benchmarks/).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import CliJob, make_ref, run_pipeline, write_quantum

from s3qbb.config import S3EndpointConfig
from s3qbb.core import Quantum

HEAVY = frozenset({"sqlalchemy", "rich", "numpy", "pandas", "pyarrow"})
"""Top-level packages no job of a JSON task imports, whatever its transport."""
BOTO = frozenset({"boto3", "botocore", "s3transfer", "awscrt"})
"""What a job on the obstore transport does not import (its few small bodies' CRC32C need no awscrt)."""
BOTO_STDLIB = frozenset({"http", "ssl", "configparser", "difflib"})
"""Standard-library packages a job on the obstore transport does not import: http.client and the ssl
it imports (only boto3's stack needs them; obstore's TLS is Rust's), configparser (only when the
region comes from an AWS config file) and difflib (only for a misspelt ``S3QBB_*`` variable)."""

# Runs ``python -m s3qbb.cli ARGS`` in this interpreter, then writes the top-level modules it imported.
_RUNNER = """
import json, runpy, sys
out, sys.argv = sys.argv[1], ["s3qbb", *sys.argv[2:]]
try:
    runpy.run_module("s3qbb.cli", run_name="__main__", alter_sys=True)
except SystemExit as exit:
    code = exit.code
with open(out, "w") as f:
    json.dump({"exit_code": code, "modules": sorted({m.partition(".")[0] for m in sys.modules})}, f)
"""


def _job_modules(job: CliJob, extra_env: dict[str, str]) -> set[str]:
    """Run a fresh 1-input, 1-output quantum as a job; return the top-level modules it imported."""
    pipeline = run_pipeline(job.endpoint, (1,))
    calibrate = pipeline.calibrate[1]
    quantum = Quantum(
        taskLabel=calibrate.taskLabel,
        taskName=calibrate.taskName,
        dataId=calibrate.dataId,
        inputs=calibrate.input_refs(),
        outputs=[make_ref("calexp", 1)],  # a new dataset: a first attempt, not a re-run
        datastore_records=calibrate.datastore_records,
    )
    description = write_quantum(job.workdir / "quantum.json", quantum)
    out = job.workdir / "modules.json"
    args = ["run-quantum", str(description), "--task", "cli_tasks:combine", "--config", str(job.config)]
    done = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(out), *args],
        env={**job.env, **extra_env},
        cwd=job.workdir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.exists(), done.stderr[-3000:]
    result = json.loads(Path(out).read_text())
    assert result["exit_code"] == 0, done.stderr[-3000:]
    assert "succeeded" in done.stdout
    return set(result["modules"])


def test_job_imports_no_heavy_package(cli_job: CliJob) -> None:
    modules = _job_modules(cli_job, {})
    assert "s3qbb" in modules and "yaml" in modules  # the runner saw the job's imports
    assert not modules & HEAVY
    # Configured by its file and the AWS_* variables, a job does not read settings through
    # pydantic-settings, nor does a job whose requests all succeed need tenacity.
    assert not modules & {"pydantic_settings", "tenacity", "tornado"}


def test_job_on_obstore_imports_neither_boto3_nor_heavy_packages(cli_job: CliJob) -> None:
    if importlib.util.find_spec("obstore") is None:
        pytest.skip("obstore is not installed (s3qbb[obstore])")
    if importlib.util.find_spec("s3qbb.s3.obstore_transport") is None:  # pragma: no cover
        pytest.skip("s3qbb has no obstore transport module yet (s3qbb/s3/obstore_transport.py)")
    assert "obstore" in S3EndpointConfig.model_fields["transport"].annotation.__args__  # type: ignore[union-attr]
    modules = _job_modules(cli_job, {"S3QBB_S3_TRANSPORT": "obstore"})
    assert "obstore" in modules
    assert not modules & (HEAVY | BOTO | BOTO_STDLIB), modules & (HEAVY | BOTO | BOTO_STDLIB)
    # Its S3QBB_* variables are read without pydantic-settings.
    assert "pydantic_settings" not in modules
