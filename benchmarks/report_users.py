"""Markdown of the "what users run" parts of the report: summary, per-side details, job start.

Used by `benchmarks.report_md`; the figures come from `benchmarks.shipped`
(``servers.<server>.users``) and `benchmarks.job_start`
(``servers.<server>.job_start``).
"""

from __future__ import annotations

import math
from typing import Any

from .report import duration
from .shipped import SIDE_LABELS

__all__ = ["details", "job_details", "summary"]

_COLUMNS = ("shipped", "cache_off", "datastore", "obstore", "boto3", "obstore_raw")
_ORDER = (*_COLUMNS, "boto3_default")
_NA = "n/a"


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _x(value: Any) -> str:
    return f"{value:.2f}x" if _finite(value) else "-"


def _mib(value: Any) -> str:
    return f"{value:,.0f}" if _finite(value) else "-"


def _table(header: list[str], rows: list[list[str]], align: str) -> list[str]:
    from .report_md import table

    return table(header, rows, align)


def _requests(breakdown: dict[str, float] | None, counted: Any = 1.0) -> str:
    from .report_md import requests

    if breakdown is None or not _finite(counted):
        return "not counted"
    return requests(breakdown)


def _cell(case: dict[str, Any] | None, side: str, metric: str) -> str:
    """One summary cell: the value, and its ratio to raw boto3 (for every side but raw boto3)."""
    if case is None:
        return "-"
    if side not in case["sides"]:
        return _NA if side in case.get("unavailable", {}) else "-"
    s = case["sides"][side]
    if metric == "time":
        value, ratio = duration(s["wall_median_s"]), case["ratios"][side]["time"]
    elif metric == "cpu":
        value, ratio = duration(s["cpu_median_s"]), case["ratios"][side]["cpu"]
    else:  # throughput
        reference = case["sides"]["boto3"]["throughput_mib_s"]
        value, ratio = f"{_mib(s['throughput_mib_s'])} MiB/s", s["throughput_mib_s"] / reference
    return value if side == "boto3" else f"{value} ({_x(ratio)})"


def _requests_cell(cases: dict[str, Any], side: str) -> str:
    values = []
    for name in ("small_put", "small_get"):
        case = cases.get(name)
        if case is None or side not in case["sides"]:
            return _NA if case is not None and side in case.get("unavailable", {}) else "-"
        values.append(case["sides"][side]["requests_per_op"])
    return " / ".join(f"{v:g}" if _finite(v) else "?" for v in values)


def _memory_cell(cases: dict[str, Any], side: str) -> str:
    memory = cases.get("memory")
    if memory is None:
        return "-"
    if side not in memory["sides"]:
        return _NA if side in memory.get("unavailable", {}) else "-"
    mib = memory["sides"][side]["maxrss_kib"] / 1024
    return f"{mib:.0f} MiB" if side == "boto3" else f"{mib:.0f} MiB ({_x(memory['ratios'][side]['maxrss'])})"


def _server_summary(server: str, data: dict[str, Any]) -> list[str]:
    cases = data.get("users", {}).get("cases", {})
    if not cases:
        return []
    large = cases.get("large_put", {}).get("what", "64 MiB put").split(" put")[0]
    rows = [
        ["small put: time", *(_cell(cases.get("small_put"), s, "time") for s in _COLUMNS)],
        ["small put: client CPU", *(_cell(cases.get("small_put"), s, "cpu") for s in _COLUMNS)],
        ["small get (cold cache): time", *(_cell(cases.get("small_get"), s, "time") for s in _COLUMNS)],
        ["small get (cold cache): client CPU", *(_cell(cases.get("small_get"), s, "cpu") for s in _COLUMNS)],
        [f"{large} put: throughput", *(_cell(cases.get("large_put"), s, "throughput") for s in _COLUMNS)],
        [f"{large} get: throughput", *(_cell(cases.get("large_get"), s, "throughput") for s in _COLUMNS)],
        ["requests per small put / get", *(_requests_cell(cases, s) for s in _COLUMNS)],
        ["peak RSS of a process", *(_memory_cell(cases, s) for s in _COLUMNS)],
    ]
    cache = data.get("cache")
    if cache:
        hit = f"{duration(cache['hit_us'] / 1e6)}, {cache['ratio']:.0f}x faster than a GET"
        rows.append(["cache hit (no request)", hit, *(["-"] * (len(_COLUMNS) - 1))])
    return [
        f"### {server}",
        "",
        *_table(["", *(SIDE_LABELS[s] for s in _COLUMNS)], rows, "l" + "r" * len(_COLUMNS)),
    ]


def _job_summary(servers: dict[str, Any]) -> list[str]:
    jobs = {server: data["job_start"] for server, data in servers.items() if data.get("job_start")}
    if not jobs:
        return []
    from .job_start import VARIANTS

    rows = []
    for variant, label in VARIANTS.items():
        row = [label]
        for job in jobs.values():
            v = job["variants"][variant]
            if not v.get("available"):
                row += [_NA, _NA]
                continue
            ratio = "" if variant == "boto3_script" else f" ({_x(v['start_to_put_vs_boto3'])})"
            row.append(f"{duration(v['start_to_put_s'])}{ratio}")
            row.append(f"{duration(v['job_wall_s'])} / {duration(v['job_cpu_s'])}")
        rows.append(row)
    header = ["fresh process"]
    for server in jobs:
        header += [f"{server}: start to first put", f"{server}: whole job, wall / CPU"]
    return [
        "### Job start",
        "",
        "A fresh process: Python starts, imports, builds its client or butler, reads one small "
        "input and puts one small output. Medians; the ratio is to the raw boto3 script.",
        "",
        *_table(header, rows, "l" + "r" * (len(header) - 1)),
    ]


def _transport_rows(data: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """(time, CPU) of the obstore transport over the boto3 transport, both shipped default, per operation."""
    cases = data.get("users", {}).get("cases", {})
    rows: dict[str, tuple[float, float]] = {}
    for name in ("small_put", "small_get", "large_put", "large_get"):
        sides = cases.get(name, {}).get("sides", {})
        if "obstore" in sides and "shipped" in sides:
            o, b = sides["obstore"], sides["shipped"]
            rows[cases[name]["what"]] = (
                o["wall_median_s"] / b["wall_median_s"],
                o["cpu_median_s"] / b["cpu_median_s"] if b["cpu_median_s"] > 0 else math.nan,
            )
    variants = data.get("job_start", {}).get("variants", {})
    o, b = variants.get("run_quantum_obstore", {}), variants.get("run_quantum", {})
    if o.get("available") and b.get("available"):
        rows["job: start to first put"] = (
            o["start_to_put_s"] / b["start_to_put_s"],
            o["cpu_to_put_s"] / b["cpu_to_put_s"],
        )
        rows["job: whole process"] = (o["job_wall_s"] / b["job_wall_s"], o["job_cpu_s"] / b["job_cpu_s"])
    return rows


def _transport(servers: dict[str, Any]) -> list[str]:
    per_server = {server: _transport_rows(data) for server, data in servers.items()}
    per_server = {server: rows for server, rows in per_server.items() if rows}
    if not per_server:
        return []
    labels = list(dict.fromkeys(label for rows in per_server.values() for label in rows))
    table_rows = [
        [
            label,
            *(
                f"{_x(rows[label][0])} / {_x(rows[label][1])}" if label in rows else "-"
                for rows in per_server.values()
            ),
        ]
        for label in labels
    ]
    ratios = [v for rows in per_server.values() for pair in rows.values() for v in pair if _finite(v)]
    cheaper = sum(1 for v in ratios if v < 1.0)
    if cheaper == len(ratios):
        verdict = "the obstore transport took less time and less CPU in every comparison of this run"
    elif cheaper == 0:
        verdict = "the boto3 transport took less time and less CPU in every comparison of this run"
    else:
        verdict = f"the obstore transport was cheaper in {cheaper} of {len(ratios)} comparisons of this run"
    return [
        "### Transport",
        "",
        "The shipped default on the obstore transport against the same on the boto3 transport (time / "
        f"client CPU; below 1: obstore is cheaper). On these measurements, {verdict}.",
        "",
        *_table(["operation", *per_server], table_rows, "l" + "r" * len(per_server)),
        "",
        which_transport(per_server),
    ]


def which_transport(per_server: dict[str, dict[str, tuple[float, float]]]) -> str:
    """Which transport to pick, and why, from the time ratios (obstore / boto3) of `_transport_rows`."""

    def times(match: str) -> list[float]:
        return [pair[0] for rows in per_server.values() for label, pair in rows.items() if match in label]

    def span(values: list[float]) -> str:
        finite = [v for v in values if _finite(v)]
        if not finite:
            return "not measured"
        low, high = min(finite), max(finite)
        return _x(low) if low == high else f"{_x(low)} to {_x(high)}"

    small = [v for v in times("1 KiB") if _finite(v)]
    jobs = [v for v in times("job:") if _finite(v)]
    large = [v for v in times("64 MiB") if _finite(v)]
    if small and jobs and max(small + jobs) < 1.0:
        pick = (
            "**Which to pick:** the obstore transport (`pip install 's3qbb[obstore]'`, then `transport: "
            "obstore` or `S3QBB_S3_TRANSPORT=obstore`) for jobs of small datasets and short quanta: it "
            f"took {span(small)} of the boto3 transport's time per small operation and {span(jobs)} of "
            "its time per job here."
        )
    else:
        pick = (
            "**Which to pick:** neither transport was faster in every small operation and job of this "
            f"run (obstore / boto3 time: small operations {span(small)}, jobs {span(jobs)}); keep the "
            "default unless your own measurements say otherwise."
        )
    return (
        f"{pick} For 64 MiB objects the two compare at {span(large)} (uploads above the multipart "
        "threshold go through boto3 on either transport). boto3 stays the default because obstore is "
        "an optional extra, a compiled Rust extension that a plain `pip install s3qbb` does not bring."
    )


def summary(results: dict[str, Any]) -> list[str]:
    """The summary: every side against raw boto3 on each server, then job start."""
    servers = results["servers"]
    lines = [
        "## Summary: what users run",
        "",
        "The shipped default is `QuantumBackedButler` as a user gets it (configuration: a root and an "
        "endpoint; cache tier on, boto3 transport). Beside it: the same butler with its cache off, a bare "
        "`S3Datastore`, and the shipped default on the obstore transport; raw boto3 (the reference: "
        "`put_object` with the checksum header and `If-None-Match: *` s3qbb sends, `get_object`; the "
        "transfer manager for large objects) and raw obstore beside them. Same server, same run, trials "
        "interleaved; medians per operation. In brackets: the ratio to raw boto3 (time and CPU: below "
        "1 is cheaper; throughput and memory: as stated). *n/a*: the side cannot run here (see the "
        "targets).",
        "",
    ]
    for server, data in servers.items():
        lines += _server_summary(server, data)
    lines += _job_summary(servers)
    lines += _transport(servers)
    return lines


def details(server: str, data: dict[str, Any]) -> list[str]:
    """Every side of every case of ``server``: medians, p90, CPU, requests, ratios to both references."""
    cases = data.get("users", {}).get("cases", {})
    if not cases:
        return []
    lines = [f"### What users run on {server}", ""]
    for name, case in cases.items():
        if name == "memory":
            continue
        rows = []
        vs_obstore = case.get("ratios_vs_obstore", {})
        for side, s in case["sides"].items():
            mib = _mib(s["throughput_mib_s"]) if s.get("bytes_per_op", 0) > 2**20 else "-"
            ratios = case["ratios"][side]
            rows.append(
                [
                    SIDE_LABELS.get(side, side),
                    duration(s["wall_median_s"]),
                    duration(s["wall_p90_s"]),
                    duration(s["cpu_median_s"]),
                    mib,
                    f"{_x(ratios['time'])} / {_x(ratios['cpu'])}",
                    f"{_x(vs_obstore[side]['time'])} / {_x(vs_obstore[side]['cpu'])}"
                    if side in vs_obstore
                    else "-",
                    _requests(s.get("requests"), s.get("requests_per_op")),
                ]
            )
        for side, why in case.get("unavailable", {}).items():
            rows.append([SIDE_LABELS.get(side, side), *(["-"] * 6), f"not available: {why}"])
        lines += [
            f"{case['what']} ({case['sides']['boto3']['ops']} timed operations per side):",
            "",
            *_table(
                [
                    "side",
                    "median",
                    "p90",
                    "client CPU",
                    "MiB/s",
                    "time / CPU vs raw boto3",
                    "vs raw obstore",
                    "requests/op",
                ],
                rows,
                "lrrrrrrl",
            ),
        ]
    memory = cases.get("memory")
    if memory:
        rows = [
            [
                SIDE_LABELS.get(side, side),
                f"{s['maxrss_kib'] / 1024:.1f} MiB",
                f"{s['import_rss_kib'] / 1024:.1f} MiB",
                f"{s['growth_kib'] / 1024:.1f} MiB",
                _x(memory["ratios"][side]["maxrss"]),
            ]
            for side, s in sorted(memory["sides"].items(), key=lambda item: _ORDER.index(item[0]))
        ]
        lines += [
            f"Memory, {memory['what']}:",
            "",
            *_table(["side", "peak RSS", "after imports", "growth", "peak / raw boto3"], rows, "lrrrr"),
        ]
    return lines


def job_details(server: str, job: dict[str, Any]) -> list[str]:
    """Every variant of the job start-up benchmark on ``server``."""
    rows = []
    for v in job["variants"].values():
        if not v.get("available"):
            rows.append([v["label"], *(["-"] * 6), f"not available: {v.get('why')}"])
            continue
        rows.append(
            [
                v["label"],
                duration(v["start_to_put_s"]),
                duration(v["cpu_to_put_s"]),
                _x(v["start_to_put_vs_boto3"]),
                duration(v["job_wall_s"]),
                duration(v["job_cpu_s"]),
                _x(v["job_cpu_vs_boto3"]),
                _requests(v.get("requests")) if v.get("requests") else "-",
            ]
        )
    return [
        f"### Job start on {server}",
        "",
        f"Fresh processes, {job['repeats']} timed rounds, variants in rotating order"
        + (" after an untimed round. " if job.get("warmup", True) else ". ")
        + "*Start to first put*: from just before the process is spawned to its put returning; *CPU*: "
        "the process's CPU by then. *Job*: the whole process, exit included (for `run-quantum`, the "
        "upload of the quantum's three records files too). Requests: counted on the wire by a relaying "
        "proxy in front of the server, in one more, untimed, run of each.",
        "",
        *_table(
            [
                "process",
                "start to first put",
                "CPU to first put",
                "vs raw boto3 script",
                "job wall",
                "job CPU",
                "job CPU vs raw boto3 script",
                "requests per job",
            ],
            rows,
            "lrrrrrrl",
        ),
        *_import_lines(job),
    ]


def _import_lines(job: dict[str, Any]) -> list[str]:
    """Where the start of each ``run-quantum`` variant goes, from its import profile."""
    from .job_start import describe_imports

    lines = [
        f"* {v['label']}: {describe_imports(v['imports'])}."
        for v in job["variants"].values()
        if v.get("available") and v.get("imports")
    ]
    if not lines:
        return []
    return [
        "",
        "Where the start goes: one more, untimed, run of each `run-quantum` with `python -X importtime`, "
        "each module's own import time up to the first put counted for its library (or, for the standard "
        "library, for the library that imported it); s3qbb's share includes building its pydantic models.",
        "",
        *lines,
        "",
    ]
