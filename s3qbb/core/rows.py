"""The ``rows`` read parameter of arrays: one rule for every read path.

A ``get`` with ``parameters={"rows": ...}`` is answered by the npy
formatter's ranged read (a cache miss on S3), by the storage class's
parameter handler (a cache hit, `~s3qbb.datastores.memory.InMemoryDatastore`),
or by the formatter reading a whole body: all of them check the parameter
with `normalize_rows`, so the same call is accepted or refused whatever the
cache holds.
"""

from __future__ import annotations

__all__ = ["normalize_rows"]

import operator
from typing import Any

from ..errors import InvalidParameterError


def _as_index(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidParameterError(f"Read parameter 'rows': {what} must be an int or None, not a bool.")
    try:
        return operator.index(value)
    except TypeError as err:
        from ..formatters.base import type_name  # here: the formatters import this module

        raise InvalidParameterError(
            f"Read parameter 'rows': {what} must be an int or None, not {type_name(value)!r}."
        ) from err


def normalize_rows(rows: Any) -> slice:
    """Check a ``rows`` read parameter and return it as a `slice`.

    Parameters
    ----------
    rows : `slice` or `tuple` [`int` | `None`, `int` | `None`]
        A slice over axis 0 (any step but zero, as ``array[rows]`` accepts) or a
        ``(start, stop)`` pair (a two-item `list` too, as JSON gives a pair; it is
        a range, not two row indices); negative indices count from the end, as in
        Python.

    Returns
    -------
    rows : `slice`
        A slice whose start, stop and step are `int` or `None`.

    Raises
    ------
    InvalidParameterError
        Raised if ``rows`` has another type, bad bounds, or a zero step.
    """
    if isinstance(rows, slice):
        start, stop = _as_index(rows.start, "start"), _as_index(rows.stop, "stop")
        step = _as_index(rows.step, "step")
        if step == 0:
            raise InvalidParameterError("Read parameter 'rows': the slice step cannot be zero.")
        return slice(start, stop, step)
    if isinstance(rows, tuple | list) and len(rows) == 2:
        return slice(_as_index(rows[0], "start"), _as_index(rows[1], "stop"))
    raise InvalidParameterError(
        f"Read parameter 'rows' must be a slice or a (start, stop) tuple, not {rows!r:.200}."
    )
