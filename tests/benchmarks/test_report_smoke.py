"""The one-command performance report runs end to end (quick, moto only): files and structure, no timings."""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PLOTS = ("throughput_vs_size_moto.png", "throughput_vs_concurrency_moto.png", "speed_vs_boto3.png")


def _positive(value: Any) -> bool:
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    )


def test_quick_report_on_moto(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(REPO_ROOT))  # benchmarks/ is not an installed package
    report_all = importlib.import_module("benchmarks.report_all")
    out = tmp_path / "perf"
    out.mkdir()
    stale = out / "throughput_vs_size_seaweedfs.png"
    stale.write_bytes(PNG_SIGNATURE)  # a plot of a server this run does not measure

    assert report_all.main(["--quick", "--servers", "moto", "--out", str(out)]) == 0

    # --- files
    for name in ("report.md", "results.json", *PLOTS):
        assert (out / name).is_file(), name
    assert not stale.exists()  # removed: it would not match the report
    for name in PLOTS:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 1000, name
        assert data[12:16] == b"IHDR"
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert width > 100 and height > 100, name

    # --- JSON
    results = json.loads((out / "results.json").read_text())
    meta = results["meta"]
    assert meta["quick"] is True and meta["servers"] == ["moto"]
    machine = meta["machine"]
    assert machine["cpu_model"] and _positive(machine["cores"]) and _positive(machine["ram_gib"])
    assert machine["os"] and machine["python"]
    assert meta["versions"]["boto3"] and meta["versions"]["moto"]
    assert _positive(meta["duration_s"]) and len(meta["loadavg_start"]) == 3
    assert meta["loadavg_1min_max"] >= meta["loadavg_end"][0] >= 0

    local = results["local"]
    assert _positive(local["cold_start"]["ratio"]) and _positive(local["construction"]["median_ms"])
    sqlite = local["registry_queries"]["SQLite"]
    assert _positive(sqlite["datasets"])
    assert all(_positive(q["median_ms"]) for q in sqlite["queries"].values())

    assert list(results["servers"]) == ["moto"]
    moto = results["servers"]["moto"]
    cases = moto["datastore"]["cases"]
    assert {"small_put", "small_get", "stored_many", "large_put", "large_get", "many_put", "many_get"} <= set(
        cases
    )
    for name, case in cases.items():
        if name == "memory":
            assert _positive(case["ratios"]["s3qbb"]["maxrss"])
            continue
        for side in ("s3qbb", "boto3"):
            assert _positive(case["sides"][side]["wall_median_s"]), (name, side)
            assert _positive(case["sides"][side]["requests_per_op"]), (name, side)
    # Request counts are exact: one PUT per small put on both sides.
    assert cases["small_put"]["sides"]["s3qbb"]["requests"] == {"PutObject": 1.0}
    assert cases["small_put"]["sides"]["boto3"]["requests"] == {"PutObject": 1.0}

    size_points = moto["size_sweep"]["points"]
    sizes = report_all.ReportCounts.quick().sweeps.sizes
    assert {(p["size"], p["op"]) for p in size_points} == {(s, op) for s in sizes for op in ("put", "get")}
    for p in size_points:
        assert p["reference_call"]
        assert _positive(p["throughput_ratio"])
        for side in ("s3qbb", "boto3"):
            summary = p["sides"][side]
            assert _positive(summary["throughput_mib_s"]) and _positive(summary["requests_per_op"])
    threshold = moto["size_sweep"]["multipart_threshold"]
    big_put = next(p for p in size_points if p["op"] == "put" and p["size"] >= threshold)
    assert big_put["sides"]["s3qbb"]["requests"]["UploadPart"] >= 2  # multipart on both sides
    assert big_put["sides"]["boto3"]["requests"]["UploadPart"] >= 2
    assert "upload_fileobj" in big_put["reference_call"]

    conc_points = moto["concurrency_sweep"]["points"]
    sweeps = report_all.ReportCounts.quick().sweeps
    assert len(conc_points) == 2 * len(sweeps.concurrencies) * len(sweeps.concurrency_objects)
    for p in conc_points:
        assert p["sides"]["s3qbb"]["requests_per_op"] == p["objects_per_op"]  # one request per object
        assert p["requests_per_object"] == {"s3qbb": 1.0, "boto3": 1.0}
        assert _positive(p["objects_per_s"]["s3qbb"]) and _positive(p["objects_per_s"]["boto3"])
        assert p["extra"]["s3qbb_max_workers"] == p["concurrency"]

    assert moto["cache"]["sides"]["cache_hit"]["requests_per_op"] == 0  # a hit sends nothing
    assert moto["cache"]["sides"]["s3_get"]["requests"] == {"GetObject": 1.0}
    assert _positive(moto["cache"]["ratio"]) and _positive(moto["provenance"]["median_ms"])
    ingest = moto["ingest"]
    assert _positive(ingest["ratio"]) and ingest["sides"]["s3qbb"]["requests"].get("GetObject")

    targets = results["targets"]
    assert {t["case"] for t in targets} >= {"small_put", "many_get", "cache_hit", "ingest", "cold_start"}
    assert all(isinstance(t["passed"], bool) for t in targets)

    # --- Markdown
    report = (out / "report.md").read_text()
    assert report.startswith("---\norphan: true\n---\n")
    for heading in (
        "# Performance report",
        "## Targets",
        "### S3Datastore cases on moto",
        "### Throughput against object size on moto",
        "### Throughput against concurrency on moto",
        "## QuantumBackedButler and the cache tier",
        "## Registry",
    ):
        assert f"\n{heading}\n" in report, heading
    assert "| CPU | " in report and machine["cpu_model"] in report
    assert "| small_put | 1 KiB put |" in report
    assert "| PASS |" in report or "| **MISS** |" in report
    table_rows = [line for line in report.splitlines() if line.startswith("| ")]
    assert len(table_rows) > 40
    for name in PLOTS:
        assert f"]({name})" in report
    start = report.index("<!-- performance.rst includes from here -->")
    assert start < report.index("## Targets") < report.index("<!-- performance.rst includes up to here -->")
