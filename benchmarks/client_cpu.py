"""Client CPU per small put and get, without a server: what s3qbb adds to boto3, and what the cache costs.

``python -m benchmarks.client_cpu`` answers the HTTP exchange inside botocore (a
``before-send`` handler returns a canned response), so every side pays boto3's
request building, signing and response parsing and none pays a socket or a
server: the comparison is free of server noise. The sides:

* ``default``: the shipped stack, a `QuantumBackedButler` with the cache tier
  (a get reads a dataset it has not read before: a miss);
* ``cache_off``: the same butler with ``cache.enabled: false``;
* ``boto3``: ``put_object`` with the same client settings, ``ChecksumCRC32C``
  and ``IfNoneMatch="*"``, and ``get_object`` + ``read``;
* ``boto3_meta``: ``boto3`` plus the two metadata entries every s3qbb write
  carries (write token and checksum): what integrity costs boto3 itself.

Also the cost of a cache hit. With ``--instructions`` each side runs in a
child process under valgrind (cachegrind) and the figure is instructions per
operation (the difference of two runs of different lengths): deterministic,
so it can be compared on a busy machine; otherwise the figure is the median
CPU time of an operation (`time.process_time`), sides interleaved.
"""

from __future__ import annotations

import argparse
import base64
import gc
import io
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from .cachegrind import count_instructions, per_operation, print_per_operation, require_valgrind

__all__ = ["SIDES", "STUB", "Stub", "cpu_per_operation", "instructions_per_operation", "main"]

SIDES = ("default", "cache_off", "boto3", "boto3_meta")
ENDPOINT = {
    "endpoint_url": "http://127.0.0.1:9",
    "region": "us-east-1",
    "access_key_id": "a",
    "secret_access_key": "b",
}
_STUB_ID = "benchmarks.client_cpu.Stub"


class Stub:
    """A ``before-send`` handler keeping PUT bodies and metadata and answering GETs with them."""

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, dict[str, str]]] = {}

    def __call__(self, request: Any, **kwargs: Any) -> Any:
        from botocore.awsrequest import AWSResponse
        from urllib3.response import HTTPResponse

        path = request.url.split("?")[0].split("://", 1)[1].split("/", 1)[1]
        if request.method == "PUT":
            body = request.body
            if isinstance(body, bytes | bytearray):
                data = bytes(body)
            else:
                position = body.tell()
                body.seek(0)
                data = body.read()
                body.seek(position)
            meta = {k: v for k, v in request.headers.items() if k.lower().startswith("x-amz-meta-")}
            self.objects[path] = (data, meta)
            empty = HTTPResponse(body=io.BytesIO(b""), preload_content=False)
            return AWSResponse(request.url, 200, {"ETag": '"e"'}, empty)  # type: ignore[arg-type]
        data, meta = self.objects[path]
        headers = {"Content-Length": str(len(data)), "ETag": '"e"', **meta}
        raw = HTTPResponse(body=io.BytesIO(data), headers=headers, preload_content=False)
        return AWSResponse(request.url, 200, headers, raw)  # type: ignore[arg-type]


STUB = Stub()
"""The one handler answering every client of this process (registered once per client)."""


def _payload(kind: str) -> tuple[str, Any, bytes]:
    if kind == "bytes":
        blob = os.urandom(1024)
        return "Bytes", blob, blob
    doc = {f"key{i}": i for i in range(60)}
    return "StructuredDataDict", doc, json.dumps(doc, separators=(",", ":")).encode()


def _crc32c(data: bytes) -> str:
    from awscrt import checksums  # type: ignore[import-untyped]

    return base64.b64encode(checksums.crc32c(data).to_bytes(4, "big")).decode("ascii")


def make_side(side: str, kind: str, count: int) -> tuple[Callable[[int], object], Callable[[int], object]]:
    """Return ``put(i)`` and ``get(i)`` of a side; ``get(i)`` first reads what ``put(i)`` wrote (a miss).

    Every client answers from `STUB` (butlers of one endpoint share their client).
    """
    stub = STUB
    storage_class, obj, data = _payload(kind)
    if side.startswith("boto3"):
        import botocore.loaders

        from s3qbb.config import S3EndpointConfig
        from s3qbb.s3.client import _create_client

        client = _create_client(S3EndpointConfig(**ENDPOINT), botocore.loaders.create_loader())
        client.meta.events.register("before-send", stub, unique_id=_STUB_ID)
        keys = [f"plain/{i}/{uuid.uuid4()}" for i in range(count)]
        checksum = _crc32c(data)
        extra: dict[str, Any] = {}
        if side == "boto3_meta":
            extra["Metadata"] = {
                "s3qbb-write-token": f"{uuid.uuid4()}.{uuid.uuid4()}",
                "s3qbb-checksum": f"CRC32C:{checksum}",
            }

        def put_plain(i: int) -> object:
            return client.put_object(
                Bucket="bench", Key=keys[i], Body=data, ChecksumCRC32C=_crc32c(data), IfNoneMatch="*", **extra
            )

        def get_plain(i: int) -> object:
            return client.get_object(Bucket="bench", Key=keys[i])["Body"].read()

        return put_plain, get_plain
    from s3qbb import DatasetRef, DatasetType, DimensionUniverse, Quantum, QuantumBackedButler

    universe = DimensionUniverse()
    dataset_type = DatasetType("blob", ["instrument", "visit"], storage_class, universe=universe)
    refs = [DatasetRef(dataset_type, {"instrument": "C", "visit": i}, f"run-{side}") for i in range(count)]
    config: dict[str, Any] = {"datastore": {"root": "s3://bench/repo", "endpoint": ENDPOINT}}
    if side == "cache_off":
        config["cache"] = {"enabled": False}
    writer = QuantumBackedButler.initialize(config, Quantum(outputs=refs), universe)
    readers: list[Any] = []

    def stubbed(butler: Any) -> Any:
        store = getattr(butler._datastore, "backend", butler._datastore)
        store.bucket.client.meta.events.register("before-send", stub, unique_id=_STUB_ID)
        return butler

    stubbed(writer)

    def put_butler(i: int) -> object:
        return writer.put(obj, refs[i])

    def get_butler(i: int) -> object:
        if not readers:  # a downstream quantum: it imports the records of what the writer wrote
            records = writer._datastore.export_records(refs)
            readers.append(
                stubbed(
                    QuantumBackedButler.from_predicted(config, [r.id for r in refs], [], universe, records)
                )
            )
        return readers[0].get(refs[i])

    return put_butler, get_butler


def cpu_per_operation(kind: str = "dict", count: int = 600, rounds: int = 3) -> dict[str, dict[str, float]]:
    """Median client CPU seconds of a put, a get (a miss) and a cache hit; sides interleaved by round."""
    samples: dict[str, dict[str, list[float]]] = {side: {"put": [], "get": []} for side in SIDES}
    hits: list[float] = []
    for round_ in range(rounds):
        ops = {side: make_side(side, kind, count + 20) for side in SIDES}
        order = list(SIDES[round_ % len(SIDES) :] + SIDES[: round_ % len(SIDES)])
        for which in ("put", "get"):
            for side in order:
                op = ops[side][0 if which == "put" else 1]
                for i in range(20):
                    op(i)  # warm up (puts of the first 20 refs, then their first reads)
                gc.collect()
                gc.disable()
                try:
                    for i in range(20, 20 + count):
                        c0 = time.process_time()
                        op(i)
                        samples[side][which].append(time.process_time() - c0)
                finally:
                    gc.enable()
        get = ops["default"][1]
        for i in range(20, 20 + count):
            c0 = time.process_time()
            get(i)
            hits.append(time.process_time() - c0)
    out = {side: {which: statistics.median(v) for which, v in by.items()} for side, by in samples.items()}
    out["cache_hit"] = {"get": statistics.median(hits)}
    return out


def _child(side: str, kind: str, puts: int, gets: int) -> None:
    """Run ``puts`` puts then ``gets`` gets (after the same set-up and warm-up whatever the counts)."""
    prepared = 400
    put, get = make_side(side, kind, prepared + 20 + puts)
    for i in range(prepared):
        put(i)
    for i in range(20):
        get(i)
    for i in range(prepared, prepared + 20 + puts):
        put(i)
    for i in range(20, 20 + gets):
        get(i)


def instructions_per_operation(
    kind: str = "dict", short: int = 50, long: int = 250
) -> dict[str, dict[str, float]]:
    """Instructions per put and per get (a miss) of each side, counted by cachegrind in child processes."""
    require_valgrind()
    env = dict(os.environ, PYTHONHASHSEED="0")

    def count(side: str, puts: int, gets: int) -> int:
        args = (side, kind, str(puts), str(gets))
        return count_instructions("benchmarks.client_cpu", args, env, side)

    return per_operation(count, SIDES, short, long)


def _print(results: dict[str, dict[str, float]], unit: str, scale: float) -> None:
    print_per_operation(results, SIDES, "boto3", unit, scale)
    if "cache_hit" in results:
        hit = results["cache_hit"]["get"]
        ratio = results["cache_off"]["get"] / hit
        print(f"cache hit {hit * scale:,.1f}{unit}: {ratio:.0f}x less client CPU than a cache-off get")


def main(argv: list[str] | None = None) -> int:
    """Print the figures (``--json`` for the raw numbers)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.client_cpu", description=__doc__)
    parser.add_argument(
        "--kind", choices=("dict", "bytes"), default="dict", help="a 60-key dict (JSON) or 1 KiB bytes"
    )
    parser.add_argument("--count", type=int, default=600, help="operations per side and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--instructions", action="store_true", help="count instructions under valgrind")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", nargs=4, metavar=("SIDE", "KIND", "PUTS", "GETS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        side, kind, puts, gets = args.child
        _child(side, kind, int(puts), int(gets))
        return 0
    if args.instructions:
        results = instructions_per_operation(args.kind)
        unit, scale = " instr", 1.0
    else:
        results = cpu_per_operation(args.kind, args.count, args.rounds)
        unit, scale = " us", 1e6
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        _print(results, unit, scale)
    return 0


if __name__ == "__main__":
    sys.exit(main())
