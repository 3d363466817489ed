"""A multipart upload's placeholder is not a dataset (moto server and SeaweedFS).

A writer of a large object first claims its key with a small placeholder
(metadata ``s3qbb-pending: 1``). A reader in trust mode (no record) that finds
it must see no dataset: the upload is still running, or its writer died.
"""

from __future__ import annotations

from typing import Any

import pytest

from s3qbb.config import S3EndpointConfig
from s3qbb.core.attempt import WriteToken
from s3qbb.datastores.s3 import S3Datastore
from s3qbb.errors import DatasetNotFoundError
from s3qbb.s3 import make_retry_policy
from s3qbb.s3.client import new_client
from s3qbb.s3.objects import WRITE_PENDING, WRITE_TOKEN
from s3qbb.s3.ownership import HeadResult
from s3qbb.testing.data import RefMaker, example_storage_classes
from s3qbb.testing.servers import S3TestEndpoint

MIB = 1024**2


def _store(endpoint: S3TestEndpoint, config: S3EndpointConfig | None = None, **kwargs: Any) -> S3Datastore:
    config = config or endpoint.config
    return S3Datastore(
        f"s3://{endpoint.bucket}/placeholders",
        name="s3",
        config=config,
        client=new_client(config),
        retry=make_retry_policy(config, sleep=lambda s: None),
        storageClassFactory=example_storage_classes(),
        **kwargs,
    )


def _key(store: S3Datastore, ref: Any) -> str:
    return str(store.getURI(ref, predict=True)).removesuffix("#predicted").split("/", 3)[3]


def test_trust_mode_takes_no_placeholder_for_a_dataset(s3_endpoint: S3TestEndpoint) -> None:
    store = _store(s3_endpoint, trust_mode=True)
    ref = RefMaker().make("Bytes")
    key = _key(store, ref)
    token = WriteToken.new()
    s3_endpoint.client.put_object(
        Bucket=s3_endpoint.bucket,
        Key=key,
        Body=str(token).encode(),
        Metadata={WRITE_TOKEN: str(token), WRITE_PENDING: "1"},
    )
    assert store.exists(ref) is False
    with pytest.raises(DatasetNotFoundError, match="placeholder"):
        store.get(ref)
    store.close()


def test_failed_upload_leaves_a_later_attempts_object_alone(
    s3_endpoint: S3TestEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An earlier attempt HEADs its placeholder, a later one replaces it, then the earlier one cleans up."""
    config = s3_endpoint.config.model_copy(
        update={"multipart_threshold": 5 * MIB, "multipart_chunksize": 5 * MIB}
    )
    ref = RefMaker().make("Bytes")
    earlier = _store(s3_endpoint, config=config)
    later = _store(s3_endpoint, config=config)
    later.write_token = WriteToken.new(earlier.write_token.quantum_id)
    key = _key(earlier, ref)

    def broken_part(**kwargs: Any) -> Any:
        raise RuntimeError("the earlier attempt's disk went away")

    monkeypatch.setattr(earlier.bucket.client, "upload_part", broken_part)
    real_head = earlier.bucket._head_readable

    def head_then_race(k: str) -> Any:
        head = real_head(k)
        if isinstance(head, HeadResult) and head.pending and k == key:
            later.put(b"later attempt", ref)  # replaces the placeholder it finds (If-Match on its ETag)
        return head

    monkeypatch.setattr(earlier.bucket, "_head_readable", head_then_race)
    with pytest.raises(RuntimeError, match="disk went away"):
        earlier.put(b"\x01" * (6 * MIB), ref)
    response = s3_endpoint.client.get_object(Bucket=s3_endpoint.bucket, Key=key)
    assert response["Body"].read() == b"later attempt"
    assert response["Metadata"][WRITE_TOKEN] == str(later.write_token)
    assert later.get(ref) == b"later attempt"
    earlier.close()
    later.close()


@pytest.mark.parametrize("server", ["moto", "seaweedfs", "localstack"])
def test_failed_upload_removes_its_placeholder(
    server: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LocalStack has no conditional DELETE (501): the placeholder is deleted without condition there."""
    endpoint: S3TestEndpoint = request.getfixturevalue(f"{server}_endpoint")
    config = endpoint.config.model_copy(
        update={"multipart_threshold": 5 * MIB, "multipart_chunksize": 5 * MIB}
    )
    store = _store(endpoint, config=config)
    ref = RefMaker().make("Bytes")

    def broken_part(**kwargs: Any) -> Any:
        raise RuntimeError("the disk went away")

    monkeypatch.setattr(store.bucket.client, "upload_part", broken_part)
    with pytest.raises(RuntimeError, match="disk went away"):
        store.put(b"\x01" * (6 * MIB), ref)
    listed = endpoint.client.list_objects_v2(Bucket=endpoint.bucket, Prefix="placeholders/")
    assert listed.get("KeyCount", 0) == 0
    assert store.stats.snapshot()["requests"]["DeleteObject"] >= 1
    store.close()
