"""Fixtures of the S3 plumbing tests (the S3 servers come from tests/conftest.py's plugin)."""

from __future__ import annotations

import pytest

__all__ = ["FakeClock"]


class FakeClock:
    """A monotonic clock that only advances when something sleeps or works."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()
