"""Tests of check_records_file: the records .sqlite3 read from memory and from a temporary file alike."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from registry_data import SyntheticQuantum, SyntheticRuns, make_ref

from s3qbb.registry import records_check
from s3qbb.registry.records_check import RecordsFileError, check_records_file

RUN = "check/run"


@pytest.fixture(params=["memory", "file"])
def path_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Every test runs on both ways of opening the file: deserialized in memory, or a temporary file."""
    if request.param == "file":
        monkeypatch.setattr(records_check, "_IN_MEMORY_MAX_BYTES", 0)
    yield str(request.param)


def _quantum() -> SyntheticQuantum:
    outputs = [make_ref("calexp", RUN, detector=d, visit=1) for d in range(3)]
    return SyntheticRuns(None, "bucket").quantum(RUN, "calibrate", [], outputs, write=False)


def _edited(data: bytes, tmp_path: Path, sql: str) -> bytes:
    path = tmp_path / "edited.sqlite3"
    path.write_bytes(data)
    with sqlite3.connect(path) as conn:
        conn.execute(sql)
    conn.close()
    return path.read_bytes()


def test_agreeing_file_passes(path_kind: str) -> None:
    q = _quantum()
    check_records_file(q.records, q.provenance)


def test_path_chosen_by_size(path_kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    q = _quantum()
    opened: list[bool] = []
    real = sqlite3.connect

    def spy(database: str, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        opened.append(database == ":memory:")
        conn: sqlite3.Connection = real(database, *args, **kwargs)
        return conn

    monkeypatch.setattr(sqlite3, "connect", spy)
    check_records_file(q.records, q.provenance)
    assert opened == [path_kind == "memory"]


def test_nothing_can_write_the_copy(path_kind: str) -> None:
    q = _quantum()
    with (
        records_check._read_only(q.records) as conn,
        pytest.raises(sqlite3.OperationalError, match="readonly"),
    ):
        conn.execute("DELETE FROM file_datastore_records")


def test_wal_flag_in_header_is_read_like_the_file_alone(path_kind: str, tmp_path: Path) -> None:
    # A records file saved in WAL mode (header versions 2 and 2) with no WAL file beside it.
    q = _quantum()
    path = tmp_path / "wal.sqlite3"
    path.write_bytes(q.records)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode=WAL").fetchone() == ("wal",)
    conn.close()
    data = path.read_bytes()
    assert data[18:20] == b"\x02\x02"
    check_records_file(data, q.provenance)
    # ... and it still reads the records, so a disagreement is still found.
    conn = sqlite3.connect(path)
    conn.execute("UPDATE file_datastore_records SET file_size = 7")
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    with pytest.raises(RecordsFileError, match=r"disagrees with the provenance.*size 7"):
        check_records_file(path.read_bytes(), q.provenance)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            b"not a database at all" * 50,
            "not a readable SQLite records database \\(file is not a database\\)",
        ),
        (b"", "not a readable SQLite records database \\(no such table: s3qbb_meta\\)"),
    ],
)
def test_unreadable_files(path_kind: str, data: bytes, message: str) -> None:
    with pytest.raises(RecordsFileError, match=message):
        check_records_file(data, _quantum().provenance)


def test_damaged_pages(path_kind: str) -> None:
    q = _quantum()
    damaged = bytearray(q.records)
    damaged[len(damaged) // 2 :] = b"\xa5" * (len(damaged) - len(damaged) // 2)
    with pytest.raises(RecordsFileError, match=r"quick_check reports damage|not a readable SQLite"):
        check_records_file(bytes(damaged), q.provenance)


def test_disagreements_are_named(path_kind: str, tmp_path: Path) -> None:
    q = _quantum()
    first = sorted(r.id for r in q.written)[0]
    edited = _edited(q.records, tmp_path, "UPDATE file_datastore_records SET checksum = 'CRC32C:BBBBBB=='")
    with pytest.raises(RecordsFileError) as caught:
        check_records_file(edited, q.provenance)
    assert str(caught.value).startswith(
        f"it disagrees with the provenance file for datastore 'S3Datastore': {first} has path "
    )
    assert "checksum 'CRC32C:BBBBBB==', size 10" in str(caught.value)
    assert "checksum 'CRC32C:AAAAAA==', size 10" in str(caught.value)
    missing = _edited(
        q.records, tmp_path, f"DELETE FROM file_datastore_records WHERE dataset_id = '{first.hex}'"
    )
    with pytest.raises(RecordsFileError, match=f"{first} is in the provenance but not in the records file"):
        check_records_file(missing, q.provenance)


def test_schema_problems(path_kind: str, tmp_path: Path) -> None:
    q = _quantum()
    no_name = _edited(q.records, tmp_path, "DELETE FROM s3qbb_meta WHERE key = 'datastore_name'")
    with pytest.raises(RecordsFileError, match="its s3qbb_meta table names no datastore"):
        check_records_file(no_name, q.provenance)
    two = _edited(q.records, tmp_path, "INSERT INTO opaque_meta VALUES ('other_records')")
    with pytest.raises(RecordsFileError, match="opaque_meta names 2 records tables, not one"):
        check_records_file(two, q.provenance)
