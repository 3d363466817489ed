"""The task of the job start-up benchmark (`benchmarks.job_start`): one input in, one output out.

``s3qbb run-quantum ... --task benchmarks.job_task:copy`` imports this module in
the job's process, so it imports nothing itself. `copy` reads its input, puts
it as its output, and appends when that put was done (``time.time()``) and the
CPU the process had used by then (``time.process_time()``) to the file named by
``S3QBB_BENCH_MARK_FILE``, as the raw-SDK scripts of the benchmark do.
"""

from __future__ import annotations

__all__ = ["MARK_ENV", "copy", "mark"]

import json
import os
import time
from typing import Any

MARK_ENV = "S3QBB_BENCH_MARK_FILE"
"""Environment variable naming the file the first-put mark is appended to."""


def mark() -> None:
    """Append ``{"t": time.time(), "cpu": time.process_time()}`` to the mark file (if one is named)."""
    line = json.dumps({"t": time.time(), "cpu": time.process_time()})
    path = os.environ.get(MARK_ENV)
    if path:
        with open(path, "a") as out:
            out.write(line + "\n")


def copy(butler: Any, quantum: Any) -> None:
    """Read the quantum's input and put it as its output; mark the moment the put is done."""
    (source,) = quantum.input_refs()
    (target,) = quantum.output_refs()
    butler.put(butler.get(source), target)
    mark()
