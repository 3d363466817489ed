"""A pause of Python's cyclic garbage collector around a burst of short-lived allocations.

Building a quantum's provenance makes thousands of small containers (rows,
dictionaries, models) at once. Every 700 of them trigger a collection, which
finds them all still alive, promotes them to older generations, and soon makes
the collector traverse *every* object of the process: 3 to 5 ms per call in a
process holding a few hundred thousand objects (``python -m benchmarks.qbb``),
for no garbage. Paused, those containers are freed by reference counting when
the call returns, as they would be anyway, and the collector's counters are
back where they were: nothing is postponed, the traversals simply never happen.

The pause is process-wide (so is the collector) and nests across threads: the
first caller to enter turns the collector off if it was on, the last to leave
turns it back on. A collector the program turned off before the pause stays off
(one it turns off *during* a pause is turned back on when the pause ends). The
pause bounds itself: an exception raised at any point (a signal handler's
``KeyboardInterrupt``) leaves the collector on, or at worst for the next pause to
turn back on; a child forked while a pause is open starts with the collector as
the pause found it; and pauses of many threads that overlap without end still
collect once every `MAX_PAUSE_S` seconds, so cyclic garbage cannot pile up.
"""

from __future__ import annotations

__all__ = ["MAX_PAUSE_S", "collector_paused"]

import contextlib
import gc
import os
import threading
import time
import weakref
from collections.abc import Iterator

MAX_PAUSE_S = 1.0
"""Longest the collector stays off without a collection while pauses of several threads overlap."""

_clock = time.monotonic
_lock = threading.Lock()


class _Pause:
    """A token per open pause, held only by its ``with`` block.

    An exit an exception cut short (before it removed its token) leaves no open
    pause behind once the block is gone.
    """

    __slots__ = ("__weakref__",)


_open: weakref.WeakSet[_Pause] = weakref.WeakSet()
_turned_off = False  # whether the open pauses turned the collector off (and must turn it back on)
_since = 0.0  # when the collector was turned off, or last collected while pauses overlapped


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Turn the cyclic garbage collector off for the ``with`` block (nests, thread-safe).

    Use it only around code that makes many short-lived objects and no
    reference cycles: garbage in cycles made inside the block waits for the
    next collection after it.
    """
    global _turned_off, _since
    token = _Pause()
    try:
        # Inside the ``try``: whatever line an exception interrupts, the ``finally`` settles the state.
        with _lock:
            if not _open and gc.isenabled():
                _turned_off = True
                _since = _clock()
                gc.disable()
            _open.add(token)
        yield
    finally:
        collect = False
        with _lock:
            _open.discard(token)
            if not _open:
                if _turned_off:  # also one an interrupted exit of an earlier pause left behind
                    gc.enable()
                    _turned_off = False
            elif _turned_off and _clock() - _since > MAX_PAUSE_S:
                _since = _clock()
                collect = True
        if collect:  # pauses of other threads have kept the collector off this long
            gc.collect()


def _after_fork_in_child() -> None:
    """Close the pauses of the parent's threads, which do not exist in the child."""
    global _lock, _turned_off
    _lock = threading.Lock()  # another thread may have held it at the fork
    _open.clear()
    if _turned_off:
        _turned_off = False
        gc.enable()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
