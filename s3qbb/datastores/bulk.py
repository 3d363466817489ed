"""Bulk operations of `~s3qbb.datastores.s3.S3Datastore`: many puts or gets on its thread pool.

One records query before the requests and (for puts) one records
transaction after them; the pool's threads only send requests. Every item is
attempted, each succeeds or fails whole, and the first error is raised after
the others are done (`~s3qbb.datastores.base.raise_first`).
"""

from __future__ import annotations

__all__ = ["empty_trash", "put_many", "read_many", "run_all"]

import logging
import threading
from typing import TYPE_CHECKING, Any, TypeVar

from ..core.dataset_ref import ensure_resolved
from ..errors import DatasetExistsError, DatasetNotFoundError, DatasetTypeError, S3qbbError
from .base import raise_first
from .writes import stored_already, written_concurrently

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
    from concurrent.futures import Executor

    from ..core.dataset_ref import DatasetRef
    from ..core.ids import DatasetId
    from ..core.records import StoredFileInfo
    from ..core.storage_class import StorageClass
    from ..core.uri import ResourceURI
    from .base import ReadPlan
    from .encoding import Encoded
    from .s3 import S3Datastore

_LOG = logging.getLogger(__name__)
_T = TypeVar("_T")
_J = TypeVar("_J")


def put_many(store: S3Datastore, items: Iterable[tuple[Any, DatasetRef]]) -> dict[DatasetRef, Encoded]:
    """Write ``items`` to ``store`` (see `S3Datastore.put_many_encoded <s3qbb.datastores.s3.S3Datastore>`)."""
    items = list(items)
    errors: list[BaseException | None] = [None] * len(items)
    checked: list[tuple[int, Any, DatasetRef, StorageClass]] = []
    for i, (obj, ref) in enumerate(items):
        try:
            checked.append((i, obj, ref, store._check_put(obj, ref)))
        except Exception as err:
            errors[i] = err
    known = store.records.get_many(ref.id for _, _, ref, _ in checked)
    todo: list[tuple[int, Any, DatasetRef, StorageClass]] = []
    taken: set[DatasetId] = set()
    for job in checked:
        ref = job[2]
        if ref.id in known:
            errors[job[0]] = stored_already(store, ref)
        elif ref.id in taken:
            errors[job[0]] = DatasetExistsError(
                f"Dataset {ref} is given twice to put_many of {store.name!r}; it was written once."
            )
        else:
            taken.add(ref.id)
            todo.append(job)
    busy = store.in_flight.claim(taken)
    if busy:
        for job in todo:
            if job[2].id in busy:
                errors[job[0]] = written_concurrently(store, job[2])
        todo = [job for job in todo if job[2].id not in busy]
    claimed = taken - busy
    try:
        return _write_and_record(store, todo, errors)
    finally:
        store.in_flight.release(claimed)


def _write_and_record(
    store: S3Datastore,
    todo: list[tuple[int, Any, DatasetRef, StorageClass]],
    errors: list[BaseException | None],
) -> dict[DatasetRef, Encoded]:
    """Write the claimed datasets of `put_many` concurrently, record those written; raise the first error."""
    written = run_all(
        store.pool, store.max_workers, lambda job: store._write_object(job[1], job[2], job[3]), todo
    )
    done: dict[DatasetRef, tuple[StoredFileInfo, Encoded]] = {}
    for (i, _, ref, _), (result, error) in zip(todo, written, strict=True):
        if error is not None:
            errors[i] = error
        else:
            assert result is not None
            done[ref] = result
    if done:
        try:
            existing = store.records.insert_new(info for info, _ in done.values())
        except Exception as err:
            err.add_note(f"put_many: {len(done)} objects were written but none was recorded.")
            raise
        for i, _, ref, _ in todo:
            if ref.id in existing:
                errors[i] = DatasetExistsError(f"Dataset {ref} was recorded concurrently in {store.name!r}.")
                del done[ref]
    raise_first([e for e in errors if e is not None], "put_many")
    return {ref: encoded for ref, (_, encoded) in done.items()}


def read_many(
    store: S3Datastore, refs: list[DatasetRef], parameters: Mapping[str, Any] | None, *, whole: bool
) -> dict[DatasetRef, tuple[Any, Encoded | None]]:
    """Read ``refs`` (each once) from ``store`` on its pool with one records query; raise the first error.

    With ``whole``, component refs are refused and each result carries the bytes read.
    """
    unique = list(dict.fromkeys(refs))
    errors: list[BaseException | None] = [None] * len(unique)
    plans: list[tuple[int, ReadPlan]] = []
    for i, ref in enumerate(unique):
        try:
            if whole and ref.isComponent():
                raise DatasetTypeError(f"get_encoded reads whole datasets, not component {ref}.")
            plans.append((i, store._plan_read(ref, parameters, None)))
        except Exception as err:
            errors[i] = err
    records = store.records.get_many(plan.parent.id for _, plan in plans)
    todo: list[tuple[int, ReadPlan, StoredFileInfo, bool]] = []  # ..., whether the record is predicted
    for i, plan in plans:
        infos = records.get(plan.parent.id)
        try:
            todo.append((i, plan, store._found_or_raise(plan.parent, infos[0] if infos else None), not infos))
        except DatasetNotFoundError as err:
            errors[i] = err
    read = run_all(
        store.pool, store.max_workers, lambda job: store._read_recorded(job[1].ref, *job[1:]), todo
    )
    out: dict[DatasetRef, tuple[Any, Encoded | None]] = {}
    for (i, plan, _, _), (result, error) in zip(todo, read, strict=True):
        if error is not None:
            errors[i] = error
        else:
            assert result is not None
            out[plan.ref] = result
    raise_first([e for e in errors if e is not None], "get_many")
    return {ref: out[ref] for ref in unique}


def run_all(
    pool: Executor, workers: int, work: Callable[[_J], _T], jobs: Sequence[_J]
) -> list[tuple[_T | None, BaseException | None]]:
    """Run ``work`` on every job on ``pool``; return ``(result, error)`` of each, in order.

    Each of at most ``workers`` pool tasks takes the next job until none is
    left: no future, queue item or wake-up per job.
    """
    out: list[tuple[_T | None, BaseException | None]] = [(None, None)] * len(jobs)
    if not jobs:
        return out
    lock = threading.Lock()
    index = iter(range(len(jobs)))

    def drain() -> None:
        while True:
            with lock:
                i = next(index, -1)
            if i < 0:
                return
            try:
                out[i] = (work(jobs[i]), None)
            except Exception as err:
                out[i] = (None, err)

    futures = [pool.submit(drain) for _ in range(min(workers, len(jobs)))]
    for future in futures:
        future.result()
    return out


def empty_trash(
    store: S3Datastore, *, ignore_errors: bool, refs: Collection[DatasetRef] | None, dry_run: bool
) -> set[ResourceURI]:
    """Delete the objects of trashed datasets (`S3Datastore.emptyTrash <s3qbb.datastores.s3.S3Datastore>`).

    One records transaction, then one DeleteObjects request per 1,000 objects
    (none with ``dry_run``); return the URIs of the objects deleted.
    """
    ids = None if refs is None else [ensure_resolved(r, "emptyTrash").id for r in refs]
    removed = store.records.empty_trash(ids, dry_run=dry_run)
    paths = {store.key(info.path): info.path for infos in removed.values() for info in infos}
    failures = store.bucket.delete_many(paths) if paths and not dry_run else {}
    if failures:
        message = f"Could not delete {len(failures)} trashed object(s) of {store.name!r}: {dict(failures)}"
        if not ignore_errors:
            raise S3qbbError(message)
        _LOG.warning(message)
    return {store.resource_uri(path) for key, path in paths.items() if key not in failures}
