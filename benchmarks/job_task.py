"""The task of the job start-up benchmark (`benchmarks.job_start`): one input in, one output out.

``s3qbb run-quantum ... --task benchmarks.job_task:copy`` imports this module in
the job's process, so it imports nothing itself. `copy` reads its input, puts
it as its output, and appends when that put was done (``time.time()``) and the
CPU the process had used by then (``time.process_time()``) to the file named by
``S3QBB_BENCH_MARK_FILE``, as the raw-SDK scripts of the benchmark do. With
``S3QBB_BENCH_MARK_STDERR`` set, it also writes `FIRST_PUT_LINE` to standard
error, where ``python -X importtime`` writes, so that the import profile of a
job can be cut at its first put.
"""

from __future__ import annotations

__all__ = ["FIRST_PUT_LINE", "MARK_ENV", "MARK_STDERR_ENV", "copy", "mark"]

import json
import os
import sys
import time
from typing import Any

MARK_ENV = "S3QBB_BENCH_MARK_FILE"
"""Environment variable naming the file the first-put mark is appended to."""
MARK_STDERR_ENV = "S3QBB_BENCH_MARK_STDERR"
"""Environment variable asking `mark` to write `FIRST_PUT_LINE` to standard error too."""
FIRST_PUT_LINE = "s3qbb-bench: first put done"
"""The line `mark` writes to standard error when asked."""


def mark() -> None:
    """Append ``{"t": time.time(), "cpu": time.process_time()}`` to the mark file (if one is named)."""
    line = json.dumps({"t": time.time(), "cpu": time.process_time()})
    path = os.environ.get(MARK_ENV)
    if path:
        with open(path, "a") as out:
            out.write(line + "\n")
    if os.environ.get(MARK_STDERR_ENV):
        print(FIRST_PUT_LINE, file=sys.stderr, flush=True)


def copy(butler: Any, quantum: Any) -> None:
    """Read the quantum's input and put it as its output; mark the moment the put is done."""
    (source,) = quantum.input_refs()
    (target,) = quantum.output_refs()
    butler.put(butler.get(source), target)
    mark()
