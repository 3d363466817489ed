"""S3Datastore against plain boto3, on the same S3 server in the same run.

For each server (moto in a child process, SeaweedFS ``weed mini``), every case
times s3qbb and plain boto3 doing the same work, interleaved (see
`benchmarks.harness`), and counts the HTTP requests each side sends:

``small``
    1 KiB `S3Datastore.put` / ``get`` against ``put_object`` / ``get_object`` +
    read, with the same client settings (`s3qbb.s3.client._create_client`), the
    same CRC32C checksum header and ``If-None-Match: *`` (side ``boto3``), and
    against a default boto3 client sending no explicit checksum (side
    ``boto3_default``).
``stored_many``
    `S3Datastore.stored_many` over refs of one run against one paginated
    ``list_objects_v2`` over the run's prefix, both answering "which exist".
``large``
    a large (64 MiB) ``put``/``get`` against boto3's managed transfer
    (``upload_fileobj`` / ``download_fileobj`` with s3transfer's defaults).
``many``
    `S3Datastore.put_many` / ``get_many`` of many 1 KiB datasets against the
    same requests made one after the other with plain boto3.
``memory``
    peak RSS of a fresh process doing small puts and gets with s3qbb against one
    doing them with boto3 only.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .child_processes import compile_bytecode, job_environment
from .harness import Side, run_interleaved, summarise
from .servers import REPO_ROOT, MotoProcessServer, process_cpu_seconds, server_pid

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from mypy_boto3_s3 import S3Client

    from s3qbb.core.dataset_ref import DatasetRef
    from s3qbb.datastores.s3 import S3Datastore
    from s3qbb.testing.faults import RequestCounter
    from s3qbb.testing.servers import S3TestEndpoint, S3TestServer

__all__ = [
    "BUCKET",
    "CASES",
    "BenchContext",
    "Counts",
    "cpu_bound_ceiling",
    "crc32c_header",
    "make_case",
    "memory_sides",
]

BUCKET = "s3qbb-bench"
SMALL_SIZE = 1024
_MIB = 2**20


@dataclass(frozen=True)
class Counts:
    """How much work each case does."""

    small_trials: int = 10
    small_ops: int = 20
    small_warmup: int = 10
    stored_many_refs: int = 500
    stored_many_trials: int = 15
    large_mib: int = 64
    large_trials: int = 4
    many_refs: int = 1000
    many_trials: int = 3
    memory_ops: int = 300
    memory_runs: int = 2

    @classmethod
    def quick(cls) -> Counts:
        """Counts for a CI smoke run (both servers in under a minute)."""
        return cls(3, 10, 5, 200, 5, 20, 2, 200, 2, 50, 1)

    @classmethod
    def tiny(cls) -> Counts:
        """Counts for the test suite: every case runs, nothing is measured seriously."""
        return cls(2, 3, 1, 10, 2, 17, 1, 10, 1, 5, 1)


def crc32c_header(data: bytes) -> str:
    """Return the ``x-amz-checksum-crc32c`` value of ``data``, computed as s3qbb does (awscrt)."""
    from awscrt import checksums  # type: ignore[import-untyped]

    value: int = checksums.crc32c(data)
    return base64.b64encode(value.to_bytes(4, "big")).decode("ascii")


class BenchContext:
    """Per-server state shared by the cases: the datastore, the boto3 clients, their counters.

    Parameters
    ----------
    server : `s3qbb.testing.servers.S3TestServer`
        A running server; it is reset and gets an empty bucket.
    counts : `Counts`
        Work sizes.
    """

    def __init__(self, server: S3TestServer, counts: Counts) -> None:
        import boto3
        import botocore.config
        import botocore.loaders

        from s3qbb.datastores.s3 import S3Datastore
        from s3qbb.s3.client import _create_client
        from s3qbb.testing.faults import RequestCounter

        self.server = server
        self.counts = counts
        self.endpoint: S3TestEndpoint = server.endpoint(BUCKET)
        self.config = self.endpoint.config
        self.admin = self.endpoint.client
        self.store: S3Datastore = S3Datastore(f"s3://{BUCKET}/s3qbb", name="bench", config=self.config)
        self.store_counter: RequestCounter = RequestCounter(self.store.bucket.client)
        # Plain boto3 with s3qbb's client settings (no botocore retries, checksums only when required).
        self.plain: S3Client = _create_client(self.config, botocore.loaders.create_loader())
        self.plain_counter: RequestCounter = RequestCounter(self.plain)
        creds = server.credentials("admin")
        session = boto3.Session(
            aws_access_key_id=creds.access_key_id,
            aws_secret_access_key=creds.secret_access_key,
            region_name="us-east-1",
        )
        # A default boto3 client (path addressing only, for the loopback endpoint).
        self.default: S3Client = session.client(
            "s3",
            endpoint_url=server.endpoint_url,
            config=botocore.config.Config(s3={"addressing_style": "path"}),
        )
        self.default_counter: RequestCounter = RequestCounter(self.default)
        pid = server_pid(server)
        self.server_cpu: Callable[[], float] | None = (
            (lambda: process_cpu_seconds(pid)) if pid is not None else None
        )

    def refs(self, run: str, count: int) -> list[DatasetRef]:
        """Return ``count`` fresh refs of dataset type ``blob`` (storage class ``Bytes``) in one run."""
        from s3qbb.testing.data import RefMaker

        maker = RefMaker(run=run)
        return [maker.make("Bytes", name="blob") for _ in range(count)]

    def close(self) -> None:
        """Close the datastore and the clients this context made."""
        for counter in (self.store_counter, self.plain_counter, self.default_counter):
            counter.detach()
        self.store.close()
        self.plain.close()
        self.default.close()


def _plain_key(case: str, i: int) -> str:
    return f"boto3/{case}/blob/{i}/blob_{i % 200}_{uuid.uuid4()}.bin"


def make_case(
    name: str,
    what: str,
    results: dict[str, Any],
    *,
    reference: str = "boto3",
    bytes_per_op: int = 0,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the JSON record of one case: per-side summaries and ratios to the ``reference`` side."""
    sides = {side: summarise(result, bytes_per_op=bytes_per_op) for side, result in results.items()}
    ref = sides[reference]
    ratios = {
        side: {
            "time": s["wall_median_s"] / ref["wall_median_s"],
            "cpu": s["cpu_median_s"] / ref["cpu_median_s"] if ref["cpu_median_s"] > 0 else float("nan"),
        }
        for side, s in sides.items()
    }
    return {
        "name": name,
        "what": what,
        "reference": reference,
        "sides": sides,
        "ratios": ratios,
        "extra": extra or {},
    }


# --------------------------------------------------------------------- cases


def case_small(ctx: BenchContext) -> list[dict[str, Any]]:
    """1 KiB put and get: s3qbb vs matched boto3 vs default boto3."""
    c = ctx.counts
    total = c.small_warmup + c.small_trials * c.small_ops
    data = os.urandom(SMALL_SIZE)
    refs = ctx.refs("small", total)
    plain_keys = [_plain_key("small", i) for i in range(total)]
    default_keys = [_plain_key("small-default", i) for i in range(total)]

    def plain_put(i: int) -> None:
        ctx.plain.put_object(
            Bucket=BUCKET, Key=plain_keys[i], Body=data, ChecksumCRC32C=crc32c_header(data), IfNoneMatch="*"
        )

    def plain_get(i: int) -> None:
        ctx.plain.get_object(Bucket=BUCKET, Key=plain_keys[i])["Body"].read()

    def default_get(i: int) -> None:
        ctx.default.get_object(Bucket=BUCKET, Key=default_keys[i])["Body"].read()

    puts = run_interleaved(
        [
            Side("s3qbb", lambda i: ctx.store.put(data, refs[i]), ctx.store_counter),
            Side("boto3", plain_put, ctx.plain_counter),
            Side(
                "boto3_default",
                lambda i: ctx.default.put_object(Bucket=BUCKET, Key=default_keys[i], Body=data),
                ctx.default_counter,
            ),
        ],
        server_cpu=ctx.server_cpu,
        trials=c.small_trials,
        ops_per_trial=c.small_ops,
        warmup_ops=c.small_warmup,
    )
    gets = run_interleaved(
        [
            Side("s3qbb", lambda i: ctx.store.get(refs[i % total]), ctx.store_counter),
            Side("boto3", lambda i: plain_get(i % total), ctx.plain_counter),
            Side("boto3_default", lambda i: default_get(i % total), ctx.default_counter),
        ],
        server_cpu=ctx.server_cpu,
        trials=c.small_trials,
        ops_per_trial=c.small_ops,
        warmup_ops=c.small_warmup,
    )
    if ctx.store.get(refs[0]) != data:
        raise AssertionError("small: s3qbb read back different bytes")
    note = {
        "boto3": "same client settings as s3qbb, ChecksumCRC32C + IfNoneMatch='*' on put",
        "boto3_default": "default boto3 client (CRC32 computed by botocore), no explicit checksum",
    }
    return [
        make_case("small_put", "1 KiB put", puts, bytes_per_op=SMALL_SIZE, extra=note),
        make_case("small_get", "1 KiB get (+ read)", gets, bytes_per_op=SMALL_SIZE, extra=note),
    ]


def case_stored_many(ctx: BenchContext) -> list[dict[str, Any]]:
    """stored_many over refs of one run vs one plain list_objects_v2 over the run prefix."""
    c = ctx.counts
    refs = ctx.refs("stored_many", c.stored_many_refs)
    ctx.store.put_many((os.urandom(64), ref) for ref in refs)
    records = ctx.store.records.get_many([ref.id for ref in refs])
    keys = [ctx.store.key(records[ref.id][0].path) for ref in refs]
    prefix = ctx.store.key("stored_many/")

    def s3qbb_op(i: int) -> None:
        found = ctx.store.stored_many(refs)
        if not all(found.values()):
            raise AssertionError("stored_many: s3qbb missed datasets")

    def plain_op(i: int) -> None:
        listed: set[str] = set()
        paginator = ctx.plain.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=BUCKET, Prefix=prefix):
            listed.update(item["Key"] for item in page.get("Contents", []))
        found = {key: key in listed for key in keys}
        if not all(found.values()):
            raise AssertionError("stored_many: boto3 missed keys")

    results = run_interleaved(
        [Side("s3qbb", s3qbb_op, ctx.store_counter), Side("boto3", plain_op, ctx.plain_counter)],
        server_cpu=ctx.server_cpu,
        trials=c.stored_many_trials,
        ops_per_trial=1,
        warmup_ops=2,
    )
    return [make_case("stored_many", f"existence of {len(refs)} refs of one run", results)]


def case_large(ctx: BenchContext) -> list[dict[str, Any]]:
    """Large put/get vs upload_fileobj/download_fileobj with s3transfer defaults."""
    from boto3.s3.transfer import TransferConfig

    c = ctx.counts
    size = c.large_mib * _MIB
    data = os.urandom(size)
    transfer = TransferConfig(preferred_transfer_client="classic")
    refs = ctx.refs("large", 2 + c.large_trials + 1)
    written: dict[str, str] = {}

    def s3qbb_put(i: int) -> None:
        ctx.store.put(data, refs[i])
        written["s3qbb"] = refs[i].id.hex

    def plain_put(i: int) -> None:
        key = _plain_key("large", i)
        ctx.plain.upload_fileobj(io.BytesIO(data), BUCKET, key, Config=transfer)
        written["boto3"] = key

    def cleanup(side: str) -> None:
        target = written.pop(side, None)
        if target is None:
            return
        if side == "s3qbb":
            ref = next(r for r in refs if r.id.hex == target)
            ctx.store.remove(ref)
        else:
            ctx.admin.delete_object(Bucket=BUCKET, Key=target)

    puts = run_interleaved(
        [Side("s3qbb", s3qbb_put, ctx.store_counter), Side("boto3", plain_put, ctx.plain_counter)],
        server_cpu=ctx.server_cpu,
        trials=c.large_trials,
        ops_per_trial=1,
        warmup_ops=1,
        after_trial=cleanup,
    )
    get_ref = refs[-1]
    ctx.store.put(data, get_ref)
    get_key = _plain_key("large-get", 0)
    ctx.plain.upload_fileobj(io.BytesIO(data), BUCKET, get_key, Config=transfer)

    def s3qbb_get(i: int) -> None:
        if len(ctx.store.get(get_ref)) != size:
            raise AssertionError("large: s3qbb read a wrong size")

    def plain_get(i: int) -> None:
        buffer = io.BytesIO()
        ctx.plain.download_fileobj(BUCKET, get_key, buffer, Config=transfer)
        if len(buffer.getbuffer()) != size:
            raise AssertionError("large: boto3 read a wrong size")

    gets = run_interleaved(
        [Side("s3qbb", s3qbb_get, ctx.store_counter), Side("boto3", plain_get, ctx.plain_counter)],
        server_cpu=ctx.server_cpu,
        trials=c.large_trials,
        ops_per_trial=1,
        warmup_ops=1,
    )
    ctx.store.remove(get_ref)
    ctx.admin.delete_object(Bucket=BUCKET, Key=get_key)
    extra = {
        "s3qbb": {
            "multipart_threshold": int(ctx.config.multipart_threshold),
            "multipart_chunksize": int(ctx.config.multipart_chunksize),
            "max_concurrency": ctx.config.max_concurrency,
            "max_pool_connections": ctx.config.max_pool_connections,
        },
        "boto3": {
            "multipart_threshold": transfer.multipart_threshold,
            "multipart_chunksize": transfer.multipart_chunksize,
            "max_concurrency": transfer.max_request_concurrency,
            "transfer_client": "classic s3transfer",
        },
    }
    what = f"{c.large_mib} MiB"
    return [
        make_case("large_put", f"{what} put", puts, bytes_per_op=size, extra=extra),
        make_case("large_get", f"{what} get", gets, bytes_per_op=size, extra=extra),
    ]


def case_many(ctx: BenchContext) -> list[dict[str, Any]]:
    """put_many/get_many of many 1 KiB datasets vs sequential plain boto3."""
    c = ctx.counts
    n = c.many_refs
    data = os.urandom(SMALL_SIZE)
    batches = [ctx.refs(f"many{t}", n) for t in range(c.many_trials)]
    warm_refs = ctx.refs("many_warm", 16)
    plain_batches = [[_plain_key(f"many{t}", i) for i in range(n)] for t in range(c.many_trials)]
    threaded_batches = [[_plain_key(f"many-threads{t}", i) for i in range(n)] for t in range(c.many_trials)]
    # Raw boto3 from a pool of as many threads as put_many/get_many use: what boto3 itself reaches
    # concurrently on this machine (the GIL and botocore's CPU per request), the floor under the target.
    pool = ThreadPoolExecutor(ctx.store.max_workers)

    def put_one(key: str) -> None:
        ctx.plain.put_object(
            Bucket=BUCKET, Key=key, Body=data, ChecksumCRC32C=crc32c_header(data), IfNoneMatch="*"
        )

    def get_one(key: str) -> None:
        ctx.plain.get_object(Bucket=BUCKET, Key=key)["Body"].read()

    def plain_put(t: int) -> None:
        for key in plain_batches[t]:
            put_one(key)

    def plain_get(t: int) -> None:
        for key in plain_batches[0]:
            get_one(key)

    def threaded_put(t: int) -> None:
        list(pool.map(put_one, threaded_batches[t]))

    def threaded_get(t: int) -> None:
        list(pool.map(get_one, plain_batches[0]))

    def plain_warm() -> None:
        for i in range(len(warm_refs)):
            ctx.plain.put_object(Bucket=BUCKET, Key=_plain_key("many_warm", i), Body=data)

    puts = run_interleaved(
        [
            Side(
                "s3qbb",
                lambda t: ctx.store.put_many((data, ref) for ref in batches[t]),
                ctx.store_counter,
                warmup=lambda: ctx.store.put_many((data, ref) for ref in warm_refs),
            ),
            Side("boto3", plain_put, ctx.plain_counter, warmup=plain_warm),
            Side("boto3_threads", threaded_put, ctx.plain_counter, warmup=plain_warm),
        ],
        server_cpu=ctx.server_cpu,
        trials=c.many_trials,
        ops_per_trial=1,
        warmup_ops=0,
    )

    def s3qbb_get(t: int) -> None:
        got = ctx.store.get_many(batches[0])
        if len(got) != n:
            raise AssertionError("many: s3qbb read a wrong number of datasets")

    gets = run_interleaved(
        [
            Side("s3qbb", s3qbb_get, ctx.store_counter, warmup=lambda: ctx.store.get_many(warm_refs)),
            Side("boto3", plain_get, ctx.plain_counter, warmup=plain_warm),
            Side("boto3_threads", threaded_get, ctx.plain_counter, warmup=plain_warm),
        ],
        server_cpu=ctx.server_cpu,
        trials=c.many_trials,
        ops_per_trial=1,
        warmup_ops=0,
    )
    pool.shutdown()
    extra = {
        "datasets_per_op": n,
        "s3qbb_max_workers": ctx.store.max_workers,
        "boto3": "sequential",
        "boto3_threads": f"a pool of {ctx.store.max_workers} threads",
    }
    results = [
        make_case("many_put", f"put_many of {n} x 1 KiB", puts, extra=dict(extra)),
        make_case("many_get", f"get_many of {n} x 1 KiB", gets, extra=dict(extra)),
    ]
    server_gil = isinstance(ctx.server, MotoProcessServer)
    for result in results:
        for side, key in (("boto3", "machine_speedup_ceiling"), ("s3qbb", "s3qbb_cpu_speedup_ceiling")):
            result["extra"][key] = cpu_bound_ceiling(result, costs_of=side, server_gil=server_gil)
    return results


def cpu_bound_ceiling(result: dict[str, Any], *, costs_of: str, server_gil: bool) -> float:
    """Best speed-up over sequential boto3 that CPU allows on this machine for a bulk case.

    If the work costs client CPU ``c`` (serialised by the GIL, so at most one core)
    and server CPU ``s``, on ``n`` cores no concurrent client can finish it faster
    than ``max(c, (c + s) / n)``, nor faster than ``s`` when the server is a single
    Python process (moto). The sequential side's wall time divided by that bound
    is the ceiling. With ``costs_of="boto3"`` (the sequential side's own costs)
    it bounds any client that adds no CPU; with ``"s3qbb"`` it uses what s3qbb
    spent. Approximate: CPU per request grows under contention.
    """
    seq = result["sides"]["boto3"]["wall_median_s"]
    costs = result["sides"][costs_of]
    client, server = costs["cpu_median_s"], costs["server_cpu_per_op_s"]
    if server != server:  # NaN: server CPU unknown
        server = 0.0
    cores = os.cpu_count() or 1
    bound = max(client, (client + server) / cores, server if server_gil else 0.0)
    return float(seq / bound) if bound > 0 else float("nan")


def memory_sides(
    server: S3TestServer, sides: Sequence[str], *, ops: int, runs: int, bucket: str = BUCKET
) -> dict[str, dict[str, Any]]:
    """Peak RSS of fresh processes doing ``ops`` small puts and gets, per side of `benchmarks.memory_child`.

    Each run starts one child per side, in an order rotating from run to run;
    the figures of a side are medians over its runs. The children run from
    bytecode, as an installed s3qbb does (`benchmarks.child_processes`):
    compiling modules from source would add the compiler's memory to the peak.
    """
    compile_bytecode()
    env = job_environment(os.environ)
    creds = server.credentials("admin")
    reports: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
    for run in range(runs):
        shift = run % len(sides)
        for side in [*sides[shift:], *sides[:shift]]:
            job = {
                "side": side,
                "endpoint_url": server.endpoint_url,
                "bucket": bucket,
                "access_key_id": creds.access_key_id,
                "secret_access_key": creds.secret_access_key,
                "prefix": f"memory/{side}/{run}-{uuid.uuid4().hex[:8]}",
                "count": ops,
                "size": SMALL_SIZE,
            }
            done = subprocess.run(
                [sys.executable, "-m", "benchmarks.memory_child"],
                cwd=REPO_ROOT,
                env=env,
                input=json.dumps(job),
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(f"memory child ({side}) failed:\n{done.stderr[-2000:]}")
            reports[side].append(json.loads(done.stdout.strip().splitlines()[-1]))
    summary: dict[str, dict[str, Any]] = {}
    for side, found in reports.items():
        peak = sorted(r["maxrss_kib"] for r in found)[len(found) // 2]
        imported = sorted(r["import_rss_kib"] for r in found)[len(found) // 2]
        summary[side] = {
            "runs": len(found),
            "maxrss_kib": peak,
            "import_rss_kib": imported,
            "growth_kib": peak - imported,
            "seconds": sorted(r["seconds"] for r in found)[len(found) // 2],
            "raw": found,
        }
    return summary


def case_memory(ctx: BenchContext) -> list[dict[str, Any]]:
    """Peak RSS of a fresh process doing small puts and gets, s3qbb vs boto3."""
    c = ctx.counts
    sides = memory_sides(ctx.server, ("s3qbb", "boto3"), ops=c.memory_ops, runs=c.memory_runs)
    return [
        {
            "name": "memory",
            "what": f"peak RSS, {c.memory_ops} x 1 KiB put+get in a fresh process",
            "reference": "boto3",
            "sides": sides,
            "ratios": {
                side: {"maxrss": s["maxrss_kib"] / sides["boto3"]["maxrss_kib"]} for side, s in sides.items()
            },
            "extra": {"ops": c.memory_ops},
        }
    ]


CASES: dict[str, Callable[[BenchContext], list[dict[str, Any]]]] = {
    "small": case_small,
    "stored_many": case_stored_many,
    "large": case_large,
    "many": case_many,
    "memory": case_memory,
}
"""Case groups by name (``--only`` takes these names)."""
