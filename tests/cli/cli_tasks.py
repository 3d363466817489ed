"""Tasks that the ``s3qbb run-quantum`` subprocesses of the CLI tests run (``cli_tasks:NAME``)."""

from __future__ import annotations

import contextlib
import os
import signal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from s3qbb.butler import QuantumBackedButler
    from s3qbb.core.quantum import Quantum


def produce(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Write every output: ``{"name": <dataset type>, "detector": d}`` (no inputs read)."""
    for ref in quantum.output_refs():
        data_id = dict(ref.dataId)
        butler.put({"name": ref.datasetType.name, "detector": data_id.get("detector")}, ref)


def combine(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Read every input; write the sorted detectors read to every output."""
    detectors = sorted(butler.get(ref)["detector"] for ref in quantum.input_refs())
    for ref in quantum.output_refs():
        butler.put({"name": ref.datasetType.name, "detector": detectors[0], "read": detectors}, ref)


def fail(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Write the first output, then raise."""
    first, *_ = quantum.output_refs()
    butler.put({"partial": True}, first)
    raise ValueError("the task failed on purpose")


def exit_after_first_put(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Write the first output, then call ``sys.exit`` with ``$CLI_TEST_EXIT`` (an int if it is one)."""
    import sys

    first, *_ = quantum.output_refs()
    butler.put({"partial": True}, first)
    status = os.environ["CLI_TEST_EXIT"]
    sys.exit(int(status) if status.lstrip("-").isdigit() else status)


def fail_with_secret(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Raise an error whose message holds the job's secret access key."""
    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    raise RuntimeError(f"cannot call the service: aws_secret_access_key={secret} secret {secret}")


def write_some_then_die(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Write every output but the last, then die by SIGKILL (as the out-of-memory killer would)."""
    for ref in quantum.output_refs()[:-1]:
        butler.put({"detector": dict(ref.dataId)["detector"]}, ref)
    os.kill(os.getpid(), signal.SIGKILL)


def count_calls(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Append a line to ``$S3QBB_TEST_CALLS`` (a file counting the calls); write nothing."""
    with open(os.environ["S3QBB_TEST_CALLS"], "a") as calls:
        calls.write(f"{quantum.id}\n")


def delete_bucket_then_put(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Delete the datastore's bucket (as an operator might by mistake), then write the first output."""
    import boto3

    bucket = os.environ["S3QBB_TEST_BUCKET"]
    client = boto3.client("s3", region_name="us-east-1")
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    for item in listed:
        client.delete_object(Bucket=bucket, Key=item["Key"])
    client.delete_bucket(Bucket=bucket)
    first, *_ = quantum.output_refs()
    butler.put({"detector": 1}, first)


def catch_everything(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Wrap a storage failure in the task's own error, as task code often does."""
    try:
        delete_bucket_then_put(butler, quantum)
    except Exception as err:
        raise RuntimeError("the task could not save its result") from err


def fail_quoting(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Raise an error quoting, bare, the text of ``CLI_TEST_QUOTE`` (e.g. a key from the config file)."""
    raise RuntimeError(f"the service refused token {os.environ['CLI_TEST_QUOTE']} (check it)")


def _ready() -> None:
    """Tell the test the task is running (it waits for ``$S3QBB_TEST_READY`` to exist)."""
    from pathlib import Path

    ready = Path(os.environ["S3QBB_TEST_READY"])
    partial = ready.with_suffix(".partial")
    partial.write_text("running\n")
    partial.rename(ready)  # atomic: the test never sees a half-written file


def produce_then_hang(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Write the first output as `produce` does, then wait for a signal."""
    import time

    first = quantum.output_refs()[0]
    butler.put({"name": first.datasetType.name, "detector": dict(first.dataId).get("detector")}, first)
    _ready()
    time.sleep(120)


def produce_then_signal_later(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Write every output as `produce` does; arrange a SIGTERM of this process at ``$CLI_TEST_SIGNAL_AT``.

    ``print``: as the job prints its JSON outcome (``--json``); ``return``: once the command returned,
    in `s3qbb.cli.main.main`; ``exit``: while the interpreter exits (`atexit`). Each point comes after
    the job's exit code is decided, deterministically (no timing).
    """
    import atexit
    import json
    import sys

    produce(butler, quantum)
    at = os.environ["CLI_TEST_SIGNAL_AT"]
    if at == "print":
        dumps = json.dumps

        def signalling_dumps(obj: object, **kwargs: object) -> str:
            if sys._getframe(1).f_globals.get("__name__") == "s3qbb.cli.run_quantum":
                signal.raise_signal(signal.SIGTERM)
            return dumps(obj, **kwargs)  # type: ignore[arg-type]

        json.dumps = signalling_dumps
    elif at == "return":
        main_module = sys.modules["s3qbb.cli.main"]  # `s3qbb.cli.main` is also the function
        unfreeze = main_module.unfreeze_gc

        def signalling_unfreeze() -> None:
            signal.raise_signal(signal.SIGTERM)
            unfreeze()

        main_module.unfreeze_gc = signalling_unfreeze
    else:
        atexit.register(signal.raise_signal, signal.SIGTERM)


def ignore_interrupts(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Swallow every interrupt and keep running (a badly written task): only the grace period ends it."""
    import time

    deadline = time.monotonic() + 120
    ready = False
    while time.monotonic() < deadline:
        with contextlib.suppress(KeyboardInterrupt):
            if not ready:
                _ready()  # inside the suppression: a signal may come as soon as the test sees it
                ready = True
            time.sleep(120)


GC_SEEN: list[tuple[bool, bool]] = []
"""What `record_gc` saw: whether the garbage collector was on, and whether objects were frozen."""


def record_gc(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Record the garbage collector's state in `GC_SEEN`, then write every output as `produce` does."""
    import gc

    GC_SEEN.append((gc.isenabled(), gc.get_freeze_count() > 0))
    produce(butler, quantum)


def produce_then_wait(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Write every output with this process's ID, say so, then wait until ``$S3QBB_TEST_GATE`` exists."""
    import time
    from pathlib import Path

    for ref in quantum.output_refs():
        butler.put({"name": ref.datasetType.name, "pid": os.getpid()}, ref)
    _ready()
    gate = Path(os.environ["S3QBB_TEST_GATE"])
    deadline = time.monotonic() + 120
    while not gate.exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def produce_with_pid(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Write every output with this process's ID."""
    for ref in quantum.output_refs():
        butler.put({"name": ref.datasetType.name, "pid": os.getpid()}, ref)


def produce_at_gate(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Say the task runs, wait until ``$S3QBB_TEST_GATE`` exists, then write every output.

    Each output holds ``$S3QBB_TEST_BODY_KIB`` KiB of filler (1 by default) and, unless
    ``$S3QBB_TEST_IDENTICAL`` is set, this process's ID: racing attempts then write identical or
    different bytes.
    """
    import time
    from pathlib import Path

    ready = Path(os.environ["S3QBB_TEST_READY"]) / str(os.getpid())
    ready.write_text("running\n")
    gate = Path(os.environ["S3QBB_TEST_GATE"])
    deadline = time.monotonic() + 120
    while not gate.exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    filler = "x" * (1024 * int(os.environ.get("S3QBB_TEST_BODY_KIB", "1")))
    for ref in quantum.output_refs():
        body: dict[str, object] = {"name": ref.datasetType.name, "filler": filler}
        if not os.environ.get("S3QBB_TEST_IDENTICAL"):
            body["pid"] = os.getpid()
        butler.put(body, ref)
