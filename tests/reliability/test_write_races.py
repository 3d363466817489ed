"""Racing writers of one output: exactly one is told "ok", and what it recorded is what is stored.

16 processes (16 quanta) put one output per round: different 17 MiB bodies
(multipart), identical 17 MiB bodies, different and identical small bodies.
Checked on the moto server and SeaweedFS, on both transports (fewer rounds on obstore), whose conditional
CompleteMultipartUpload is not atomic (several writers can each be told they
created the object): s3qbb claims the key with an atomic create-only PUT first
and confirms by the write token. (moto's create-only PUT is atomic only as
`s3qbb.testing.MotoServer` runs it, under a lock: see
``tests/reliability/test_moto_atomic.py``.) A second test classifies each server's
create-only PUT as docs/reliability.md states it (the basis of
``S3EndpointConfig.conditional_put_atomic``).
"""

from __future__ import annotations

import multiprocessing
import uuid
from collections import Counter

import pytest
from reliability_helpers import PREFIX, race_body, race_puts, race_rounds_worker, root_of

from s3qbb.s3 import checksums
from s3qbb.s3.objects import WRITE_PENDING, WRITE_TOKEN
from s3qbb.testing.servers import S3TestEndpoint
from s3qbb.testing.transports import with_transport

WRITERS = 16
MIB = 1024**2
BIG = 17 * MIB
SMALL = 1000
ROUNDS = (
    [("different", BIG)] * 12 + [("identical", BIG)] * 2 + [("different", SMALL), ("identical", SMALL)] * 2
)
ROUNDS_OBSTORE = [("different", BIG), ("identical", BIG)] + [("different", SMALL), ("identical", SMALL)] * 3
"""Fewer rounds on the obstore transport (CI time): its multipart requests are boto3's, raced above."""

CONDITIONAL_PUT_ATOMIC = {"moto": True, "seaweedfs": True, "localstack": True}
"""Whether each test server's create-only PUT is atomic, as docs/reliability.md states.

moto's is atomic as `s3qbb.testing.MotoServer` runs it, under a lock.
"""


@pytest.mark.slow
def test_racing_processes_exactly_one_winner_per_round(
    s3_endpoint: S3TestEndpoint, s3_transport: str
) -> None:
    plan = ROUNDS if s3_transport == "boto3" else ROUNDS_OBSTORE
    rounds = [(uuid.uuid4(), kind, size) for kind, size in plan]
    # Children fork from a server that imported s3qbb and boto3 once (16 fresh interpreters cost more
    # than the race itself on 2 cores); the server has no threads, unlike this process.
    ctx = multiprocessing.get_context("forkserver")
    preload = ["reliability_helpers", "s3qbb.datastores.s3", "boto3", "botocore.client"]
    ctx.set_forkserver_preload([*preload, "obstore"] if s3_transport == "obstore" else preload)
    barrier = ctx.Barrier(WRITERS)
    results = ctx.Queue()
    # Default multipart settings: 17 MiB is 3 parts of at most 8 MiB.
    config = with_transport(s3_endpoint, s3_transport).config
    procs = [
        ctx.Process(
            target=race_rounds_worker,
            args=(config, root_of(s3_endpoint), rounds, i, barrier, results),
        )
        for i in range(WRITERS)
    ]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=300) for _ in range(WRITERS * len(rounds))]
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0

    keys = {
        obj["Key"]: obj["Size"]
        for page in s3_endpoint.client.get_paginator("list_objects_v2").paginate(
            Bucket=s3_endpoint.bucket, Prefix=f"{PREFIX}/"
        )
        for obj in page.get("Contents", [])
    }
    assert len(keys) == len(rounds)
    for round_no, (ref_id, kind, size) in enumerate(rounds):
        mine = [o for o in outcomes if o[0] == round_no]
        assert Counter(o[2] for o in mine) == {"ok": 1, "exists": WRITERS - 1}, (round_no, kind, mine)
        ((_, winner, _, recorded_size, recorded_checksum, token),) = [o for o in mine if o[2] == "ok"]
        (key,) = [k for k in keys if str(ref_id) in k]
        response = s3_endpoint.client.get_object(Bucket=s3_endpoint.bucket, Key=key)
        body = response["Body"].read()
        assert body == race_body(round_no, winner, kind, size)  # the whole of the winner's bytes
        assert recorded_size == len(body) == size
        assert recorded_checksum is not None
        algorithm = checksums.parse(recorded_checksum).algorithm
        expected, _ = checksums.compute_for_upload(algorithm, body, config.checksum_block_size)
        assert str(expected) == recorded_checksum  # full-object and per-block checksums
        assert response["Metadata"][WRITE_TOKEN] == token and WRITE_PENDING not in response["Metadata"]


def _race_create_only_put(endpoint: S3TestEndpoint, key: str) -> int:
    """Let 16 threads put one key with ``If-None-Match: *`` at once; return how many succeeded."""
    wins, errors = race_puts(endpoint, key, WRITERS, IfNoneMatch="*")
    assert set(errors) <= {"PreconditionFailed", "ConditionalRequestConflict"}, errors
    return len(wins)


@pytest.mark.parametrize(
    "server",
    [
        pytest.param("moto", marks=pytest.mark.moto_server),
        pytest.param("seaweedfs", marks=pytest.mark.seaweedfs),
        pytest.param("localstack", marks=pytest.mark.localstack),
    ],
)
def test_create_only_put_is_classified_as_documented(server: str, request: pytest.FixtureRequest) -> None:
    endpoint: S3TestEndpoint = request.getfixturevalue(f"{server}_endpoint")
    endpoint.client.list_buckets()  # connect before racing
    winners = [_race_create_only_put(endpoint, f"classify/{r}") for r in range(3)]
    assert (winners == [1] * 3) is CONDITIONAL_PUT_ATOMIC[server], winners
