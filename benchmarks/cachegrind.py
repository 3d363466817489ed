"""Instructions per operation under cachegrind, and the per-operation table, for the client-CPU benchmarks.

`benchmarks.client_cpu` (boto3, no server) and `benchmarks.obstore_cpu` (the
obstore transport against moto) count the instructions of a child process that
does ``puts`` puts and ``gets`` gets, and take the difference of a long and a
short run: the start-up of the child cancels out, and the count is the same on
a busy machine.
"""

from __future__ import annotations

__all__ = ["count_instructions", "per_operation", "print_per_operation", "require_valgrind"]

import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def require_valgrind() -> None:
    """Raise `RuntimeError` naming the package to install when valgrind is missing."""
    if shutil.which("valgrind") is None:
        raise RuntimeError("--instructions needs valgrind (apt-get install valgrind)")


def count_instructions(module: str, args: Sequence[str], env: Mapping[str, str], what: str) -> int:
    """Instructions of ``python -m module --child *args`` under cachegrind (``what`` names it in errors)."""
    done = subprocess.run(
        [
            "valgrind",
            "--tool=cachegrind",
            "--cache-sim=no",
            "--cachegrind-out-file=/dev/null",
            sys.executable,
            "-m",
            module,
            "--child",
            *args,
        ],
        capture_output=True,
        text=True,
        env=dict(env),
        cwd=REPO_ROOT,
        check=False,
    )
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"cachegrind run of {what} failed:\n{done.stderr[-3000:]}")
    return int(found.group(1).replace(",", ""))


def per_operation(
    count: Callable[[str, int, int], int], sides: Sequence[str], short: int, long: int
) -> dict[str, dict[str, float]]:
    """Per put and per get of each side: ``count(side, puts, gets)`` of a long run less a short one."""
    out: dict[str, dict[str, float]] = {}
    for side in sides:
        base = count(side, short, short)
        out[side] = {
            "put": (count(side, long, short) - base) / (long - short),
            "get": (count(side, short, long) - base) / (long - short),
        }
    return out


def print_per_operation(
    results: Mapping[str, Mapping[str, float]], sides: Sequence[str], reference: str, unit: str, scale: float
) -> None:
    """Print a put and a get line: each side's figure and its ratio to ``reference``'s (and wall, if any)."""
    for which in ("put", "get"):
        ref = results[reference][which]
        cells = [
            f"{side} {results[side][which] * scale:,.0f}{unit} ({results[side][which] / ref:.2f}x)"
            for side in sides
        ]
        print(f"{which:4s} " + " | ".join(cells))
        if f"{which}_wall" in results[reference]:
            wall = results[reference][f"{which}_wall"]
            cells = [f"{side} {results[side][f'{which}_wall'] / wall:.2f}x" for side in sides]
            print("     wall: " + " | ".join(cells))
