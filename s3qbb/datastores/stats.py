"""Counters of what a datastore did: requests by operation, retries, bytes, cache hits."""

from __future__ import annotations

__all__ = ["DatastoreStats"]

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class DatastoreStats:
    """Thread-safe counters of what a datastore did: requests, retries, bytes, cache hits.

    Read them at any time; `snapshot` returns a plain dict.

    Parameters
    ----------
    retry_source : `~collections.abc.Callable` [[], `int`], optional
        Where `retries` comes from when a retry policy counts them (the S3
        datastore passes its policy's statistics); counted here otherwise.
    """

    requests: Counter[str] = field(default_factory=Counter)
    bytes_written: int = 0
    bytes_read: int = 0
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    retry_source: Callable[[], int] | None = field(default=None, repr=False, compare=False)
    _retries: int = field(default=0, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def retries(self) -> int:
        """Requests sent again after a transient failure."""
        return self._retries if self.retry_source is None else self.retry_source() - self._retries

    @retries.setter
    def retries(self, value: int) -> None:
        # With a retry source, _retries is the offset that makes `retries` read ``value`` now.
        self._retries = value if self.retry_source is None else self.retry_source() - value

    def count_request(self, operation: str, n: int = 1) -> None:
        """Count ``n`` requests of an operation."""
        with self._lock:
            self.requests[operation] += n

    def add_read(self, nbytes: int) -> None:
        """Add ``nbytes`` to `bytes_read` (``add(bytes_read=nbytes)`` on the path of every get)."""
        with self._lock:
            self.bytes_read += nbytes

    def add_written(self, nbytes: int) -> None:
        """Add ``nbytes`` to `bytes_written` (``add(bytes_written=nbytes)`` on the path of every put)."""
        with self._lock:
            self.bytes_written += nbytes

    def add(self, **amounts: int) -> None:
        """Add to scalar counters, for example ``add(bytes_read=10, hits=1)``."""
        with self._lock:
            for name, amount in amounts.items():
                setattr(self, name, getattr(self, name) + amount)

    @property
    def total_requests(self) -> int:
        """Total number of requests of every operation."""
        with self._lock:
            return sum(self.requests.values())

    def snapshot(self) -> dict[str, Any]:
        """Return a consistent copy of the counters."""
        with self._lock:
            return {
                "requests": dict(self.requests),
                "total_requests": sum(self.requests.values()),
                "retries": self.retries,
                "bytes_written": self.bytes_written,
                "bytes_read": self.bytes_read,
                "hits": self.hits,
                "misses": self.misses,
                "evictions": self.evictions,
            }

    def reset(self) -> None:
        """Set every counter back to zero."""
        with self._lock:
            self.requests.clear()
            self.retries = self.bytes_written = self.bytes_read = 0
            self.hits = self.misses = self.evictions = 0
