"""Recover quanta that left no records (killed jobs): find their outputs by listing, write their files.

A job killed with SIGKILL (out of memory, preempted, timed out) never runs
the butler's exit, so its outputs sit in S3 without the per-quantum files
that ``s3qbb ingest`` reads. `recover_quanta` takes the quantum descriptions,
skips the quanta that did leave an execution report, finds the others'
outputs at their templated locations (one LIST per 1,000 keys) and writes
their records, provenance and a report with status ``recovered``. A normal
ingest then records them like any other quantum.
"""

from __future__ import annotations

__all__ = ["RecoveredQuantum", "load_quanta", "recover_quanta"]

import datetime
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..core.dataset_ref import DatasetRef
    from ..core.dimensions import DimensionUniverse
    from ..core.quantum import Quantum
    from ..core.records import StoredFileInfo
    from ..datastores.s3 import S3Datastore
    from ..repo import RepoConfig


@dataclass(frozen=True)
class RecoveredQuantum:
    """What recovery found for one quantum."""

    quantum_id: str
    status: str
    """``recovered``, or ``skipped`` when the quantum had left its report."""
    outputs_found: int = 0
    outputs_missing: int = 0
    uploaded: tuple[str, ...] = ()


def load_quanta(location: str | os.PathLike[str], universe: DimensionUniverse) -> list[Quantum]:
    """Read every quantum description (``*.json``) in a local directory or under an ``s3://`` prefix.

    Raises
    ------
    ConfigError
        If the location holds no description or one is invalid.
    """
    from .execution import load_quantum

    where = os.fspath(location)
    if where.startswith("s3://"):
        from ..config import S3EndpointConfig
        from ..s3.client import make_client
        from ..s3.config_files import split_s3_uri

        bucket, prefix = split_s3_uri(where.rstrip("/") + "/")
        client = make_client(S3EndpointConfig.from_env())
        keys = [
            item["Key"]
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for item in page.get("Contents", [])
            if item["Key"].endswith(".json")
        ]
        sources: list[str] = [f"s3://{bucket}/{k}" for k in sorted(keys)]
    else:
        path = Path(where)
        sources = [str(p) for p in sorted(path.rglob("*.json"))] if path.is_dir() else [str(path)]
    if not sources:
        raise ConfigError(f"No quantum descriptions (*.json) found at {where}.")
    return [load_quantum(source, universe) for source in sources]


def recover_quanta(
    config: RepoConfig | Mapping[str, Any] | str | os.PathLike[str],
    quanta: Iterable[Quantum],
) -> list[RecoveredQuantum]:
    """Write records, provenance and a ``recovered`` report for quanta that left none.

    Parameters
    ----------
    config : `RepoConfig`, mapping, `str` or `os.PathLike`
        Repository configuration (the datastore the quanta wrote to).
    quanta : iterable of `Quantum`
        Quantum descriptions, as given to ``s3qbb run-quantum``.

    Returns
    -------
    recovered : `list` [`RecoveredQuantum`]
        One entry per quantum.
    """
    from ..datastores.s3 import S3Datastore
    from ..provenance.files import host_info, provenance_key, records_key, report_key
    from ..provenance.model import QuantumDatasetCounts, QuantumExecutionReport, QuantumProvenanceData
    from ..repo import build_datastore, load_repo_config

    repo = load_repo_config(config)
    repo = repo.model_copy(
        update={
            "datastore": repo.datastore.model_copy(update={"trust_mode": True}),
            "cache": repo.cache.model_copy(update={"enabled": False}),
        }
    )
    results: list[RecoveredQuantum] = []
    host = host_info()
    for quantum in quanta:
        outputs = quantum.output_refs()
        runs = {ref.run for ref in outputs}
        if len(runs) != 1:
            results.append(RecoveredQuantum(str(quantum.id), "skipped"))
            continue
        run = runs.pop()
        datastore = build_datastore(repo)
        if not isinstance(datastore, S3Datastore):
            raise ConfigError("Recovery needs an S3 datastore configuration.")
        try:
            if datastore.read_sidecar(report_key(run, quantum.id)) is not None:
                results.append(RecoveredQuantum(str(quantum.id), "skipped"))
                continue
            found = [ref for ref, ok in datastore.stored_many(outputs).items() if ok]
            if found:
                datastore.records.insert([_adopted_record(datastore, ref) for ref in found])
            records = datastore.export_records(found)
            inputs = quantum.input_refs()
            provenance = QuantumProvenanceData(
                predicted_inputs=frozenset(r.id for r in inputs),
                available_inputs=frozenset(),
                actual_inputs=frozenset(),
                predicted_outputs=frozenset(r.id for r in outputs),
                actual_outputs=frozenset(r.id for r in found),
                datastore_records={name: data.to_simple() for name, data in records.items()},
            )
            now = datetime.datetime.now(datetime.UTC)
            from ..core.wire import dataset_ref_to_simple

            report = QuantumExecutionReport(
                quantum_id=quantum.id,
                task_label=quantum.taskLabel or "unknown",
                task_name=quantum.taskName or quantum.taskLabel or "unknown",
                run=run,
                status="recovered",
                started_at=now,
                ended_at=now,
                duration_s=0.0,
                host=host.host,
                pid=host.pid,
                s3qbb_version=host.s3qbb_version,
                python_version=host.python_version,
                datastores={datastore.name: datastore.get_root()},
                warnings=[
                    "Recovered after the job left no records: input usage is unknown; "
                    f"{len(found)} of {len(outputs)} predicted outputs were found by listing."
                ],
                datasets=QuantumDatasetCounts.from_provenance(provenance),
                refs=[dataset_ref_to_simple(r) for r in [*inputs, *outputs]],
            )
            uploaded = []
            with _tempdir() as tmp:
                db = datastore.export_records_file(tmp / "records.sqlite3")
                for path, data in (
                    (records_key(run, quantum.id), db.read_bytes()),
                    (provenance_key(run, quantum.id), provenance.to_json()),
                    (report_key(run, quantum.id), report.to_json()),
                ):
                    uploaded.append(str(datastore.put_sidecar(path, data, overwrite=True)))
            results.append(
                RecoveredQuantum(
                    str(quantum.id), "recovered", len(found), len(outputs) - len(found), tuple(uploaded)
                )
            )
        finally:
            datastore.close()
    return results


def _adopted_record(datastore: S3Datastore, ref: DatasetRef) -> StoredFileInfo:
    """Return the record of an object found at its templated location (size and checksum: one HEAD).

    s3qbb writes the full-object checksum into each object's metadata, so a
    recovered dataset is verified on read like any other.
    """
    from ..s3.objects import WRITE_CHECKSUM

    info = datastore.predicted_record(ref)
    head = datastore.bucket.head(datastore.key(info.path))
    if head is None:  # deleted since the listing
        return info
    return info.update(file_size=head.size, checksum=head.metadata.get(WRITE_CHECKSUM))


class _tempdir:  # noqa: N801 (a context manager used like a function)
    def __enter__(self) -> Path:
        import tempfile

        self._dir = tempfile.TemporaryDirectory(prefix="s3qbb-recover-")
        return Path(self._dir.name)

    def __exit__(self, *exc: object) -> None:
        self._dir.cleanup()
