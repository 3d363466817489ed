"""Who owns an object: write tokens decide, never content (moto server and SeaweedFS, both transports).

Every object s3qbb writes carries its writer's `WriteToken`. A create-only put
that finds an object is ours only if the object carries our token (a retry
after a lost response); it replaces the object only if it carries an earlier
attempt of our quantum; anything else is another writer's and stays untouched.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from s3qbb.core.attempt import WriteToken
from s3qbb.datastores.caching import CachingDatastore
from s3qbb.datastores.s3 import S3Datastore
from s3qbb.errors import DatasetExistsError
from s3qbb.s3 import checksums, make_retry_policy
from s3qbb.s3.client import new_client
from s3qbb.s3.objects import WRITE_CHECKSUM, WRITE_PENDING, WRITE_TOKEN
from s3qbb.s3.ownership import WRITE_DATASET
from s3qbb.testing.data import RefMaker, example_storage_classes
from s3qbb.testing.faults import FaultInjector
from s3qbb.testing.proxy import FaultProxy
from s3qbb.testing.servers import S3TestEndpoint
from s3qbb.testing.transports import with_transport

PREFIX = "own"
MIB = 1024**2
BIG = 6 * MIB  # two parts of 5 MiB at most


def make_store(endpoint: S3TestEndpoint, token: WriteToken | None = None, **config: Any) -> S3Datastore:
    settings = {"multipart_threshold": 5 * MIB, "multipart_chunksize": 5 * MIB, **config}
    cfg = endpoint.config.model_copy(update=settings)
    store = S3Datastore(
        f"s3://{endpoint.bucket}/{PREFIX}",
        name="s3",
        config=cfg,
        client=new_client(cfg) if cfg.transport == "boto3" else None,
        retry=make_retry_policy(cfg, sleep=lambda s: None),
        storageClassFactory=example_storage_classes(),
    )
    if token is not None:
        store.write_token = token
    return store


@pytest.fixture
def refs() -> RefMaker:
    return RefMaker()


@pytest.fixture
def s3_endpoint(s3_endpoint: S3TestEndpoint, s3_transport: str) -> S3TestEndpoint:
    """Each server (moto, SeaweedFS) on each transport (boto3, obstore)."""
    return with_transport(s3_endpoint, s3_transport)


@pytest.fixture
def store(s3_endpoint: S3TestEndpoint) -> Iterator[S3Datastore]:
    s = make_store(s3_endpoint)
    yield s
    s.close()


def _key(store: S3Datastore, ref: Any) -> str:
    return str(store.getURI(ref, predict=True)).removesuffix("#predicted").split("/", 3)[3]


def _stored(endpoint: S3TestEndpoint, key: str) -> tuple[bytes, dict[str, str]]:
    response = endpoint.client.get_object(Bucket=endpoint.bucket, Key=key)
    return response["Body"].read(), response["Metadata"]


def _requests(store: S3Datastore) -> dict[str, int]:
    return {k: v for k, v in store.stats.snapshot()["requests"].items() if v}


# ------------------------------------------------------------------ request budget and metadata


def test_small_put_is_one_put_carrying_token_and_checksum(
    store: S3Datastore, refs: RefMaker, s3_endpoint: S3TestEndpoint
) -> None:
    ref = refs.make("Bytes")
    store.put(b"small", ref)
    assert _requests(store) == {"PutObject": 1}
    body, meta = _stored(s3_endpoint, _key(store, ref))
    assert body == b"small"
    checksum = checksums.compute(store.config.checksum_algorithm, b"small")
    assert meta == {
        WRITE_TOKEN: str(store.write_token),
        WRITE_CHECKSUM: str(checksum),
        WRITE_DATASET: ref.id.hex,  # which dataset it is, for reads by location (trust mode)
    }


def test_put_new_keeps_extra_metadata(store: S3Datastore, s3_endpoint: S3TestEndpoint) -> None:
    checksum = checksums.compute("CRC32C", b"x")
    store.bucket.put_new(f"{PREFIX}/extra", b"x", checksum, token=store.write_token, metadata={"a-b": "1"})
    _, meta = _stored(s3_endpoint, f"{PREFIX}/extra")
    assert meta == {"a-b": "1", WRITE_TOKEN: str(store.write_token), WRITE_CHECKSUM: str(checksum)}


def test_put_not_known_atomic_confirms_with_one_head(s3_endpoint: S3TestEndpoint, refs: RefMaker) -> None:
    store = make_store(s3_endpoint, conditional_put_atomic=False)
    store.put(b"small", refs.make("Bytes"))
    assert _requests(store) == {"PutObject": 1, "HeadObject": 1}
    store.close()


def test_multipart_put_claims_uploads_and_confirms(
    store: S3Datastore, refs: RefMaker, s3_endpoint: S3TestEndpoint
) -> None:
    ref = refs.make("Bytes")
    data = bytes(range(256)) * (BIG // 256)
    store.put(data, ref)
    assert _requests(store) == {
        "PutObject": 1,  # the claim
        "CreateMultipartUpload": 1,
        "UploadPart": 2,
        "CompleteMultipartUpload": 1,
        "HeadObject": 1,  # the confirmation
    }
    body, meta = _stored(s3_endpoint, _key(store, ref))
    assert body == data and meta[WRITE_TOKEN] == str(store.write_token) and WRITE_PENDING not in meta
    assert store.get(ref) == data


# ------------------------------------------------------------------ lost responses: the token, not content


@pytest.mark.parametrize("size", [10, BIG], ids=["small", "multipart"])
def test_lost_response_is_recognised_by_the_token(store: S3Datastore, refs: RefMaker, size: int) -> None:
    ref = refs.make("Bytes")
    data = b"\x07" * size
    operation = "PutObject" if size < BIG else "CompleteMultipartUpload"
    if store.config.transport != "boto3":
        pytest.skip("FaultInjector hooks botocore: test_lost_response_through_the_proxy covers obstore")
    with FaultInjector(store.bucket.client, {operation: ["lost_response"]}) as faults:
        store.put(data, ref)
    assert faults.injected == {"lost_response": 1}
    assert store.get(ref) == data


@pytest.mark.parametrize("size", [10, BIG], ids=["small", "multipart"])
def test_lost_response_through_the_proxy(s3_endpoint: S3TestEndpoint, refs: RefMaker, size: int) -> None:
    """The server applies the write, the response is lost (a reset): the retry finds our token."""
    operation = "PutObject" if size < BIG else "CompleteMultipartUpload"
    with FaultProxy(s3_endpoint.endpoint_url, {operation: ["reset_after"]}) as proxy:
        store = make_store(dataclasses.replace(s3_endpoint, config=proxy.endpoint_config(s3_endpoint.config)))
        ref = refs.make("Bytes")
        data = b"\x08" * size
        store.put(data, ref)
        assert proxy.injected == {"reset_after": 1}
        assert store.stats.retries == 1
        assert store.get(ref) == data
        body, meta = _stored(s3_endpoint, _key(store, ref))
        assert body == data and meta[WRITE_TOKEN] == str(store.write_token) and WRITE_PENDING not in meta
        store.close()


def test_identical_bytes_of_another_writer_are_not_ours(s3_endpoint: S3TestEndpoint, refs: RefMaker) -> None:
    ref = refs.make("Bytes")
    first, second = make_store(s3_endpoint), make_store(s3_endpoint)
    first.put(b"same bytes", ref)
    with pytest.raises(DatasetExistsError, match=f"quantum {first.write_token.quantum_id}"):
        second.put(b"same bytes", ref)
    assert not second.knows(ref)
    first.close()
    second.close()


@pytest.mark.parametrize("size", [10, BIG], ids=["small", "multipart"])
def test_object_without_token_is_never_taken(s3_endpoint: S3TestEndpoint, refs: RefMaker, size: int) -> None:
    store = make_store(s3_endpoint)
    ref = refs.make("Bytes")
    key = _key(store, ref)
    data = b"\x01" * size
    checksum = checksums.compute(store.config.checksum_algorithm, data)
    # Same bytes, same checksum metadata, but no write token: not ours, whatever it holds.
    s3_endpoint.client.put_object(
        Bucket=s3_endpoint.bucket, Key=key, Body=data, Metadata={WRITE_CHECKSUM: str(checksum)}
    )
    with pytest.raises(DatasetExistsError, match="no write token"):
        store.put(data, ref)
    assert not store.knows(ref)
    store.close()


# ------------------------------------------------------------------ attempts of one quantum


@pytest.mark.parametrize("size", [10, BIG], ids=["small", "multipart"])
def test_earlier_attempt_of_the_same_quantum_is_replaced(
    s3_endpoint: S3TestEndpoint, refs: RefMaker, caplog: pytest.LogCaptureFixture, size: int
) -> None:
    ref = refs.make("Bytes")
    earlier = make_store(s3_endpoint)
    earlier.put(b"\x01" * size, ref)
    later = make_store(s3_endpoint, WriteToken.new(earlier.write_token.quantum_id))
    with caplog.at_level(logging.WARNING, "s3qbb.s3.objects"):
        later.put(b"\x02" * size, ref)
    key = _key(later, ref)
    body, meta = _stored(s3_endpoint, key)
    assert body == b"\x02" * size and meta[WRITE_TOKEN] == str(later.write_token)
    assert any(key in r.getMessage() and "earlier attempt" in r.getMessage() for r in caplog.records)
    assert later.get(ref) == b"\x02" * size
    earlier.close()
    later.close()


@pytest.mark.parametrize("size", [10, BIG], ids=["small", "multipart"])
def test_another_quantum_never_replaces(s3_endpoint: S3TestEndpoint, refs: RefMaker, size: int) -> None:
    ref = refs.make("Bytes")
    owner = make_store(s3_endpoint)
    owner.put(b"\x01" * size, ref)
    other = make_store(s3_endpoint)
    with pytest.raises(DatasetExistsError, match="another writer"):
        other.put(b"\x02" * size, ref)
    body, meta = _stored(s3_endpoint, _key(owner, ref))
    assert body == b"\x01" * size and meta[WRITE_TOKEN] == str(owner.write_token)
    assert not other.knows(ref)
    assert _requests(other).get("CreateMultipartUpload", 0) == 0  # a loser uploads nothing
    owner.close()
    other.close()


def test_sidecar_of_an_earlier_attempt_is_replaced_not_another_quantums(
    s3_endpoint: S3TestEndpoint,
) -> None:
    path = "run/_records/q.quantum.json"
    earlier = make_store(s3_endpoint)
    earlier.put_sidecar(path, b"first")
    later = make_store(s3_endpoint, WriteToken.new(earlier.write_token.quantum_id))
    with pytest.raises(DatasetExistsError, match="another attempt"):
        later.put_sidecar(path, b"second")  # create-only unless asked to replace an earlier attempt's
    later.put_sidecar(path, b"second", replace_earlier=True)
    assert later.read_sidecar(path) == b"second"
    stranger = make_store(s3_endpoint)
    with pytest.raises(DatasetExistsError, match="another writer"):
        stranger.put_sidecar(path, b"third", replace_earlier=True)
    stranger.put_sidecar(path, b"forced", overwrite=True)  # an explicit overwrite carries its token
    _, meta = _stored(s3_endpoint, f"{PREFIX}/{path}")
    assert meta[WRITE_TOKEN] == str(stranger.write_token)
    for s in (earlier, later, stranger):
        s.close()


# ------------------------------------------------------------------ confirmation catches a swap


@pytest.mark.parametrize(
    ("size", "operation", "config"),
    [(10, "PutObject", {"conditional_put_atomic": False}), (BIG, "CompleteMultipartUpload", {})],
    ids=["small-not-atomic", "multipart"],
)
def test_confirmation_catches_another_writers_object(
    s3_endpoint: S3TestEndpoint, refs: RefMaker, size: int, operation: str, config: dict[str, Any]
) -> None:
    """A server whose conditional write is not atomic may let a second writer succeed too."""
    store = make_store(s3_endpoint, **config)
    ref = refs.make("Bytes")
    key = _key(store, ref)
    intruder = str(WriteToken.new())

    transport = store.bucket.transport
    method = "put_object" if operation == "PutObject" else "complete_multipart_upload"
    send = getattr(transport, method)

    def overwrite(*args: Any, **kwargs: Any) -> Any:
        result = send(*args, **kwargs)  # the request succeeds, then another writer's object lands
        s3_endpoint.client.put_object(
            Bucket=s3_endpoint.bucket, Key=key, Body=b"intruder", Metadata={WRITE_TOKEN: intruder}
        )
        return result

    setattr(transport, method, overwrite)
    with pytest.raises(DatasetExistsError, match="another writer's object was stored"):
        store.put(b"\x03" * size, ref)
    assert not store.knows(ref)
    assert _stored(s3_endpoint, key)[0] == b"intruder"
    store.close()


# ------------------------------------------------------------------ plumbing


def test_caching_wrapper_delegates_the_token(s3_endpoint: S3TestEndpoint) -> None:
    backend = make_store(s3_endpoint)
    wrapper = CachingDatastore.disabled(backend)
    assert wrapper.write_token == backend.write_token
    token = WriteToken.new()
    wrapper.write_token = token
    assert backend.write_token == token
    with pytest.raises(TypeError):
        wrapper.write_token = "not a token"  # type: ignore[assignment]
    backend.close()


def test_each_datastore_has_its_own_random_quantum(s3_endpoint: S3TestEndpoint) -> None:
    a, b = make_store(s3_endpoint), make_store(s3_endpoint)
    assert not a.write_token.same_quantum(b.write_token)
    a.close()
    b.close()


# --- two threads of one datastore (one write token) putting the same dataset ------------------------


@pytest.mark.parametrize("size", [100, BIG], ids=["small", "multipart"])
@pytest.mark.parametrize("bulk", [False, True], ids=["put", "put_many"])
def test_a_second_thread_putting_the_same_dataset_never_takes_the_first_ones_object(
    store: S3Datastore, s3_endpoint: S3TestEndpoint, refs: RefMaker, size: int, bulk: bool
) -> None:
    """The threads of a datastore share its write token, so the token cannot tell them apart.

    Thread A has stored its object and not yet recorded it when thread B puts the
    same dataset with other bytes. Before the fix, B's create-only PUT got 412, its
    HEAD saw the shared token and took A's object for its own retried write; B
    recorded its checksum first, A got "recorded concurrently", and every read of
    the dataset failed its checksum. Now B is refused at once; A's bytes and record
    stand.
    """
    import threading

    ref = refs.make("Bytes")
    first, second = b"A" * size, b"B" * size
    stored = threading.Event()
    b_done = threading.Event()
    real_write = store._write_object

    def write_then_wait(obj: Any, r: Any, sc: Any) -> Any:
        result = real_write(obj, r, sc)
        if obj is first:  # A: object stored, record not yet written
            stored.set()
            assert b_done.wait(30)
        return result

    store._write_object = write_then_wait  # type: ignore[method-assign]
    outcome: dict[str, BaseException | None] = {}

    def put(name: str, data: bytes) -> None:
        try:
            if bulk:
                store.put_many([(data, ref)])
            else:
                store.put(data, ref)
            outcome[name] = None
        except BaseException as err:
            outcome[name] = err
        finally:
            if name == "B":
                b_done.set()

    a = threading.Thread(target=put, args=("A", first))
    a.start()
    assert stored.wait(30)
    put("B", second)
    a.join(30)
    assert outcome["A"] is None
    assert isinstance(outcome["B"], DatasetExistsError)
    assert "being written by another thread" in str(outcome["B"])
    assert store.get(ref) == first
    body, _ = _stored(s3_endpoint, _key(store, ref))
    assert body == first


@pytest.mark.parametrize("size", [100, BIG], ids=["small", "multipart"])
def test_the_same_token_with_other_bytes_is_not_this_write(
    store: S3Datastore, s3_endpoint: S3TestEndpoint, size: int
) -> None:
    """An object under this write's token is taken as a retried write only if its checksum is this write's.

    The bucket layer's own rule, beneath the datastore's in-flight claim: a second
    put_new of one key under one token with other bytes is a conflict (the stored
    bytes stay), while the same bytes again are a retried write and succeed.
    """
    from s3qbb.errors import PreconditionFailedError

    key = f"{PREFIX}/same-token-{size}"
    first, second = b"A" * size, b"B" * size
    algorithm = store.config.checksum_algorithm
    store.bucket.put_new(key, first, checksums.compute(algorithm, first), token=store.write_token)
    with pytest.raises(PreconditionFailedError):
        store.bucket.put_new(key, second, checksums.compute(algorithm, second), token=store.write_token)
    assert _stored(s3_endpoint, key)[0] == first
    if size == 100:  # the same bytes again: a retry whose first response was lost
        store.bucket.put_new(key, first, checksums.compute(algorithm, first), token=store.write_token)
        assert _stored(s3_endpoint, key)[0] == first


# ------------------------------------------------------------------ every PUT response cut short

EVERY_PUT = ("PutObject", "CompleteMultipartUpload")
# Not UploadPart: a part whose every response is cut never yields the ETag its completion needs, and
# both transports give up on it (TransientStorageError), as on any request that never answers.


def _cutting_proxy(endpoint: S3TestEndpoint) -> FaultProxy:
    """A proxy cutting every object write's response: the server applies it, the client sees half of it."""
    return FaultProxy(endpoint.endpoint_url, {op: ["truncate"] * 50 for op in EVERY_PUT})


@pytest.mark.parametrize("size", [10, BIG], ids=["small", "multipart"])
def test_every_put_response_cut_short_is_recognised_by_the_token(
    s3_endpoint: S3TestEndpoint, refs: RefMaker, size: int
) -> None:
    """The first PUT is stored, its response cut; the retry is refused (412, its body cut too) and the
    object carries this write's token: the put succeeds, on obstore (which loses the status of a cut
    error response, so it looks at the object) as on boto3 (which reads the status)."""
    with _cutting_proxy(s3_endpoint) as proxy:
        store = make_store(dataclasses.replace(s3_endpoint, config=proxy.endpoint_config(s3_endpoint.config)))
        ref = refs.make("Bytes")
        data = b"\x09" * size
        store.put(data, ref)
        assert proxy.injected["truncate"] >= 2  # the write and its retry, at least
        assert store.stats.retries >= 1
        body, meta = _stored(s3_endpoint, _key(store, ref))
        assert body == data and meta[WRITE_TOKEN] == str(store.write_token) and WRITE_PENDING not in meta
        assert store.get(ref) == data
        store.close()


@pytest.mark.parametrize("size", [10, BIG], ids=["small", "multipart"])
def test_every_put_response_cut_short_never_takes_another_writers_object(
    s3_endpoint: S3TestEndpoint, refs: RefMaker, size: int
) -> None:
    ref = refs.make("Bytes")
    owner = make_store(s3_endpoint)
    owner.put(b"\x01" * size, ref)
    with _cutting_proxy(s3_endpoint) as proxy:
        other = make_store(dataclasses.replace(s3_endpoint, config=proxy.endpoint_config(s3_endpoint.config)))
        with pytest.raises(DatasetExistsError, match="another writer"):
            other.put(b"\x02" * size, ref)
        assert proxy.injected["truncate"] >= 1
        assert not other.knows(ref)
        other.close()
    body, meta = _stored(s3_endpoint, _key(owner, ref))
    assert body == b"\x01" * size and meta[WRITE_TOKEN] == str(owner.write_token)
    owner.close()


def test_every_put_response_cut_short_still_replaces_an_earlier_attempt(
    s3_endpoint: S3TestEndpoint, refs: RefMaker
) -> None:
    """Create-only PUT refused, If-Match PUT stored with its response cut, its retry refused: ours."""
    ref = refs.make("Bytes")
    earlier = make_store(s3_endpoint)
    earlier.put(b"\x01" * 10, ref)
    with _cutting_proxy(s3_endpoint) as proxy:
        config = proxy.endpoint_config(s3_endpoint.config)
        later = make_store(
            dataclasses.replace(s3_endpoint, config=config), WriteToken.new(earlier.write_token.quantum_id)
        )
        later.put(b"\x02" * 10, ref)
        assert proxy.injected["truncate"] >= 3
        body, meta = _stored(s3_endpoint, _key(later, ref))
        assert body == b"\x02" * 10 and meta[WRITE_TOKEN] == str(later.write_token)
        assert later.get(ref) == b"\x02" * 10
        later.close()
    earlier.close()


# ------------------------------------------------------------------ no answer to any attempt of a PUT


def _unanswering_proxy(endpoint: S3TestEndpoint, kind: str) -> FaultProxy:
    """A proxy breaking every PutObject (more than the retries): ``reset_after`` stores it, ``reset_before``
    does not; neither lets an answer through."""
    return FaultProxy(endpoint.endpoint_url, {"PutObject": [kind] * 50})


def test_put_whose_every_answer_is_lost_landed_if_the_object_is_this_writes(
    s3_endpoint: S3TestEndpoint,
) -> None:
    """The first PUT is stored, every answer reset, so no 412 ever settles it: one HEAD after the retries
    run out finds this write's token and checksum, and the put succeeded."""
    with _unanswering_proxy(s3_endpoint, "reset_after") as proxy:
        store = make_store(dataclasses.replace(s3_endpoint, config=proxy.endpoint_config(s3_endpoint.config)))
        checksum = checksums.compute(store.config.checksum_algorithm, b"report")
        store.bucket.put_new(f"{PREFIX}/landed", b"report", checksum, token=store.write_token)
        attempts = store.config.retry.max_attempts
        assert proxy.injected == {"reset_after": attempts}
        assert _requests(store) == {"PutObject": attempts, "HeadObject": 1}
        store.close()
    body, meta = _stored(s3_endpoint, f"{PREFIX}/landed")
    assert body == b"report" and meta[WRITE_TOKEN] == str(store.write_token)


@pytest.mark.parametrize("whose", ["another attempt", "another quantum", "this token, other bytes"])
def test_put_whose_every_answer_is_lost_never_takes_another_writes_object(
    s3_endpoint: S3TestEndpoint, whose: str
) -> None:
    """The PUT never reaches the server; the object there is another write's: still a transient failure."""
    from s3qbb.errors import TransientStorageError

    key = f"{PREFIX}/theirs-{whose.replace(' ', '-').replace(',', '')}"
    owner = make_store(s3_endpoint)
    algorithm = owner.config.checksum_algorithm
    owner.bucket.put_new(key, b"first", checksums.compute(algorithm, b"first"), token=owner.write_token)
    token = {
        "another attempt": WriteToken.new(owner.write_token.quantum_id),
        "another quantum": WriteToken.new(),
        "this token, other bytes": owner.write_token,
    }[whose]
    with _unanswering_proxy(s3_endpoint, "reset_before") as proxy:
        store = make_store(dataclasses.replace(s3_endpoint, config=proxy.endpoint_config(s3_endpoint.config)))
        with pytest.raises(TransientStorageError):
            store.bucket.put_new(key, b"second", checksums.compute(algorithm, b"second"), token=token)
        assert proxy.injected == {"reset_before": store.config.retry.max_attempts}
        store.close()
    body, meta = _stored(s3_endpoint, key)
    assert body == b"first" and meta[WRITE_TOKEN] == str(owner.write_token)
    owner.close()
