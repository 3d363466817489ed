"""QuantumBackedButler benchmarks: cold start, construction, cache hits, provenance extraction.

``python -m benchmarks.qbb`` (part of ``make bench``) prints each figure next to its target:

* cold start: a fresh process that imports s3qbb, loads a repository config and
  builds a butler ready to put, against a fresh process that imports boto3 and
  creates an S3 client (target <= 1.2x); also with the butler's S3 client created;
* building a butler for 10 inputs / 10 outputs in a warm process (target <= 2 ms);
* a cache hit against an S3 GET of the same dataset on a moto server (target >= 50x);
* ``extract_provenance_data()`` after 500 outputs (target <= 10 ms).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

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


def cache_hit(n: int) -> dict[str, Any]:
    """Median cache hit against a median S3 GET of the same small dataset on a moto server."""
    from s3qbb import DatasetRef, DatasetType, DimensionUniverse, Quantum, QuantumBackedButler
    from s3qbb.testing.servers import MotoServer

    u = DimensionUniverse()
    dt = DatasetType("d", ["instrument"], "StructuredDataDict", universe=u)
    ref = DatasetRef(dt, {"instrument": "C"}, "run")
    payload = {f"k{i}": i for i in range(100)}
    with MotoServer() as server:
        endpoint = server.endpoint("bench")
        base = {
            "datastore": {
                "root": "s3://bench/repo",
                "endpoint": json.loads(endpoint.config.model_dump_json())
                | {
                    "secret_access_key": endpoint.config.secret_access_key.get_secret_value()  # type: ignore[union-attr]
                },
            }
        }
        butler = QuantumBackedButler.initialize(base, Quantum(outputs=[ref]), u, allow_unpredicted_reads=True)
        butler.put(payload, ref)
        hit = _timeit(lambda: butler.get(ref), n)
        records = butler._datastore.export_records([ref])
        uncached = QuantumBackedButler.from_predicted(
            base | {"cache": {"enabled": False}}, [ref.id], [], u, records
        )
        get = _timeit(lambda: uncached.get(ref), n)
        butler.close()
        uncached.close()
    return {"hit_us": hit * 1e6, "s3_get_us": get * 1e6, "ratio": get / hit}


def provenance(n_outputs: int) -> dict[str, Any]:
    """Time of extract_provenance_data() after ``n_outputs`` puts to S3 (moto server)."""
    from s3qbb import DatasetRef, DatasetType, DimensionUniverse, Quantum, QuantumBackedButler
    from s3qbb.testing.servers import MotoServer

    u = DimensionUniverse()
    dt = DatasetType("d", ["visit", "detector"], "StructuredDataDict", universe=u)
    outputs = [
        DatasetRef(dt, {"instrument": "C", "visit": 1, "detector": i}, "out") for i in range(n_outputs)
    ]
    with MotoServer() as server:
        endpoint = server.endpoint("bench")
        config = {
            "datastore": {
                "root": "s3://bench/repo",
                "endpoint": json.loads(endpoint.config.model_dump_json())
                | {
                    "secret_access_key": endpoint.config.secret_access_key.get_secret_value()  # type: ignore[union-attr]
                },
            },
            "cache": {"enabled": False},
        }
        butler = QuantumBackedButler.initialize(config, Quantum(outputs=outputs), u)
        for ref in outputs:
            butler.put({"i": 1}, ref)
        median = _timeit(butler.extract_provenance_data, 20)
        butler.close()
    return {"outputs": n_outputs, "median_ms": median * 1000}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and print figures against targets."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.qbb", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args(argv)
    repeats = 3 if args.quick else 7
    results = {
        "cold_start": cold_start(repeats),
        "construction": construction(50 if args.quick else 300),
        "cache_hit": cache_hit(100 if args.quick else 500),
        "provenance": provenance(500),
    }
    c = results["cold_start"]
    rows = [
        ("cold start: butler / (import boto3 + client)", c["ratio"], "<= 1.2", c["ratio"] <= 1.2),
        ("cold start incl. butler's client", c["ratio_with_client"], "(info)", True),
        ("build butler 10 in / 10 out (ms)", results["construction"]["median_ms"], "<= 2", None),
        ("cache hit speed-up vs S3 GET (x)", results["cache_hit"]["ratio"], ">= 50", None),
        ("extract_provenance_data, 500 outputs (ms)", results["provenance"]["median_ms"], "<= 10", None),
    ]
    boto3_ms = c["boto3_import_and_client_s"] * 1000
    lazy_ms, client_ms = c["s3qbb_butler_s"] * 1000, c["s3qbb_butler_with_client_s"] * 1000
    print(f"cold start medians: boto3 {boto3_ms:.0f} ms, s3qbb butler {lazy_ms:.0f} ms,", end=" ")
    print(f"with its client {client_ms:.0f} ms")
    hit = results["cache_hit"]
    print(f"cache: hit {hit['hit_us']:.0f} us, S3 GET {hit['s3_get_us']:.0f} us")
    checks = {
        "build butler 10 in / 10 out (ms)": lambda v: v <= 2,
        "cache hit speed-up vs S3 GET (x)": lambda v: v >= 50,
        "extract_provenance_data, 500 outputs (ms)": lambda v: v <= 10,
    }
    print(f"\n{'figure':46s} {'value':>9s}  target   result")
    for name, value, target, ok in rows:
        if ok is None:
            ok = checks[name](value)
        print(f"{name:46s} {value:9.2f}  {target:7s}  {'PASS' if ok else 'MISS'}")
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
