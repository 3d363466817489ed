"""Helpers of the job-environment tests: a tiny file system, a job's files, an exact ingest."""

from __future__ import annotations

__all__ = ["JobFiles", "assert_ingest_exact", "job_files", "tmpfs"]

import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_helpers import PREFIX, RUN, CliJob, plain_config, write_quantum

from s3qbb.core import DatasetRef, Quantum
from s3qbb.registry import Registry


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` (e.g. ``"256k"``) on ``path``; skip the test where that is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root and mount(8)")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=1777", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


@dataclasses.dataclass(frozen=True)
class JobFiles:
    """A quantum description, a configuration and an environment for ``s3qbb run-quantum``."""

    job: CliJob
    quantum: Quantum
    quantum_file: Path
    config: Path
    env: dict[str, str]

    def run(
        self, task: str, *options: str | Path, env: Mapping[str, str] | None = None, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run ``s3qbb run-quantum`` of the quantum with ``task`` (``env_tasks:NAME``), in ``env``."""
        from cli_helpers import run_cli

        args = ["run-quantum", self.quantum_file, "--task", task, "--config", self.config, *options]
        return run_cli(*args, env=self.env if env is None else env, cwd=self.job.workdir, timeout=timeout)

    def popen(self, task: str, *options: str | Path) -> subprocess.Popen[str]:
        """Start ``s3qbb run-quantum`` like `run`, without waiting for it."""
        import sys

        args = ["run-quantum", self.quantum_file, "--task", task, "--config", self.config, *options]
        return subprocess.Popen(
            [sys.executable, "-m", "s3qbb.cli", *map(str, args)],
            env=self.env,
            cwd=self.job.workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def job_files(
    job: CliJob,
    quantum: Quantum,
    transport: str,
    *,
    endpoint_url: str | None = None,
    cache: bool = False,
    **endpoint: Any,
) -> JobFiles:
    """Write the quantum and a configuration (through ``endpoint_url`` if given) for ``transport``."""
    config = plain_config(job.endpoint)
    config["cache"] = {"enabled": cache}
    config["datastore"]["endpoint"].update(endpoint)
    env = {**job.env, "S3QBB_S3_TRANSPORT": transport}
    if endpoint_url is not None:
        config["datastore"]["endpoint"]["endpoint_url"] = endpoint_url
        env["AWS_ENDPOINT_URL_S3"] = endpoint_url
    path = job.workdir / f"butler-{transport}.yaml"
    path.write_text(yaml.safe_dump(config))
    quantum_file = write_quantum(job.workdir / f"quantum-{quantum.id}.json", quantum)
    return JobFiles(job, quantum, quantum_file, path, env)


def object_body(job: CliJob, key: str) -> bytes:
    """Return the bytes of an object of the test bucket."""
    return bytes(job.endpoint.client.get_object(Bucket=job.endpoint.bucket, Key=key)["Body"].read())


def assert_ingest_exact(job: CliJob, outputs: Sequence[DatasetRef], run: str = RUN) -> None:
    """``s3qbb ingest`` the run: exactly one record per output, naming an object of its size and content."""
    db = job.workdir / "registry.sqlite3"
    done = job.run("ingest", f"s3://{job.endpoint.bucket}/{PREFIX}/{run}/", "--registry", f"sqlite:///{db}")
    assert done.returncode == 0, done.stderr
    with Registry.from_url(db) as registry:
        rows = {row.id: row for row in registry.datasets(run=run)}
    assert set(rows) == {ref.id for ref in outputs}
    for ref in outputs:
        (record,) = rows[ref.id].records
        key = f"{PREFIX}/{record.path}"
        head = job.endpoint.client.head_object(Bucket=job.endpoint.bucket, Key=key)
        assert record.file_size == head["ContentLength"]
        if ref.datasetType.storageClass.name != "Bytes":
            assert json.loads(object_body(job, key))["detector"] == dict(ref.dataId)["detector"]
