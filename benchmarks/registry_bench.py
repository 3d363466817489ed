"""Registry benchmarks: provenance query latency on a large registry, and ingest throughput.

Run from the repository root::

    python -m benchmarks.registry_bench                      # SQLite, 100,000 datasets
    python -m benchmarks.registry_bench --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test
    python -m benchmarks.registry_bench --datasets 20000 --ingest-quanta 500 --server seaweedfs

1. Query latency. A registry is filled with ``--datasets`` datasets through the
   ingest insert path (rows built from provenance and report models, inserted
   in batches; no S3): a pipeline of ``--levels`` levels, each quantum reading
   two outputs of the level above and writing four datasets. Then
   ``Registry.provenance(id, depth)`` is timed for random datasets of the last
   level (depth 1 and the full depth), and ``Registry.datasets`` for one data
   ID. Target: provenance of one dataset under 50 ms.
2. Ingest throughput. ``--ingest-quanta`` quanta's files are written to an S3
   server in its own process; ``Registry.ingest_run`` is timed against raw
   boto3 downloading the same files (one LIST, 16 threads of GETs, no parsing)
   in the same run, and the ratio printed.
"""

from __future__ import annotations

import argparse
import datetime
import math
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s3qbb.core.wire import SerializedDataCoordinate, SerializedDatasetRef, SerializedDatasetType
from s3qbb.provenance import (
    QuantumExecutionReport,
    QuantumProvenanceData,
    provenance_key,
    records_key,
    report_key,
)
from s3qbb.registry import Registry
from s3qbb.registry.database import parse_registry_url
from s3qbb.registry.rows import build_rows
from s3qbb.registry.sources import QuantumBundle

if TYPE_CHECKING:
    from s3qbb.testing.servers import S3TestServer

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
FORMATTER = "s3qbb.formatters.json.JsonFormatter"


# --- synthetic quanta ------------------------------------------------------------------------


def _ref(dataset_id: uuid.UUID, type_name: str, run: str, visit: int, detector: int) -> SerializedDatasetRef:
    return SerializedDatasetRef(
        id=dataset_id,
        datasetType=SerializedDatasetType(
            name=type_name, storageClass="StructuredDataDict", dimensions=["instrument", "visit", "detector"]
        ),
        dataId=SerializedDataCoordinate(dataId={"instrument": "Cam", "visit": visit, "detector": detector}),
        run=run,
    )


def make_quantum(
    run: str, level: int, index: int, inputs: Sequence[SerializedDatasetRef], outputs: int = 4
) -> tuple[uuid.UUID, QuantumProvenanceData, QuantumExecutionReport, list[SerializedDatasetRef]]:
    """One quantum reading ``inputs`` and writing ``outputs`` datasets, as its butler would record it."""
    qid = uuid.uuid4()
    visit, detector = divmod(index, 100)
    out = [_ref(uuid.uuid4(), f"level{level}_{k}", run, visit, detector) for k in range(outputs)]
    records = {
        ref.id.hex: {
            "file_datastore_records": [
                {
                    "formatter": FORMATTER,
                    "path": f"{run}/level{level}/{ref.id}.json",
                    "storage_class": "StructuredDataDict",
                    "component": "__NULL_STRING__",
                    "checksum": "CRC32C:AAAAAA==",
                    "file_size": 1000,
                }
            ]
        }
        for ref in out
    }
    in_ids = [r.id for r in inputs]
    provenance = QuantumProvenanceData.direct(
        predicted_inputs=in_ids,
        available_inputs=in_ids,
        actual_inputs=in_ids,
        predicted_outputs=[r.id for r in out],
        actual_outputs=[r.id for r in out],
        datastore_records={
            "S3Datastore": {
                "dataset_ids": [str(r.id) for r in out],
                "records": {"lsst.daf.butler.datastore.stored_file_info.StoredFileInfo": records},
            }
        },
    )
    report = QuantumExecutionReport(
        quantum_id=qid,
        task_label=f"task{level}",
        task_name=f"bench.task{level}",
        run=run,
        status="succeeded",
        started_at=T0,
        ended_at=T0 + datetime.timedelta(seconds=1),
        duration_s=1.0,
        host="bench",
        pid=1,
        s3qbb_version="0",
        python_version="3",
        refs=[*inputs, *out],
    )
    return qid, provenance, report, out


def fill_registry(
    registry: Registry,
    datasets: int,
    levels: int,
    seed: int,
    progress: Callable[[str], None] | None = None,
) -> tuple[list[uuid.UUID], float]:
    """Insert a synthetic pipeline; return the IDs of the last level's datasets and the insert time."""
    rng = random.Random(seed)
    per_level = max(1, datasets // (4 * levels))
    previous: list[SerializedDatasetRef] = []
    insert_s = 0.0
    writer = registry._writer  # the ingest insert path, without S3
    for level in range(levels):
        current: list[SerializedDatasetRef] = []
        batch = []
        for index in range(per_level):
            inputs = rng.sample(previous, 2) if len(previous) >= 2 else []
            qid, provenance, report, out = make_quantum(f"bench/run{level}", level, index, inputs)
            current.extend(out)
            source = f"s3://bench/{provenance_key(report.run, qid)}"
            batch.append(build_rows(QuantumBundle(qid, provenance, report, source), default_run=None))
            if len(batch) == 500 or index == per_level - 1:
                started = time.perf_counter()
                outcome = writer.write(batch)
                insert_s += time.perf_counter() - started
                assert not outcome.failures, outcome.failures[:3]
                batch = []
        previous = current
        if progress is not None:
            progress(f"  level {level}: {per_level} quanta, {len(current)} datasets")
    writer.analyze()  # as ingest_run does after adding quanta
    return [r.id for r in previous], insert_s


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": statistics.median(ordered) * 1e3,
        "p95_ms": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1e3,
        "max_ms": ordered[-1] * 1e3,
        "samples": len(ordered),
    }


def _ms(stats: dict[str, float]) -> str:
    return (
        f"median {stats['median_ms']:6.2f} ms, p95 {stats['p95_ms']:6.2f} ms, max {stats['max_ms']:6.2f} ms"
    )


def query_latency(
    url: str,
    *,
    datasets: int,
    levels: int,
    samples: int,
    seed: int = 1,
    namespace: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Fill a registry with a synthetic pipeline and time provenance and dataset queries.

    Returns the registry's counts, the fill and insert times, and per query the
    median, p95 and maximum latency (``provenance_depth_<d>`` for depth 1 and
    the full depth, ``datasets_by_data_id``).
    """
    with Registry.from_url(url, namespace=namespace) as registry:
        started = time.perf_counter()
        last, insert_s = fill_registry(registry, datasets, levels, seed, progress)
        fill_s = time.perf_counter() - started
        counts = registry.counts()
        result: dict[str, Any] = {
            "datasets": counts["dataset"],
            "quanta": counts["quantum"],
            "edges": counts["quantum_dataset"],
            "levels": levels,
            "fill_s": fill_s,
            "insert_s": insert_s,
            "quanta_per_s": counts["quantum"] / insert_s if insert_s else math.nan,
            "queries": {},
        }
        rng = random.Random(seed + 1)
        targets = rng.sample(last, min(samples, len(last)))
        for depth in sorted({1, levels}):
            registry.provenance(targets[0], depth=depth)  # warm-up
            times = []
            sizes = []
            for dataset_id in targets:
                t = time.perf_counter()
                tree = registry.provenance(dataset_id, depth=depth)
                times.append(time.perf_counter() - t)
                sizes.append(len(tree.datasets))
            result["queries"][f"provenance_depth_{depth}"] = _stats(times) | {
                "depth": depth,
                "datasets_per_tree": statistics.mean(sizes),
            }
        times = []
        found: list[Any] = []
        for _ in range(samples // 4 or 1):
            t = time.perf_counter()
            found = registry.datasets(run="bench/run0", data_id={"visit": 0, "detector": rng.randrange(100)})
            times.append(time.perf_counter() - t)
        result["queries"]["datasets_by_data_id"] = _stats(times) | {"rows": len(found)}
    return result


def bench_queries(url: str, label: str, args: argparse.Namespace, namespace: str | None) -> None:
    """Fill a registry, time provenance and dataset queries, and print the results."""
    print(f"\n== {label}: filling with ~{args.datasets} datasets in {args.levels} levels")
    r = query_latency(
        url,
        datasets=args.datasets,
        levels=args.levels,
        samples=args.samples,
        seed=args.seed,
        namespace=namespace,
        progress=lambda line: print(line, file=sys.stderr),
    )
    print(
        f"   {r['datasets']} datasets, {r['quanta']} quanta, {r['edges']} edges "
        f"in {r['fill_s']:.1f} s (inserts {r['insert_s']:.1f} s: {r['quanta_per_s']:.0f} quanta/s)"
    )
    for name, q in r["queries"].items():
        if name.startswith("provenance"):
            verdict = "OK" if q["median_ms"] < 50 else "SLOWER THAN 50 ms"
            print(
                f"   provenance depth {q['depth']:2d} ({q['datasets_per_tree']:5.1f} datasets per tree): "
                f"{_ms(q)}  [{verdict}]"
            )
        else:
            print(f"   datasets(run, data_id) ({q['rows']} rows): {_ms(q)}")


# --- ingest throughput --------------------------------------------------------------------------


def _records_file(provenance: QuantumProvenanceData) -> bytes:
    """The SQLite records file a butler uploads beside this provenance (ingest checks the two agree)."""
    from s3qbb.records.store import SqliteRecordsStore

    ((name, data),) = provenance.datastore_record_data().items()
    with tempfile.TemporaryDirectory() as tmp, SqliteRecordsStore(datastore_name=name) as store:
        store.import_records(data)
        return store.flush_to_file(Path(tmp) / "records.sqlite3").read_bytes()


def ingest_throughput(
    server: S3TestServer, *, quanta: int, trials: int, seed: int = 1, workers: int = 16
) -> dict[str, Any]:
    """Time `Registry.ingest_run` against raw boto3 downloading the same files, on a running server.

    ``quanta`` quanta's records, provenance and report files are written to a fresh
    bucket; then, per trial and in alternating order, ``ingest_run`` fills a
    new SQLite registry and raw boto3 lists the run's records prefix and GETs
    every file with ``workers`` threads (no parsing). Requests are counted on
    both clients.
    """
    from s3qbb.s3 import make_client
    from s3qbb.testing.faults import RequestCounter

    endpoint = server.endpoint("registry-bench")
    client, bucket = endpoint.client, endpoint.bucket
    run = "bench/ingest"
    rng = random.Random(seed)
    inputs = [_ref(uuid.uuid4(), "raw", "bench/raw", 0, i) for i in range(100)]
    written = 0

    def put(item: tuple[str, bytes]) -> None:
        client.put_object(Bucket=bucket, Key=item[0], Body=item[1])

    files = []
    for index in range(quanta):
        qid, provenance, report, _ = make_quantum(run, 1, index, rng.sample(inputs, 2))
        files.append((f"repo/{records_key(run, qid)}", _records_file(provenance)))
        files.append((f"repo/{provenance_key(run, qid)}", provenance.to_json()))
        files.append((f"repo/{report_key(run, qid)}", report.to_json()))
        written += sum(len(body) for _, body in files[-3:])
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(put, files))
    uri = f"s3://{bucket}/repo/{run}/"

    def raw_boto3() -> float:
        started = time.perf_counter()
        keys = [
            item["Key"]
            for page in client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=f"repo/{run}/_records/"
            )
            for item in page.get("Contents", [])
        ]
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda k: client.get_object(Bucket=bucket, Key=k)["Body"].read(), keys))
        return time.perf_counter() - started

    sides = ("boto3", "s3qbb")
    times: dict[str, list[float]] = {side: [] for side in sides}
    counters = {"boto3": RequestCounter(client), "s3qbb": RequestCounter(make_client(endpoint.config))}
    requests: dict[str, Counter[str]] = {side: Counter() for side in sides}
    try:
        for trial in range(trials):
            with tempfile.TemporaryDirectory() as tmp:
                registry = Registry.from_url(Path(tmp) / "ingest.sqlite3")
                for side in sides if trial % 2 == 0 else sides[::-1]:
                    before = counters[side].requests
                    if side == "boto3":
                        times[side].append(raw_boto3())
                    else:
                        summary = registry.ingest_run(uri, config=endpoint.config)
                        assert summary.quanta_added == quanta and not summary.failures
                        times[side].append(summary.elapsed_s)
                    requests[side].update(counters[side].requests - before)
                registry.close()
    finally:
        for counter in counters.values():
            counter.detach()
    result: dict[str, Any] = {"quanta": quanta, "files": len(files), "bytes": written, "sides": {}}
    for side in sides:
        median = statistics.median(times[side])
        result["sides"][side] = {
            "what": "Registry.ingest_run" if side == "s3qbb" else f"LIST + {workers} threads of GET",
            "trials": len(times[side]),
            "median_s": median,
            "quanta_per_s": quanta / median,
            "mb_per_s": written / median / 1e6,
            "requests_per_trial": requests[side].total() / trials,
            "requests": {k: v / trials for k, v in sorted(requests[side].items())},
        }
    result["ratio"] = result["sides"]["s3qbb"]["median_s"] / result["sides"]["boto3"]["median_s"]
    return result


def bench_ingest(args: argparse.Namespace) -> None:
    """Time Registry.ingest_run against raw boto3 downloads of the same files, and print the results."""
    from benchmarks.servers import make_server

    print(f"\n== ingest of {args.ingest_quanta} quanta from {args.server} (16 workers, batches of 200)")
    server = make_server(args.server).start()
    try:
        r = ingest_throughput(server, quanta=args.ingest_quanta, trials=args.trials, seed=args.seed)
    finally:
        server.stop()
    for side, label in (("boto3", "raw boto3 (list + GET)"), ("s3qbb", "s3qbb ingest")):
        s = r["sides"][side]
        ratio = s["median_s"] / r["sides"]["boto3"]["median_s"]
        print(
            f"   {label:24s} median {s['median_s']:6.2f} s  {s['quanta_per_s']:7.0f} quanta/s  "
            f"{s['mb_per_s']:6.1f} MB/s  x{ratio:.2f} of raw boto3  "
            f"({s['requests_per_trial']:.0f} requests)"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the registry benchmarks and print their results."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.registry_bench", description=__doc__)
    parser.add_argument("--datasets", type=int, default=100_000, help="datasets in the query registry")
    parser.add_argument("--levels", type=int, default=5, help="pipeline levels (provenance depth)")
    parser.add_argument("--samples", type=int, default=200, help="provenance queries timed per depth")
    parser.add_argument("--postgres", help="also benchmark PostgreSQL at this URL (a temporary schema)")
    parser.add_argument(
        "--ingest-quanta", type=int, default=1000, help="quanta for the ingest benchmark (0: skip)"
    )
    parser.add_argument(
        "--server", default="moto", help="S3 server for the ingest benchmark (moto, seaweedfs)"
    )
    parser.add_argument("--trials", type=int, default=3, help="ingest trials")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        bench_queries(str(Path(tmp) / "bench.sqlite3"), "SQLite", args, None)
    if args.postgres:
        import sqlalchemy as sa

        namespace = f"s3qbb_bench_{uuid.uuid4().hex[:8]}"
        try:
            bench_queries(args.postgres, "PostgreSQL", args, namespace)
        finally:
            engine = sa.create_engine(parse_registry_url(args.postgres))
            with engine.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{namespace}" CASCADE')
            engine.dispose()
    if args.ingest_quanta:
        bench_ingest(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
