"""Tasks of the job-environment tests (``env_tasks:NAME``): disks that fill, servers that go away."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from s3qbb.butler import QuantumBackedButler
    from s3qbb.core.quantum import Quantum


def _wait_for(path: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)


def fill_disk_then_produce(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Fill the file system of ``$ENV_TEST_FILL`` but ``$ENV_TEST_LEAVE`` bytes, then write every output."""
    path = os.environ["ENV_TEST_FILL"]
    stat = os.statvfs(os.path.dirname(path))
    free = stat.f_bavail * stat.f_frsize - int(os.environ.get("ENV_TEST_LEAVE", "0"))
    with open(path, "wb") as filler:
        filler.write(b"\0" * max(0, free))
    for ref in quantum.output_refs():
        butler.put({"detector": dict(ref.dataId)["detector"]}, ref)


def produce_with_pause(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Write half the outputs, create ``$ENV_TEST_READY``, wait for ``$ENV_TEST_GO``, write the rest."""
    refs = quantum.output_refs()
    half = len(refs) // 2
    for ref in refs[:half]:
        butler.put({"detector": dict(ref.dataId)["detector"]}, ref)
    if "ENV_TEST_READY" in os.environ:
        open(os.environ["ENV_TEST_READY"], "w").close()
        _wait_for(os.environ["ENV_TEST_GO"])
    for ref in refs[half:]:
        butler.put({"detector": dict(ref.dataId)["detector"]}, ref)


def read_all_write_all(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Read every input, write every output (``{"detector": d, "inputs": n}``), read every output back."""
    inputs = [butler.get(ref)["detector"] for ref in quantum.input_refs()]
    for ref in quantum.output_refs():
        butler.put({"detector": dict(ref.dataId)["detector"], "inputs": len(inputs)}, ref)
    for ref in quantum.output_refs():
        assert butler.get(ref)["detector"] == dict(ref.dataId)["detector"]


def big_put(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Create ``$ENV_TEST_READY`` (if set), then write 40 MiB of ``Z`` to every (``Bytes``) output."""
    if "ENV_TEST_READY" in os.environ:
        open(os.environ["ENV_TEST_READY"], "w").close()
    for ref in quantum.output_refs():
        butler.put(b"Z" * (40 * 1024**2), ref)


def fail_in_unicode(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Write the first output, then raise an error whose message is not ASCII."""
    first, *_ = quantum.output_refs()
    butler.put({"partial": True}, first)
    raise ValueError(f"pixel café ☃ saturated in run {first.run}")
