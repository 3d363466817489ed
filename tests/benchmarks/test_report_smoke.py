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
PLOTS = (
    "shipped_vs_raw_moto.png",
    "throughput_vs_size_moto.png",
    "throughput_vs_concurrency_moto.png",
    "speed_vs_boto3.png",
)


def _positive(value: Any) -> bool:
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    )


def obstore_transport_status() -> str | None:
    return importlib.import_module("benchmarks.shipped").obstore_transport_status()  # type: ignore[no-any-return]


def obstore_raw_status() -> str | None:
    return importlib.import_module("benchmarks.shipped").obstore_raw_status()  # type: ignore[no-any-return]


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
    _check_users(moto["users"])
    _check_job_start(moto["job_start"])
    cases = moto["datastore"]["cases"]
    assert set(cases) == {"stored_many", "many_put", "many_get"}
    for name, case in cases.items():
        for side in ("s3qbb", "boto3"):
            assert _positive(case["sides"][side]["wall_median_s"]), (name, side)
            assert _positive(case["sides"][side]["requests_per_op"]), (name, side)

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

    # The targets of issue 13, each with a detail; the others apart.
    targets = results["targets"]
    assert {t["case"] for t in targets} == {
        "small_put",
        "small_get",
        "large_put",
        "large_get",
        "memory",
        "job_start",
        "cache_hit",
        "provenance",
        "many_put",
        "many_get",
    }
    assert all(isinstance(t["passed"], bool) and t["detail"] for t in targets if t["case"] != "provenance")
    shipped_cpu = next(
        t for t in targets if t["case"] == "small_put" and "client CPU / raw boto3" in t["metric"]
    )
    assert "cache tier" in shipped_cpu["detail"]  # where the extra CPU goes
    # The obstore transport's targets are measured exactly when its side ran; otherwise they say why.
    obstore_ran = "obstore" not in results["servers"]["moto"]["users"]["unavailable"]
    for t in targets:
        if t["metric"].startswith("obstore transport"):
            assert t["detail"].startswith("not available") != obstore_ran, t
    others = {t["case"]: t for t in results["other_targets"]}
    assert {"cold_start", "construction", "stored_many", "ingest", "registry_query"} <= set(others)
    assert others["small_put"]["measured"] == 1.0 and others["small_put"]["passed"]  # one request

    # --- Markdown
    report = (out / "report.md").read_text()
    assert report.startswith("---\norphan: true\n---\n")
    headings = [
        "# Performance report",
        "## Summary: what users run",
        "### moto",
        "### Job start",
        "## Plots",
        "## Targets",
        "## Other targets",
        "## Details",
        "### What users run on moto",
        "### Job start on moto",
        "### S3Datastore bulk operations against plain boto3",
        "### Throughput against object size",
        "### Throughput against concurrency",
        "### QuantumBackedButler and the cache tier",
        "### Registry",
        "## Machine",
    ]
    if obstore_ran:  # the obstore transport against the boto3 one, with a verdict
        headings.insert(headings.index("## Plots"), "### Transport")
    positions = [report.index(f"\n{heading}\n") for heading in headings]
    assert positions == sorted(positions)  # summary and plots first, details after
    assert "| CPU | " in report and machine["cpu_model"] in report
    assert "| small put: time | " in report and "| raw boto3 script: import, client, GET, PUT | " in report
    assert "| PASS |" in report or "| **MISS** |" in report
    table_rows = [line for line in report.splitlines() if line.startswith("| ")]
    assert len(table_rows) > 60
    start = report.index("<!-- performance.rst includes from here -->")
    end = report.index("<!-- performance.rst includes up to here -->")
    for name in PLOTS:
        # Inside the part docs/performance.rst includes, paths are relative to docs/; after it, to the file.
        assert start < report.index(f"](perf/{name})") < end
        assert report.index(f"]({name})") > end
    assert start < report.index("## Summary") < report.index("## Targets") < end


def _check_users(users: dict[str, Any]) -> None:
    """What users run: every side ran (or says why not), requests are exact."""
    cases = users["cases"]
    assert set(cases) == {"small_put", "small_get", "large_put", "large_get", "memory"}
    expected = {"shipped", "cache_off", "datastore", "boto3"}
    # The obstore transport runs when this s3qbb has it (a probe put and get works); else the report
    # says why (the obstore transport's own tests check the transport itself).
    if "obstore" in users["unavailable"]:
        assert users["unavailable"]["obstore"]
    else:
        assert obstore_transport_status() is None
        expected.add("obstore")
    if obstore_raw_status() is None:
        expected.add("obstore_raw")
    for name, operation in (("small_put", "PutObject"), ("small_get", "GetObject")):
        sides = cases[name]["sides"]
        assert set(sides) == expected | {"boto3_default"}, name
        for side, summary in sides.items():
            assert _positive(summary["wall_median_s"]) and _positive(summary["cpu_median_s"]), (name, side)
            # One request per small put and per cold get, on every side.
            assert summary["requests"] == {operation: 1.0}, (name, side, summary["requests"])
        assert _positive(cases[name]["ratios"]["shipped"]["time"])
        if "obstore_raw" in expected:
            assert _positive(cases[name]["ratios_vs_obstore"]["shipped"]["time"])
    for name in ("large_put", "large_get"):
        sides = cases[name]["sides"]
        assert set(sides) == expected, name
        assert all(_positive(s["throughput_mib_s"]) for s in sides.values()), name
    assert cases["large_get"]["sides"]["shipped"]["requests"] == {"GetObject": 1.0}  # fresh butler: cold
    if "obstore_raw" in expected:  # counted on the wire (a proxy), as obstore has no request hook
        assert cases["large_put"]["sides"]["obstore_raw"]["requests"] == {"PutObject": 1}
    memory = cases["memory"]["sides"]
    assert {"shipped", "datastore", "boto3"} <= set(memory)
    assert all(_positive(s["maxrss_kib"]) for s in memory.values())


def _check_job_start(job: dict[str, Any]) -> None:
    variants = job["variants"]
    for name in ("python", "config_models", "boto3_script", "run_quantum"):
        v = variants[name]
        assert v["available"], name
        assert _positive(v["start_to_put_s"]) and _positive(v["job_cpu_s"]), name
        assert v["job_wall_s"] >= v["start_to_put_s"] > 0, name
    assert variants["boto3_script"]["start_to_put_vs_boto3"] == 1.0
    # The configuration floor is part of every job: it cannot cost more CPU than a whole job.
    assert variants["config_models"]["cpu_to_put_s"] < variants["run_quantum"]["cpu_to_put_s"]
    # Requests counted on the wire: the raw scripts' GET and PUT; a run-quantum job's output, records
    # files and attempt lease (start and end: 6 PUTs) and its reads (configuration, quantum, input).
    assert variants["boto3_script"]["requests"] == {"GetObject": 1, "PutObject": 1}
    if variants["obstore_script"]["available"]:
        assert variants["obstore_script"]["requests"] == {"GetObject": 1, "PutObject": 1}
        # The libraries' floor (no request) is part of every obstore job.
        assert variants["libraries"]["available"] and variants["libraries"]["requests"] == {}
        if variants["run_quantum_obstore"]["available"]:
            floor = variants["libraries"]["cpu_to_put_s"]
            assert floor < variants["run_quantum_obstore"]["cpu_to_put_s"]
    requests = variants["run_quantum"]["requests"]
    assert requests["PutObject"] == 6 and requests["GetObject"] >= 1, requests
    obstore_job = variants["run_quantum_obstore"]
    assert obstore_job["available"] or obstore_job["why"]
    # Where the start goes: every job imports pydantic and s3qbb; a job on the obstore transport
    # that only reads and writes small objects never imports boto3 before its first put.
    for job in (variants["run_quantum"], obstore_job if obstore_job["available"] else None):
        if job is not None:
            imports = job["imports"]
            assert imports["pydantic"] > 0 and imports["s3qbb"] > 0 and imports["total"] > 0, imports
    assert variants["run_quantum"]["imports"]["boto3"] > 0
    if obstore_job["available"]:
        assert obstore_job["imports"]["boto3"] == 0.0 and obstore_job["imports"]["obstore"] > 0
    if obstore_transport_status() is not None:
        assert not obstore_job["available"]


@pytest.mark.seaweedfs
def test_timestamp_benchmark_runs() -> None:
    from benchmarks.timestamps import measure

    result = measure("seaweedfs", rounds=2, count=20, gets=10)
    assert set(result) == {"s3qbb", "botocore"}
    assert all(v > 0 for ops in result.values() for v in ops.values())


def test_records_store_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.records_store import main, measure

    result = measure(rounds=2, count=50)
    assert set(result) == {"dictionaries", "sqlite-memory"}
    assert all(v > 0 for ops in result.values() for v in ops.values())
    assert main(["--rounds", "1", "--count", "20"]) == 0
    assert "dictionaries" in capsys.readouterr().out
