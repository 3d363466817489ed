"""A datastore backend on a local directory, written for the documentation (docs/datastores.rst).

It shows what a new backend implements: the eight primitives and ``forget``,
built on the helpers of `s3qbb.datastores.base.Datastore` (``_check_put``,
``_plan_read``, ``_as_stored``, ``_finish_read``), the key templates and the formatters. The
conformance suite at the bottom runs from ``tests/docs/test_docs_examples.py``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from s3qbb.core.dataset_ref import DatasetRef, ensure_resolved
from s3qbb.core.storage_class import StorageClass, StorageClassFactory
from s3qbb.core.uri import DatasetRefURIs, ResourceURI
from s3qbb.datastores.base import Datastore, DatastoreCapabilities
from s3qbb.datastores.templates import FileTemplates, TemplateFields
from s3qbb.errors import DatasetExistsError, DatasetNotFoundError
from s3qbb.formatters import FormatterFactory
from s3qbb.testing.conformance import DatastoreConformance
from s3qbb.testing.data import example_storage_classes

__all__ = ["LocalDirectoryBackdoor", "LocalDirectoryDatastore", "TestLocalDirectoryConformance"]


class LocalDirectoryDatastore(Datastore):
    """Datasets as files under a local directory; records in a dict (lost with the process)."""

    capabilities = DatastoreCapabilities(ephemeral=False, predicted_uris=True)

    def __init__(
        self, root: str | Path, *, name: str = "local", storageClassFactory: StorageClassFactory | None = None
    ) -> None:
        super().__init__(name, storageClassFactory)
        self.root = Path(root)
        self.templates = FileTemplates()
        self.formatters = FormatterFactory.default()
        self._records: dict[uuid.UUID, tuple[str, str, str]] = {}  # ID -> (path, formatter, storage class)
        self._trash: dict[uuid.UUID, str] = {}  # trashed dataset ID -> path of its file
        self._lock = threading.Lock()

    # -- helpers --------------------------------------------------------------

    def _path(self, ref: DatasetRef) -> str:
        """Render the default key template for the (parent) dataset."""
        parent = ref.makeCompositeRef() if ref.isComponent() else ref
        storage_class = parent.datasetType.storageClass
        formatter = self.formatters.get(storage_class.formatter or "json")
        fields = TemplateFields(
            run=parent.run,
            dataset_type=parent.datasetType.name,
            component=None,
            dataset_id=parent.id,
            data_id=parent.dataId.mapping,
            required_dimensions=frozenset(parent.datasetType.dimensions.required),
        )
        template = self.templates.template_for(parent.datasetType.name, storage_class.name)
        return template.render(fields) + formatter.extension

    def _uri(self, path: str) -> ResourceURI:
        return ResourceURI(f"file://{self.root / path}")

    # -- the primitives --------------------------------------------------------

    def put(self, inMemoryDataset: Any, ref: DatasetRef) -> None:
        """Write the dataset to a new file; never overwrite one."""
        storage_class = self._check_put(inMemoryDataset, ref)  # resolved, not a component, right type
        formatter = self.formatters.get(storage_class.formatter or "json")
        data = formatter.write(inMemoryDataset)
        path = self._path(ref)
        if ref.id in self._records:
            raise DatasetExistsError(f"Dataset {ref} is already stored in {self.name!r}.")
        file = self.root / path
        file.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(file, "xb") as stream:  # "x": create-only, atomic on local filesystems
                stream.write(data)
        except FileExistsError as err:
            raise DatasetExistsError(f"Dataset {ref} already exists at {self._uri(path)}.") from err
        with self._lock:
            self._records[ref.id] = (path, formatter.name, storage_class.name)
        self.stats.count_request("put")
        self.stats.add(bytes_written=len(data))

    def get(
        self,
        ref: DatasetRef,
        parameters: Mapping[str, Any] | None = None,
        storageClass: StorageClass | str | None = None,
    ) -> Any:
        """Read the file; components, parameters and conversions are applied by ``_finish_read``."""
        plan = self._plan_read(ref, parameters, storageClass)  # validated before any I/O
        record = self._records.get(plan.parent.id)
        if record is None:
            raise DatasetNotFoundError(f"Dataset {ref} is not in datastore {self.name!r}.")
        path, formatter_name, stored_as = record
        plan = self._as_stored(plan, stored_as)  # decode as written, even if the ref says otherwise
        try:
            data = (self.root / path).read_bytes()
        except FileNotFoundError as err:
            raise DatasetNotFoundError(f"Dataset {ref}: {self._uri(path)} is missing.") from err
        self.stats.count_request("get")
        self.stats.add(bytes_read=len(data))
        obj = self.formatters.get(formatter_name).read(data, plan.stored.pytype)
        return self._finish_read(plan, obj)

    def exists(self, ref: DatasetRef) -> bool:
        """Return whether the dataset has a record and its file is there."""
        ensure_resolved(ref, "exists")
        record = self._records.get(ref.id)
        return record is not None and (self.root / record[0]).is_file()

    def knows(self, ref: DatasetRef) -> bool:
        """Return whether the dataset has a record."""
        return ensure_resolved(ref, "knows").id in self._records

    def remove(self, ref: DatasetRef) -> None:
        """Delete the file and the record now."""
        ensure_resolved(ref, "remove")
        with self._lock:
            record = self._records.pop(ref.id, None)
        if record is None:
            raise DatasetNotFoundError(f"Cannot remove dataset {ref}: it is not in {self.name!r}.")
        (self.root / record[0]).unlink(missing_ok=True)

    def trash(self, ref: DatasetRef | Iterable[DatasetRef], ignore_errors: bool = True) -> None:
        """Forget the datasets now; `emptyTrash` deletes their files."""
        refs = [ref] if isinstance(ref, DatasetRef) else list(ref)
        with self._lock:
            for r in refs:
                record = self._records.pop(ensure_resolved(r, "trash").id, None)
                if record is not None:
                    self._trash[r.id] = record[0]
                elif not ignore_errors:
                    raise DatasetNotFoundError(f"Cannot trash dataset {r}: it is not in {self.name!r}.")

    def emptyTrash(
        self, ignore_errors: bool = True, refs: Collection[DatasetRef] | None = None, dry_run: bool = False
    ) -> set[ResourceURI]:
        """Delete the files of trashed datasets (of ``refs`` only, if given); return their URIs."""
        with self._lock:
            ids = list(self._trash) if refs is None else [r.id for r in refs if r.id in self._trash]
            paths = [self._trash[i] if dry_run else self._trash.pop(i) for i in ids]
        for path in [] if dry_run else paths:
            (self.root / path).unlink(missing_ok=True)
        return {self._uri(path) for path in paths}

    def getURIs(self, ref: DatasetRef, predict: bool = False) -> DatasetRefURIs:
        """Return ``file://`` URIs; a predicted one ends with ``#predicted``."""
        ensure_resolved(ref, "getURIs")
        parent = ref.makeCompositeRef() if ref.isComponent() else ref
        record = self._records.get(parent.id)
        if record is not None:
            return DatasetRefURIs(self._uri(record[0]))
        if not predict:
            raise DatasetNotFoundError(f"Dataset {ref} is not in datastore {self.name!r}.")
        return DatasetRefURIs(ResourceURI(self._uri(self._path(parent)) + "#predicted"))

    def forget(self, refs: Iterable[DatasetRef]) -> None:
        """Drop records, leave files."""
        with self._lock:
            for ref in refs:
                self._records.pop(ensure_resolved(ref, "forget").id, None)


class LocalDirectoryBackdoor:
    """Look at the files directly: the conformance suite never trusts the datastore to check itself."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def location(self, ref: DatasetRef) -> str | None:
        found = [p for p in self.root.rglob("*") if p.is_file() and str(ref.id) in p.name]
        return str(found[0].relative_to(self.root)) if found else None

    def has_artifact(self, ref: DatasetRef) -> bool:
        return self.location(ref) is not None

    def read_artifact(self, ref: DatasetRef) -> Any:
        return (self.root / str(self.location(ref))).read_bytes()

    def corrupt(self, ref: DatasetRef) -> None:
        file = self.root / str(self.location(ref))
        data = bytearray(file.read_bytes())
        data[len(data) // 2] ^= 0xFF
        file.write_bytes(bytes(data))

    def delete_artifact(self, ref: DatasetRef) -> None:
        (self.root / str(self.location(ref))).unlink()


class TestLocalDirectoryConformance(DatastoreConformance):
    """Every test of the suite, run on the new backend."""

    @pytest.fixture
    def datastore(self, tmp_path: Path) -> LocalDirectoryDatastore:
        # The suite's sample datasets include a pydantic model of s3qbb.testing.data.
        return LocalDirectoryDatastore(tmp_path / "repo", storageClassFactory=example_storage_classes())

    @pytest.fixture
    def backdoor(self, datastore: LocalDirectoryDatastore) -> LocalDirectoryBackdoor:
        return LocalDirectoryBackdoor(datastore.root)
