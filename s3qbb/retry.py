"""The single retry layer of s3qbb.

A `RetryPolicy` retries an operation on transient errors with jittered
exponential backoff, bounded both in attempts and in total time. Which errors
are transient is decided by an injected classifier (the S3 one is
`s3qbb.s3.errors.is_transient`), so this module knows nothing about botocore.
Sleep, clock and random source are injectable too, so tests never wait.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from .config import RetryConfig
from .errors import TransientStorageError

if TYPE_CHECKING:
    from collections.abc import Mapping

    import tenacity

# tenacity is imported when a first attempt fails (`RetryPolicy.call` runs first attempts without
# it): where tornado is installed (Dask users), importing tenacity imports tornado and asyncio too,
# ~20-40 ms of a batch job's start-up that a job whose requests succeed never needs.

__all__ = [
    "RetryPolicy",
    "RetryStats",
    "RetryStatsSnapshot",
    "default_error_kind",
    "never_transient",
]

_LOG = logging.getLogger(__name__)

_R = TypeVar("_R")


def never_transient(exc: BaseException) -> bool:
    """Classify every error as permanent (the classifier of `RetryPolicy.no_retry`).

    Parameters
    ----------
    exc : `BaseException`
        Any error.

    Returns
    -------
    transient : `bool`
        Always `False`.
    """
    return False


def default_error_kind(exc: BaseException) -> str:
    """Name an error for statistics and logs: its class name.

    Parameters
    ----------
    exc : `BaseException`
        The error.

    Returns
    -------
    kind : `str`
        The class name of ``exc``.
    """
    return type(exc).__name__


@dataclass(frozen=True)
class RetryStatsSnapshot:
    """Counts of a `RetryStats` at one moment.

    Attributes
    ----------
    attempts : `int`
        Attempts started (first attempts and retries).
    retries : `int`
        Attempts that followed a transient failure.
    give_ups : `int`
        Operations abandoned after their last allowed attempt failed transiently.
    errors : `~collections.abc.Mapping` [`str`, `int`]
        Transient failures by error kind (retried or not).
    """

    attempts: int = 0
    retries: int = 0
    give_ups: int = 0
    errors: Mapping[str, int] = field(default_factory=dict)


class RetryStats:
    """Thread-safe counters of what a `RetryPolicy` did.

    One instance may be shared by several policies (for example one per
    endpoint) to total their activity; read it with `snapshot`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._attempts = 0
        self._retries = 0
        self._give_ups = 0
        self._errors: Counter[str] = Counter()

    def record_attempt(self, *, is_retry: bool) -> None:
        """Count one attempt.

        Parameters
        ----------
        is_retry : `bool`
            Whether the attempt follows a transient failure.
        """
        with self._lock:
            self._attempts += 1
            if is_retry:
                self._retries += 1

    def record_transient(self, kind: str, *, gave_up: bool) -> None:
        """Count one transient failure.

        Parameters
        ----------
        kind : `str`
            Kind of the error (an S3 error code or an exception class name).
        gave_up : `bool`
            Whether it ended the operation because no attempt was left.
        """
        with self._lock:
            self._errors[kind] += 1
            if gave_up:
                self._give_ups += 1

    @property
    def attempts(self) -> int:
        """Attempts started so far."""
        with self._lock:
            return self._attempts

    @property
    def retries(self) -> int:
        """Attempts so far that followed a transient failure."""
        with self._lock:
            return self._retries

    @property
    def give_ups(self) -> int:
        """Operations abandoned so far after exhausting their retries."""
        with self._lock:
            return self._give_ups

    @property
    def errors(self) -> dict[str, int]:
        """Transient failures so far by error kind (a copy)."""
        with self._lock:
            return dict(self._errors)

    def snapshot(self) -> RetryStatsSnapshot:
        """Return a consistent copy of all counters.

        Returns
        -------
        snapshot : `RetryStatsSnapshot`
            The counts at this moment.
        """
        with self._lock:
            return RetryStatsSnapshot(self._attempts, self._retries, self._give_ups, dict(self._errors))

    def reset(self) -> None:
        """Set every counter back to zero."""
        with self._lock:
            self._attempts = self._retries = self._give_ups = 0
            self._errors.clear()

    def __repr__(self) -> str:
        snap = self.snapshot()
        return (
            f"RetryStats(attempts={snap.attempts}, retries={snap.retries}, "
            f"give_ups={snap.give_ups}, errors={dict(snap.errors)})"
        )


class _Budget:
    """Attempt and time budget of one `tenacity.Retrying` run, on the policy's clock."""

    def __init__(self, policy: RetryPolicy, description: str, start: float | None = None) -> None:
        self._policy = policy
        self._description = description
        self._fixed_start = start is not None
        self._start = start if start is not None else policy.clock()
        self._attempt_start = self._start

    def elapsed(self) -> float:
        return self._policy.clock() - self._start

    def before(self, state: tenacity.RetryCallState) -> None:
        if state.attempt_number == 1 and not self._fixed_start:
            self._start = self._policy.clock()  # A Retrying object may be iterated again.
        # The first attempt of `RetryPolicy.call` ran before this object existed, from ``start``.
        self._attempt_start = self._start if state.attempt_number == 1 else self._policy.clock()
        self._policy.stats.record_attempt(is_retry=state.attempt_number > 1)

    def wait(self, state: tenacity.RetryCallState) -> float:
        config = self._policy.config
        bound = min(config.max_backoff, config.initial_backoff * 2.0 ** (state.attempt_number - 1))
        return self._policy.random.uniform(0.0, bound) if config.jitter else bound

    def stop(self, state: tenacity.RetryCallState) -> bool:
        config = self._policy.config
        now = self._policy.clock()
        elapsed = now - self._start
        if config.connect_retry_time > 0 and self._policy.is_connection_error(_outcome_error(state)):
            # The service could not be reached: retry for a time, not a number of attempts.
            return elapsed + state.upcoming_sleep > config.connect_retry_time
        if state.attempt_number >= config.max_attempts:
            return True
        # A retry must be able to end in time: it may last as long as the attempt that just failed
        # (a read timeout against an endpoint that never answers lasts the whole timeout).
        last_attempt = max(0.0, now - self._attempt_start)
        return elapsed + state.upcoming_sleep + last_attempt > config.max_total_time

    def before_sleep(self, state: tenacity.RetryCallState) -> None:
        exc = _outcome_error(state)
        kind = self._policy.error_kind(exc)
        self._policy.stats.record_transient(kind, gave_up=False)
        _LOG.debug(
            "Retrying %s in %.3f s after transient %s (attempt %d of at most %d failed)",
            self._description,
            state.upcoming_sleep,
            kind,
            state.attempt_number,
            self._policy.config.max_attempts,
        )

    def give_up(self, state: tenacity.RetryCallState) -> NoReturn:
        exc = _outcome_error(state)
        kind = self._policy.error_kind(exc)
        self._policy.stats.record_transient(kind, gave_up=True)
        attempts = state.attempt_number
        elapsed = self.elapsed()
        _LOG.warning(
            "Giving up %s after %d attempt(s) over %.2f s; last error: %s",
            self._description,
            attempts,
            elapsed,
            kind,
        )
        raise TransientStorageError(
            f"{self._description} failed after {attempts} attempt{'s' if attempts != 1 else ''} "
            f"over {elapsed:.2f} s; the last error was transient ({kind}: {exc}). "
            "The storage service may be overloaded or unreachable: try again later, or raise "
            "S3QBB_RETRY_MAX_ATTEMPTS / S3QBB_RETRY_MAX_TOTAL_TIME (S3QBB_RETRY_CONNECT_TIME for "
            "a service that cannot be reached)."
        ) from exc


def _outcome_error(state: tenacity.RetryCallState) -> BaseException:
    outcome = state.outcome
    exc = outcome.exception() if outcome is not None else None
    if exc is None:  # pragma: no cover - tenacity only calls us after a failure
        raise RuntimeError("retry hook called without a failed attempt")
    return exc


class RetryPolicy:
    """Retry operations on transient errors with bounded, jittered exponential backoff.

    The backoff before retry ``n`` (``n = 1`` for the first retry) is drawn
    uniformly from ``[0, min(max_backoff, initial_backoff * 2**(n-1))]``, or is
    that bound when jitter is off. No retry starts once ``max_attempts``
    attempts were made, nor if its backoff would end later than
    ``max_total_time`` seconds after the first attempt started. Errors the
    classifier calls permanent propagate unchanged at once.

    Parameters
    ----------
    config : `s3qbb.config.RetryConfig`, optional
        Attempt, backoff and time bounds; the defaults of `RetryConfig` if not given.
    is_transient : `~collections.abc.Callable` [[`BaseException`], `bool`]
        Classifier of errors worth retrying; for S3 use
        `s3qbb.s3.errors.is_transient` (or `s3qbb.s3.make_retry_policy`).
    sleep : `~collections.abc.Callable` [[`float`], `None`], optional
        Function that waits the given seconds; `time.sleep` by default.
    clock : `~collections.abc.Callable` [[], `float`], optional
        Monotonic clock in seconds measuring the time budget; `time.monotonic`
        by default.
    rng : `random.Random`, optional
        Source of jitter; a fresh unseeded `random.Random` by default.
    stats : `RetryStats`, optional
        Counters to update; a new `RetryStats` by default.
    error_kind : `~collections.abc.Callable` [[`BaseException`], `str`], optional
        Names errors in statistics and logs; the class name by default.
    is_connection_error : `~collections.abc.Callable` [[`BaseException`], `bool`], optional
        Classifier of transient errors meaning the service could not be
        reached; those are retried for ``config.connect_retry_time`` seconds
        whatever ``config.max_attempts`` says. None by default.

    Notes
    -----
    The policy itself is immutable and thread-safe; `call` may be used from
    many threads at once. Retried functions must be idempotent, or handle
    being repeated after a lost response.
    """

    def __init__(
        self,
        config: RetryConfig | None = None,
        *,
        is_transient: Callable[[BaseException], bool],
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        stats: RetryStats | None = None,
        error_kind: Callable[[BaseException], str] = default_error_kind,
        is_connection_error: Callable[[BaseException], bool] = never_transient,
    ) -> None:
        self._config = config if config is not None else RetryConfig()
        self._is_connection_error = is_connection_error
        self._is_transient = is_transient
        self._sleep = sleep
        self._clock = clock
        self._random = rng if rng is not None else random.Random()
        self._stats = stats if stats is not None else RetryStats()
        self._error_kind = error_kind

    @classmethod
    def no_retry(
        cls,
        *,
        is_transient: Callable[[BaseException], bool] = never_transient,
        stats: RetryStats | None = None,
    ) -> RetryPolicy:
        """Return a policy that makes a single attempt and never sleeps.

        Parameters
        ----------
        is_transient : `~collections.abc.Callable` [[`BaseException`], `bool`], optional
            Classifier; with the default every error propagates unchanged,
            with a real one transient errors become
            `~s3qbb.errors.TransientStorageError` after the single attempt.
        stats : `RetryStats`, optional
            Counters to update.

        Returns
        -------
        policy : `RetryPolicy`
            The policy.
        """
        return cls(RetryConfig(max_attempts=1), is_transient=is_transient, sleep=_never_sleep, stats=stats)

    @property
    def config(self) -> RetryConfig:
        """Bounds of this policy."""
        return self._config

    @property
    def stats(self) -> RetryStats:
        """Counters updated by this policy."""
        return self._stats

    @property
    def clock(self) -> Callable[[], float]:
        """Clock measuring the time budget."""
        return self._clock

    @property
    def random(self) -> random.Random:
        """Source of jitter."""
        return self._random

    def error_kind(self, exc: BaseException) -> str:
        """Name an error the way statistics and logs do.

        Parameters
        ----------
        exc : `BaseException`
            The error.

        Returns
        -------
        kind : `str`
            Its kind (e.g. an S3 error code).
        """
        return self._error_kind(exc)

    def is_transient(self, exc: BaseException) -> bool:
        """Tell whether this policy retries an error.

        Parameters
        ----------
        exc : `BaseException`
            The error.

        Returns
        -------
        transient : `bool`
            `True` if the error is retried.
        """
        return self._is_transient(exc)

    def is_connection_error(self, exc: BaseException) -> bool:
        """Tell whether an error means the service could not be reached (retried for a time).

        Parameters
        ----------
        exc : `BaseException`
            The error.

        Returns
        -------
        connection_error : `bool`
            `True` for a refused connection, a DNS failure or a connect timeout.
        """
        return self._is_connection_error(exc)

    def retrying(self, description: str = "storage operation") -> tenacity.Retrying:
        """Return a `tenacity.Retrying` applying this policy, for block-form retries.

        Parameters
        ----------
        description : `str`, optional
            What the block does, e.g. ``"GetObject s3://bucket/key"``; used in
            logs and in the `~s3qbb.errors.TransientStorageError` raised when
            retries run out.

        Returns
        -------
        retrying : `tenacity.Retrying`
            Iterate it as ``for attempt in retrying: with attempt: ...``. Use
            one object per operation and per thread.
        """
        return self._retrying(description, None)

    def _retrying(self, description: str, start: float | None) -> tenacity.Retrying:
        import tenacity

        budget = _Budget(self, description, start)
        return tenacity.Retrying(
            sleep=self._sleep,
            stop=budget.stop,
            wait=budget.wait,
            retry=tenacity.retry_if_exception(self._is_transient),
            before=budget.before,
            before_sleep=budget.before_sleep,
            retry_error_callback=budget.give_up,
        )

    def call(self, fn: Callable[..., _R], /, *args: Any, description: str, **kwargs: Any) -> _R:
        """Run a function, retrying it on transient errors.

        Parameters
        ----------
        fn : `~collections.abc.Callable`
            The operation; it must be safe to repeat.
        *args
            Positional arguments of ``fn``.
        description : `str`
            What the operation is, e.g. ``"PutObject s3://bucket/key"``; used in
            logs and in the error raised when retries run out.
        **kwargs
            Keyword arguments of ``fn``.

        Returns
        -------
        result : `object`
            What ``fn`` returned.

        Raises
        ------
        s3qbb.errors.TransientStorageError
            Raised if the last allowed attempt failed with a transient error;
            it names the operation, the number of attempts and the time spent,
            and is chained from the last error.
        Exception
            Any permanent error raised by ``fn``, unchanged, at its first occurrence.
        """
        # Fast path: the first attempt runs without building a tenacity object (~40 us a request);
        # only a transient failure enters the retry loop, which replays that failure as attempt 1
        # so attempts, backoff and the time budget are exactly those of the policy.
        start = self._clock()
        try:
            result: _R = fn(*args, **kwargs)
        except BaseException as err:
            if not self._is_transient(err):
                self._stats.record_attempt(is_retry=False)
                raise
            first = err
        else:
            self._stats.record_attempt(is_retry=False)
            return result
        replayed = False

        def again(*a: Any, **k: Any) -> _R:
            nonlocal replayed
            if not replayed:
                replayed = True
                raise first
            return fn(*a, **k)

        retried: _R = self._retrying(description, start)(again, *args, **kwargs)
        return retried

    def __repr__(self) -> str:
        return f"RetryPolicy({self._config!r}, is_transient={getattr(self._is_transient, '__name__', '?')})"


def _never_sleep(seconds: float) -> None:
    """Sleep of `RetryPolicy.no_retry`, which never retries."""
