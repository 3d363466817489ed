"""Bulk existence checks stay right whatever order a server lists keys in.

AWS S3, moto and LocalStack list keys in byte order; SeaweedFS walks its folders and orders keys by
their ``/``-separated parts (``run/x`` before ``run-b/x``), and its ``StartAfter`` skips what sorts
before it in that order. `s3qbb.datastores.listing.find_existing` must give the same answer on both.
"""

from __future__ import annotations

import concurrent.futures
import uuid
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3qbb.datastores.listing import find_existing
from s3qbb.datastores.s3 import S3Datastore
from s3qbb.s3 import make_retry_policy
from s3qbb.s3.client import new_client
from s3qbb.testing.data import RefMaker, example_storage_classes
from s3qbb.testing.servers import S3TestEndpoint
from s3qbb.testing.transports import with_transport

# Names whose byte order and folder order differ: '-', '.', ' ' and '!' sort before '/', '_' after.
_TRICKY = ["run", "run-b", "run.d", "run_c", "run!", "run b", "ru", "runa", "run-", "A", "é", "~"]


def _byte_order(keys: list[str]) -> list[str]:
    return sorted(keys, key=lambda k: k.encode())


def _folder_order(keys: list[str]) -> list[str]:
    return sorted(keys, key=lambda k: [part.encode() for part in k.split("/")])


def _after(order: str, keys: list[str], start_after: str) -> list[str]:
    """What a listing with this ``StartAfter`` returns, in this order (SeaweedFS's: it skips the
    entry named like the StartAfter's last part, a folder's whole content included)."""
    if order == "bytes":
        return [k for k in _byte_order(keys) if k.encode() > start_after.encode()]
    start = [part.encode() for part in start_after.split("/")]
    return [k for k in _folder_order(keys) if [p.encode() for p in k.split("/")][: len(start)] > start]


class _ModelBucket:
    """A bucket listing in one of the two orders, three keys a page, counting its requests."""

    def __init__(self, keys: set[str], order: str) -> None:
        self.keys = keys
        self.order = order
        self.sort = _byte_order if order == "bytes" else _folder_order
        self.requests = 0

    def list_sizes(self, prefix: str, *, start_after: str | None = None) -> Iterator[dict[str, int]]:
        listed = self.sort([k for k in self.keys if k.startswith(prefix)])
        if start_after is not None:  # what comes after it in this bucket's own order
            listed = _after(self.order, listed, start_after)
        for i in range(0, max(len(listed), 1), 3):
            self.requests += 1
            yield {k: 10 for k in listed[i : i + 3]}

    def head(self, key: str) -> Any:
        self.requests += 1
        return SimpleNamespace(pending=False) if key in self.keys else None


_part = st.sampled_from(["run", "run-b", "run.d", "run_c", "ru", "run!", "a", "a-", "b", "x.jso", "x.json"])
_key = st.lists(_part, min_size=1, max_size=3).map(lambda parts: "p/" + "/".join(parts))


@pytest.mark.parametrize("order", ["bytes", "folders"])
@settings(max_examples=300, deadline=None)
@given(stored=st.sets(_key, max_size=25), absent=st.sets(_key, max_size=8))
def test_find_existing_answers_right_in_either_listing_order(
    order: str, stored: set[str], absent: set[str]
) -> None:
    bucket = _ModelBucket(stored | {"p/zzz/noise.json", "p/run-b/noise.json"}, order)
    wanted = (stored | absent) - {"p/zzz/noise.json", "p/run-b/noise.json"}
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        found = find_existing(bucket, wanted, pool)  # type: ignore[arg-type]
    assert found == wanted & bucket.keys
    assert bucket.requests <= 2 * len(wanted) + 1


def test_keys_in_sibling_folders_of_one_run_name_cost_no_more_than_before() -> None:
    # Where the two orders agree (no folder name starts with another one plus a character before
    # '/'), the listing decides alone: one LIST, no HEAD.
    keys = {f"p/run/{band}/x{i}.json" for band in "gri" for i in range(5)}
    for order in ("bytes", "folders"):
        bucket = _ModelBucket(keys, order)
        bucket.list_sizes = _one_page(bucket)  # type: ignore[method-assign]
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            present = sorted(keys)[:7]
            wanted = {*present, "p/run/g/absent.json", "p/run/g/x2a.json"}  # absent, within the range
            assert find_existing(bucket, wanted, pool) == set(present)  # type: ignore[arg-type]
        assert bucket.requests == 1, order


def _one_page(bucket: _ModelBucket) -> Any:
    def list_sizes(prefix: str, *, start_after: str | None = None) -> Iterator[dict[str, int]]:
        listed = bucket.sort([k for k in bucket.keys if k.startswith(prefix)])
        if start_after is not None:
            listed = [k for k in listed if k > start_after]
        bucket.requests += 1
        yield dict.fromkeys(listed, 10)

    return list_sizes


def test_the_servers_list_in_one_of_the_two_orders(s3_endpoint: S3TestEndpoint) -> None:
    """What `find_existing` relies on: byte order, or SeaweedFS's folder order, StartAfter included."""
    client, bucket = s3_endpoint.client, s3_endpoint.bucket
    prefix = f"order-{uuid.uuid4().hex[:8]}/"
    keys = [f"{prefix}{name}/x.json" for name in _TRICKY] + [f"{prefix}run/{n}" for n in ("a", "a-b", "a/z")]
    for key in keys:
        client.put_object(Bucket=bucket, Key=key, Body=b"x")

    def listed(start_after: str | None = None) -> list[str]:
        args: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if start_after is not None:
            args["StartAfter"] = start_after
        return [o["Key"] for o in client.list_objects_v2(**args).get("Contents", [])]

    everything = listed()
    order = "bytes" if everything == _byte_order(keys) else "folders"
    assert everything == (_byte_order(keys) if order == "bytes" else _folder_order(keys)), everything
    for after in ("run-b/x.jso", "run/a", "run/a/", "run", "run.d/", "ru/x.json", "run/"):
        assert listed(prefix + after) == _after(order, keys, prefix + after), after


@pytest.mark.parametrize("stored_runs", [["run", "run-b", "run_c", "run.d"], ["run", "run-b"], ["run-b"]])
def test_stored_many_across_runs_whose_names_start_alike(
    s3_endpoint: S3TestEndpoint, s3_transport: str, stored_runs: list[str]
) -> None:
    """The reported defect: on SeaweedFS, datasets of run ``run`` beside ``run-b`` came out missing."""
    endpoint = with_transport(s3_endpoint, s3_transport)
    store = S3Datastore(
        f"s3://{endpoint.bucket}/root-{uuid.uuid4().hex[:8]}",
        name="s3",
        config=endpoint.config,
        client=new_client(endpoint.config),
        retry=make_retry_policy(endpoint.config, sleep=lambda s: None),
        storageClassFactory=example_storage_classes(),
    )
    try:
        maker = RefMaker()
        refs = {run: maker.make(run=run, visit=1, detector=1) for run in ("run", "run-b", "run_c", "run.d")}
        for run in stored_runs:
            store.put({"run": run}, refs[run])
        for subset in (list(refs.values()), [refs["run"], refs["run-b"]], [refs["run"], refs["run.d"]]):
            assert store.stored_many(subset) == {r: r.run in stored_runs for r in subset}
            assert store.mexists(subset) == {r: r.run in stored_runs for r in subset}
    finally:
        store.close()
