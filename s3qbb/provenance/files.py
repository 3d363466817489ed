"""Names, timestamps, host facts and secret redaction for per-quantum provenance files.

Every quantum leaves up to three files beside its outputs, in its run's
``_records`` folder (paths relative to a datastore root)::

    <run>/_records/<quantum id>.sqlite3          datastore records (SQLite)
    <run>/_records/<quantum id>.provenance.json  QuantumProvenanceData (daf_butler layout)
    <run>/_records/<quantum id>.quantum.json     QuantumExecutionReport (s3qbb only)

The run is sanitised with :func:`~s3qbb.datastores.templates.sanitize_run`, and
the quantum ID is written as a lower-case dashed UUID, so each quantum has
exactly one name per kind and :func:`parse_records_key` can recognise them
when listing a run after execution.

The redaction functions (`redact`, `RedactingFormatter`, `credential_values`)
live in `s3qbb.redaction`, which imports only the standard library; they are
importable from here too.
"""

from __future__ import annotations

__all__ = [
    "ATTEMPTS_DIR",
    "CREDENTIAL_ENVIRONMENT_VARIABLES",
    "MIN_SECRET_CHARS",
    "RECORDS_DIR",
    "RECORDS_FILE_SUFFIXES",
    "HostInfo",
    "RecordsFileKind",
    "RedactingFormatter",
    "attempt_key",
    "credential_values",
    "host_info",
    "parse_attempt_name",
    "parse_records_key",
    "provenance_key",
    "records_key",
    "records_prefix",
    "redact",
    "report_key",
    "utc_now",
]

import dataclasses
import datetime
import functools
import os
import platform
import re
import socket
import urllib.parse
import uuid
from typing import Literal

from ..core.text import RECORDS_DIR
from ..datastores.templates import sanitize_run
from ..errors import InvalidNameError
from ..redaction import (
    CREDENTIAL_ENVIRONMENT_VARIABLES,
    MIN_SECRET_CHARS,
    RedactingFormatter,
    credential_values,
    redact,
)

RecordsFileKind = Literal["records", "provenance", "report"]
"""Kind of a per-quantum file: SQLite records, provenance JSON or execution report JSON."""


RECORDS_FILE_SUFFIXES: dict[RecordsFileKind, str] = {
    "records": ".sqlite3",
    "provenance": ".provenance.json",
    "report": ".quantum.json",
}
"""File name suffix of each kind of per-quantum file (after the quantum ID)."""

_UUID_RE = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_FILE_NAME = (
    rf"(?P<qid>{_UUID_RE})(?P<suffix>{'|'.join(re.escape(s) for s in RECORDS_FILE_SUFFIXES.values())})"
)
# A segment sanitize_segment can produce: kept characters, %XX escapes and the "~" of a hashed cut.
_RUN_SEGMENT = r"(?:[A-Za-z0-9_.=+@,~-]|%[0-9A-F]{2})+"
_KIND_BY_SUFFIX: dict[str, RecordsFileKind] = {suffix: kind for kind, suffix in RECORDS_FILE_SUFFIXES.items()}


# --- keys -----------------------------------------------------------------


def _quantum_id_text(quantum_id: uuid.UUID | str) -> str:
    if isinstance(quantum_id, uuid.UUID):
        return str(quantum_id)
    try:
        return str(uuid.UUID(quantum_id))
    except (ValueError, TypeError, AttributeError) as err:
        raise InvalidNameError(
            f"Quantum ID {quantum_id!r} is not a UUID; per-quantum files are named after the quantum's UUID."
        ) from err


def records_prefix(run: str) -> str:
    """Return the prefix under which a run's per-quantum files live.

    Parameters
    ----------
    run : `str`
        Run name (``/`` separates parts, ``u/someone/run1``).

    Returns
    -------
    prefix : `str`
        ``"<sanitised run>/_records/"``, relative to a datastore root; list
        it to find every per-quantum file of the run.

    Raises
    ------
    InvalidNameError
        Raised if the run name cannot be turned into a safe prefix.
    """
    return f"{sanitize_run(run)}/{RECORDS_DIR}/"


ATTEMPTS_DIR = "_attempts"
"""Folder of the attempt leases (`s3qbb.batch.attempts`), inside a run's ``_records`` folder."""


def attempt_key(run: str, quantum_id: uuid.UUID, attempt_id: str) -> str:
    """Return the path of an attempt's lease (`s3qbb.batch.attempts`).

    Parameters
    ----------
    run : `str`
        Output run of the quantum.
    quantum_id : `uuid.UUID`
        ID of the quantum.
    attempt_id : `str`
        ID of the attempt (`s3qbb.core.attempt.new_attempt_id`).

    Returns
    -------
    key : `str`
        ``"<run>/_records/_attempts/<quantum id>.<attempt id>.json"``, relative to a datastore root.
    """
    return f"{records_prefix(run)}{ATTEMPTS_DIR}/{quantum_id}.{attempt_id}.json"


_ATTEMPT_NAME = rf"{ATTEMPTS_DIR}/(?P<qid>{_UUID_RE})\.(?P<attempt>[0-9a-f]+)\.json"


@functools.cache
def _pattern(source: str) -> re.Pattern[str]:
    # Compiled on first use: a batch job builds these keys but parses none before its first put.
    return re.compile(source)


def parse_attempt_name(name: str) -> tuple[uuid.UUID, str] | None:
    """Recognise the name of an attempt's lease inside a run's ``_records`` folder.

    Parameters
    ----------
    name : `str`
        Path relative to ``<run>/_records/``: ``"_attempts/<quantum id>.<attempt id>.json"``,
        as `attempt_key` writes it.

    Returns
    -------
    parsed : `tuple` [`uuid.UUID`, `str`] or `None`
        The quantum ID and the attempt ID, or `None` for any other name.
    """
    match = _pattern(_ATTEMPT_NAME).fullmatch(name)
    if match is None:
        return None
    return uuid.UUID(match["qid"]), match["attempt"]


def _key(run: str, quantum_id: uuid.UUID | str, kind: RecordsFileKind) -> str:
    return f"{records_prefix(run)}{_quantum_id_text(quantum_id)}{RECORDS_FILE_SUFFIXES[kind]}"


def records_key(run: str, quantum_id: uuid.UUID | str) -> str:
    """Return the path of a quantum's datastore records file.

    Parameters
    ----------
    run : `str`
        Output run of the quantum; sanitised with
        `~s3qbb.datastores.templates.sanitize_run`.
    quantum_id : `uuid.UUID` or `str`
        ID of the quantum.

    Returns
    -------
    key : `str`
        ``"<run>/_records/<quantum id>.sqlite3"``, relative to a datastore root.

    Raises
    ------
    InvalidNameError
        Raised if the run name cannot be made safe or the ID is not a UUID.
    """
    return _key(run, quantum_id, "records")


def provenance_key(run: str, quantum_id: uuid.UUID | str) -> str:
    """Return the path of a quantum's provenance file (daf_butler ``QuantumProvenanceData``).

    Parameters
    ----------
    run : `str`
        Output run of the quantum.
    quantum_id : `uuid.UUID` or `str`
        ID of the quantum.

    Returns
    -------
    key : `str`
        ``"<run>/_records/<quantum id>.provenance.json"``, relative to a datastore root.

    Raises
    ------
    InvalidNameError
        Raised if the run name cannot be made safe or the ID is not a UUID.
    """
    return _key(run, quantum_id, "provenance")


def report_key(run: str, quantum_id: uuid.UUID | str) -> str:
    """Return the path of a quantum's execution report (s3qbb's own section).

    Parameters
    ----------
    run : `str`
        Output run of the quantum.
    quantum_id : `uuid.UUID` or `str`
        ID of the quantum.

    Returns
    -------
    key : `str`
        ``"<run>/_records/<quantum id>.quantum.json"``, relative to a datastore root.

    Raises
    ------
    InvalidNameError
        Raised if the run name cannot be made safe or the ID is not a UUID.
    """
    return _key(run, quantum_id, "report")


def parse_records_key(key: str) -> tuple[RecordsFileKind, uuid.UUID]:
    """Recognise the path of a per-quantum file.

    Parameters
    ----------
    key : `str`
        Path relative to a datastore root, as written by `records_key`,
        `provenance_key` or `report_key`.

    Returns
    -------
    kind : `RecordsFileKind`
        ``"records"``, ``"provenance"`` or ``"report"``.
    quantum_id : `uuid.UUID`
        ID of the quantum the file belongs to.

    Raises
    ------
    InvalidNameError
        Raised for anything else: other files, other folders, a quantum ID
        that is not a lower-case dashed UUID, or a run prefix that
        `~s3qbb.datastores.templates.sanitize_run` could not have written
        (``..``, empty segments, a leading ``/``, unescaped characters).
    """
    if not isinstance(key, str):
        raise InvalidNameError(f"Per-quantum file keys are str, not {type(key).__name__}.")
    shown = key[:200]
    segments = key.split("/")
    if len(segments) < 3 or segments[-2] != RECORDS_DIR:
        raise InvalidNameError(
            f"Key {shown!r} is not a per-quantum file; expected '<run>/{RECORDS_DIR}/<quantum id><suffix>'."
        )
    for segment in segments[:-2]:
        if (
            _pattern(_RUN_SEGMENT).fullmatch(segment) is None
            or segment.startswith(".")
            or urllib.parse.unquote(segment) in (".", "..")
        ):
            raise InvalidNameError(
                f"Key {shown!r} has run segment {segment[:80]!r} that s3qbb never writes; ignoring a "
                "file that is not a per-quantum file."
            )
    match = _pattern(_FILE_NAME).fullmatch(segments[-1])
    if match is None:
        suffixes = ", ".join(RECORDS_FILE_SUFFIXES.values())
        raise InvalidNameError(
            f"Key {shown!r} is not a per-quantum file; the name must be a lower-case dashed quantum UUID "
            f"followed by one of {suffixes}."
        )
    return _KIND_BY_SUFFIX[match["suffix"]], uuid.UUID(match["qid"])


# --- time and host ----------------------------------------------------------


def utc_now() -> datetime.datetime:
    """Return the current time as an aware UTC datetime.

    Returns
    -------
    now : `datetime.datetime`
        Current time, ``tzinfo`` `datetime.UTC`.
    """
    return datetime.datetime.now(datetime.UTC)


@dataclasses.dataclass(frozen=True, slots=True)
class HostInfo:
    """Facts about the process executing a quantum.

    Parameters
    ----------
    host : `str`
        Host name.
    pid : `int`
        Process ID.
    python_version : `str`
        Python version (``"3.12.3"``).
    s3qbb_version : `str`
        Installed s3qbb version, ``"0+unknown"`` if not installed as a package.
    """

    host: str
    pid: int
    python_version: str
    s3qbb_version: str


def _s3qbb_version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("s3qbb")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def host_info() -> HostInfo:
    """Describe the current process.

    Returns
    -------
    info : `HostInfo`
        Host name, process ID, Python and s3qbb versions.
    """
    return HostInfo(
        host=socket.gethostname() or "unknown",
        pid=os.getpid(),
        python_version=platform.python_version(),
        s3qbb_version=_s3qbb_version(),
    )
