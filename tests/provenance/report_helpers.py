"""A valid execution report to build test cases from (shared by the report test modules)."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from s3qbb.provenance import QuantumExecutionReport

T0 = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.UTC)


def make(**kw: Any) -> QuantumExecutionReport:
    """A succeeded quantum's report, with ``kw`` replacing its fields."""
    values: dict[str, Any] = {
        "quantum_id": uuid.UUID(int=42),
        "task_label": "isr",
        "task_name": "lsst.ip.isr.isrTask.IsrTask",
        "run": "u/someone/run1",
        "status": "succeeded",
        "started_at": T0,
        "ended_at": T0 + datetime.timedelta(seconds=5),
        "duration_s": 5.0,
        "host": "worker-1",
        "pid": 100,
        "s3qbb_version": "0.1.0",
        "python_version": "3.12.3",
    }
    values.update(kw)
    return QuantumExecutionReport(**values)
