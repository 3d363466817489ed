"""Tasks that ``s3qbb run-quantum`` subprocesses of the reliability tests run (``reliability_tasks:NAME``)."""

from __future__ import annotations

import os
import signal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from s3qbb.butler import QuantumBackedButler
    from s3qbb.core.quantum import Quantum


def produce(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Write every output: ``{"detector": d}``."""
    for ref in quantum.output_refs():
        butler.put({"detector": ref.dataId["detector"], "name": ref.datasetType.name}, ref)


def combine(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Read every input and write their detectors, sorted, to every output (6 MiB for ``Bytes`` ones)."""
    detectors = sorted(butler.get(ref)["detector"] for ref in quantum.input_refs())
    for ref in quantum.output_refs():
        if ref.datasetType.storageClass.name == "Bytes":
            butler.put(bytes(detectors) * (3 * 1024**2), ref)
        else:
            butler.put({"detectors": detectors}, ref)


def fail(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Write the first output, then raise."""
    first, *_ = quantum.output_refs()
    butler.put({"partial": True}, first)
    raise ValueError("the task exploded on purpose")


def fail_with_credentials(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Read the inputs, then raise an error whose message holds the job's access key id and secret."""
    for ref in quantum.input_refs():
        butler.get(ref)
    key_id = os.environ["AWS_ACCESS_KEY_ID"]
    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    raise RuntimeError(f"could not call the service with key {key_id} and secret {secret}; secret={secret}")


def write_some_then_die(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Write every output but the last, then die by SIGKILL (nothing after this runs)."""
    for ref in quantum.output_refs()[:-1]:
        butler.put({"detector": ref.dataId["detector"]}, ref)
    os.kill(os.getpid(), signal.SIGKILL)


def write_all_or_die(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Write every output (``{"detector": d, "attempt": A}``, A from ``RELIABILITY_ATTEMPT``).

    With ``RELIABILITY_DIE_AFTER=N``, die by SIGKILL after N puts.
    """
    die_after = os.environ.get("RELIABILITY_DIE_AFTER")
    attempt = os.environ.get("RELIABILITY_ATTEMPT", "")
    for index, ref in enumerate(quantum.output_refs()):
        if die_after is not None and index == int(die_after):
            os.kill(os.getpid(), signal.SIGKILL)
        butler.put({"detector": ref.dataId["detector"], "attempt": attempt}, ref)
