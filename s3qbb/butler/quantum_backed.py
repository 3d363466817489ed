"""QuantumBackedButler: the LimitedButler of one quantum, with provenance and a records file left behind.

It reads only predicted inputs (and outputs it wrote), writes only predicted
outputs, and remembers which inputs were available and actually used. When
the quantum ends (leaving the ``with`` block, or `QuantumBackedButler.finish`)
its records file and provenance are uploaded beside its outputs::

    <root>/<run>/_records/<quantum id>.sqlite3
    <root>/<run>/_records/<quantum id>.provenance.json   (daf_butler QuantumProvenanceData)
    <root>/<run>/_records/<quantum id>.quantum.json      (s3qbb execution report)
"""

from __future__ import annotations

__all__ = ["ProvenanceWarning", "QuantumBackedButler"]

import logging
import os
import uuid
import warnings
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..core.dataset_ref import DatasetRef, ensure_resolved
from ..core.gc_pause import collector_paused
from ..errors import ButlerClosedError, UnpredictedDatasetError
from .limited import DeferredDatasetHandle, LimitedButler
from .setup import (
    ButlerSetup,
    QuantumInfo,
    check_dataset_type,
    check_prune_arguments,
    check_read_arguments,
    datastore_names,
    input_tracking_problems,
    known_refs,
    single_run,
)
from .uploads import FinishResult, upload_quantum_files

if TYPE_CHECKING:
    from ..core.attempt import WriteToken
    from ..core.dataset_type import DatasetType
    from ..core.dimensions import DimensionUniverse
    from ..core.quantum import Quantum
    from ..core.records import DatastoreRecordData
    from ..core.storage_class import StorageClass, StorageClassFactory
    from ..core.uri import DatasetRefURIs, ResourceURI
    from ..datastores.base import Datastore
    from ..provenance.model import QuantumProvenanceData
    from ..repo import RepoConfig

_LOG = logging.getLogger(__name__)


class ProvenanceWarning(UserWarning):
    """Provenance of a quantum may be incomplete or inconsistent."""


class QuantumBackedButler(LimitedButler):
    """A `LimitedButler` backing the execution of a single quantum.

    Parameters
    ----------
    predicted_inputs : iterable of `uuid.UUID`
        IDs of datasets that may be read.
    predicted_outputs : iterable of `uuid.UUID`
        IDs of datasets that may be written.
    dimensions : `DimensionUniverse`
        The dimension universe.
    datastore : `~s3qbb.datastores.base.Datastore`
        Datastore for all dataset I/O and existence checks.
    storageClasses : `StorageClassFactory`
        Storage class definitions.
    dataset_types : `~collections.abc.Mapping` [`str`, `DatasetType`], optional
        Registry definitions of dataset types; refs must be compatible with them.
    allow_unpredicted_reads : `bool`, optional
        Allow reading datasets that are neither predicted inputs nor outputs of this quantum.

    Notes
    -----
    Most callers use `initialize` or `from_predicted`. Use the butler as a
    context manager so its records and provenance are uploaded when the
    quantum ends, whether it succeeds or fails.
    """

    def __init__(
        self,
        predicted_inputs: Iterable[uuid.UUID],
        predicted_outputs: Iterable[uuid.UUID],
        dimensions: DimensionUniverse,
        datastore: Datastore,
        storageClasses: StorageClassFactory,
        dataset_types: Mapping[str, DatasetType] | None = None,
        *,
        allow_unpredicted_reads: bool = False,
        _info: QuantumInfo | None = None,
    ) -> None:
        self._predicted_inputs = set(predicted_inputs)
        self._predicted_outputs = set(predicted_outputs)
        overlap = self._predicted_inputs & self._predicted_outputs
        if overlap:
            raise UnpredictedDatasetError(
                f"Dataset IDs {sorted(map(str, overlap))[:5]} are both predicted inputs and "
                "outputs of the quantum."
            )
        self._dimensions = dimensions
        self._datastore = datastore
        self.storageClasses = storageClasses
        self._dataset_types = dict(dataset_types) if dataset_types else None
        self.allow_unpredicted_reads = allow_unpredicted_reads
        self._available_inputs: set[uuid.UUID] = set()
        self._unavailable_inputs: set[uuid.UUID] = set()
        self._actual_inputs: set[uuid.UUID] = set()
        self._actual_output_refs: dict[uuid.UUID, DatasetRef] = {}
        self._known_refs: dict[uuid.UUID, DatasetRef] = {}
        self._info = _info or QuantumInfo()
        self._finished: FinishResult | None = None
        self._provenance: QuantumProvenanceData | None = None
        self._closed = False

    # ---------------------------------------------------------- constructors

    @classmethod
    def initialize(
        cls,
        config: RepoConfig | Mapping[str, Any] | str | os.PathLike[str],
        quantum: Quantum,
        dimensions: DimensionUniverse,
        filename: str = ":memory:",
        OpaqueManagerClass: Any = None,
        BridgeManagerClass: Any = None,
        search_paths: list[str] | None = None,
        dataset_types: Mapping[str, DatasetType] | None = None,
        *,
        allow_unpredicted_reads: bool = False,
        run: str | None = None,
        write_token: WriteToken | None = None,
        replace_success: bool = False,
    ) -> QuantumBackedButler:
        """Construct a butler for a quantum from a repository configuration.

        Parameters
        ----------
        config : `RepoConfig`, `~collections.abc.Mapping`, `str` or `os.PathLike`
            Repository configuration, or where to read it (local path or ``s3://`` URI).
        quantum : `Quantum`
            The quantum; all its refs are resolved.
        dimensions : `DimensionUniverse`
            The dimension universe.
        filename : `str`, optional
            SQLite file of the records (in memory by default); this file is what gets uploaded.
        OpaqueManagerClass, BridgeManagerClass : `object`, optional
            Accepted for daf_butler compatibility; ignored with a warning when given.
        search_paths : `list` [`str`], optional
            Directories searched for a relative configuration path.
        dataset_types : `~collections.abc.Mapping` [`str`, `DatasetType`], optional
            Registry definitions the quantum's refs must be compatible with.
        allow_unpredicted_reads : `bool`, optional
            Allow reading datasets outside the quantum.
        run : `str`, optional
            Run under which records are uploaded; the outputs' run by default.
        write_token : `~s3qbb.core.attempt.WriteToken`, optional
            This attempt's write token (of ``quantum.id``); a new one by default.
        replace_success : `bool`, optional
            Let this attempt's records replace those of an earlier successful attempt
            (``run-quantum --rerun``); by default they only replace those of an attempt
            that failed, was interrupted or died.

        Raises
        ------
        DatasetTypeError
            If a ref's dataset type disagrees with ``dataset_types``.
        ConfigError
            If the configuration is invalid or the quantum's records name an unknown datastore.
        """
        if dataset_types:
            for ref in [*quantum.input_refs(), *quantum.output_refs()]:
                check_dataset_type(ref, dataset_types)
        outputs = quantum.output_refs()
        info = QuantumInfo.of(quantum, run or single_run(outputs), write_token, replace_success)
        setup = ButlerSetup(
            config,
            dimensions,
            filename,
            tuple(search_paths or ()),
            dataset_types,
            OpaqueManagerClass,
            BridgeManagerClass,
        )
        butler = setup.build(
            (r.id for r in quantum.input_refs()),
            (r.id for r in outputs),
            quantum.datastore_records,
            info,
            allow_unpredicted_reads,
        )
        butler._known_refs.update((r.id, r) for r in [*quantum.input_refs(), *outputs])
        return butler

    @classmethod
    def from_predicted(
        cls,
        config: RepoConfig | Mapping[str, Any] | str | os.PathLike[str],
        predicted_inputs: Iterable[uuid.UUID],
        predicted_outputs: Iterable[uuid.UUID],
        dimensions: DimensionUniverse,
        datastore_records: Mapping[str, DatastoreRecordData] | None,
        filename: str = ":memory:",
        OpaqueManagerClass: Any = None,
        BridgeManagerClass: Any = None,
        search_paths: list[str] | None = None,
        dataset_types: Mapping[str, DatasetType] | None = None,
        *,
        allow_unpredicted_reads: bool = False,
        quantum_id: uuid.UUID | None = None,
        run: str | None = None,
        refs: Iterable[DatasetRef] = (),
    ) -> QuantumBackedButler:
        """Construct a butler from sets of input and output dataset IDs.

        Parameters are those of `initialize`, with the quantum replaced by
        ``predicted_inputs``, ``predicted_outputs`` and ``datastore_records``
        (records of the inputs, by datastore name; `None` when there are none),
        an optional ``quantum_id``,
        and optional ``refs`` of the predicted datasets, which the execution
        report lists so a registry can record their dataset types and data IDs.
        """
        info = QuantumInfo(quantum_id=quantum_id or uuid.uuid4(), run=run)
        setup = ButlerSetup(
            config,
            dimensions,
            filename,
            tuple(search_paths or ()),
            dataset_types,
            OpaqueManagerClass,
            BridgeManagerClass,
        )
        butler = setup.build(
            predicted_inputs, predicted_outputs, datastore_records or {}, info, allow_unpredicted_reads
        )
        butler._known_refs.update((ref.id, ref) for ref in refs)
        return butler

    # ---------------------------------------------------------------- reads

    @property
    def dimensions(self) -> DimensionUniverse:
        """Structure managing all dimensions recognized by this repository."""
        return self._dimensions

    @property
    def quantum_id(self) -> uuid.UUID:
        """ID of the quantum (names its records files)."""
        return self._info.quantum_id

    def _check_open(self, what: str) -> None:
        if self._closed:
            raise ButlerClosedError(
                f"Cannot call {what}: the butler of quantum {self.quantum_id} is closed (its quantum "
                "ended when the `with` block was left, or finish() or close() was called). "
                "Build a new butler to read or write datasets."
            )

    def _check_readable(self, ref: object, what: str, *, deferred: bool = False) -> DatasetRef:
        self._check_open(what)
        ref = ensure_resolved(ref, what)
        if self._dataset_types is not None:
            check_dataset_type(ref, self._dataset_types)
        if (
            ref.id in self._predicted_inputs
            or ref.id in self._actual_output_refs
            or self.allow_unpredicted_reads
            or (deferred and ref.id in self._predicted_outputs)
        ):
            return ref
        role = (
            "a predicted output not yet written"
            if ref.id in self._predicted_outputs
            else "not part of this quantum"
        )
        raise UnpredictedDatasetError(
            f"Cannot read dataset {ref}: it is {role}. "
            "Read only the quantum's predicted inputs (or outputs it "
            "wrote), or build the butler with allow_unpredicted_reads=True."
        )

    def get(
        self,
        ref: DatasetRef,
        /,
        *,
        parameters: Mapping[str, Any] | None = None,
        storageClass: StorageClass | str | None = None,
    ) -> Any:
        """Read a dataset; a predicted input read successfully becomes available and actually used.

        A predicted input that cannot be read (missing, corrupt) is recorded as
        checked and unavailable, as daf_butler does. A storage class override
        or parameters the dataset cannot take raise before anything is read,
        and change nothing.

        Raises
        ------
        AmbiguousDatasetError
            If ``ref`` is not a resolved `DatasetRef`.
        UnpredictedDatasetError
            If the dataset is not part of this quantum (and such reads are not allowed).
        DatasetNotFoundError
            If the dataset is not stored.
        StorageClassError, UnknownStorageClassError, InvalidParameterError
            If ``storageClass`` or ``parameters`` do not suit the dataset.
        """
        ref = self._check_readable(ref, "QuantumBackedButler.get")
        if parameters or storageClass is not None:
            # Before any I/O: a caller's wrong argument must not count the input as unavailable.
            check_read_arguments(ref, self.storageClasses, parameters, storageClass)
        try:
            obj = self._datastore.get(ref, parameters=parameters, storageClass=storageClass)
        except (LookupError, OSError):  # what daf_butler counts as "unavailable"
            if ref.id in self._predicted_inputs:
                self._unavailable_inputs.add(ref.id)
                self._available_inputs.discard(ref.id)
            raise
        self._known_refs.setdefault(ref.id, ref.makeCompositeRef() if ref.isComponent() else ref)
        if ref.id in self._predicted_inputs:
            self._available_inputs.add(ref.id)
            self._unavailable_inputs.discard(ref.id)
            self._actual_inputs.add(ref.id)
        return obj

    def getDeferred(
        self,
        ref: DatasetRef,
        /,
        *,
        parameters: Mapping[str, Any] | None = None,
        storageClass: StorageClass | str | None = None,
    ) -> DeferredDatasetHandle:
        """Return a handle reading the dataset later; a predicted input is marked used now.

        Task authors call `markInputUnused` if the handle ends up unused. As in
        daf_butler, a predicted output not yet written gets a handle too: it
        reads the dataset once this quantum has written it.
        """
        ref = self._check_readable(ref, "QuantumBackedButler.getDeferred", deferred=True)
        check_read_arguments(ref, self.storageClasses, parameters, storageClass)
        if ref.id in self._predicted_inputs:
            self._actual_inputs.add(ref.id)
        return DeferredDatasetHandle(self, ref, parameters, storageClass)

    def stored(self, ref: DatasetRef) -> bool:
        """Return whether the dataset's artifact exists; records predicted inputs as (un)available."""
        self._check_open("QuantumBackedButler.stored")
        ref = ensure_resolved(ref, "QuantumBackedButler.stored")
        exists = self._datastore.exists(ref)
        self._note_availability({ref: exists})
        return exists

    def stored_many(self, refs: Iterable[DatasetRef]) -> dict[DatasetRef, bool]:
        """Return existence of many datasets (one bulk datastore call); records availability."""
        self._check_open("QuantumBackedButler.stored_many")
        result = self._datastore.stored_many(
            [ensure_resolved(r, "QuantumBackedButler.stored_many") for r in refs]
        )
        self._note_availability(result)
        return result

    def _note_availability(self, existence: Mapping[DatasetRef, bool]) -> None:
        for ref, exists in existence.items():
            if ref.id in self._predicted_inputs:
                (self._available_inputs if exists else self._unavailable_inputs).add(ref.id)
                (self._unavailable_inputs if exists else self._available_inputs).discard(ref.id)

    def markInputUnused(self, ref: DatasetRef) -> None:
        """Record that a predicted input was not actually used."""
        self._check_open("QuantumBackedButler.markInputUnused")
        self._actual_inputs.discard(ensure_resolved(ref, "markInputUnused").id)

    # --------------------------------------------------------------- writes

    def put(self, obj: Any, ref: DatasetRef, /, *, provenance: Any = None) -> DatasetRef:
        """Store a predicted output (checked before any request) and return its ref.

        ``provenance`` is accepted for daf_butler compatibility and not stored
        in the dataset (see `LimitedButler.put`).

        Raises
        ------
        AmbiguousDatasetError
            If ``ref`` is not a resolved `DatasetRef`.
        UnpredictedDatasetError
            If the dataset is not a predicted output of this quantum (also a
            `RuntimeError`, as daf_butler raises).
        DatasetExistsError
            If the output was already written.
        ButlerClosedError
            If the butler is closed.
        """
        self._check_open("QuantumBackedButler.put")
        ref = ensure_resolved(ref, "QuantumBackedButler.put")
        if ref.id not in self._predicted_outputs:
            role = "a predicted input" if ref.id in self._predicted_inputs else "not a predicted output"
            raise UnpredictedDatasetError(
                f"Cannot put dataset {ref}: it is {role} of this quantum; "
                "only predicted outputs may be written."
            )
        if self._dataset_types is not None:
            check_dataset_type(ref, self._dataset_types)
        self._datastore.put(obj, ref)
        self._actual_output_refs[ref.id] = ref
        return ref

    def pruneDatasets(
        self,
        refs: Iterable[DatasetRef],
        *,
        disassociate: bool = True,
        unstore: bool = False,
        tags: Iterable[str] = (),
        purge: bool = False,
    ) -> None:
        """Delete datasets' artifacts (``unstore``) and forget pruned outputs (``purge``).

        Raises
        ------
        TypeError
            If ``purge`` is set without ``disassociate`` and ``unstore``, or
            ``disassociate`` without ``purge`` (this butler has no collections).
        DatasetTypeError
            If a ref is a component ref.
        """
        self._check_open("QuantumBackedButler.pruneDatasets")
        refs = check_prune_arguments(refs, disassociate=disassociate, unstore=unstore, purge=purge)
        if unstore:
            self._datastore.trash(refs, ignore_errors=True)  # skip datasets not stored, as daf_butler
        if purge:
            for ref in refs:
                self._actual_output_refs.pop(ref.id, None)
        if unstore:
            self._datastore.emptyTrash(refs=refs)  # only these, as daf_butler

    # ----------------------------------------------------------------- URIs

    def getURI(self, ref: DatasetRef, /, *, predict: bool = False) -> ResourceURI:
        """Return the URI of a dataset (``#predicted`` for unwritten ones when ``predict``)."""
        self._check_open("QuantumBackedButler.getURI")
        return self._datastore.getURI(ensure_resolved(ref, "getURI"), predict)

    def getURIs(self, ref: DatasetRef, /, *, predict: bool = False) -> DatasetRefURIs:
        """Return the URIs of a dataset's artifacts."""
        self._check_open("QuantumBackedButler.getURIs")
        return self._datastore.getURIs(ensure_resolved(ref, "getURIs"), predict)

    def get_many_uris(
        self, refs: Iterable[DatasetRef], predict: bool = False, allow_missing: bool = False
    ) -> dict[DatasetRef, DatasetRefURIs]:
        """Return URIs of many datasets.

        Raises
        ------
        FileNotFoundError
            If a dataset is unknown and neither ``predict`` nor ``allow_missing`` is set.
        """
        self._check_open("QuantumBackedButler.get_many_uris")
        return self._datastore.get_many_uris(
            [ensure_resolved(r, "get_many_uris") for r in refs], predict, allow_missing
        )

    def get_datastore_names(self) -> tuple[str, ...]:
        """Return the names of the datastores of this butler."""
        return datastore_names(self._datastore)

    def get_datastore_roots(self) -> dict[str, ResourceURI | None]:
        """Return the root URI of each datastore, a folder: it ends with ``/`` (as daf_butler's)."""
        from ..core.uri import ResourceURI

        root = self._datastore.get_root()
        return {self._datastore.name: ResourceURI(root.rstrip("/") + "/") if root else None}

    # ----------------------------------------------------------- provenance

    def extract_provenance_data(self) -> QuantumProvenanceData:
        """Return the provenance of this quantum and the records of its outputs.

        Warns (`ProvenanceWarning`) when the execution harness never checked some
        predicted inputs for existence, and when a used input was not available;
        such an input is left out of the actual inputs (as daf_butler does).
        After `finish`, returns the provenance the quantum ended with.
        """
        from ..provenance.model import QuantumProvenanceData

        if self._provenance is not None:  # finished: the datastore is closed
            return self._provenance
        self._check_open("QuantumBackedButler.extract_provenance_data")
        for problem in input_tracking_problems(
            self._predicted_inputs, self._available_inputs, self._unavailable_inputs, self._actual_inputs
        ):
            _warn_provenance(problem)
        with collector_paused():  # thousands of short-lived rows and models: see gc_pause
            records = self._datastore.export_records(self._actual_output_refs.values())
            return QuantumProvenanceData(
                predicted_inputs=set(self._predicted_inputs),
                available_inputs=set(self._available_inputs),
                actual_inputs=self._actual_inputs - self._unavailable_inputs,
                predicted_outputs=set(self._predicted_outputs),
                actual_outputs=set(self._actual_output_refs),
                datastore_records={name: data.to_simple() for name, data in records.items()},
            )

    # ------------------------------------------------------------ lifecycle

    def finish(self, error: BaseException | None = None) -> FinishResult:
        """End the quantum: upload records, provenance and report beside the outputs, then close.

        Idempotent: a second call returns the first call's result.

        Parameters
        ----------
        error : `BaseException`, optional
            The task's exception, if it failed (recorded as status ``failed``).

        Returns
        -------
        result : `FinishResult`
            URIs of the uploaded files (empty for datastores without a root).

        Raises
        ------
        RecordsUploadError
            If the upload failed (never raised when ``error`` is given: it is logged
            and noted on ``error`` instead, so the task's own exception is not hidden).
        """
        if self._finished is not None:
            return self._finished
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ProvenanceWarning)
            provenance = self.extract_provenance_data()
        self._provenance = provenance
        for w in caught:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        try:
            self._finished = upload_quantum_files(
                self._datastore,
                provenance,
                quantum_id=self._info.quantum_id,
                task_label=self._info.task_label,
                task_name=self._info.task_name,
                run=self._info.run or single_run(self._actual_output_refs.values()),
                records_filename=self._info.records_filename,
                started_at=self._info.started_at,
                attempt_id=self._info.token().attempt_id,
                error=error,
                warnings_seen=[str(w.message) for w in caught],
                refs=known_refs(provenance, self._known_refs, self._actual_output_refs),
                replace_success=self._info.replace_success,
            )
        except Exception as err:
            if error is None:
                self.close()
                raise
            _LOG.error("Quantum %s failed, and uploading its records failed too: %s", self.quantum_id, err)
            error.add_note(f"s3qbb: uploading the records of quantum {self.quantum_id} also failed: {err}")
            self._finished = FinishResult(status="upload-failed", upload_error=err)
        self.close()
        return self._finished

    def close(self) -> None:
        """Release the datastore (records store, thread pools); does not upload.

        Afterwards every method that reads, writes or checks datasets raises
        `ButlerClosedError`, whatever the datastore.
        """
        self._closed = True
        self._datastore.close()

    def __enter__(self) -> QuantumBackedButler:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.finish(exc)

    def __repr__(self) -> str:
        return (
            f"QuantumBackedButler(quantum={self.quantum_id}, inputs={len(self._predicted_inputs)}, "
            f"outputs={len(self._predicted_outputs)}, datastore={self._datastore!r})"
        )


def _warn_provenance(message: str) -> None:
    _LOG.warning(message)
    warnings.warn(message, ProvenanceWarning, stacklevel=3)
