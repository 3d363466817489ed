"""Client CPU of recording and looking up a dataset: the dictionary store against an in-memory SQLite one.

``python -m benchmarks.records_store`` does, in interleaved rounds on both
stores (`s3qbb.records.memory.MemoryRecordsStore`, what a quantum's butler
uses, and `s3qbb.records.store.SqliteRecordsStore` on ``":memory:"``, what it
used before), what a put does to its records (``has``, then ``insert`` of one
record) and what a get does (``get``), and prints the median CPU per
operation. No server is needed: the records are all a put and a get do
locally besides serialising and the request.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Sequence

from s3qbb.core.records import StoredFileInfo
from s3qbb.records.contract import RecordsStore
from s3qbb.records.memory import MemoryRecordsStore
from s3qbb.records.store import SqliteRecordsStore

__all__ = ["main", "measure"]

STORES = {"dictionaries": MemoryRecordsStore, "sqlite-memory": SqliteRecordsStore}


def _record(dataset_id: uuid.UUID) -> StoredFileInfo:
    return StoredFileInfo(
        dataset_id,
        f"run/metrics/1/metrics_{dataset_id}.json",
        "s3qbb.formatters.json.JsonFormatter",
        "StructuredDataDict",
        None,
        "CRC32C:AAAAAA==",
        1024,
    )


def _round(store: RecordsStore, count: int) -> tuple[float, float]:
    """CPU seconds per put's records work and per get's, over ``count`` new datasets."""
    infos = [_record(uuid.uuid4()) for _ in range(count)]
    started = time.process_time()
    for info in infos:
        if store.has(info.dataset_id):
            raise AssertionError("a new dataset is recorded already")
        store.insert([info])
    put = (time.process_time() - started) / count
    started = time.process_time()
    for info in infos:
        store.get(info.dataset_id)
    return put, (time.process_time() - started) / count


def measure(rounds: int = 7, count: int = 5000) -> dict[str, dict[str, float]]:
    """Median CPU seconds per put's and per get's records work, by store."""
    samples: dict[str, dict[str, list[float]]] = {name: {"put": [], "get": []} for name in STORES}
    stores: dict[str, RecordsStore] = {name: cls(datastore_name="bench") for name, cls in STORES.items()}
    try:
        for round_ in range(rounds):
            names = list(STORES)[round_ % 2 :] + list(STORES)[: round_ % 2]
            for name in names:
                put, get = _round(stores[name], count)
                samples[name]["put"].append(put)
                samples[name]["get"].append(get)
    finally:
        for store in stores.values():
            store.close()
    return {name: {op: statistics.median(v) for op, v in ops.items()} for name, ops in samples.items()}


def main(argv: Sequence[str] | None = None) -> int:
    """Print the CPU per put's and per get's records work of each store."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.records_store", description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--count", type=int, default=5000, help="datasets per round")
    args = parser.parse_args(argv)
    for name, ops in measure(args.rounds, args.count).items():
        put, get = ops["put"] * 1e6, ops["get"] * 1e6
        print(f"{name:14s} put (has + insert): {put:6.1f} us CPU   get: {get:6.1f} us CPU")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
