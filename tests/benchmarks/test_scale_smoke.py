"""``python -m benchmarks.scale --quick`` runs end to end and writes its three files: no timing checks."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pg_cluster
import pytest

from s3qbb.testing.servers import find_weed_binary

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.seaweedfs


def _number(value: Any) -> bool:
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    )


def test_quick_scale_run_writes_report_json_and_plot(tmp_path: Path) -> None:
    if find_weed_binary() is None:
        if os.environ.get("S3QBB_REQUIRE_SEAWEEDFS"):
            pytest.fail("SeaweedFS 'weed' executable not found")
        pytest.skip("SeaweedFS 'weed' executable not found")
    registry = pg_cluster.available_url() or "sqlite://"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.scale",
            "--quick",
            "--out",
            str(tmp_path),
            "--registry-url",
            registry,
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert {p.name for p in tmp_path.iterdir()} == {"scale.json", "scale.md", "scale_quanta_per_second.png"}
    assert (tmp_path / "scale_quanta_per_second.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")

    data = json.loads((tmp_path / "scale.json").read_text())
    assert set(data) == {"meta", "runs", "dask", "layouts", "ingest", "saturation"}
    meta = data["meta"]
    assert meta["quick"] is True and meta["ns"] == [1, 2] and meta["quanta"] == 2
    assert {"cpu", "cores", "ram_gib", "os", "python"} <= set(meta["machine"])
    assert {"s3qbb", "boto3", "numpy"} <= set(meta["versions"])

    quanta_run = [
        *data["runs"],
        data["layouts"]["default"]["run"],
        data["layouts"]["hashed"]["run"],
        data["dask"],
    ]
    assert [r["n"] for r in data["runs"]] == [1, 2]
    for run in quanta_run:
        assert run["quanta"] == 2 and run["failures"] == 0 and run["reports"] == 2
        assert run["statuses"] == {"succeeded": 2}
        # One raw read (GET), one existence check (HEAD), four outputs (PUT), as the reports say.
        assert run["requests_per_quantum"] == {"GetObject": 1.0, "HeadObject": 1.0, "PutObject": 4.0}
        assert isinstance(run["retries"], int)
        for key in (
            "wall_s",
            "quanta_per_s",
            "client_cpu_per_quantum_s",
            "utilisation",
            "cpu_limit_quanta_per_s",
        ):
            assert _number(run[key]) and run[key] > 0, key
        assert {"client", "server", "driver"} <= set(run["cpu_per_s"])
        assert isinstance(run["bottleneck"], str) and run["bottleneck"]
    assert data["dask"]["mode"] == "dask" and data["dask"]["workers"] == 2

    layouts = data["layouts"]
    assert "{id_hash:2}" in layouts["hashed"]["template"]
    default_keys, hashed_keys = layouts["default"]["keys"], layouts["hashed"]["keys"]
    assert set(default_keys["largest"]) == {"calexp", "background", "sources", "metrics"}
    assert default_keys["dataset_keys"] == hashed_keys["dataset_keys"] == 8  # 2 quanta x 4 outputs
    assert default_keys["records_keys"] == hashed_keys["records_keys"] == 6  # 3 files per quantum
    assert default_keys["lease_keys"] == hashed_keys["lease_keys"] == 2  # 1 attempt lease per quantum
    assert all(len(prefix) == 2 for prefix in hashed_keys["largest"])
    for layout in ("default", "hashed"):
        listing = layouts[layout]["listing"]
        assert listing["run_objects"] == 40 and listing["queried"] == 10
        assert listing["requests"] == {"ListObjectsV2": 1}  # 40 keys: one page either way
        assert listing["requests_for_one"] == {"HeadObject": 1}

    ingest = data["ingest"]
    assert ingest["registry"]["kind"] == ("postgresql" if registry.startswith("postgres") else "sqlite")
    assert ingest["failures"] == 0
    assert ingest["quanta"] == 1 + 5 * 2  # the raws' quantum, then five runs of two quanta
    assert ingest["counts"]["quantum"] == ingest["quanta"]
    assert _number(ingest["quanta_per_s"])
    saturation = data["saturation"]
    assert saturation["knee_n"] in (1, 2) and saturation["best_n"] in (1, 2) and saturation["text"]
    assert _number(meta["startup_cpu_s"]) and _number(saturation["ceiling_quanta_per_s"])

    report = (tmp_path / "scale.md").read_text()
    assert "**Machine**" in report and "| N | quanta/s |" in report and "**Key layouts**" in report
    assert "Dask, 2 workers" in report and "**Ingest**" in report

    # The report and plot can be rebuilt from the JSON alone.
    (tmp_path / "scale.md").unlink()
    rebuilt = subprocess.run(
        [sys.executable, "-m", "benchmarks.scale", "--report-only", "--out", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    assert (tmp_path / "scale.md").read_text() == report
