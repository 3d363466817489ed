"""``s3qbb inspect``: show a records file, a provenance file or an execution report (local or ``s3://``)."""

from __future__ import annotations

__all__ = ["describe_file", "inspect"]

import json
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Any

import click

from ..errors import S3qbbError
from .options import S3qbbCommand, global_options, json_option


def _load_bytes(location: str) -> bytes:
    if location.startswith("s3://"):
        from ..s3.config_files import read_s3_bytes

        return read_s3_bytes(location)
    try:
        return Path(location).read_bytes()
    except OSError as err:
        raise S3qbbError(f"Cannot read {location}: {err}") from err


def _describe_sqlite(data: bytes, location: str) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".sqlite3") as tmp:
        tmp.write(data)
        tmp.flush()
        try:
            conn = sqlite3.connect(f"file:{tmp.name}?mode=ro", uri=True)
            try:
                tables = [
                    r[0]
                    for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")
                ]
                rows: list[dict[str, Any]] = []
                if "file_datastore_records" in tables:
                    cur = conn.execute(
                        "SELECT dataset_id, path, formatter, storage_class, component, checksum, file_size "
                        "FROM file_datastore_records ORDER BY path"
                    )
                    names = [d[0] for d in cur.description]
                    rows = [dict(zip(names, r, strict=True)) for r in cur]
                    for row in rows:
                        if isinstance(row["dataset_id"], bytes):
                            row["dataset_id"] = row["dataset_id"].hex()
            finally:
                conn.close()
        except sqlite3.DatabaseError as err:
            raise S3qbbError(f"{location} is not a readable SQLite records file: {err}") from err
    return {"kind": "records", "source": location, "tables": tables, "records": rows}


def describe_file(location: str) -> dict[str, Any]:
    """Return a JSON-able description of a per-quantum file.

    Parameters
    ----------
    location : `str`
        Local path or ``s3://`` URI of a ``.sqlite3`` records file, a
        ``.provenance.json`` file or a ``.quantum.json`` report.

    Raises
    ------
    S3qbbError
        If the file cannot be read or is not one of those kinds.
    """
    from ..provenance.model import QuantumExecutionReport, QuantumProvenanceData

    data = _load_bytes(location)
    if data.startswith(b"SQLite format 3\x00"):
        return _describe_sqlite(data, location)
    try:
        parsed = json.loads(data)
    except ValueError as err:
        raise S3qbbError(f"{location} is neither a SQLite records file nor JSON: {err}") from err
    if isinstance(parsed, dict) and parsed.get("format") == "s3qbb.quantum":
        report = QuantumExecutionReport.from_json(data, source=location)
        return {"kind": "report", "source": location, **json.loads(report.model_dump_json())}
    provenance = QuantumProvenanceData.from_json(data, source=location)
    simple = json.loads(provenance.to_json())
    counts = {k: len(v) for k, v in simple.items() if isinstance(v, list)}
    return {"kind": "provenance", "source": location, "counts": counts, **simple}


def _print_human(desc: dict[str, Any]) -> None:
    print(f"{desc['source']}: {desc['kind']}")
    if desc["kind"] == "records":
        print(f"  tables: {', '.join(desc['tables'])}")
        print(f"  {len(desc['records'])} record(s)")
        for row in desc["records"]:
            print(f"  {row['dataset_id']}  {row['file_size']:>10}  {row['storage_class']:<20} {row['path']}")
    elif desc["kind"] == "provenance":
        for name, count in desc["counts"].items():
            print(f"  {name:<18} {count}")
        for name, records in desc.get("datastore_records", {}).items():
            print(f"  datastore {name}: records of {len(records.get('dataset_ids', []))} dataset(s)")
    else:
        for key in (
            "quantum_id",
            "task_label",
            "run",
            "status",
            "started_at",
            "duration_s",
            "host",
            "retries",
        ):
            print(f"  {key:<12} {desc.get(key)}")
        print(f"  requests     {desc.get('requests')}")
        if desc.get("error"):
            print(f"  error        {desc['error']['type']}: {desc['error']['message']}")


@click.command(
    "inspect",
    cls=S3qbbCommand,
    help="Show a records file (.sqlite3), provenance (.provenance.json) or report (.quantum.json).\n\n"
    "LOCATION is a local path or an s3:// URI.",
    short_help="show a records file (.sqlite3), provenance (.provenance.json) or report (.quantum.json)",
)
@click.argument("location")
@json_option()
@global_options
def inspect(location: str, as_json: bool) -> int:
    """Print what a per-quantum file holds; exit 2 if it cannot be read."""
    try:
        desc = describe_file(location)
    except (S3qbbError, ValueError) as err:
        print(f"s3qbb inspect: {err}", file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps(desc, indent=1, default=str))
    else:
        _print_human(desc)
    return 0
