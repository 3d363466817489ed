"""What every records store checks of a record, and how it refuses a dataset already recorded.

Both stores (`s3qbb.records.store.SqliteRecordsStore`,
`s3qbb.records.memory.MemoryRecordsStore`) check a record before it is
stored, with the rules of the records table's columns (``NOT NULL`` text,
a component of 1 to 32 characters), so a bad record is refused the same way
by both, before any row is written.
"""

from __future__ import annotations

__all__ = ["MAX_COMPONENT_LENGTH", "check_info", "exists_error"]

import uuid
from collections.abc import Sequence

from ..core.records import NULL_COMPONENT, StoredFileInfo
from ..errors import RecordDataError, RecordExistsError

MAX_COMPONENT_LENGTH = 32
"""Longest component name the records table holds (daf_butler's ``VARCHAR(32)``)."""


def check_info(info: StoredFileInfo) -> str:
    """Check a record against the records table's rules; return its ``component`` column value.

    Parameters
    ----------
    info : `StoredFileInfo`
        The record.

    Returns
    -------
    component : `str`
        Its component, `NULL_COMPONENT` for `None`.

    Raises
    ------
    RecordDataError
        Raised if the record cannot be stored: a text column that is not
        text, or a component that is empty, longer than
        `MAX_COMPONENT_LENGTH` or the reserved `NULL_COMPONENT`.
    """
    component = info.component
    if component is None:
        component = NULL_COMPONENT
    elif not (
        isinstance(component, str)
        and 0 < len(component) <= MAX_COMPONENT_LENGTH
        and component != NULL_COMPONENT
    ):
        raise RecordDataError(
            f"Record of dataset {info.dataset_id} has component {component!r}: a component must be text "
            f"of 1 to {MAX_COMPONENT_LENGTH} characters other than {NULL_COMPONENT!r}; nothing was stored."
        )
    if not (
        isinstance(info.path, str) and isinstance(info.formatter, str) and isinstance(info.storage_class, str)
    ):
        raise RecordDataError(
            f"Record of dataset {info.dataset_id} has a path, formatter or storage class that is not text "
            f"({info.path!r}, {info.formatter!r}, {info.storage_class!r}); nothing was stored."
        )
    return component


def exists_error(datastore_name: str, existing: Sequence[str], several: bool) -> RecordExistsError:
    """Return the error refusing to record datasets that have records.

    Parameters
    ----------
    datastore_name : `str`
        The datastore.
    existing : `~collections.abc.Sequence` [`str`]
        Hex IDs of the datasets that have records.
    several : `bool`
        Whether the refused insert was of several datasets (the error then
        says how to replace them).

    Returns
    -------
    error : `RecordExistsError`
        The error, naming up to five datasets.
    """
    shown = ", ".join(str(uuid.UUID(i)) for i in existing[:5])
    more = f" and {len(existing) - 5} more" if len(existing) > 5 else ""
    hint = " Pass replace=True to overwrite them." if several else ""
    return RecordExistsError(
        f"Datastore {datastore_name!r} already has records for dataset(s) "
        f"{shown}{more}; nothing was inserted.{hint}"
    )
