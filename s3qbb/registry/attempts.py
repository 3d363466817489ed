"""Which attempt of a quantum the registry keeps: the last one.

A quantum may run several times (a batch retry after a kill, a ``--rerun``),
and ``s3qbb ingest --recover`` may rebuild the files of an attempt that died.
Each ingested quantum remembers the attempt its rows come from as a sortable
text key (`attempt_key`); ingest replaces a quantum's rows only with those of
a later attempt, never an earlier one.

The key orders, in turn:

1. the attempt ID (``s3qbb.core.attempt``: milliseconds since the epoch at
   the attempt's start, then random digits), so attempts compare in start
   order. A report written by the attempt carries it (``attempt_id``); a
   ``recovered`` report carries the newest attempt ID found in the write
   tokens of the objects it adopted, or none when they carry no token;
2. a real attempt's own report before a recovery of that same attempt (the
   job was still running while recovery listed its outputs);
3. for recovered reports of the same attempt, the time of the recovery (a
   second ``--recover`` that found more outputs wins).

A quantum known without attempt ID (a report from an s3qbb release without
write tokens, or daf_butler's provenance alone) sorts before every attempt
that has one.
"""

from __future__ import annotations

__all__ = ["NO_ATTEMPT", "attempt_key"]

import datetime
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from ..provenance.report import QuantumExecutionReport

NO_ATTEMPT: Final = "0" * 28
"""Stands for an unknown attempt ID: sorts before every real one."""

_RECOVERED = "0"
_REAL = "1"


def attempt_key(report: QuantumExecutionReport | None) -> str:
    """Return the sortable key of the attempt a quantum's files describe.

    Parameters
    ----------
    report : `~s3qbb.provenance.report.QuantumExecutionReport`, optional
        The quantum's execution report; `None` if it left provenance only.

    Returns
    -------
    key : `str`
        ``<attempt id>.<1 for a real attempt, 0 for a recovery>.<recovery time>``,
        at most 52 characters; a larger key is a later attempt.

    Examples
    --------
    >>> import datetime, uuid
    >>> from s3qbb.provenance.report import QuantumExecutionReport
    >>> now = datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC)
    >>> def report(status, attempt_id):
    ...     return QuantumExecutionReport(
    ...         quantum_id=uuid.UUID(int=1), task_label="t", task_name="t", run="r", status=status,
    ...         started_at=now, ended_at=now, duration_s=0.0, host="h", pid=1, s3qbb_version="0",
    ...         python_version="3", attempt_id=attempt_id)
    >>> a, b = "0190a1b2c3d4" + "0" * 16, "0190a1b2c3d5" + "0" * 16
    >>> attempt_key(report("succeeded", b)) > attempt_key(report("recovered", b)) > attempt_key(
    ...     report("succeeded", a)) > attempt_key(None) > attempt_key(report("recovered", None))
    True
    """
    if report is None:
        return f"{NO_ATTEMPT}.{_REAL}."
    attempt = report.attempt_id or NO_ATTEMPT
    if report.status == "recovered":
        return (
            f"{attempt}.{_RECOVERED}.{report.ended_at.astimezone(datetime.UTC).strftime('%Y%m%dT%H%M%S%f')}"
        )
    return f"{attempt}.{_REAL}."
