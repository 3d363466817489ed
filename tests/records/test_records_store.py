"""Tests of the records stores: SqliteRecordsStore and MemoryRecordsStore, one contract.

Tests taking the ``store`` fixture run on both (an in-memory SQLite store and
the dictionary store); those about files, SQL and locks take ``sqlite_store``
or build a file store themselves.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from s3qbb.core.records import DatastoreRecordData, SerializedDatastoreRecordData, StoredFileInfo
from s3qbb.errors import (
    ConfigError,
    RecordDataError,
    RecordExistsError,
    RecordsStoreError,
    TransientStorageError,
)
from s3qbb.records.contract import RecordsStore
from s3qbb.records.memory import MemoryRecordsStore
from s3qbb.records.store import SqliteRecordsStore

TABLE = "file_datastore_records"


def make_info(dataset_id: uuid.UUID | None = None, component: str | None = None, **kw: Any) -> StoredFileInfo:
    values: dict[str, Any] = {
        "dataset_id": dataset_id or uuid.uuid4(),
        "path": f"run/type/{uuid.uuid4().hex[:8]}.json",
        "formatter": "s3qbb.formatters.json.JsonFormatter",
        "storage_class": "StructuredDataDict",
        "component": component,
        "checksum": "CRC32C:AAAAAA==",
        "file_size": 42,
    }
    values.update(kw)
    return StoredFileInfo(**values)


STORES = {"sqlite": SqliteRecordsStore, "memory": MemoryRecordsStore}


def new_store(kind: str, name: str = "ds") -> RecordsStore:
    """An empty in-memory store of a kind of `STORES`."""
    return STORES[kind](datastore_name=name)


@pytest.fixture(params=sorted(STORES))
def store(request: pytest.FixtureRequest) -> Iterator[RecordsStore]:
    s = new_store(request.param)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def sqlite_store() -> Iterator[SqliteRecordsStore]:
    with SqliteRecordsStore(datastore_name="ds") as s:
        yield s


def raw_rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


# --- basics ----------------------------------------------------------------


def test_construction_is_lazy(tmp_path: Path) -> None:
    target = tmp_path / "records.sqlite3"
    s = SqliteRecordsStore(target, datastore_name="ds")
    assert not target.exists()
    assert s.dataset_ids() == set()
    assert target.exists()
    s.close()


@pytest.mark.parametrize(
    "kw",
    [
        {"datastore_name": ""},
        {"datastore_name": "ds", "table": "bad name"},
        {"datastore_name": "ds", "table": "s3qbb_meta"},
    ],
)
@pytest.mark.parametrize("kind", sorted(STORES))
def test_bad_construction_arguments(kind: str, kw: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        STORES[kind](**kw)


def test_insert_get_round_trip(store: RecordsStore) -> None:
    plain = make_info()
    parts = [make_info(uuid.uuid4(), "image"), make_info(None, "mask")]
    parts[1] = parts[1].update(dataset_id=parts[0].dataset_id, checksum=None, file_size=-1)
    store.insert([plain])
    store.insert(parts)
    assert store.get(plain.dataset_id) == [plain]
    assert store.get(parts[0].dataset_id) == parts  # sorted by component
    assert store.has(plain.dataset_id)
    assert store.dataset_ids() == {plain.dataset_id, parts[0].dataset_id}


def test_get_of_missing_is_empty(store: RecordsStore) -> None:
    missing = uuid.uuid4()
    assert store.get(missing) == []
    assert not store.has(missing)
    assert store.get_many([missing]) == {}
    store.insert([])  # no-op


def test_get_many_batches(store: RecordsStore) -> None:
    infos = [make_info() for _ in range(1234)]
    store.insert(infos)
    wanted = [i.dataset_id for i in infos] + [uuid.uuid4()]
    found = store.get_many(wanted + wanted[:10])
    assert len(found) == 1234
    assert all(found[i.dataset_id] == [i] for i in infos)
    assert len(store.dataset_ids()) == 1234


def test_duplicate_insert_refused_without_partial_insert(store: RecordsStore) -> None:
    existing = make_info()
    store.insert([existing])
    fresh = make_info()
    with pytest.raises(RecordExistsError, match=str(existing.dataset_id)) as excinfo:
        store.insert([fresh, make_info(existing.dataset_id, "other")])
    assert isinstance(excinfo.value, FileExistsError)
    assert store.get(fresh.dataset_id) == []
    assert store.get(existing.dataset_id) == [existing]


def test_duplicate_within_one_insert_refused(store: RecordsStore) -> None:
    info = make_info()
    other = make_info()
    with pytest.raises(RecordExistsError, match=str(info.dataset_id)):
        store.insert([other, info, info.update(path="x.json")])
    assert store.dataset_ids() == set()


def test_insert_replace(store: RecordsStore) -> None:
    a = make_info()
    store.insert([a, make_info(uuid.uuid4())])
    with pytest.raises(RecordExistsError):
        store.insert([make_info(a.dataset_id, "image")])
    replacement = [make_info(a.dataset_id, "image"), make_info(a.dataset_id, "mask")]
    store.insert(replacement, replace=True)
    assert store.get(a.dataset_id) == replacement


def test_insert_new_skips_recorded_datasets(store: RecordsStore) -> None:
    live, trashed = make_info(), make_info()
    store.insert([live, trashed])
    store.move_to_trash([trashed.dataset_id])
    new = [make_info(), make_info()]
    parts = [make_info(new[0].dataset_id, "image"), make_info(new[0].dataset_id, "mask")]
    incoming = [make_info(live.dataset_id, "other"), *parts, make_info(trashed.dataset_id), new[1]]
    assert store.insert_new(incoming) == {live.dataset_id, trashed.dataset_id}
    assert store.dataset_ids() == {live.dataset_id, new[0].dataset_id, new[1].dataset_id}
    assert store.get(live.dataset_id) == [live]  # untouched: nothing of a recorded dataset is added
    assert store.get(new[0].dataset_id) == parts and store.get(new[1].dataset_id) == [new[1]]
    assert store.trashed_ids() == {trashed.dataset_id}
    assert store.insert_new([]) == set()
    with pytest.raises(RecordExistsError, match="two records"):
        store.insert_new([(again := make_info()), again.update(path="x.json")])
    assert again.dataset_id not in store.dataset_ids()


def test_delete(store: RecordsStore) -> None:
    infos = [make_info() for _ in range(3)]
    store.insert(infos)
    store.move_to_trash([infos[2].dataset_id])
    assert store.delete([infos[0].dataset_id, infos[2].dataset_id, uuid.uuid4()]) == 2
    assert store.dataset_ids() == {infos[1].dataset_id}
    assert store.trashed_ids() == set()
    assert store.delete([]) == 0
    store.insert([infos[0]])  # gone for good, so it can come back


# --- trash -------------------------------------------------------------------


def test_trash_cycle(store: RecordsStore) -> None:
    keep, drop = make_info(), make_info()
    store.insert([keep, drop])
    assert store.move_to_trash([drop.dataset_id, uuid.uuid4()]) == 1
    assert store.move_to_trash([drop.dataset_id]) == 0
    assert store.trashed_ids() == {drop.dataset_id}
    assert not store.has(drop.dataset_id)
    assert store.get(drop.dataset_id) == []
    assert store.dataset_ids() == {keep.dataset_id}
    with pytest.raises(RecordExistsError):
        store.insert([drop])  # records linger until the trash is emptied
    assert store.empty_trash([keep.dataset_id]) == {}
    assert store.empty_trash() == {drop.dataset_id: [drop]}
    assert store.trashed_ids() == set()
    store.insert([drop])
    assert store.get(drop.dataset_id) == [drop]


def test_replace_takes_dataset_out_of_trash(store: RecordsStore) -> None:
    info = make_info()
    store.insert([info])
    store.move_to_trash([info.dataset_id])
    store.insert([info], replace=True)
    assert store.trashed_ids() == set()
    assert store.get(info.dataset_id) == [info]


# --- export / import ------------------------------------------------------------


def test_export_json_import_into_new_store(store: RecordsStore) -> None:
    infos = [make_info(), make_info(checksum=None, file_size=-1)]
    parts = [make_info(uuid.uuid4(), "image")]
    parts.append(make_info(parts[0].dataset_id, "mask"))
    store.insert(infos + parts)
    exported = store.export()
    assert exported.dataset_ids == {i.dataset_id for i in infos + parts}
    text = exported.to_simple().model_dump_json()
    data = DatastoreRecordData.from_simple(SerializedDatastoreRecordData.model_validate_json(text))
    with type(store)(datastore_name="other") as target:
        target.import_records(data)
        assert target.export() == exported
        target.import_records(data)  # idempotent
        assert target.get_many(exported.dataset_ids) == store.get_many(exported.dataset_ids)
    subset = store.export([infos[0].dataset_id, uuid.uuid4()])
    assert subset.records == {infos[0].dataset_id: {TABLE: [infos[0]]}}


def test_import_conflict_refused_atomically(store: RecordsStore) -> None:
    stored = make_info()
    store.insert([stored])
    fresh = make_info()
    conflicting = stored.update(path="elsewhere.json")
    data = DatastoreRecordData(
        {fresh.dataset_id: {TABLE: [fresh]}, stored.dataset_id: {TABLE: [conflicting]}}
    )
    with pytest.raises(RecordExistsError, match=str(stored.dataset_id)):
        store.import_records(data)
    assert store.get(fresh.dataset_id) == []
    assert store.get(stored.dataset_id) == [stored]


def test_import_ignores_other_tables_and_checks_ids(store: RecordsStore) -> None:
    info = make_info()
    store.import_records(DatastoreRecordData({info.dataset_id: {"other_table": [info]}}))
    assert store.dataset_ids() == set()
    with pytest.raises(RecordDataError):
        store.import_records(DatastoreRecordData({uuid.uuid4(): {TABLE: [info]}}))
    with pytest.raises(RecordExistsError):
        store.import_records(DatastoreRecordData({info.dataset_id: {TABLE: [info, info.update(path="b")]}}))


def test_import_restores_trashed_dataset(store: RecordsStore) -> None:
    info = make_info()
    store.insert([info])
    store.move_to_trash([info.dataset_id])
    store.import_records(DatastoreRecordData({info.dataset_id: {TABLE: [info]}}))
    assert store.trashed_ids() == set()
    assert store.has(info.dataset_id)


# --- files -------------------------------------------------------------------


def test_flush_memory_store_to_sqlite_file(store: RecordsStore, tmp_path: Path) -> None:
    infos = [make_info() for _ in range(5)]
    store.insert(infos)
    store.move_to_trash([infos[0].dataset_id])
    target = store.flush_to_file(tmp_path / "sub" / "quantum.sqlite3")
    assert target == tmp_path / "sub" / "quantum.sqlite3"
    assert sorted(p.name for p in target.parent.iterdir()) == ["quantum.sqlite3"]
    tables = {r[0] for r in raw_rows(target, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {
        "file_datastore_records",
        "dataset_location",
        "dataset_location_trash",
        "opaque_meta",
        "s3qbb_meta",
    }
    rows = raw_rows(target, "SELECT dataset_id, path, component, file_size FROM file_datastore_records")
    assert {r[0] for r in rows} == {i.dataset_id.hex for i in infos}
    assert {r[2] for r in rows} == {"__NULL_STRING__"}
    assert raw_rows(target, "SELECT datastore_name, dataset_id FROM dataset_location_trash") == [
        ("ds", infos[0].dataset_id.hex)
    ]
    meta = dict(raw_rows(target, 'SELECT "key", value FROM s3qbb_meta'))
    assert meta == {"records_schema_version": "1", "datastore_name": "ds"}
    assert raw_rows(target, "SELECT table_name FROM opaque_meta") == [("file_datastore_records",)]
    assert raw_rows(target, "PRAGMA journal_mode") == [("delete",)]
    # Flushing again replaces the file; the store keeps working.
    store.insert([make_info()])
    store.flush_to_file(target)
    assert len(raw_rows(target, "SELECT * FROM file_datastore_records")) == 6
    # And the file opens as a store with the same content.
    with SqliteRecordsStore(target, datastore_name="ds") as reopened:
        assert reopened.export() == store.export()
        assert reopened.trashed_ids() == {infos[0].dataset_id}


def test_file_store_reopened_sees_data(tmp_path: Path) -> None:
    path = tmp_path / "records.sqlite3"
    info = make_info()
    with SqliteRecordsStore(path, datastore_name="ds") as s:
        s.insert([info])
        assert s.flush_to_file(path) == path
        assert not Path(f"{path}-journal").exists() and not Path(f"{path}-wal").exists()
    with SqliteRecordsStore(str(path), datastore_name="ds") as s:
        assert s.get(info.dataset_id) == [info]
        copy = s.flush_to_file(tmp_path / "copy.sqlite3")
    assert raw_rows(copy, "SELECT path FROM file_datastore_records") == [(info.path,)]


def test_file_of_another_datastore_or_version_refused(tmp_path: Path) -> None:
    path = tmp_path / "records.sqlite3"
    with SqliteRecordsStore(path, datastore_name="ds") as s:
        s.insert([make_info()])
    with pytest.raises(ConfigError, match="belongs to datastore 'ds'"):
        SqliteRecordsStore(path, datastore_name="other").dataset_ids()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE s3qbb_meta SET value = '99' WHERE key = 'records_schema_version'")
    conn.close()
    with pytest.raises(RecordsStoreError, match="schema version 99"):
        SqliteRecordsStore(path, datastore_name="ds").dataset_ids()


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "garbage.sqlite3"
    path.write_bytes(b"this is not a sqlite database, not at all" * 100)
    with pytest.raises(RecordsStoreError, match=r"garbage\.sqlite3"):
        SqliteRecordsStore(path, datastore_name="ds").has(uuid.uuid4())


@pytest.mark.parametrize("kind", sorted(STORES))
def test_closed_store_refuses_use(kind: str) -> None:
    s = new_store(kind)
    s.insert([make_info()])
    s.close()
    s.close()
    with pytest.raises(RecordsStoreError, match="closed"):
        s.dataset_ids()


# --- concurrency ----------------------------------------------------------------


def test_writes_begin_immediate_reads_deferred(sqlite_store: SqliteRecordsStore) -> None:
    store = sqlite_store
    info = make_info()
    store.insert([info])  # opens the connection
    conn = store._conn  # white box: watch the SQL the store runs
    assert conn is not None
    with store._lock:
        assert conn.execute("PRAGMA foreign_keys").fetchone() == (1,)
        assert conn.execute("PRAGMA busy_timeout").fetchone() == (60000,)
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    try:
        for infos in ([make_info()], [make_info(), make_info()]):
            seen.clear()
            store.insert(infos)
            assert seen[0] == "BEGIN IMMEDIATE" and seen[-1] == "COMMIT"
        seen.clear()
        store.get_many([info.dataset_id])  # several statements: one snapshot, no write lock
        assert seen[0] == "BEGIN"
        seen.clear()
        assert store.get(info.dataset_id) and store.has(info.dataset_id)  # one statement each
        assert all(stmt.startswith("SELECT") for stmt in seen)
        seen.clear()
        with pytest.raises(RecordExistsError):
            store.insert([info])
        assert seen[0] == "BEGIN IMMEDIATE" and seen[-1] == "ROLLBACK"
    finally:
        conn.set_trace_callback(None)


def test_job_path_does_not_import_sqlalchemy(tmp_path: Path) -> None:
    code = (
        "import sys, uuid\n"
        "from s3qbb.records.store import SqliteRecordsStore\n"
        "from s3qbb.core.records import StoredFileInfo\n"
        "s = SqliteRecordsStore(sys.argv[1], datastore_name='ds')\n"
        "i = StoredFileInfo(uuid.uuid4(), 'p', 'f', 'StructuredDataDict', None, 'c', 1)\n"
        "s.insert([i]); s.insert([i], replace=True); s.move_to_trash([i.dataset_id]); s.empty_trash()\n"
        "s.flush_to_file(sys.argv[1] + '.copy'); s.close()\n"
        "assert 'sqlalchemy' not in sys.modules, 'sqlalchemy imported'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "r.sqlite3")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def test_writer_waits_for_other_process_lock_then_fails(tmp_path: Path) -> None:
    path = tmp_path / "locked.sqlite3"
    info = make_info()
    with SqliteRecordsStore(path, datastore_name="ds", busy_timeout=0.05) as s:
        s.insert([info])
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # another writer holds the RESERVED lock
            assert s.get(info.dataset_id) == [info]  # readers are not blocked
            with pytest.raises(TransientStorageError, match="locked") as excinfo:
                s.insert([make_info()])
            assert isinstance(excinfo.value, ConnectionError)
            other.execute("ROLLBACK")
        finally:
            other.close()
        s.insert([make_info()])
        assert len(s.dataset_ids()) == 2


@pytest.mark.parametrize("where", ["file", *sorted(STORES)])
def test_threads_insert_concurrently(tmp_path: Path, where: str) -> None:
    per_thread = 50
    opened = (
        SqliteRecordsStore(tmp_path / "threads.sqlite3", datastore_name="ds")
        if where == "file"
        else new_store(where)
    )
    with opened as s:
        batches = [[make_info() for _ in range(per_thread)] for _ in range(8)]
        errors: list[BaseException] = []
        barrier = threading.Barrier(8)

        def work(batch: list[StoredFileInfo]) -> None:
            try:
                barrier.wait()
                for info in batch:
                    s.insert([info])
                    assert s.get(info.dataset_id) == [info]
            except BaseException as err:  # pragma: no cover - reported below
                errors.append(err)

        threads = [threading.Thread(target=work, args=(b,)) for b in batches]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        expected = {i.dataset_id for b in batches for i in b}
        assert s.dataset_ids() == expected
        assert len(s.get_many(expected)) == 8 * per_thread


def test_export_to_json_is_daf_butler_layout(store: RecordsStore) -> None:
    info = make_info()
    store.insert([info])
    doc = json.loads(store.export().to_simple().model_dump_json())
    assert doc["dataset_ids"] == [str(info.dataset_id)]
    (by_dataset,) = doc["records"].values()
    assert by_dataset[info.dataset_id.hex][TABLE][0]["path"] == info.path


# --- single-dataset insert (the put path) -------------------------------------------


def test_insert_one_refused_for_trashed_dataset_of_other_components(store: RecordsStore) -> None:
    parts = [make_info(uuid.uuid4(), "image"), make_info(component="mask")]
    parts[1] = make_info(parts[0].dataset_id, "mask")
    store.insert(parts)
    store.move_to_trash([parts[0].dataset_id])
    for component in (None, "image", "variance"):  # trashed rows count, whichever component
        with pytest.raises(RecordExistsError, match=str(parts[0].dataset_id)):
            store.insert([make_info(parts[0].dataset_id, component)])
    assert store.trashed_ids() == {parts[0].dataset_id}
    assert store.empty_trash() == {parts[0].dataset_id: parts}


def test_insert_refused_when_one_component_conflicts(store: RecordsStore) -> None:
    stored = make_info(uuid.uuid4(), "image")
    store.insert([stored])
    with pytest.raises(RecordExistsError, match=str(stored.dataset_id)):
        store.insert([make_info(stored.dataset_id, "mask")])  # one record, another component
    with pytest.raises(RecordExistsError, match=str(stored.dataset_id)):
        store.insert([make_info(stored.dataset_id, "mask"), make_info(stored.dataset_id, "image")])
    assert store.get(stored.dataset_id) == [stored]
    fresh = make_info()
    store.insert([fresh])  # the store is usable after the refusals: no transaction left open
    assert store.get(fresh.dataset_id) == [fresh]


def test_reads_leave_no_statement_open_on_a_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    info = make_info()
    with SqliteRecordsStore(path, datastore_name="ds", busy_timeout=0.05) as s:
        s.insert([info])
        assert s.get(info.dataset_id) == [info] and s.has(info.dataset_id)
        other = sqlite3.connect(path, isolation_level=None, timeout=0.05)
        try:  # an unfinished SELECT would hold a shared lock, and this exclusive lock would fail
            other.execute("BEGIN EXCLUSIVE")
            other.execute("ROLLBACK")
        finally:
            other.close()


def test_memory_store_uses_small_pages(sqlite_store: SqliteRecordsStore, tmp_path: Path) -> None:
    store = sqlite_store
    info = make_info()
    store.insert([info])
    with store._lock:  # white box: the page size a put's journal copies
        assert store._conn is not None
        assert store._conn.execute("PRAGMA page_size").fetchone() == (1024,)
    flushed = store.flush_to_file(tmp_path / "flushed.sqlite3")
    assert raw_rows(flushed, "PRAGMA page_size") == [(1024,)]
    with SqliteRecordsStore(flushed, datastore_name="ds") as again:
        assert again.get(info.dataset_id) == [info]
        again.insert([make_info()])  # a file store keeps the page size of its file


# --- one contract: the dictionary store behaves as the SQLite store ----------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"component": ""},
        {"component": "c" * 33},
        {"component": "__NULL_STRING__"},
        {"path": None},
        {"formatter": None},
        {"storage_class": None},
    ],
)
def test_records_the_table_cannot_hold_are_refused(store: RecordsStore, bad: dict[str, Any]) -> None:
    good = make_info()
    wrong = make_info(**bad)
    for write in (
        lambda: store.insert([good, wrong]),
        lambda: store.insert([wrong], replace=True),
        lambda: store.insert_new([good, wrong]),
        lambda: store.import_records(
            DatastoreRecordData({good.dataset_id: {TABLE: [good]}, wrong.dataset_id: {TABLE: [wrong]}})
        ),
    ):
        with pytest.raises(RecordDataError, match=str(wrong.dataset_id)):
            write()
        assert store.dataset_ids() == set()  # all or nothing
    store.insert([make_info(component="c" * 32)])  # the longest component the table holds


_IDS = [uuid.UUID(int=i) for i in range(1, 7)]
_COMPONENTS = [None, "image", "mask"]


def _op() -> Any:
    from hypothesis import strategies as st

    record = st.builds(
        lambda i, c, p: make_info(_IDS[i], c, path=f"p/{p}.json"),
        st.integers(0, len(_IDS) - 1),
        st.sampled_from(_COMPONENTS),
        st.integers(0, 2),
    )
    ids = st.lists(st.sampled_from(_IDS), max_size=4)
    return st.one_of(
        st.tuples(st.just("insert"), st.lists(record, max_size=4), st.booleans()),
        st.tuples(st.just("insert_new"), st.lists(record, max_size=4)),
        st.tuples(st.just("import_records"), st.lists(record, max_size=4)),
        st.tuples(st.just("delete"), ids),
        st.tuples(st.just("move_to_trash"), ids),
        st.tuples(st.just("empty_trash"), st.one_of(st.none(), ids), st.booleans()),
    )


def _apply(store: RecordsStore, op: tuple[Any, ...]) -> Any:
    """Run one operation; return its result, or the type of the error it raised."""
    name, *args = op
    try:
        if name == "insert":
            return store.insert(args[0], replace=args[1])
        if name == "import_records":
            by_id: dict[uuid.UUID, dict[str, list[StoredFileInfo]]] = {}
            for info in args[0]:
                by_id.setdefault(info.dataset_id, {TABLE: []})[TABLE].append(info)
            return store.import_records(DatastoreRecordData(by_id))
        if name == "empty_trash":
            removed = store.empty_trash(args[0], dry_run=args[1])
            return {i: sorted(infos, key=lambda r: r.component or "") for i, infos in removed.items()}
        return getattr(store, name)(*args)
    except (RecordExistsError, RecordDataError) as err:
        return type(err)


def test_memory_store_matches_sqlite_store_on_any_sequence(tmp_path: Path) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(_op(), max_size=25))
    def check(ops: list[tuple[Any, ...]]) -> None:
        with new_store("sqlite") as reference, new_store("memory") as memory:
            for op in ops:
                assert _apply(memory, op) == _apply(reference, op), op
                for look in (lambda s: s.get_many(_IDS), lambda s: [s.get(i) for i in _IDS]):
                    assert look(memory) == look(reference)
                assert [memory.has(i) for i in _IDS] == [reference.has(i) for i in _IDS]
                assert memory.dataset_ids() == reference.dataset_ids()
                assert memory.trashed_ids() == reference.trashed_ids()
                assert memory.export() == reference.export()
            files = [s.flush_to_file(tmp_path / f"{k}.sqlite3") for k, s in (("r", reference), ("m", memory))]
            for table in (TABLE, "dataset_location", "dataset_location_trash", "s3qbb_meta", "opaque_meta"):
                first, second = (sorted(raw_rows(f, f"SELECT * FROM {table}")) for f in files)
                assert first == second, table

    check()


def test_memory_store_flushes_the_file_of_its_records(tmp_path: Path) -> None:
    with MemoryRecordsStore(datastore_name="ds", table="my_records") as s:
        parts = [make_info(uuid.uuid4(), "image")]
        parts.append(make_info(parts[0].dataset_id, "mask"))
        s.insert(parts)
        s.insert([trashed := make_info()])
        s.move_to_trash([trashed.dataset_id])
        target = s.flush_to_file(tmp_path / "q.sqlite3")
        assert raw_rows(target, "PRAGMA page_size") == [(1024,)]
        assert raw_rows(target, "PRAGMA journal_mode") == [("delete",)]
        with SqliteRecordsStore(target, datastore_name="ds", table="my_records") as reopened:
            assert reopened.export() == s.export()
            assert reopened.trashed_ids() == {trashed.dataset_id}
            assert reopened.empty_trash() == {trashed.dataset_id: [trashed]}
        assert s.in_memory and "my_records" in repr(s)
