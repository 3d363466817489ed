"""benchmarks.client_cpu runs end to end with tiny counts; every side reads back what it wrote. No timings."""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def client_cpu(monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.syspath_prepend(str(REPO_ROOT))  # benchmarks/ is not an installed package
    return importlib.import_module("benchmarks.client_cpu")


@pytest.mark.parametrize("kind", ["dict", "bytes"])
def test_every_side_reads_back_what_it_wrote(client_cpu: object, kind: str) -> None:
    stub = client_cpu.STUB  # type: ignore[attr-defined]
    for side in client_cpu.SIDES:  # type: ignore[attr-defined]
        before = dict(stub.objects)
        put, get = client_cpu.make_side(side, kind, 3)  # type: ignore[attr-defined]
        for i in range(3):
            put(i)
        got = [get(i) for i in range(3)]
        assert len(got) == 3 and all(g for g in got), side
        written = {k: v for k, v in stub.objects.items() if k not in before}
        assert len(written) == 3, side
        # Every s3qbb write carries its write token and checksum (boto3_meta imitates them).
        tokens = ["x-amz-meta-s3qbb-write-token" in meta for _, meta in written.values()]
        assert all(tokens) if side != "boto3" else not any(tokens)


def test_cpu_figures(client_cpu: object, capsys: pytest.CaptureFixture[str]) -> None:
    results = client_cpu.cpu_per_operation("bytes", count=4, rounds=1)  # type: ignore[attr-defined]
    assert set(results) == {*client_cpu.SIDES, "cache_hit"}  # type: ignore[attr-defined]
    assert all(math.isfinite(v) and v >= 0 for by in results.values() for v in by.values())
    assert client_cpu.main(["--kind", "bytes", "--count", "3", "--rounds", "1"]) == 0  # type: ignore[attr-defined]
    assert "cache hit" in capsys.readouterr().out


def test_instructions_per_operation_is_the_difference_of_two_run_lengths(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`per_operation` takes out the child's start-up; `print_per_operation` gives ratios to the reference."""
    from benchmarks.cachegrind import per_operation, print_per_operation

    def count(side: str, puts: int, gets: int) -> int:  # start-up 10,000; put 30 or 60; get 20
        return 10_000 + puts * (30 if side == "a" else 60) + gets * 20

    results = per_operation(count, ["a", "b"], 50, 250)
    assert results == {"a": {"put": 30.0, "get": 20.0}, "b": {"put": 60.0, "get": 20.0}}
    print_per_operation(results, ["a", "b"], "a", " instr", 1.0)
    assert capsys.readouterr().out.splitlines() == [
        "put  a 30 instr (1.00x) | b 60 instr (2.00x)",
        "get  a 20 instr (1.00x) | b 20 instr (1.00x)",
    ]
