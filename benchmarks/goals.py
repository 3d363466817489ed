"""The targets of issue 13 ("what users run"), measured on one server's results of `benchmarks.report_all`.

Each target compares the shipped default butler (or its obstore transport)
with raw boto3 or raw obstore in the same run. Its *detail* gives the figures
behind the ratio and the measured floor under it: what the cache-off butler
and the bare datastore cost, and what the raw SDK itself costs, so that a
MISS shows what stands in the way. A target whose side could not run
(the obstore transport missing, say) has no measurement and says why.
"""

from __future__ import annotations

import math
from typing import Any

from .job_start import describe_imports
from .report import Target, duration

__all__ = ["issue_targets"]


def _x(value: Any) -> str:
    return f"{value:.2f}x" if isinstance(value, int | float) and math.isfinite(value) else "-"


def _mib_s(side: dict[str, Any]) -> str:
    value = side.get("throughput_mib_s")
    return f"{value:,.0f} MiB/s" if isinstance(value, int | float) and math.isfinite(value) else "-"


def _cpu_share(side: dict[str, Any]) -> str:
    """Client CPU as a share of wall time, ``"32% CPU"``."""
    wall, cpu = side.get("wall_median_s"), side.get("cpu_median_s")
    if not wall or cpu is None or not math.isfinite(wall) or not math.isfinite(cpu):
        return "-"
    return f"{100 * cpu / wall:.0f}% CPU"


def _signed(seconds: float) -> str:
    return ("+" if seconds >= 0 else "-") + duration(abs(seconds))


def _cpu_breakdown(sides: dict[str, Any]) -> str:
    """Where the shipped default's extra client CPU goes: datastore, butler, cache tier (medians)."""
    cpu = {side: s["cpu_median_s"] for side, s in sides.items()}
    if not {"shipped", "cache_off", "datastore", "boto3"} <= set(cpu):
        return ""
    return (
        f"bare datastore {_signed(cpu['datastore'] - cpu['boto3'])}, "
        f"butler {_signed(cpu['cache_off'] - cpu['datastore'])}, "
        f"cache tier {_signed(cpu['shipped'] - cpu['cache_off'])}"
    )


class _Adder:
    def __init__(self, server: str) -> None:
        self.server = server
        self.targets: list[Target] = []

    def __call__(
        self, case: str, metric: str, value: float, comparison: str, limit: float, detail: str = ""
    ) -> None:
        finite = isinstance(value, int | float) and math.isfinite(value)
        passed = finite and (value <= limit if comparison == "<=" else value >= limit)
        self.targets.append(
            Target(
                self.server, case, metric, value if finite else math.nan, comparison, limit, passed, detail
            )
        )

    def unavailable(self, case: str, metric: str, comparison: str, limit: float, why: str) -> None:
        self.targets.append(
            Target(self.server, case, metric, math.nan, comparison, limit, False, f"not available: {why}")
        )


def _small(add: _Adder, cases: dict[str, Any]) -> None:
    for name, label in (("small_put", "small put"), ("small_get", "small get (cold cache)")):
        case = cases.get(name)
        if case is None:
            continue
        sides, ratios = case["sides"], case["ratios"]
        shipped, boto3 = sides["shipped"], sides["boto3"]
        variants = ", ".join(
            f"{what} {_x(ratios[side]['time'])} time, {_x(ratios[side]['cpu'])} CPU"
            for side, what in (("cache_off", "cache off"), ("datastore", "bare datastore"))
            if side in ratios
        )
        add(
            name,
            f"shipped default {label}: time / raw boto3",
            ratios["shipped"]["time"],
            "<=",
            1.10,
            f"{duration(shipped['wall_median_s'])} vs {duration(boto3['wall_median_s'])}; {variants}",
        )
        add(
            name,
            f"shipped default {label}: client CPU / raw boto3",
            ratios["shipped"]["cpu"],
            "<=",
            1.25,
            f"{duration(shipped['cpu_median_s'])} vs {duration(boto3['cpu_median_s'])} "
            f"(raw boto3's own: {_cpu_share(boto3)} of its time); {_cpu_breakdown(sides)}",
        )
        obstore_metric = f"obstore transport {label}"
        why = case.get("unavailable", {}).get("obstore") or case.get("unavailable", {}).get("obstore_raw")
        if why or "obstore" not in sides or "obstore_raw" not in sides:
            add.unavailable(name, f"{obstore_metric}: time / raw obstore", "<=", 1.15, why or "not measured")
            add.unavailable(
                name, f"{obstore_metric}: client CPU / raw boto3", "<=", 0.4, why or "not measured"
            )
            continue
        vs_obstore = case["ratios_vs_obstore"]
        raw = sides["obstore_raw"]
        add(
            name,
            f"{obstore_metric}: time / raw obstore",
            vs_obstore["obstore"]["time"],
            "<=",
            1.15,
            f"{duration(sides['obstore']['wall_median_s'])} vs {duration(raw['wall_median_s'])}; "
            f"vs raw boto3 {_x(ratios['obstore']['time'])} (raw obstore {_x(ratios['obstore_raw']['time'])})",
        )
        add(
            name,
            f"{obstore_metric}: client CPU / raw boto3",
            ratios["obstore"]["cpu"],
            "<=",
            0.4,
            f"{duration(sides['obstore']['cpu_median_s'])} vs {duration(boto3['cpu_median_s'])} "
            f"(floor: raw obstore {_x(ratios['obstore_raw']['cpu'])}, {duration(raw['cpu_median_s'])})",
        )


def _large(add: _Adder, cases: dict[str, Any]) -> None:
    for name, op in (("large_put", "put"), ("large_get", "get")):
        case = cases.get(name)
        if case is None:
            continue
        sides = case["sides"]
        size = case["what"].split(" ", 2)
        label = f"{size[0]} {size[1]} {op}"
        boto3 = sides["boto3"]
        others = ", ".join(
            f"{what} {_mib_s(sides[side])}"
            for side, what in (
                ("cache_off", "cache off"),
                ("datastore", "bare datastore"),
                ("obstore_raw", "raw obstore"),
            )
            if side in sides
        )
        add(
            name,
            f"shipped default {label}: throughput / transfer manager",
            sides["shipped"]["throughput_mib_s"] / boto3["throughput_mib_s"],
            ">=",
            1.0,
            f"{_mib_s(sides['shipped'])} vs {_mib_s(boto3)}; {others}",
        )
        metric = f"obstore transport {label}: throughput / raw obstore"
        why = case.get("unavailable", {}).get("obstore") or case.get("unavailable", {}).get("obstore_raw")
        if why or "obstore" not in sides or "obstore_raw" not in sides:
            add.unavailable(name, metric, ">=", 1.0, why or "not measured")
            continue
        add(
            name,
            metric,
            sides["obstore"]["throughput_mib_s"] / sides["obstore_raw"]["throughput_mib_s"],
            ">=",
            1.0,
            f"{_mib_s(sides['obstore'])} vs {_mib_s(sides['obstore_raw'])}",
        )


def _memory(add: _Adder, cases: dict[str, Any]) -> None:
    memory = cases.get("memory")
    if memory is None:
        return
    sides = memory["sides"]
    shipped, boto3 = sides["shipped"], sides["boto3"]
    add(
        "memory",
        "shipped default peak RSS / raw boto3 process",
        memory["ratios"]["shipped"]["maxrss"],
        "<=",
        1.3,
        f"{shipped['maxrss_kib'] / 1024:.0f} vs {boto3['maxrss_kib'] / 1024:.0f} MiB; "
        + ", ".join(
            f"{what} {sides[side]['maxrss_kib'] / 1024:.0f} MiB"
            for side, what in (
                ("datastore", "bare datastore"),
                ("obstore", "obstore transport"),
                ("obstore_raw", "raw obstore"),
            )
            if side in sides
        )
        + f"; growth after the first import {shipped['growth_kib'] / 1024:.0f} vs "
        f"{boto3['growth_kib'] / 1024:.0f} MiB (s3qbb loads boto3, SQLAlchemy and pydantic at first use)",
    )


def _job_start(add: _Adder, job: dict[str, Any]) -> None:
    variants = job["variants"]
    metric = "obstore transport: job start to first put / raw boto3 script"
    target = variants["run_quantum_obstore"]
    if not target.get("available"):
        add.unavailable("job_start", metric, "<=", 0.3, target.get("why", "not measured"))
        return
    floors = ", ".join(
        f"{what} {_x(variants[v].get('start_to_put_vs_boto3'))}"
        for v, what in (
            ("obstore_script", "raw obstore script"),
            ("python", "python alone"),
            ("libraries", "pydantic, click, PyYAML and obstore imported alone"),
            ("config_models", "s3qbb's pydantic configuration models alone"),
            ("run_quantum", "boto3 transport"),
        )
        if variants.get(v, {}).get("available")
    )
    add(
        "job_start",
        metric,
        target["start_to_put_vs_boto3"],
        "<=",
        0.3,
        f"{duration(target['start_to_put_s'])} vs {duration(variants['boto3_script']['start_to_put_s'])}; "
        f"floors: {floors}" + (f"; {describe_imports(target['imports'])}" if target.get("imports") else ""),
    )


def _many(add: _Adder, cases: dict[str, Any]) -> None:
    for name in ("many_put", "many_get"):
        case = cases.get(name)
        if case is None:
            continue
        extra = case["extra"]
        speedup = 1.0 / case["ratios"]["s3qbb"]["time"]
        ceiling = extra.get("machine_speedup_ceiling", math.nan)
        add(
            name,
            f"{case['what']} concurrently: speed-up / CPU-bound ceiling",
            speedup / ceiling if ceiling else math.nan,
            ">=",
            0.9,
            f"{speedup:.2f}x over sequential boto3; ceiling {ceiling:.2f}x at raw boto3's CPU per request, "
            f"{extra.get('s3qbb_cpu_speedup_ceiling', math.nan):.2f}x at s3qbb's"
            + _threaded_floor(case, ceiling),
        )


def _threaded_floor(case: dict[str, Any], ceiling: float) -> str:
    """The detail of raw boto3 from a thread pool of the same size (the floor under a many_* target)."""
    threaded = case["ratios"].get("boto3_threads")
    if threaded is None:
        return ""
    speedup = 1.0 / threaded["time"]
    threads = case["extra"].get("s3qbb_max_workers", "?")
    return (
        f"; floor: raw boto3 from {threads} threads {speedup:.2f}x "
        f"({speedup / ceiling if ceiling else math.nan:.2f} of the ceiling)"
    )


def issue_targets(server: str, data: dict[str, Any]) -> list[Target]:
    """Return the targets of issue 13 measured in one server's results (absent parts are skipped).

    Parameters
    ----------
    server : `str`
        Server name (``moto``, ``seaweedfs``).
    data : `dict`
        That server's results: ``users`` (`benchmarks.shipped_cases.run_shipped`),
        ``job_start`` (`benchmarks.job_start.job_start`), ``datastore``
        (the ``many`` cases), ``cache`` and ``provenance`` (`benchmarks.qbb`).
    """
    from . import qbb

    add = _Adder(server)
    users = data.get("users", {}).get("cases", {})
    _small(add, users)
    _large(add, users)
    _memory(add, users)
    if data.get("job_start"):
        _job_start(add, data["job_start"])
    targets = add.targets
    if "cache" in data:
        targets += qbb.evaluate_targets({"cache_hit": data["cache"]}, server)
    if "provenance" in data:
        targets += qbb.evaluate_targets({"provenance": data["provenance"]}, server)
    many = _Adder(server)
    _many(many, data.get("datastore", {}).get("cases", {}))
    return targets + many.targets
