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
turns it back on. A collector the program turned off stays off.
"""

from __future__ import annotations

__all__ = ["collector_paused"]

import contextlib
import gc
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_depth = 0
_turned_off = False


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Turn the cyclic garbage collector off for the ``with`` block (nests, thread-safe).

    Use it only around code that makes many short-lived objects and no
    reference cycles: garbage in cycles made inside the block waits for the
    next collection after it.
    """
    global _depth, _turned_off
    with _lock:
        if _depth == 0:
            _turned_off = gc.isenabled()
            if _turned_off:
                gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _turned_off:
                _turned_off = False
                gc.enable()
