"""Throughput sweeps of S3Datastore against plain boto3, on the same server in the same run.

``size``
    `S3Datastore.put` and ``get`` of one object of each size (1 KiB to 64 MiB by
    default) against plain boto3 with the same client settings. Below s3qbb's
    multipart threshold (16 MiB) the reference is ``put_object`` (with the same
    CRC32C checksum header and ``If-None-Match: *``) and ``get_object`` +
    ``read``; from the threshold up it is boto3's managed transfer,
    ``upload_fileobj`` (``ChecksumAlgorithm=CRC32C``) and ``download_fileobj``,
    with s3qbb's transfer settings (16 MiB threshold, 8 MiB parts, 8 threads).
    Reported in MiB/s (bytes over the median time of one operation).
``concurrency``
    `S3Datastore.put_many` and ``get_many`` of a batch of objects (1 KiB and
    256 KiB by default) with ``S3EndpointConfig.max_concurrency`` set to each of
    1, 2, 4, 8, 16, against plain boto3 making the same requests from a
    `~concurrent.futures.ThreadPoolExecutor` of the same size. Reported in
    objects/s.

Every point times both sides interleaved (`benchmarks.harness.run_interleaved`)
and counts the requests of each (`s3qbb.testing.faults.RequestCounter`). Each
point is a case record as `benchmarks.s3_datastore.make_case` makes them, with
the point's coordinates added.
"""

from __future__ import annotations

import functools
import io
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .harness import Side, run_interleaved
from .s3_datastore import BUCKET, BenchContext, crc32c_header, make_case

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from boto3.s3.transfer import TransferConfig

    from s3qbb.core.dataset_ref import DatasetRef
    from s3qbb.datastores.s3 import S3Datastore

__all__ = ["SweepCounts", "concurrency_sweep", "size_label", "size_sweep"]

KIB = 1024
MIB = 2**20


def size_label(size: int) -> str:
    """Return ``size`` in bytes as ``"256 KiB"``, ``"16 MiB"``..."""
    for unit, scale in (("GiB", 2**30), ("MiB", MIB), ("KiB", KIB)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} B"


@dataclass(frozen=True)
class SweepCounts:
    """How much work the sweeps do."""

    sizes: tuple[int, ...] = (KIB, 16 * KIB, 256 * KIB, MIB, 4 * MIB, 16 * MIB, 64 * MIB)
    size_trials: int = 3
    size_bytes_per_trial: int = 32 * MIB
    """Each side moves about this many bytes per trial (``size_max_ops`` operations at most, 1 at least)."""
    size_max_ops: int = 20
    concurrencies: tuple[int, ...] = (1, 2, 4, 8, 16)
    concurrency_objects: tuple[tuple[int, int], ...] = ((KIB, 64), (256 * KIB, 24))
    """(object size, objects per put_many / get_many call)."""
    concurrency_trials: int = 5

    @classmethod
    def quick(cls) -> SweepCounts:
        """Tiny counts for the smoke test: every kind of point runs once, nothing is measured seriously."""
        return cls(
            sizes=(KIB, 256 * KIB, 16 * MIB),
            size_trials=1,
            size_bytes_per_trial=16 * MIB,
            size_max_ops=3,
            concurrencies=(1, 4, 16),
            concurrency_objects=((KIB, 6), (256 * KIB, 3)),
            concurrency_trials=1,
        )


def _transfer_config(ctx: BenchContext) -> TransferConfig:
    """boto3 managed-transfer settings equal to s3qbb's (classic s3transfer)."""
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(
        multipart_threshold=int(ctx.config.multipart_threshold),
        multipart_chunksize=int(ctx.config.multipart_chunksize),
        max_concurrency=ctx.config.max_concurrency,
        preferred_transfer_client="classic",
    )


def _plain_keys(prefix: str, count: int) -> list[str]:
    return [f"boto3/{prefix}/{i}-{uuid.uuid4().hex}.bin" for i in range(count)]


def _delete_keys(ctx: BenchContext, keys: Sequence[str]) -> None:
    """Delete objects with the admin client (one DeleteObjects per 1,000 keys; not counted)."""
    for start in range(0, len(keys), 1000):
        chunk = keys[start : start + 1000]
        objects: list[Any] = [{"Key": k} for k in chunk]
        ctx.admin.delete_objects(Bucket=BUCKET, Delete={"Objects": objects, "Quiet": True})


def _put_raw(ctx: BenchContext, data: bytes, key: str) -> None:
    ctx.plain.put_object(Bucket=BUCKET, Key=key, Body=data)


def _store_keys(store: S3Datastore, refs: Sequence[DatasetRef]) -> list[str]:
    """Object keys of stored datasets (from the records)."""
    records = store.records.get_many([ref.id for ref in refs])
    return [store.key(records[ref.id][0].path) for ref in refs if ref.id in records]


# ------------------------------------------------------------------ size sweep


def size_sweep(
    ctx: BenchContext, counts: SweepCounts, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Throughput of put and get against object size, s3qbb vs boto3 (see the module docstring)."""
    points: list[dict[str, Any]] = []
    for size in counts.sizes:
        began = time.perf_counter()
        points.extend(_size_point(ctx, counts, size))
        if progress is not None:
            elapsed = time.perf_counter() - began
            progress(f"[{ctx.server.name}] size sweep {size_label(size)}: {elapsed:.1f} s")
    threshold = int(ctx.config.multipart_threshold)
    return {
        "what": "put / get of one object, MiB/s from the median time per operation",
        "multipart_threshold": threshold,
        "references": {
            "put": f"put_object below {size_label(threshold)}, upload_fileobj from it",
            "get": f"get_object + read below {size_label(threshold)}, download_fileobj from it",
        },
        "points": points,
    }


def _size_point(ctx: BenchContext, counts: SweepCounts, size: int) -> list[dict[str, Any]]:
    c = counts
    label = size_label(size)
    data = os.urandom(size)
    multipart = size >= int(ctx.config.multipart_threshold)
    transfer = _transfer_config(ctx)
    ops = max(1, min(c.size_max_ops, c.size_bytes_per_trial // size))
    warmup = 1 if size >= MIB else min(ops, 3)
    total = warmup + c.size_trials * ops
    refs = ctx.refs(f"size-{size}", total)
    keys = _plain_keys(f"size-{size}", total)
    written: dict[str, list[int]] = {"s3qbb": [], "boto3": []}

    def plain_write(key: str) -> None:
        if multipart:
            ctx.plain.upload_fileobj(
                io.BytesIO(data), BUCKET, key, ExtraArgs={"ChecksumAlgorithm": "CRC32C"}, Config=transfer
            )
        else:
            ctx.plain.put_object(
                Bucket=BUCKET, Key=key, Body=data, ChecksumCRC32C=crc32c_header(data), IfNoneMatch="*"
            )

    def s3qbb_put(i: int) -> None:
        ctx.store.put(data, refs[i])
        written["s3qbb"].append(i)

    def plain_put(i: int) -> None:
        plain_write(keys[i])
        written["boto3"].append(i)

    def cleanup(side: str) -> None:
        done, written[side] = written[side], []
        if size < MIB or not done:
            return  # small objects stay: cheap, and deleting them would cost the servers' CPU
        if side == "s3qbb":
            _delete_keys(ctx, _store_keys(ctx.store, [refs[i] for i in done]))
        else:
            _delete_keys(ctx, [keys[i] for i in done])

    puts = run_interleaved(
        [Side("s3qbb", s3qbb_put, ctx.store_counter), Side("boto3", plain_put, ctx.plain_counter)],
        server_cpu=ctx.server_cpu,
        trials=c.size_trials,
        ops_per_trial=ops,
        warmup_ops=warmup,
        after_trial=cleanup,
    )
    get_ref = ctx.refs(f"size-{size}-get", 1)[0]
    ctx.store.put(data, get_ref)
    get_key = _plain_keys(f"size-{size}-get", 1)[0]
    plain_write(get_key)

    def s3qbb_get(i: int) -> None:
        if len(ctx.store.get(get_ref)) != size:
            raise AssertionError(f"size sweep: s3qbb read a wrong size at {label}")

    def plain_get(i: int) -> None:
        if multipart:
            buffer = io.BytesIO()
            ctx.plain.download_fileobj(BUCKET, get_key, buffer, Config=transfer)
            got = len(buffer.getbuffer())
        else:
            got = len(ctx.plain.get_object(Bucket=BUCKET, Key=get_key)["Body"].read())
        if got != size:
            raise AssertionError(f"size sweep: boto3 read a wrong size at {label}")

    gets = run_interleaved(
        [Side("s3qbb", s3qbb_get, ctx.store_counter), Side("boto3", plain_get, ctx.plain_counter)],
        server_cpu=ctx.server_cpu,
        trials=c.size_trials,
        ops_per_trial=ops,
        warmup_ops=warmup,
    )
    if ctx.store.get(get_ref) != data:
        raise AssertionError(f"size sweep: s3qbb read back different bytes at {label}")
    if size >= MIB:
        _delete_keys(ctx, [*_store_keys(ctx.store, [get_ref]), get_key])
    if multipart:
        chunk = size_label(transfer.multipart_chunksize)
        parts = f"{chunk} parts, {transfer.max_request_concurrency} threads"
        references = {
            "put": f"upload_fileobj (CRC32C, {parts})",
            "get": f"download_fileobj ({parts})",
        }
    else:
        references = {"put": "put_object (CRC32C header, If-None-Match: *)", "get": "get_object + read"}
    extra = {"ops_per_trial": ops, "multipart": multipart}
    results = []
    for op, timings in (("put", puts), ("get", gets)):
        case = make_case(f"size_{size}_{op}", f"{label} {op}", timings, bytes_per_op=size, extra=dict(extra))
        sides = case["sides"]
        case.update(
            size=size,
            label=label,
            op=op,
            reference_call=references[op],
            throughput_ratio=sides["s3qbb"]["throughput_mib_s"] / sides["boto3"]["throughput_mib_s"],
        )
        results.append(case)
    return results


# ----------------------------------------------------------- concurrency sweep


def concurrency_sweep(
    ctx: BenchContext, counts: SweepCounts, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Objects/s of put_many and get_many against concurrency, s3qbb vs boto3 (see the module docstring)."""
    points: list[dict[str, Any]] = []
    for size, n in counts.concurrency_objects:
        data = os.urandom(size)
        # The objects every get reads: written once per size, by each side.
        get_refs = ctx.refs(f"conc-{size}-get", n)
        ctx.store.put_many((data, ref) for ref in get_refs)
        records = ctx.store.export_records(get_refs)
        get_keys = _plain_keys(f"conc-{size}-get", n)
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(functools.partial(_put_raw, ctx, data), get_keys))
        for concurrency in counts.concurrencies:
            began = time.perf_counter()
            points.extend(_concurrency_point(ctx, counts, data, n, concurrency, records, get_refs, get_keys))
            if progress is not None:
                progress(
                    f"[{ctx.server.name}] concurrency sweep {size_label(size)} x {n}, {concurrency} threads: "
                    f"{time.perf_counter() - began:.1f} s"
                )
        if size >= 64 * KIB:
            _delete_keys(ctx, [*_store_keys(ctx.store, get_refs), *get_keys])
    return {
        "what": "put_many / get_many of a batch, objects/s from the median time per batch",
        "references": {
            "put": "put_object (CRC32C header, If-None-Match: *) from a ThreadPoolExecutor of the same size",
            "get": "get_object + read from a ThreadPoolExecutor of the same size",
        },
        "points": points,
    }


def _concurrency_point(
    ctx: BenchContext,
    counts: SweepCounts,
    data: bytes,
    n: int,
    concurrency: int,
    records: Any,
    get_refs: list[DatasetRef],
    get_keys: list[str],
) -> list[dict[str, Any]]:
    from s3qbb.datastores.s3 import S3Datastore
    from s3qbb.testing.faults import RequestCounter

    size = len(data)
    label = size_label(size)
    trials = counts.concurrency_trials
    config = ctx.config.model_copy(update={"max_concurrency": concurrency})
    store = S3Datastore(f"s3://{BUCKET}/s3qbb", name=ctx.store.name, config=config)
    store.import_records(records)
    counter = RequestCounter(store.bucket.client)
    pool = ThreadPoolExecutor(concurrency, thread_name_prefix=f"boto3-{concurrency}")
    # Batch 0 is the warm-up of each side, then one batch per trial.
    batches = [ctx.refs(f"conc-{size}-{concurrency}-{t}", n) for t in range(1 + trials)]
    key_batches = [_plain_keys(f"conc-{size}-{concurrency}-{t}", n) for t in range(1 + trials)]
    written: dict[str, list[int]] = {"s3qbb": [], "boto3": []}

    def plain_put_one(key: str) -> None:
        ctx.plain.put_object(
            Bucket=BUCKET, Key=key, Body=data, ChecksumCRC32C=crc32c_header(data), IfNoneMatch="*"
        )

    def s3qbb_put(t: int) -> None:
        store.put_many((data, ref) for ref in batches[t])
        written["s3qbb"].append(t)

    def plain_put(t: int) -> None:
        list(pool.map(plain_put_one, key_batches[t]))
        written["boto3"].append(t)

    def cleanup(side: str) -> None:
        done, written[side] = written[side], []
        if size < 64 * KIB or not done:
            return
        if side == "s3qbb":
            _delete_keys(ctx, [k for t in done for k in _store_keys(store, batches[t])])
        else:
            _delete_keys(ctx, [k for t in done for k in key_batches[t]])

    def s3qbb_get(t: int) -> None:
        got = store.get_many(get_refs)
        if len(got) != n or any(len(v) != size for v in got.values()):
            raise AssertionError("concurrency sweep: s3qbb read wrong data")

    def plain_get_one(key: str) -> int:
        return len(ctx.plain.get_object(Bucket=BUCKET, Key=key)["Body"].read())

    def plain_get(t: int) -> None:
        if sum(pool.map(plain_get_one, get_keys)) != n * size:
            raise AssertionError("concurrency sweep: boto3 read wrong data")

    try:
        puts = run_interleaved(
            [Side("s3qbb", s3qbb_put, counter), Side("boto3", plain_put, ctx.plain_counter)],
            server_cpu=ctx.server_cpu,
            trials=trials,
            ops_per_trial=1,
            warmup_ops=1,
            after_trial=cleanup,
        )
        gets = run_interleaved(
            [Side("s3qbb", s3qbb_get, counter), Side("boto3", plain_get, ctx.plain_counter)],
            server_cpu=ctx.server_cpu,
            trials=trials,
            ops_per_trial=1,
            warmup_ops=1,
        )
    finally:
        counter.detach()
        pool.shutdown()
        store.close()
    results = []
    for op, timings in (("put", puts), ("get", gets)):
        what = f"{op}_many of {n} x {label}, {concurrency} threads"
        case = make_case(
            f"conc_{size}_{concurrency}_{op}",
            what,
            timings,
            extra={"objects_per_op": n, "s3qbb_max_workers": store.max_workers, "boto3_threads": concurrency},
        )
        rates = {side: n / s["wall_median_s"] for side, s in case["sides"].items()}
        case.update(
            size=size,
            label=label,
            concurrency=concurrency,
            op=op,
            objects_per_op=n,
            objects_per_s=rates,
            speed_ratio=rates["s3qbb"] / rates["boto3"],
            requests_per_object={side: s["requests_per_op"] / n for side, s in case["sides"].items()},
        )
        results.append(case)
    return results
