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
    "QuantumOutcome",
    "TaskFunction",
    "load_quantum",
    "load_task",
    "outcome_summary",
    "run_quantum",
]

import importlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, S3qbbError

if TYPE_CHECKING:
    from ..butler.quantum_backed import QuantumBackedButler
    from ..butler.uploads import FinishResult
    from ..core.dimensions import DimensionUniverse
    from ..core.quantum import Quantum
    from ..repo import RepoConfig

_LOG = logging.getLogger(__name__)

EXIT_SUCCESS = 0
"""The task succeeded and its records were uploaded."""
EXIT_TASK_FAILURE = 1
"""The task raised; its (failed) records and provenance were uploaded."""
EXIT_INFRASTRUCTURE_FAILURE = 2
"""s3qbb could not run the task or record its outcome (configuration, storage, missing inputs)."""

TaskFunction = Callable[["QuantumBackedButler", "Quantum"], Any]
"""A task: called with the quantum's butler and the quantum."""


@dataclass(frozen=True)
class QuantumOutcome:
    """How a quantum ended."""

    exit_code: int
    """`EXIT_SUCCESS`, `EXIT_TASK_FAILURE` or `EXIT_INFRASTRUCTURE_FAILURE`."""
    finish: FinishResult | None
    """What was uploaded (`None` if the butler could not be built)."""
    error: BaseException | None = None
    """The task's or the infrastructure's exception."""
    missing_inputs: tuple[str, ...] = ()
    """Predicted inputs found missing before the task ran."""


def load_task(spec: str) -> TaskFunction:
    """Import ``module:function`` and return the function.

    Raises
    ------
    ConfigError
        If the module or function cannot be found or is not callable.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"Task {spec!r} must look like 'package.module:function'.")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except Exception as err:  # a module that fails on import is a setup failure, not a task failure
        raise ConfigError(f"Cannot load task {spec!r}: {type(err).__name__}: {err}") from err
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
) -> QuantumOutcome:
    """Run one quantum end to end.

    Builds the `QuantumBackedButler`, checks the predicted inputs exist (one
    bulk existence call), calls ``task(butler, quantum)``, then uploads the
    records file, provenance and execution report beside the outputs, on
    success and on failure alike.

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
        Fail (infrastructure failure, task not called) when predicted inputs are missing.

    Returns
    -------
    outcome : `QuantumOutcome`
        Exit code, uploaded files, error.
    """
    from ..butler.quantum_backed import QuantumBackedButler
    from ..provenance.files import redact
    from ..repo import load_repo_config

    try:
        repo = load_repo_config(config)
        butler = QuantumBackedButler.initialize(repo, quantum, universe or repo.universe(), filename=filename)
    except Exception as err:
        _LOG.error("Cannot set up quantum %s: %s", quantum.id, redact(str(err)))
        return QuantumOutcome(EXIT_INFRASTRUCTURE_FAILURE, None, err)
    try:
        existence = butler.stored_many(quantum.input_refs())
    except Exception as err:
        finish = butler.finish(err)
        return QuantumOutcome(EXIT_INFRASTRUCTURE_FAILURE, finish, err)
    missing = tuple(str(ref) for ref, ok in existence.items() if not ok)
    if missing and require_inputs:
        missing_error = S3qbbError(
            f"Quantum {quantum.id} ({quantum.taskLabel}): {len(missing)} predicted input(s) missing, "
            f"e.g. {missing[0]}; the task was not run."
        )
        finish = butler.finish(missing_error)
        return QuantumOutcome(EXIT_INFRASTRUCTURE_FAILURE, finish, missing_error, missing)
    try:
        task(butler, quantum)
    except Exception as err:
        _LOG.error("Task of quantum %s failed: %s", quantum.id, redact(str(err)))
        try:
            finish = butler.finish(err)
        except Exception as upload_err:  # finish() never raises when given an error; be safe anyway
            return QuantumOutcome(EXIT_INFRASTRUCTURE_FAILURE, None, upload_err, missing)
        return QuantumOutcome(EXIT_TASK_FAILURE, finish, err, missing)
    try:
        finish = butler.finish()
    except Exception as err:
        _LOG.error(
            "Quantum %s succeeded but its records could not be uploaded: %s", quantum.id, redact(str(err))
        )
        return QuantumOutcome(EXIT_INFRASTRUCTURE_FAILURE, None, err, missing)
    return QuantumOutcome(EXIT_SUCCESS, finish, None, missing)


def outcome_summary(outcome: QuantumOutcome) -> dict[str, Any]:
    """Return a JSON-able summary of an outcome (for CLIs and logs), credentials redacted."""
    from ..provenance.files import redact

    error = f"{type(outcome.error).__name__}: {outcome.error}" if outcome.error else None
    return {
        "exit_code": outcome.exit_code,
        "status": outcome.finish.status if outcome.finish else "not-started",
        "uploaded": [str(u) for u in outcome.finish.uris] if outcome.finish else [],
        "error": redact(error) if error is not None else None,
        "missing_inputs": list(outcome.missing_inputs),
    }
