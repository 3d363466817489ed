"""benchmarks.obstore_cpu runs end to end with tiny counts against its own moto; no timings are checked."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from s3qbb.testing.transports import obstore_available

pytestmark = [
    pytest.mark.obstore,
    pytest.mark.skipif(not obstore_available(), reason="obstore is not installed (s3qbb[obstore])"),
]
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def obstore_cpu(monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.syspath_prepend(str(REPO_ROOT))  # benchmarks/ is not an installed package
    return importlib.import_module("benchmarks.obstore_cpu")


def test_every_side_runs_and_is_printed(obstore_cpu: object, capsys: pytest.CaptureFixture[str]) -> None:
    results = obstore_cpu.cpu_per_operation(count=2, rounds=1)  # type: ignore[attr-defined]
    sides = obstore_cpu.SIDES  # type: ignore[attr-defined]
    assert set(results) == set(sides)
    assert all(results[side]["put"] > 0 and results[side]["get"] > 0 for side in sides)
    obstore_cpu.print_per_operation(results, sides, "obstore_raw", " us", 1e6)  # type: ignore[attr-defined]
    out = capsys.readouterr().out
    assert out.startswith("put  obstore_raw") and "default" in out


def test_every_side_reads_back_what_it_wrote(obstore_cpu: object) -> None:
    server, endpoint, key_id, secret = obstore_cpu._start_moto()  # type: ignore[attr-defined]
    try:
        for side in obstore_cpu.SIDES:  # type: ignore[attr-defined]
            put, get = obstore_cpu.make_side(side, endpoint, key_id, secret, 2)  # type: ignore[attr-defined]
            put(0)
            assert get(0) == obstore_cpu._payload(), side  # type: ignore[attr-defined]
    finally:
        server.stop()
