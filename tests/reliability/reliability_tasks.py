"""Tasks that ``s3qbb run-quantum`` subprocesses of the reliability tests run (``reliability_tasks:NAME``)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

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

    With ``RELIABILITY_DIE_AFTER=N``, die by SIGKILL after N puts; with
    ``RELIABILITY_FAIL`` set, raise once every output is written.
    """
    die_after = os.environ.get("RELIABILITY_DIE_AFTER")
    attempt = os.environ.get("RELIABILITY_ATTEMPT", "")
    for index, ref in enumerate(quantum.output_refs()):
        if die_after is not None and index == int(die_after):
            os.kill(os.getpid(), signal.SIGKILL)
        butler.put({"detector": ref.dataId["detector"], "attempt": attempt}, ref)
    if os.environ.get("RELIABILITY_FAIL"):
        raise ValueError(f"attempt {attempt} failed on purpose")


# Steps of the end of a quantum (`QuantumBackedButler.finish`) where `produce_then_die_at` dies.
FINISH_STEPS = ("flush-copy", "flush-rename", "export", "upload-1", "upload-2", "upload-3")


def produce_then_die_at(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Write every output like `write_all_or_die`, then die by SIGKILL at a step of the quantum's end.

    ``RELIABILITY_DIE_AT`` names the step (one of `FINISH_STEPS`; none: no death):

    - ``flush-copy``: in the middle of copying the in-memory records to the
      temporary SQLite file (after its first page);
    - ``flush-rename``: the temporary file complete and synced, before it is
      renamed to the records file;
    - ``export``: once the records file is written, before any upload;
    - ``upload-N``: as the N-th per-quantum file (records, provenance, report) is about to be uploaded.
    """
    write_all_or_die(butler, quantum)
    step = os.environ.get("RELIABILITY_DIE_AT")
    if step:
        _die_at(step)


def _die(*args: object, **kwargs: object) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _die_at(step: str) -> None:
    """Arm a SIGKILL at ``step`` of the end of the quantum (patching modules: this process dies anyway)."""
    import sqlite3

    from s3qbb.datastores.s3 import S3Datastore
    from s3qbb.records import database

    if step == "flush-copy":
        real_connect = sqlite3.connect

        class _DyingBackup(sqlite3.Connection):
            def backup(self, target: sqlite3.Connection, *args: object, **kwargs: object) -> None:
                # One page per step; die once the first page is in the target file.
                super().backup(target, pages=1, progress=_die, sleep=0)

        def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
            kwargs.setdefault("factory", _DyingBackup)
            return real_connect(*args, **kwargs)

        sqlite3.connect = connect
    elif step == "flush-rename":
        database.os = _Os(replace=_die)  # type: ignore[attr-defined]
    elif step == "export":
        real_export = S3Datastore.export_records_file

        def export(self: S3Datastore, path: Path) -> Path:
            real_export(self, path)
            _die()
            raise AssertionError("not reached")

        S3Datastore.export_records_file = export  # type: ignore[method-assign]
    elif step.startswith("upload-"):
        real_put = S3Datastore.put_sidecar
        left = [int(step.removeprefix("upload-"))]

        def put_sidecar(self: S3Datastore, path: str, data: bytes, **kwargs: Any) -> Any:
            left[0] -= 1
            if left[0] == 0:
                _die()
            return real_put(self, path, data, **kwargs)

        S3Datastore.put_sidecar = put_sidecar  # type: ignore[method-assign]
    else:
        raise ValueError(f"unknown step {step!r}; known: {FINISH_STEPS}")


class _Os:
    """The `os` module with some functions replaced."""

    def __init__(self, **replaced: Any) -> None:
        self._replaced = replaced

    def __getattr__(self, name: str) -> Any:
        return self._replaced.get(name, getattr(os, name))
