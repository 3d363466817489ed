"""Child processes of ``test_reliability_replaced_races``: readers of a dataset, the rerun replacing it.

They live in a module of their own so that ``multiprocessing`` children can import them by name.
"""

from __future__ import annotations

__all__ = ["ROWS_READ", "array_of", "reader_worker", "rerun_worker"]

import re
import uuid
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Barrier, Event

    from s3qbb.config import S3EndpointConfig
    from s3qbb.core.dataset_ref import DatasetRef
    from s3qbb.core.records import DatastoreRecordData

ROWS_READ = {"whole": None, "head": (0, 100), "tail": (-100, None)}
"""The reads each reader cycles through: the whole array, and a partial read of its first and last rows."""

_ATTEMPT = re.compile(r"written by attempt ([0-9a-f]{28}) of quantum")


def array_of(seed: int, rows: int) -> np.ndarray[Any, Any]:
    """Return the array a writer of ``seed`` puts (writers of one seed put identical bytes)."""
    return np.arange(rows * 8, dtype="float64").reshape(rows, 8) + seed


def _rows(array_rows: int, read: str) -> tuple[int, int] | None:
    """The ``(start, stop)`` rows ``read`` selects of an array of ``array_rows`` rows (`None`: all)."""
    rows = ROWS_READ[read]
    if rows is None:
        return None
    start, stop = rows
    return (max(array_rows + start, 0) if start < 0 else start), array_rows if stop is None else stop


def _store(config: S3EndpointConfig, root: str) -> Any:
    from s3qbb.datastores.s3 import S3Datastore
    from s3qbb.testing.data import example_storage_classes

    store = S3Datastore(root, config=config, storageClassFactory=example_storage_classes())
    store.bucket.head(f"{root.split('/', 3)[-1]}/warm-up")  # connected before the race starts
    return store


def reader_worker(
    config: S3EndpointConfig,
    root: str,
    ref: DatasetRef,
    records: dict[str, DatastoreRecordData],
    earlier: tuple[int, int],
    index: int,
    barrier: Barrier,
    done: Event,
    results: Queue[tuple[str, int, bool, str, str]],
) -> None:
    """Read ``ref`` (whole, its first rows, its last) with the earlier attempt's record until ``done``.

    After ``done`` is set (the rerun has finished), one more read of each kind.
    Reports ``("read", reader, final, read, outcome)`` per read: outcome is
    ``earlier`` (the earlier attempt's values, exactly), ``replaced <attempt>``
    (`DatasetReplacedError` naming that attempt), ``other values`` or ``error ...``.
    """
    from s3qbb.errors import DatasetReplacedError

    seed, rows = earlier
    array = array_of(seed, rows)
    store = _store(config, root)
    store.import_records(records)
    kinds = list(ROWS_READ)
    try:
        barrier.wait(timeout=120)
        count, final = index, False  # readers start at different kinds of read
        while True:
            if not final and done.is_set():
                final, left = True, len(kinds)
            read = kinds[count % len(kinds)]
            count += 1
            selected = _rows(rows, read)
            try:
                value = store.get(ref, parameters=None if selected is None else {"rows": selected})
            except DatasetReplacedError as err:
                found = _ATTEMPT.search(str(err))
                outcome = f"replaced {found.group(1) if found else '?'}"
            except Exception as err:
                outcome = f"error {type(err).__name__}: {err}"
            else:
                expected = array if selected is None else array[selected[0] : selected[1]]
                same = isinstance(value, np.ndarray) and np.array_equal(value, expected)
                outcome = "earlier" if same else "other values"
            results.put(("read", index, final, read, outcome))
            if final:
                left -= 1
                if left == 0:
                    break
    finally:
        store.close()


def rerun_worker(
    config: S3EndpointConfig,
    root: str,
    ref: DatasetRef,
    quantum_id: uuid.UUID,
    written: tuple[int, int],
    barrier: Barrier,
    results: Queue[tuple[str, str, dict[str, DatastoreRecordData]]],
) -> None:
    """Put ``ref`` as a later attempt of ``quantum_id`` (a ``--rerun``), replacing the earlier object.

    Reports ``(attempt id, outcome, records)``: outcome is ``ok`` or ``error ...``,
    records are those of the rerun's write (empty if it failed).
    """
    from s3qbb.core.attempt import WriteToken

    store = _store(config, root)
    store.write_token = WriteToken.new(quantum_id)
    outcome, records = "ok", {}
    try:
        barrier.wait(timeout=120)
        try:
            store.put(array_of(*written), ref)
        except Exception as err:
            outcome = f"error {type(err).__name__}: {err}"
        else:
            records = store.export_records([ref])
    finally:
        store.close()
    results.put((store.write_token.attempt_id, outcome, records))
