"""PNG plots of a performance report (`benchmarks.report_all`), drawn with matplotlib's Agg canvas.

Figures are built with `matplotlib.figure.Figure` directly (no pyplot, no
global backend state), so they render without a display and in any thread.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .sweeps import size_label

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "plot_concurrency",
    "plot_ratio_summary",
    "plot_shipped",
    "plot_size",
    "shipped_rows",
    "write_plots",
]

_SIDES: dict[str, dict[str, Any]] = {
    "s3qbb": {"linestyle": "-", "marker": "o"},
    "boto3": {"linestyle": "--", "marker": "s"},
}
_OPS = {"put": "tab:blue", "get": "tab:orange"}
_DPI = 100


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=_DPI, layout="constrained")


def _save(fig: Figure, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.savefig(path, format="png", metadata={"Software": None})
    return path


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def plot_size(server: str, sweep: dict[str, Any], path: Path) -> Path:
    """Throughput (MiB/s) against object size, put and get, s3qbb against boto3 (log-log)."""
    fig = _figure(8, 5)
    ax: Axes = fig.add_subplot()
    sizes = sorted({p["size"] for p in sweep["points"]})
    for op, color in _OPS.items():
        points = sorted((p for p in sweep["points"] if p["op"] == op), key=lambda p: p["size"])
        for side, style in _SIDES.items():
            xs = [p["size"] for p in points if _finite(p["sides"][side]["throughput_mib_s"])]
            ys = [p["sides"][side]["throughput_mib_s"] for p in points if p["size"] in xs]
            ax.plot(xs, ys, color=color, label=f"{side} {op}", **style)
    threshold = sweep.get("multipart_threshold")
    if threshold and sizes and sizes[0] <= threshold <= sizes[-1]:
        ax.axvline(threshold, color="grey", linestyle=":", linewidth=1)
        ax.annotate(
            f"boto3: upload_fileobj /\ndownload_fileobj from {size_label(threshold)} ",
            (threshold, 0.02),
            xycoords=("data", "axes fraction"),
            ha="right",
            fontsize=8,
            color="dimgrey",
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(sizes, [size_label(s) for s in sizes])
    ax.minorticks_off()
    ax.set_xlabel("object size")
    ax.set_ylabel("throughput (MiB/s, median per operation)")
    ax.set_title(f"S3Datastore put/get vs plain boto3, {server}")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="upper left", fontsize=9)
    return _save(fig, path)


def plot_concurrency(server: str, sweep: dict[str, Any], path: Path) -> Path:
    """Objects/s against concurrency, one panel per object size, put_many/get_many against boto3."""
    sizes = sorted({p["size"] for p in sweep["points"]})
    fig = _figure(5.5 * max(1, len(sizes)), 4.8)
    axes = fig.subplots(1, max(1, len(sizes)), squeeze=False)[0]
    for ax, size in zip(axes, sizes, strict=False):
        levels = sorted({p["concurrency"] for p in sweep["points"] if p["size"] == size})
        n = next(p["objects_per_op"] for p in sweep["points"] if p["size"] == size)
        for op, color in _OPS.items():
            points = sorted(
                (p for p in sweep["points"] if p["size"] == size and p["op"] == op),
                key=lambda p: p["concurrency"],
            )
            for side, style in _SIDES.items():
                name = f"s3qbb {op}_many" if side == "s3qbb" else f"boto3 {op} (thread pool)"
                xs = [p["concurrency"] for p in points]
                ys = [p["objects_per_s"][side] for p in points]
                ax.plot(xs, ys, color=color, label=name, **style)
        ax.set_xscale("log", base=2)
        ax.set_xticks(levels, [str(c) for c in levels])
        ax.minorticks_off()
        ax.set_ylim(bottom=0)
        ax.set_xlabel("threads (S3EndpointConfig.max_concurrency / pool size)")
        ax.set_ylabel("objects/s (median per batch)")
        ax.set_title(f"{n} x {size_label(size)} objects")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"Bulk put/get vs concurrency, {server}")
    return _save(fig, path)


def ratio_rows(results: dict[str, Any]) -> list[tuple[str, dict[str, float]]]:
    """(label, {server: boto3 time / s3qbb time}) for the summary plot: above 1, s3qbb is faster."""
    labels: dict[str, dict[str, float]] = {}
    for server, data in results["servers"].items():
        for name, case in data.get("datastore", {}).get("cases", {}).items():
            if name == "memory" or "time" not in case["ratios"].get("s3qbb", {}):
                continue
            ratio = case["ratios"]["s3qbb"]["time"]
            if _finite(ratio):
                against = " vs sequential boto3" if name.startswith("many_") else ""
                labels.setdefault(f"{name}: {case['what']}{against}", {})[server] = 1.0 / ratio
        ingest = data.get("ingest")
        if ingest and _finite(ingest.get("ratio")):
            label = f"ingest: {ingest['quanta']} quanta vs LIST + GETs"
            labels.setdefault(label, {})[server] = 1.0 / ingest["ratio"]
    return list(labels.items())


def plot_ratio_summary(results: dict[str, Any], path: Path) -> Path:
    """Horizontal bars from 1: s3qbb's speed relative to boto3 per case and server (log scale)."""
    from matplotlib.ticker import FixedLocator, NullLocator

    rows = ratio_rows(results)
    servers = list(results["servers"])
    fig = _figure(9.5, 0.32 * max(4, len(rows) * max(1, len(servers))) + 1.4)
    ax: Axes = fig.add_subplot()
    height = 0.8 / max(1, len(servers))
    values_seen: list[float] = [1.0]
    for index, server in enumerate(servers):
        ys = [row - 0.4 + height * (index + 0.5) for row in range(len(rows))]
        values = [ratios.get(server, math.nan) for _, ratios in rows]
        values_seen.extend(v for v in values if _finite(v))
        ax.barh(ys, [v - 1.0 for v in values], left=1.0, height=height, label=server)
        for y, value in zip(ys, values, strict=True):
            if _finite(value):
                ax.annotate(
                    f" {value:.2f}x ",
                    (value, y),
                    va="center",
                    ha="left" if value >= 1 else "right",
                    fontsize=7,
                )
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xscale("log", base=2)
    low, high = min(values_seen), max(values_seen)
    ax.set_xlim(min(0.5, low / 1.4), max(2.0, high * 1.4))
    ticks = [2.0**k for k in range(-6, 8) if min(0.5, low / 1.4) <= 2.0**k <= max(2.0, high * 1.4)]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(ticks, [f"{t:g}x" for t in ticks])
    ax.set_yticks(range(len(rows)), [label for label, _ in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("speed relative to plain boto3 (boto3 time / s3qbb time; right of 1: s3qbb faster)")
    ax.set_title("s3qbb vs plain boto3, same server, same run (medians)")
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize=9, loc="lower right")
    return _save(fig, path)


_SHIPPED_BARS = {
    "shipped": ("shipped default", "tab:blue"),
    "cache_off": ("cache off", "tab:cyan"),
    "datastore": ("bare S3Datastore", "tab:gray"),
    "obstore": ("obstore transport", "tab:orange"),
    "obstore_raw": ("raw obstore", "tab:red"),
}
_JOB_SIDES = {"shipped": "run_quantum", "obstore": "run_quantum_obstore", "obstore_raw": "obstore_script"}


def shipped_rows(data: dict[str, Any]) -> list[tuple[str, dict[str, tuple[float, float]]]]:
    """(operation, {side: (time ratio, CPU ratio) to raw boto3}) of one server, for `plot_shipped`."""
    cases = data.get("users", {}).get("cases", {})
    rows: list[tuple[str, dict[str, tuple[float, float]]]] = []
    for name in ("small_put", "small_get", "large_put", "large_get"):
        case = cases.get(name)
        if case is None:
            continue
        ratios = case["ratios"]
        rows.append(
            (
                case["what"],
                {
                    side: (ratios[side]["time"], ratios[side]["cpu"])
                    for side in _SHIPPED_BARS
                    if side in ratios
                },
            )
        )
    job = data.get("job_start")
    if job:
        variants = job["variants"]
        values = {
            side: (variants[v]["start_to_put_vs_boto3"], variants[v]["cpu_to_put_vs_boto3"])
            for side, v in _JOB_SIDES.items()
            if variants.get(v, {}).get("available")
        }
        rows.append(("job: process start to first put\n(vs a raw boto3 script)", values))
    return rows


def plot_shipped(server: str, data: dict[str, Any], path: Path) -> Path:
    """Time and client CPU of every side relative to raw boto3 per operation on one server (log scale)."""
    from matplotlib.ticker import FixedLocator, NullLocator

    rows = shipped_rows(data)
    sides = [side for side in _SHIPPED_BARS if any(side in values for _, values in rows)]
    fig = _figure(12, 0.5 * max(3, len(rows)) * max(2, len(sides)) * 0.55 + 1.6)
    axes = fig.subplots(1, 2, sharey=True)
    height = 0.8 / max(1, len(sides))
    for panel, (ax, metric) in enumerate(zip(axes, ("time", "client CPU"), strict=True)):
        seen: list[float] = [1.0]
        for index, side in enumerate(sides):
            label, color = _SHIPPED_BARS[side]
            ys = [row - 0.4 + height * (index + 0.5) for row in range(len(rows))]
            values = [values.get(side, (math.nan, math.nan))[panel] for _, values in rows]
            seen.extend(v for v in values if _finite(v))
            ax.barh(
                ys,
                [v - 1.0 if _finite(v) else 0.0 for v in values],
                left=1.0,
                height=height,
                color=color,
                label=label,
            )
            for y, value in zip(ys, values, strict=True):
                if _finite(value):
                    ax.annotate(
                        f" {value:.2f}x ",
                        (value, y),
                        va="center",
                        ha="left" if value >= 1 else "right",
                        fontsize=7,
                    )
        ax.axvline(1.0, color="black", linewidth=1)
        ax.set_xscale("log", base=2)
        low, high = min(0.5, min(seen) / 1.6), max(2.0, max(seen) * 1.6)
        ax.set_xlim(low, high)
        ticks = [2.0**k for k in range(-8, 8) if low <= 2.0**k <= high]
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticks(ticks, [f"{t:g}x" for t in ticks])
        ax.set_xlabel(f"{metric} / raw boto3 (left of 1: cheaper than raw boto3)")
        ax.grid(True, axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(rows)), [label for label, _ in rows], fontsize=8)
    axes[0].invert_yaxis()
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize=8)
    fig.suptitle(f"What users run against raw boto3 (= 1), {server}: same server, same run, medians")
    return _save(fig, path)


def write_plots(results: dict[str, Any], directory: Path) -> list[Path]:
    """Write every plot of ``results`` into ``directory`` and return their paths."""
    written: list[Path] = []
    for server, data in results["servers"].items():
        if shipped_rows(data):
            written.append(plot_shipped(server, data, directory / f"shipped_vs_raw_{server}.png"))
    for server, data in results["servers"].items():
        if data.get("size_sweep", {}).get("points"):
            path = directory / f"throughput_vs_size_{server}.png"
            written.append(plot_size(server, data["size_sweep"], path))
        if data.get("concurrency_sweep", {}).get("points"):
            path = directory / f"throughput_vs_concurrency_{server}.png"
            written.append(plot_concurrency(server, data["concurrency_sweep"], path))
    if ratio_rows(results):
        written.append(plot_ratio_summary(results, directory / "speed_vs_boto3.png"))
    return written
