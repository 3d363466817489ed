"""How a QuantumBackedButler is built: one parameter object for ``initialize`` and ``from_predicted``."""

from __future__ import annotations

__all__ = [
    "ButlerSetup",
    "QuantumInfo",
    "check_dataset_type",
    "check_prune_arguments",
    "check_read_arguments",
    "datastore_names",
    "input_tracking_problems",
    "known_refs",
    "single_run",
]

import os
import time
import uuid
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..core.attempt import WriteToken
from ..errors import ConfigError, DatasetTypeError, StorageClassError

if TYPE_CHECKING:
    from ..core.dataset_ref import DatasetRef
    from ..core.dataset_type import DatasetType
    from ..core.dimensions import DimensionUniverse
    from ..core.quantum import Quantum
    from ..core.records import DatastoreRecordData
    from ..core.storage_class import StorageClass, StorageClassFactory
    from ..datastores.base import Datastore
    from ..provenance.model import QuantumProvenanceData
    from ..repo import RepoConfig
    from .quantum_backed import QuantumBackedButler


@dataclass
class QuantumInfo:
    """What the butler knows of its quantum besides the predicted IDs (for reports and uploads)."""

    quantum_id: uuid.UUID = field(default_factory=uuid.uuid4)
    task_label: str | None = None
    task_name: str | None = None
    run: str | None = None
    records_filename: str = ":memory:"
    started_at: float = field(default_factory=time.time)
    write_token: WriteToken | None = None
    """This attempt's write token (one of ``quantum_id``, made on first use if not given)."""
    replace_success: bool = False
    """Whether this attempt's records replace those of an earlier success (``run-quantum --rerun``)."""

    @classmethod
    def of(
        cls, quantum: Quantum, run: str | None, write_token: WriteToken | None, replace_success: bool
    ) -> QuantumInfo:
        """Return what `QuantumBackedButler.initialize` knows of ``quantum``."""
        return cls(
            quantum_id=quantum.id,
            task_label=quantum.taskLabel,
            task_name=quantum.taskName,
            run=run,
            write_token=write_token,
            replace_success=replace_success,
        )

    def token(self) -> WriteToken:
        """Return this attempt's write token, making it on first use."""
        if self.write_token is None or self.write_token.quantum_id != self.quantum_id:
            self.write_token = WriteToken.new(self.quantum_id)
        return self.write_token


@dataclass(frozen=True)
class ButlerSetup:
    """Everything `initialize` and `from_predicted` share: one parameter object, built once."""

    config: RepoConfig | Mapping[str, Any] | str | os.PathLike[str]
    dimensions: DimensionUniverse
    filename: str
    search_paths: tuple[str, ...]
    dataset_types: Mapping[str, DatasetType] | None
    OpaqueManagerClass: Any = None
    BridgeManagerClass: Any = None

    def build(  # noqa: D102 (see ButlerSetup)
        self,
        predicted_inputs: Iterable[uuid.UUID],
        predicted_outputs: Iterable[uuid.UUID],
        datastore_records: Mapping[str, DatastoreRecordData],
        info: QuantumInfo,
        allow_unpredicted_reads: bool,
    ) -> QuantumBackedButler:
        from ..repo import build_datastore, load_repo_config

        for label, value in (
            ("OpaqueManagerClass", self.OpaqueManagerClass),
            ("BridgeManagerClass", self.BridgeManagerClass),
        ):
            if value is not None:
                warnings.warn(
                    f"{label} is accepted for daf_butler compatibility and ignored: s3qbb keeps datastore "
                    "records in its own SQLite store.",
                    UserWarning,
                    stacklevel=4,
                )
        repo = load_repo_config(self.config, self.search_paths)
        storage_classes = repo.storage_class_factory()
        datastore = build_datastore(repo, filename=self.filename, storage_classes=storage_classes)
        unknown = set(datastore_records) - set(datastore_names(datastore))
        if unknown:
            datastore.close()
            raise ConfigError(
                f"Datastore records name unknown datastore(s) {sorted(unknown)}; "
                f"this butler's datastores are "
                f"{list(datastore_names(datastore))}. Check the repository configuration's datastore name."
            )
        datastore.import_records(datastore_records)
        token = info.token()
        if token.guard is None and info.run is not None:  # no lease: the quantum's report decides
            from .uploads import ReportGuard

            guard = ReportGuard(datastore, info.run, info.replace_success)
            info.write_token = token = WriteToken(token.quantum_id, token.attempt_id, guard=guard)
        datastore.write_token = token  # every object this butler writes carries its attempt
        info.records_filename = self.filename
        from .quantum_backed import QuantumBackedButler

        return QuantumBackedButler(
            predicted_inputs,
            predicted_outputs,
            self.dimensions,
            datastore,
            storage_classes,
            self.dataset_types,
            allow_unpredicted_reads=allow_unpredicted_reads,
            _info=info,
        )


def datastore_names(datastore: Datastore) -> tuple[str, ...]:
    """Return the names of the datastores behind a butler's datastore (wrappers keep their backend's)."""
    return (datastore.name,)


def known_refs(provenance: QuantumProvenanceData, *known: Mapping[uuid.UUID, DatasetRef]) -> list[DatasetRef]:
    """Return the refs among ``known`` (later mappings win) of a quantum's predicted datasets, by ID."""
    refs = {k: v for mapping in known for k, v in mapping.items()}
    ids = provenance.predicted_inputs | provenance.predicted_outputs
    return [refs[i] for i in sorted(ids) if i in refs]


def single_run(refs: Iterable[DatasetRef]) -> str | None:
    """Return the run shared by every ref, or `None` if there are several or none."""
    runs = {r.run for r in refs}
    return runs.pop() if len(runs) == 1 else None


def input_tracking_problems(
    predicted: set[uuid.UUID], available: set[uuid.UUID], unavailable: set[uuid.UUID], actual: set[uuid.UUID]
) -> list[str]:
    """Return what makes a quantum's input provenance incomplete or inconsistent (for warnings).

    Parameters
    ----------
    predicted, available, unavailable, actual : `set` [`uuid.UUID`]
        The quantum's predicted inputs, and those found available, found
        unavailable (by an existence check or a failed read) and actually used.

    Returns
    -------
    problems : `list` [`str`]
        One message per problem: inputs never checked, inputs used but unavailable.
    """
    problems = []
    unchecked = predicted - available - unavailable
    if unchecked:
        problems.append(
            f"The execution harness did not check {len(unchecked)} predicted input(s) for existence "
            f"(e.g. {sorted(map(str, unchecked))[:3]}); "
            "available inputs in provenance may be incomplete. "
            "Call stored_many() on the predicted inputs before running the task."
        )
    used_unavailable = actual & unavailable
    if used_unavailable:
        problems.append(
            f"Input(s) {sorted(map(str, used_unavailable))[:3]} were used but recorded as unavailable; "
            "they are left out of the actual inputs. Call markInputUnused() on an input the task "
            "could not read."
        )
    return problems


def check_read_arguments(
    ref: DatasetRef,
    storage_classes: StorageClassFactory,
    parameters: Mapping[str, Any] | None,
    storage_class: StorageClass | str | None,
) -> None:
    """Check a deferred read's storage class override and parameters now, before any I/O.

    Parameters
    ----------
    ref : `DatasetRef`
        The dataset.
    storage_classes : `StorageClassFactory`
        Resolves ``storage_class`` when given by name.
    parameters : `~collections.abc.Mapping`, optional
        Read parameters.
    storage_class : `StorageClass` or `str`, optional
        Storage class override.

    Raises
    ------
    StorageClassError
        If ``storage_class`` cannot be converted from the dataset's.
    InvalidParameterError
        If a parameter is not declared by the storage class.
    """
    stored = ref.datasetType.storageClass
    if storage_class is not None:
        override = storage_classes.resolve(storage_class)
        if not override.can_convert(stored):
            raise StorageClassError(
                f"Cannot read dataset {ref} as storage class {override.name!r}: no conversion from "
                f"{stored.name!r}."
            )
    if parameters:
        stored.validate_parameters(parameters, f"dataset {ref}")


def check_prune_arguments(
    refs: Iterable[DatasetRef], *, disassociate: bool, unstore: bool, purge: bool
) -> list[DatasetRef]:
    """Check the arguments of ``pruneDatasets`` (daf_butler's rules, no collections) and return the refs.

    Parameters
    ----------
    refs : iterable of `DatasetRef`
        Datasets to prune.
    disassociate, unstore, purge : `bool`
        The flags given to ``pruneDatasets``.

    Returns
    -------
    refs : `list` [`DatasetRef`]
        The refs, checked to be resolved and not components.

    Raises
    ------
    TypeError
        If ``purge`` is set without ``disassociate`` and ``unstore``, or
        ``disassociate`` without ``purge``.
    DatasetTypeError
        If a ref is a component ref.
    """
    from ..core.dataset_ref import ensure_resolved

    if purge:
        if not disassociate:
            raise TypeError("Cannot pass purge=True without disassociate=True.")
        if not unstore:
            raise TypeError("Cannot pass purge=True without unstore=True.")
    elif disassociate:
        raise TypeError(
            "Cannot pass disassociate=True without purge=True: a QuantumBackedButler has no collections. "
            "Use unstore=True, disassociate=False to delete artifacts."
        )
    checked = [ensure_resolved(r, "pruneDatasets") for r in refs]
    for ref in checked:
        if ref.isComponent():
            raise DatasetTypeError(f"Cannot prune component dataset {ref}; prune its parent.")
    return checked


def check_dataset_type(ref: DatasetRef, dataset_types: Mapping[str, DatasetType]) -> None:
    """Raise `DatasetTypeError` if ``ref``'s dataset type disagrees with its registry definition."""
    parent_name = ref.datasetType.nameAndComponent()[0]
    registered = dataset_types.get(parent_name)
    if registered is None:
        return
    parent = ref.makeCompositeRef().datasetType if ref.isComponent() else ref.datasetType
    if not registered.is_compatible_with(parent) and not parent.is_compatible_with(registered):
        raise DatasetTypeError(
            f"Dataset {ref} has dataset type {parent!r}, which disagrees with the registry definition "
            f"{registered!r} (dimensions, storage class or calibration flag)."
        )
