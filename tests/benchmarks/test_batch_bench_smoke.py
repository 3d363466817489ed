"""``benchmarks.batch_bench`` runs end to end with tiny counts on moto (no timing checks)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.moto_server


def test_graph_load_part_runs(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.syspath_prepend(str(REPO_ROOT))  # benchmarks/ is not an installed package
    bench = importlib.import_module("benchmarks.batch_bench")
    assert bench.main(["--only", "load", "--graph-size", "200"]) == 0
    out = capsys.readouterr().out
    assert "graph load: 200 quanta" in out and "load + decode every one" in out
