"""Interleaved timing of competing implementations of one operation.

`run_interleaved` warms every side up, then runs trials in which each side
performs ``ops_per_trial`` operations, rotating the order of the sides from
one trial to the next so that drift (server caches filling, the machine
warming up) affects every side alike. Each operation is timed on its own:
wall time with `time.perf_counter` and client CPU time with
`time.process_time` (all threads of this process; the servers run in other
processes). HTTP requests are counted per side with
`s3qbb.testing.faults.RequestCounter` during the timed operations only.
"""

from __future__ import annotations

import gc
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["RequestSource", "Side", "SideResult", "percentile", "run_interleaved", "summarise"]


class RequestSource(Protocol):
    """Anything that counts requests by operation: `s3qbb.testing.faults.RequestCounter`, ..."""

    @property
    def requests(self) -> Counter[str]:
        """Requests so far by operation name (a copy)."""
        ...


@dataclass
class Side:
    """One implementation of the operation being measured.

    Attributes
    ----------
    name : `str`
        Key of the side in the results (``"s3qbb"``, ``"boto3"`` ...).
    op : `~collections.abc.Callable` [[`int`], `object`]
        Performs operation number ``i`` (numbers are unique per side: warm-up
        operations come first, so ``op`` can pick a fresh key or ref by ``i``).
    counter : `RequestSource`, optional
        Counter of the requests the side sends (a `s3qbb.testing.faults.RequestCounter`
        on its boto3 client, or a datastore's ``stats``); without one the
        side's requests are not counted (``requests_per_op`` is NaN).
    warmup : `~collections.abc.Callable` [[], `object`], optional
        Warm-up to run instead of calling ``op`` (for bulk operations).
    """

    name: str
    op: Callable[[int], object]
    counter: RequestSource | None = None
    warmup: Callable[[], object] | None = None


@dataclass
class SideResult:
    """Samples and request counts of one side."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    requests: Counter[str] = field(default_factory=Counter)
    counted: bool = True
    """Whether the side's requests were counted (it had a counter)."""
    server_cpu: float = 0.0
    """CPU seconds the server process used during this side's trials (NaN if unknown)."""

    @property
    def ops(self) -> int:
        """Number of timed operations."""
        return len(self.wall)


def percentile(samples: Sequence[float], q: float) -> float:
    """Return the ``q``-th percentile (0-100) with linear interpolation."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    pos = (len(ordered) - 1) * q / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def run_interleaved(
    sides: Sequence[Side],
    *,
    trials: int,
    ops_per_trial: int,
    warmup_ops: int,
    after_trial: Callable[[str], object] | None = None,
    server_cpu: Callable[[], float] | None = None,
) -> dict[str, SideResult]:
    """Time the sides against each other.

    Parameters
    ----------
    sides : `~collections.abc.Sequence` [`Side`]
        The implementations.
    trials : `int`
        Number of rounds; each side runs once per round, in rotating order.
    ops_per_trial : `int`
        Operations per side per round, each timed on its own.
    warmup_ops : `int`
        Untimed operations per side before the first round (``Side.warmup``
        is called once instead when given).
    after_trial : `~collections.abc.Callable` [[`str`], `object`], optional
        Untimed clean-up called with the side's name after each of its trials.
    server_cpu : `~collections.abc.Callable` [[], `float`], optional
        Cumulative CPU seconds of the server process, read around each trial.

    Returns
    -------
    results : `dict` [`str`, `SideResult`]
        Samples by side name.
    """
    results = {side.name: SideResult() for side in sides}
    next_index = dict.fromkeys(results, 0)
    for side in sides:
        if side.warmup is not None:
            side.warmup()
        else:
            for _ in range(warmup_ops):
                side.op(next_index[side.name])
                next_index[side.name] += 1
        if after_trial is not None:
            after_trial(side.name)
    for trial in range(trials):
        shift = trial % len(sides)
        for side in [*sides[shift:], *sides[:shift]]:
            _run_trial(side, results[side.name], ops_per_trial, next_index, server_cpu)
            if after_trial is not None:
                after_trial(side.name)
    return results


def _run_trial(
    side: Side,
    result: SideResult,
    ops: int,
    next_index: dict[str, int],
    server_cpu: Callable[[], float] | None,
) -> None:
    gc.collect()
    before = side.counter.requests if side.counter is not None else Counter[str]()
    server_before = server_cpu() if server_cpu is not None else math.nan
    for _ in range(ops):
        index = next_index[side.name]
        next_index[side.name] += 1
        c0 = time.process_time()
        t0 = time.perf_counter()
        side.op(index)
        t1 = time.perf_counter()
        c1 = time.process_time()
        result.wall.append(t1 - t0)
        result.cpu.append(c1 - c0)
    result.server_cpu += (server_cpu() if server_cpu is not None else math.nan) - server_before
    if side.counter is not None:
        result.requests.update(side.counter.requests - before)
    else:
        result.counted = False


def summarise(result: SideResult, *, bytes_per_op: int = 0) -> dict[str, Any]:
    """Return the JSON summary of a side: medians, p90, CPU and requests per operation."""
    ops = result.ops
    summary: dict[str, Any] = {
        "ops": ops,
        "wall_median_s": percentile(result.wall, 50),
        "wall_p90_s": percentile(result.wall, 90),
        "wall_mean_s": sum(result.wall) / ops if ops else math.nan,
        "cpu_median_s": percentile(result.cpu, 50),
        "cpu_mean_s": sum(result.cpu) / ops if ops else math.nan,
        "server_cpu_per_op_s": result.server_cpu / ops if ops else math.nan,
        "requests_per_op": result.requests.total() / ops if ops and result.counted else math.nan,
        "requests": dict(sorted((k, v / ops) for k, v in result.requests.items())) if ops else {},
    }
    if bytes_per_op:
        summary["bytes_per_op"] = bytes_per_op
        summary["throughput_mib_s"] = bytes_per_op / 2**20 / summary["wall_median_s"]
    return summary
