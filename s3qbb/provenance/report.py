"""s3qbb's execution report of a quantum: which task ran, how it ended, its counters, a redacted error.

Written beside the daf_butler-compatible `~s3qbb.provenance.model.QuantumProvenanceData`
(``<run>/_records/<quantum id>.quantum.json``); daf_butler ignores it.
"""

from __future__ import annotations

__all__ = [
    "MAX_MESSAGE_CHARS",
    "REPORT_FORMAT",
    "REPORT_VERSION",
    "TRACEBACK_LINES",
    "ErrorInfo",
    "QuantumDatasetCounts",
    "QuantumExecutionReport",
    "QuantumStatus",
]

import datetime
import hashlib
import json
import traceback
import urllib.parse
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, Self

import pydantic

from ..core.wire import SerializedDatasetRef
from ..errors import RecordDataError
from ._common import _describe, _dump, _Name
from .files import redact

if TYPE_CHECKING:
    from .model import QuantumProvenanceData

REPORT_FORMAT: Final = "s3qbb.quantum"
"""Value of the ``format`` field of every execution report."""

REPORT_VERSION = 2
"""Version of the execution report layout written by this release; newer ones are refused.

Version 2 adds ``digest``: the SHA-256 of the report's JSON without it, checked on every read.
"""

_DIGESTED_SINCE = 2
"""First version whose reports carry (and must carry) a ``digest``."""

TRACEBACK_LINES = 20
"""Number of traceback lines kept in an error report (the last ones)."""

MAX_MESSAGE_CHARS = 4000
"""Longest error message or warning kept; longer text is cut (after redaction)."""

QuantumStatus = Literal["succeeded", "failed", "interrupted", "recovered"]
"""How a quantum ended.

``"succeeded"``: the task returned normally. ``"failed"``: it raised, and
``error`` says what. ``"interrupted"``: the job was told to stop (SIGTERM,
SIGINT) and stopped the task; a later attempt may succeed. ``"recovered"``:
the report was rebuilt after the fact (for example when the executing process died and a later step found its
outputs), so timings and counters may be incomplete.
"""


def _digest(dumped: Mapping[str, Any]) -> str:
    """Return ``"sha256:<hex>"`` of a report's JSON fields (without ``digest``) as `_dump` writes them."""
    return "sha256:" + hashlib.sha256(_dump(dumped)).hexdigest()


_DIGEST_HEAD = b',\n  "digest": "sha256:'
_DIGEST_TAIL_LEN = len(_DIGEST_HEAD) + 64 + len(b'"\n}\n')


def _intact_as_written(data: bytes, digest: str) -> bool:
    """Return whether ``data`` is, byte for byte, what `QuantumExecutionReport.to_json` wrote with ``digest``.

    `to_json` writes the fields' `_dump`, then adds ``digest`` as the last
    member: the file is the digested text with ``, "digest": ...`` put
    before its closing brace. Hashing the bytes back
    is one SHA-256 of the file, where dumping the parsed fields again (the
    check of a file another tool re-wrote, `_digest`) takes the pure-Python
    JSON encoder about a millisecond per report: most of ingest's own CPU.
    """
    tail = data[-_DIGEST_TAIL_LEN:]
    if len(data) <= _DIGEST_TAIL_LEN or not tail.startswith(_DIGEST_HEAD) or not tail.endswith(b'"\n}\n'):
        return False
    written = tail[len(_DIGEST_HEAD) : len(_DIGEST_HEAD) + 64].decode("ascii", "replace")
    body = data[: len(data) - _DIGEST_TAIL_LEN] + b"\n}\n"
    return digest == f"sha256:{written}" and hashlib.sha256(body).hexdigest() == written


def _truncate(text: str) -> str:
    # Lone surrogates (a file name's undecodable bytes, ``os.fsdecode``) spelled as ``\udce9``:
    # JSON would carry them, but no reader (s3qbb's own among them) accepts the report back.
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 3] + "..."


def _root_only(uri: str) -> str:
    """Keep only scheme, host and path of a URI: no user information, query or fragment."""
    parts = urllib.parse.urlsplit(uri)
    if not parts.scheme:
        return redact(uri)
    netloc = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _new_list() -> list[Any]:
    # The default factory of the list fields, rather than `list`: pydantic reads a factory's
    # signature, and reading a builtin's compiles the tokenizer's regular expressions, ~3 ms of
    # every job (measured with benchmarks.job_start).
    return []


_Count = Annotated[int, pydantic.Field(ge=0)]


class ErrorInfo(pydantic.BaseModel):
    """What made a quantum fail, with credentials removed.

    ``message`` and ``traceback_tail`` pass through
    :func:`~s3qbb.provenance.files.redact` on construction, whatever the
    source, then are cut to `MAX_MESSAGE_CHARS` and the last
    `TRACEBACK_LINES` lines.
    """

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    type: _Name
    """Qualified name of the exception class (``"s3qbb.errors.DatasetNotFoundError"``)."""

    message: str
    """The exception's message and notes, redacted."""

    traceback_tail: list[str] = pydantic.Field(default_factory=_new_list)
    """Last lines of the formatted traceback, redacted."""

    @pydantic.field_validator("message")
    @classmethod
    def _redact_message(cls, value: str) -> str:
        return _truncate(redact(value))

    @pydantic.field_validator("traceback_tail")
    @classmethod
    def _redact_traceback(cls, value: list[str]) -> list[str]:
        lines = redact("\n".join(value)).splitlines()[-TRACEBACK_LINES:]
        return [_truncate(line) for line in lines]

    @classmethod
    def from_exception(cls, exc: BaseException) -> ErrorInfo:
        """Describe an exception.

        Parameters
        ----------
        exc : `BaseException`
            The exception, with its traceback if it was raised.

        Returns
        -------
        info : `ErrorInfo`
            Class name, message (with any notes) and traceback tail, redacted.
        """
        exc_type = type(exc)
        module = exc_type.__module__
        name = exc_type.__qualname__ if module == "builtins" else f"{module}.{exc_type.__qualname__}"
        message = "\n".join([str(exc), *(str(n) for n in getattr(exc, "__notes__", ()))])
        lines = "".join(traceback.format_exception(exc)).splitlines()
        return cls(type=name, message=message, traceback_tail=lines)


class QuantumDatasetCounts(pydantic.BaseModel):
    """Sizes of a quantum's provenance ID sets."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    predicted_inputs: _Count = 0
    available_inputs: _Count = 0
    actual_inputs: _Count = 0
    predicted_outputs: _Count = 0
    actual_outputs: _Count = 0

    @pydantic.model_validator(mode="after")
    def _check_counts(self) -> Self:
        for name, limit in (
            ("available_inputs", "predicted_inputs"),
            ("actual_inputs", "predicted_inputs"),
            ("actual_outputs", "predicted_outputs"),
        ):
            if getattr(self, name) > getattr(self, limit):
                raise ValueError(f"{name} ({getattr(self, name)}) exceeds {limit} ({getattr(self, limit)})")
        return self

    @classmethod
    def from_provenance(cls, provenance: QuantumProvenanceData) -> QuantumDatasetCounts:
        """Count the ID sets of a quantum's provenance.

        Parameters
        ----------
        provenance : `QuantumProvenanceData`
            The provenance.

        Returns
        -------
        counts : `QuantumDatasetCounts`
            Size of each set.
        """
        return cls(
            predicted_inputs=len(provenance.predicted_inputs),
            available_inputs=len(provenance.available_inputs),
            actual_inputs=len(provenance.actual_inputs),
            predicted_outputs=len(provenance.predicted_outputs),
            actual_outputs=len(provenance.actual_outputs),
        )


class QuantumExecutionReport(pydantic.BaseModel):
    """How one quantum was executed: s3qbb's own, versioned section of provenance.

    Written beside the daf_butler-compatible `QuantumProvenanceData`, in a
    separate file. Readers refuse a ``version`` newer than `REPORT_VERSION`;
    any change to the layout bumps it. Text that could carry credentials
    (error, warnings) is redacted and datastore roots are reduced to
    scheme, host and path on construction.
    """

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    format: Literal["s3qbb.quantum"] = REPORT_FORMAT
    """Identifies the file as an s3qbb quantum report."""

    version: int = REPORT_VERSION
    """Layout version."""

    quantum_id: uuid.UUID
    """ID of the quantum."""

    task_label: _Name
    """Label of the task in its pipeline."""

    task_name: _Name
    """Fully qualified name of the task class."""

    run: _Name
    """Output run collection."""

    status: QuantumStatus
    """How the quantum ended."""

    started_at: pydantic.AwareDatetime
    """When execution started (stored in UTC)."""

    ended_at: pydantic.AwareDatetime
    """When execution ended (stored in UTC)."""

    duration_s: Annotated[float, pydantic.Field(ge=0, allow_inf_nan=False)]
    """Elapsed time in seconds, measured with a monotonic clock."""

    host: _Name
    """Host name of the executing machine."""

    pid: _Count
    """Process ID of the executor."""

    s3qbb_version: _Name
    """Version of s3qbb that executed the quantum."""

    python_version: _Name
    """Version of Python that executed the quantum."""

    datastores: dict[_Name, str] = pydantic.Field(default_factory=dict)
    """Root URI of each datastore, by datastore name (no credentials, query or fragment)."""

    requests: dict[_Name, _Count] = pydantic.Field(default_factory=dict)
    """Storage requests made, by operation (``"GetObject"``: 12)."""

    retries: _Count = 0
    """Storage requests retried."""

    bytes_read: _Count = 0
    """Bytes read from storage."""

    bytes_written: _Count = 0
    """Bytes written to storage."""

    cache_hits: _Count = 0
    """Reads served by the in-memory cache."""

    cache_misses: _Count = 0
    """Reads the cache could not serve."""

    error: ErrorInfo | None = None
    """Why the quantum failed; `None` if it did not."""

    warnings: list[str] = pydantic.Field(default_factory=_new_list)
    """Warnings emitted during execution, redacted."""

    datasets: QuantumDatasetCounts = pydantic.Field(default_factory=QuantumDatasetCounts)
    """Sizes of the provenance ID sets."""

    refs: list[SerializedDatasetRef] = pydantic.Field(default_factory=_new_list)
    """The quantum's datasets the butler knew as refs (dataset type, data ID, run), so a registry
    can record what each ID of the provenance file is; empty for butlers built from IDs alone."""

    attempt_id: str | None = pydantic.Field(default=None, pattern=r"^[0-9a-f]{28}$")
    """The attempt that wrote this report (see `s3qbb.core.attempt.WriteToken`): attempt IDs of
    one quantum sort in start order, so a registry keeps the last attempt's outputs. In a report
    rebuilt by recovery (status ``recovered``), the newest attempt named by the write tokens of the
    outputs it adopted, or `None` if they carry none. `None` in reports written before attempts
    were recorded."""

    digest: str | None = pydantic.Field(
        default=None, pattern=r"^sha256:[0-9a-f]{64}$", exclude=True, repr=False
    )
    """``"sha256:<hex>"`` of the report's JSON without this field, as `to_json` writes it (version 2
    on): a changed byte anywhere in the file is found when it is read (`from_json`), where the
    fields alone could stay valid (a run, a data ID or a dataset type name one bit off). Not part
    of the report's value: `from_json` checks it and returns the report without it, `to_json`
    computes it afresh."""

    @pydantic.model_validator(mode="before")
    @classmethod
    def _check_format_and_version(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            fmt = data.get("format", REPORT_FORMAT)
            if fmt != REPORT_FORMAT:
                raise ValueError(
                    f"format is {str(fmt)[:80]!r}, not {REPORT_FORMAT!r}: not an s3qbb quantum report"
                )
            version = data.get("version", REPORT_VERSION)
            if isinstance(version, int) and not isinstance(version, bool) and version > REPORT_VERSION:
                raise ValueError(
                    f"quantum report version {version} is newer than this s3qbb understands "
                    f"({REPORT_VERSION}); upgrade s3qbb to read it"
                )
        return data

    @pydantic.field_validator("version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"quantum report version must be at least 1, not {value}")
        return value

    @pydantic.field_validator("started_at", "ended_at")
    @classmethod
    def _to_utc(cls, value: datetime.datetime) -> datetime.datetime:
        return value.astimezone(datetime.UTC)

    @pydantic.field_validator("datastores")
    @classmethod
    def _roots_only(cls, value: dict[str, str]) -> dict[str, str]:
        return {name: _root_only(root) for name, root in value.items()}

    @pydantic.field_validator("warnings")
    @classmethod
    def _redact_warnings(cls, value: list[str]) -> list[str]:
        return [_truncate(redact(w)) for w in value]

    @pydantic.model_validator(mode="after")
    def _check_consistency(self) -> Self:
        if self.ended_at < self.started_at:
            raise ValueError(f"ended_at {self.ended_at.isoformat()} is before started_at")
        if self.status == "failed" and self.error is None:
            raise ValueError("a failed quantum's report must describe its error")
        if self.status == "succeeded" and self.error is not None:
            raise ValueError("a succeeded quantum's report cannot have an error")
        return self

    @classmethod
    def from_json(cls, data: bytes | str, *, source: str | None = None) -> QuantumExecutionReport:
        """Read and validate a report.

        Parameters
        ----------
        data : `bytes` or `str`
            The JSON text.
        source : `str`, optional
            Name of the file or URI it came from, for error messages.

        Returns
        -------
        report : `QuantumExecutionReport`
            The validated report.

        Raises
        ------
        RecordDataError
            Raised if the text is not JSON, is not an s3qbb quantum report,
            has a newer version (upgrade s3qbb), or has invalid fields.
        """
        where = f" {source!r}" if source else ""
        try:
            report = cls.model_validate_json(data)
        except pydantic.ValidationError as err:
            raise RecordDataError(f"Quantum report{where} cannot be read: {_describe(err)}.") from err
        if report.digest is None and report.version < _DIGESTED_SINCE:
            return report
        raw = data.encode("utf-8") if isinstance(data, str) else data
        if report.digest is not None and _intact_as_written(raw, report.digest):
            return report.model_copy(update={"digest": None})
        written = json.loads(data)  # valid JSON of an object: the model read it
        written.pop("digest", None)
        if report.digest is None or report.digest != _digest(written):
            problem = "has no digest" if report.digest is None else "does not match its digest"
            raise RecordDataError(
                f"Quantum report{where} {problem}: its content changed after s3qbb wrote it (a damaged or "
                "edited file), so none of it is trusted. Re-run the quantum, or rebuild its files with "
                "`s3qbb ingest --recover`."
            )
        return report.model_copy(update={"digest": None})

    def to_json(self) -> bytes:
        """Serialize deterministically.

        Returns
        -------
        data : `bytes`
            UTF-8 JSON, fields in declaration order, mappings sorted, 2-space
            indent and a final newline; from version 2, ``digest`` last: the
            SHA-256 of the rest, as written.
        """
        dumped = self.model_dump(mode="json")
        dumped["datastores"] = dict(sorted(dumped["datastores"].items()))
        dumped["requests"] = dict(sorted(dumped["requests"].items()))
        if dumped.get("attempt_id") is None:  # reports of unknown attempts keep their version-1 layout
            dumped.pop("attempt_id", None)
        text = _dump(dumped)
        if self.version < _DIGESTED_SINCE:
            return text
        # The digest member spliced in before the closing brace: the bytes `_dump` writes with it
        # (checked by a test), for one pass of the pure-Python indenting encoder instead of two.
        digest = hashlib.sha256(text).hexdigest()
        return b"".join((text[: -len(b"\n}\n")], _DIGEST_HEAD, digest.encode("ascii"), b'"\n}\n'))
