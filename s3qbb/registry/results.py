"""Plain, immutable results of registry queries and ingests.

They hold data only (no database handles), so a command-line layer can print
them or turn them into JSON (`ProvenanceTree.to_dict`, `IngestSummary.to_dict`).
"""

from __future__ import annotations

__all__ = [
    "DatasetRow",
    "IngestFailure",
    "IngestProgress",
    "IngestSummary",
    "ProvenanceTree",
    "QuantumRow",
    "StoredRecord",
]

import dataclasses
import datetime
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from .schema import DatasetRole


@dataclasses.dataclass(frozen=True, slots=True)
class StoredRecord:
    """Where one artifact of a dataset is stored: a row of the registry's datastore records."""

    datastore_name: str
    """Name of the datastore holding the artifact."""
    path: str
    """Path relative to the datastore root, or an absolute URI."""
    formatter: str
    """Fully qualified name of the formatter that wrote it."""
    storage_class: str
    """Storage class of the stored object."""
    component: str | None
    """Component stored in this artifact; `None` for the whole dataset."""
    checksum: str | None
    """``"<ALGORITHM>:<base64>"``, or `None` if not known."""
    file_size: int | None
    """Size in bytes, or `None`/-1 if not known."""


@dataclasses.dataclass(frozen=True, slots=True)
class DatasetRow:
    """A dataset known to the registry.

    ``dataset_type``, ``run`` and ``data_id`` are `None` when no ingested
    file described the dataset (an input whose producing run was not
    ingested, read by a quantum whose report lists no refs).
    """

    id: uuid.UUID
    """Dataset ID."""
    dataset_type: str | None
    """Name of its dataset type."""
    run: str | None
    """Run collection holding it."""
    data_id: Mapping[str, int | str] | None
    """Its data ID, dimension name to value."""
    records: tuple[StoredRecord, ...] = ()
    """Where its artifacts are stored; empty if it was never written (or its run was not ingested)."""

    @property
    def stored(self) -> bool:
        """Whether the registry knows where the dataset is stored."""
        return bool(self.records)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping.

        Returns
        -------
        data : `dict` [`str`, `typing.Any`]
            ``id`` as a dashed string, records as mappings.
        """
        return {
            "id": str(self.id),
            "dataset_type": self.dataset_type,
            "run": self.run,
            "data_id": None if self.data_id is None else dict(self.data_id),
            "records": [dataclasses.asdict(r) for r in self.records],
        }


@dataclasses.dataclass(frozen=True, slots=True)
class QuantumRow:
    """A quantum known to the registry, from its execution report (fields `None` without one)."""

    id: uuid.UUID
    """Quantum ID."""
    run: str | None
    """Output run."""
    task_label: str | None
    """Label of the task in its pipeline."""
    task_name: str | None
    """Fully qualified name of the task."""
    status: str | None
    """``succeeded``, ``failed``, ``interrupted`` or ``recovered``."""
    started_at: datetime.datetime | None
    """When it started (UTC)."""
    ended_at: datetime.datetime | None
    """When it ended (UTC)."""
    host: str | None
    """Host that ran it."""
    error: str | None
    """``"<exception type>: <message>"`` of a failed quantum, redacted."""
    source: str | None
    """URI of the provenance file it was ingested from."""
    datasets: Mapping[DatasetRole, tuple[uuid.UUID, ...]] = dataclasses.field(default_factory=dict)
    """Dataset IDs by role, filled by `~s3qbb.registry.Registry.quantum` (empty elsewhere)."""
    attempt: str | None = None
    """Key of the attempt whose rows the registry holds (`~s3qbb.registry.attempts.attempt_key`):
    ``<attempt id>.<1 real | 0 recovered>.<recovery time>``; `None` if ingested by an older s3qbb."""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping.

        Returns
        -------
        data : `dict` [`str`, `typing.Any`]
            IDs as dashed strings, times in ISO 8601.
        """
        return {
            "id": str(self.id),
            "run": self.run,
            "task_label": self.task_label,
            "task_name": self.task_name,
            "status": self.status,
            "started_at": None if self.started_at is None else self.started_at.isoformat(),
            "ended_at": None if self.ended_at is None else self.ended_at.isoformat(),
            "host": self.host,
            "error": self.error,
            "source": self.source,
            "attempt": self.attempt,
            "datasets": {role: [str(i) for i in ids] for role, ids in self.datasets.items()},
        }


@dataclasses.dataclass(frozen=True)
class ProvenanceTree:
    """Where a dataset came from: its producing quantum, that quantum's actual inputs, and so on upward.

    The graph is kept flat (a dataset or quantum reached twice is stored
    once), so shared ancestors and even cycles in hostile data are safe;
    `to_dict` renders it as a nested tree.
    """

    root: uuid.UUID
    """ID of the dataset asked about."""
    depth: int
    """Number of producing-quantum levels followed upward."""
    datasets: Mapping[uuid.UUID, DatasetRow]
    """Every dataset reached, the root included."""
    quanta: Mapping[uuid.UUID, QuantumRow]
    """Every producing quantum reached."""
    producers: Mapping[uuid.UUID, uuid.UUID]
    """Dataset ID to the ID of the quantum that wrote it (actual output), where known and followed."""
    inputs: Mapping[uuid.UUID, tuple[uuid.UUID, ...]]
    """Quantum ID to the IDs of its actual inputs, sorted."""

    @property
    def dataset(self) -> DatasetRow:
        """The dataset asked about."""
        return self.datasets[self.root]

    @property
    def producer(self) -> QuantumRow | None:
        """The quantum that wrote the dataset asked about, if known."""
        return self.producer_of(self.root)

    def producer_of(self, dataset_id: uuid.UUID) -> QuantumRow | None:
        """Return the quantum that wrote a dataset of the tree.

        Parameters
        ----------
        dataset_id : `uuid.UUID`
            A dataset of the tree.

        Returns
        -------
        quantum : `QuantumRow` or `None`
            Its producer, or `None` if unknown or beyond the depth followed.
        """
        qid = self.producers.get(dataset_id)
        return None if qid is None else self.quanta[qid]

    def inputs_of(self, dataset_id: uuid.UUID) -> list[DatasetRow]:
        """Return the actual inputs of the quantum that wrote a dataset.

        Parameters
        ----------
        dataset_id : `uuid.UUID`
            A dataset of the tree.

        Returns
        -------
        inputs : `list` [`DatasetRow`]
            Sorted by ID; empty if the producer is unknown or read nothing.
        """
        qid = self.producers.get(dataset_id)
        return [] if qid is None else [self.datasets[i] for i in self.inputs.get(qid, ())]

    def ancestors(self) -> set[uuid.UUID]:
        """Return the IDs of every dataset the root was derived from, within the depth followed.

        Returns
        -------
        ids : `set` [`uuid.UUID`]
            Every dataset of the tree but the root (unless it is its own ancestor).
        """
        found = {i for ids in self.inputs.values() for i in ids}
        return found if self.root in found else found - {self.root}

    def to_dict(self) -> dict[str, Any]:
        """Render the graph as a nested, JSON-ready tree.

        Returns
        -------
        tree : `dict` [`str`, `typing.Any`]
            ``{"dataset": {...}, "producer": {...} or None, "inputs": [<tree>, ...]}``;
            a dataset already shown higher on the same branch (a cycle) is shown
            with ``"cycle": true`` and no inputs.
        """

        def node(dataset_id: uuid.UUID, path: frozenset[uuid.UUID]) -> dict[str, Any]:
            out: dict[str, Any] = {"dataset": self.datasets[dataset_id].to_dict()}
            if dataset_id in path:
                out["cycle"] = True
                return out
            producer = self.producer_of(dataset_id)
            out["producer"] = None if producer is None else producer.to_dict()
            out["inputs"] = [node(row.id, path | {dataset_id}) for row in self.inputs_of(dataset_id)]
            return out

        return node(self.root, frozenset())


class IngestFailure(NamedTuple):
    """A file (or a quantum's files) that ingest reported and skipped."""

    key: str
    """``s3://bucket/key`` of the file."""
    reason: str
    """What is wrong with it, credentials redacted."""


@dataclasses.dataclass(frozen=True, slots=True)
class IngestProgress:
    """Where an ingest stands; passed to the ``progress`` callback of an ingest."""

    total: int
    """Quanta to download and insert (those not in the registry yet)."""
    done: int
    """Quanta processed so far (inserted, found already there, or failed)."""
    quanta_added: int
    """Quanta inserted so far."""
    failures: int
    """Files reported as failures so far."""
    bytes_downloaded: int
    """Bytes downloaded so far."""


@dataclasses.dataclass(frozen=True)
class IngestSummary:
    """What an ingest did."""

    uri: str
    """The run prefix ingested."""
    registry: str
    """The registry URL, password hidden."""
    quanta_listed: int
    """Quanta with at least one file under ``_records/``."""
    quanta_added: int
    """Quanta inserted by this ingest."""
    quanta_skipped: int
    """Quanta already in the registry (from an earlier or concurrent ingest), or whose files describe
    an attempt earlier than (or the same as) the one the registry holds."""
    datasets_added: int
    """Datasets inserted."""
    records_added: int
    """Datastore records inserted."""
    bytes_downloaded: int
    """Bytes downloaded."""
    failures: list[IngestFailure]
    """Files reported and skipped: ``(key, reason)`` pairs."""
    elapsed_s: float = 0.0
    """Wall-clock duration in seconds."""
    requests: Mapping[str, int] = dataclasses.field(default_factory=dict)
    """S3 requests made, by operation (``{"ListObjectsV2": 1, "GetObject": 80}``)."""
    quanta_replaced: int = 0
    """Quanta in the registry whose rows were replaced by those of a later attempt."""

    @property
    def nothing_new(self) -> bool:
        """Whether the ingest added nothing (every quantum was already there, or none was found)."""
        return (
            self.quanta_added == 0
            and self.quanta_replaced == 0
            and self.datasets_added == 0
            and self.records_added == 0
        )

    def describe(self) -> str:
        """Return a short human-readable report.

        Returns
        -------
        text : `str`
            One line of totals, a line saying when nothing was new, then
            one line per failure.
        """
        rate = f", {self.quanta_added / self.elapsed_s:.0f} quanta/s" if self.elapsed_s > 0 else ""
        lines = [
            f"{self.uri} -> {self.registry}: {self.quanta_added} quanta added, "
            + (f"{self.quanta_replaced} replaced by a later attempt, " if self.quanta_replaced else "")
            + f"{self.quanta_skipped} already present, "
            f"{self.datasets_added} datasets, {self.records_added} records, "
            f"{self.bytes_downloaded} bytes downloaded, {len(self.failures)} failures "
            f"in {self.elapsed_s:.1f} s{rate}"
        ]
        if self.nothing_new and not self.failures:
            lines.append(
                f"Nothing new: all {self.quanta_listed} quanta listed were already in the registry."
                if self.quanta_listed
                else "Nothing new: no per-quantum files were found under this prefix."
            )
        lines += [f"FAILED {f.key}: {f.reason}" for f in self.failures]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping of every field (failures as ``{"key", "reason"}``).

        Returns
        -------
        data : `dict` [`str`, `typing.Any`]
            The summary.
        """
        data = dataclasses.asdict(self)
        data["failures"] = [f._asdict() for f in self.failures]
        data["requests"] = dict(self.requests)
        return data
