"""``make demo``: a small pipeline built as a quantum graph and run with ``s3qbb run`` on an S3 server.

Starts a moto S3 server on 127.0.0.1 (or uses ``--endpoint``), writes a
repository config to the bucket, builds the pipeline's three stages as a
`~s3qbb.batch.graph.QuantumGraph`, saves it to the bucket and runs it with
``s3qbb run`` (each quantum in its own ``s3qbb run-quantum --graph`` process,
as a batch job would run it):

1. ``ingest``: writes raw images (NumPy arrays) for one visit and N detectors;
2. ``calibrate`` (one quantum per detector): reads a raw, writes a calibrated
   image and a metrics dict;
3. ``summarize``: reads every metrics dict, writes a visit summary.

Each downstream job reads the datastore records of its inputs from the
provenance files its upstream quanta uploaded. Finally it lists the
records files left beside the outputs, ingests both runs into a SQLite
registry, lists the datasets and prints the provenance chain of the visit
summary back to the raws.
"""

from __future__ import annotations

__all__ = ["build_graph", "calibrate", "ingest", "main", "run_demo", "summarize"]

import argparse
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .batch.graph import QuantumGraph
    from .butler.quantum_backed import QuantumBackedButler
    from .core.dataset_ref import DatasetRef
    from .core.quantum import Quantum

BUCKET = "s3qbb-demo"
ROOT = f"s3://{BUCKET}/repo"


# --------------------------------------------------------------------- the tasks


def ingest(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Write one synthetic raw image per output ref."""
    import numpy as np

    for ref in quantum.outputs["raw"]:
        rng = np.random.default_rng(int(ref.dataId["detector"]))
        butler.put(rng.normal(1000.0, 30.0, size=(256, 256)).astype("float32"), ref)


def calibrate(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Subtract the background of a raw image; record simple metrics."""
    import numpy as np

    (raw_ref,) = quantum.inputs["raw"]  # refs by dataset type name
    raw = butler.get(raw_ref)
    background = float(np.median(raw))
    (calexp_ref,) = quantum.outputs["calexp"]
    (metrics_ref,) = quantum.outputs["calexp_metrics"]
    butler.put(raw - background, calexp_ref)
    butler.put(
        {"background": background, "noise": float(raw.std()), "detector": raw_ref.dataId["detector"]},
        metrics_ref,
    )


def summarize(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Combine the metrics of every detector of a visit."""
    metrics = [butler.get(ref) for ref in quantum.inputs["calexp_metrics"]]
    (summary_ref,) = quantum.outputs["visit_summary"]
    butler.put(
        {
            "detectors": sorted(m["detector"] for m in metrics),
            "mean_background": sum(m["background"] for m in metrics) / len(metrics),
        },
        summary_ref,
    )


# ------------------------------------------------------------------- the driver


def _dataset_types() -> dict[str, Any]:
    from .core import DatasetType, DimensionUniverse

    u = DimensionUniverse()
    return {
        "raw": DatasetType("raw", ["visit", "detector"], "NumpyArray", universe=u),
        "calexp": DatasetType("calexp", ["visit", "detector"], "NumpyArray", universe=u),
        "calexp_metrics": DatasetType(
            "calexp_metrics", ["visit", "detector"], "StructuredDataDict", universe=u
        ),
        "visit_summary": DatasetType("visit_summary", ["visit"], "StructuredDataDict", universe=u),
    }


def build_graph(run: str, raw_run: str, detectors: int) -> tuple[QuantumGraph, DatasetRef]:
    """Build the demo's three stages as a `~s3qbb.batch.graph.QuantumGraph`; return it and the summary ref.

    No quantum holds records of its inputs: each job reads them from the
    provenance files of the quanta that produced them.
    """
    from .batch.graph import QuantumGraph
    from .core import DataCoordinate, DatasetRef, Quantum

    types = _dataset_types()
    universe = types["raw"].dimensions.universe
    visit = {"instrument": "DemoCam", "visit": 42}
    refs: dict[tuple[str, int], DatasetRef] = {}
    for det in range(detectors):
        for name, r in (("raw", raw_run), ("calexp", run), ("calexp_metrics", run)):
            refs[name, det] = DatasetRef(types[name], {**visit, "detector": det}, r)
    summary = DatasetRef(types["visit_summary"], visit, run)
    quanta = [
        Quantum(
            taskLabel="ingest",
            taskName="s3qbb.demo.ingest",
            outputs=[refs["raw", d] for d in range(detectors)],
        ),
        *(
            Quantum(
                taskLabel="calibrate",
                taskName="s3qbb.demo.calibrate",
                dataId=DataCoordinate.standardize({**visit, "detector": d}, universe=universe),
                inputs=[refs["raw", d]],
                outputs=[refs["calexp", d], refs["calexp_metrics", d]],
            )
            for d in range(detectors)
        ),
        Quantum(
            taskLabel="summarize",
            taskName="s3qbb.demo.summarize",
            inputs=[refs["calexp_metrics", d] for d in range(detectors)],
            outputs=[summary],
        ),
    ]
    tasks = {label: f"s3qbb.demo:{label}" for label in ("ingest", "calibrate", "summarize")}
    return QuantumGraph.from_quanta(quanta, tasks), summary


def _s3qbb(*args: str, env: dict[str, str]) -> None:
    cmd = [sys.executable, "-m", "s3qbb.cli", *args]
    print(f"\n$ s3qbb {' '.join(args)}", flush=True)
    code = subprocess.run(cmd, env=env, check=False).returncode
    if code != 0:
        raise SystemExit(f"s3qbb {args[0]} failed with exit status {code}")


def run_demo(endpoint: str, env: dict[str, str], detectors: int, workers: int, registry_url: str) -> None:
    """Build the graph, run it with ``s3qbb run`` against an S3 endpoint whose credentials are in ``env``."""
    import boto3
    import yaml

    env = {**env, "AWS_ENDPOINT_URL_S3": endpoint}  # how the jobs find the config and graph on S3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    if BUCKET not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
        client.create_bucket(Bucket=BUCKET)
    config = {"datastore": {"root": ROOT, "endpoint": {"endpoint_url": endpoint, "addressing_style": "path"}}}
    client.put_object(Bucket=BUCKET, Key="repo/butler.yaml", Body=yaml.safe_dump(config).encode())
    print(f"repository: {ROOT} on {endpoint}\nconfig:\n  " + yaml.safe_dump(config).replace("\n", "\n  "))

    stamp = int(time.time())
    raw_run, run = f"demo/raw-{stamp}", f"demo/run-{stamp}"
    graph, summary = build_graph(run, raw_run, detectors)
    graph_uri = f"s3://{BUCKET}/graphs/demo-{stamp}.qgraph"
    client.put_object(Bucket=BUCKET, Key=graph_uri.removeprefix(f"s3://{BUCKET}/"), Body=graph.to_bytes())
    config_uri = f"{ROOT}/butler.yaml"
    _s3qbb("graph", "show", graph_uri, env=env)
    started = time.monotonic()
    _s3qbb("run", "--graph", graph_uri, "--config", config_uri, "-j", str(workers), env=env)
    print(f"   ({len(graph)} quanta in {time.monotonic() - started:.1f} s, {workers} processes)")
    _s3qbb("graph", "status", graph_uri, "--config", config_uri, env=env)

    print("\n== records files uploaded beside the outputs")
    for prefix in (f"repo/{raw_run}/_records/", f"repo/{run}/_records/"):
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            for item in page.get("Contents", []):
                if item["Key"].endswith(".sqlite3"):
                    print(f"   s3://{BUCKET}/{item['Key']}  ({item['Size']} bytes)")
    _ingest_and_query(endpoint, env, registry_url, [raw_run, run], summary.id)


def _ingest_and_query(
    endpoint: str, env: dict[str, str], registry_url: str, runs: list[str], dataset_id: uuid.UUID
) -> None:
    """Ingest both runs into the registry, list the datasets and print one provenance chain."""
    from .config import S3EndpointConfig
    from .registry import Registry

    config = S3EndpointConfig(
        endpoint_url=endpoint,
        region="us-east-1",
        addressing_style="path",
        access_key_id=env["AWS_ACCESS_KEY_ID"],
        secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    print(f"\n== ingest into the registry {registry_url}")
    with Registry.from_url(registry_url) as registry:
        for r in runs:
            described = registry.ingest_run(f"{ROOT}/{r}/", config=config).describe()
            print("   " + described.replace("\n", "\n   "))
        print("\n== datasets in the registry")
        for row in registry.datasets():
            data_id = ", ".join(f"{k}={v}" for k, v in (row.data_id or {}).items())
            path = row.records[0].path if row.records else "-"
            print(f"   {row.dataset_type or '?':<15} {row.run or '?':<22} {data_id:<38} {path}")
        tree = registry.provenance(dataset_id, depth=3)
        print(f"\n== provenance of the visit summary {dataset_id}")

        def walk(node: uuid.UUID, indent: int) -> None:
            row = tree.datasets[node]
            pad = "  " * indent
            print(f"   {pad}{row.dataset_type} {dict(row.data_id or {})} [{row.run}]")
            producer = tree.producer_of(node)
            if producer is not None:
                print(
                    f"   {pad}  <- quantum {str(producer.id)[:8]} ({producer.task_label}, {producer.status})"
                )
                for parent in tree.inputs_of(node):
                    walk(parent.id, indent + 2)

        walk(tree.root, 0)


def _missing_modules(server_modules: Sequence[str]) -> list[str]:
    """Names of the optional packages the demo needs that are not installed."""
    import importlib.util

    return [name for name in ("numpy", *server_modules) if importlib.util.find_spec(name) is None]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m s3qbb.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--endpoint", help="S3 endpoint URL to use instead of starting a moto server on 127.0.0.1"
    )
    parser.add_argument("--detectors", type=int, default=4, help="calibrate quanta to run (default 4)")
    parser.add_argument("--workers", type=int, default=2, help="parallel quantum processes (default 2)")
    parser.add_argument(
        "--registry", help="registry URL to ingest into (default: a new SQLite file in a temp dir)"
    )
    args = parser.parse_args(argv)
    missing = _missing_modules(() if args.endpoint else ("moto", "flask"))
    if missing:
        print(
            f"python -m s3qbb.demo needs {', '.join(missing[:-1]) + ' and ' if missing[:-1] else ''}"
            f"{missing[-1]}, which {'are' if len(missing) > 1 else 'is'} not installed: "
            "pip install 's3qbb[testing,numpy]' (moto's S3 server and NumPy), then run it again.",
            file=sys.stderr,
        )
        return 2
    import tempfile

    tmp = tempfile.mkdtemp(prefix="s3qbb-demo-")
    registry_url = args.registry or f"sqlite:///{tmp}/registry.sqlite3"
    env = dict(os.environ)
    if args.endpoint:
        missing = [v for v in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if v not in env]
        if missing:
            parser.error(f"--endpoint needs credentials in the environment: set {', '.join(missing)}")
        run_demo(args.endpoint, env, args.detectors, args.workers, registry_url)
        return 0
    from .testing.servers import MotoServer

    env.update(
        {"AWS_ACCESS_KEY_ID": "demo", "AWS_SECRET_ACCESS_KEY": "demo", "AWS_DEFAULT_REGION": "us-east-1"}
    )
    with MotoServer() as server:
        print(f"started a moto S3 server on {server.endpoint_url}")
        run_demo(server.endpoint_url, env, args.detectors, args.workers, registry_url)
    print("\nstopped the S3 server; done.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
