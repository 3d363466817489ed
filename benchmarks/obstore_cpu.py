"""Client cost per small put and get on the obstore transport, layer by layer, against a local moto.

``python -m benchmarks.obstore_cpu`` starts moto in a child process (its CPU is
not the client's) and measures the same 1 KiB JSON put (create-only) and get
through each layer, so the cost of each is the difference between two rows:

* ``obstore_raw``: ``obstore.put(mode="create")`` / ``obstore.get(...).bytes()``
  on a plain store (what the report's raw obstore script does);
* ``obstore_meta``: the same with the object metadata every s3qbb write
  carries (write token, checksum): what integrity costs obstore itself, and,
  in wall time, the server;
* ``transport``: `~s3qbb.s3.obstore_transport.ObstoreTransport` requests;
* ``bucket``: `~s3qbb.s3.objects.S3Bucket` (``put_new`` with its checksum,
  ``get``): the retry policy, counting, ownership;
* ``cache_off`` and ``default``: a `QuantumBackedButler` on the obstore
  transport, cache tier off and on (a get reads a dataset it has not read).

The figure is the median client CPU of an operation (`time.process_time`: all
threads, obstore's tokio workers included), sides interleaved; with
``--instructions`` each side runs in a child process under valgrind
(cachegrind) and the figure is instructions per operation, the difference of
two runs of different lengths. obstore's worker threads make those counts
vary by about 10,000 instructions from run to run (a request is ~300,000).
Wall time is printed too, but on a shared machine only CPU and instructions
compare.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from .cachegrind import count_instructions, per_operation, print_per_operation, require_valgrind

__all__ = ["SIDES", "cpu_per_operation", "instructions_per_operation", "main", "make_side"]

SIDES = ("obstore_raw", "obstore_meta", "transport", "bucket", "cache_off", "default")
BUCKET = "bench"
_LONG = 250
"""Operations of the longer of the two counted runs of a side."""
Op = Callable[[int], object]


def _payload() -> dict[str, int]:
    return {f"key{i}": i for i in range(60)}


def make_side(side: str, endpoint: str, key_id: str, secret: str, count: int) -> tuple[Op, Op]:
    """Return ``put(i)`` and ``get(i)`` of a side; ``get(i)`` reads what ``put(i)`` wrote (a cold read)."""
    from s3qbb.config import S3EndpointConfig

    config = S3EndpointConfig(
        endpoint_url=endpoint,
        access_key_id=key_id,
        secret_access_key=secret,
        region="us-east-1",
        addressing_style="path",
        transport="obstore",
    )
    payload = _payload()
    prefix = f"{side}/{uuid.uuid4().hex[:8]}"
    keys = [f"{prefix}/{i}" for i in range(count)]
    if side.startswith("obstore_"):
        import obstore
        from obstore.store import S3Store

        store = S3Store(
            BUCKET,
            endpoint=endpoint,
            access_key_id=key_id,
            secret_access_key=secret,
            region="us-east-1",
            client_options={"allow_http": True},
            virtual_hosted_style_request=False,
            retry_config={"max_retries": 0},
        )
        meta = None
        if side == "obstore_meta":
            meta = {"s3qbb-write-token": f"{uuid.uuid4().hex}.{uuid.uuid4().hex[:28]}", "s3qbb-checksum": "x"}

        def put_raw(i: int) -> object:
            body = json.dumps(payload).encode()
            return obstore.put(store, keys[i], body, mode="create", attributes=meta)

        def get_raw(i: int) -> object:
            return json.loads(bytes(obstore.get(store, keys[i]).bytes()))

        return put_raw, get_raw
    if side in ("transport", "bucket"):
        from s3qbb.core.attempt import WriteToken
        from s3qbb.s3 import checksums
        from s3qbb.s3.objects import WRITE_CHECKSUM, WRITE_TOKEN, S3Bucket

        bucket = S3Bucket.open(config, BUCKET)
        transport = bucket.transport
        token = WriteToken.new()

        def put_layer(i: int) -> object:
            body = json.dumps(payload).encode()
            checksum = checksums.compute("CRC32C", body)
            if side == "bucket":
                bucket.put_new(keys[i], body, checksum, token=token)
                return None
            meta = {WRITE_TOKEN: str(token), WRITE_CHECKSUM: str(checksum)}
            return transport.put_object(keys[i], body, metadata=meta, checksum=checksum, if_none_match=True)

        def get_layer(i: int) -> object:
            if side == "bucket":
                return json.loads(bucket.get(keys[i]).body)
            return json.loads(transport.get_object(keys[i], None).body)

        return put_layer, get_layer
    return _butler_side(side, config, count)


def _butler_side(side: str, config: Any, count: int) -> tuple[Op, Op]:
    from s3qbb import DatasetRef, DatasetType, DimensionUniverse, Quantum, QuantumBackedButler

    universe = DimensionUniverse()
    dataset_type = DatasetType("doc", ["instrument", "visit"], "StructuredDataDict", universe=universe)
    run = f"run-{side}-{uuid.uuid4().hex[:8]}"
    refs = [DatasetRef(dataset_type, {"instrument": "C", "visit": i}, run) for i in range(count)]
    repo: dict[str, Any] = {
        "datastore": {"root": f"s3://{BUCKET}/repo", "endpoint": json.loads(config.model_dump_json())}
    }
    repo["datastore"]["endpoint"]["secret_access_key"] = config.secret_access_key.get_secret_value()
    if side == "cache_off":
        repo["cache"] = {"enabled": False}
    writer = QuantumBackedButler.initialize(repo, Quantum(outputs=refs), universe)
    readers: list[Any] = []
    payload = _payload()

    def put_butler(i: int) -> object:
        return writer.put(payload, refs[i])

    def get_butler(i: int) -> object:
        if not readers:  # a downstream quantum: it imports the records of what the writer wrote
            records = writer._datastore.export_records(refs)
            readers.append(
                QuantumBackedButler.from_predicted(repo, [r.id for r in refs], [], universe, records)
            )
        return readers[0].get(refs[i])

    return put_butler, get_butler


def _start_moto() -> tuple[Any, str, str, str]:
    from benchmarks.servers import make_server

    server = make_server("moto").start()
    credentials = server.credentials("admin")
    server.client("admin").create_bucket(Bucket=BUCKET)
    return server, server.endpoint_url, credentials.access_key_id, credentials.secret_access_key


def cpu_per_operation(count: int = 300, rounds: int = 3) -> dict[str, dict[str, float]]:
    """Median client CPU and wall seconds of a put and a get of each side; sides interleaved by round."""
    server, endpoint, key_id, secret = _start_moto()
    samples: dict[str, dict[str, list[float]]] = {
        side: {"put": [], "get": [], "put_wall": [], "get_wall": []} for side in SIDES
    }
    try:
        for round_ in range(rounds):
            ops = {side: make_side(side, endpoint, key_id, secret, count + 20) for side in SIDES}
            order = list(SIDES[round_ % len(SIDES) :] + SIDES[: round_ % len(SIDES)])
            for which in ("put", "get"):
                for side in order:
                    op = ops[side][0 if which == "put" else 1]
                    for i in range(20):
                        op(i)
                    gc.collect()
                    gc.disable()
                    try:
                        for i in range(20, 20 + count):
                            c0, w0 = time.process_time(), time.perf_counter()
                            op(i)
                            samples[side][f"{which}_wall"].append(time.perf_counter() - w0)
                            samples[side][which].append(time.process_time() - c0)
                    finally:
                        gc.enable()
    finally:
        server.stop()
    return {side: {k: statistics.median(v) for k, v in by.items()} for side, by in samples.items()}


def _child(side: str, puts: int, gets: int, endpoint: str, key_id: str, secret: str) -> None:
    """Run ``puts`` puts then ``gets`` gets, after the same set-up whatever the counts.

    The set-up writes the objects the gets read (as many as the longest run
    reads), so it costs every run alike and cancels out of the difference.
    """
    prepared = 20 + _LONG
    put, get = make_side(side, endpoint, key_id, secret, prepared + puts)
    for i in range(prepared):
        put(i)
    for i in range(20):
        get(i)
    for i in range(prepared, prepared + puts):
        put(i)
    for i in range(20, 20 + gets):
        get(i)


def instructions_per_operation(short: int = 50, long: int = _LONG) -> dict[str, dict[str, float]]:
    """Instructions per put and per get of each side, counted by cachegrind in child processes."""
    require_valgrind()
    if not 0 < short < long <= _LONG:
        raise ValueError(f"need 0 < short < long <= {_LONG}, got {short} and {long}")
    server, endpoint, key_id, secret = _start_moto()
    env = dict(os.environ, PYTHONHASHSEED="0", S3QBB_BENCH_SECRET=secret)

    def count(side: str, puts: int, gets: int) -> int:
        args = (side, str(puts), str(gets), endpoint, key_id)
        return count_instructions("benchmarks.obstore_cpu", args, env, side)

    try:
        return per_operation(count, SIDES, short, long)
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    """Print the figures (``--json`` for the raw numbers)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.obstore_cpu", description=__doc__)
    parser.add_argument("--count", type=int, default=300, help="operations per side and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--instructions", action="store_true", help="count instructions under valgrind")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        side, puts, gets, endpoint, key_id = args.child
        _child(side, int(puts), int(gets), endpoint, key_id, os.environ["S3QBB_BENCH_SECRET"])
        return 0
    if args.instructions:
        results = instructions_per_operation()
        unit, scale = " instr", 1.0
    else:
        results = cpu_per_operation(args.count, args.rounds)
        unit, scale = " us", 1e6
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print_per_operation(results, SIDES, "obstore_raw", unit, scale)
    return 0


if __name__ == "__main__":
    sys.exit(main())
