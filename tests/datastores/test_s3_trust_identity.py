"""An object names the dataset it stores; trust mode reads by location only the dataset named there.

Every dataset object carries its dataset ID in metadata (``s3qbb-dataset-id``).
Under a file template without ``{id}`` (the default has it), two datasets of
the same type, data ID and run share a location: a graph rebuilt with new
dataset IDs predicts the old outputs' keys. A reader without a record (trust
mode) that finds another dataset's object there sees no dataset, instead of
returning the other dataset's content. On moto and SeaweedFS, both transports.
"""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from s3qbb.config import S3EndpointConfig
from s3qbb.core.dataset_ref import DatasetRef
from s3qbb.datastores.s3 import S3Datastore
from s3qbb.errors import DatasetNotFoundError
from s3qbb.s3 import make_retry_policy
from s3qbb.s3.ownership import WRITE_DATASET
from s3qbb.testing.data import RefMaker, example_storage_classes
from s3qbb.testing.servers import S3TestEndpoint
from s3qbb.testing.transports import count_requests, with_transport

MIB = 1024**2


def _store(endpoint: S3TestEndpoint, config: S3EndpointConfig | None = None, **kwargs: Any) -> S3Datastore:
    config = config or endpoint.config
    return S3Datastore(
        f"s3://{endpoint.bucket}/identity",
        name="s3",
        config=config,
        retry=make_retry_policy(config, sleep=lambda s: None),
        storageClassFactory=example_storage_classes(),
        templates={"default": "{run}/{datasetType}/{visit}/{detector}"},  # no {id}
        **kwargs,
    )


def _key(store: S3Datastore, ref: DatasetRef) -> str:
    return str(store.getURI(ref, predict=True)).removesuffix("#predicted").split("/", 3)[3]


def _namesake(ref: DatasetRef) -> DatasetRef:
    """Another dataset at the same templated location: same type, data ID and run, another ID."""
    return DatasetRef(ref.datasetType, ref.dataId, ref.run, id=uuid.uuid4())


@pytest.mark.parametrize("size", ["small", "multipart"])
def test_trust_mode_does_not_take_another_datasets_object(
    s3_endpoint: S3TestEndpoint, s3_transport: str, size: str
) -> None:
    endpoint = with_transport(s3_endpoint, s3_transport)
    config = endpoint.config
    if size == "multipart":
        config = config.model_copy(update={"multipart_threshold": 6 * MIB, "multipart_chunksize": 5 * MIB})
    writer = _store(endpoint, config)
    written = RefMaker().make("Bytes")
    body = bytes(range(256)) * (7 * MIB // 256 if size == "multipart" else 4)
    writer.put(body, written)
    stored = endpoint.client.head_object(Bucket=endpoint.bucket, Key=_key(writer, written))
    assert stored["Metadata"][WRITE_DATASET] == written.id.hex

    namesake = _namesake(written)
    reader = _store(endpoint, config, trust_mode=True)
    assert _key(reader, namesake) == _key(writer, written)
    with count_requests(reader) as requests:
        with pytest.raises(DatasetNotFoundError) as info:
            reader.get(namesake)
        assert requests.requests == {"GetObject": 1}  # refused at once: no re-read
    message = str(info.value)
    assert str(namesake) in message and written.id.hex in message
    assert f"s3://{endpoint.bucket}/{_key(writer, written)}" in message and "Import the records" in message
    assert reader.exists(namesake) is False
    # The dataset that is there is read by location as before, and by its record.
    assert reader.exists(written) and reader.get(written) == body
    assert writer.get(written) == body


def test_object_naming_no_dataset_is_read_by_location(s3_endpoint: S3TestEndpoint) -> None:
    """An object without the key (an older s3qbb, another tool) is still a dataset for trust mode."""
    writer = _store(s3_endpoint)
    ref = RefMaker().make()
    writer.put({"a": 1}, ref)
    key = _key(writer, ref)
    client, bucket = s3_endpoint.client, s3_endpoint.bucket
    head = client.head_object(Bucket=bucket, Key=key)
    kept = {k: v for k, v in head["Metadata"].items() if k != WRITE_DATASET}
    client.copy_object(
        Bucket=bucket,
        Key=key,
        CopySource={"Bucket": bucket, "Key": key},
        Metadata=kept,
        MetadataDirective="REPLACE",
    )
    reader = _store(s3_endpoint, trust_mode=True)
    assert reader.exists(ref) and reader.get(ref) == {"a": 1}


def test_recovery_does_not_adopt_another_datasets_object(s3_endpoint: S3TestEndpoint) -> None:
    from s3qbb.batch.recovery import _adopt  # white box: the object-by-object decision of ingest --recover

    writer = _store(s3_endpoint)
    written = RefMaker().make()
    writer.put({"a": 1}, written)
    quantum: Any = SimpleNamespace(id=writer.write_token.quantum_id)  # the quantum that wrote it
    adoption = _adopt(writer, quantum, [_namesake(written)])
    assert adoption.records == []
    (warning,) = adoption.warnings
    assert (
        f"stores dataset {written.id.hex} ({WRITE_DATASET} metadata)" in warning and "not adopted" in warning
    )
    (adopted,) = _adopt(writer, quantum, [written]).records
    assert adopted == writer.export_records([written])["s3"].records[written.id]["file_datastore_records"][0]
