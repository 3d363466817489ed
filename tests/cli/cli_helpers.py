"""Helpers of the ``s3qbb`` command-line tests: job environments, subprocess runs, a small pipeline.

The subprocesses run ``python -m s3qbb.cli`` like batch jobs: an environment
without the developer's AWS or s3qbb settings, holding only the test server's
endpoint (``AWS_ENDPOINT_URL_S3``) and credentials, and this directory on
``PYTHONPATH`` so that ``cli_tasks:NAME`` tasks can be imported.
"""

from __future__ import annotations

__all__ = [
    "ACCESS_KEY_ID",
    "PREFIX",
    "RAW_RUN",
    "RUN",
    "SECRET",
    "TESTS_DIR",
    "CliJob",
    "Pipeline",
    "cli_env",
    "make_ref",
    "object_keys",
    "plain_config",
    "run_cli",
    "run_pipeline",
    "write_config",
    "write_quantum",
]

import dataclasses
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from s3qbb.core import DataCoordinate, DatasetRef, DatasetType, DimensionUniverse, Quantum
from s3qbb.core.records import DatastoreRecordData
from s3qbb.core.wire import quantum_to_simple
from s3qbb.provenance.files import provenance_key
from s3qbb.provenance.model import QuantumProvenanceData

if TYPE_CHECKING:
    from s3qbb.testing.servers import S3TestEndpoint

PREFIX = "repo"
"""Prefix of the datastore root in the test bucket."""
RAW_RUN = "cli/raw"
"""Run of the first stage of `run_pipeline`."""
RUN = "cli/run"
"""Run of the later stages of `run_pipeline` (and of the single quanta of the tests)."""
SECRET = "cliSecretKey/9Zq4Wm7Tx2Lp8Rv3Nb6Yc1Hd5"
"""Secret access key of the jobs (moto accepts any); it must never appear in any output."""
ACCESS_KEY_ID = "AKIACLITESTS3QBB0001"
TESTS_DIR = Path(__file__).resolve().parent
"""This directory: on ``PYTHONPATH`` of the subprocesses, for `cli_tasks`."""

_UNIVERSE = DimensionUniverse()


@dataclasses.dataclass(frozen=True)
class CliJob:
    """A prepared job: a fresh bucket, the configuration file and the environment of the subprocesses."""

    endpoint: S3TestEndpoint
    env: dict[str, str]
    """Environment of the subprocesses (`cli_env`)."""
    config: Path
    """Local configuration file (also uploaded to ``s3://<bucket>/repo/butler.yaml``)."""
    workdir: Path
    """A fresh local directory."""

    @property
    def config_uri(self) -> str:
        """The configuration's ``s3://`` URI."""
        return f"s3://{self.endpoint.bucket}/{PREFIX}/butler.yaml"

    def run(self, *args: str | Path, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run ``python -m s3qbb.cli ARGS`` with the job's environment, in its directory."""
        return run_cli(*args, env=self.env, cwd=self.workdir, timeout=timeout)


def make_ref(name: str, detector: int | None, run: str = RUN) -> DatasetRef:
    """Return a resolved ``StructuredDataDict`` ref of visit 1 (and a detector unless `None`)."""
    dimensions = ["visit"] if detector is None else ["visit", "detector"]
    data_id: dict[str, int | str] = {"instrument": "Cam", "visit": 1}
    if detector is not None:
        data_id["detector"] = detector
    return DatasetRef(DatasetType(name, dimensions, "StructuredDataDict", universe=_UNIVERSE), data_id, run)


def plain_config(endpoint: S3TestEndpoint) -> dict[str, Any]:
    """Return a repository configuration without credentials (jobs take theirs from the environment)."""
    return {
        "datastore": {
            "root": f"s3://{endpoint.bucket}/{PREFIX}",
            "endpoint": {
                "endpoint_url": endpoint.endpoint_url,
                "region": "us-east-1",
                "addressing_style": "path",
            },
        },
        "cache": {"enabled": False},
    }


def write_config(endpoint: S3TestEndpoint, workdir: Path) -> Path:
    """Write `plain_config` to ``workdir/butler.yaml`` and to ``repo/butler.yaml`` in the bucket."""
    text = yaml.safe_dump(plain_config(endpoint))
    endpoint.client.put_object(Bucket=endpoint.bucket, Key=f"{PREFIX}/butler.yaml", Body=text.encode())
    path = workdir / "butler.yaml"
    path.write_text(text)
    return path


def write_quantum(path: Path, quantum: Quantum) -> Path:
    """Write a quantum description (``SerializedQuantum`` JSON) to a local file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(quantum_to_simple(quantum).model_dump_json())
    return path


def cli_env(endpoint: S3TestEndpoint) -> dict[str, str]:
    """Return the environment of a job: endpoint and credentials only, no other AWS or s3qbb settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3QBB_"))}
    pythonpath = [str(TESTS_DIR), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env.update(
        {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_S3": endpoint.endpoint_url,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "PYTHONPATH": os.pathsep.join(pythonpath),
        }
    )
    return env


def run_cli(
    *args: str | Path, env: Mapping[str, str], cwd: Path | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m s3qbb.cli ARGS`` in a subprocess and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "s3qbb.cli", *map(str, args)],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def object_keys(endpoint: S3TestEndpoint, prefix: str = "") -> list[str]:
    """List the keys of the test bucket under a prefix, through the back-door client."""
    pages = endpoint.client.get_paginator("list_objects_v2").paginate(Bucket=endpoint.bucket, Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def _records_of(endpoint: S3TestEndpoint, quanta: list[Quantum], run: str) -> dict[str, DatastoreRecordData]:
    merged: dict[str, DatastoreRecordData] = {}
    for q in quanta:
        key = f"{PREFIX}/{provenance_key(run, q.id)}"
        body = endpoint.client.get_object(Bucket=endpoint.bucket, Key=key)["Body"].read()
        for name, data in QuantumProvenanceData.from_json(body, source=key).datastore_record_data().items():
            merged.setdefault(name, DatastoreRecordData({})).update(data)
    return merged


@dataclasses.dataclass(frozen=True)
class Pipeline:
    """What `run_pipeline` ran: ``make`` (raws), ``calibrate`` (one per detector), ``summarize``."""

    bucket: str
    raws: dict[int, DatasetRef]
    calexps: dict[int, DatasetRef]
    summary: DatasetRef
    make: Quantum
    calibrate: dict[int, Quantum]
    summarize: Quantum

    def uri(self, run: str) -> str:
        """Return the ``s3://`` URI of a run's prefix (what ``s3qbb ingest`` takes)."""
        return f"s3://{self.bucket}/{PREFIX}/{run}/"


def run_pipeline(endpoint: S3TestEndpoint, detectors: tuple[int, ...] = (1, 2)) -> Pipeline:
    """Run three stages in this process with `s3qbb.batch.execution.run_quantum` (fast), as the jobs would.

    ``make`` writes one raw per detector in `RAW_RUN`; each ``calibrate``
    reads its raw and writes a calexp in `RUN`; ``summarize`` reads every
    calexp and writes a visit-level summary in `RUN`.
    """
    import cli_tasks

    from s3qbb.batch.execution import run_quantum

    config = {
        "datastore": {"root": f"s3://{endpoint.bucket}/{PREFIX}", "endpoint": endpoint.config},
        "cache": {"enabled": False},
    }
    raws = {d: make_ref("raw", d, RAW_RUN) for d in detectors}
    calexps = {d: make_ref("calexp", d) for d in detectors}
    summary = make_ref("summary", None)
    make = Quantum(taskLabel="make", taskName="cli_tasks.produce", outputs=list(raws.values()))
    assert run_quantum(config, make, cli_tasks.produce).exit_code == 0
    raw_records = _records_of(endpoint, [make], RAW_RUN)
    calibrate = {
        d: Quantum(
            taskLabel="calibrate",
            taskName="cli_tasks.combine",
            dataId=DataCoordinate.standardize(dict(raws[d].dataId), universe=_UNIVERSE),
            inputs=[raws[d]],
            outputs=[calexps[d]],
            datastore_records=raw_records,
        )
        for d in detectors
    }
    for q in calibrate.values():
        assert run_quantum(config, q, cli_tasks.combine).exit_code == 0
    summarize = Quantum(
        taskLabel="summarize",
        taskName="cli_tasks.combine",
        inputs=list(calexps.values()),
        outputs=[summary],
        datastore_records=_records_of(endpoint, list(calibrate.values()), RUN),
    )
    assert run_quantum(config, summarize, cli_tasks.combine).exit_code == 0
    return Pipeline(endpoint.bucket, raws, calexps, summary, make, calibrate, summarize)
