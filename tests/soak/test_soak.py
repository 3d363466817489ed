"""Short soak, run by ``make test``: 100 puts and 100 gets via QuantumBackedButler, 20% of requests faulted.

The full run is ``python -m benchmarks.soak`` (1,000 puts and 1,000 gets); see docs/reliability.md.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path

import pytest

from s3qbb.testing.proxy import PROXY_FAULT_KINDS
from s3qbb.testing.servers import S3TestEndpoint

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_short_soak_loses_corrupts_and_invents_nothing(
    seaweedfs_endpoint: S3TestEndpoint, s3_transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(REPO_ROOT))  # benchmarks/ is not an installed package
    soak = importlib.import_module("benchmarks.soak")
    config = soak.SoakConfig(
        ops=100,
        fault_rate=0.2,
        max_size=6 * 1024**2,
        outputs_per_quantum=10,
        workers=4,
        transport=s3_transport,
    )
    started = time.monotonic()
    result = soak.run_soak(seaweedfs_endpoint.server, seaweedfs_endpoint.bucket, config)
    elapsed = time.monotonic() - started
    print(soak.format_table(result))

    assert (result.lost, result.corrupted, result.spurious) == (0, 0, 0), result.examples
    assert (result.wrong_answers, result.records_files_missing) == (0, 0), result.examples
    assert result.puts == 100 and result.quanta == 20
    assert result.puts_ok >= 100 - result.gave_up  # with no spurious errors, a put works or gives up
    assert result.gets == result.puts_ok
    # Faults really happened, of every kind, at about the requested rate.
    # (every kind but ``corrupt`` and ``corrupt_request``, flipped bits, and ``skewed``, a refusal:
    # see SoakConfig.kinds)
    random_kinds = set(PROXY_FAULT_KINDS) - {"corrupt", "corrupt_request", "skewed"}
    assert set(result.faults) == random_kinds and min(result.faults.values()) > 0
    assert sum(result.faults.values()) >= 0.1 * result.requests
    # Every HTTP request came from s3qbb's one retry layer (botocore's own retries are off),
    # and faults were answered by retries. Not one retry per fault exactly: in one CI run 4 of 33
    # resets/truncations were never seen as errors by the client (74 retries for 77 faults) while
    # nothing was lost or corrupted; why is an open question (see the issue note).
    # Every request goes through the one retry layer, with one exception: a retried
    # CompleteMultipartUpload first looks (one HEAD, inside the same attempt) whether the
    # previous try was applied. So requests exceed attempts by at most one per complete sent.
    completes = result.requests_by_operation.get("CompleteMultipartUpload", 0)
    assert 0 <= result.requests - result.attempts <= completes
    assert result.retries + result.gave_up >= 0.9 * sum(result.faults.values())
    assert elapsed < 60
