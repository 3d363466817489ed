"""Upload a quantum's records file, provenance and execution report beside its outputs."""

from __future__ import annotations

__all__ = ["FinishResult", "ReportGuard", "upload_quantum_files"]

import datetime
import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import DatasetExistsError, DatasetIntegrityError, RecordsUploadError, S3qbbError
from ..provenance.files import host_info, provenance_key, records_key, report_key
from .scratch import records_scratch

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..core.attempt import WriteToken
    from ..core.dataset_ref import DatasetRef
    from ..core.uri import ResourceURI
    from ..datastores.base import Datastore
    from ..provenance.model import QuantumProvenanceData

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinishResult:
    """What `QuantumBackedButler.finish` left behind."""

    status: str = "skipped"
    """``succeeded``, ``failed``, ``interrupted``; ``skipped`` when there was nothing to upload (no
    single output run, a datastore without files), ``upload-failed`` when the upload of a stopped
    quantum's files failed (`upload_error` says why)."""
    upload_error: Exception | None = field(default=None, compare=False, repr=False)
    """Why the upload failed (status ``upload-failed``)."""
    records_uri: ResourceURI | None = None
    provenance_uri: ResourceURI | None = None
    report_uri: ResourceURI | None = None

    @property
    def uris(self) -> list[ResourceURI]:
        """The URIs of the uploaded files."""
        return [u for u in (self.records_uri, self.provenance_uri, self.report_uri) if u is not None]


def upload_quantum_files(
    datastore: Datastore,
    provenance: QuantumProvenanceData,
    *,
    quantum_id: uuid.UUID,
    task_label: str | None,
    task_name: str | None,
    run: str | None,
    records_filename: str,
    started_at: float,
    error: BaseException | None,
    attempt_id: str | None = None,
    warnings_seen: list[str],
    refs: Iterable[DatasetRef] = (),
    replace_success: bool = False,
) -> FinishResult:
    """Upload ``<run>/_records/<quantum id>.{sqlite3,provenance.json,quantum.json}``, create-only.

    The files of an earlier attempt of the quantum that did not succeed are
    replaced; those of an earlier success only if ``replace_success`` is set.
    The earlier report is deleted before the first file is replaced, so that
    until this attempt's report lands the quantum reads as unfinished.

    Returns
    -------
    result : `FinishResult`
        The URIs written; status ``skipped`` if the datastore keeps no files or no run is known.

    Raises
    ------
    RecordsUploadError
        If a file could not be written; the message names the file and what to do.
    """
    from ..core.wire import dataset_ref_to_simple
    from ..provenance.model import ErrorInfo, QuantumDatasetCounts, QuantumExecutionReport

    # A KeyboardInterrupt (s3qbb.batch.signals.JobInterrupted on SIGTERM/SIGINT among them) stopped the task.
    status = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed" if error else "succeeded"
    if not datastore.capabilities.persistent_records or datastore.get_root() is None:
        return FinishResult(status="skipped")
    if run is None:
        _LOG.warning(
            "Quantum %s has no single output run; its records and provenance are not uploaded. "
            "Pass run= when building the butler.",
            quantum_id,
        )
        return FinishResult(status="skipped")
    ended = datetime.datetime.now(datetime.UTC)
    started = datetime.datetime.fromtimestamp(started_at, datetime.UTC)
    host = host_info()
    stats = datastore.stats.snapshot()
    hits, misses = stats["hits"], stats["misses"]
    cache_stats = getattr(datastore, "cache_stats", None)  # a cache tier counts its own hits
    if cache_stats is not None:
        hits, misses = cache_stats.hits, cache_stats.misses
    report = QuantumExecutionReport(
        quantum_id=quantum_id,
        task_label=task_label or "unknown",
        task_name=task_name or task_label or "unknown",
        run=run,
        status=status,
        started_at=started,
        ended_at=ended,
        duration_s=max(0.0, (ended - started).total_seconds()),
        host=host.host,
        pid=host.pid,
        s3qbb_version=host.s3qbb_version,
        python_version=host.python_version,
        datastores={datastore.name: str(datastore.get_root())},
        requests={k: v for k, v in stats["requests"].items() if v >= 0},
        retries=stats["retries"],
        bytes_read=stats["bytes_read"],
        bytes_written=stats["bytes_written"],
        cache_hits=hits,
        cache_misses=misses,
        error=ErrorInfo.from_exception(error) if error is not None else None,
        warnings=warnings_seen,
        datasets=QuantumDatasetCounts.from_provenance(provenance),
        refs=[dataset_ref_to_simple(ref) for ref in refs],
        attempt_id=attempt_id,
    )
    files: list[tuple[str, bytes | Path]] = []
    with records_scratch() as tmp:
        db = datastore.export_records_file(
            tmp / "records.sqlite3" if records_filename == ":memory:" else Path(records_filename)
        )
        if db is not None:
            files.append((records_key(run, quantum_id), db))
        files.append((provenance_key(run, quantum_id), provenance.to_json()))
        files.append((report_key(run, quantum_id), report.to_json()))
        uris: list[ResourceURI | None] = []
        replace = False
        for path, content in files:
            data = content.read_bytes() if isinstance(content, Path) else content
            try:
                try:
                    uri = datastore.put_sidecar(path, data, replace_earlier=replace)
                except DatasetExistsError:
                    if replace or not _replaceable(
                        datastore, report_key(run, quantum_id), attempt_id, replace_success
                    ):
                        raise
                    # An earlier attempt of this quantum failed, was interrupted, died before its
                    # report, or was re-run on purpose (``--rerun``): this attempt's files replace its
                    # files, and only files of an attempt of this quantum (by their write token).
                    _LOG.warning("Replacing the records of an earlier attempt of quantum %s.", quantum_id)
                    replace = True
                    _withdraw_report(datastore, report_key(run, quantum_id))
                    uri = datastore.put_sidecar(path, data, replace_earlier=True)
                if uri is None:
                    _LOG.warning(
                        "Datastore %s keeps no files; records of quantum %s not uploaded.",
                        datastore,
                        quantum_id,
                    )
                    return FinishResult(status="skipped")
                uris.append(uri)
            except S3qbbError as err:
                from ..s3.ownership import refused_by_foreign_object

                advice = (
                    "That object was not written by s3qbb (it carries no write token), and no retry "
                    "replaces it: find out what wrote it, delete it, then run the quantum again."
                    if refused_by_foreign_object(err)
                    else "The outputs already written are intact, and no report says the quantum "
                    "finished: run the quantum again (exit code 75 lets a batch system retry it), or "
                    "record its outputs with `s3qbb ingest --recover`."
                )
                raise RecordsUploadError(
                    f"Uploading {str(datastore.get_root()).rstrip('/')}/{path} of quantum {quantum_id} "
                    f"(status {status}) failed: {str(err).rstrip('.')}. {advice}"
                ) from err
    by_name = dict(zip((p for p, _ in files), uris, strict=True))
    return FinishResult(
        status=status,
        records_uri=by_name.get(records_key(run, quantum_id)),
        provenance_uri=by_name.get(provenance_key(run, quantum_id)),
        report_uri=by_name.get(report_key(run, quantum_id)),
    )


def _replaceable(
    datastore: Datastore, report_path: str, attempt_id: str | None, replace_success: bool
) -> bool:
    """Tell whether this attempt's files may replace those already under the quantum's names."""
    from pydantic import ValidationError

    from ..provenance.model import QuantumExecutionReport

    try:
        data = datastore.read_sidecar(report_path)
    except DatasetIntegrityError:
        return True  # damaged where it is stored (both reads fail its checksum): it vouches for nothing
    if data is None:
        return True  # the earlier attempt died between its uploads
    try:
        earlier = QuantumExecutionReport.from_json(data)
    except (ValidationError, S3qbbError, ValueError):
        return True  # an unreadable report cannot vouch for a success
    if earlier.status != "succeeded":
        return True
    # A success is replaced only by a later attempt asked for on purpose (``run-quantum --rerun``):
    # attempt IDs sort in start order, and the last attempt wins, as in the registry.
    return replace_success and attempt_id is not None and (earlier.attempt_id or "") < attempt_id


def _withdraw_report(datastore: Datastore, report_path: str) -> None:
    """Delete the report of the earlier attempt whose files this attempt is about to replace.

    Until this attempt's report lands, the quantum then reads as unfinished,
    never as the earlier attempt's outcome over this attempt's records. Only a
    readable report of the writer's own quantum is deleted (one GET, one DELETE).
    """
    from pydantic import ValidationError

    from ..provenance.model import QuantumExecutionReport

    try:
        data = datastore.read_sidecar(report_path)
    except DatasetIntegrityError:
        return  # damaged: it vouches for nothing, and ingest names it
    if data is None:
        return
    try:
        earlier = QuantumExecutionReport.from_json(data)
    except (ValidationError, S3qbbError, ValueError):
        return  # unreadable: likewise
    if earlier.quantum_id == datastore.write_token.quantum_id:
        datastore.delete_sidecar(report_path)


class ReportGuard:
    """The guard of an attempt that keeps no lease (a butler used outside ``s3qbb run-quantum``).

    Another attempt's object may be replaced unless the quantum's report says
    it succeeded (one GET of the report, only when two attempts meet); then
    only an attempt re-running the quantum on purpose (``replace_success``)
    replaces it, after withdrawing that report (one DELETE), so that a re-run
    that dies half-way leaves a quantum that reads as incomplete, not as a
    success whose outputs no longer match its records. Attempts with a lease
    (`s3qbb.batch.attempts.AttemptLease`) are guarded by it instead, which
    also keeps a running attempt's outputs.

    Parameters
    ----------
    datastore : `~s3qbb.datastores.base.Datastore`
        Where the quantum's report is.
    run : `str`
        Output run of the quantum.
    replace_success : `bool`
        Whether this attempt may replace what a successful one left.
    """

    def __init__(self, datastore: Datastore, run: str, replace_success: bool) -> None:
        self._datastore = datastore
        self._run = run
        self._replace_success = replace_success
        self._withdrawn = False

    def check_replace(self, mine: WriteToken, other: WriteToken, uri: str) -> None:
        """Raise `~s3qbb.s3.ownership.AttemptActiveError` if the quantum already succeeded."""
        from ..s3.ownership import AttemptActiveError

        report = report_key(self._run, mine.quantum_id)
        if self._withdrawn or _replaceable(self._datastore, report, None, False):
            return  # no readable report says the quantum succeeded
        where = f"{self._datastore.get_root()}/{report}"
        if self._replace_success:
            _LOG.warning(
                "Re-running quantum %s on purpose: withdrawing its report %s before replacing the outputs of "
                "its successful attempt (should this attempt not finish, the quantum reads as incomplete).",
                mine.quantum_id,
                where,
            )
            self._datastore.delete_sidecar(report)
            self._withdrawn = True
            return
        reason = (
            f"written by attempt {other.attempt_id} of quantum {other.quantum_id}, and the quantum's report "
            f"{where} says it succeeded; the quantum is done"
        )
        raise AttemptActiveError(
            f"{uri} already exists ({reason}); it was left untouched. This attempt ({mine.attempt_id}) "
            "stops: use the outputs of the successful attempt, or re-run the quantum on purpose "
            "(`run-quantum --rerun`, or a butler made with replace_success=True).",
            reason=reason,
        )

    def check_held(self) -> None:
        """Nothing to check: without a lease, no other attempt can know this one runs."""
