"""Exit codes of a batch job, and which error maps to which.

A batch system decides from the exit code alone whether to retry a job, so
the codes say what a retry can fix:

====  ===============================  ======================================================
Code  Name                             Meaning (retry?)
====  ===============================  ======================================================
0     `ExitCode.SUCCESS`               succeeded, or had already succeeded (no)
1     `ExitCode.TASK_FAILED`           the quantum failed: the task raised, or its inputs are
                                       missing; records uploaded with status ``failed`` (no)
2     `ExitCode.USAGE`                 usage or configuration error, click's code (no)
75    `ExitCode.TEMPFAIL`              transient infrastructure failure (``EX_TEMPFAIL``):
                                       storage unreachable, throttled, denied, a missing
                                       bucket, a failed TLS handshake, an upload that
                                       failed, an input replaced by a --rerun (yes)
130   `ExitCode.INTERRUPTED_SIGINT`    stopped by SIGINT (Ctrl-C); records uploaded with status
                                       ``interrupted`` (yes)
143   `ExitCode.INTERRUPTED_SIGTERM`   stopped by SIGTERM (what Kubernetes and ECS send before
                                       killing); status ``interrupted`` (yes)
====  ===============================  ======================================================

A storage error raised through the butler *inside* the task is an
infrastructure failure (75), not a task failure: `exit_code_for_error`
walks the exception's chain (``__cause__``, ``__context__``, exception
groups) looking for one.
"""

from __future__ import annotations

__all__ = [
    "EXIT_CODES",
    "ExitCode",
    "ExitCodeInfo",
    "error_chain",
    "exit_code_for_error",
    "exit_code_for_signal",
    "infrastructure_cause",
    "run_exit_code",
]

import enum
import signal
import sys
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import (
    AccessDeniedError,
    BucketNotFoundError,
    CredentialsError,
    DatasetReplacedError,
    RecordsStoreError,
    RecordsUploadError,
    RegistryConnectionError,
    TLSError,
    TransientStorageError,
)
from ..s3.ownership import AttemptActiveError
from .upstream import UpstreamFailedError, UpstreamNotDoneError


class ExitCode(enum.IntEnum):
    """The exit codes of ``s3qbb run-quantum`` (see the module documentation)."""

    SUCCESS = 0
    TASK_FAILED = 1
    USAGE = 2
    TEMPFAIL = 75
    INTERRUPTED_SIGINT = 128 + signal.SIGINT
    INTERRUPTED_SIGTERM = 128 + signal.SIGTERM


@dataclass(frozen=True)
class ExitCodeInfo:
    """One row of the exit code table."""

    code: ExitCode
    meaning: str
    retry: bool
    """Whether a retry of the same job can succeed."""


EXIT_CODES: tuple[ExitCodeInfo, ...] = (
    ExitCodeInfo(ExitCode.SUCCESS, "succeeded, or had already succeeded", retry=False),
    ExitCodeInfo(
        ExitCode.TASK_FAILED,
        "the task raised, or predicted inputs are missing; records uploaded with status failed",
        retry=False,
    ),
    ExitCodeInfo(
        ExitCode.USAGE, "usage or configuration error (bad option, task not importable)", retry=False
    ),
    ExitCodeInfo(
        ExitCode.TEMPFAIL,
        "transient infrastructure failure: storage unreachable, throttled, denied, missing bucket, "
        "TLS handshake failed, upload failed, an input replaced by a --rerun of its producer",
        retry=True,
    ),
    ExitCodeInfo(ExitCode.INTERRUPTED_SIGINT, "interrupted by SIGINT; status interrupted", retry=True),
    ExitCodeInfo(ExitCode.INTERRUPTED_SIGTERM, "interrupted by SIGTERM; status interrupted", retry=True),
)
"""Every exit code, what it means and whether a retry can help (what docs/batch.rst shows)."""
_RETRYABLE_CODES = frozenset(int(info.code) for info in EXIT_CODES if info.retry)

_INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    TransientStorageError,  # retries ran out: unreachable, reset, throttled, 5xx
    BucketNotFoundError,
    AccessDeniedError,
    CredentialsError,
    TLSError,  # certificate not trusted, wrong scheme: fixed outside the job (like denied credentials)
    RecordsUploadError,
    RecordsStoreError,  # the local records database (disk full, unreadable)
    RegistryConnectionError,
    ConnectionError,  # a task's own network I/O (refused, reset, aborted)
    UpstreamNotDoneError,  # a producing quantum has not finished yet: a later attempt may find it
    AttemptActiveError,  # another attempt of the quantum runs (or succeeded): a retry finds it ended
    DatasetReplacedError,  # an input replaced by another attempt (--rerun): a retry reads its new records
)


def error_chain(exc: BaseException) -> list[BaseException]:
    """Return ``exc`` and every exception it was raised from or during (exception groups too)."""
    return _chain(exc)


def _chain(exc: BaseException) -> list[BaseException]:
    """Return ``exc`` and every exception it was raised from or during, without cycles."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo:
        current = todo.pop()
        if any(current is s for s in seen):
            continue
        seen.append(current)
        if isinstance(current, BaseExceptionGroup):
            todo.extend(current.exceptions)
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                todo.append(linked)
    return seen


def _is_botocore_infrastructure(exc: BaseException) -> bool:
    """Tell whether ``exc`` is a raw botocore/urllib3 failure to reach the service (a task using boto3)."""
    if "botocore" not in sys.modules:  # never import boto3 just to classify
        return False
    import botocore.exceptions

    from ..s3.errors import is_transient

    return isinstance(exc, botocore.exceptions.NoCredentialsError) or is_transient(exc)


def infrastructure_cause(exc: BaseException) -> BaseException | None:
    """Return the infrastructure failure in an exception's chain, if there is one.

    Parameters
    ----------
    exc : `BaseException`
        An error raised by a task or by s3qbb.

    Returns
    -------
    cause : `BaseException` or `None`
        The first storage, credentials, upload or connection error found in
        ``exc``, its ``__cause__``/``__context__`` chain and exception groups;
        `None` if the failure is the task's own.
    """
    for item in _chain(exc):
        if isinstance(item, _INFRASTRUCTURE_ERRORS) or _is_botocore_infrastructure(item):
            return item
    return None


def exit_code_for_error(exc: BaseException, *, in_task: bool) -> ExitCode:
    """Return the exit code of a job that ended with an error.

    Parameters
    ----------
    exc : `BaseException`
        The error.
    in_task : `bool`
        Whether the task raised it (else s3qbb did, setting the job up).

    Returns
    -------
    code : `ExitCode`
        `ExitCode.TASK_FAILED` if a write was refused by an object that is
        not s3qbb's (no write token: a retry would only be refused again);
        else `ExitCode.TEMPFAIL` if an infrastructure failure is in its chain
        (see `infrastructure_cause`); else `ExitCode.TASK_FAILED` for a
        task's error and `ExitCode.USAGE` for a setup error (configuration,
        task import, invalid quantum description).
    """
    from ..s3.ownership import refused_by_foreign_object

    if refused_by_foreign_object(exc):
        return ExitCode.TASK_FAILED  # an object no s3qbb attempt of this quantum wrote: a human decides
    if infrastructure_cause(exc) is not None:
        return ExitCode.TEMPFAIL
    if any(isinstance(item, UpstreamFailedError) for item in _chain(exc)):
        return ExitCode.TASK_FAILED  # this quantum cannot run (retrying will not help); the others go on
    return ExitCode.TASK_FAILED if in_task else ExitCode.USAGE


def exit_code_for_signal(signum: int) -> ExitCode:
    """Return the exit code of a job stopped by a signal: 130 for SIGINT, 143 for SIGTERM.

    Parameters
    ----------
    signum : `int`
        The signal number (``signal.SIGINT`` or ``signal.SIGTERM``).

    Returns
    -------
    code : `ExitCode`
        ``128 + signum``, the shell's convention.

    Raises
    ------
    ValueError
        If ``signum`` is neither SIGINT nor SIGTERM.
    """
    return ExitCode(128 + signum)


def run_exit_code(failures: Iterable[int | None], *, interrupted_by: int | None = None) -> int:
    """Return the exit code of ``s3qbb run`` (either executor) from how its quanta ended.

    The one rule both executors follow: quanta that were not run because a
    quantum producing their inputs failed are no failure of their own, so a
    run whose only failures are retryable exits 75 (run again).

    Parameters
    ----------
    failures : iterable of `int` or `None`
        The exit code of each quantum that did not succeed; `None` for one
        that was not run (upstream failed, or the runner stopped first).
    interrupted_by : `int`, optional
        The signal that stopped the runner, if one did.

    Returns
    -------
    code : `int`
        ``128 + interrupted_by`` if the runner was stopped (143 SIGTERM, 130
        SIGINT); else 0 if every quantum succeeded, `ExitCode.TEMPFAIL` (75)
        if every quantum that ran and failed can succeed on a retry (75, 130,
        143: see `EXIT_CODES`), else `ExitCode.TASK_FAILED` (1).
    """
    if interrupted_by is not None:
        return 128 + interrupted_by
    codes = set(failures)
    if not codes:
        return int(ExitCode.SUCCESS)
    ran = codes - {None}
    if ran and ran <= _RETRYABLE_CODES:
        return int(ExitCode.TEMPFAIL)
    return int(ExitCode.TASK_FAILED)
