"""Graceful termination of a batch job on SIGTERM and SIGINT.

Kubernetes and ECS send SIGTERM, wait a grace period (30 s by default), then
send SIGKILL; Ctrl-C sends SIGINT. `GracefulTermination` turns the first
signal into a `JobInterrupted` raised in the main thread, so the task stops
where it is and the job uploads its records, provenance and report with status
``interrupted``. A watchdog ends the process with the signal's exit code
(143 or 130) when the grace period runs out, uploads done or not, and a second
signal ends it at once. Once the job's exit code is decided (`GracefulTermination.done`),
a signal no longer changes it: it is logged and the process exits with that code.

`JobInterrupted` derives from `KeyboardInterrupt`, not from `Exception`: a
task's ``except Exception:`` does not swallow it, while ``try/finally`` blocks
and context managers still run.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_GRACE_PERIOD",
    "GRACE_PERIOD_ENV",
    "GracefulTermination",
    "JobInterrupted",
    "grace_period",
]

import atexit
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from types import FrameType, TracebackType
from typing import Any, Literal

from .exitcodes import ExitCode, exit_code_for_signal

_LOG = logging.getLogger(__name__)

DEFAULT_GRACE_PERIOD = 25.0
"""Seconds between the first signal and the forced exit: below the 30 s Kubernetes and ECS wait by default."""
GRACE_PERIOD_ENV = "S3QBB_GRACE_PERIOD"
"""Environment variable setting the grace period in seconds (``--grace-period`` takes precedence)."""

_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_ignore_at_exit_registered = False


def _ignore_signals_at_exit() -> None:
    """Ignore SIGTERM and SIGINT while the interpreter shuts down (the exit code is decided by then).

    The interpreter puts the default action back once its own signal handling
    ends, so a signal in the last moments of its shutdown would otherwise kill
    a process that has already decided and reported its exit code. An ignored
    signal stays ignored through the shutdown.
    """
    if threading.current_thread() is threading.main_thread():
        for signum in _SIGNALS:
            signal.signal(signum, signal.SIG_IGN)


class JobInterrupted(KeyboardInterrupt):
    """The job was told to stop (SIGTERM or SIGINT) while its quantum was running.

    Raised in the main thread by `GracefulTermination`. It is a
    `KeyboardInterrupt`, so ``except Exception`` in task code lets it through.

    Parameters
    ----------
    signum : `int`
        The signal received.
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.exit_code: ExitCode = exit_code_for_signal(signum)
        super().__init__(f"the job received {signal.Signals(signum).name}; the quantum was interrupted")


def grace_period(value: float | None = None, environ: Mapping[str, str] | None = None) -> float:
    """Return the grace period: ``value`` if given, else `GRACE_PERIOD_ENV`, else `DEFAULT_GRACE_PERIOD`.

    Raises
    ------
    ValueError
        If the environment variable is not a non-negative number.
    """
    if value is not None:
        return value
    raw = (os.environ if environ is None else environ).get(GRACE_PERIOD_ENV, "")
    if raw == "":
        return DEFAULT_GRACE_PERIOD
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if seconds < 0:
        raise ValueError(f"{GRACE_PERIOD_ENV}={raw!r} must be a number of seconds (0 or more).")
    return seconds


def _flush_logs() -> None:
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):  # nothing more can be done on the way out
            handler.flush()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


class GracefulTermination:
    """Handle SIGTERM and SIGINT for the duration of a ``with`` block (main thread only).

    Parameters
    ----------
    grace : `float`
        Seconds after the first signal before the process exits, uploads done or not.
    exit : `~collections.abc.Callable` [[`int`], `None`], optional
        How the process ends when the grace period runs out or a second signal
        arrives; `os._exit` by default (no cleanup: the job is over).
    until_exit : `bool`, optional
        Keep the handlers installed after the ``with`` block, until the
        process exits, instead of putting back the previous ones: for a
        process that is the job (``s3qbb run-quantum``), so that a signal
        while it writes its result and exits is logged and leaves its exit
        code alone. SIGTERM and SIGINT are ignored once the interpreter shuts
        down. Leave it `False` in a process that goes on after the job.

    Notes
    -----
    While the quantum runs (``phase == "running"``), the first signal raises
    `JobInterrupted` in the main thread. Once the task is over and the job is
    uploading (``phase == "finishing"``), the first signal only starts the
    grace period: the uploads go on. Once the job's exit code is decided
    (``phase == "done"``, see `done`), a signal is logged and the process
    exits with that code (within the grace period; at once on a second
    signal). Outside the main thread no handler is installed and the block
    runs unprotected.
    """

    def __init__(
        self,
        grace: float = DEFAULT_GRACE_PERIOD,
        *,
        exit: Callable[[int], Any] = os._exit,
        until_exit: bool = False,
    ) -> None:
        self.grace = grace
        self.phase: Literal["running", "finishing", "done"] = "running"
        self.signum: int | None = None
        self.result: int | None = None
        """The job's exit code, once `done` was called."""
        self.until_exit = until_exit
        self._exit = exit
        self._context: tuple[str | None, str | None] = (None, None)
        self._previous: dict[int, Any] = {}
        self._timer: threading.Timer | None = None
        self._received_at: float | None = None

    @property
    def exit_code(self) -> ExitCode | None:
        """The exit code of the signal received, if one was."""
        return None if self.signum is None else exit_code_for_signal(self.signum)

    def __enter__(self) -> GracefulTermination:
        global _ignore_at_exit_registered
        if threading.current_thread() is threading.main_thread():
            for signum in _SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
            if self.until_exit and not _ignore_at_exit_registered:
                atexit.register(_ignore_signals_at_exit)
                _ignore_at_exit_registered = True
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.until_exit and self._previous:
            self.phase = "done"  # the handlers stay until the process exits; the grace period still runs
            return
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def finishing(self) -> None:
        """Enter the upload phase: a first signal no longer interrupts, it only starts the grace period."""
        self.phase = "finishing"

    def done(self, exit_code: int) -> None:
        """Record the job's exit code: from now on a signal is logged and the process exits with it.

        The log lines of later signals carry the `~s3qbb.batch.logs.log_context` current here.

        Parameters
        ----------
        exit_code : `int`
            What the process exits with (`s3qbb.batch.exitcodes.ExitCode`).
        """
        from .logs import current_context

        self.result = int(exit_code)
        context = current_context()
        self._context = (context["quantum_id"], context["task_label"])
        self.phase = "done"

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.phase == "done":
            from .logs import log_context

            with log_context(quantum_id=self._context[0], task_label=self._context[1]):
                self._handle_late(signum)
            return
        name = signal.Signals(signum).name
        if self.signum is not None:
            _LOG.error("Second signal (%s) while stopping: exiting now with %d.", name, self.exit_code)
            _flush_logs()
            self._exit(int(self.exit_code or exit_code_for_signal(signum)))
            return
        self.signum = signum
        self._received_at = time.monotonic()
        self._start_timer()
        if self.phase == "running":
            _LOG.warning(
                "Received %s: stopping the task, uploading its records (status interrupted); "
                "exiting within %.0f s.",
                name,
                self.grace,
            )
            raise JobInterrupted(signum)
        _LOG.warning("Received %s while uploading the records: finishing within %.0f s.", name, self.grace)

    def _handle_late(self, signum: int) -> None:
        """Handle a signal once the job's exit code is decided: log it; exit with that code if it insists."""
        name = signal.Signals(signum).name
        code = self.result if self.result is not None else int(self.exit_code or exit_code_for_signal(signum))
        if self._timer is not None and self.signum is not None:
            _LOG.error(
                "Second signal (%s) after the job ended: exiting now with its exit code %d.", name, code
            )
            _flush_logs()
            self._exit(code)
            return
        if self.signum is None:
            self.signum = signum
        _LOG.warning(
            "Received %s after the job ended: it changes nothing; exiting with its exit code %d.", name, code
        )
        self._start_timer()

    def _start_timer(self) -> None:
        self._timer = threading.Timer(self.grace, self._expire)
        self._timer.daemon = True
        with contextlib.suppress(RuntimeError):  # no new thread once the interpreter shuts down
            self._timer.start()

    def _expire(self) -> None:
        if self.phase == "done" and self.result is not None:
            _LOG.error("Grace period of %.0f s over while exiting: exiting with %d.", self.grace, self.result)
            _flush_logs()
            self._exit(self.result)
            return
        _LOG.error(
            "Grace period of %.0f s over before the records were uploaded: exiting with %d; "
            "a retry of this job starts a new attempt.",
            self.grace,
            self.exit_code,
        )
        _flush_logs()
        self._exit(int(self.exit_code or ExitCode.INTERRUPTED_SIGTERM))
