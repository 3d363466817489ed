"""LocalStack tier: the datastore conformance suite and QuantumBackedButler quanta chained through S3."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from s3qbb.butler.quantum_backed import QuantumBackedButler
from s3qbb.core import DataCoordinate, DatasetRef, DatasetType, DimensionUniverse, Quantum
from s3qbb.core.records import DatastoreRecordData
from s3qbb.datastores.s3 import S3Datastore
from s3qbb.errors import DatasetNotFoundError
from s3qbb.provenance.files import provenance_key, records_key, report_key
from s3qbb.provenance.model import QuantumProvenanceData
from s3qbb.testing.backdoors import S3Backdoor
from s3qbb.testing.conformance import DatastoreConformance
from s3qbb.testing.data import example_storage_classes
from s3qbb.testing.servers import S3TestEndpoint
from s3qbb.testing.transports import with_transport

pytestmark = pytest.mark.localstack

PREFIX = "repo/root"


class TestLocalStackConformance(DatastoreConformance):
    """The whole conformance suite, with S3Datastore on LocalStack, on each transport (as test_s3.py does)."""

    @pytest.fixture
    def datastore(self, localstack_endpoint: S3TestEndpoint, s3_transport: str) -> Iterator[S3Datastore]:
        store = S3Datastore(
            f"s3://{localstack_endpoint.bucket}/{PREFIX}",
            name="s3",
            config=with_transport(localstack_endpoint, s3_transport).config,
            storageClassFactory=example_storage_classes(),
        )
        assert store.bucket.transport.name == s3_transport
        yield store
        store.close()

    @pytest.fixture
    def backdoor(self, localstack_endpoint: S3TestEndpoint) -> S3Backdoor:
        return S3Backdoor(localstack_endpoint.client, localstack_endpoint.bucket, PREFIX)


# ----------------------------------------------------------- QuantumBackedButler end to end

RAW_RUN = "ls/raw"
RUN = "ls/calibrated"


def _repo_config(endpoint: S3TestEndpoint) -> dict[str, Any]:
    creds = endpoint.server.credentials()
    return {
        "datastore": {
            "root": f"s3://{endpoint.bucket}/repo",
            "endpoint": {
                "endpoint_url": endpoint.endpoint_url,
                "region": "us-east-1",
                "addressing_style": "path",
                "access_key_id": creds.access_key_id,
                "secret_access_key": creds.secret_access_key,
            },
        }
    }


def _provenance(endpoint: S3TestEndpoint, run: str, quantum: Quantum) -> QuantumProvenanceData:
    key = f"repo/{provenance_key(run, quantum.id)}"
    body = endpoint.client.get_object(Bucket=endpoint.bucket, Key=key)["Body"].read()
    return QuantumProvenanceData.from_json(body, source=key)


class _Pipeline:
    """Two quanta: ``ingest`` writes an image and its metadata, ``calibrate`` reads both and writes one."""

    def __init__(self) -> None:
        self.universe = DimensionUniverse()
        u = self.universe
        visit = {"instrument": "LSCam", "visit": 7, "detector": 3}
        self.image = DatasetRef(
            DatasetType("raw", ["visit", "detector"], "NumpyArray", universe=u), visit, RAW_RUN
        )
        self.meta = DatasetRef(
            DatasetType("raw_meta", ["visit", "detector"], "StructuredDataDict", universe=u), visit, RAW_RUN
        )
        self.calexp = DatasetRef(
            DatasetType("calexp", ["visit", "detector"], "NumpyArray", universe=u), visit, RUN
        )
        self.data_id = DataCoordinate.standardize(visit, universe=u)
        self.ingest = Quantum(taskLabel="ingest", taskName="tests.ingest", outputs=[self.image, self.meta])

    def calibrate(self, records: dict[str, DatastoreRecordData] | None) -> Quantum:
        return Quantum(
            taskLabel="calibrate",
            taskName="tests.calibrate",
            dataId=self.data_id,
            inputs=[self.image, self.meta],
            outputs=[self.calexp],
            datastore_records=records,
        )


def test_quantum_backed_butler_end_to_end(localstack_endpoint: S3TestEndpoint) -> None:
    config = _repo_config(localstack_endpoint)
    p = _Pipeline()
    image = np.arange(64 * 64, dtype="float32").reshape(64, 64)
    meta = {"exposure_time": 30.0, "filter": "r", "detector": 3}

    # Quantum 1 writes its outputs; leaving the with-block uploads its records and provenance.
    with QuantumBackedButler.initialize(config, p.ingest, p.universe) as butler:
        butler.put(image, p.image)
        butler.put(meta, p.meta)
    first = butler.finish()  # idempotent: the result of the upload done on exit
    assert first.status == "succeeded"
    assert first.records_uri is not None and first.provenance_uri is not None

    # The workflow system builds quantum 2 from quantum 1's uploaded provenance records.
    provenance = _provenance(localstack_endpoint, RAW_RUN, p.ingest)
    assert provenance.actual_outputs == {p.image.id, p.meta.id}
    records = dict(provenance.datastore_record_data())
    calibrate = p.calibrate(records)
    with QuantumBackedButler.initialize(config, calibrate, p.universe) as butler:
        assert butler.stored_many([p.image, p.meta]) == {p.image: True, p.meta: True}
        got_image = butler.get(p.image)
        got_meta = butler.get(p.meta)
        butler.put(got_image - got_meta["exposure_time"], p.calexp)
    np.testing.assert_array_equal(got_image, image)
    assert got_meta == meta

    second = _provenance(localstack_endpoint, RUN, calibrate)
    inputs = {p.image.id, p.meta.id}
    assert second.predicted_inputs == second.available_inputs == second.actual_inputs == inputs
    assert second.actual_outputs == {p.calexp.id}

    # What is in the bucket, seen through the back door: outputs and three files per quantum.
    client, bucket = localstack_endpoint.client, localstack_endpoint.bucket
    keys = {item["Key"] for item in client.list_objects_v2(Bucket=bucket, Prefix="repo/").get("Contents", [])}
    for run, quantum in ((RAW_RUN, p.ingest), (RUN, calibrate)):
        for name in (records_key, provenance_key, report_key):
            assert f"repo/{name(run, quantum.id)}" in keys
    data_keys = {k for k in keys if "/_records/" not in k}
    assert len(data_keys) == 3, data_keys
    assert (
        client.get_object(Bucket=bucket, Key=f"repo/{records_key(RUN, calibrate.id)}")["Body"]
        .read(16)
        .startswith(b"SQLite format 3")
    )

    # The calibrated image can be read back by a third quantum from the second one's records.
    third = Quantum(
        taskLabel="check",
        inputs=[p.calexp],
        datastore_records=dict(second.datastore_record_data()),
    )
    with QuantumBackedButler.initialize(config, third, p.universe) as butler:
        np.testing.assert_array_equal(butler.get(p.calexp), image - 30.0)


def test_inputs_need_the_upstream_records(localstack_endpoint: S3TestEndpoint) -> None:
    """Without the records the first quantum uploaded, the second one cannot find its inputs."""
    config = _repo_config(localstack_endpoint)
    p = _Pipeline()
    with QuantumBackedButler.initialize(config, p.ingest, p.universe) as butler:
        butler.put(np.zeros(4), p.image)
        butler.put({"a": 1}, p.meta)
    with QuantumBackedButler.initialize(config, p.calibrate(None), p.universe) as butler:
        assert butler.stored_many([p.image, p.meta]) == {p.image: False, p.meta: False}
        with pytest.raises(DatasetNotFoundError):
            butler.get(p.image)
