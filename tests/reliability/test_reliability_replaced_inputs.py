"""A dataset replaced after its record was read (a ``--rerun`` of its producer) is not damage.

The reader holding the old record stops with `DatasetReplacedError`, which names
the dataset, its URI and the attempt that replaced it, returns none of the new
bytes, and maps to the retryable exit code 75; bytes that fail their checksum
under the recorded write's own metadata are still damage (exit 1). On the moto
server and SeaweedFS, on both transports.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from s3qbb.batch.exitcodes import ExitCode, exit_code_for_error
from s3qbb.core.attempt import WriteToken
from s3qbb.core.dataset_ref import DatasetRef
from s3qbb.datastores.s3 import S3Datastore
from s3qbb.errors import DatasetIntegrityError, DatasetReplacedError
from s3qbb.s3 import make_retry_policy
from s3qbb.s3.client import new_client
from s3qbb.s3.objects import WRITE_TOKEN
from s3qbb.s3.ownership import WRITE_PENDING
from s3qbb.testing.backdoors import S3Backdoor
from s3qbb.testing.data import RefMaker, example_storage_classes
from s3qbb.testing.servers import S3TestEndpoint
from s3qbb.testing.transports import with_transport

BLOCK = 4096


def make_store(endpoint: S3TestEndpoint, token: WriteToken | None = None) -> S3Datastore:
    config = endpoint.config.model_copy(update={"checksum_block_size": BLOCK})
    store = S3Datastore(
        f"s3://{endpoint.bucket}/repo",
        config=config,
        client=new_client(config) if config.transport == "boto3" else None,
        retry=make_retry_policy(config, sleep=lambda s: None),
        storageClassFactory=example_storage_classes(),
    )
    if token is not None:
        store.write_token = token
    return store


@pytest.fixture
def endpoint(s3_endpoint: S3TestEndpoint, s3_transport: str) -> S3TestEndpoint:
    return with_transport(s3_endpoint, s3_transport)


@pytest.fixture
def earlier(endpoint: S3TestEndpoint) -> Iterator[S3Datastore]:
    store = make_store(endpoint)
    yield store
    store.close()


@pytest.fixture
def later(endpoint: S3TestEndpoint, earlier: S3Datastore) -> Iterator[S3Datastore]:
    """A later attempt of the quantum whose attempt wrote through ``earlier`` (a ``--rerun``)."""
    store = make_store(endpoint, WriteToken.new(earlier.write_token.quantum_id))
    yield store
    store.close()


def _gets(store: S3Datastore) -> int:
    return int(store.stats.snapshot()["requests"].get("GetObject", 0))


def _assert_names_the_replacement(
    err: DatasetReplacedError, store: S3Datastore, later: S3Datastore, ref: DatasetRef
) -> None:
    message = str(err)
    assert f"Dataset {ref} at {store.getURI(ref)}" in message
    assert later.write_token.attempt_id in message and str(later.write_token.quantum_id) in message
    assert "Another attempt of the quantum that produced it (a --rerun) replaced it" in message
    assert "exit 75" in message
    assert exit_code_for_error(err, in_task=True) == ExitCode.TEMPFAIL


@pytest.mark.parametrize("rows", [None, (100, 110)], ids=["whole", "rows"])
def test_a_read_of_a_replaced_dataset_says_so_and_is_retryable(
    earlier: S3Datastore, later: S3Datastore, rows: tuple[int, int] | None
) -> None:
    ref = RefMaker().make("NumpyArray")
    first = np.arange(8000, dtype="float64").reshape(1000, 8)
    earlier.put(first, ref)
    later.put(first + 1, ref)  # the rerun: other bytes, same location, the earlier attempt's object replaced
    before = _gets(earlier)
    with pytest.raises(DatasetReplacedError) as info:
        earlier.get(ref, parameters=None if rows is None else {"rows": rows})
    _assert_names_the_replacement(info.value, earlier, later, ref)
    assert "was replaced: it now holds other bytes" in str(info.value)
    assert _gets(earlier) - before == 1  # not read again: another write's object is no transit error
    assert isinstance(info.value, DatasetIntegrityError)  # still an integrity error to older callers
    np.testing.assert_array_equal(later.get(ref), first + 1)  # the new records read the new bytes


def test_a_read_while_a_rerun_uploads_over_the_dataset_says_so(
    endpoint: S3TestEndpoint, earlier: S3Datastore, later: S3Datastore
) -> None:
    ref = RefMaker().make("Bytes")
    earlier.put(b"first bytes", ref)
    backdoor = S3Backdoor(endpoint.client, endpoint.bucket, "repo")
    # What a multipart write of the later attempt leaves while its upload runs: its placeholder.
    backdoor.rewrite(ref, b"", {WRITE_TOKEN: str(later.write_token), WRITE_PENDING: "1"})
    with pytest.raises(DatasetReplacedError, match="is being replaced: it is now the placeholder") as info:
        earlier.get(ref)
    _assert_names_the_replacement(info.value, earlier, later, ref)


def test_damaged_bytes_under_the_recorded_write_are_still_damage(
    endpoint: S3TestEndpoint, earlier: S3Datastore
) -> None:
    ref = RefMaker().make("Bytes")
    earlier.put(b"0123456789" * 10, ref)
    backdoor = S3Backdoor(endpoint.client, endpoint.bucket, "repo")
    backdoor.flip_bit(ref, 5)  # the recorded write's metadata, other bytes: bit rot, not a rerun
    with pytest.raises(DatasetIntegrityError, match="damaged") as info:
        earlier.get(ref)
    assert not isinstance(info.value, DatasetReplacedError)
    assert exit_code_for_error(info.value, in_task=True) == ExitCode.TASK_FAILED


@pytest.mark.parametrize("now", ["placeholder", "fewer bytes"])
def test_a_partial_read_past_the_end_of_a_replacement_says_replaced(
    endpoint: S3TestEndpoint, earlier: S3Datastore, later: S3Datastore, now: str
) -> None:
    """A range the replacement cannot serve (HTTP 416) is the replacement, not a truncated object."""
    ref = RefMaker().make("NumpyArray")
    first = np.arange(8000, dtype="float64").reshape(1000, 8)
    earlier.put(first, ref)
    if now == "placeholder":  # a multipart rerun's placeholder: zero bytes
        backdoor = S3Backdoor(endpoint.client, endpoint.bucket, "repo")
        backdoor.rewrite(ref, b"", {WRITE_TOKEN: str(later.write_token), WRITE_PENDING: "1"})
    else:
        later.put(first[:10] + 1, ref)
    with pytest.raises(DatasetReplacedError) as info:
        earlier.get(ref, parameters={"rows": (990, 1000)})
    _assert_names_the_replacement(info.value, earlier, later, ref)


def test_a_truncated_object_under_the_recorded_write_is_still_damage(
    endpoint: S3TestEndpoint, earlier: S3Datastore
) -> None:
    ref = RefMaker().make("NumpyArray")
    earlier.put(np.arange(8000, dtype="float64").reshape(1000, 8), ref)
    backdoor = S3Backdoor(endpoint.client, endpoint.bucket, "repo")
    key = backdoor.location(ref)
    assert key is not None
    stored = endpoint.client.get_object(Bucket=endpoint.bucket, Key=key)
    backdoor.rewrite(ref, stored["Body"].read()[:4096], stored["Metadata"])  # the recorded write, cut short
    with pytest.raises(DatasetIntegrityError, match=r"were recorded|HTTP 416") as info:
        earlier.get(ref, parameters={"rows": (990, 1000)})
    assert not isinstance(info.value, DatasetReplacedError)
    assert exit_code_for_error(info.value, in_task=True) == ExitCode.TASK_FAILED
