"""The collector pause: nests across threads, restores what it found, survives interruption and fork.

A ``KeyboardInterrupt`` (a signal handler's exception) may be raised between any two
lines of the pause; a process may fork while another thread is inside one; threads
of a long-running worker may keep at least one pause open at every moment. None of
these may leave the collector off for good or let cyclic garbage pile up unbounded.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import os
import sys
import threading
import types
import warnings
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from s3qbb.core import gc_pause
from s3qbb.core.gc_pause import collector_paused


@pytest.fixture(autouse=True)
def _collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


class _Node:
    other: object = None


def _cycle() -> weakref.ref[_Node]:
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return weakref.ref(a)


@contextlib.contextmanager
def _paused_in_another_thread() -> Iterator[None]:
    """Hold a pause open in another thread for the ``with`` block."""
    inside, release = threading.Event(), threading.Event()

    def other() -> None:
        with collector_paused():
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=other)
    thread.start()
    try:
        assert inside.wait(10)
        yield
    finally:
        release.set()
        thread.join(10)


def _lines_of_the_pause() -> list[int]:
    source, first = inspect.getsourcelines(gc_pause)
    return [first + i for i, text in enumerate(source) if text.strip() and not text.strip().startswith("#")]


def _interrupt_at(line: int) -> bool:
    """Run a pause, raising ``KeyboardInterrupt`` when gc_pause reaches ``line``; tell if it did."""
    hit: list[int] = []
    filename = gc_pause.__file__

    def local(frame: types.FrameType, event: str, arg: Any) -> Any:
        if event == "line" and frame.f_lineno == line and not hit:
            hit.append(line)
            raise KeyboardInterrupt
        return local

    def tracer(frame: types.FrameType, event: str, arg: Any) -> Any:
        return local if frame.f_code.co_filename == filename else None

    sys.settrace(tracer)
    try:
        with collector_paused():
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sys.settrace(None)
    return bool(hit)


def test_an_interrupt_at_any_line_does_not_leave_the_collector_off() -> None:
    reached = []
    for line in _lines_of_the_pause():
        if not _interrupt_at(line):
            continue
        reached.append(line)
        with collector_paused():  # the next pause restores what an interrupted exit left
            assert not gc.isenabled()
        assert gc.isenabled(), f"collector left off after an interrupt at gc_pause.py line {line}"
    assert len(reached) >= 5  # the injection reached the pause's own lines


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork")
def test_a_child_forked_while_another_thread_is_paused_has_its_collector_on() -> None:
    with _paused_in_another_thread():
        assert not gc.isenabled()
        read, write = os.pipe()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads
            pid = os.fork()
        if pid == 0:  # the child: the thread inside the pause does not exist here
            try:
                on = gc.isenabled()
                with collector_paused():
                    paused = not gc.isenabled()
                os.write(write, f"{on} {paused} {gc.isenabled()}".encode())
            finally:
                os._exit(0)
        os.close(write)
        with os.fdopen(read) as pipe:
            answer = pipe.read()
        os.waitpid(pid, 0)
        assert answer == "True True True"
    assert gc.isenabled()


def test_pauses_that_always_overlap_still_let_the_collector_run(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(gc_pause, "_clock", lambda: now[0])
    with _paused_in_another_thread():
        with collector_paused():
            ref = _cycle()
            now[0] += 3600  # an hour of pauses that overlap: the collector was never on
        # This pause ended while another is open: the collector stays off, but the garbage
        # of a pause that has lasted this long is collected.
        assert not gc.isenabled()
        assert ref() is None
    assert gc.isenabled()


def test_short_overlapping_pauses_do_not_collect(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(gc_pause, "_clock", lambda: now[0])
    collections: list[str] = []

    def record(phase: str, info: dict[str, int]) -> None:
        collections.append(phase)

    gc.callbacks.append(record)
    try:
        with collector_paused():
            with collector_paused():
                _cycle()
                now[0] += 0.5
            assert collections == []  # overlapping for half a second: no collection
            now[0] += 1
            with collector_paused():
                pass
            assert collections == ["start", "stop"]  # then one
            with collector_paused():
                pass
            assert collections == ["start", "stop"]  # and not again at once
    finally:
        gc.callbacks.remove(record)
    assert gc.isenabled()


def test_pause_turns_the_collector_off_and_back_on() -> None:
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_pause_restores_on_error() -> None:
    with pytest.raises(KeyError), collector_paused():
        raise KeyError("x")
    assert gc.isenabled()


def test_a_collector_the_program_turned_off_stays_off() -> None:
    gc.disable()
    with collector_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_nested_pauses_turn_it_back_on_once_at_the_outermost_exit() -> None:
    with collector_paused():
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_overlapping_pauses_in_threads_keep_it_off_until_the_last_leaves() -> None:
    with _paused_in_another_thread():
        with collector_paused():
            pass
        assert not gc.isenabled()  # the other thread is still inside
    assert gc.isenabled()


def test_garbage_made_in_a_pause_is_collected_after_it() -> None:
    with collector_paused():
        ref = _cycle()
        assert ref() is not None  # a cycle: not freed while paused
    gc.collect()
    assert ref() is None
