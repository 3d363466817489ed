"""DatastoreStats: retries counted locally or read from a retry policy, and reset in both cases."""

from __future__ import annotations

from s3qbb.datastores.base import DatastoreStats


def test_retries_counted_here() -> None:
    stats = DatastoreStats()
    stats.add(retries=2, bytes_read=5)
    assert stats.retries == 2 and stats.snapshot()["retries"] == 2
    stats.reset()
    assert stats.retries == 0 and stats.bytes_read == 0


def test_retries_read_from_a_source_and_reset_against_it() -> None:
    seen = [3]
    stats = DatastoreStats(retry_source=lambda: seen[0])
    assert stats.retries == 3 and stats.snapshot()["retries"] == 3
    stats.reset()
    assert stats.retries == 0
    seen[0] = 7
    assert stats.retries == 4 and stats.snapshot()["retries"] == 4


def test_bytes_counters_of_the_put_and_get_paths() -> None:
    stats = DatastoreStats()
    stats.add_written(10)
    stats.add_read(3)
    stats.add(bytes_written=1, bytes_read=1)
    assert (stats.bytes_written, stats.bytes_read) == (11, 4)
