"""InMemoryDatastore: the conformance suite plus the seed's own API and the LRU bound."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from s3qbb.datastores.memory import InMemoryDatastore, StoredMemoryItemInfo
from s3qbb.datastores.sizes import estimate_nbytes
from s3qbb.errors import (
    ConfigError,
    DatasetNotFoundError,
    DatastoreCapacityError,
    RecordExistsError,
    RecordNotFoundError,
)
from s3qbb.testing.conformance import DatastoreConformance, MemoryBackdoor
from s3qbb.testing.data import RefMaker, example_storage_classes


class TestInMemoryConformance(DatastoreConformance):
    @pytest.fixture
    def datastore(self) -> InMemoryDatastore:
        return InMemoryDatastore(name="mem", storageClassFactory=example_storage_classes())

    @pytest.fixture
    def backdoor(self, datastore: InMemoryDatastore) -> MemoryBackdoor:
        return MemoryBackdoor(datastore)


class TestBoundedInMemoryConformance(TestInMemoryConformance):
    """A generously bounded store must behave exactly like an unbounded one."""

    @pytest.fixture
    def datastore(self) -> InMemoryDatastore:
        return InMemoryDatastore(
            name="bounded",
            max_bytes=10_000_000,
            max_entries=10_000,
            storageClassFactory=example_storage_classes(),
        )


@pytest.fixture
def refs() -> RefMaker:
    return RefMaker()


def test_seed_attributes() -> None:
    store = InMemoryDatastore()
    assert store.isEphemeral is True
    assert InMemoryDatastore.isEphemeral is True, "a class attribute, as in the seed"
    assert store.config == {"name": "InMemoryDatastore", "max_bytes": None, "max_entries": None}
    assert InMemoryDatastore({"name": "cfg", "max_entries": 3}).config["max_entries"] == 3
    assert InMemoryDatastore.defaultConfigFile == "datastores/inMemoryDatastore.yaml"
    assert store.name == "InMemoryDatastore"
    assert InMemoryDatastore.setConfigRoot("/root", {}, {}) is None


def test_config_mapping_and_file(tmp_path: Path) -> None:
    assert InMemoryDatastore({"name": "cfg", "max_entries": 3}).max_entries == 3
    path = tmp_path / "mem.yaml"
    path.write_text("datastore:\n  name: fromfile\n  max_bytes: 1000\n")
    store = InMemoryDatastore(str(path))
    assert store.name == "fromfile" and store.max_bytes == 1000 and store.capabilities.bounded
    with pytest.raises(ConfigError, match="Unknown InMemoryDatastore config keys"):
        InMemoryDatastore({"nme": "typo"})
    with pytest.raises(ConfigError, match="max_bytes"):
        InMemoryDatastore(max_bytes=0)
    with pytest.raises(ConfigError, match="Cannot read"):
        InMemoryDatastore(str(tmp_path / "missing.yaml"))


def test_stored_item_info(refs: RefMaker) -> None:
    store = InMemoryDatastore()
    ref = refs.make()
    with pytest.raises(RecordNotFoundError) as info:
        store.getStoredItemInfo(ref)
    assert isinstance(info.value, KeyError) and str(ref.id) in str(info.value)
    store.put({"a": 1}, ref)
    record = store.getStoredItemInfo(ref)
    assert record.dataset_id == ref.id and record.parentID == ref.id
    assert record.storageClass.name == "StructuredDataDict" and record.file_size > 0
    assert record.timestamp <= time.time()
    with pytest.raises(KeyError) as duplicate:  # what daf_butler raises
        store.addStoredItemInfo(ref, record)
    assert isinstance(duplicate.value, RecordExistsError) and str(ref.id) in str(duplicate.value)
    assert store.getStoredItemInfo(ref) is record
    store.removeStoredItemInfo(ref)
    assert not store.exists(ref)
    with pytest.raises(KeyError) as unknown:
        store.removeStoredItemInfo(ref)
    assert isinstance(unknown.value, RecordNotFoundError) and str(ref.id) in str(unknown.value)
    with pytest.raises(DatasetNotFoundError):
        store.get(ref)
    other = refs.make()
    store.addStoredItemInfo(other, StoredMemoryItemInfo(0.0, record.storageClass, other.id, other.id))
    assert store.knows(other) and not store.exists(other)


def test_mem_uris(refs: RefMaker) -> None:
    store = InMemoryDatastore(name="my store")
    ref = refs.make()
    predicted = store.getUri(ref, predict=True)
    assert predicted.startswith("mem://my%20store/") and predicted.endswith("#predicted")
    store.put({"a": 1}, ref)
    assert store.getURI(ref).scheme == "mem"
    assert store.getURI(ref).path.endswith(str(ref.id))


def test_lru_eviction_by_entries(refs: RefMaker) -> None:
    store = InMemoryDatastore(max_entries=3)
    made = [refs.make() for _ in range(4)]
    for i, ref in enumerate(made[:3]):
        store.put({"i": i}, ref)
    store.get(made[0])  # made[0] becomes most recently used
    store.put({"i": 3}, made[3])
    assert [store.exists(r) for r in made] == [True, False, True, True]
    assert store.stats.evictions == 1 and len(store) == 3


def test_lru_eviction_by_bytes(refs: RefMaker) -> None:
    store = InMemoryDatastore(max_bytes=2500)
    made = [refs.make("Bytes") for _ in range(3)]
    for ref in made:
        store.put(b"x" * 1000, ref)
    assert [store.exists(r) for r in made] == [False, True, True]
    assert store.nbytes == 2000
    with pytest.raises(DatastoreCapacityError, match="max_bytes"):
        store.put(b"y" * 3000, refs.make("Bytes"))
    assert store.nbytes == 2000


def test_removal_frees_bytes(refs: RefMaker) -> None:
    store = InMemoryDatastore()
    a, b = refs.make("Bytes"), refs.make("Bytes")
    store.put(b"1" * 100, a)
    store.put(b"2" * 50, b)
    assert store.nbytes == 150
    store.remove(a)
    store.trash(b)
    assert store.nbytes == 0


def test_estimate_nbytes() -> None:
    np = pytest.importorskip("numpy")
    assert estimate_nbytes(b"abc") == 3
    assert estimate_nbytes(np.zeros(10)) == 80
    assert estimate_nbytes({"a": b"x" * 100}) > 100
    deep: list[object] = []
    node = deep
    for _ in range(100):
        child: list[object] = []
        node.append(child)
        node = child
    assert estimate_nbytes(deep) > 0


@pytest.mark.parametrize("depth", [1, 2, 16, 20, 5000])
def test_estimate_nbytes_counts_the_leaves_however_deep(depth: int) -> None:
    """Nesting does not hide bytes (a depth limit once cut the walk, and the cache tier's bound, short)."""
    leaves = ["x" * 50 for _ in range(2000)]
    nested: object = {"leaves": leaves}
    for i in range(depth):
        nested = {f"level{i}": nested} if i % 2 else [nested]
    assert estimate_nbytes(nested) >= sum(len(leaf) for leaf in leaves) + 2000 * 49


def test_estimate_nbytes_counts_shared_and_cyclic_containers_once() -> None:
    blob = [b"y" * 10_000]
    shared = {"a": blob, "b": blob}
    assert estimate_nbytes(shared) < 2 * 10_000
    cycle: list[object] = [b"z" * 1000]
    cycle.append(cycle)
    assert 1000 < estimate_nbytes(cycle) < 2000

    class Node:
        def __init__(self) -> None:
            self.payload = b"w" * 500
            self.me = self

    assert 500 < estimate_nbytes(Node()) < 1000


def test_bound_holds_for_deeply_nested_datasets(refs: RefMaker) -> None:
    store = InMemoryDatastore(max_bytes=1_000_000)
    datasets = []
    for i in range(5):
        nested: object = {"strings": [f"{i}-{j}" * 20 for j in range(5000)]}  # ~700 kB of strings
        for level in range(20):
            nested = {f"l{level}": nested}
        ref = refs.make("StructuredDataDict")
        store.put(nested, ref)
        datasets.append(ref)
        assert store.nbytes <= 1_000_000
    assert sum(store.exists(r) for r in datasets) == 1  # each needs most of the bound


def test_immutable_objects_are_shared(refs: RefMaker) -> None:
    store = InMemoryDatastore()
    ref = refs.make("Bytes")
    payload = b"z" * 1000
    store.put(payload, ref)
    assert store.get(ref) is payload


def test_everything_validates(refs: RefMaker) -> None:
    """As daf_butler's InMemoryDatastore: objects are kept as they are, so any storage class can be stored."""
    factory = example_storage_classes()
    factory.addFromConfig({"NoFormatter": {"pytype": "builtins.dict"}})
    ref = RefMaker(storage_classes=factory).make("NoFormatter")
    store = InMemoryDatastore(storageClassFactory=factory)
    store.validateConfiguration([ref, ref.datasetType, ref.datasetType.storageClass], logFailures=True)
    store.put({"a": 1}, ref)


# The seed's InMemoryDatastore API (the API reference of daf_butler's
# lsst.daf.butler.datastores.inMemoryDatastore.InMemoryDatastore): method -> parameter names in order.
SEED_METHODS = {
    "__init__": ["config", "registry"],
    "addStoredItemInfo": ["ref", "info"],
    "exists": ["ref"],
    "get": ["ref", "parameters"],
    "getStoredItemInfo": ["ref"],
    "getUri": ["ref", "predict"],
    "put": ["inMemoryDataset", "ref"],
    "remove": ["ref"],
    "removeStoredItemInfo": ["ref"],
    "setConfigRoot": ["root", "config", "full"],
    "transfer": ["inputDatastore", "ref"],
}


@pytest.mark.parametrize("name", sorted(SEED_METHODS))
def test_seed_method_signatures(name: str) -> None:
    import inspect

    parameters = [p for p in inspect.signature(getattr(InMemoryDatastore, name)).parameters if p != "self"]
    assert parameters[: len(SEED_METHODS[name])] == SEED_METHODS[name]


def test_seed_instance_attributes() -> None:
    store = InMemoryDatastore({"name": "seed"})
    assert store.name == "seed" and store.config["name"] == "seed"
    assert store.storageClassFactory.getStorageClass("StructuredDataDict").name == "StructuredDataDict"
