"""Races: many writers put the same output (same dataset ID, different bytes) at once; exactly one wins."""

from __future__ import annotations

import json
import multiprocessing
import threading
from collections import Counter

import pytest
from reliability_helpers import PREFIX, make_ref, race_worker, repo_config, root_of

from s3qbb.butler import QuantumBackedButler
from s3qbb.errors import DatasetExistsError
from s3qbb.s3 import make_client
from s3qbb.testing.backdoors import S3Backdoor
from s3qbb.testing.servers import S3TestEndpoint

pytestmark = pytest.mark.seaweedfs

WRITERS = 16


def _stored_writer(endpoint: S3TestEndpoint, ref_id: object) -> int:
    """Return the ``writer`` field of the one object holding the dataset, read through the raw client."""
    backdoor = S3Backdoor(endpoint.client, endpoint.bucket, PREFIX)
    keys = [k for k in backdoor.keys() if str(ref_id) in k]  # noqa: SIM118 (a method, not a dict)
    assert len(keys) == 1, keys
    body = endpoint.client.get_object(Bucket=endpoint.bucket, Key=keys[0])["Body"].read()
    value = json.loads(body)
    assert value["pad"] == "x" * value["writer"]  # the whole of one writer's bytes, not a mix
    return int(value["writer"])


def test_processes_race_to_put_the_same_output(seaweedfs_endpoint: S3TestEndpoint) -> None:
    ref = make_ref("race", 1)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WRITERS)
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=race_worker,
            args=(seaweedfs_endpoint.config, root_of(seaweedfs_endpoint), ref.id, i, barrier, results),
        )
        for i in range(WRITERS)
    ]
    for proc in procs:
        proc.start()
    outcomes = dict(results.get(timeout=120) for _ in procs)
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0

    assert Counter(outcomes.values()) == {"ok": 1, "exists": WRITERS - 1}, outcomes
    (winner,) = [i for i, outcome in outcomes.items() if outcome == "ok"]
    assert _stored_writer(seaweedfs_endpoint, ref.id) == winner


def test_threads_race_to_put_the_same_output(seaweedfs_endpoint: S3TestEndpoint) -> None:
    ref = make_ref("race", 2)
    config = repo_config(seaweedfs_endpoint)
    butlers = [
        QuantumBackedButler.from_predicted(config, [], [ref.id], ref.datasetType.dimensions.universe, {})
        for _ in range(WRITERS)
    ]
    make_client(seaweedfs_endpoint.config).list_buckets()  # the shared client is connected before the race
    barrier = threading.Barrier(WRITERS)
    outcomes: dict[int, str] = {}

    def write(index: int) -> None:
        barrier.wait(timeout=30)
        try:
            butlers[index].put({"writer": index, "pad": "x" * index}, ref)
        except DatasetExistsError:
            outcomes[index] = "exists"
        else:
            outcomes[index] = "ok"

    threads = [threading.Thread(target=write, args=(i,)) for i in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert Counter(outcomes.values()) == {"ok": 1, "exists": WRITERS - 1}, outcomes
    (winner,) = [i for i, outcome in outcomes.items() if outcome == "ok"]
    assert _stored_writer(seaweedfs_endpoint, ref.id) == winner
    assert butlers[winner].get(ref) == {"writer": winner, "pad": "x" * winner}
    provenance = [b.extract_provenance_data() for b in butlers]
    assert [p.actual_outputs for p in provenance].count(frozenset({ref.id})) == 1  # only the winner's
    for butler in butlers:
        butler.close()
