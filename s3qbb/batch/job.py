"""The batch job of one quantum: what ``s3qbb run-quantum`` runs, whatever selected the quantum.

`run_job` wraps `s3qbb.batch.execution.run_quantum` with what a job run by
AWS Batch, Kubernetes or Slurm needs:

#. one request (a GET of ``<run>/_records/<quantum id>.quantum.json``) tells
   whether an earlier attempt already succeeded; then the job exits 0 at once
   without running the task (`JobOptions.rerun` forces a new attempt);
#. otherwise a new attempt with a fresh `~s3qbb.core.attempt.WriteToken`,
   holding a lease (`s3qbb.batch.attempts`) while it runs, so that another
   attempt of the quantum running at the same time never replaces its outputs;
#. SIGTERM and SIGINT stop the task and upload its records with status
   ``interrupted`` within the grace period (`s3qbb.batch.signals`);
#. every log line carries the quantum ID and task label (`s3qbb.batch.logs`);
#. the exit code says whether a retry can help (`s3qbb.batch.exitcodes`).
"""

from __future__ import annotations

__all__ = ["JobOptions", "JobResult", "previous_success", "run_job"]

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.attempt import WriteToken
from ..errors import ConfigError, DatasetIntegrityError, RecordsStoreError
from .execution import QuantumOutcome, TaskFunction, run_quantum
from .exitcodes import ExitCode, exit_code_for_error
from .logs import log_context
from .signals import GracefulTermination, JobInterrupted, grace_period

if TYPE_CHECKING:
    from ..core.dimensions import DimensionUniverse
    from ..core.quantum import Quantum
    from ..provenance.report import QuantumExecutionReport
    from ..repo import RepoConfig
    from .attempts import AttemptLease

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobOptions:
    """How `run_job` runs its quantum (the options of ``s3qbb run-quantum``)."""

    rerun: bool = False
    """Run the task even if an earlier attempt succeeded (its records are then replaced)."""
    records_file: str = ":memory:"
    """Local SQLite file of the records (in memory by default)."""
    require_inputs: bool = True
    """Fail (exit 1, task not run) when predicted inputs are missing."""
    grace_period: float | None = None
    """Seconds between SIGTERM/SIGINT and the forced exit; ``S3QBB_GRACE_PERIOD`` or 25 s by default."""
    handle_signals: bool = True
    """Install the SIGTERM/SIGINT handlers (only possible in the main thread)."""


@dataclass(frozen=True)
class JobResult:
    """How a job ended."""

    exit_code: ExitCode
    """What the process should exit with."""
    outcome: QuantumOutcome | None = None
    """What running the quantum did; `None` if it was not run (already succeeded, or interrupted first)."""
    previous: QuantumExecutionReport | None = None
    """The report of the earlier successful attempt, when the job found one and did not run the task."""
    attempt: WriteToken | None = None
    """This attempt's write token, if an attempt was started."""


def previous_success(repo: RepoConfig, quantum: Quantum) -> QuantumExecutionReport | None:
    """Return the report of an earlier successful attempt of ``quantum``, with one GET, or `None`.

    Parameters
    ----------
    repo : `RepoConfig`
        Repository configuration (its datastore holds the records).
    quantum : `Quantum`
        The quantum; its outputs name the run.

    Returns
    -------
    report : `QuantumExecutionReport` or `None`
        The report at ``<run>/_records/<quantum id>.quantum.json`` if it says
        ``succeeded``; `None` if there is none, it records another status, it
        is unreadable, or the quantum has no single output run.

    Raises
    ------
    s3qbb.errors.S3qbbError
        If the storage cannot be read (unreachable, denied, missing bucket).
    """
    from ..butler.setup import single_run
    from ..provenance.files import report_key
    from ..repo import build_datastore

    run = single_run(quantum.output_refs())
    if run is None:
        _LOG.info("Quantum %s has no single output run: not checking for an earlier success.", quantum.id)
        return None
    datastore = build_datastore(repo)
    try:
        if not datastore.capabilities.persistent_records or datastore.get_root() is None:
            return None
        data = datastore.read_sidecar(report_key(run, quantum.id))
    except DatasetIntegrityError as err:  # damaged where it is stored: it vouches for nothing
        _LOG.warning(
            "The report of an earlier attempt of quantum %s is unreadable (%s): running it.", quantum.id, err
        )
        return None
    finally:
        datastore.close()
    if data is None:  # a first attempt: the report models are not needed before the task runs
        return None
    from pydantic import ValidationError

    from ..provenance.report import QuantumExecutionReport

    try:
        report = QuantumExecutionReport.from_json(data)
    except (ValidationError, ValueError) as err:
        _LOG.warning(
            "The report of an earlier attempt of quantum %s is unreadable (%s): running it.", quantum.id, err
        )
        return None
    return report if report.status == "succeeded" else None


def run_job(
    repo: RepoConfig,
    quantum: Quantum,
    task: TaskFunction,
    options: JobOptions | None = None,
    *,
    universe: DimensionUniverse | None = None,
    termination: GracefulTermination | None = None,
) -> JobResult:
    """Run the batch job of one quantum and return its exit code (see the module documentation).

    Parameters
    ----------
    repo : `RepoConfig`
        Repository configuration.
    quantum : `Quantum`
        The quantum (from a description file or a quantum graph).
    task : `TaskFunction`
        The task.
    options : `JobOptions`, optional
        Re-run, records file, missing inputs, grace period, signal handling.
    universe : `DimensionUniverse`, optional
        Dimension universe (a quantum graph's); the configuration's by default.
    termination : `~s3qbb.batch.signals.GracefulTermination`, optional
        The signal handler of the job, already entered by the caller, who
        calls its ``done`` once the exit code is written (``s3qbb run-quantum``
        keeps it from its start until the process exits). By default
        `run_job` installs one for the job itself (``options.handle_signals``).

    Returns
    -------
    result : `JobResult`
        ``result.exit_code`` is what the process should exit with.
    """
    options = options or JobOptions()
    with log_context(quantum_id=quantum.id, task_label=quantum.taskLabel):
        if termination is not None:
            return _run_guarded(repo, quantum, task, options, termination, universe)
        if not options.handle_signals:
            return _run(repo, quantum, task, options, None, universe)
        with GracefulTermination(grace_period(options.grace_period)) as own:
            return _run_guarded(repo, quantum, task, options, own, universe)


def _run_guarded(
    repo: RepoConfig,
    quantum: Quantum,
    task: TaskFunction,
    options: JobOptions,
    termination: GracefulTermination,
    universe: DimensionUniverse | None,
) -> JobResult:
    try:
        return _run(repo, quantum, task, options, termination, universe)
    except JobInterrupted as err:  # between two steps: nothing left to upload
        _LOG.warning("Job of quantum %s interrupted (exit %d).", quantum.id, err.exit_code)
        return JobResult(err.exit_code)


def _run(
    repo: RepoConfig,
    quantum: Quantum,
    task: TaskFunction,
    options: JobOptions,
    termination: GracefulTermination | None,
    universe: DimensionUniverse | None,
) -> JobResult:
    from ..redaction import redact

    if not options.rerun:
        start = time.perf_counter()
        try:
            previous = previous_success(repo, quantum)
        except Exception as err:
            code = exit_code_for_error(err, in_task=False)
            # A configuration error is the job's set-up failing, not a question about earlier attempts.
            message = (
                "Cannot set up quantum %s (exit %d): %s"
                if isinstance(err, ConfigError)
                else "Cannot tell whether quantum %s already succeeded (exit %d): %s"
            )
            _LOG.error(message, quantum.id, code, redact(f"{type(err).__name__}: {err}"))
            return JobResult(code, QuantumOutcome(int(code), None, err))
        _LOG.info("Checked for an earlier success in %.1f ms.", 1e3 * (time.perf_counter() - start))
        if previous is not None:
            _LOG.warning(
                "Quantum %s already succeeded (attempt %s, ended %s on %s): not running it again "
                "(pass --rerun to force a new attempt).",
                quantum.id,
                previous.attempt_id or "?",
                previous.ended_at.isoformat(timespec="seconds"),
                previous.host,
            )
            return JobResult(ExitCode.SUCCESS, previous=previous)
    token = WriteToken.new(quantum.id)
    _LOG.info(
        "Starting attempt %s of quantum %s%s.", token.attempt_id, quantum.id, " (--rerun)" * options.rerun
    )
    try:
        lease = _start_lease(repo, quantum, token, replace_success=options.rerun)
    except Exception as err:
        code = exit_code_for_error(err, in_task=False)
        _LOG.error(
            "Cannot start attempt %s of quantum %s (exit %d): %s",
            token.attempt_id,
            quantum.id,
            code,
            redact(f"{type(err).__name__}: {err}"),
        )
        return JobResult(code, QuantumOutcome(int(code), None, err), attempt=token)
    ended = "failed"
    try:
        try:
            _set_aside_records_file(options.records_file, token)
        except RecordsStoreError as err:
            code = exit_code_for_error(err, in_task=False)
            _LOG.error(
                "Cannot start attempt %s of quantum %s (exit %d): %s", token.attempt_id, quantum.id, code, err
            )
            return JobResult(code, QuantumOutcome(int(code), None, err), attempt=token)
        outcome = run_quantum(
            repo,
            quantum,
            task,
            universe=universe,
            filename=options.records_file,
            require_inputs=options.require_inputs,
            write_token=lease.token if lease is not None else token,
            replace_success=options.rerun,
            termination=termination,
        )
        ended = _ended(outcome.exit_code)
    except KeyboardInterrupt:
        ended = "interrupted"
        raise
    finally:
        if lease is not None:
            lease.end(ended)
    return JobResult(ExitCode(outcome.exit_code), outcome, attempt=token)


_SQLITE_SIDE_FILES = ("-journal", "-wal", "-shm")


def _set_aside_records_file(filename: str, token: WriteToken) -> None:
    """Give this attempt an empty local records file: move one an earlier job left there aside.

    A file at ``filename`` when an attempt starts is not this attempt's: an
    attempt killed on this machine left it (its records name objects a retry
    replaces, and its page may be half written, with a hot journal beside it),
    or another quantum's job used the same name. Trusting it would make the
    retry refuse to write its outputs ("already stored") or upload another
    attempt's records. The file and its journal are renamed, never deleted
    (``<file>.before-<attempt id>``), and the folder is created if missing.
    """
    if filename == ":memory:":
        return
    target = Path(filename)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        found = [s for s in ("", *_SQLITE_SIDE_FILES) if os.path.lexists(f"{target}{s}")]
        if not found:
            return
        aside = target.with_name(f"{target.name}.before-{token.attempt_id}")
        for suffix in found:
            os.replace(f"{target}{suffix}", f"{aside}{suffix}")
    except OSError as err:
        raise RecordsStoreError(
            f"Cannot prepare the local records file {target} of attempt {token.attempt_id}: {err}. "
            "Check that its folder is writable, or run without --records-file (records in memory)."
        ) from err
    _LOG.warning(
        "Local records file %s was left by an earlier job (a killed attempt, or another quantum) and is "
        "not this attempt's: moved to %s; this attempt starts an empty one.",
        target,
        aside,
    )


def _ended(exit_code: int) -> str:
    """How an attempt that exited with ``exit_code`` ended, as its lease records it."""
    if exit_code == ExitCode.SUCCESS:
        return "succeeded"
    if exit_code in (ExitCode.INTERRUPTED_SIGINT, ExitCode.INTERRUPTED_SIGTERM):
        return "interrupted"
    return "failed"


def _start_lease(
    repo: RepoConfig, quantum: Quantum, token: WriteToken, *, replace_success: bool
) -> AttemptLease | None:
    """Start the lease of attempt ``token``, or return `None` where there is none to keep.

    A quantum without a single output run uploads no per-quantum files, and a
    datastore outside S3 has no other attempt to meet: neither has a lease.
    """
    from ..butler.setup import single_run
    from .attempts import AttemptLease
    from .upstream import repo_bucket

    run = single_run(quantum.output_refs())
    if run is None or repo.datastore.cls != "s3" or not repo.datastore.root:
        return None
    bucket, prefix = repo_bucket(repo)
    lease = AttemptLease(bucket, prefix, run, token, replace_success=replace_success)
    lease.start()
    return lease
