"""Batch benchmarks: quantum-graph load time, per-job overhead of ``--graph``, ``s3qbb run`` against Dask.

Run from the repository root (``make bench`` does)::

    python -m benchmarks.batch_bench
    python -m benchmarks.batch_bench --server seaweedfs --quanta 32 --graph-size 20000

1. Graph load. A graph of ``--graph-size`` quanta (half producers, half
   consumers of one producer's output each) is saved to a local file and to
   the S3 server; `QuantumGraph.load` is timed (header validated only), then
   one quantum's decoding, against validating and decoding every quantum.
2. Per-job overhead. For ``--quanta`` consumer quanta (each reading one
   upstream output): the time to get the job's quantum ready, in process
   (graph form: one GET of the graph, select, one GET of the upstream
   provenance; single-file form: one GET of a description with the records
   copied in), then ``s3qbb run-quantum`` wall time per quantum in each form
   (subprocesses, so interpreter start and imports included).
3. Whole-graph runners. The same graph shape with ``--quanta`` quanta per stage,
   run with ``s3qbb run -j 2`` (one process per quantum) and with the Dask
   executor on a two-process local cluster (started beforehand, not timed):
   quanta per second, and the ratio.

Nothing is asserted: numbers go to standard output.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from s3qbb.batch.graph import QuantumGraph
from s3qbb.core import DatasetRef, DatasetType, DimensionUniverse, Quantum
from s3qbb.s3.objects import GetResult, S3Bucket

from .child_processes import compile_bytecode, job_environment
from .servers import make_server

if TYPE_CHECKING:
    from s3qbb.butler.quantum_backed import QuantumBackedButler
    from s3qbb.testing.servers import S3TestEndpoint

__all__ = ["combine", "main", "make_graph", "produce"]

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "batch-bench"
_U = DimensionUniverse()
_RAW = DatasetType("raw", ["visit", "detector"], "StructuredDataDict", universe=_U)
_OUT = DatasetType("calexp", ["visit", "detector"], "StructuredDataDict", universe=_U)
TASKS = {"produce": "benchmarks.batch_bench:produce", "combine": "benchmarks.batch_bench:combine"}


def produce(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Write a small dict to every output."""
    for ref in quantum.output_refs():
        butler.put({"detector": ref.dataId["detector"]}, ref)


def combine(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Read every input, write a small dict to every output."""
    values = [butler.get(ref)["detector"] for ref in quantum.input_refs()]
    for ref in quantum.output_refs():
        butler.put({"read": values}, ref)


def make_graph(pairs: int, run: str) -> QuantumGraph:
    """``pairs`` producers (stage 0), each read by one consumer (stage 1)."""
    quanta = []
    for d in range(pairs):
        visit, detector = divmod(d, 1000)
        data_id = {"instrument": "Cam", "visit": visit, "detector": detector}
        raw = DatasetRef(_RAW, data_id, f"{run}/raw")
        quanta.append(Quantum(taskLabel="produce", outputs=[raw]))
        quanta.append(Quantum(taskLabel="combine", inputs=[raw], outputs=[DatasetRef(_OUT, data_id, run)]))
    return QuantumGraph.from_quanta(quanta, TASKS)


def _median_time(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _median_cpu(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return statistics.median(times)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


# --- 1. graph load ---------------------------------------------------------------------------------


def bench_load(endpoint: S3TestEndpoint, size: int, out: Callable[[str], None]) -> dict[str, float]:
    """Time loading a graph of ``size`` quanta, one quantum's decoding, and decoding them all."""
    t0 = time.perf_counter()
    graph = make_graph(size // 2, "bench/load")
    build = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "g.qgraph"
        graph.save(path)
        nbytes = path.stat().st_size
        uri = f"s3://{endpoint.bucket}/graphs/load.qgraph"
        graph.save(uri, config=endpoint.config)
        local = _median_time(lambda: QuantumGraph.load(path), 5)
        local_cpu = _median_cpu(lambda: QuantumGraph.load(path), 5)
        remote = _median_time(lambda: QuantumGraph.load(uri, config=endpoint.config), 5)
        loaded = QuantumGraph.load(path)
        opened = _median_time(lambda: QuantumGraph.open(uri, config=endpoint.config)[len(loaded) - 1], 5)
        transferred: list[int] = []
        original = S3Bucket.get

        def counting_get(self: S3Bucket, key: str, byte_range: tuple[int, int] | None = None) -> GetResult:
            result = original(self, key, byte_range)
            transferred.append(len(result.body))
            return result

        S3Bucket.get = counting_get  # type: ignore[method-assign]
        try:
            QuantumGraph.open(uri, config=endpoint.config)[len(loaded) - 1]
        finally:
            S3Bucket.get = original  # type: ignore[method-assign]
        one = _median_time(lambda: QuantumGraph.load(path)[len(loaded) - 1], 5) - local
        every = _median_time(lambda: list(QuantumGraph.load(path)), 1)
    out(f"\n== graph load: {len(graph)} quanta, {nbytes / 1e6:.1f} MB (built in {build:.2f} s)")
    out(f"   load, local file          {_ms(local)}   (CPU {_ms(local_cpu).strip()}; header only validated)")
    out(f"   load, one GET from {endpoint.name:<7}{_ms(remote)}")
    out(f"   + decode one quantum      {_ms(max(one, 0.0))}")
    out(f"   load + decode every one   {_ms(every)}   ({every / local:.0f}x the lazy load)")
    out(
        f"   job: open + one quantum   {_ms(opened)}   ({len(transferred)} range GETs, "
        f"{sum(transferred) / 1e6:.2f} MB of {nbytes / 1e6:.1f} MB)"
    )
    return {"quanta": len(graph), "bytes": nbytes, "load_local_s": local, "load_local_cpu_s": local_cpu,
            "load_s3_s": remote,
            "decode_one_s": one, "decode_all_s": every, "open_one_s": opened,
            "open_one_bytes": sum(transferred), "open_one_gets": len(transferred)}  # fmt: skip


# --- 2. per-job overhead ---------------------------------------------------------------------------


def _write_config(endpoint: S3TestEndpoint) -> str:
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
    return f"s3://{endpoint.bucket}/repo/butler.yaml"


def _job_env(endpoint: S3TestEndpoint) -> dict[str, str]:
    secret = endpoint.config.secret_access_key
    env = job_environment(os.environ)
    env.update(
        {
            "AWS_ACCESS_KEY_ID": endpoint.config.access_key_id or "",
            "AWS_SECRET_ACCESS_KEY": secret.get_secret_value() if secret is not None else "",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_S3": endpoint.endpoint_url,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        }
    )
    return env


def _cli(args: Sequence[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "s3qbb.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, check=False)  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"s3qbb {' '.join(args[:1])} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return time.perf_counter() - t0


def bench_job_overhead(endpoint: S3TestEndpoint, quanta: int, out: Callable[[str], None]) -> dict[str, float]:
    """Compare getting a consumer quantum ready, and running it: from the graph, from a description file."""
    from s3qbb.batch.jobindex import graph_job
    from s3qbb.batch.upstream import with_upstream_records
    from s3qbb.core.wire import SerializedQuantum, quantum_from_simple, quantum_to_simple
    from s3qbb.repo import CacheConfig, DatastoreConfig, RepoConfig
    from s3qbb.s3.config_files import read_s3_bytes

    config_uri = _write_config(endpoint)
    env = _job_env(endpoint)
    repo = RepoConfig(
        datastore=DatastoreConfig(root=f"s3://{endpoint.bucket}/repo", endpoint=endpoint.config),
        cache=CacheConfig(enabled=False),
    )
    # Two copies of the graph: one run through --graph, one through description files.
    runs = {}
    for form in ("graph", "file"):
        graph = make_graph(quanta, f"bench/{form}-{time.time_ns()}")
        uri = f"s3://{endpoint.bucket}/graphs/{form}.qgraph"
        graph.save(uri, config=endpoint.config)
        for i in graph.stage_range(0):  # producers, not timed
            _cli(["run-quantum", "--graph", uri, "--index", str(i), "--config", config_uri], env)
        runs[form] = (graph, uri)
    graph, uri = runs["graph"]
    consumers = list(graph.stage_range(1))
    ready_graph = _median_time(lambda: graph_job(uri, repo, index=consumers[0]), 5)
    file_graph, _ = runs["file"]
    keys = []
    for i in file_graph.stage_range(1):  # the hand-made way: a description with the records copied in
        key = f"quanta/{file_graph.nodes[i].id}.json"
        described = with_upstream_records(file_graph, i, repo)
        body = quantum_to_simple(described).model_dump_json().encode()
        endpoint.client.put_object(Bucket=endpoint.bucket, Key=key, Body=body)
        keys.append(key)

    def ready_from_file() -> Quantum:  # what load_quantum does, with this endpoint's credentials
        data = read_s3_bytes(f"s3://{endpoint.bucket}/{keys[0]}", endpoint.config)
        return quantum_from_simple(SerializedQuantum.model_validate_json(data), _U)

    ready_file = _median_time(ready_from_file, 5)
    wall_graph = [
        _cli(["run-quantum", "--graph", uri, "--index", str(i), "--config", config_uri], env)
        for i in consumers
    ]
    wall_file = [
        _cli(
            [
                "run-quantum",
                f"s3://{endpoint.bucket}/{k}",
                "--task",
                TASKS["combine"],
                "--config",
                config_uri,
            ],
            env,
        )
        for k in keys
    ]
    g, f = statistics.median(wall_graph), statistics.median(wall_file)
    out(f"\n== per-job overhead ({len(consumers)} consumer quanta, each reading one upstream output)")
    out(f"   quantum ready, --graph      {_ms(ready_graph)}   (GET graph + select + GET upstream provenance)")
    out(f"   quantum ready, single file  {_ms(ready_file)}   (GET description with records copied in)")
    out(f"   run-quantum wall, --graph   {_ms(g)}   median per quantum (process start included)")
    out(f"   run-quantum wall, file      {_ms(f)}")
    out(
        f"   ratio --graph / file: ready {ready_graph / ready_file:.2f}x, wall {g / f:.2f}x "
        f"({(g - f) * 1000:+.0f} ms)"
    )
    return {"ready_graph_s": ready_graph, "ready_file_s": ready_file, "wall_graph_s": g, "wall_file_s": f}


# --- 3. runners ------------------------------------------------------------------------------------


def bench_runners(
    endpoint: S3TestEndpoint, quanta: int, use_dask: bool, out: Callable[[str], None]
) -> dict[str, float]:
    """``s3qbb run -j 2`` against the Dask executor on the same graph shape (fresh runs each)."""
    config_uri = _write_config(endpoint)
    env = _job_env(endpoint)
    graph = make_graph(quanta, f"bench/run-{time.time_ns()}")
    uri = f"s3://{endpoint.bucket}/graphs/run.qgraph"
    graph.save(uri, config=endpoint.config)
    local = _cli(["run", "--graph", uri, "--config", config_uri, "-j", "2"], env)
    result = {"quanta": len(graph), "local_s": local, "local_qps": len(graph) / local}
    out(f"\n== whole graph: {len(graph)} quanta in 2 stages, 2 workers")
    out(f"   s3qbb run -j 2      {local:7.2f} s   {len(graph) / local:6.2f} quanta/s (a process per quantum)")
    if not use_dask:
        return result
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        out("   Dask: not installed (pip install 's3qbb[dask]'), skipped")
        return result
    from s3qbb.batch.dask import run_graph_on_dask

    dask_graph = make_graph(quanta, f"bench/dask-{time.time_ns()}")
    config = {"datastore": {"root": f"s3://{endpoint.bucket}/repo", "endpoint": endpoint.config},
              "cache": {"enabled": False}}  # fmt: skip
    saved = dict(os.environ)
    os.environ["PYTHONPATH"] = env["PYTHONPATH"]  # the workers import the tasks from benchmarks/
    try:
        with (
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                         dashboard_address=None) as cluster,
            Client(cluster) as client,
        ):  # fmt: skip
            t0 = time.perf_counter()
            results = run_graph_on_dask(dask_graph, config, client=client)
            dask_s = time.perf_counter() - t0
    finally:
        os.environ.clear()
        os.environ.update(saved)
    failed = [r for r in results.values() if not r.succeeded]
    if failed:
        raise SystemExit(f"Dask: {len(failed)} quanta failed, e.g. {failed[0].error}")
    out(f"   Dask executor       {dask_s:7.2f} s   {len(graph) / dask_s:6.2f} quanta/s (warm workers)")
    out(f"   ratio Dask / s3qbb run: {local / dask_s:.1f}x the throughput")
    result.update({"dask_s": dask_s, "dask_qps": len(graph) / dask_s})
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.batch_bench", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--server", default="moto", choices=("moto", "seaweedfs"), help="S3 server (default moto)"
    )
    parser.add_argument("--graph-size", type=int, default=10_000, help="quanta of the load benchmark")
    parser.add_argument("--quanta", type=int, default=8, help="quanta per stage of the run benchmarks")
    parser.add_argument("--no-dask", action="store_true", help="skip the Dask executor")
    parser.add_argument("--only", choices=("load", "jobs", "runners"), help="run one part only")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    compile_bytecode()  # the job processes start from bytecode, as an installed s3qbb does
    with make_server(args.server) as server:
        endpoint = server.endpoint(BUCKET)
        print(f"S3 server: {args.server} at {endpoint.endpoint_url}")
        if args.only in (None, "load"):
            results["load"] = bench_load(endpoint, args.graph_size, print)
        if args.only in (None, "jobs"):
            results["jobs"] = bench_job_overhead(endpoint, args.quanta, print)
        if args.only in (None, "runners"):
            results["runners"] = bench_runners(endpoint, args.quanta, not args.no_dask, print)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
