"""Find, download and validate the per-quantum files a run left in ``<run>/_records/``.

Nothing here touches the registry database. Every problem with one file is
returned as an `~s3qbb.registry.results.IngestFailure` naming the file, so
one bad file never stops the others.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "FetchResult",
    "ListedRun",
    "QuantumBundle",
    "QuantumFiles",
    "encoded_run_prefix",
    "fetch_quantum",
    "list_run",
    "parse_run_uri",
]

import dataclasses
import hashlib
import urllib.parse
import uuid
from typing import TYPE_CHECKING

from ..datastores.sanitize import sanitize_run
from ..errors import ConfigError, DataIdError, DatasetIntegrityError, InvalidNameError, S3qbbError
from ..provenance.files import ATTEMPTS_DIR, RECORDS_DIR, parse_records_key, redact
from ..provenance.model import QuantumExecutionReport, QuantumProvenanceData
from .results import IngestFailure

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..provenance.files import RecordsFileKind
    from ..s3.objects import S3Bucket

DEFAULT_MAX_FILE_BYTES = 256 * 1024**2
"""Largest provenance or report file ingest downloads (256 MiB); larger ones are reported and skipped."""


class _RejectedError(Exception):
    """A file cannot be ingested; ``args[0]`` is the key, ``args[1]`` the reason."""


def parse_run_uri(uri: str) -> tuple[str, str]:
    """Split the URI of a run prefix into bucket and key prefix.

    Parameters
    ----------
    uri : `str`
        ``s3://bucket/root/<run>/``; the trailing ``/`` is optional.

    Returns
    -------
    bucket : `str`
        Bucket name.
    prefix : `str`
        Key prefix of the run, ending in ``/`` (empty for a bucket's top).

    Raises
    ------
    ConfigError
        Raised if the URI is not ``s3://bucket/...``, has a query or fragment,
        or has a ``_records`` segment: that folder holds a run's per-quantum
        files, and no run name may contain it, so ``.../x/_records/`` is
        refused rather than read as run ``x`` (a run ``x/_records`` cannot exist).
    """
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(
            f"Run URI {redact(uri)[:200]!r} must look like s3://BUCKET/ROOT/RUN/ (the run's prefix beside "
            "its outputs)."
        )
    prefix = parts.path.lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    segments = prefix.split("/")
    if RECORDS_DIR in segments:
        run_prefix = "/".join(segments[: segments.index(RECORDS_DIR)])
        raise ConfigError(
            f"Run URI {redact(uri)[:200]!r} points into a {RECORDS_DIR!r} folder, which holds a run's "
            f"per-quantum files and is never part of a run name; give the run's own prefix "
            f"(s3://{parts.netloc}/{redact(run_prefix)[:200]}/): ingest lists its {RECORDS_DIR}/ itself."
        )
    return parts.netloc, prefix


def _sanitised(segment: str) -> str | None:
    try:
        return sanitize_run(segment)
    except (InvalidNameError, DataIdError):
        return None


def encoded_run_prefix(prefix: str, exists: Callable[[str], bool]) -> str | None:
    """Return the prefix of the run that ``prefix`` names by its own name, when stored under another.

    Run names are stored sanitised (`~s3qbb.datastores.sanitize.sanitize_run`):
    run ``rün/日本`` of the repository ``repo/`` is at
    ``repo/r%C3%BCn/%E6%97%A5%E6%9C%AC/``. Only the run part of a run URI is
    sanitised, not the repository root before it, and which segments are the
    root is not known here. The root exists as given, while a run segment that
    sanitising changes never does (s3qbb writes only its sanitised form); so
    the root is taken to end at the deepest ancestor of ``prefix`` holding any
    key, and the segments after it are sanitised as a run name. Segments that
    sanitising keeps read the same either way.

    Parameters
    ----------
    prefix : `str`
        Key prefix of a run URI as given (`parse_run_uri`), ending in ``/``.
    exists : `~collections.abc.Callable` [[`str`], `bool`]
        Whether a prefix (ending in ``/``) holds any key: one LIST. Called for
        ``prefix`` and its ancestors below the first segment that sanitising
        changes, deepest first, until one exists.

    A prefix with percent-escapes that decodes to a prefix holding keys is
    read as that prefix: the URIs s3qbb prints percent-encode their keys
    (`s3qbb.core.uri.ResourceURI`), so run ``r%201/`` is printed ``r%25201/``.

    Returns
    -------
    encoded : `str` or `None`
        The decoded prefix, or the sanitised prefix (ending in ``/``; whether it exists is for the
        caller to check), or `None` if sanitising changes no segment, ``prefix``
        itself exists, or the segments after the root cannot be a run name.
    """
    decoded = urllib.parse.unquote(prefix)
    if decoded != prefix and exists(decoded):
        return decoded  # a URI s3qbb printed: it percent-encodes keys (ResourceURI), "%2520" for "%20"
    segments = prefix.rstrip("/").split("/") if prefix.strip("/") else []
    changed = [i for i, segment in enumerate(segments) if _sanitised(segment) != segment]
    if not changed:
        return None
    depth = changed[0]  # no ancestor down to the first changed segment exists: the run starts there
    for end in range(len(segments), changed[0], -1):
        if exists("".join(f"{segment}/" for segment in segments[:end])):
            depth = end
            break
    if depth == len(segments):
        return None  # the prefix exists as given
    try:
        run = sanitize_run("/".join(segments[depth:]))
    except (InvalidNameError, DataIdError):
        return None
    encoded = "".join(f"{segment}/" for segment in segments[:depth]) + f"{run}/"
    return None if encoded == prefix else encoded


@dataclasses.dataclass
class QuantumFiles:
    """The keys of one quantum's files, by kind, and their ETags from the listing."""

    quantum_id: uuid.UUID
    keys: dict[RecordsFileKind, str] = dataclasses.field(default_factory=dict)
    etags: dict[RecordsFileKind, str] = dataclasses.field(default_factory=dict)

    @property
    def files_tag(self) -> str:
        """A digest of the listed ETags of the files: it changes whenever one of them is rewritten."""
        text = ";".join(f"{kind}={self.etags.get(kind, '')}" for kind in sorted(self.keys))
        return hashlib.sha256(text.encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class ListedRun:
    """What listing a run's ``_records/`` found."""

    bucket: str
    prefix: str
    """Key prefix of the run (ending in ``/``)."""
    quanta: dict[uuid.UUID, QuantumFiles]
    """Per-quantum files, by quantum ID."""
    rejected: list[IngestFailure]
    """Keys under ``_records/`` that are not per-quantum files."""
    files: int
    """Keys listed."""


def list_run(bucket: S3Bucket, prefix: str) -> ListedRun:
    """List a run's per-quantum files (one LIST request per 1,000 keys).

    Parameters
    ----------
    bucket : `~s3qbb.s3.objects.S3Bucket`
        The bucket.
    prefix : `str`
        Key prefix of the run, from `parse_run_uri`.

    Returns
    -------
    listed : `ListedRun`
        Files grouped by quantum; other keys (nested folders, foreign names,
        ``..`` segments, IDs that are not lower-case UUIDs) as failures.

    Raises
    ------
    S3qbbError
        Raised if the listing itself fails (missing bucket, access denied, ...).
    """
    records_prefix = f"{prefix}{RECORDS_DIR}/"
    quanta: dict[uuid.UUID, QuantumFiles] = {}
    rejected: list[IngestFailure] = []
    files = 0
    for page in bucket.list_etags(records_prefix):
        for key, etag in page:
            name = key[len(records_prefix) :]
            if name.startswith(f"{ATTEMPTS_DIR}/"):
                continue  # attempt leases (s3qbb.batch.attempts): how attempts ran, not what they stored
            files += 1
            try:
                if "/" in name:
                    raise InvalidNameError(f"{name[:200]!r} is in a sub-folder of {RECORDS_DIR}/")
                kind, quantum_id = parse_records_key(f"run/{RECORDS_DIR}/{name}")
            except InvalidNameError as err:
                rejected.append(IngestFailure(bucket.uri(key), f"not a per-quantum file: {err}"))
                continue
            files_of = quanta.setdefault(quantum_id, QuantumFiles(quantum_id))
            files_of.keys[kind] = key
            files_of.etags[kind] = etag
    return ListedRun(bucket.bucket, prefix, quanta, rejected, files)


@dataclasses.dataclass(frozen=True)
class QuantumBundle:
    """The validated files of one quantum."""

    quantum_id: uuid.UUID
    provenance: QuantumProvenanceData
    report: QuantumExecutionReport | None
    """`None` if the quantum left no report: daf_butler's provenance alone (no records file either)."""
    source: str
    """URI of the provenance file."""
    files_tag: str = ""
    """`QuantumFiles.files_tag` of the files this bundle was read from."""


@dataclasses.dataclass(frozen=True)
class FetchResult:
    """Outcome of `fetch_quantum`: a bundle, or the failures that kept it out."""

    bundle: QuantumBundle | None
    failures: list[IngestFailure]
    bytes_downloaded: int


def _download(bucket: S3Bucket, key: str, max_bytes: int) -> bytes:
    from ..s3.errors import S3ServiceError

    try:
        # One GET that stops after max_bytes + 1 bytes: an oversized file is recognised without
        # reading it whole; Content-Range gives its real size.
        result = bucket.get_checked(key, byte_range=(0, max_bytes + 1))
    except S3ServiceError as err:
        if err.status == 416:  # No byte range of an empty object is satisfiable.
            raise _RejectedError(key, "the file is empty") from err
        raise _RejectedError(key, f"download failed: {redact(str(err))}") from err
    except DatasetIntegrityError as err:  # read twice, both reads failing its checksum: damaged where stored
        raise _RejectedError(key, f"the file {str(err).removeprefix(bucket.uri(key)).strip()}") from err
    except S3qbbError as err:
        raise _RejectedError(key, f"download failed: {redact(str(err))}") from err
    if result.size > max_bytes:
        raise _RejectedError(
            key, f"the file is {result.size} bytes, more than the {max_bytes} allowed (max_file_bytes)"
        )
    if not result.body:
        raise _RejectedError(key, "the file is empty")
    return result.body


_REPAIR = (
    "Re-run the quantum, or rebuild its files from its outputs with `s3qbb ingest --recover` "
    "(which treats a quantum with a damaged file as recoverable)."
)


def _failure(bucket: S3Bucket, key: str, reason: str) -> IngestFailure:
    if "s3qbb ingest --recover" in reason:  # the reason says what to do already (a report's digest)
        return IngestFailure(bucket.uri(key), reason)
    return IngestFailure(bucket.uri(key), f"{reason.rstrip('.')}. {_REPAIR}")


def fetch_quantum(bucket: S3Bucket, files: QuantumFiles, *, max_file_bytes: int) -> FetchResult:
    """Download and validate a quantum's provenance, execution report and records file.

    Parameters
    ----------
    bucket : `~s3qbb.s3.objects.S3Bucket`
        The bucket.
    files : `QuantumFiles`
        The quantum's keys.
    max_file_bytes : `int`
        Largest file accepted.

    Returns
    -------
    result : `FetchResult`
        The bundle, or `None` and the failures, each naming the file at
        fault: no provenance file, or a records file without its report
        (an unfinished upload, nothing downloaded), a file that is
        empty, too large, not JSON, of a newer version, inconsistent, or that
        names another quantum; a records file that is not a readable SQLite
        records database, fails ``PRAGMA quick_check`` or disagrees with the
        provenance (`~s3qbb.registry.records_check.check_records_file`), or
        is missing beside a report. Any file failing keeps the whole quantum
        out, so that a later ingest can add it once the file is fixed or
        rebuilt by ``s3qbb ingest --recover``.
    """
    from .records_check import check_records_file

    keys = files.keys
    downloaded = 0
    provenance_key = keys.get("provenance")
    if provenance_key is None:
        present = next(iter(keys.values()))
        return FetchResult(
            None,
            [
                IngestFailure(
                    bucket.uri(present),
                    f"quantum {files.quantum_id} has no provenance file beside it: its upload did not "
                    "finish. Re-run the quantum, or record its outputs with `s3qbb ingest --recover`.",
                )
            ],
            0,
        )
    if "records" in keys and "report" not in keys:
        # s3qbb uploads the records file, the provenance, then the report: a records file without a
        # report is an upload cut short (daf_butler's provenance alone has neither).
        return FetchResult(
            None,
            [
                IngestFailure(
                    bucket.uri(provenance_key),
                    f"quantum {files.quantum_id} has its records file and provenance but no execution "
                    "report (.quantum.json, uploaded last) beside them: its upload did not finish. "
                    "Re-run the quantum, or record its outputs with `s3qbb ingest --recover`.",
                )
            ],
            0,
        )
    failures: list[IngestFailure] = []
    provenance: QuantumProvenanceData | None = None
    report: QuantumExecutionReport | None = None
    try:
        data = _download(bucket, provenance_key, max_file_bytes)
        downloaded += len(data)
        provenance = QuantumProvenanceData.from_json(data, source=bucket.uri(provenance_key))
    except _RejectedError as err:
        failures.append(_failure(bucket, err.args[0], err.args[1]))
    except Exception as err:  # A hostile file must not stop the ingest: report anything it raises.
        failures.append(_failure(bucket, provenance_key, redact(str(err))[:2000]))
    report_key = keys.get("report")
    if report_key is not None:
        try:
            data = _download(bucket, report_key, max_file_bytes)
            downloaded += len(data)
            report = QuantumExecutionReport.from_json(data, source=bucket.uri(report_key))
            if report.quantum_id != files.quantum_id:
                raise _RejectedError(
                    report_key,
                    f"the report describes quantum {report.quantum_id}, but its name says "
                    f"{files.quantum_id}; it was not written by s3qbb for this quantum",
                )
        except _RejectedError as err:
            failures.append(_failure(bucket, err.args[0], err.args[1]))
        except Exception as err:
            failures.append(_failure(bucket, report_key, redact(str(err))[:2000]))
    records_key = keys.get("records")
    if records_key is None and report_key is not None:
        failures.append(
            _failure(
                bucket, report_key, f"quantum {files.quantum_id} has no records file (.sqlite3) beside it"
            )
        )
    elif records_key is not None and provenance is not None:
        try:
            data = _download(bucket, records_key, max_file_bytes)
            downloaded += len(data)
            check_records_file(data, provenance)
        except _RejectedError as err:
            failures.append(_failure(bucket, err.args[0], err.args[1]))
        except Exception as err:
            failures.append(_failure(bucket, records_key, f"damaged records file: {redact(str(err))[:2000]}"))
    if failures or provenance is None:
        return FetchResult(None, failures, downloaded)
    return FetchResult(
        QuantumBundle(files.quantum_id, provenance, report, bucket.uri(provenance_key), files.files_tag),
        [],
        downloaded,
    )
