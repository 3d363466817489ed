"""Quanta: one unit of work, its task, predicted inputs and outputs, and datastore records."""

from __future__ import annotations

__all__ = ["Quantum", "RefsByDatasetType"]

import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..errors import AmbiguousDatasetError, DatasetTypeError, InvalidNameError
from .dataset_ref import DatasetRef, ensure_resolved
from .text import MAX_TASK_LABEL_CHARS, MAX_TASK_NAME_CHARS, storable_text_problem

if TYPE_CHECKING:
    from .dataset_type import DatasetType
    from .dimensions import DataCoordinate
    from .records import DatastoreRecordData

RefsByType = Mapping["DatasetType", Sequence[DatasetRef]]


class RefsByDatasetType(Mapping["DatasetType", tuple[DatasetRef, ...]]):
    """Read-only refs of a quantum grouped by dataset type, looked up by type or by name.

    Like daf_butler's ``NamedKeyDict``: keys are `DatasetType` objects, and
    ``mapping["calexp"]`` finds the dataset type named ``calexp``.

    Parameters
    ----------
    groups : `~collections.abc.Mapping` [`DatasetType`, `tuple` [`DatasetRef`, ...]]
        The refs of each dataset type.

    Examples
    --------
    >>> from s3qbb import DatasetRef, DatasetType, DimensionUniverse
    >>> raw = DatasetType("raw", ["visit"], "StructuredDataDict", universe=DimensionUniverse())
    >>> ref = DatasetRef(raw, {"instrument": "Cam", "visit": 1}, run="r")
    >>> quantum = Quantum(taskLabel="isr", inputs=[ref])
    >>> quantum.inputs["raw"] == (ref,) == quantum.inputs[raw]
    True
    >>> "raw" in quantum.inputs, sorted(quantum.inputs.names)
    (True, ['raw'])
    """

    __slots__ = ("_by_name", "_groups")

    def __init__(self, groups: Mapping[DatasetType, tuple[DatasetRef, ...]]) -> None:
        self._groups = dict(groups)
        self._by_name = {dataset_type.name: dataset_type for dataset_type in self._groups}

    @property
    def names(self) -> frozenset[str]:
        """The names of the dataset types."""
        return frozenset(self._by_name)

    def __getitem__(self, key: DatasetType | str) -> tuple[DatasetRef, ...]:
        dataset_type = self._by_name.get(key) if isinstance(key, str) else key
        if dataset_type is None or dataset_type not in self._groups:
            name = key if isinstance(key, str) else getattr(key, "name", key)
            raise KeyError(f"No dataset type {name!r} here; the dataset types are {sorted(self._by_name)}.")
        return self._groups[dataset_type]

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            return key in self._by_name
        return key in self._groups

    def __iter__(self) -> Iterator[DatasetType]:
        return iter(self._groups)

    def __len__(self) -> int:
        return len(self._groups)

    def __reduce__(self) -> tuple[type[RefsByDatasetType], tuple[dict[DatasetType, tuple[DatasetRef, ...]]]]:
        return (RefsByDatasetType, (self._groups,))

    def __repr__(self) -> str:
        return f"RefsByDatasetType({ {t.name: len(r) for t, r in self._groups.items()} })"


def _group(refs: RefsByType | Iterable[DatasetRef] | None, what: str) -> RefsByDatasetType:
    out: dict[DatasetType, list[DatasetRef]] = {}
    if refs is None:
        return RefsByDatasetType({})
    if isinstance(refs, Mapping):
        for dataset_type, group in refs.items():
            if isinstance(group, DatasetRef):
                group = [group]
            for ref in group:
                ensure_resolved(ref, f"Quantum {what}")
                if ref.datasetType.name != dataset_type.name:
                    raise DatasetTypeError(
                        f"Quantum {what}: ref {ref} is listed under dataset type {dataset_type.name!r}."
                    )
                out.setdefault(dataset_type, []).append(ref)
    else:
        for ref in refs:
            ensure_resolved(ref, f"Quantum {what}")
            out.setdefault(ref.datasetType, []).append(ref)
    return RefsByDatasetType({k: tuple(v) for k, v in out.items()})


def _checked_task_text(value: str | None, what: str, limit: int) -> str | None:
    """Refuse a task label or name that the records, the report or the registry could not hold.

    Checked when the quantum is made: by the time the quantum ends its outputs exist, and a
    label refused then would leave them unrecorded.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidNameError(f"The {what} of a quantum must be a str or None; got {type(value).__name__}.")
    if len(value) > limit:
        raise InvalidNameError(
            f"The {what} {value[:80]!r}... is {len(value)} characters long, more than the {limit} "
            "the registry holds; use a shorter one."
        )
    problem = storable_text_problem(value)
    if problem is not None:
        raise InvalidNameError(f"The {what} {value[:80]!r} has {problem}.")
    return value


class Quantum:
    """One unit of work: a task applied to predicted inputs, producing predicted outputs.

    Every ref must be resolved and every dataset ID may appear only once
    among init-inputs, inputs and outputs together.

    Parameters
    ----------
    taskName : `str`, optional
        Fully-qualified name of the task.
    taskLabel : `str`, optional
        Label of the task in its pipeline.
    dataId : `DataCoordinate`, optional
        The quantum's data ID.
    initInputs : mapping or iterable of `DatasetRef`, optional
        Datasets needed to construct the task.
    inputs : `~collections.abc.Mapping` [`DatasetType`, sequence of `DatasetRef`] or iterable, optional
        Predicted inputs; ``quantum.inputs`` is a `RefsByDatasetType`, so
        ``quantum.inputs["raw"]`` gives the refs of the dataset type ``raw``.
    outputs : `~collections.abc.Mapping` [`DatasetType`, sequence of `DatasetRef`] or iterable, optional
        Predicted outputs (``quantum.outputs["calexp"]`` works the same way).
    datastore_records : `~collections.abc.Mapping` [`str`, `DatastoreRecordData`], optional
        Datastore records of the inputs, by datastore name.
    id : `uuid.UUID`, optional
        Quantum ID; a random one by default. Names the per-quantum records file.

    Raises
    ------
    AmbiguousDatasetError
        If a ref is unresolved or a dataset ID appears more than once.

    Notes
    -----
    Two quanta are equal if they have the same ID, task name and label, data
    ID, init-inputs, inputs and outputs; their datastore records (data about
    the inputs, added as a run goes on) are not compared, as in daf_butler.
    The hash is that of the ID.

    Quanta pickle (and `copy.deepcopy`) with all their attributes, datastore
    records included, so they can be sent to worker processes
    (`multiprocessing`, `concurrent.futures.ProcessPoolExecutor`).
    """

    __slots__ = (
        "dataId",
        "datastore_records",
        "id",
        "initInputs",
        "inputs",
        "outputs",
        "taskLabel",
        "taskName",
    )

    def __init__(
        self,
        *,
        taskName: str | None = None,
        taskLabel: str | None = None,
        dataId: DataCoordinate | None = None,
        initInputs: RefsByType | Iterable[DatasetRef] | None = None,
        inputs: RefsByType | Iterable[DatasetRef] | None = None,
        outputs: RefsByType | Iterable[DatasetRef] | None = None,
        datastore_records: Mapping[str, DatastoreRecordData] | None = None,
        id: uuid.UUID | None = None,
    ) -> None:
        self.taskName = _checked_task_text(taskName, "task name", MAX_TASK_NAME_CHARS)
        self.taskLabel = _checked_task_text(taskLabel, "task label", MAX_TASK_LABEL_CHARS)
        self.dataId = dataId
        self.initInputs = _group(initInputs, "init-inputs")
        self.inputs = _group(inputs, "inputs")
        self.outputs = _group(outputs, "outputs")
        self.datastore_records: Mapping[str, DatastoreRecordData] = MappingProxyType(
            dict(datastore_records or {})
        )
        self.id = id if id is not None else uuid.uuid4()
        seen: dict[uuid.UUID, str] = {}
        for role, ref in self._all_refs():
            if ref.id in seen:
                raise AmbiguousDatasetError(
                    f"Quantum {self.taskLabel or self.taskName or self.id}: "
                    f"dataset ID {ref.id} ({ref}) appears "
                    f"twice (as {seen[ref.id]} and as {role}); each dataset may appear once."
                )
            seen[ref.id] = role

    def _all_refs(self) -> Iterator[tuple[str, DatasetRef]]:
        for role, group in (
            ("init-input", self.initInputs),
            ("input", self.inputs),
            ("output", self.outputs),
        ):
            for refs in group.values():
                for ref in refs:
                    yield role, ref

    def input_refs(self) -> list[DatasetRef]:
        """Return the init-input and input refs, in order."""
        return [ref for role, ref in self._all_refs() if role != "output"]

    def output_refs(self) -> list[DatasetRef]:
        """Return the output refs, in order."""
        return [ref for role, ref in self._all_refs() if role == "output"]

    def with_datastore_records(self, *sources: Mapping[str, DatastoreRecordData]) -> Quantum:
        """Return a copy whose datastore records also hold ``sources`` (merged by datastore name).

        Parameters
        ----------
        *sources : `~collections.abc.Mapping` [`str`, `DatastoreRecordData`]
            Records to add, for example those of the quanta that produced the inputs.

        Returns
        -------
        quantum : `Quantum`
            The same quantum (same ID), with the merged records; ``self`` if nothing is added.
        """
        if not any(sources):
            return self
        from .records import DatastoreRecordData

        merged: dict[str, DatastoreRecordData] = {}
        for source in (self.datastore_records, *sources):
            for name, data in source.items():
                merged.setdefault(name, DatastoreRecordData({})).update(data)
        return Quantum(
            taskName=self.taskName,
            taskLabel=self.taskLabel,
            dataId=self.dataId,
            initInputs=self.initInputs,
            inputs=self.inputs,
            outputs=self.outputs,
            datastore_records=merged,
            id=self.id,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Quantum):
            return NotImplemented
        return (
            self.id == other.id
            and self.taskName == other.taskName
            and self.taskLabel == other.taskLabel
            and self.dataId == other.dataId
            and self.initInputs == other.initInputs
            and self.inputs == other.inputs
            and self.outputs == other.outputs
        )

    def __hash__(self) -> int:
        return hash(self.id)

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _unpickle_quantum,
            (
                self.taskName,
                self.taskLabel,
                self.dataId,
                dict(self.initInputs),
                dict(self.inputs),
                dict(self.outputs),
                dict(self.datastore_records),
                self.id,
            ),
        )

    def dataset_types(self) -> dict[str, DatasetType]:
        """Return every dataset type used by the quantum, by name."""
        return {ref.datasetType.name: ref.datasetType for _, ref in self._all_refs()}

    def __repr__(self) -> str:
        return (
            f"Quantum(id={self.id}, task={self.taskLabel or self.taskName!r}, "
            f"inputs={sum(map(len, self.inputs.values()))}, outputs={sum(map(len, self.outputs.values()))})"
        )


def _unpickle_quantum(
    taskName: str | None,
    taskLabel: str | None,
    dataId: DataCoordinate | None,
    initInputs: RefsByType,
    inputs: RefsByType,
    outputs: RefsByType,
    datastore_records: Mapping[str, DatastoreRecordData],
    id: uuid.UUID,
) -> Quantum:
    """Rebuild a pickled `Quantum` through its constructor."""
    return Quantum(
        taskName=taskName,
        taskLabel=taskLabel,
        dataId=dataId,
        initInputs=initInputs,
        inputs=inputs,
        outputs=outputs,
        datastore_records=datastore_records,
        id=id,
    )
