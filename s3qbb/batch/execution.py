"""Run one quantum: build its butler, check its inputs, call the task, leave records and provenance behind.

This is what a batch job (an AWS Batch array job, a Kubernetes Job, an
HTCondor job) runs for its quantum, through ``s3qbb run-quantum`` or
`run_quantum` directly.
"""

from __future__ import annotations

__all__ = [
    "EXIT_INFRASTRUCTURE_FAILURE",
    "EXIT_SUCCESS",
    "EXIT_TASK_FAILURE",
    "EXIT_USAGE",
    "QuantumOutcome",
    "TaskExitError",
    "TaskFunction",
    "load_quantum",
    "load_task",
    "outcome_summary",
    "run_quantum",
]

import importlib
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, S3qbbError
from .exitcodes import ExitCode, error_chain, exit_code_for_error

if TYPE_CHECKING:
    from ..butler.quantum_backed import QuantumBackedButler
    from ..butler.uploads import FinishResult
    from ..core.attempt import WriteToken
    from ..core.dimensions import DimensionUniverse
    from ..core.quantum import Quantum
    from ..repo import RepoConfig
    from .signals import GracefulTermination

_LOG = logging.getLogger(__name__)

EXIT_SUCCESS = int(ExitCode.SUCCESS)
"""The task succeeded (or had already succeeded) and its records were uploaded."""
EXIT_TASK_FAILURE = int(ExitCode.TASK_FAILED)
"""The task raised, or predicted inputs are missing; the (failed) records and provenance were uploaded."""
EXIT_USAGE = int(ExitCode.USAGE)
"""Usage or configuration error: bad options, an unreadable configuration, a task that cannot be imported."""
EXIT_INFRASTRUCTURE_FAILURE = int(ExitCode.TEMPFAIL)
"""Transient infrastructure failure (``EX_TEMPFAIL``, 75): storage unreachable, denied, upload failed."""

TaskFunction = Callable[["QuantumBackedButler", "Quantum"], Any]
"""A task: called with the quantum's butler and the quantum."""


class TaskExitError(S3qbbError, RuntimeError):
    """The task called `sys.exit` (raised `SystemExit`): a task failure, whatever the exit status.

    The `SystemExit` is its ``__cause__``. A task ends by returning or by
    raising; `sys.exit` would end the job before its records are uploaded, so
    `run_quantum` records the quantum as ``failed`` instead.
    """


@dataclass(frozen=True)
class QuantumOutcome:
    """How a quantum ended."""

    exit_code: int
    """One of `s3qbb.batch.exitcodes.ExitCode`."""
    finish: FinishResult | None
    """What was uploaded (`None` if the butler could not be built)."""
    error: BaseException | None = None
    """The task's or the infrastructure's exception."""
    missing_inputs: tuple[str, ...] = ()
    """Predicted inputs found missing before the task ran."""
    unfinished: str = "not-started"
    """The status when ``finish`` is `None`: ``not-started``, or ``upload-failed`` when the task
    succeeded but its records, provenance and report could not be uploaded."""


def load_task(spec: str, app_dir: str | os.PathLike[str] | None = None) -> TaskFunction:
    """Import ``module:function`` and return the function.

    Parameters
    ----------
    spec : `str`
        ``package.module:function`` (``function`` may be dotted: ``module:Class.method``).
    app_dir : `str` or `os.PathLike`, optional
        Directory put first on `sys.path` before importing, as uvicorn's
        ``--app-dir`` does (``s3qbb run-quantum`` passes the current
        directory by default); `sys.path` is left alone if not given.

    Raises
    ------
    ConfigError
        If the module or function cannot be found or is not callable; the
        message says how to make the module importable.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"Task {spec!r} must look like 'package.module:function'.")
    where = "sys.path"
    if app_dir is not None:
        directory = str(Path(app_dir).resolve())
        where = f"{directory} (--app-dir) or sys.path"
        if directory not in sys.path:
            sys.path.insert(0, directory)
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name is not None and (module_name == err.name or module_name.startswith(f"{err.name}.")):
            top = module_name.partition(".")[0]
            raise ConfigError(
                f"Cannot load task {spec!r}: no module named {err.name!r} in {where}. "
                f"Run from the directory holding {top}.py (or the {top}/ package), pass --app-dir DIR, "
                f"add DIR to PYTHONPATH, or install the package (pip install -e .)."
            ) from err
        raise ConfigError(
            f"Cannot load task {spec!r}: importing {module_name!r} failed: {type(err).__name__}: {err}"
        ) from err
    except Exception as err:  # a module that fails on import is a setup failure, not a task failure
        raise ConfigError(
            f"Cannot load task {spec!r}: importing {module_name!r} failed: {type(err).__name__}: {err}"
        ) from err
    try:
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError as err:
        raise ConfigError(
            f"Cannot load task {spec!r}: module {module_name!r} ({getattr(obj, '__file__', '?')}) "
            f"has no attribute {attr!r}."
        ) from err
    if not callable(obj):
        raise ConfigError(f"Task {spec!r} is not callable.")
    return obj  # type: ignore[no-any-return]


def load_quantum(source: str | os.PathLike[str] | bytes, universe: DimensionUniverse) -> Quantum:
    """Read a quantum description (``SerializedQuantum`` JSON) from a file, an ``s3://`` URI or bytes.

    Raises
    ------
    ConfigError
        If the description cannot be read or is invalid.
    """
    from pydantic import ValidationError

    from ..core.wire import SerializedQuantum, quantum_from_simple

    where = "<bytes>"
    if isinstance(source, bytes):
        data = source
    else:
        where = os.fspath(source)
        if where.startswith("s3://"):
            from ..s3.config_files import read_s3_bytes

            data = read_s3_bytes(where)
        else:
            try:
                data = Path(where).read_bytes()
            except OSError as err:
                raise ConfigError(f"Cannot read quantum description {where}: {err}") from err
    try:
        simple = SerializedQuantum.model_validate_json(data)
        return quantum_from_simple(simple, universe)
    except (ValidationError, ValueError) as err:
        raise ConfigError(f"Quantum description {where} is invalid: {err}") from err


def run_quantum(
    config: RepoConfig | Mapping[str, Any] | str | os.PathLike[str],
    quantum: Quantum,
    task: TaskFunction,
    *,
    universe: DimensionUniverse | None = None,
    filename: str = ":memory:",
    require_inputs: bool = True,
    write_token: WriteToken | None = None,
    replace_success: bool = False,
    termination: GracefulTermination | None = None,
) -> QuantumOutcome:
    """Run one quantum end to end.

    Builds the `QuantumBackedButler`, checks the predicted inputs exist (one
    bulk existence call), calls ``task(butler, quantum)``, then uploads the
    records file, provenance and execution report beside the outputs, on
    success and on failure alike. `s3qbb.batch.job.run_job` adds what a batch
    job needs around it (the already-succeeded check, signals, logging context).

    Parameters
    ----------
    config : `RepoConfig`, mapping, `str` or `os.PathLike`
        Repository configuration or where to read it.
    quantum : `Quantum`
        The quantum.
    task : `TaskFunction`
        The task.
    universe : `DimensionUniverse`, optional
        Dimension universe; the configuration's by default.
    filename : `str`, optional
        SQLite file of the records (in memory by default).
    require_inputs : `bool`, optional
        Fail (exit code 1, task not called) when predicted inputs are missing.
    write_token : `~s3qbb.core.attempt.WriteToken`, optional
        This attempt's write token; a new one by default.
    replace_success : `bool`, optional
        Let this attempt's records replace those of an earlier success (a re-run on purpose).
    termination : `~s3qbb.batch.signals.GracefulTermination`, optional
        The signal handler of the job, told when the task is over so that a
        signal during the uploads does not interrupt them.

    Returns
    -------
    outcome : `QuantumOutcome`
        Exit code, uploaded files, error. A task error whose chain holds a
        storage failure gives `EXIT_INFRASTRUCTURE_FAILURE` (75), other task
        errors `EXIT_TASK_FAILURE` (1), a task calling `sys.exit` too (whatever
        its status: a `TaskExitError` is recorded); a `~s3qbb.batch.signals.JobInterrupted`
        gives 143 or 130 with status ``interrupted``.

    Raises
    ------
    KeyboardInterrupt
        A plain Ctrl-C (no `GracefulTermination` installed) is re-raised once
        the records are uploaded with status ``interrupted``.
    """
    from ..butler.quantum_backed import QuantumBackedButler
    from ..redaction import redact
    from ..repo import load_repo_config
    from .signals import JobInterrupted

    try:
        repo = load_repo_config(config)
        butler = QuantumBackedButler.initialize(
            repo,
            quantum,
            universe or repo.universe(),
            filename=filename,
            write_token=write_token,
            replace_success=replace_success,
        )
    except JobInterrupted as err:
        return QuantumOutcome(int(err.exit_code), None, err)
    except Exception as err:
        code = exit_code_for_error(err, in_task=False)
        _LOG.error("Cannot set up quantum %s: %s", quantum.id, redact(str(err)))
        return QuantumOutcome(int(code), None, err)
    try:
        existence = butler.stored_many(quantum.input_refs())
        _LOG.info("Checked %d predicted input(s) of quantum %s.", len(existence), quantum.id)
    except (Exception, KeyboardInterrupt) as err:
        return _stopped(butler, err, termination, in_task=False)
    missing = tuple(str(ref) for ref, ok in existence.items() if not ok)
    if missing and require_inputs:
        missing_error = S3qbbError(
            f"Quantum {quantum.id} ({quantum.taskLabel}): {len(missing)} predicted input(s) missing, "
            f"e.g. {missing[0]}; the task was not run. Run the quanta producing them first."
        )
        _LOG.error("%s", missing_error)
        finish = butler.finish(missing_error)
        return QuantumOutcome(_unrecorded(finish, EXIT_TASK_FAILURE), finish, missing_error, missing)
    _LOG.info("Running task %s of quantum %s.", quantum.taskLabel or quantum.taskName, quantum.id)
    try:
        task(butler, quantum)
        if termination is not None and termination.signum is not None:
            # The task swallowed the interrupt and returned: it cannot be trusted to be complete.
            raise JobInterrupted(termination.signum)
    except SystemExit as exit_:  # not an Exception: it would end the process before the uploads
        return _stopped(
            butler, _task_exit(quantum, exit_, termination), termination, in_task=True, missing=missing
        )
    except (Exception, KeyboardInterrupt) as err:
        return _stopped(butler, err, termination, in_task=True, missing=missing)
    if write_token is not None and write_token.guard is not None:
        try:
            write_token.guard.check_held()  # a paused attempt may have been taken over meanwhile
        except Exception as err:
            return _stopped(butler, err, termination, in_task=False, missing=missing)
    if termination is not None:
        termination.finishing()
    try:
        finish = butler.finish()
    except Exception as err:
        from ..s3.ownership import refused_by_foreign_object

        # Retryable, unless an object that no retry may replace is in the way (a human decides).
        code = ExitCode.TASK_FAILED if refused_by_foreign_object(err) else ExitCode.TEMPFAIL
        _LOG.error(
            "Quantum %s succeeded but its records could not be uploaded (exit %d): %s",
            quantum.id,
            code,
            redact(str(err)),
        )
        return QuantumOutcome(int(code), None, err, missing, unfinished="upload-failed")
    _LOG.info("Quantum %s succeeded; uploaded %s.", quantum.id, ", ".join(u.key_uri() for u in finish.uris))
    return QuantumOutcome(EXIT_SUCCESS, finish, None, missing)


def _task_exit(
    quantum: Quantum, exit_: SystemExit, termination: GracefulTermination | None
) -> TaskExitError | KeyboardInterrupt:
    """Return the error standing for a task's `sys.exit`: `TaskExitError`, or the interrupt it swallowed."""
    from .signals import JobInterrupted

    if termination is not None and termination.signum is not None:
        return JobInterrupted(termination.signum)  # the task caught the interrupt, then exited
    label = quantum.taskLabel or quantum.taskName
    error = TaskExitError(
        f"Task {label} of quantum {quantum.id} called sys.exit({exit_.code!r}); "
        "a task that exits is treated as a failure (status failed), whatever its exit status. "
        "End the task by returning, or by raising an exception, instead of calling sys.exit."
    )
    error.__cause__ = exit_
    return error


def _stopped(
    butler: QuantumBackedButler,
    err: BaseException,
    termination: GracefulTermination | None,
    *,
    in_task: bool,
    missing: tuple[str, ...] = (),
) -> QuantumOutcome:
    """Upload the records of a quantum stopped by ``err`` and return its outcome (see `run_quantum`)."""
    from ..redaction import redact
    from ..s3.ownership import AttemptActiveError
    from .signals import JobInterrupted

    if termination is not None:
        termination.finishing()
    if isinstance(err, KeyboardInterrupt):
        _LOG.warning("Quantum %s interrupted; uploading its records (status interrupted).", butler.quantum_id)
        finish = butler.finish(err)
        if not isinstance(err, JobInterrupted):
            raise err
        return QuantumOutcome(int(err.exit_code), finish, err, missing)
    code = exit_code_for_error(err, in_task=in_task) if in_task else ExitCode.TEMPFAIL
    if code == ExitCode.TEMPFAIL:
        _LOG.error(
            "Quantum %s stopped by an infrastructure failure (exit %d, retry): %s",
            butler.quantum_id,
            code,
            redact(f"{type(err).__name__}: {err}"),
        )
    else:
        _LOG.error("Task of quantum %s failed: %s", butler.quantum_id, redact(f"{type(err).__name__}: {err}"))
    if any(isinstance(item, AttemptActiveError) for item in error_chain(err)):
        # Another attempt of the quantum runs, or succeeded: its records and report are the ones that
        # count. This attempt's would only race with them; what it wrote a later attempt replaces.
        _LOG.warning(
            "Not uploading the records of quantum %s: another attempt of it runs or succeeded.",
            butler.quantum_id,
        )
        butler.close()
        return QuantumOutcome(int(code), None, err, missing)
    finish = butler.finish(err)
    return QuantumOutcome(_unrecorded(finish, int(code)), finish, err, missing)


def _unrecorded(finish: FinishResult, code: int) -> int:
    """Return the exit code of a stopped quantum: 75 if its failure could not be recorded, else ``code``.

    Exit 1 says the failure is recorded (a report with status ``failed``): a quantum whose upload
    failed has none, so a retry (which can record it) is due, unless an object no retry may replace
    is in the way (a human decides).
    """
    from ..s3.ownership import refused_by_foreign_object

    if finish.status != "upload-failed" or code != ExitCode.TASK_FAILED:
        return code
    foreign = finish.upload_error is not None and refused_by_foreign_object(finish.upload_error)
    return code if foreign else int(ExitCode.TEMPFAIL)


def outcome_summary(outcome: QuantumOutcome) -> dict[str, Any]:
    """Return a JSON-able summary of an outcome (for CLIs and logs), credentials redacted."""
    from ..redaction import redact

    error = f"{type(outcome.error).__name__}: {outcome.error}" if outcome.error else None
    return {
        "exit_code": outcome.exit_code,
        "status": outcome.finish.status if outcome.finish else outcome.unfinished,
        "uploaded": [u.key_uri() for u in outcome.finish.uris] if outcome.finish else [],
        "error": redact(error) if error is not None else None,
        "missing_inputs": list(outcome.missing_inputs),
    }
