"""Turn a validated quantum's files into registry rows, in the form the database driver takes.

`build_rows` makes the rows of one quantum (in the ingest worker threads);
`batch_rows` merges a batch of quanta's rows, one row per primary key and
sorted by it, for `~s3qbb.registry.writer.RegistryWriter` to insert.

The form of a row
-----------------
A row is a plain tuple of its table's column values in column order, what
SQLite's ``executemany`` and PostgreSQL's ``COPY`` take: UUIDs as their 32
lowercase hex digits (what SQLAlchemy's `~sqlalchemy.types.Uuid` stores on
SQLite, and a valid text of PostgreSQL's ``uuid``), strings, integers and
`None`; only the quantum row's two times stay `datetime.datetime` (the
column's bind processor converts them on SQLite). Python's garbage collector
stops tracking a tuple of such values at its first collection, so the rows
of the quanta waiting for their batch are no longer traversed by every full
collection, as the earlier per-row dicts holding `uuid.UUID` objects were
(garbage collection was the largest part of ingest's client CPU). Fixed-width
lowercase hex digits sort as the UUIDs' integers do, the order of the
database's primary keys.

Where the dataset types, runs and data IDs come from
-----------------------------------------------------
The provenance file holds dataset IDs and the datastore records of the
outputs only. The execution report's ``refs`` list (each a
`~s3qbb.core.wire.SerializedDatasetRef`: ID, dataset type with storage
class and dimensions, data ID, run) describes the quantum's datasets. When a
report or a ref is missing, the dataset row keeps what is known: an output
gets the quantum's run, everything else stays `None`, and a later ingest
that knows more (the producing run, a report with refs) fills the gaps.
"""

from __future__ import annotations

__all__ = ["ROW_TABLES", "BatchRows", "QuantumRows", "Row", "batch_rows", "build_rows"]

import dataclasses
import functools
import itertools
import json
import operator
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..core.records import NULL_COMPONENT
from .attempts import attempt_key
from .schema import DATASET_ROLES, check_values, make_tables

if TYPE_CHECKING:
    from ..core.wire import SerializedDatasetRef
    from .sources import QuantumBundle

Row = tuple[Any, ...]
"""One row: its table's column values, in column order."""

ROW_TABLES: dict[str, int] = {
    "dataset_types": 1,
    "runs": 1,
    "datasets": 1,
    "data_ids": 2,
    "records": 3,
    "quanta": 1,
    "edges": 3,
}
"""The row lists of `QuantumRows`, in `~s3qbb.registry.schema.RegistryTables.insert_order`, with the
number of primary key columns (the first columns) of their table."""

_ATTEMPT = 10
_FILES_TAG = 11
"""Indexes of ``attempt`` and ``files_tag`` in a quantum row."""


class _RowError(Exception):
    """A row does not fit the schema."""


@dataclasses.dataclass(slots=True)
class QuantumRows:
    """The rows one quantum contributes to each table (one per primary key: the first built)."""

    quantum_id: uuid.UUID
    source: str
    """URI of the provenance file."""
    dataset_types: list[Row] = dataclasses.field(default_factory=list)
    runs: list[Row] = dataclasses.field(default_factory=list)
    datasets: list[Row] = dataclasses.field(default_factory=list)
    data_ids: list[Row] = dataclasses.field(default_factory=list)
    records: list[Row] = dataclasses.field(default_factory=list)
    quanta: list[Row] = dataclasses.field(default_factory=list)
    """The quantum's own row (one)."""
    edges: list[Row] = dataclasses.field(default_factory=list)

    @property
    def attempt(self) -> str:
        """`~s3qbb.registry.attempts.attempt_key` of the files these rows come from."""
        value: str = self.quanta[0][_ATTEMPT]
        return value

    @property
    def files_tag(self) -> str | None:
        """`~s3qbb.registry.sources.QuantumFiles.files_tag` of the files these rows come from."""
        value: str | None = self.quanta[0][_FILES_TAG]
        return value


@dataclasses.dataclass(frozen=True, slots=True)
class BatchRows:
    """The rows of a batch of quanta: of rows with the same primary key the first, sorted by key."""

    dataset_types: list[Row]
    runs: list[Row]
    datasets: list[Row]
    data_ids: list[Row]
    records: list[Row]
    quanta: list[Row]
    edges: list[Row]


_KEYS = {name: operator.itemgetter(*range(width)) for name, width in ROW_TABLES.items()}


def batch_rows(batch: Sequence[QuantumRows]) -> BatchRows:
    """Merge the rows of a batch of quanta.

    Parameters
    ----------
    batch : `~collections.abc.Sequence` [`QuantumRows`]
        Quanta, in order.

    Returns
    -------
    rows : `BatchRows`
        Each table's rows, one per primary key (that of the earliest quantum
        having it) and sorted by primary key: every writer locks rows in the
        same order.
    """
    tables: dict[str, list[Row]] = {}
    for name, key in _KEYS.items():
        # Later quanta first, so that dict() keeps the earliest quantum's row of a key (in C).
        rows = list(itertools.chain.from_iterable(getattr(q, name) for q in reversed(batch)))
        unique = dict(zip(map(key, rows), rows, strict=True))
        # A row's key is its first columns and keys are unique: comparing whole rows compares keys.
        tables[name] = sorted(unique.values())
    return BatchRows(**tables)


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
"""The encoder `json.dumps` would build for these options on every call (stateless, thread-safe)."""


def _canonical(value: Any) -> str:
    return _CANONICAL.encode(value)


@functools.lru_cache(maxsize=1024)
def _dimensions_json(dimensions: tuple[str, ...]) -> str:
    """`_canonical` of a dataset type's sorted dimensions (a few distinct lists recur in every quantum)."""
    return _canonical(list(dimensions))


def _checked(table: sa.Table, row: Row) -> Row:
    problem = check_values(table, row)
    if problem is not None:
        raise _RowError(problem)
    return row


def _dataset_type_of(ref: SerializedDatasetRef) -> tuple[str, str | None, list[str] | None] | None:
    simple = ref.datasetType
    if simple is None:
        return None
    name, _, component = simple.name.partition(".")
    storage_class = simple.parentStorageClass if component else simple.storageClass
    return name, storage_class, None if simple.dimensions is None else sorted(simple.dimensions)


def build_rows(bundle: QuantumBundle, *, default_run: str | None) -> QuantumRows:
    """Build the rows of one validated quantum.

    Parameters
    ----------
    bundle : `~s3qbb.registry.sources.QuantumBundle`
        Its provenance and report.
    default_run : `str`, optional
        Run of the quantum when neither its report nor the refs of its
        outputs name one.

    Returns
    -------
    rows : `QuantumRows`
        Rows of every table (see the module docstring for their form).

    Raises
    ------
    ValueError
        Raised if a value does not fit its column (too long) or a data ID is
        not a mapping of dimension names to values.
    """
    t = make_tables()
    prov, report = bundle.provenance, bundle.report
    qid = bundle.quantum_id
    outputs = prov.predicted_outputs
    all_ids = prov.predicted_inputs | outputs
    refs: dict[uuid.UUID, SerializedDatasetRef] = {}
    for ref in report.refs if report is not None else ():
        if ref.id in all_ids:
            refs.setdefault(ref.id, ref)
    run = report.run if report is not None else None
    if run is None:
        output_runs = {refs[i].run for i in outputs if i in refs and refs[i].run}
        run = output_runs.pop() if len(output_runs) == 1 else default_run
    rows = QuantumRows(qid, bundle.source)
    # Keyed by primary key while building, then kept as lists: the rows outlive these dicts.
    dataset_types: dict[str, Row] = {}
    runs: dict[str, Row] = {}
    hexes: dict[uuid.UUID, str] = {}
    datasets, data_ids = rows.datasets, rows.data_ids
    try:
        if run is not None:
            runs[run] = _checked(t.run, (run,))
        for dataset_id in all_ids:
            hexes[dataset_id] = id_hex = dataset_id.hex
            known = refs.get(dataset_id)
            dataset_type = _dataset_type_of(known) if known is not None else None
            dataset_run = known.run if known is not None and known.run else None
            if dataset_run is None and dataset_id in outputs:
                dataset_run = run
            data_id = known.dataId.dataId if known is not None and known.dataId is not None else None
            if dataset_type is not None:
                name, storage_class, dimensions = dataset_type
                type_row = (
                    name,
                    storage_class,
                    None if dimensions is None else _dimensions_json(tuple(dimensions)),
                )
                if dataset_types.get(name) != type_row:  # an equal row was checked already
                    dataset_types.setdefault(name, _checked(t.dataset_type, type_row))
            if dataset_run is not None and dataset_run not in runs:  # present: the same row, checked
                runs[dataset_run] = _checked(t.run, (dataset_run,))
            datasets.append(
                _checked(
                    t.dataset,
                    (
                        id_hex,
                        None if dataset_type is None else dataset_type[0],
                        dataset_run,
                        None if data_id is None else _canonical(data_id),
                    ),
                )
            )
            for dimension, value in (data_id or {}).items():
                data_ids.append(_checked(t.data_id, (id_hex, dimension, str(value))))
        records = rows.records
        seen: set[tuple[str, str, str]] = set()
        for datastore_name, simple in prov.datastore_records.items():
            for by_dataset in simple.records.values():
                for id_text, by_table in by_dataset.items():
                    id_hex = uuid.UUID(id_text).hex
                    for stored in by_table.values():
                        for rec in stored:
                            component = rec.component or NULL_COMPONENT
                            record = _checked(
                                t.record,
                                (
                                    id_hex,
                                    datastore_name,
                                    component,
                                    rec.path,
                                    rec.formatter,
                                    rec.storage_class,
                                    rec.checksum,
                                    rec.file_size,
                                ),
                            )
                            key = (id_hex, datastore_name, component)
                            if key not in seen:  # the first record of a key wins
                                seen.add(key)
                                records.append(record)
        error = None
        if report is not None and report.error is not None:
            error = f"{report.error.type}: {report.error.message}"
        rows.quanta.append(
            _checked(
                t.quantum,
                (
                    qid.hex,
                    run,
                    report.task_label if report else None,
                    report.task_name if report else None,
                    report.status if report else None,
                    report.started_at if report else None,
                    report.ended_at if report else None,
                    report.host if report else None,
                    error,
                    bundle.source,
                    attempt_key(report),
                    bundle.files_tag or None,
                ),
            )
        )
        qid_hex, edges = qid.hex, rows.edges
        for role in DATASET_ROLES:
            for dataset_id in getattr(prov, f"{role}s"):
                id_hex = hexes.get(dataset_id) or dataset_id.hex
                edges.append((qid_hex, id_hex, role))
    except _RowError as err:
        raise ValueError(f"quantum {qid} cannot be recorded: {err}") from err
    rows.dataset_types.extend(dataset_types.values())
    rows.runs.extend(runs.values())
    return rows
