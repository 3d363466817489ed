"""``python -m benchmarks.report_all``: every benchmark, on moto and SeaweedFS, in one report.

One command runs, for each server (started here on 127.0.0.1, free ports,
stopped at the end):

* what users run (`benchmarks.shipped`): the shipped default butler, the
  cache-off butler, the bare S3Datastore and the obstore transport against raw
  boto3 and raw obstore: small put and cold get, 64 MiB put and get, peak RSS;
* cold start to first put and the cost of one ``s3qbb run-quantum`` job, in
  fresh processes (`benchmarks.job_start`);
* the ``stored_many`` and ``many`` cases of ``python -m benchmarks``
  (`benchmarks.s3_datastore`);
* the sweeps of `benchmarks.sweeps`: throughput against object size and
  against concurrency;
* the cache tier and provenance extraction of `benchmarks.qbb`;
* the ingest benchmark of `benchmarks.registry_bench`;

and once, since they make no request: the cold start and construction figures
of `benchmarks.qbb` and the registry query latency of
`benchmarks.registry_bench` (SQLite; PostgreSQL too with ``--postgres``).
Every comparison with plain boto3 is made in the same run on the same server,
trials interleaved (`benchmarks.harness`).

It writes into ``--out`` (``docs/perf/`` by default; the file names carry no
date, so a new run replaces the previous one):

* ``report.md``: the summary (what users run against the raw SDKs), the plots,
  the targets of issue 13 (PASS / MISS, with the measured floors), the other
  targets, then a table per case and the machine; ``docs/performance.rst``
  includes it;
* ``results.json``: everything measured;
* ``shipped_vs_raw_<server>.png``, ``throughput_vs_size_<server>.png``,
  ``throughput_vs_concurrency_<server>.png`` and ``speed_vs_boto3.png``.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .report import Target, _clean
from .s3_datastore import Counts
from .servers import REPO_ROOT, machine_busy_seconds, own_cpu_seconds
from .shipped import ShippedCounts
from .sweeps import SweepCounts

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from s3qbb.testing.servers import S3TestServer

__all__ = ["DEFAULT_OUT", "ReportCounts", "machine_info", "main", "run_report"]

DEFAULT_OUT = REPO_ROOT / "docs" / "perf"
"""Where the report goes by default (committed: ``docs/performance.rst`` includes it)."""

SERVERS = ("moto", "seaweedfs")

DATASTORE_CASES = ("stored_many", "many")
"""Cases of `benchmarks.s3_datastore` the report runs (small, large, memory: see `benchmarks.shipped`)."""

_PLOT_PATTERNS = (
    "shipped_vs_raw_*.png",
    "throughput_vs_size_*.png",
    "throughput_vs_concurrency_*.png",
    "speed_vs_boto3.png",
)


@dataclass(frozen=True)
class ReportCounts:
    """How much work every part of the report does."""

    users: ShippedCounts = field(default_factory=ShippedCounts)
    job_start_repeats: int = 5
    datastore: Counts = field(default_factory=Counts)
    sweeps: SweepCounts = field(default_factory=SweepCounts)
    cold_start_repeats: int = 7
    construction_repeats: int = 300
    cache_ops: int = 500
    cache_trials: int = 5
    provenance_outputs: int = 500
    provenance_repeats: int = 200
    ingest_quanta: int = 1000
    ingest_trials: int = 3
    registry_datasets: int = 100_000
    registry_levels: int = 5
    registry_samples: int = 200

    @classmethod
    def quick(cls) -> ReportCounts:
        """Tiny counts: every part runs (the smoke test), nothing is measured seriously."""
        return cls(
            users=ShippedCounts.quick(),
            job_start_repeats=1,
            datastore=Counts.tiny(),
            sweeps=SweepCounts.quick(),
            cold_start_repeats=1,
            construction_repeats=20,
            cache_ops=20,
            cache_trials=2,
            provenance_outputs=20,
            provenance_repeats=3,
            ingest_quanta=10,
            ingest_trials=1,
            registry_datasets=600,
            registry_levels=3,
            registry_samples=8,
        )


# ---------------------------------------------------------------- machine


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _ram_gib() -> float:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        return float("nan")


def _os_name() -> str:
    pretty = ""
    try:
        with open("/etc/os-release") as release:
            for line in release:
                if line.startswith("PRETTY_NAME="):
                    pretty = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    kernel = f"{platform.system()} {platform.release()} {platform.machine()}"
    return f"{pretty} ({kernel})" if pretty else kernel


def machine_info() -> dict[str, Any]:
    """CPU model, cores, RAM, OS and Python of this machine."""
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": _ram_gib(),
        "os": _os_name(),
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
    }


def seaweedfs_version() -> str | None:
    """The version ``weed version`` reports (``4.48``), or `None` without a ``weed`` executable."""
    from s3qbb.testing.servers import find_weed_binary

    binary = find_weed_binary()
    if binary is None:
        return None
    try:
        done = subprocess.run(
            [str(binary), "version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in done.stdout.splitlines():
        words = line.split()
        if words[:1] == ["version"]:
            # "version 8000GB 4.48 pypi linux amd64": the number is the first word with a dot.
            return next((w for w in words[1:] if "." in w), " ".join(words[1:]))
    return None


# ------------------------------------------------------------------- runs


def _local(counts: ReportCounts, postgres: str | None, say: Callable[[str], None]) -> dict[str, Any]:
    """The figures that make no request: cold start, construction, registry queries."""
    from . import qbb, registry_bench

    local: dict[str, Any] = {}
    began = time.perf_counter()
    local["cold_start"] = qbb.cold_start(counts.cold_start_repeats)
    local["construction"] = qbb.construction(counts.construction_repeats)
    say(f"cold start and construction: {time.perf_counter() - began:.1f} s")
    queries: dict[str, Any] = {}
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="s3qbb-report-") as tmp:
        queries["SQLite"] = registry_bench.query_latency(
            str(Path(tmp) / "bench.sqlite3"),
            datasets=counts.registry_datasets,
            levels=counts.registry_levels,
            samples=counts.registry_samples,
        )
    elapsed = time.perf_counter() - began
    say(f"registry queries (SQLite, {counts.registry_datasets} datasets): {elapsed:.1f} s")
    if postgres:
        import uuid

        import sqlalchemy as sa

        from s3qbb.registry.database import parse_registry_url

        namespace = f"s3qbb_report_{uuid.uuid4().hex[:8]}"
        began = time.perf_counter()
        try:
            queries["PostgreSQL"] = registry_bench.query_latency(
                postgres,
                datasets=counts.registry_datasets,
                levels=counts.registry_levels,
                samples=counts.registry_samples,
                namespace=namespace,
            )
        finally:
            engine = sa.create_engine(parse_registry_url(postgres))
            with engine.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{namespace}" CASCADE')
            engine.dispose()
        say(f"registry queries (PostgreSQL): {time.perf_counter() - began:.1f} s")
    local["registry_queries"] = queries
    return local


def _server_run(server: S3TestServer, counts: ReportCounts, say: Callable[[str], None]) -> dict[str, Any]:
    """Every per-server part of the report, against one running server."""
    from . import qbb, registry_bench
    from .job_start import job_start
    from .run import run_server
    from .s3_datastore import BenchContext
    from .shipped_cases import run_shipped
    from .sweeps import concurrency_sweep, size_sweep

    kind = server.name
    data: dict[str, Any] = {"endpoint_url": server.endpoint_url, "stage_s": {}}

    def stage(name: str, fn: Callable[[], Any]) -> None:
        began = time.perf_counter()
        data[name] = fn()
        data["stage_s"][name] = elapsed = time.perf_counter() - began
        say(f"[{kind}] {name}: {elapsed:.1f} s")

    stage("users", lambda: run_shipped(server, counts.users, say))
    quick = counts.job_start_repeats <= 1
    stage("job_start", lambda: job_start(server, counts.job_start_repeats, warmup=not quick, progress=say))
    stage("datastore", lambda: run_server(server, counts.datastore, list(DATASTORE_CASES), say))
    ctx = BenchContext(server, counts.datastore)
    try:
        stage("size_sweep", lambda: size_sweep(ctx, counts.sweeps, say))
        stage("concurrency_sweep", lambda: concurrency_sweep(ctx, counts.sweeps, say))
    finally:
        ctx.close()
    stage("cache", lambda: qbb.cache_hit(counts.cache_ops, server, trials=counts.cache_trials))
    stage(
        "provenance",
        lambda: qbb.provenance(counts.provenance_outputs, server, repeats=counts.provenance_repeats),
    )
    stage(
        "ingest",
        lambda: registry_bench.ingest_throughput(
            server, quanta=counts.ingest_quanta, trials=counts.ingest_trials
        ),
    )
    return data


def _targets(results: dict[str, Any]) -> tuple[list[Target], list[Target]]:
    """The targets of issue 13, then the others (request budget, registry, ingest, construction)."""
    from . import qbb
    from .goals import issue_targets

    targets: list[Target] = []
    others: list[Target] = []
    local = results["local"]
    others.extend(
        qbb.evaluate_targets({k: local[k] for k in ("cold_start", "construction") if k in local}, "-")
    )
    for backend, q in local.get("registry_queries", {}).items():
        for name, stats in q["queries"].items():
            if name.startswith("provenance"):
                value = stats["median_ms"]
                others.append(
                    Target(
                        backend,
                        "registry_query",
                        f"provenance depth {stats['depth']}, {q['datasets']:,} datasets (ms)",
                        value,
                        "<=",
                        50,
                        value <= 50,
                        f"p95 {stats['p95_ms']:.1f} ms",
                    )
                )
    for kind, data in results["servers"].items():
        targets.extend(issue_targets(kind, data))
        users = data.get("users", {}).get("cases", {})
        for name, operation in (("small_put", "PutObject"), ("small_get", "GetObject")):
            if name in users:
                shipped = users[name]["sides"]["shipped"]
                only = set(shipped["requests"]) == {operation}
                breakdown = ", ".join(f"{k} {v:g}" for k, v in shipped["requests"].items())
                value = shipped["requests_per_op"] if only else math.nan
                others.append(
                    Target(
                        kind, name, "shipped default requests/op", value, "==", 1.0, value == 1.0, breakdown
                    )
                )
        stored_many = data.get("datastore", {}).get("cases", {}).get("stored_many")
        if stored_many:
            value = stored_many["ratios"]["s3qbb"]["time"]
            others.append(
                Target(kind, "stored_many", "time / boto3 list (median)", value, "<=", 1.2, value <= 1.2)
            )
        ingest = data.get("ingest")
        if ingest:
            value = ingest["ratio"]
            others.append(
                Target(kind, "ingest", "ingest_run / raw boto3 (median time)", value, "<=", 1.5, value <= 1.5)
            )
    return targets, others


def run_report(
    out: Path = DEFAULT_OUT,
    servers: Sequence[str] = SERVERS,
    *,
    counts: ReportCounts | None = None,
    quick: bool = False,
    postgres: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run every benchmark and write ``report.md``, ``results.json`` and the plots into ``out``.

    Parameters
    ----------
    out : `pathlib.Path`
        Output directory (created if needed).
    servers : `~collections.abc.Sequence` [`str`]
        Server kinds, in order: ``"moto"``, ``"seaweedfs"``.
    counts : `ReportCounts`, optional
        Work sizes; `ReportCounts.quick` if ``quick`` else the defaults.
    quick : `bool`, optional
        Tiny counts (recorded in the report).
    postgres : `str`, optional
        Also time registry queries on this PostgreSQL URL (in a temporary schema).
    progress : `~collections.abc.Callable` [[`str`], `None`], optional
        Where progress lines go (stderr by default).

    Returns
    -------
    results : `dict`
        What ``results.json`` holds, with ``files``: the paths written.
    """
    from s3qbb.s3.client import clear_client_cache

    from .plots import write_plots
    from .report_md import render
    from .run import _metadata
    from .servers import make_server

    unknown = sorted(set(servers) - set(SERVERS))
    if unknown or not servers:
        raise ValueError(f"unknown server(s) {unknown}; choose from {', '.join(SERVERS)}")
    counts = counts or (ReportCounts.quick() if quick else ReportCounts())
    began = time.perf_counter()
    started_at = time.time()

    loads: list[float] = []

    def say(line: str) -> None:
        loads.append(os.getloadavg()[0])  # sampled at every progress line: the peak goes in the report
        text = f"[{time.perf_counter() - began:6.1f} s] {line}"
        if progress is None:
            print(text, file=sys.stderr, flush=True)
        else:
            progress(text)

    meta = _metadata(counts.datastore, quick, list(DATASTORE_CASES), list(servers))
    meta.update(
        generated_by="python -m benchmarks.report_all",
        date_utc=datetime.datetime.fromtimestamp(started_at, datetime.UTC).strftime("%Y-%m-%d %H:%M"),
        machine=machine_info(),
        seaweedfs_version=seaweedfs_version() if "seaweedfs" in servers else None,
        loadavg_start=list(os.getloadavg()),
        counts=_clean(dataclasses.asdict(counts)),
    )
    cores = os.cpu_count() or 1
    say(f"{meta['machine']['cpu_model']}, {cores} cores, load average {meta['loadavg_start'][0]:.2f}")
    if meta["loadavg_start"][0] > 0.5 * cores:
        say("warning: other processes are busy on this machine; expect noisy figures")
    busy_start, own_start = machine_busy_seconds(), own_cpu_seconds()
    results: dict[str, Any] = {"meta": meta, "local": _local(counts, postgres, say), "servers": {}}
    for kind in servers:
        server = make_server(kind)
        t0 = time.perf_counter()
        server.start()
        say(f"[{kind}] started in {time.perf_counter() - t0:.1f} s at {server.endpoint_url}")
        try:
            results["servers"][kind] = _server_run(server, counts, say)
        finally:
            clear_client_cache()
            server.stop()
    meta["loadavg_end"] = list(os.getloadavg())
    meta["loadavg_1min_max"] = max([*loads, meta["loadavg_end"][0]])
    meta["duration_s"] = time.perf_counter() - began
    # The benchmark's own load (client and servers) is in the load average: what others used is
    # the machine's busy time minus ours (the servers are children, counted once stopped).
    others = (machine_busy_seconds() - busy_start) - (own_cpu_seconds() - own_start)
    meta["other_processes_cores"] = max(0.0, others / meta["duration_s"]) if math.isfinite(others) else None
    targets, other_targets = _targets(results)

    out.mkdir(parents=True, exist_ok=True)
    plots = write_plots(results, out)
    stale = [
        path for pattern in _PLOT_PATTERNS for path in out.glob(pattern) if path not in plots
    ]  # plots of servers not run this time: they would not match the report
    for path in stale:
        path.unlink()
        say(f"removed {path} (not produced by this run)")
    payload = {
        **results,
        "targets": [dataclasses.asdict(t) for t in targets],
        "other_targets": [dataclasses.asdict(t) for t in other_targets],
    }
    json_path = out / "results.json"
    json_path.write_text(json.dumps(_clean(payload), indent=1) + "\n")
    md_path = out / "report.md"
    md_path.write_text(render(_clean(payload), targets, [p.name for p in plots], other_targets))
    say(f"wrote {md_path}, {json_path} and {len(plots)} plots in {meta['duration_s']:.0f} s")
    payload["files"] = [md_path, json_path, *plots]
    return payload


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m benchmarks.report_all [--out DIR] [--quick] [--servers moto,seaweedfs]``."""
    import argparse

    from .report import format_targets

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.report_all",
        description="Run every benchmark on moto and SeaweedFS; write report.md, results.json and plots.",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="output directory (default: docs/perf/)"
    )
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated: moto, seaweedfs")
    parser.add_argument(
        "--quick", action="store_true", help="tiny counts: checks that everything runs (moto only: < 60 s)"
    )
    parser.add_argument("--postgres", metavar="URL", help="also time registry queries on this PostgreSQL")
    args = parser.parse_args(argv)
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    try:
        payload = run_report(args.out, servers, quick=args.quick, postgres=args.postgres)
    except ValueError as err:
        parser.error(str(err))
    targets = [Target(**t) for t in payload["targets"]]
    print(format_targets(targets))
    print()
    print(
        format_targets([Target(**t) for t in payload["other_targets"]]).replace(
            "== targets ==", "== other targets =="
        )
    )
    print()
    for path in payload["files"]:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
