"""Tasks of the graph tests (``graph_tasks:NAME``), imported by ``s3qbb run-quantum`` subprocesses.

Each call appends a line to ``$GRAPH_TEST_MARKERS/<quantum id>`` (when set), so tests count task calls.
``hold`` waits while ``$GRAPH_TEST_GATE`` names a file that does not exist (to be killed mid-run).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from s3qbb.butler import QuantumBackedButler
    from s3qbb.core.quantum import Quantum


def _mark(quantum: Quantum) -> None:
    markers = os.environ.get("GRAPH_TEST_MARKERS")
    if markers:
        with (Path(markers) / str(quantum.id)).open("a") as f:
            f.write(f"{os.getpid()}\n")


def produce(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Write ``{"detector": d, "sum": d}`` to every output (plus ``"salt"``: ``$GRAPH_TEST_SALT``, if set,
    so that a re-run writes other bytes)."""
    _mark(quantum)
    salt = os.environ.get("GRAPH_TEST_SALT")
    for ref in quantum.output_refs():
        d = dict(ref.dataId).get("detector", 0)
        butler.put({"detector": d, "sum": d, **({"salt": salt} if salt else {})}, ref)


def combine(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Read every input; write the sum of their ``sum`` plus 100 to every output."""
    _mark(quantum)
    _combine(butler, quantum)


def _combine(butler: QuantumBackedButler, quantum: Quantum) -> None:
    total = sum(butler.get(ref)["sum"] for ref in quantum.input_refs())
    for ref in quantum.output_refs():
        butler.put({"detector": dict(ref.dataId).get("detector"), "sum": total + 100}, ref)


def hold(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Like `combine`, but for the last detector first wait while the gate file is missing."""
    gate = os.environ.get("GRAPH_TEST_GATE")
    _mark(quantum)
    held = quantum.dataId is not None and quantum.dataId["detector"] == 2
    while held and gate and not Path(gate).exists():
        time.sleep(0.05)
    _combine(butler, quantum)


def fail(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Raise."""
    _mark(quantum)
    raise RuntimeError("this task fails on purpose")


def transient(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Like `combine`, but detector 1 raises `ConnectionError` (``run-quantum`` exits 75: retryable)."""
    _mark(quantum)
    if quantum.dataId is not None and quantum.dataId["detector"] == 1:
        raise ConnectionError("object store connection reset (simulated)")
    _combine(butler, quantum)


def write_then_hold(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Like `combine`; for the last detector, after writing, create ``$GRAPH_TEST_GATE.ready`` and wait
    while the gate file is missing (an attempt that has written its outputs and still runs)."""
    _mark(quantum)
    _combine(butler, quantum)
    gate = os.environ.get("GRAPH_TEST_GATE")
    if gate and quantum.dataId is not None and quantum.dataId["detector"] == 2:
        Path(gate + ".ready").touch()
        while not Path(gate).exists():
            time.sleep(0.05)


def read_after_gate(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Like `combine`; for the last detector, create ``$GRAPH_TEST_GATE.ready`` first and wait while the
    gate file is missing before reading its inputs (a quantum whose inputs' records are already known)."""
    _mark(quantum)
    gate = os.environ.get("GRAPH_TEST_GATE")
    if gate and quantum.dataId is not None and quantum.dataId["detector"] == 2:
        Path(gate + ".ready").touch()
        while not Path(gate).exists():
            time.sleep(0.05)
    _combine(butler, quantum)


def set_environ(name: str, value: str | None) -> None:
    """Set (or, with `None`, remove) an environment variable: run on Dask workers by ``Client.run``."""
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def slow(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Like `combine`, after sleeping 1.5 s (a run that is still going when it is told to stop)."""
    _mark(quantum)
    time.sleep(1.5)
    _combine(butler, quantum)
