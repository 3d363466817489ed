"""The datastore conformance suite: one test class every datastore (and wrapper) must pass.

Subclass `DatastoreConformance` in a test module and provide two pytest
fixtures, ``datastore`` (a fresh, empty datastore) and ``backdoor`` (a
`DatastoreBackdoor` that inspects storage *without* going through the
datastore under test: the memory dict, a raw boto3 client ...)::

    class TestMyStore(DatastoreConformance):
        @pytest.fixture
        def datastore(self):
            return MyStore(...)

        @pytest.fixture
        def backdoor(self, datastore):
            return MyBackdoor(datastore)

Tests that need a capability the datastore lacks (checksums, predicted URIs,
persistent records) are skipped with the reason.
"""

from __future__ import annotations

__all__ = ["DatastoreBackdoor", "DatastoreConformance", "MemoryBackdoor"]

import inspect
import threading
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import pytest

from ..errors import (
    AmbiguousDatasetError,
    DataIdError,
    DatasetExistsError,
    DatasetIntegrityError,
    DatasetNotFoundError,
    DatasetTypeError,
    InvalidParameterError,
    StorageClassError,
)
from .data import RefMaker, sample_object

if TYPE_CHECKING:
    from ..core.dataset_ref import DatasetRef
    from ..datastores.base import Datastore
    from ..datastores.memory import InMemoryDatastore


@runtime_checkable
class DatastoreBackdoor(Protocol):
    """Direct access to a datastore's storage, bypassing the datastore under test."""

    def has_artifact(self, ref: DatasetRef) -> bool:
        """Return whether the dataset's artifact exists in storage."""

    def read_artifact(self, ref: DatasetRef) -> Any:
        """Return the raw stored artifact (bytes for object stores, the object for memory)."""

    def corrupt(self, ref: DatasetRef) -> None:
        """Replace the stored artifact's content behind the datastore's back."""

    def delete_artifact(self, ref: DatasetRef) -> None:
        """Delete the stored artifact behind the datastore's back."""

    def location(self, ref: DatasetRef) -> str | None:
        """Return the storage location (key) of the artifact, or `None` if it has none."""


class MemoryBackdoor:
    """Backdoor into an `InMemoryDatastore`'s private dictionaries.

    Parameters
    ----------
    datastore : `InMemoryDatastore`
        The datastore to inspect.
    """

    def __init__(self, datastore: InMemoryDatastore) -> None:
        self._ds = datastore

    def has_artifact(self, ref: DatasetRef) -> bool:
        """Return whether the object is held (live or in the trash)."""
        return ref.id in self._ds._objects or ref.id in self._ds._trash

    def read_artifact(self, ref: DatasetRef) -> Any:
        """Return the stored object itself (not a copy)."""
        return self._ds._objects[ref.id]

    def corrupt(self, ref: DatasetRef) -> None:
        """Replace the stored object with a sentinel string."""
        self._ds._objects[ref.id] = "corrupted"

    def delete_artifact(self, ref: DatasetRef) -> None:
        """Drop the object but keep the record."""
        self._ds._objects.pop(ref.id, None)
        self._ds._trash.pop(ref.id, None)

    def location(self, ref: DatasetRef) -> str | None:
        """Memory has no storage locations."""
        return None


ROUND_TRIP = [
    "StructuredDataDict",
    "StructuredDataList",
    "StructuredDataDictYaml",
    "StructuredComposite",
    "Bytes",
    "NumpyArray",
    "ArrowTable",
    "ExampleModel",
]


def _equal(a: Any, b: Any) -> bool:
    if type(a).__module__.startswith("numpy"):
        import numpy as np

        return bool(type(a) is type(b) and np.array_equal(a, b) and a.dtype == b.dtype)
    if hasattr(a, "equals"):
        return bool(a.equals(b))
    return bool(a == b)


class DatastoreConformance:
    """Behaviour every datastore must show. Subclasses provide ``datastore`` and ``backdoor`` fixtures."""

    @pytest.fixture
    def refs(self, datastore: Datastore) -> RefMaker:
        """Return a ref maker sharing the datastore's storage classes."""
        return RefMaker(storage_classes=datastore.storageClassFactory)

    # --------------------------------------------------------------- put/get

    @pytest.mark.parametrize("storage_class", ROUND_TRIP)
    def test_round_trip(
        self, datastore: Datastore, backdoor: DatastoreBackdoor, refs: RefMaker, storage_class: str
    ) -> None:
        if storage_class == "ArrowTable":
            pytest.importorskip("pyarrow")
        if storage_class == "NumpyArray":
            pytest.importorskip("numpy")
        ref = refs.make(storage_class)
        obj = sample_object(storage_class)
        assert not datastore.exists(ref)
        assert not backdoor.has_artifact(ref)
        datastore.put(obj, ref)
        assert backdoor.has_artifact(ref)
        assert datastore.exists(ref) and datastore.knows(ref) and datastore.stored(ref)
        got = datastore.get(ref)
        assert _equal(got, obj)
        assert isinstance(got, ref.datasetType.storageClass.pytype)

    def test_get_missing(self, datastore: Datastore, refs: RefMaker) -> None:
        ref = refs.make()
        with pytest.raises(DatasetNotFoundError) as info:
            datastore.get(ref)
        assert isinstance(info.value, FileNotFoundError)
        assert str(ref.id) in str(info.value)

    def test_get_artifact_deleted_behind_back(
        self, datastore: Datastore, backdoor: DatastoreBackdoor, refs: RefMaker
    ) -> None:
        ref = refs.make()
        datastore.put({"a": 1}, ref)
        backdoor.delete_artifact(ref)
        datastore.invalidate(ref)
        assert not datastore.exists(ref)
        with pytest.raises(DatasetNotFoundError) as info:
            datastore.get(ref)
        assert str(ref) in str(info.value), "the error must name the dataset, not only its artifact"

    def test_second_put_refused_first_kept(
        self, datastore: Datastore, backdoor: DatastoreBackdoor, refs: RefMaker
    ) -> None:
        ref = refs.make()
        datastore.put({"first": 1}, ref)
        before = backdoor.read_artifact(ref)
        with pytest.raises(DatasetExistsError) as info:
            datastore.put({"second": 2}, ref)
        assert isinstance(info.value, FileExistsError)
        assert str(ref.id) in str(info.value)
        assert _equal(backdoor.read_artifact(ref), before)
        assert datastore.get(ref) == {"first": 1}

    def test_put_wrong_type_stores_nothing(
        self, datastore: Datastore, backdoor: DatastoreBackdoor, refs: RefMaker
    ) -> None:
        ref = refs.make("StructuredDataDict")
        with pytest.raises(StorageClassError) as info:
            datastore.put(["not", "a", "dict"], ref)
        message = str(info.value)
        assert "StructuredDataDict" in message and "list" in message
        assert not backdoor.has_artifact(ref)
        assert not datastore.exists(ref)

    @pytest.mark.parametrize("bad", [None, "dataset", 42, {"id": "x"}])
    def test_unresolved_refs_refused(self, datastore: Datastore, bad: Any) -> None:
        with pytest.raises(AmbiguousDatasetError) as info:
            datastore.put({"a": 1}, bad)
        assert isinstance(info.value, TypeError)
        for call in (datastore.get, datastore.exists, datastore.getURIs, datastore.remove):
            with pytest.raises(AmbiguousDatasetError):
                call(bad)

    def test_put_component_refused(
        self, datastore: Datastore, backdoor: DatastoreBackdoor, refs: RefMaker
    ) -> None:
        ref = refs.make("StructuredComposite")
        with pytest.raises(DatasetTypeError):
            datastore.put({"n": 1}, ref.makeComponentRef("summary"))
        assert not backdoor.has_artifact(ref)

    def test_components(self, datastore: Datastore, refs: RefMaker) -> None:
        ref = refs.make("StructuredComposite")
        obj = sample_object("StructuredComposite")
        datastore.put(obj, ref)
        for name in ("summary", "output", "data"):
            assert datastore.get(ref.makeComponentRef(name)) == obj[name]
        uris = datastore.getURIs(ref.makeComponentRef("data"))
        assert uris.primaryURI is not None

    # ------------------------------------------------------------ parameters

    def test_read_parameters(self, datastore: Datastore, refs: RefMaker) -> None:
        np = pytest.importorskip("numpy")
        ref = refs.make("NumpyArray")
        arr = sample_object("NumpyArray")
        datastore.put(arr, ref)
        for rows in (slice(2, 7), slice(0, 1), slice(15, None), (3, 9), slice(1, 17, 5)):
            expected = arr[slice(*rows)] if isinstance(rows, tuple) else arr[rows]
            assert np.array_equal(datastore.get(ref, parameters={"rows": rows}), expected)

    @pytest.mark.parametrize("rows", [slice(None, None, -1), slice(15, 2, -3), slice(-1, -8, -2)])
    def test_read_parameters_negative_step(self, datastore: Datastore, refs: RefMaker, rows: slice) -> None:
        # Every backend answers as ``array[rows]`` does: memory, S3 (ranged or whole), cache hits.
        np = pytest.importorskip("numpy")
        ref = refs.make("NumpyArray")
        arr = sample_object("NumpyArray")
        datastore.put(arr, ref)
        for drop_cached in (False, True):  # a cache tier serves a hit first, then reads its backend
            if drop_cached:
                datastore.invalidate(ref)
            got = datastore.get(ref, parameters={"rows": rows})
            assert np.array_equal(got, arr[rows]) and got.dtype == arr.dtype
            assert got.flags.writeable

    def test_undeclared_parameter_refused(self, datastore: Datastore, refs: RefMaker) -> None:
        ref = refs.make("StructuredDataDict")
        datastore.put({"a": 1}, ref)
        with pytest.raises(InvalidParameterError) as info:
            datastore.get(ref, parameters={"rows": slice(0, 1)})
        assert "StructuredDataDict" in str(info.value) and "rows" in str(info.value)

    def test_storage_class_override(self, datastore: Datastore, refs: RefMaker) -> None:
        np = pytest.importorskip("numpy")
        ref = refs.make("StructuredDataList")
        datastore.put([1, 2, 3], ref)
        got = datastore.get(ref, storageClass="NumpyArray")
        assert isinstance(got, np.ndarray) and got.tolist() == [1, 2, 3]
        via_ref = datastore.get(ref.overrideStorageClass("NumpyArray", datastore.storageClassFactory))
        assert isinstance(via_ref, np.ndarray)
        with pytest.raises(StorageClassError):
            datastore.get(ref, storageClass="Bytes")
        assert datastore.get(ref) == [1, 2, 3]

    def test_storage_class_override_of_stored_array(self, datastore: Datastore, refs: RefMaker) -> None:
        # Decoding follows the class the dataset was written with, not the one the ref carries.
        np = pytest.importorskip("numpy")
        ref = refs.make("NumpyArray")
        datastore.put(np.arange(4), ref)
        as_list = ref.overrideStorageClass("StructuredDataList", datastore.storageClassFactory)
        assert datastore.get(as_list) == [0, 1, 2, 3]
        assert datastore.get(ref, storageClass="StructuredDataList") == [0, 1, 2, 3]
        assert isinstance(datastore.get(ref), np.ndarray)
        with pytest.raises(StorageClassError):
            datastore.get(
                ref.overrideStorageClass("StructuredDataList", datastore.storageClassFactory),
                storageClass="Bytes",
            )

    # ---------------------------------------------------------- copy safety

    def test_copy_safety(self, datastore: Datastore, refs: RefMaker) -> None:
        ref = refs.make()
        obj: dict[str, Any] = {"a": [1, 2]}
        datastore.put(obj, ref)
        obj["a"].append(3)
        got = datastore.get(ref)
        assert got == {"a": [1, 2]}
        got["a"].append(99)
        got["new"] = True
        assert datastore.get(ref) == {"a": [1, 2]}

    # ------------------------------------------------------ remove and trash

    def test_remove(self, datastore: Datastore, backdoor: DatastoreBackdoor, refs: RefMaker) -> None:
        ref = refs.make()
        datastore.put({"a": 1}, ref)
        datastore.remove(ref)
        assert not datastore.exists(ref) and not datastore.knows(ref)
        assert not backdoor.has_artifact(ref)
        with pytest.raises(DatasetNotFoundError):
            datastore.remove(ref)
        datastore.put({"again": 1}, ref)
        assert datastore.get(ref) == {"again": 1}

    def test_trash_and_empty(self, datastore: Datastore, backdoor: DatastoreBackdoor, refs: RefMaker) -> None:
        keep, drop = refs.make(), refs.make()
        datastore.put({"keep": 1}, keep)
        datastore.put({"drop": 1}, drop)
        datastore.trash(drop)
        assert not datastore.knows(drop) and not datastore.exists(drop)
        datastore.emptyTrash()
        assert not backdoor.has_artifact(drop)
        assert backdoor.has_artifact(keep) and datastore.get(keep) == {"keep": 1}
        datastore.trash([drop], ignore_errors=True)

    def test_empty_trash_of_given_refs(
        self, datastore: Datastore, backdoor: DatastoreBackdoor, refs: RefMaker
    ) -> None:
        """``emptyTrash(refs=...)`` deletes only those trashed datasets; ``dry_run`` deletes nothing."""
        first, second, live = refs.make(), refs.make(), refs.make()
        for ref in (first, second, live):
            datastore.put({"n": 1}, ref)
        datastore.trash([first, second], ignore_errors=False)
        planned = datastore.emptyTrash(refs=[first, live], dry_run=True)  # live is not trashed: ignored
        assert backdoor.has_artifact(first) and backdoor.has_artifact(second)
        assert datastore.emptyTrash(refs=[first, live]) == planned
        assert not backdoor.has_artifact(first) and backdoor.has_artifact(second)
        assert all(str(first.id) in uri for uri in planned)  # what was deleted (none for memory)
        assert datastore.emptyTrash(refs=[]) == set() and backdoor.has_artifact(second)
        datastore.emptyTrash()
        assert not backdoor.has_artifact(second)
        assert backdoor.has_artifact(live) and datastore.get(live) == {"n": 1}

    def test_trash_unknown_dataset(self, datastore: Datastore, refs: RefMaker) -> None:
        """``ignore_errors=False`` raises (a FileNotFoundError, as daf_butler); the default is daf_butler's.

        The default of ``ignore_errors`` is that of the daf_butler datastore the
        backend stands for (`False` for ``InMemoryDatastore``, `True` for
        ``FileDatastore``); whichever it is, the datastore must honour it.
        """
        unknown = refs.make()
        for given in (unknown, [unknown]):
            with pytest.raises(DatasetNotFoundError) as info:
                datastore.trash(given, ignore_errors=False)
            assert isinstance(info.value, FileNotFoundError) and str(unknown.id) in str(info.value)
            datastore.trash(given, ignore_errors=True)
        if inspect.signature(type(datastore).trash).parameters["ignore_errors"].default:
            datastore.trash(unknown)
        else:
            with pytest.raises(DatasetNotFoundError):
                datastore.trash(unknown)

    def test_forget(self, datastore: Datastore, refs: RefMaker) -> None:
        ref = refs.make()
        datastore.put({"a": 1}, ref)
        datastore.forget([ref])
        assert not datastore.knows(ref)
        with pytest.raises(DatasetNotFoundError):
            datastore.get(ref)

    # ------------------------------------------------------------ validation

    def test_validate_configuration(self, datastore: Datastore, refs: RefMaker) -> None:
        """What the datastore stores validates: as a ref, a component ref, a dataset type, a storage class."""
        entities: list[Any] = [refs.make("StructuredComposite").makeComponentRef("summary")]
        for storage_class in ROUND_TRIP:
            ref = refs.make(storage_class)
            entities += [ref, ref.datasetType, ref.datasetType.storageClass]
        datastore.validateConfiguration(entities)
        datastore.validateConfiguration(entities, logFailures=True)
        datastore.validateConfiguration([])

    # ------------------------------------------------------------------ URIs

    def test_uris(self, datastore: Datastore, refs: RefMaker) -> None:
        ref = refs.make()
        with pytest.raises(FileNotFoundError):
            datastore.getURI(ref)
        with pytest.raises(FileNotFoundError):
            datastore.getUri(ref)
        if datastore.capabilities.predicted_uris:
            predicted = datastore.getURI(ref, predict=True)
            assert predicted.endswith("#predicted") and predicted.is_predicted
            assert datastore.getUri(ref, predict=True) == str(predicted)
        datastore.put({"a": 1}, ref)
        actual = datastore.getURI(ref)
        assert not actual.is_predicted and "#" not in actual
        if datastore.capabilities.predicted_uris:
            assert actual == predicted.unpredicted()
        uris = datastore.getURIs(ref)
        assert uris.primaryURI == actual and not uris.componentURIs
        assert isinstance(datastore.getUri(ref), str)

    def test_get_many_uris(self, datastore: Datastore, refs: RefMaker) -> None:
        stored, missing = refs.make(), refs.make()
        datastore.put({"a": 1}, stored)
        with pytest.raises(FileNotFoundError):
            datastore.get_many_uris([stored, missing])
        got = datastore.get_many_uris([stored, missing], allow_missing=True)
        assert set(got) == {stored}
        if datastore.capabilities.predicted_uris:
            predicted = datastore.get_many_uris([stored, missing], predict=True)
            missing_uri, stored_uri = predicted[missing].primaryURI, predicted[stored].primaryURI
            assert missing_uri is not None and missing_uri.is_predicted
            assert stored_uri is not None and not stored_uri.is_predicted

    def test_is_ephemeral_follows_capabilities(self, datastore: Datastore) -> None:
        assert datastore.isEphemeral is datastore.capabilities.ephemeral

    def test_daf_butler_bulk_names(self, datastore: Datastore, refs: RefMaker) -> None:
        stored, missing = refs.make(), refs.make()
        datastore.put({"a": 1}, stored)
        assert datastore.knows_these([stored, missing]) == {stored: True, missing: False}
        assert datastore.mexists([stored, missing]) == {stored: True, missing: False}
        assert datastore.getManyURIs([stored, missing], allow_missing=True) == datastore.get_many_uris(
            [stored], allow_missing=True
        )
        with pytest.raises(FileNotFoundError):
            datastore.getManyURIs([missing])

    # ------------------------------------------------------------------ bulk

    def test_stored_many(self, datastore: Datastore, refs: RefMaker) -> None:
        present = [refs.make() for _ in range(5)]
        absent = [refs.make() for _ in range(3)]
        for i, ref in enumerate(present):
            datastore.put({"i": i}, ref)
        result = datastore.stored_many(present + absent)
        assert result == {**dict.fromkeys(present, True), **dict.fromkeys(absent, False)}

    def test_put_many_get_many(self, datastore: Datastore, refs: RefMaker) -> None:
        items = [({"i": i}, refs.make()) for i in range(12)]
        datastore.put_many(items)
        got = datastore.get_many([ref for _, ref in items])
        assert got == {ref: obj for obj, ref in items}

    def test_put_many_partial_failure(self, datastore: Datastore, refs: RefMaker) -> None:
        good, dup = refs.make(), refs.make()
        datastore.put({"dup": 1}, dup)
        with pytest.raises(DatasetExistsError):
            datastore.put_many([({"dup": 2}, dup), ({"good": 1}, good)])
        assert datastore.get(good) == {"good": 1}
        assert datastore.get(dup) == {"dup": 1}

    def test_transfer(self, datastore: Datastore, refs: RefMaker) -> None:
        from ..datastores.memory import InMemoryDatastore

        source = InMemoryDatastore(name="source", storageClassFactory=datastore.storageClassFactory)
        ref = refs.make()
        source.put({"from": "source"}, ref)
        datastore.transfer(source, ref)
        assert datastore.get(ref) == {"from": "source"}
        with pytest.raises(DatasetNotFoundError):
            datastore.transfer(source, refs.make())

    def test_concurrent_puts(self, datastore: Datastore, refs: RefMaker) -> None:
        items = [({"i": i}, refs.make()) for i in range(64)]
        errors: list[BaseException] = []

        def work(chunk: list[tuple[dict[str, int], DatasetRef]]) -> None:
            try:
                for obj, ref in chunk:
                    datastore.put(obj, ref)
            except BaseException as err:  # pragma: no cover - reported below
                errors.append(err)

        threads = [threading.Thread(target=work, args=(items[i::8],)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert all(datastore.get(ref) == obj for obj, ref in items)

    def test_concurrent_put_same_dataset(self, datastore: Datastore, refs: RefMaker) -> None:
        ref = refs.make()
        outcomes: list[str] = []
        lock = threading.Lock()

        def work(i: int) -> None:
            try:
                datastore.put({"writer": i}, ref)
                result = f"ok{i}"
            except DatasetExistsError:
                result = "exists"
            with lock:
                outcomes.append(result)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [o for o in outcomes if o.startswith("ok")]
        assert len(winners) == 1 and outcomes.count("exists") == 7
        assert datastore.get(ref) == {"writer": int(winners[0][2:])}

    # ------------------------------------------------------ hostile data IDs

    @pytest.mark.parametrize(
        "value",
        [
            "../../etc/passwd",
            "a/b",
            "%2F..%2F",
            "x%00y",
            "..",
            ".",
            "\u0085[31m",
            "é/ü",
            "_records",
            "a" * 255,
        ],
    )
    def test_hostile_data_ids(
        self, datastore: Datastore, backdoor: DatastoreBackdoor, refs: RefMaker, value: str
    ) -> None:
        ref = refs.make(instrument=value)
        datastore.put({"v": value}, ref)
        assert datastore.get(ref) == {"v": value}
        location = backdoor.location(ref)
        if location is not None:
            segments = location.split("/")
            assert ".." not in segments and "." not in segments and "\x00" not in location
            assert str(ref.id) in location or ref.run in location
        other = refs.make(instrument=value + "x", visit=ref.dataId["visit"], detector=ref.dataId["detector"])
        datastore.put({"v": "other"}, other)
        assert datastore.get(ref) == {"v": value}

    @pytest.mark.parametrize("value", ["x\x00y", "\x1b[31m", "r\udae3", "a" * 300])
    def test_unstorable_data_ids_refused_before_any_write(self, refs: RefMaker, value: str) -> None:
        # No store can hold these (NUL, control characters, lone surrogates, over 256 characters):
        # refused when the ref is made, so no backend ever sees them.
        with pytest.raises(DataIdError):
            refs.make(instrument=value)

    # ------------------------------------------------------------- integrity

    def test_corruption_detected(
        self, datastore: Datastore, backdoor: DatastoreBackdoor, refs: RefMaker
    ) -> None:
        if not datastore.capabilities.checksums:
            pytest.skip(f"{type(datastore).__name__} does not verify checksums")
        ref = refs.make("Bytes")
        datastore.put(b"original bytes", ref)
        backdoor.corrupt(ref)
        datastore.invalidate(ref)  # a cache tier keeps serving its verified copy until told
        with pytest.raises(DatasetIntegrityError) as info:
            datastore.get(ref)
        assert str(ref.id) in str(info.value)

    # --------------------------------------------------------------- records

    def test_records_export_import(self, datastore: Datastore, refs: RefMaker) -> None:
        ref = refs.make()
        datastore.put({"a": 1}, ref)
        exported = datastore.export_records([ref])
        if not datastore.capabilities.persistent_records:
            assert exported == {}
            return
        assert datastore.name in exported
        datastore.forget([ref])
        assert not datastore.knows(ref)
        datastore.import_records(exported)
        assert datastore.knows(ref) and datastore.get(ref) == {"a": 1}

    def test_stats_count_operations(self, datastore: Datastore, refs: RefMaker) -> None:
        datastore.stats.reset()
        ref = refs.make()
        datastore.put({"a": 1}, ref)
        datastore.get(ref)
        snap = datastore.stats.snapshot()
        assert snap["total_requests"] >= 1 and snap["bytes_written"] > 0
        datastore.invalidate(ref)
        datastore.get(ref)  # served by storage, whatever cache sits in front
        assert datastore.stats.snapshot()["total_requests"] >= 2
