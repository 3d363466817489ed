"""Thread-safe request counts per S3 operation, shared by the botocore and transport counters."""

from __future__ import annotations

__all__ = ["OperationCounts"]

import threading
from collections import Counter


class OperationCounts:
    """Requests counted per S3 operation name, safe to update from many threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: Counter[str] = Counter()

    def _add(self, operation: str) -> None:
        with self._lock:
            self._requests[operation] += 1

    @property
    def requests(self) -> Counter[str]:
        """Requests so far by operation name (a copy), e.g. ``{"PutObject": 1}``."""
        with self._lock:
            return Counter(self._requests)

    @property
    def total(self) -> int:
        """Requests so far, all operations together."""
        with self._lock:
            return self._requests.total()

    def reset(self) -> None:
        """Forget the counts."""
        with self._lock:
            self._requests.clear()
