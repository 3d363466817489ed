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

:func:`redact` removes credentials from text (error messages, tracebacks,
warnings) before it is written into a report; :class:`RedactingFormatter`
does the same for log output.
"""

from __future__ import annotations

__all__ = [
    "CREDENTIAL_ENVIRONMENT_VARIABLES",
    "MIN_SECRET_CHARS",
    "RECORDS_DIR",
    "RECORDS_FILE_SUFFIXES",
    "HostInfo",
    "RecordsFileKind",
    "RedactingFormatter",
    "credential_values",
    "host_info",
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
import logging
import os
import platform
import re
import socket
import urllib.parse
import uuid
from collections.abc import Iterable, Mapping
from typing import Literal

from ..config import registered_secrets
from ..core.text import RECORDS_DIR
from ..datastores.templates import sanitize_run
from ..errors import InvalidNameError

RecordsFileKind = Literal["records", "provenance", "report"]
"""Kind of a per-quantum file: SQLite records, provenance JSON or execution report JSON."""


RECORDS_FILE_SUFFIXES: dict[RecordsFileKind, str] = {
    "records": ".sqlite3",
    "provenance": ".provenance.json",
    "report": ".quantum.json",
}
"""File name suffix of each kind of per-quantum file (after the quantum ID)."""

_UUID_RE = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_FILE_NAME_RE = re.compile(
    rf"(?P<qid>{_UUID_RE})(?P<suffix>{'|'.join(re.escape(s) for s in RECORDS_FILE_SUFFIXES.values())})"
)
# A segment sanitize_segment can produce: kept characters, %XX escapes and the "~" of a hashed cut.
_RUN_SEGMENT_RE = re.compile(r"(?:[A-Za-z0-9_.=+@,~-]|%[0-9A-F]{2})+")
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
            _RUN_SEGMENT_RE.fullmatch(segment) is None
            or segment.startswith(".")
            or urllib.parse.unquote(segment) in (".", "..")
        ):
            raise InvalidNameError(
                f"Key {shown!r} has run segment {segment[:80]!r} that s3qbb never writes; ignoring a "
                "file that is not a per-quantum file."
            )
    match = _FILE_NAME_RE.fullmatch(segments[-1])
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


# --- redaction ----------------------------------------------------------------

_MASK = "***"

# "name=value", "name: value", '"Name": "value"' for names that hold secrets.
_ASSIGNMENT_RE = re.compile(
    r"""(?P<name>\b(?:aws_secret_access_key|aws_session_token|aws_security_token|secret_access_key"""
    r"""|secretaccesskey|session_token|sessiontoken|x-amz-security-token|x-amz-signature|signature"""
    r"""|password|passwd)["']?\s*[:=]\s*)(?P<value>"[^"]*"|'[^']*'|[^\s,;&'"]+)""",
    re.IGNORECASE,
)
# Password in the user information of a URL: scheme://user:password@host.
_URL_PASSWORD_RE = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/?#@:]*):[^\s/?#@]*@")
# AWS access key IDs: long-term (AKIA) and temporary (ASIA).
_KEY_ID_RE = re.compile(r"(?<![A-Za-z0-9])(?P<prefix>AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])")
# A 40-character base64 token standing alone: the shape of an AWS secret access key.
_SECRET40_RE = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
_SECRET_WINDOW = 100
"""Characters either side of an access key ID searched for its secret."""


def _mask_assignment(match: re.Match[str]) -> str:
    value = match["value"]
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{match['name']}{quote}{_MASK}{quote}"


def _mask_secrets_near_key_ids(text: str) -> str:
    windows = [(m.start() - _SECRET_WINDOW, m.end() + _SECRET_WINDOW) for m in _KEY_ID_RE.finditer(text)]
    if not windows:
        return text
    pieces: list[str] = []
    last = 0
    for match in _SECRET40_RE.finditer(text):
        if any(lo <= match.start() and match.end() <= hi for lo, hi in windows):
            pieces.append(text[last : match.start()])
            pieces.append(_MASK)
            last = match.end()
    pieces.append(text[last:])
    return "".join(pieces)


CREDENTIAL_ENVIRONMENT_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
)
"""Environment variables whose values `credential_values` reports (and `redact` masks by default)."""

MIN_SECRET_CHARS = 8
"""Shortest credential value masked literally; shorter ones would mangle ordinary words."""


def credential_values(environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """Return the credentials in use by this process, for literal masking.

    Parameters
    ----------
    environ : `~collections.abc.Mapping` [`str`, `str`], optional
        Environment to read; `os.environ` (at call time) by default.

    Returns
    -------
    values : `frozenset` [`str`]
        Values of `CREDENTIAL_ENVIRONMENT_VARIABLES`, and every credential
        registered with `s3qbb.config.register_secrets` (those of each
        `~s3qbb.config.S3EndpointConfig` given in a configuration file or in
        Python, and those each S3 client resolved from a profile or the AWS
        chain), that are at least `MIN_SECRET_CHARS` characters long.
        Whatever their shape (AWS keys or the keys of another S3 service),
        a credential in use is masked wherever it appears.
    """
    env = os.environ if environ is None else environ
    values = [env.get(name, "").strip() for name in CREDENTIAL_ENVIRONMENT_VARIABLES]
    values.extend(registered_secrets())
    return frozenset(v for v in values if len(v) >= MIN_SECRET_CHARS)


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """Remove credentials from text before it is stored or shown.

    Parameters
    ----------
    text : `str`
        Any text: an error message, a traceback, a warning, a URI.
    secrets : iterable of `str`, optional
        Exact values to mask wherever they appear (those shorter than
        `MIN_SECRET_CHARS` are ignored); `credential_values` (the
        credentials in the environment) by default.

    Returns
    -------
    redacted : `str`
        The text with, replaced by ``***``: every occurrence of ``secrets``;
        values assigned to secret-bearing names (``aws_secret_access_key=...``,
        ``aws_session_token``, ``"SecretAccessKey": "..."``, ``X-Amz-Signature=`` and
        ``X-Amz-Security-Token=`` of presigned URLs, ``password=``); URL
        passwords (``scheme://user:***@host``); 40-character base64 tokens
        within 100 characters of an access key ID; and the access key IDs
        themselves (``AKIA***``, ``ASIA***``). UUIDs, checksums
        (``CRC32C:9ONpcA==``) and ordinary text are left alone. Applying it
        twice changes nothing more.
    """
    literal = credential_values() if secrets is None else {s for s in secrets if len(s) >= MIN_SECRET_CHARS}
    for value in sorted(literal, key=len, reverse=True):  # longest first: one may contain another
        text = text.replace(value, _MASK)
    text = _URL_PASSWORD_RE.sub(lambda m: f"{m['head']}:{_MASK}@", text)
    text = _ASSIGNMENT_RE.sub(_mask_assignment, text)
    text = _mask_secrets_near_key_ids(text)
    return _KEY_ID_RE.sub(lambda m: f"{m['prefix']}{_MASK}", text)


class RedactingFormatter(logging.Formatter):
    """A log formatter whose output passes through `redact`.

    The whole formatted record is redacted, the traceback of ``exc_info``
    included, so credentials in messages of any library (botocore's signed
    request headers at debug level among them) never reach the handler's
    stream. The ``s3qbb`` command line installs it; applications embedding
    s3qbb can install it on their own handlers.

    Parameters
    ----------
    fmt, datefmt, style
        As for `logging.Formatter`.
    secrets : iterable of `str`, optional
        Exact values to mask besides the credentials in the environment.

    Examples
    --------
    >>> import logging
    >>> handler = logging.StreamHandler()
    >>> handler.setFormatter(RedactingFormatter("%(levelname)s %(name)s: %(message)s"))
    """

    def __init__(
        self,
        fmt: str | None = None,
        datefmt: str | None = None,
        style: Literal["%", "{", "$"] = "%",
        *,
        secrets: Iterable[str] = (),
    ) -> None:
        super().__init__(fmt, datefmt, style)
        self._secrets = frozenset(secrets)

    def format(self, record: logging.LogRecord) -> str:
        """Format the record, then redact the result."""
        return redact(super().format(record), credential_values() | self._secrets)
