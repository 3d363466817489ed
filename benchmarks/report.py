"""Tables, targets and the JSON file of a benchmark run."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["Target", "evaluate_targets", "format_results", "format_targets", "write_json"]


@dataclass(frozen=True)
class Target:
    """One issue target checked against one server's results."""

    server: str
    case: str
    metric: str
    measured: float
    comparison: str
    limit: float
    passed: bool
    detail: str = ""


def _cmp(value: float, comparison: str, limit: float) -> bool:
    if math.isnan(value):
        return False
    if comparison == "<=":
        return value <= limit
    if comparison == ">=":
        return value >= limit
    return value == limit


def evaluate_targets(server: str, cases: dict[str, Any]) -> list[Target]:
    """Return the targets of the issue, measured on one server's cases (absent cases are skipped)."""
    targets: list[Target] = []

    def add(case: str, metric: str, value: float, comparison: str, limit: float, detail: str = "") -> None:
        ok = _cmp(value, comparison, limit)
        targets.append(Target(server, case, metric, value, comparison, limit, ok, detail))

    for name, operation in (("small_put", "PutObject"), ("small_get", "GetObject")):
        result = cases.get(name)
        if result is None:
            continue
        s3qbb = result["sides"]["s3qbb"]
        only = set(s3qbb["requests"]) == {operation}
        breakdown = ", ".join(f"{k} {v:g}" for k, v in s3qbb["requests"].items())
        add(name, "s3qbb requests/op", s3qbb["requests_per_op"] if only else math.nan, "==", 1.0, breakdown)
        add(name, "time / boto3 (median)", result["ratios"]["s3qbb"]["time"], "<=", 1.10)
        add(name, "client CPU / boto3 (median)", result["ratios"]["s3qbb"]["cpu"], "<=", 1.30)
    if "stored_many" in cases:
        add(
            "stored_many",
            "time / boto3 list (median)",
            cases["stored_many"]["ratios"]["s3qbb"]["time"],
            "<=",
            1.2,
        )
    for name in ("large_put", "large_get"):
        if name in cases:
            sides = cases[name]["sides"]
            ratio = sides["s3qbb"]["throughput_mib_s"] / sides["boto3"]["throughput_mib_s"]
            add(name, "throughput / boto3 transfer", ratio, ">=", 0.9)
    for name in ("many_put", "many_get"):
        if name in cases:
            speedup = 1.0 / cases[name]["ratios"]["s3qbb"]["time"]
            extra = cases[name]["extra"]
            detail = (
                f"CPU-bound ceiling here {extra.get('machine_speedup_ceiling', math.nan):.1f}x, "
                f"{extra.get('s3qbb_cpu_speedup_ceiling', math.nan):.1f}x at s3qbb's CPU cost"
            )
            add(name, "speed-up vs sequential boto3", speedup, ">=", 3.0, detail)
    if "memory" in cases:
        add("memory", "peak RSS / boto3 process", cases["memory"]["ratios"]["s3qbb"]["maxrss"], "<=", 1.3)
    return targets


def duration(seconds: Any) -> str:
    """``1.23 s``, ``4.56 ms``, ``78 us``, or ``-`` for a missing or non-finite value."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or not math.isfinite(seconds):
        return "-"
    if seconds >= 1.0:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.0f} us"


def _ratio(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}x"


def format_results(server: str, result: dict[str, Any]) -> str:
    """Return the table of one server's cases."""
    header = (
        f"{'case':<12} {'side':<14} {'median':>10} {'p90':>10} {'cpu/op':>10} {'srv cpu':>10} {'req/op':>8} "
        f"{'MiB/s':>8} {'time/ref':>9} {'cpu/ref':>8}  requests per op"
    )
    lines = [f"== {server} ({result['endpoint_url']}) ==", header, "-" * len(header)]
    for name, case in result["cases"].items():
        if name == "memory":
            continue
        for index, (side, s) in enumerate(case["sides"].items()):
            ratios = case["ratios"][side]
            mib = (
                f"{s['throughput_mib_s']:.1f}"
                if "throughput_mib_s" in s and s["bytes_per_op"] > 2**20
                else ""
            )
            reqs = ", ".join(f"{k} {v:g}" for k, v in s["requests"].items())
            lines.append(
                f"{name if index == 0 else '':<12} {side:<14} {duration(s['wall_median_s']):>10} "
                f"{duration(s['wall_p90_s']):>10} {duration(s['cpu_median_s']):>10} "
                f"{duration(s['server_cpu_per_op_s']):>10} "
                f"{s['requests_per_op']:>8.2f} {mib:>8} {_ratio(ratios['time']):>9} "
                f"{_ratio(ratios['cpu']):>8}  {reqs}"
            )
    memory = result["cases"].get("memory")
    if memory is not None:
        lines.append("")
        lines.append(f"memory: {memory['what']}")
        for side, s in memory["sides"].items():
            lines.append(
                f"  {side:<7} peak RSS {s['maxrss_kib'] / 1024:7.1f} MiB  (after imports "
                f"{s['import_rss_kib'] / 1024:6.1f} MiB, growth {s['growth_kib'] / 1024:5.1f} MiB)  "
                f"x boto3 {_ratio(memory['ratios'][side]['maxrss'])}"
            )
    return "\n".join(lines)


def format_targets(targets: list[Target]) -> str:
    """Return the targets section."""
    w_server = max([10, *(len(t.server) for t in targets)])
    w_case = max([12, *(len(t.case) for t in targets)])
    w_metric = max([30, *(len(t.metric) for t in targets)])
    lines = [
        "== targets ==",
        f"{'server':<{w_server}} {'case':<{w_case}} {'metric':<{w_metric}} "
        f"{'measured':>9} {'target':>9}  result",
    ]
    for t in targets:
        measured = "-" if math.isnan(t.measured) else f"{t.measured:.3f}"
        detail = f"  ({t.detail})" if t.detail else ""
        result = "PASS" if t.passed else "n/a" if t.detail.startswith("not available") else "MISS"
        lines.append(
            f"{t.server:<{w_server}} {t.case:<{w_case}} {t.metric:<{w_metric}} {measured:>9} "
            f"{t.comparison:>3} {t.limit:<5g}  {result}{detail}"
        )
    return "\n".join(lines)


def _clean(value: Any) -> Any:
    """Replace NaN (not valid JSON) with None."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def write_json(results: dict[str, Any], targets: list[Target], directory: Path, stamp: str) -> Path:
    """Write the results and targets to ``directory/<stamp>.json`` and return the path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stamp}.json"
    suffix = 1
    while path.exists():
        path = directory / f"{stamp}-{suffix}.json"
        suffix += 1
    payload = {**results, "targets": [asdict(t) for t in targets]}
    path.write_text(json.dumps(_clean(payload), indent=1, sort_keys=False) + "\n")
    return path
