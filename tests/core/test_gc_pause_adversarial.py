"""The collector pause under interruption, fork and pauses that overlap for a long time.

A ``KeyboardInterrupt`` (a signal handler's exception) may be raised between any two
lines of the pause; a process may fork while another thread is inside one; threads
of a long-running worker may keep at least one pause open at every moment. None of
these may leave the collector off for good or let cyclic garbage pile up unbounded.
"""

from __future__ import annotations

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
    inside, release = threading.Event(), threading.Event()

    def other() -> None:
        with collector_paused():
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=other)
    thread.start()
    try:
        assert inside.wait(10)
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
    finally:
        release.set()
        thread.join(10)
    assert gc.isenabled()


def test_pauses_that_always_overlap_still_let_the_collector_run(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(gc_pause, "_clock", lambda: now[0])
    inside, release = threading.Event(), threading.Event()

    def other() -> None:
        with collector_paused():
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=other)
    with collector_paused():
        thread.start()
        assert inside.wait(10)
        ref = _cycle()
        now[0] += 3600  # an hour of pauses that overlap: the collector was never on
    try:
        # This pause ended while another is open: the collector stays off, but the garbage
        # of a pause that has lasted this long is collected.
        assert not gc.isenabled()
        assert ref() is None
    finally:
        release.set()
        thread.join(10)
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
