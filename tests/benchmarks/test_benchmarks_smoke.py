"""The benchmark harness runs end to end (tiny counts, moto only) and writes every case: no timing checks."""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

EXPECTED_CASES = {
    "small_put",
    "small_get",
    "stored_many",
    "large_put",
    "large_get",
    "many_put",
    "many_get",
    "memory",
}


def _positive(value: Any) -> bool:
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    )


def test_quick_run_on_moto_writes_every_case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(REPO_ROOT))  # benchmarks/ is not an installed package
    bench = importlib.import_module("benchmarks.s3_datastore")
    run = importlib.import_module("benchmarks.run")
    printed: list[str] = []

    results, path = run.run_benchmarks(
        ["moto"],
        counts=bench.Counts.tiny(),
        quick=True,
        results_dir=tmp_path,
        out=printed.append,
        progress=lambda line: None,
    )

    assert path.parent == tmp_path and path.suffix == ".json"
    data = json.loads(path.read_text())
    assert data["meta"]["quick"] is True and data["meta"]["servers"] == ["moto"]
    cases = data["servers"]["moto"]["cases"]
    assert set(cases) == EXPECTED_CASES
    for name, case in cases.items():
        if name == "memory":
            assert set(case["sides"]) == {"s3qbb", "boto3"}
            for side in case["sides"].values():
                assert _positive(side["maxrss_kib"]) and _positive(side["import_rss_kib"])
            assert _positive(case["ratios"]["s3qbb"]["maxrss"])
            continue
        assert {"s3qbb", "boto3"} <= set(case["sides"]), name
        for side_name, side in case["sides"].items():
            for key in ("ops", "wall_median_s", "wall_p90_s", "cpu_median_s", "requests_per_op"):
                assert _positive(side[key]), (name, side_name, key, side[key])
        assert _positive(case["ratios"]["s3qbb"]["time"]), name
    # Request counts are exact, not timings: one PUT per small put, one GET per small get.
    assert cases["small_put"]["sides"]["s3qbb"]["requests"] == {"PutObject": 1.0}
    assert cases["small_get"]["sides"]["s3qbb"]["requests"] == {"GetObject": 1.0}
    assert cases["many_put"]["sides"]["s3qbb"]["requests_per_op"] == bench.Counts.tiny().many_refs
    # Every target is reported, whatever its outcome.
    assert {t["case"] for t in data["targets"]} == EXPECTED_CASES
    assert all(t["server"] == "moto" for t in data["targets"])
    report = "\n".join(printed)
    assert "== targets ==" in report and "small_put" in report
    assert results["servers"]["moto"]["cases"].keys() == cases.keys()
