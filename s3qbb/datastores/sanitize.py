"""Sanitisation: turn data ID values and run names into safe path segments.

Whatever a value contains (``..``, ``/``, ``%2F``, NUL, control characters,
arbitrary unicode), `sanitize_segment` renders it to exactly one harmless
path segment, injectively; `sanitize_run` does the same for each part of a
run name. The key templates (`s3qbb.datastores.templates`) pass every value
through them.
"""

from __future__ import annotations

__all__ = ["sanitize_run", "sanitize_segment"]

import functools
import hashlib
import re
import reprlib
import string

from ..core.text import RECORDS_DIR
from ..errors import DataIdError, InvalidNameError

_KEEP = frozenset(string.ascii_letters + string.digits + "_.=+@,-")
# A value made only of kept characters, not starting with '.', short enough: already its own segment.
_PLAIN = re.compile(r"[A-Za-z0-9_=+@,-][A-Za-z0-9_.=+@,-]{0,127}")
_MAX_SEGMENT = 128
_TRUNCATED_PREFIX = 100
_HASH_CHARS = 16

_short = reprlib.Repr()
_short.maxstring = 80
_short.maxother = 80
_short.maxdict = 20


def _value_text(value: object) -> str:
    """Return the text of a data ID value, refusing types that are not str or int."""
    if isinstance(value, bool):
        raise DataIdError(f"bool is not a dimension value (got {value!r}); use an int or a str.")
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return str(int(value))
    raise DataIdError(
        f"Dimension values must be str or int, not {type(value).__name__} ({_short.repr(value)}); "
        "convert the value (e.g. int() for numpy integers) before building the data ID."
    )


def sanitize_segment(value: str | int) -> str:
    """Turn one value into exactly one safe path segment.

    Characters in ``[A-Za-z0-9_.=+@,-]`` are kept; every other byte of the
    UTF-8 encoding is written as ``%XX`` (so ``%`` becomes ``%25`` and ``/``
    becomes ``%2F``), and a leading ``.`` as ``%2E``.  The mapping is
    injective.  A result longer than 128 characters is cut to 100 characters
    followed by ``~`` and the first 16 hex digits of the SHA-256 of the value.

    Parameters
    ----------
    value : `str` or `int`
        The value; integers render in decimal.

    Returns
    -------
    segment : `str`
        A non-empty ASCII segment, never ``.`` or ``..``, without ``/`` or backslash.

    Raises
    ------
    DataIdError
        If the value is empty, a bool, or neither a str nor an int.
    """
    text = _value_text(value)
    if _PLAIN.fullmatch(text) is not None:
        return text
    if not text:
        raise DataIdError("An empty string cannot be a path segment; give the dimension a non-empty value.")
    parts: list[str] = []
    for char in text:
        if char in _KEEP:
            parts.append(char)
        else:
            parts.extend(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))
    if parts[0] == ".":
        parts[0] = "%2E"
    encoded = "".join(parts)
    if len(encoded) > _MAX_SEGMENT:
        head = encoded[:_TRUNCATED_PREFIX]
        cut = head.rfind("%", _TRUNCATED_PREFIX - 2)  # do not split a %XX escape
        if cut != -1:
            head = head[:cut]
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        encoded = f"{head}~{digest[:_HASH_CHARS]}"
    return encoded


def sanitize_run(run: str) -> str:
    """Turn a run name into a safe path prefix, one segment per ``/``-separated part.

    Parameters
    ----------
    run : `str`
        Run name; it may contain ``/`` (``u/someone/run1``).

    Returns
    -------
    prefix : `str`
        The parts joined by ``/``, each sanitised with :func:`sanitize_segment`.

    Raises
    ------
    InvalidNameError
        If the name is not a str, is empty, has an empty, ``.`` or ``..``
        part, or has a ``_records`` part (reserved for the per-quantum files
        of every run).
    """
    if not isinstance(run, str):
        raise InvalidNameError(f"Run names must be str, not {type(run).__name__} ({_short.repr(run)}).")
    return _sanitize_run(str.__str__(run))


@functools.lru_cache(maxsize=256)  # a job writes under one or two runs, once per dataset
def _sanitize_run(run: str) -> str:
    parts = run.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            what = "an empty part" if not part else f"a {part!r} part"
            raise InvalidNameError(
                f"Run name {_short.repr(run)} has {what}; use non-empty '/'-separated parts "
                "other than '.' and '..' (no leading, trailing or doubled '/')."
            )
        if part == RECORDS_DIR:
            raise InvalidNameError(
                f"Run name {_short.repr(run)} has a {RECORDS_DIR!r} part, reserved for the folder of "
                "per-quantum records below every run; rename that part (e.g. 'records')."
            )
    return "/".join(sanitize_segment(part) for part in parts)
