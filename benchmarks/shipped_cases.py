"""The cases of `benchmarks.shipped`: small put and cold get, 64 MiB put and get, peak RSS.

See `benchmarks.shipped` for the sides and how each is measured; `run_shipped`
runs every case against one server.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections import Counter
from typing import TYPE_CHECKING, Any

from .harness import Side, run_interleaved
from .s3_datastore import crc32c_header, make_case, memory_sides
from .shipped import (
    BUCKET,
    REFERENCES,
    SIDE_LABELS,
    ShippedContext,
    ShippedCounts,
    StatsCounter,
    export_records,
    small_payload,
    stats_of,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from s3qbb.core.dataset_ref import DatasetRef
    from s3qbb.datastores.stats import DatastoreStats
    from s3qbb.testing.servers import S3TestServer

__all__ = ["CASES", "case_large", "case_memory", "case_small", "run_shipped"]

_MIB = 2**20


def _finish_case(case: dict[str, Any], ctx: ShippedContext) -> dict[str, Any]:
    """Add ratios against raw obstore and the sides left out to a case record."""
    sides = case["sides"]
    if "obstore_raw" in sides:
        ref = sides["obstore_raw"]
        case["ratios_vs_obstore"] = {
            side: {
                "time": s["wall_median_s"] / ref["wall_median_s"],
                "cpu": s["cpu_median_s"] / ref["cpu_median_s"] if ref["cpu_median_s"] > 0 else math.nan,
            }
            for side, s in sides.items()
        }
    case["unavailable"] = dict(ctx.unavailable)
    return case


def _drop_cached(store: Any) -> None:
    """Empty the cache tier of a butler (a no-op without one)."""
    clear = getattr(getattr(store, "_datastore", store), "clear_cache", None)
    if callable(clear):
        clear()


def _close_all(stores: Sequence[Any]) -> None:
    for store in stores:
        store.close()


# ------------------------------------------------------------------------ cases


def case_small(ctx: ShippedContext) -> list[dict[str, Any]]:
    """1 KiB JSON put and cold get: every side (see the module docstring)."""
    c = ctx.counts
    total = c.small_warmup + c.small_trials * c.small_ops
    payload = small_payload()
    refs = {side: ctx.refs(ctx.small_type, side, total) for side in ctx.s3qbb_sides()}
    writers = {side: ctx.writer(side, refs[side]) for side in refs}
    keys = {side: [ctx.raw_key(side, "small", i) for i in range(total)] for side in REFERENCES}

    def s3qbb_put(side: str) -> Side:
        store, side_refs = writers[side], refs[side]
        return Side(side, lambda i: store.put(payload, side_refs[i]), StatsCounter(stats_of(store)))

    def boto3_put(i: int) -> None:
        body = json.dumps(payload).encode()
        ctx.plain.put_object(
            Bucket=BUCKET,
            Key=keys["boto3"][i],
            Body=body,
            ChecksumCRC32C=crc32c_header(body),
            IfNoneMatch="*",
        )

    def default_put(i: int) -> None:
        ctx.default.put_object(Bucket=BUCKET, Key=keys["boto3_default"][i], Body=json.dumps(payload).encode())

    def obstore_put(i: int) -> None:
        import obstore

        ctx.obstore_counter.count("PutObject")
        obstore.put(ctx.store, keys["obstore_raw"][i], json.dumps(payload).encode(), mode="create")

    raw_puts = [
        Side("boto3", boto3_put, ctx.plain_counter),
        Side("boto3_default", default_put, ctx.default_counter),
    ]
    if ctx.has("obstore_raw"):
        raw_puts.append(Side("obstore_raw", obstore_put, ctx.obstore_counter))
    readers: dict[str, Any] = {}
    try:
        puts = run_interleaved(
            [*(s3qbb_put(side) for side in refs), *raw_puts],
            server_cpu=ctx.server_cpu,
            trials=c.small_trials,
            ops_per_trial=c.small_ops,
            warmup_ops=c.small_warmup,
        )
        for side, store in writers.items():
            readers[side] = ctx.reader(side, refs[side], export_records(store, refs[side]))

        def s3qbb_get(side: str) -> Side:
            store, side_refs = readers[side], refs[side]
            return Side(side, lambda i: store.get(side_refs[i]), StatsCounter(stats_of(store)))

        def boto3_get(i: int) -> None:
            json.loads(ctx.plain.get_object(Bucket=BUCKET, Key=keys["boto3"][i])["Body"].read())

        def default_get(i: int) -> None:
            json.loads(ctx.default.get_object(Bucket=BUCKET, Key=keys["boto3_default"][i])["Body"].read())

        def obstore_get(i: int) -> None:
            import obstore

            ctx.obstore_counter.count("GetObject")
            json.loads(bytes(obstore.get(ctx.store, keys["obstore_raw"][i]).bytes()))

        raw_gets = [
            Side("boto3", boto3_get, ctx.plain_counter),
            Side("boto3_default", default_get, ctx.default_counter),
        ]
        if ctx.has("obstore_raw"):
            raw_gets.append(Side("obstore_raw", obstore_get, ctx.obstore_counter))
        gets = run_interleaved(
            [*(s3qbb_get(side) for side in refs), *raw_gets],
            server_cpu=ctx.server_cpu,
            trials=c.small_trials,
            ops_per_trial=c.small_ops,
            warmup_ops=c.small_warmup,
        )
        for side, store in readers.items():
            if store.get(refs[side][0]) != payload:
                raise AssertionError(f"small: side {side} read back a different payload")
    finally:
        _close_all([*writers.values(), *readers.values()])
    size = len(json.dumps(payload).encode())
    extra = {
        "object_bytes": size,
        "boto3": "put_object (CRC32C header, If-None-Match: *) / get_object + read, s3qbb's client settings",
        "boto3_default": "default boto3 client: put_object / get_object + read",
        "obstore_raw": "obstore.put(mode='create') / obstore.get, retries off",
    }
    return [
        _finish_case(make_case("small_put", "1 KiB JSON put", puts, bytes_per_op=size, extra=extra), ctx),
        _finish_case(
            make_case("small_get", "1 KiB JSON get, cold cache", gets, bytes_per_op=size, extra=extra), ctx
        ),
    ]


def case_large(ctx: ShippedContext) -> list[dict[str, Any]]:
    """64 MiB put and get (fresh butler per get): every side against the transfer manager and obstore."""
    from boto3.s3.transfer import TransferConfig

    c = ctx.counts
    size = c.large_mib * _MIB
    data = os.urandom(size)
    transfer = TransferConfig(preferred_transfer_client="classic")
    total = 1 + c.large_trials
    sides = ctx.s3qbb_sides()
    refs = {side: ctx.refs(ctx.large_type, side, total + 1) for side in sides}  # the last one: for gets
    writers = {side: ctx.writer(side, refs[side]) for side in sides}
    raw_keys = {
        side: [ctx.raw_key(side, "large", i) for i in range(total)] for side in ("boto3", "obstore_raw")
    }
    written: dict[str, list[str]] = {}

    def key_of(side: str, ref: DatasetRef) -> str:
        uri = str(writers[side].getURI(ref))
        return uri.removeprefix(f"s3://{BUCKET}/")

    def s3qbb_put(side: str) -> Side:
        store, side_refs = writers[side], refs[side]

        def op(i: int) -> None:
            store.put(data, side_refs[i])
            written.setdefault(side, []).append(key_of(side, side_refs[i]))

        return Side(side, op, StatsCounter(stats_of(store)))

    def boto3_put(i: int) -> None:
        ctx.plain.upload_fileobj(io.BytesIO(data), BUCKET, raw_keys["boto3"][i], Config=transfer)
        written.setdefault("boto3", []).append(raw_keys["boto3"][i])

    def obstore_put(i: int) -> None:
        import obstore

        obstore.put(ctx.store, raw_keys["obstore_raw"][i], data)
        written.setdefault("obstore_raw", []).append(raw_keys["obstore_raw"][i])

    def cleanup(side: str) -> None:
        for key in written.pop(side, []):
            ctx.admin.delete_object(Bucket=BUCKET, Key=key)
        if side in writers:
            _drop_cached(writers[side])  # the cached copies of deleted objects: 64 MiB each

    put_sides = [s3qbb_put(side) for side in sides] + [Side("boto3", boto3_put, ctx.plain_counter)]
    if ctx.has("obstore_raw"):
        put_sides.append(Side("obstore_raw", obstore_put))  # multipart: its requests are not counted
    readers: list[Any] = []
    try:
        puts = run_interleaved(
            put_sides,
            server_cpu=ctx.server_cpu,
            trials=c.large_trials,
            ops_per_trial=1,
            warmup_ops=1,
            after_trial=cleanup,
        )
        # The objects the gets read: one per side, then a fresh reader per get (cold cache).
        records = {}
        for side in sides:
            writers[side].put(data, refs[side][-1])
            records[side] = export_records(writers[side], [refs[side][-1]])
        ctx.plain.upload_fileobj(io.BytesIO(data), BUCKET, raw_keys["boto3"][0], Config=transfer)
        if ctx.has("obstore_raw"):
            import obstore

            obstore.put(ctx.store, raw_keys["obstore_raw"][0], data)
        _close_all(list(writers.values()))
        fresh = {
            side: [ctx.reader(side, refs[side][-1:], records[side]) for _ in range(total)] for side in sides
        }
        readers = [r for side_readers in fresh.values() for r in side_readers]

        def s3qbb_get(side: str) -> Side:
            side_readers, ref = fresh[side], refs[side][-1]

            def op(i: int) -> None:
                used[side] = i
                if len(side_readers[i].get(ref)) != size:
                    raise AssertionError(f"large: side {side} read a wrong size")

            return Side(side, op, _FreshCounter([stats_of(r) for r in side_readers]))

        def boto3_get(i: int) -> None:
            buffer = io.BytesIO()
            ctx.plain.download_fileobj(BUCKET, raw_keys["boto3"][0], buffer, Config=transfer)
            if len(buffer.getbuffer()) != size:
                raise AssertionError("large: boto3 read a wrong size")

        def obstore_get(i: int) -> None:
            import obstore

            ctx.obstore_counter.count("GetObject")
            if len(obstore.get(ctx.store, raw_keys["obstore_raw"][0]).bytes()) != size:
                raise AssertionError("large: obstore read a wrong size")

        used: dict[str, int] = {}

        def drop_cache(side: str) -> None:
            # Readers already used are closed (their caches hold 64 MiB each); counters stay readable.
            for reader in fresh.get(side, [])[: used.get(side, -1) + 1]:
                _drop_cached(reader)
                reader.close()

        get_sides = [s3qbb_get(side) for side in sides] + [Side("boto3", boto3_get, ctx.plain_counter)]
        if ctx.has("obstore_raw"):
            get_sides.append(Side("obstore_raw", obstore_get, ctx.obstore_counter))
        gets = run_interleaved(
            get_sides,
            server_cpu=ctx.server_cpu,
            trials=c.large_trials,
            ops_per_trial=1,
            warmup_ops=1,
            after_trial=drop_cache,
        )
    finally:
        _close_all(list(writers.values()))
        _close_all(readers)
        keys = [raw_keys["boto3"][0], raw_keys["obstore_raw"][0], *(k for ks in written.values() for k in ks)]
        for key in keys:
            ctx.admin.delete_object(Bucket=BUCKET, Key=key)
    extra = {
        "boto3": "transfer manager: upload_fileobj / download_fileobj, classic s3transfer, default "
        f"TransferConfig ({transfer.multipart_chunksize // _MIB} MiB parts, "
        f"{transfer.max_request_concurrency} threads)",
        "obstore_raw": "obstore.put (multipart, 5 MiB parts, 12 at a time) / obstore.get(...).bytes()",
    }
    what = f"{c.large_mib} MiB"
    put_case = make_case("large_put", f"{what} put", puts, bytes_per_op=size, extra=extra)
    if ctx.has("obstore_raw"):
        _count_obstore_put(ctx, put_case["sides"]["obstore_raw"], data)
    return [
        _finish_case(put_case, ctx),
        _finish_case(
            make_case("large_get", f"{what} get, fresh butler", gets, bytes_per_op=size, extra=extra), ctx
        ),
    ]


def _count_obstore_put(ctx: ShippedContext, summary: dict[str, Any], data: bytes) -> None:
    """Count the requests of one raw obstore put of ``data`` on the wire (untimed, through a proxy)."""
    import obstore

    from s3qbb.testing.proxy import FaultProxy

    key = ctx.raw_key("obstore_raw", "counted", 0)
    with FaultProxy(ctx.server.endpoint_url) as proxy:
        obstore.put(ctx.obstore_store(proxy.url), key, data)
        counted = Counter(proxy.requests)
    ctx.admin.delete_object(Bucket=BUCKET, Key=key)
    summary["requests"] = dict(sorted(counted.items()))
    summary["requests_per_op"] = counted.total()
    summary["requests_counted_by"] = "a relaying proxy, one untimed put"


class _FreshCounter:
    """Requests of a side that uses a new reader per operation: the sum of their datastores' counters."""

    def __init__(self, stats: Sequence[DatastoreStats]) -> None:
        self._stats = list(stats)

    @property
    def requests(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for stats in self._stats:
            total.update(stats.snapshot()["requests"])
        return total


def case_memory(ctx: ShippedContext) -> list[dict[str, Any]]:
    """Peak RSS of fresh processes doing small puts and gets: every side with a memory child."""
    c = ctx.counts
    sides = ["shipped", "s3qbb", "boto3"]
    if ctx.has("obstore"):
        sides.insert(1, "obstore")
    if ctx.has("obstore_raw"):
        sides.append("obstore_raw")
    found = memory_sides(ctx.server, sides, ops=c.memory_ops, runs=c.memory_runs, bucket=BUCKET)
    found["datastore"] = found.pop("s3qbb")
    reference = found["boto3"]["maxrss_kib"]
    return [
        {
            "name": "memory",
            "what": f"peak RSS of a fresh process: {c.memory_ops} x 1 KiB put, then get",
            "reference": "boto3",
            "sides": found,
            "ratios": {side: {"maxrss": s["maxrss_kib"] / reference} for side, s in found.items()},
            "unavailable": dict(ctx.unavailable),
            "extra": {"ops": c.memory_ops},
        }
    ]


CASES: dict[str, Callable[[ShippedContext], list[dict[str, Any]]]] = {
    "small": case_small,
    "large": case_large,
    "memory": case_memory,
}
"""Case groups by name."""


def run_shipped(
    server: S3TestServer,
    counts: ShippedCounts,
    progress: Callable[[str], None] | None = None,
    only: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Run the cases against a running server; return ``{"cases": ..., "unavailable": ...}``."""
    import time

    ctx = ShippedContext(server, counts)
    cases: dict[str, Any] = {}
    try:
        for name in only or CASES:
            began = time.perf_counter()
            for result in CASES[name](ctx):
                cases[result["name"]] = result
            if progress is not None:
                progress(f"[{server.name}] users {name}: {time.perf_counter() - began:.1f} s")
    finally:
        ctx.close()
    return {"cases": cases, "unavailable": dict(ctx.unavailable), "sides": dict(SIDE_LABELS)}
