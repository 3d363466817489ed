"""Helpers of the graph tests: a three-stage graph, job environments, ``python -m s3qbb.cli`` runs."""

from __future__ import annotations

__all__ = [
    "DETECTORS",
    "EXPECTED_SUMMARY",
    "RUN",
    "TESTS_DIR",
    "GraphJob",
    "make_graph",
    "make_job",
    "read_dataset",
    "read_outputs_verified",
]

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from s3qbb.batch.graph import QuantumGraph
from s3qbb.core import DataCoordinate, DatasetRef, DatasetType, DimensionUniverse, Quantum
from s3qbb.testing.servers import S3TestEndpoint

TESTS_DIR = Path(__file__).resolve().parent
RAW_RUN = "g/raw"
RUN = "g/run"
DETECTORS = (0, 1, 2)
EXPECTED_SUMMARY = sum(d + 100 for d in DETECTORS) + 100
"""``sum`` of the summary dataset when every stage ran on the right inputs."""
_U = DimensionUniverse()


def _ref(name: str, detector: int | None, run: str) -> DatasetRef:
    dims = ["visit"] if detector is None else ["visit", "detector"]
    data_id: dict[str, int | str] = {"instrument": "Cam", "visit": 1}
    if detector is not None:
        data_id["detector"] = detector
    return DatasetRef(DatasetType(name, dims, "StructuredDataDict", universe=_U), data_id, run)


def make_graph(calibrate_task: str = "graph_tasks:combine") -> tuple[QuantumGraph, DatasetRef]:
    """Return make (1 quantum) -> calibrate (one per detector) -> summarize (1), and the summary's ref."""
    raws = {d: _ref("raw", d, RAW_RUN) for d in DETECTORS}
    calexps = {d: _ref("calexp", d, RUN) for d in DETECTORS}
    summary = _ref("summary", None, RUN)
    quanta = [
        Quantum(taskLabel="summarize", inputs=list(calexps.values()), outputs=[summary]),
        *(
            Quantum(
                taskLabel="calibrate",
                dataId=DataCoordinate.standardize(dict(raws[d].dataId), universe=_U),
                inputs=[raws[d]],
                outputs=[calexps[d]],
            )
            for d in DETECTORS
        ),
        Quantum(taskLabel="make", outputs=list(raws.values())),
    ]
    tasks = {"make": "graph_tasks:produce", "calibrate": calibrate_task, "summarize": "graph_tasks:combine"}
    return QuantumGraph.from_quanta(quanta, tasks), summary


@dataclasses.dataclass(frozen=True)
class GraphJob:
    """A bucket with a configuration, a graph saved in it, and the environment of job processes."""

    endpoint: S3TestEndpoint
    env: dict[str, str]
    config_uri: str
    graph_uri: str
    graph: QuantumGraph
    summary: DatasetRef
    workdir: Path

    def run(self, *args: str, extra_env: Mapping[str, str] | None = None, timeout: float = 120.0,
            ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """Run ``python -m s3qbb.cli ARGS`` as a batch job would."""
        return subprocess.run(
            [sys.executable, "-m", "s3qbb.cli", *args],
            env={**self.env, **(extra_env or {})},
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def make_job(
    endpoint: S3TestEndpoint, workdir: Path, calibrate_task: str = "graph_tasks:combine"
) -> GraphJob:
    """Write the configuration and the graph to the endpoint's bucket; return the job."""
    config = {
        "datastore": {
            "root": f"s3://{endpoint.bucket}/repo",
            "endpoint": {
                "endpoint_url": endpoint.endpoint_url,
                "region": "us-east-1",
                "addressing_style": "path",
            },
        },
        "cache": {"enabled": False},
    }
    endpoint.client.put_object(
        Bucket=endpoint.bucket, Key="repo/butler.yaml", Body=yaml.safe_dump(config).encode()
    )
    graph, summary = make_graph(calibrate_task)
    graph_uri = f"s3://{endpoint.bucket}/graphs/pipeline.qgraph"
    endpoint.client.put_object(Bucket=endpoint.bucket, Key="graphs/pipeline.qgraph", Body=graph.to_bytes())
    secret = endpoint.config.secret_access_key
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3QBB_"))}
    pythonpath = [str(TESTS_DIR), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env.update(
        {
            "AWS_ACCESS_KEY_ID": endpoint.config.access_key_id or "",
            "AWS_SECRET_ACCESS_KEY": secret.get_secret_value() if secret is not None else "",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_S3": endpoint.endpoint_url,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "PYTHONPATH": os.pathsep.join(pythonpath),
            "GRAPH_TEST_MARKERS": str(workdir),
        }
    )
    return GraphJob(
        endpoint, env, f"s3://{endpoint.bucket}/repo/butler.yaml", graph_uri, graph, summary, workdir
    )


def read_dataset(job: GraphJob, ref: DatasetRef) -> Any:
    """Read a JSON dataset through the back door (the first object under its run and dataset type)."""
    prefix = f"repo/{ref.run}/{ref.datasetType.name}/"
    pages = job.endpoint.client.get_paginator("list_objects_v2").paginate(
        Bucket=job.endpoint.bucket, Prefix=prefix
    )
    keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
    assert keys, f"no object under {prefix}"
    return json.loads(job.endpoint.client.get_object(Bucket=job.endpoint.bucket, Key=keys[0])["Body"].read())


def task_calls(workdir: Path) -> dict[str, int]:
    """Return the number of task calls per quantum ID (from the marker files)."""
    return {p.name: len(p.read_text().splitlines()) for p in workdir.iterdir() if len(p.name) == 36}


def read_outputs_verified(job: GraphJob) -> dict[str, Any]:
    """Read every output of every quantum with the records its provenance file holds (checksums verified).

    Raises `~s3qbb.errors.DatasetIntegrityError` where an object is not what the records say.
    Returns the outputs by ``"<dataset type>/<detector>"``.
    """
    from s3qbb import QuantumBackedButler
    from s3qbb.provenance import QuantumProvenanceData, provenance_key

    secret = job.endpoint.config.secret_access_key
    config = {
        "datastore": {
            "root": f"s3://{job.endpoint.bucket}/repo",
            "endpoint": {
                "endpoint_url": job.endpoint.endpoint_url,
                "region": "us-east-1",
                "addressing_style": "path",
                "access_key_id": job.endpoint.config.access_key_id,
                "secret_access_key": secret.get_secret_value() if secret is not None else None,
            },
        },
        "cache": {"enabled": False},
    }
    found: dict[str, Any] = {}
    for index, node in enumerate(job.graph.nodes):
        quantum = job.graph[index]
        assert node.run is not None
        body = job.endpoint.client.get_object(
            Bucket=job.endpoint.bucket, Key=f"repo/{provenance_key(node.run, node.id)}"
        )["Body"].read()
        records = QuantumProvenanceData.model_validate_json(body).datastore_record_data()
        outputs = quantum.output_refs()
        ids = [r.id for r in outputs]
        reader = QuantumBackedButler.from_predicted(config, ids, [], _U, records, refs=outputs)
        try:
            for ref in outputs:
                found[f"{ref.datasetType.name}/{dict(ref.dataId).get('detector')}"] = reader.get(ref)
        finally:
            reader.close()
    return found
