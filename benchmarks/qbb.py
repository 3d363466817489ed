"""QuantumBackedButler benchmarks: cold start, construction, cache hits, provenance extraction.

``python -m benchmarks.qbb`` (part of ``make bench``) prints each figure next to its target:

* cold start: a fresh process that imports s3qbb, loads a repository config and
  builds a butler ready to put, against a fresh process that imports boto3 and
  creates an S3 client (target <= 1.2x); also with the butler's S3 client created;
* building a butler for 10 inputs / 10 outputs in a warm process (target <= 2 ms);
* a cache hit against an S3 GET of the same dataset (target >= 50x), interleaved with a plain
  boto3 GET of the same object, requests counted;
* ``extract_provenance_data()`` after 500 outputs (target <= 10 ms, the mean of 200 calls:
  it counts the garbage collections the calls trigger, which a median would leave out).

The last two run on a moto server in this process, or with ``--server moto|seaweedfs`` on a
server in its own process (`benchmarks.servers`). Each figure is a function returning a `dict`;
`run_qbb` runs them all (``python -m benchmarks.report_all`` calls them one by one, per server).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .report import Target

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from s3qbb.testing.servers import S3TestEndpoint, S3TestServer

_BOTO3_CHILD = """
import time
t = time.perf_counter()
import boto3
client = boto3.client("s3", endpoint_url="http://127.0.0.1:9", region_name="us-east-1",
                      aws_access_key_id="a", aws_secret_access_key="b")
print(time.perf_counter() - t)
"""

_S3QBB_CHILD = """
import sys, time
t = time.perf_counter()
from s3qbb import DatasetRef, DatasetType, DimensionUniverse, Quantum, QuantumBackedButler
from s3qbb.repo import load_repo_config
config = load_repo_config({"datastore": {"root": "s3://bench/repo", "endpoint": {
    "endpoint_url": "http://127.0.0.1:9", "region": "us-east-1",
    "access_key_id": "a", "secret_access_key": "b"}}})
u = DimensionUniverse()
dt = DatasetType("out", ["instrument"], "StructuredDataDict", universe=u)
ref = DatasetRef(dt, {"instrument": "Cam"}, "run")
butler = QuantumBackedButler.initialize(config, Quantum(outputs=[ref]), u)
if sys.argv[1] == "client":
    butler._datastore.backend.bucket  # create the S3 client a first put would need
print(time.perf_counter() - t)
"""


def _child(code: str, *args: str) -> float:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def cold_start(repeats: int) -> dict[str, Any]:
    """Median in-process time of each fresh-process variant, interleaved."""
    boto3_t, qbb_t, qbb_client_t = [], [], []
    for _ in range(repeats):
        boto3_t.append(_child(_BOTO3_CHILD))
        qbb_t.append(_child(_S3QBB_CHILD, "lazy"))
        qbb_client_t.append(_child(_S3QBB_CHILD, "client"))
    b = statistics.median(boto3_t)
    return {
        "boto3_import_and_client_s": b,
        "s3qbb_butler_s": statistics.median(qbb_t),
        "s3qbb_butler_with_client_s": statistics.median(qbb_client_t),
        "ratio": statistics.median(qbb_t) / b,
        "ratio_with_client": statistics.median(qbb_client_t) / b,
    }


def _timeit(fn: Callable[[], Any], n: int) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def construction(n: int) -> dict[str, Any]:
    """Median time to build a butler for 10 inputs / 10 outputs from a loaded config."""
    from s3qbb import DatasetRef, DatasetType, DimensionUniverse, Quantum, QuantumBackedButler
    from s3qbb.repo import load_repo_config

    config = load_repo_config(
        {
            "datastore": {
                "root": "s3://bench/repo",
                "endpoint": {"endpoint_url": "http://127.0.0.1:9", "region": "us-east-1"},
            }
        }
    )
    u = DimensionUniverse()
    dt = DatasetType("d", ["visit", "detector"], "StructuredDataDict", universe=u)
    inputs = [DatasetRef(dt, {"instrument": "C", "visit": 1, "detector": i}, "in") for i in range(10)]
    outputs = [DatasetRef(dt, {"instrument": "C", "visit": 2, "detector": i}, "out") for i in range(10)]
    quantum = Quantum(taskLabel="t", inputs=inputs, outputs=outputs)

    def build() -> None:
        QuantumBackedButler.initialize(config, quantum, u).close()

    build()
    return {"median_ms": _timeit(build, n) * 1000}


def _butler_config(endpoint: S3TestEndpoint, **extra: Any) -> dict[str, Any]:
    """Repository configuration of a butler writing to ``s3://<endpoint bucket>/repo``."""
    secret = endpoint.config.secret_access_key
    return {
        "datastore": {
            "root": f"s3://{endpoint.bucket}/repo",
            "endpoint": json.loads(endpoint.config.model_dump_json())
            | {"secret_access_key": secret.get_secret_value() if secret is not None else None},
        },
        **extra,
    }


def _s3_client(butler: Any) -> S3Client:
    """The boto3 client of a butler's S3 datastore (behind its caching layer)."""
    store = butler._datastore
    client: S3Client = getattr(store, "backend", store).bucket.client
    return client


@contextlib.contextmanager
def _running(server: S3TestServer | None) -> Iterator[S3TestServer]:
    """Yield ``server``, or an in-process moto server started (and stopped) for the occasion."""
    if server is not None:
        yield server
        return
    from s3qbb.testing.servers import MotoServer

    with MotoServer() as started:
        yield started


def cache_hit(n: int, server: S3TestServer | None = None, *, trials: int = 5) -> dict[str, Any]:
    """Cache hit against an S3 GET of the same small dataset, and a plain boto3 GET of its object.

    Three sides run interleaved (`benchmarks.harness.run_interleaved`), ``n``
    operations each: ``cache_hit`` (``butler.get`` answered by the in-memory
    cache), ``s3_get`` (``butler.get`` of a butler whose cache is disabled: one
    GET, checksum verified, JSON decoded) and ``boto3_get`` (``get_object`` +
    ``read`` of the same object). Requests are counted per side.

    Parameters
    ----------
    n : `int`
        Timed operations per side.
    server : `s3qbb.testing.servers.S3TestServer`, optional
        A running server (it is reset); an in-process moto server by default.
    trials : `int`, optional
        Rounds the operations are spread over.
    """
    from s3qbb import DatasetRef, DatasetType, DimensionUniverse, Quantum, QuantumBackedButler
    from s3qbb.testing.faults import RequestCounter

    from .harness import Side, run_interleaved, summarise

    u = DimensionUniverse()
    dt = DatasetType("d", ["instrument"], "StructuredDataDict", universe=u)
    ref = DatasetRef(dt, {"instrument": "C"}, "run")
    payload = {f"k{i}": i for i in range(100)}
    trials = max(1, min(trials, n))
    with _running(server) as running:
        endpoint = running.endpoint("bench-cache")
        base = _butler_config(endpoint)
        butler = QuantumBackedButler.initialize(base, Quantum(outputs=[ref]), u, allow_unpredicted_reads=True)
        butler.put(payload, ref)
        records = butler._datastore.export_records([ref])
        uncached = QuantumBackedButler.from_predicted(
            base | {"cache": {"enabled": False}}, [ref.id], [], u, records
        )
        key = str(butler.getURI(ref)).removeprefix(f"s3://{endpoint.bucket}/")
        plain = endpoint.client
        counters = {
            "cache_hit": RequestCounter(_s3_client(butler)),
            "s3_get": RequestCounter(_s3_client(uncached)),
            "boto3_get": RequestCounter(plain),
        }
        try:
            results = run_interleaved(
                [
                    Side("cache_hit", lambda i: butler.get(ref), counters["cache_hit"]),
                    Side("s3_get", lambda i: uncached.get(ref), counters["s3_get"]),
                    Side(
                        "boto3_get",
                        lambda i: plain.get_object(Bucket=endpoint.bucket, Key=key)["Body"].read(),
                        counters["boto3_get"],
                    ),
                ],
                trials=trials,
                ops_per_trial=max(1, n // trials),
                warmup_ops=3,
            )
            if uncached.get(ref) != payload or butler.get(ref) != payload:
                raise AssertionError("cache_hit: a butler read back a different payload")
        finally:
            for counter in counters.values():
                counter.detach()
            butler.close()
            uncached.close()
    sides = {name: summarise(result) for name, result in results.items()}
    hit, get = sides["cache_hit"]["wall_median_s"], sides["s3_get"]["wall_median_s"]
    return {
        "hit_us": hit * 1e6,
        "s3_get_us": get * 1e6,
        "boto3_get_us": sides["boto3_get"]["wall_median_s"] * 1e6,
        "ratio": get / hit,
        "s3_get_vs_boto3": get / sides["boto3_get"]["wall_median_s"],
        "object_bytes": len(json.dumps(payload)),
        "sides": sides,
    }


def provenance(n_outputs: int, server: S3TestServer | None = None, *, repeats: int = 200) -> dict[str, Any]:
    """Mean and median time of extract_provenance_data() after ``n_outputs`` puts (to in-process moto)."""
    from s3qbb import DatasetRef, DatasetType, DimensionUniverse, Quantum, QuantumBackedButler

    u = DimensionUniverse()
    dt = DatasetType("d", ["visit", "detector"], "StructuredDataDict", universe=u)
    outputs = [
        DatasetRef(dt, {"instrument": "C", "visit": 1, "detector": i}, "out") for i in range(n_outputs)
    ]
    with _running(server) as running:
        endpoint = running.endpoint("bench-provenance")
        config = _butler_config(endpoint, cache={"enabled": False})
        butler = QuantumBackedButler.initialize(config, Quantum(outputs=outputs), u)
        try:
            for ref in outputs:
                butler.put({"i": 1}, ref)
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                butler.extract_provenance_data()
                times.append(time.perf_counter() - t)
        finally:
            butler.close()
    # The mean is what a call costs: it counts the garbage collections the calls trigger, which a
    # median leaves out (a full collection of this process comes every tens of calls).
    return {
        "outputs": n_outputs,
        "repeats": repeats,
        "mean_ms": statistics.fmean(times) * 1000,
        "median_ms": statistics.median(times) * 1000,
        "max_ms": max(times) * 1000,
    }


def evaluate_targets(results: dict[str, Any], server: str = "-") -> list[Target]:
    """Return the targets of the figures present in ``results`` (keys as in `main`'s JSON)."""
    targets: list[Target] = []

    def add(case: str, metric: str, value: float, comparison: str, limit: float, detail: str = "") -> None:
        passed = value <= limit if comparison == "<=" else value >= limit
        targets.append(Target(server, case, metric, value, comparison, limit, passed, detail))

    if "cold_start" in results:
        c = results["cold_start"]
        detail = (
            f"{c['s3qbb_butler_s'] * 1e3:.0f} ms vs {c['boto3_import_and_client_s'] * 1e3:.0f} ms; "
            f"with the butler's own client {c['ratio_with_client']:.2f}x"
        )
        add("cold_start", "butler / (import boto3 + client)", c["ratio"], "<=", 1.2, detail)
    if "construction" in results:
        add("construction", "build butler 10 in / 10 out (ms)", results["construction"]["median_ms"], "<=", 2)
    if "cache_hit" in results:
        h = results["cache_hit"]
        detail = f"hit {h['hit_us']:.0f} us, S3 GET {h['s3_get_us']:.0f} us"
        add("cache_hit", "cache hit speed-up vs S3 GET", h["ratio"], ">=", 50, detail)
    if "provenance" in results:
        p = results["provenance"]
        calls = p.get("repeats", "?")
        metric = f"extract_provenance_data, {p['outputs']} outputs (ms, mean of {calls} calls)"
        slowest = p.get("max_ms", math.nan)
        detail = f"median {p['median_ms']:.2f} ms, slowest {slowest:.1f} ms"
        add("provenance", metric, p.get("mean_ms", p["median_ms"]), "<=", 10, detail)
    return targets


def run_qbb(
    *,
    quick: bool = False,
    server: S3TestServer | None = None,
    outputs: int = 500,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run every QBB figure and return them (the JSON `main` prints).

    ``server`` is used by the cache and provenance figures (an in-process moto
    server by default); cold start and construction make no request.
    """
    say = progress or (lambda line: None)
    results: dict[str, Any] = {}
    steps: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("cold_start", lambda: cold_start(1 if quick else 7)),
        ("construction", lambda: construction(50 if quick else 300)),
        ("cache_hit", lambda: cache_hit(30 if quick else 500, server, trials=2 if quick else 5)),
        ("provenance", lambda: provenance(outputs, server, repeats=5 if quick else 200)),
    ]
    for name, run in steps:
        began = time.perf_counter()
        results[name] = run()
        say(f"qbb {name}: {time.perf_counter() - began:.1f} s")
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and print figures against targets."""
    from .report import format_targets

    parser = argparse.ArgumentParser(prog="python -m benchmarks.qbb", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument(
        "--server",
        choices=("moto-inprocess", "moto", "seaweedfs"),
        default="moto-inprocess",
        help="S3 server of the cache and provenance figures (default: moto in this process)",
    )
    args = parser.parse_args(argv)
    server: S3TestServer | None = None
    if args.server != "moto-inprocess":
        from .servers import make_server

        server = make_server(args.server).start()
    try:
        results = run_qbb(quick=args.quick, server=server)
    finally:
        if server is not None:
            server.stop()
    c = results["cold_start"]
    boto3_ms = c["boto3_import_and_client_s"] * 1000
    lazy_ms, client_ms = c["s3qbb_butler_s"] * 1000, c["s3qbb_butler_with_client_s"] * 1000
    print(f"cold start medians: boto3 {boto3_ms:.0f} ms, s3qbb butler {lazy_ms:.0f} ms,", end=" ")
    print(f"with its client {client_ms:.0f} ms")
    hit = results["cache_hit"]
    print(
        f"cache: hit {hit['hit_us']:.0f} us, S3 GET {hit['s3_get_us']:.0f} us "
        f"(plain boto3 GET {hit['boto3_get_us']:.0f} us)"
    )
    print()
    local = {k: v for k, v in results.items() if k in ("cold_start", "construction")}
    remote = {k: v for k, v in results.items() if k not in local}
    print(format_targets(evaluate_targets(local) + evaluate_targets(remote, args.server)))
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
