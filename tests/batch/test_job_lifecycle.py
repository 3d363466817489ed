"""Exit codes from errors, and the signal handler's phases (in process; subprocess tests are in tests/cli)."""

from __future__ import annotations

import signal
import threading
import time

import botocore.exceptions
import pytest

from s3qbb.batch.exitcodes import (
    EXIT_CODES,
    ExitCode,
    exit_code_for_error,
    infrastructure_cause,
    run_exit_code,
)
from s3qbb.batch.signals import GracefulTermination, JobInterrupted, grace_period
from s3qbb.errors import (
    AccessDeniedError,
    BucketNotFoundError,
    ConfigError,
    DatasetNotFoundError,
    TLSError,
    TransientStorageError,
)


def _raised_from(outer: type[Exception], inner: BaseException, *, implicit: bool = False) -> Exception:
    try:
        try:
            raise inner
        except BaseException as err:
            if implicit:
                raise outer("wrapped without from")  # noqa: B904 (the implicit __context__ is the point)
            raise outer("wrapped") from err
    except Exception as wrapped:
        return wrapped


@pytest.mark.parametrize(
    "error",
    [
        TransientStorageError("GetObject s3://b/k failed after 9 attempts"),
        BucketNotFoundError("bucket b does not exist"),
        AccessDeniedError("PutObject s3://b/k denied"),
        TLSError(
            "PutObject on s3://b/k failed at https://s3.example.org: the TLS connection could not be made"
        ),
        ConnectionRefusedError(111, "Connection refused"),
        botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_storage_errors_are_infrastructure_even_wrapped_by_the_task(error: Exception) -> None:
    assert exit_code_for_error(error, in_task=True) == ExitCode.TEMPFAIL
    assert exit_code_for_error(_raised_from(RuntimeError, error), in_task=True) == ExitCode.TEMPFAIL
    assert exit_code_for_error(_raised_from(ValueError, error, implicit=True), in_task=True) == 75
    group = ExceptionGroup("several", [ValueError("mine"), error])
    assert infrastructure_cause(group) is error


def test_the_task_s_own_errors_and_setup_errors() -> None:
    assert exit_code_for_error(ValueError("bad pixel"), in_task=True) == ExitCode.TASK_FAILED
    assert (
        exit_code_for_error(DatasetNotFoundError("no such dataset"), in_task=True) == 1
    )  # data, not storage
    assert exit_code_for_error(ConfigError("bad option"), in_task=False) == ExitCode.USAGE
    assert exit_code_for_error(_raised_from(ConfigError, BucketNotFoundError("b")), in_task=False) == 75


def test_exit_code_table() -> None:
    assert [(int(row.code), row.retry) for row in EXIT_CODES] == [
        (0, False), (1, False), (2, False), (75, True), (130, True), (143, True),
    ]  # fmt: skip
    assert JobInterrupted(signal.SIGTERM).exit_code == 143
    assert JobInterrupted(signal.SIGINT).exit_code == 130
    assert not isinstance(JobInterrupted(signal.SIGTERM), Exception)  # `except Exception` lets it through


@pytest.mark.parametrize(
    ("failures", "expected"),
    [
        ([], 0),
        ([75], 75),
        ([75, None], 75),  # the quantum downstream of a retryable failure was not run: run again
        ([143, 130, 75, None], 75),
        ([75, 1, None], 1),
        ([2], 1),
        ([None], 1),  # not run, and no quantum that ran says why: nothing tells a retry will help
    ],
)
def test_run_exit_code(failures: list[int | None], expected: int) -> None:
    assert run_exit_code(failures) == expected
    assert run_exit_code(failures, interrupted_by=signal.SIGTERM) == 143


def test_grace_period_from_option_environment_or_default() -> None:
    assert grace_period(3.0, {"S3QBB_GRACE_PERIOD": "9"}) == 3.0
    assert grace_period(None, {"S3QBB_GRACE_PERIOD": "9"}) == 9.0
    assert grace_period(None, {}) == 25.0  # below the 30 s Kubernetes and ECS wait before SIGKILL
    with pytest.raises(ValueError, match="S3QBB_GRACE_PERIOD"):
        grace_period(None, {"S3QBB_GRACE_PERIOD": "soon"})


@pytest.fixture
def main_thread() -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers can only be installed in the main thread")


def test_first_signal_interrupts_the_task_then_the_grace_period_ends_the_process(main_thread: None) -> None:
    exits: list[int] = []
    with GracefulTermination(0.05, exit=exits.append) as guard:
        with pytest.raises(JobInterrupted) as info:
            signal.raise_signal(signal.SIGTERM)
            time.sleep(5)  # interrupted
        assert info.value.exit_code == 143
        guard.finishing()
        deadline = time.monotonic() + 10
        while not exits and time.monotonic() < deadline:
            time.sleep(0.01)
    assert exits == [143]
    assert signal.getsignal(signal.SIGTERM) is not guard._handle  # handlers restored


def test_signal_during_uploads_does_not_interrupt_them_but_a_second_one_exits(main_thread: None) -> None:
    exits: list[int] = []
    with GracefulTermination(60, exit=exits.append) as guard:
        guard.finishing()
        signal.raise_signal(signal.SIGINT)  # uploads go on: nothing raised
        assert guard.exit_code == 130 and exits == []
        signal.raise_signal(signal.SIGINT)
        assert exits == [130]


def test_log_context_tags_records_of_pool_threads_while_it_is_the_only_one() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from s3qbb.batch.logs import current_context, log_context

    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(current_context).result() == {"quantum_id": None, "task_label": None}
        with log_context(quantum_id="q1", task_label="isr"):
            assert pool.submit(current_context).result() == {"quantum_id": "q1", "task_label": "isr"}
            with log_context(quantum_id="q2", task_label="calibrate"):  # two at once: ambiguous
                assert current_context() == {"quantum_id": "q2", "task_label": "calibrate"}
                assert pool.submit(current_context).result() == {"quantum_id": None, "task_label": None}
        assert pool.submit(current_context).result() == {"quantum_id": None, "task_label": None}
