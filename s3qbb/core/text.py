"""Checks that a name or data ID value can be stored everywhere s3qbb writes it.

A data ID value or run name travels from `DatasetRef` creation to object keys,
the SQLite records of the quantum, the provenance and report JSON files
uploaded when the quantum ends, and the central registry (SQLite or
PostgreSQL). Text that one of them cannot hold must be refused when the ref is
made, not when the quantum exits: by then the outputs exist and their records
could not be written.
"""

from __future__ import annotations

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "MAX_DATA_ID_CHARS",
    "MAX_TASK_LABEL_CHARS",
    "MAX_TASK_NAME_CHARS",
    "MAX_VALUE_CHARS",
    "RECORDS_DIR",
    "storable_text_problem",
]

import re

RECORDS_DIR = "_records"
"""Reserved path segment: the folder below each run that holds its per-quantum files.

No run name may have it as a part, and no data ID value renders to it in a key.
"""

INT64_MIN = -(2**63)
"""Smallest integer data ID value (a signed 64-bit ``BIGINT`` column in the registry)."""

INT64_MAX = 2**63 - 1
"""Largest integer data ID value."""

MAX_VALUE_CHARS = 256
"""Longest str data ID value (the registry's ``dataset_data_id.value`` column)."""

MAX_DATA_ID_CHARS = 2048
"""Longest data ID as compact JSON (the registry's ``dataset.data_id`` column)."""

MAX_TASK_LABEL_CHARS = 256
"""Longest task label (the registry's ``quantum.task_label`` column)."""

MAX_TASK_NAME_CHARS = 512
"""Longest task name (the registry's ``quantum.task_name`` column)."""

_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def storable_text_problem(text: str) -> str | None:
    """Say why ``text`` cannot be stored as a name or data ID value, if it cannot.

    Parameters
    ----------
    text : `str`
        The candidate text.

    Returns
    -------
    problem : `str` or `None`
        `None` if the text round-trips through UTF-8 (so through JSON files,
        SQLite and PostgreSQL) and holds no control character; otherwise a
        short description of the first problem, such as ``"a lone surrogate
        U+DAE3 at index 1"``.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        char = text[err.start]
        return (
            f"a lone surrogate U+{ord(char):04X} at index {err.start} (not valid Unicode text: it cannot be "
            "encoded as UTF-8, so no JSON file or database can hold it; decode bytes with 'surrogateescape' "
            "and re-encode them properly, or use another value)"
        )
    match = _CONTROL_RE.search(text)
    if match is not None:
        return (
            f"the control character U+{ord(match.group()):04X} at index {match.start()} (NUL cannot be "
            "stored by PostgreSQL, and no control character is allowed in s3qbb records; remove it)"
        )
    return None
