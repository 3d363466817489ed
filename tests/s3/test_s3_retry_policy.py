"""RetryPolicy: bounds in attempts and time, classification, errors and statistics."""

from __future__ import annotations

import random
import threading

import pytest
import tenacity
from botocore.exceptions import ClientError, ConnectionClosedError

from s3qbb.config import RetryConfig
from s3qbb.errors import S3qbbError, TransientStorageError
from s3qbb.retry import RetryPolicy, RetryStats, never_transient
from s3qbb.s3 import make_retry_policy


class TransientTestError(Exception):
    pass


class PermanentTestError(Exception):
    pass


def is_test_transient(exc: BaseException) -> bool:
    return isinstance(exc, TransientTestError)


class Flaky:
    """Fails with the given errors in turn, then returns "done"; may take time on a fake clock."""

    def __init__(self, *errors: BaseException, clock=None, duration: float = 0.0) -> None:
        self.errors = list(errors)
        self.calls = 0
        self.raised: list[BaseException] = []
        self.clock = clock
        self.duration = duration

    def __call__(self, *args: object, **kwargs: object) -> object:
        self.calls += 1
        if self.clock is not None:
            self.clock.advance(self.duration)
        if self.errors:
            err = self.errors.pop(0)
            self.raised.append(err)
            raise err
        return ("done", args, kwargs)


def policy_for(fake_clock, **config) -> RetryPolicy:
    return RetryPolicy(
        RetryConfig(**config),
        is_transient=is_test_transient,
        sleep=fake_clock.sleep,
        clock=fake_clock,
        rng=random.Random(1),
    )


def test_transient_errors_are_retried_then_succeed(fake_clock) -> None:
    policy = policy_for(fake_clock, jitter=False)
    fn = Flaky(TransientTestError("a"), TransientTestError("b"))
    assert policy.call(fn, 1, description="op", x=2) == ("done", (1,), {"x": 2})
    assert fn.calls == 3
    assert fake_clock.sleeps == [0.05, 0.1]


def test_backoff_doubles_and_is_capped(fake_clock) -> None:
    policy = policy_for(fake_clock, max_attempts=6, initial_backoff=1.0, max_backoff=3.0, jitter=False)
    with pytest.raises(TransientStorageError):
        policy.call(Flaky(*(TransientTestError(str(i)) for i in range(10))), description="op")
    assert fake_clock.sleeps == [1.0, 2.0, 3.0, 3.0, 3.0]


def test_jitter_stays_within_the_exponential_bound(fake_clock) -> None:
    policy = policy_for(fake_clock, max_attempts=8, initial_backoff=0.5, max_backoff=4.0, jitter=True)
    with pytest.raises(TransientStorageError):
        policy.call(Flaky(*(TransientTestError(str(i)) for i in range(10))), description="op")
    bounds = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    assert len(fake_clock.sleeps) == len(bounds)
    assert all(0.0 <= s <= b for s, b in zip(fake_clock.sleeps, bounds, strict=True))
    assert len(set(fake_clock.sleeps)) > 1  # actually random


def test_bounded_by_attempts(fake_clock) -> None:
    policy = policy_for(fake_clock, max_attempts=3)
    fn = Flaky(*(TransientTestError(str(i)) for i in range(10)))
    with pytest.raises(TransientStorageError) as info:
        policy.call(fn, description="PutObject s3://b/k")
    assert fn.calls == 3
    assert len(fake_clock.sleeps) == 2
    assert "after 3 attempts" in str(info.value)


def test_bounded_by_total_time(fake_clock) -> None:
    # Attempts take 0.1 s, backoffs 1 s: starts at 0, 1.1, 2.2, 3.3; a fifth would start at 4.4 > 3.5.
    policy = policy_for(
        fake_clock, max_attempts=100, initial_backoff=1.0, max_backoff=1.0, max_total_time=3.5, jitter=False
    )
    fn = Flaky(*(TransientTestError(str(i)) for i in range(100)), clock=fake_clock, duration=0.1)
    with pytest.raises(TransientStorageError) as info:
        policy.call(fn, description="GetObject s3://b/k")
    assert fn.calls == 4
    assert fake_clock.now == pytest.approx(3.4)
    assert "after 4 attempts over 3.40 s" in str(info.value)


def test_exhaustion_message_and_cause(fake_clock) -> None:
    policy = policy_for(fake_clock, max_attempts=2)
    fn = Flaky(TransientTestError("first"), TransientTestError("second"))
    with pytest.raises(TransientStorageError) as info:
        policy.call(fn, description="PutObject s3://bucket/run/a.json")
    err = info.value
    assert isinstance(err, S3qbbError)
    assert isinstance(err, ConnectionError)
    assert err.__cause__ is fn.raised[-1]
    message = str(err)
    assert "PutObject s3://bucket/run/a.json" in message
    assert "after 2 attempts" in message
    assert "TransientTestError" in message
    assert "S3QBB_RETRY_MAX_ATTEMPTS" in message


def test_permanent_errors_propagate_unchanged_at_once(fake_clock) -> None:
    policy = policy_for(fake_clock)
    original = PermanentTestError("nope")
    fn = Flaky(original)
    with pytest.raises(PermanentTestError) as info:
        policy.call(fn, description="op")
    assert info.value is original
    assert fn.calls == 1
    assert fake_clock.sleeps == []
    assert policy.stats.attempts == 1
    assert policy.stats.give_ups == 0


def test_permanent_error_after_transient_ones_propagates(fake_clock) -> None:
    policy = policy_for(fake_clock)
    original = PermanentTestError("late")
    fn = Flaky(TransientTestError("x"), original)
    with pytest.raises(PermanentTestError) as info:
        policy.call(fn, description="op")
    assert info.value is original
    assert fn.calls == 2


def test_stats_count_attempts_retries_give_ups_and_kinds(fake_clock) -> None:
    stats = RetryStats()
    policy = RetryPolicy(
        RetryConfig(max_attempts=2),
        is_transient=is_test_transient,
        sleep=fake_clock.sleep,
        clock=fake_clock,
        stats=stats,
    )
    policy.call(Flaky(TransientTestError("a")), description="one")
    with pytest.raises(TransientStorageError):
        policy.call(Flaky(TransientTestError("b"), TransientTestError("c")), description="two")
    with pytest.raises(PermanentTestError):
        policy.call(Flaky(PermanentTestError("d")), description="three")
    snap = stats.snapshot()
    assert (snap.attempts, snap.retries, snap.give_ups) == (5, 2, 1)
    assert snap.errors == {"TransientTestError": 3}
    assert policy.stats is stats
    assert "give_ups=1" in repr(stats)
    stats.reset()
    assert stats.snapshot().attempts == 0


def test_stats_are_thread_safe() -> None:
    policy = RetryPolicy(RetryConfig(), is_transient=is_test_transient, sleep=lambda s: None)
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        for _ in range(50):
            policy.call(Flaky(TransientTestError("x")), description="op")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snap = policy.stats.snapshot()
    assert snap.attempts == 800
    assert snap.retries == 400
    assert snap.errors == {"TransientTestError": 400}


def test_block_form_retries_and_gives_up(fake_clock) -> None:
    policy = policy_for(fake_clock, max_attempts=3)
    retrying = policy.retrying("block op")
    assert isinstance(retrying, tenacity.Retrying)
    calls = 0
    for attempt in retrying:
        with attempt:
            calls += 1
            if calls < 2:
                raise TransientTestError("once")
    assert calls == 2
    with pytest.raises(TransientStorageError, match="block op failed after 3 attempts"):
        for attempt in policy.retrying("block op"):
            with attempt:
                raise TransientTestError("always")


def test_no_retry_makes_one_attempt_and_never_sleeps() -> None:
    policy = RetryPolicy.no_retry()
    assert policy.config.max_attempts == 1
    original = TransientTestError("x")
    fn = Flaky(original)
    with pytest.raises(TransientTestError) as info:  # never_transient: propagates unchanged
        policy.call(fn, description="op")
    assert info.value is original
    assert never_transient(original) is False
    strict = RetryPolicy.no_retry(is_transient=is_test_transient)
    with pytest.raises(TransientStorageError, match="after 1 attempt over"):
        strict.call(Flaky(TransientTestError("y")), description="op")


def test_description_is_required() -> None:
    policy = RetryPolicy.no_retry()
    with pytest.raises(TypeError):
        policy.call(lambda: None)  # type: ignore[call-arg]


def test_s3_policy_names_errors_by_code(fake_clock) -> None:
    policy = make_retry_policy(RetryConfig(max_attempts=3), sleep=fake_clock.sleep, clock=fake_clock)
    slowdown = ClientError(
        {"Error": {"Code": "SlowDown", "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": 503}},
        "PutObject",
    )
    fn = Flaky(slowdown, ConnectionClosedError(endpoint_url="http://x"))
    policy.call(fn, description="PutObject s3://b/k")
    assert policy.stats.errors == {"SlowDown": 1, "ConnectionClosedError": 1}
    assert policy.is_transient(slowdown)


def test_config_bounds_are_validated() -> None:
    with pytest.raises(ValueError, match="max_backoff"):
        RetryConfig(initial_backoff=2.0, max_backoff=1.0)
    with pytest.raises(ValueError):
        RetryConfig(max_attempts=0)
