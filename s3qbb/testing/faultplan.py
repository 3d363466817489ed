"""Which requests to break: the bookkeeping shared by `FaultInjector` and `FaultProxy`.

A `FaultPlan` decides, request by request, whether to inject a fault and which
one: first from a per-operation script, then at random. It counts what it
saw and what it injected. The two injectors differ only in *how* they break a
request (inside botocore, or on the wire); `FaultCounters` gives both the same
control and counter API by delegating to their plan.
"""

from __future__ import annotations

import random
import threading
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

__all__ = ["FaultCounters", "FaultPlan", "error_xml"]

PASS: Final = frozenset({"ok", "pass", ""})
"""Script steps that let one request through."""


def error_xml(code: str, message: str, request_id: str, resource: str | None = None) -> bytes:
    """Return the body of an S3 error response.

    Parameters
    ----------
    code : `str`
        S3 error code, e.g. ``"SlowDown"``.
    message : `str`
        Human-readable message.
    request_id : `str`
        Request ID reported in the body.
    resource : `str`, optional
        Path of the resource, if the response names one.

    Returns
    -------
    body : `bytes`
        UTF-8 XML, as S3 sends it.
    """
    where = "" if resource is None else f"<Resource>{resource}</Resource>"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>{where}"
        f"<RequestId>{request_id}</RequestId></Error>"
    ).encode()


class FaultPlan:
    """Scripted and random fault choices per S3 operation, with counters. Thread-safe.

    Parameters
    ----------
    known : `~collections.abc.Sequence` [`str`]
        Fault kinds the injector using this plan can inject.
    script : `~collections.abc.Mapping` [`str`, `~collections.abc.Iterable` [`str`]], optional
        Per operation name, what its next requests do, in order: a fault kind
        or ``"ok"``. Operations whose script is used up (or absent) fall back
        to random faults.
    rate : `float`, optional
        Probability in ``[0, 1]`` of a random fault on a request without a script entry.
    kinds : `~collections.abc.Mapping` [`str`, `float`] or `~collections.abc.Sequence` [`str`], optional
        Kinds random faults are drawn from, with relative weights if a
        mapping; ``known``, equally likely, by default.
    operations : `~collections.abc.Iterable` [`str`], optional
        Operations random faults apply to; all by default.
    seed : `int`, optional
        Seed of the random faults.

    Raises
    ------
    ValueError
        If a kind is unknown, the rate is outside ``[0, 1]``, or random
        faults have no kind to draw from.
    """

    def __init__(
        self,
        known: Sequence[str],
        script: Mapping[str, Iterable[str]] | None = None,
        *,
        rate: float = 0.0,
        kinds: Mapping[str, float] | Sequence[str] | None = None,
        operations: Iterable[str] | None = None,
        seed: int = 0,
    ) -> None:
        self.known = tuple(known)
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self._scripts: dict[str, deque[str]] = {}
        self._rate = 0.0
        self._kinds: tuple[str, ...] = self.known
        self._weights: tuple[float, ...] = (1.0,) * len(self.known)
        self._operations: frozenset[str] | None = None
        self._requests: Counter[str] = Counter()
        self._injected: Counter[str] = Counter()
        self._injected_by_operation: Counter[str] = Counter()
        for operation, steps in (script or {}).items():
            self.script(operation, *steps)
        self.set_rate(rate, kinds, operations)

    @property
    def rate(self) -> float:
        """Probability of a random fault on an unscripted request."""
        return self._rate

    def check(self, steps: Iterable[str]) -> None:
        """Raise `ValueError` if a step is neither a known fault kind nor ``"ok"``.

        Parameters
        ----------
        steps : `~collections.abc.Iterable` [`str`]
            Script steps or fault kinds.
        """
        unknown = {s for s in steps if s not in self.known and s not in PASS}
        if unknown:
            raise ValueError(f"unknown fault kind(s) {sorted(unknown)}; known: {self.known} and 'ok'")

    def set_rate(
        self,
        rate: float,
        kinds: Mapping[str, float] | Sequence[str] | None = None,
        operations: Iterable[str] | None = None,
    ) -> None:
        """Change the random faults (see the class parameters of the same names).

        Parameters
        ----------
        rate : `float`
            Probability in ``[0, 1]`` of a random fault.
        kinds : `~collections.abc.Mapping` [`str`, `float`] or `~collections.abc.Sequence` [`str`], optional
            Kinds to draw from, with relative weights if a mapping.
        operations : `~collections.abc.Iterable` [`str`], optional
            Operations random faults apply to; all by default.
        """
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault rate {rate} is not within [0, 1]")
        weights = dict(kinds) if isinstance(kinds, Mapping) else dict.fromkeys(kinds or self.known, 1.0)
        self.check(weights)
        if rate > 0.0 and not any(w > 0 for w in weights.values()):
            raise ValueError("random faults need at least one kind with a positive weight")
        with self._lock:
            self._rate = rate
            self._kinds, self._weights = tuple(weights), tuple(weights.values())
            self._operations = frozenset(operations) if operations is not None else None

    def script(self, operation: str, *steps: str) -> None:
        """Append steps (fault kinds or ``"ok"``) to the script of an operation.

        Parameters
        ----------
        operation : `str`
            S3 operation name, e.g. ``"GetObject"``.
        *steps : `str`
            Fault kinds or ``"ok"``.
        """
        self.check(steps)
        with self._lock:
            self._scripts.setdefault(operation, deque()).extend(steps)

    def pending(self, operation: str) -> int:
        """Return how many scripted steps of an operation are not used yet.

        Parameters
        ----------
        operation : `str`
            S3 operation name.

        Returns
        -------
        pending : `int`
            Number of steps left.
        """
        with self._lock:
            return len(self._scripts.get(operation, ()))

    def choose(self, operation: str) -> tuple[str | None, int]:
        """Count one request of ``operation`` and decide its fault.

        Parameters
        ----------
        operation : `str`
            S3 operation name.

        Returns
        -------
        kind : `str` or `None`
            Fault to inject, or `None` to let the request through.
        number : `int`
            Number of this request among all requests seen (from 1).
        """
        with self._lock:
            self._requests[operation] += 1
            number = self._requests.total()
            steps = self._scripts.get(operation)
            kind: str | None = None
            if steps:
                kind = steps.popleft()
            elif (
                self._rate > 0.0
                and (self._operations is None or operation in self._operations)
                and self._random.random() < self._rate
            ):
                kind = self._random.choices(self._kinds, self._weights)[0]
            if kind in PASS:
                return None, number
            if kind is not None:
                self._injected[kind] += 1
                self._injected_by_operation[operation] += 1
            return kind, number

    @property
    def requests(self) -> Counter[str]:
        """Requests seen so far by operation, faulted or not (a copy)."""
        with self._lock:
            return Counter(self._requests)

    @property
    def injected(self) -> Counter[str]:
        """Faults injected so far by kind (a copy)."""
        with self._lock:
            return Counter(self._injected)

    @property
    def injected_by_operation(self) -> Counter[str]:
        """Faults injected so far by operation (a copy)."""
        with self._lock:
            return Counter(self._injected_by_operation)

    def reset_counters(self) -> None:
        """Zero the counters; scripts and random settings stay."""
        with self._lock:
            for counter in (self._requests, self._injected, self._injected_by_operation):
                counter.clear()


class FaultCounters:
    """Control and counters of a fault injector, delegated to its `FaultPlan` (``_plan``)."""

    _plan: FaultPlan

    def script(self, operation: str, *steps: str) -> None:
        """Append steps (fault kinds or ``"ok"``) to the script of an operation, e.g. ``"GetObject"``.

        Parameters
        ----------
        operation : `str`
            S3 operation name.
        *steps : `str`
            Fault kinds or ``"ok"``.
        """
        self._plan.script(operation, *steps)

    def pending(self, operation: str) -> int:
        """Return how many scripted steps of an operation are not used yet.

        Parameters
        ----------
        operation : `str`
            S3 operation name.

        Returns
        -------
        pending : `int`
            Number of steps left.
        """
        return self._plan.pending(operation)

    @property
    def requests(self) -> Counter[str]:
        """Requests seen so far by operation, faulted or not (a copy)."""
        return self._plan.requests

    @property
    def injected(self) -> Counter[str]:
        """Faults injected so far by kind (a copy)."""
        return self._plan.injected

    @property
    def injected_by_operation(self) -> Counter[str]:
        """Faults injected so far by operation (a copy)."""
        return self._plan.injected_by_operation
