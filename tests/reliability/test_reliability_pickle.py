"""Pickle stays off unless a repository enables it: both writing and reading are refused."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from reliability_helpers import make_ref, repo_config

from s3qbb.butler import QuantumBackedButler
from s3qbb.core.quantum import Quantum
from s3qbb.errors import PickleDisabledError
from s3qbb.testing.faults import RequestCounter
from s3qbb.testing.servers import S3TestEndpoint

pytestmark = pytest.mark.moto_server


def _butler(
    endpoint: S3TestEndpoint, quantum: Quantum, *, allow: bool | None, cache: bool
) -> QuantumBackedButler:
    # The repository names the pickle formatter for the dataset type; allow_pickle absent or set.
    extra: dict[str, Any] = {"formatters": {"pickled": "pickle"}}
    if allow is not None:
        extra["allow_pickle"] = allow
    config = repo_config(endpoint, cache=cache, **extra)
    universe = next(iter(quantum.dataset_types().values())).dimensions.universe
    return QuantumBackedButler.initialize(config, quantum, universe)


@pytest.mark.parametrize("cache", [False, True], ids=["nocache", "cache"])
def test_pickle_is_refused_without_allow_pickle(moto_endpoint: S3TestEndpoint, cache: bool) -> None:
    ref = make_ref("pickled", 1)
    quantum = Quantum(taskLabel="write", outputs=[ref])
    for allow in (None, False):
        butler = _butler(moto_endpoint, quantum, allow=allow, cache=cache)
        with pytest.raises(PickleDisabledError, match="allow_pickle"):
            butler.put({"value": 1}, ref)
        butler.close()
    listing = moto_endpoint.client.list_objects_v2(Bucket=moto_endpoint.bucket)
    assert listing.get("KeyCount", 0) == 0  # refused before any request


@pytest.mark.parametrize("cache", [False, True], ids=["nocache", "cache"])
def test_pickle_works_when_enabled_and_reading_it_back_needs_it_too(
    moto_endpoint: S3TestEndpoint, cache: bool
) -> None:
    ref = make_ref("pickled", 1)
    with _butler(moto_endpoint, Quantum(taskLabel="write", outputs=[ref]), allow=True, cache=cache) as writer:
        writer.put({"value": 7}, ref)
    records = writer.extract_provenance_data().datastore_record_data()
    (info,) = [i for data in records.values() for infos in data.records[ref.id].values() for i in infos]
    assert info.path.endswith(".pickle")
    stored = moto_endpoint.client.get_object(Bucket=moto_endpoint.bucket, Key=f"repo/{info.path}")
    assert pickle.loads(stored["Body"].read()) == {"value": 7}

    reader_quantum = Quantum(
        taskLabel="read", inputs=[ref], outputs=[make_ref("out", 1)], datastore_records=records
    )
    allowed = _butler(moto_endpoint, reader_quantum, allow=True, cache=cache)
    assert allowed.get(ref) == {"value": 7}
    allowed.close()

    refused = _butler(moto_endpoint, reader_quantum, allow=None, cache=cache)
    counter = RequestCounter(refused._datastore.bucket.client) if not cache else None  # type: ignore[attr-defined]
    with pytest.raises(PickleDisabledError):
        refused.get(ref)
    if counter is not None:
        assert counter.requests["GetObject"] == 0  # refused before the bytes are even fetched
        counter.detach()
    refused.close()
