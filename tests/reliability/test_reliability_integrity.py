"""Verified reads: per-block checksums for partial reads, one re-read on a failed check (issue 12.3).

A bit flipped on the server fails every read that touches its block (and
only those); a bit flipped in transit is read again and succeeds; a block
list altered in the object metadata is not trusted. On the moto server and
SeaweedFS, on both transports (boto3 and obstore), through a raw boto3 back
door and the fault proxy.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s3qbb.config import S3EndpointConfig
from s3qbb.core.dataset_ref import DatasetRef
from s3qbb.datastores.s3 import S3Datastore
from s3qbb.errors import DatasetIntegrityError
from s3qbb.formatters.npy import NpyFormatter, parse_npy_header
from s3qbb.s3 import make_retry_policy
from s3qbb.s3.checksums import BLOCKS_METADATA, BlockChecksums, parse
from s3qbb.s3.client import new_client
from s3qbb.testing.backdoors import S3Backdoor
from s3qbb.testing.data import RefMaker, example_storage_classes
from s3qbb.testing.faults import FaultInjector
from s3qbb.testing.proxy import FaultProxy
from s3qbb.testing.servers import S3TestEndpoint
from s3qbb.testing.transports import count_requests, with_transport

BLOCK = 4096  # small blocks: the 64 KB test array has 16 of them
ROW = 500
ARRAY = np.arange(8000, dtype="float64").reshape(1000, 8)


def make_store(
    endpoint: S3TestEndpoint, block: int | None = BLOCK, config: S3EndpointConfig | None = None
) -> S3Datastore:
    config = config or endpoint.config
    if block is not None:
        config = config.model_copy(update={"checksum_block_size": block})
    return S3Datastore(
        f"s3://{endpoint.bucket}/repo",
        config=config,
        client=new_client(config) if config.transport == "boto3" else None,
        retry=make_retry_policy(config, sleep=lambda s: None),
        storageClassFactory=example_storage_classes(),
    )


@pytest.fixture
def endpoint(s3_endpoint: S3TestEndpoint, s3_transport: str) -> S3TestEndpoint:
    return with_transport(s3_endpoint, s3_transport)


@pytest.fixture
def backdoor(endpoint: S3TestEndpoint) -> S3Backdoor:
    return S3Backdoor(endpoint.client, endpoint.bucket, "repo")


@pytest.fixture
def store(endpoint: S3TestEndpoint) -> Iterator[S3Datastore]:
    s = make_store(endpoint)
    yield s
    s.close()


def put_array(store: S3Datastore, array: Any = ARRAY) -> DatasetRef:
    ref = RefMaker().make("NumpyArray")
    store.put(array, ref)
    return ref


def row_offset(row: int) -> int:
    """Offset of a row of `ARRAY` in its ``.npy`` file."""
    header = parse_npy_header(NpyFormatter().write(ARRAY))
    assert header is not None
    return header.data_offset + row * header.row_nbytes


def read(store: S3Datastore, ref: DatasetRef, rows: slice | None = None) -> Any:
    return store.get(ref, parameters=None if rows is None else {"rows": rows})


# ------------------------------------------------------------------ what is stored


def test_block_list_is_stored_in_metadata_and_authenticated_by_the_record(
    store: S3Datastore, backdoor: S3Backdoor
) -> None:
    ref = put_array(store)
    metadata = backdoor.metadata(ref)
    blocks = BlockChecksums.from_metadata(metadata[BLOCKS_METADATA])
    data = backdoor.read_artifact(ref)
    assert blocks == BlockChecksums.compute(data, BLOCK) and len(blocks.crcs) == -(-len(data) // BLOCK)
    record = store.records.get(ref.id)[0]
    assert record.checksum is not None and len(record.checksum) <= 128
    checksum = parse(record.checksum)
    assert checksum.trusts(blocks) and checksum.block_size == BLOCK
    assert record.checksum.startswith(f"CRC32C:{checksum.value};blocks={BLOCK}:")
    # The full-object checksum is unchanged: what S3 itself checks on upload.
    assert metadata["s3qbb-checksum"] == record.checksum


def test_single_block_objects_have_no_block_list(endpoint: S3TestEndpoint, backdoor: S3Backdoor) -> None:
    store = make_store(endpoint, block=None)  # 1 MiB blocks: the 64 KB array is one block
    ref = put_array(store)
    assert BLOCKS_METADATA not in backdoor.metadata(ref)
    assert ";blocks=" not in (store.records.get(ref.id)[0].checksum or "")


# ------------------------------------------------------------- bit rot on the server


def test_server_bit_flip_fails_only_reads_of_its_block(store: S3Datastore, backdoor: S3Backdoor) -> None:
    ref = put_array(store)
    offset = row_offset(ROW) + 3
    backdoor.flip_bit(ref, offset)
    with count_requests(store) as counter:
        with pytest.raises(DatasetIntegrityError) as info:
            read(store, ref, slice(495, 505))
        # Header block, then the rows' block twice (read again from the server, same damage).
        assert counter.requests == {"GetObject": 3}
        assert store.stats.retries == 1
        message = str(info.value) + "".join(getattr(info.value, "__notes__", []))
        assert str(ref) in message and store.getURI(ref) in message
        assert f"block {offset // BLOCK} " in message and "Restore" in message
        assert "failed again on a fresh read" in message
        counter.reset()
        # Rows in other blocks still read, verified: the header block holds rows 0:10.
        np.testing.assert_array_equal(read(store, ref, slice(0, 10)), ARRAY[0:10])
        assert counter.requests == {"GetObject": 1}
        counter.reset()
        np.testing.assert_array_equal(read(store, ref, slice(990, 1000)), ARRAY[990:1000])
        assert counter.requests == {"GetObject": 2}
        counter.reset()
        with pytest.raises(DatasetIntegrityError, match="fails its CRC32C checksum"):
            read(store, ref)
        assert counter.requests == {"GetObject": 2}
    assert store.stats.retries == 2


def test_server_bit_flip_with_default_blocks_fails_the_partial_read(
    endpoint: S3TestEndpoint, backdoor: S3Backdoor
) -> None:
    """The issue's case as reported: one 1 MiB block, so a partial read reads and verifies it whole."""
    store = make_store(endpoint, block=None)
    ref = put_array(store)
    backdoor.flip_bit(ref, row_offset(ROW) + 3)
    with count_requests(store) as counter:
        with pytest.raises(DatasetIntegrityError, match="fails its CRC32C checksum"):
            read(store, ref, slice(495, 505))
        assert counter.requests == {"GetObject": 2}


def test_header_bit_flip_fails_every_partial_read(store: S3Datastore, backdoor: S3Backdoor) -> None:
    ref = put_array(store)
    backdoor.flip_bit(ref, 60)  # inside the npy header text
    for rows in (slice(0, 10), slice(495, 505)):
        with pytest.raises(DatasetIntegrityError, match="block 0 "):
            read(store, ref, rows)


# ---------------------------------------------------------------- bit flips in transit


@pytest.fixture
def proxy(endpoint: S3TestEndpoint) -> Iterator[FaultProxy]:
    with FaultProxy(endpoint.endpoint_url) as p:
        yield p


@pytest.fixture
def proxied(proxy: FaultProxy, endpoint: S3TestEndpoint) -> Iterator[S3Datastore]:
    s = make_store(endpoint, config=proxy.endpoint_config(endpoint.config))
    yield s
    s.close()


@pytest.mark.parametrize(
    ("rows", "script", "gets"),
    [
        (None, ["corrupt"], 2),  # whole read
        (slice(495, 505), ["corrupt"], 3),  # the header block
        (slice(495, 505), ["ok", "corrupt"], 3),  # the rows' block
    ],
)
def test_bit_flip_in_transit_is_read_again(
    proxied: S3Datastore, proxy: FaultProxy, rows: slice | None, script: list[str], gets: int
) -> None:
    ref = put_array(proxied)
    proxy.reset_counters()
    proxy.script("GetObject", *script)
    got = read(proxied, ref, rows)
    np.testing.assert_array_equal(got, ARRAY if rows is None else ARRAY[rows])
    assert proxy.injected == {"corrupt": 1}
    assert proxy.requests == {"GetObject": gets}
    assert proxied.stats.retries == 1
    assert proxied.retry.stats.errors == {"ChecksumMismatch": 1}


@pytest.mark.parametrize(
    ("rows", "script"), [(None, ["corrupt"] * 2), (slice(495, 505), ["ok"] + ["corrupt"] * 2)]
)
def test_persistent_bit_flip_in_transit_raises_after_one_retry(
    proxied: S3Datastore, proxy: FaultProxy, rows: slice | None, script: list[str]
) -> None:
    ref = put_array(proxied)
    proxy.reset_counters()
    proxy.script("GetObject", *script, "corrupt")  # one more than the datastore may use
    with pytest.raises(DatasetIntegrityError):
        read(proxied, ref, rows)
    assert proxy.requests == {"GetObject": len(script)}
    assert proxy.pending("GetObject") == 1
    assert proxied.stats.retries == 1


def test_in_process_corrupt_fault_is_read_again(store: S3Datastore) -> None:
    """The same with the in-process `FaultInjector` (its ``corrupt`` fault flips a bit of the body)."""
    if store.config.transport != "boto3":
        pytest.skip("FaultInjector hooks botocore; the FaultProxy tests above cover every transport")
    ref = put_array(store)
    with FaultInjector(store.bucket.client, {"GetObject": ["ok", "corrupt"]}) as faults:
        np.testing.assert_array_equal(read(store, ref, slice(495, 505)), ARRAY[495:505])
        assert faults.requests == {"GetObject": 3} and faults.injected == {"corrupt": 1}
        faults.script("GetObject", "corrupt", "corrupt", "corrupt")
        with pytest.raises(DatasetIntegrityError, match="block 0 "):
            read(store, ref, slice(495, 505))
        assert faults.pending("GetObject") == 1
    assert store.stats.retries == 2


def test_reads_check_the_checksums_computed_as_the_body_arrived(
    store: S3Datastore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whole and partial reads compare the transport's digest: the body is not checksummed again."""
    from s3qbb.s3 import checksums

    ref = put_array(store)
    again: list[str] = []

    def compute(*args: Any) -> Any:
        again.append("compute")
        return real_compute(*args)

    def first_bad_block(*args: Any) -> Any:
        again.append("first_bad_block")
        return real_first_bad_block(*args)

    real_compute, real_first_bad_block = checksums.compute, BlockChecksums.first_bad_block
    monkeypatch.setattr(checksums, "compute", compute)
    monkeypatch.setattr(BlockChecksums, "first_bad_block", first_bad_block)
    np.testing.assert_array_equal(read(store, ref), ARRAY)
    np.testing.assert_array_equal(read(store, ref, slice(495, 505)), ARRAY[495:505])
    assert again == []


# ------------------------------------------------------------------ metadata tampering


def test_altered_block_list_is_not_trusted(store: S3Datastore, backdoor: S3Backdoor) -> None:
    ref = put_array(store)
    metadata = backdoor.metadata(ref)
    blocks = BlockChecksums.from_metadata(metadata[BLOCKS_METADATA])
    crcs = list(blocks.crcs)
    crcs[7] ^= 1
    backdoor.rewrite(
        ref, metadata={**metadata, BLOCKS_METADATA: BlockChecksums(BLOCK, tuple(crcs)).to_metadata()}
    )
    with pytest.raises(DatasetIntegrityError, match="metadata was altered"):
        read(store, ref, slice(0, 10))
    # The bytes are intact: a whole read checks the full-object checksum of the record.
    np.testing.assert_array_equal(read(store, ref), ARRAY)


def test_consistently_rewritten_object_is_detected(store: S3Datastore, backdoor: S3Backdoor) -> None:
    """Damaged bytes with a block list recomputed to match them: the record's digest tells."""
    ref = put_array(store)
    data = bytearray(backdoor.read_artifact(ref))
    data[row_offset(ROW)] ^= 0x10
    metadata = {
        **backdoor.metadata(ref),
        BLOCKS_METADATA: BlockChecksums.compute(bytes(data), BLOCK).to_metadata(),
    }
    backdoor.rewrite(ref, bytes(data), metadata)
    for rows in (slice(0, 10), slice(495, 505)):
        with pytest.raises(DatasetIntegrityError, match="does not match its record"):
            read(store, ref, rows)
    with pytest.raises(DatasetIntegrityError, match="fails its CRC32C checksum"):
        read(store, ref)


def test_lost_block_list_falls_back_to_a_verified_whole_read(
    store: S3Datastore, backdoor: S3Backdoor, caplog: pytest.LogCaptureFixture
) -> None:
    """Intact bytes whose metadata lost the block list (a copy that drops metadata) are read whole.

    As a whole ``get`` of the same object succeeds, and a cached copy answers the same ``rows``: the
    partial read checks the bytes against the record's full-object checksum instead, and says so.
    """
    ref = put_array(store)
    metadata = {k: v for k, v in backdoor.metadata(ref).items() if k != BLOCKS_METADATA}
    backdoor.rewrite(ref, metadata=metadata)
    with count_requests(store) as counter, caplog.at_level("WARNING"):
        np.testing.assert_array_equal(read(store, ref, slice(495, 505)), ARRAY[495:505])
        assert counter.requests == {"GetObject": 2}  # the leading blocks, then the whole object
    assert "no 's3qbb-blocks' block checksum list" in caplog.text
    assert "reading the object whole" in caplog.text
    backdoor.flip_bit(ref, row_offset(10))  # damaged bytes as well: the full-object checksum tells
    with pytest.raises(DatasetIntegrityError, match="fails its CRC32C checksum"):
        read(store, ref, slice(495, 505))


@pytest.mark.parametrize("size", [0, 100])
def test_object_shorter_than_a_ranged_read_is_an_integrity_error(
    store: S3Datastore, backdoor: S3Backdoor, size: int
) -> None:
    """A rows read of a truncated object fails as a whole read does: the dataset named, what to do."""
    ref = put_array(store)
    backdoor.rewrite(ref, backdoor.read_artifact(ref)[:size], backdoor.metadata(ref))
    for rows in (slice(495, 505), None):
        with pytest.raises(DatasetIntegrityError) as caught:
            read(store, ref, rows)
        assert str(ref) in str(caught.value)


def test_record_without_block_list_falls_back_to_a_verified_whole_read(
    store: S3Datastore, backdoor: S3Backdoor
) -> None:
    """Records written before block lists (or adopted without one) read the object whole, verified."""
    ref = put_array(store)
    info = store.records.get(ref.id)[0]
    assert info.checksum is not None
    store.records.delete([ref.id])
    store.records.insert([info.update(checksum=info.checksum.partition(";")[0])])
    with count_requests(store) as counter:
        np.testing.assert_array_equal(read(store, ref, slice(495, 505)), ARRAY[495:505])
        assert counter.requests == {"GetObject": 1}
        backdoor.flip_bit(ref, row_offset(10))
        with pytest.raises(DatasetIntegrityError):
            read(store, ref, slice(495, 505))


# ------------------------------------------------------------------ random slices


@pytest.mark.moto_server
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    start=st.integers(-1100, 1100),
    stop=st.integers(-1100, 1100) | st.none(),
    step=st.integers(1, 40) | st.none(),
    bad_row=st.integers(0, 999),
)
def test_random_slices_read_or_fail_exactly_by_block(
    moto_endpoint: S3TestEndpoint, start: int, stop: int | None, step: int | None, bad_row: int
) -> None:
    """Against a reference array: a slice reads correctly unless it touches the damaged block."""
    store = make_store(moto_endpoint, block=1024)
    try:
        ref = put_array(store)
        rows = slice(start, stop, step)
        np.testing.assert_array_equal(read(store, ref, rows), ARRAY[rows])
        offset = row_offset(bad_row)
        S3Backdoor(moto_endpoint.client, moto_endpoint.bucket, "repo").flip_bit(ref, offset)
        selected = range(*rows.indices(1000))
        head = max(1024, 4096)  # the leading blocks a partial read fetches for the npy header
        first = row_offset(selected[0]) if selected else 0
        last = row_offset(selected[-1] + 1) if selected else 0
        touched = offset < head or (bool(selected) and first // 1024 <= offset // 1024 <= (last - 1) // 1024)
        if touched:
            with pytest.raises(DatasetIntegrityError):
                read(store, ref, rows)
        else:
            np.testing.assert_array_equal(read(store, ref, rows), ARRAY[rows])
    finally:
        store.close()


# ------------------------------------------------------------------ multipart objects


def test_multipart_object_carries_its_block_list(endpoint: S3TestEndpoint, backdoor: S3Backdoor) -> None:
    """A multipart upload (its metadata set by CreateMultipartUpload) is verified block by block too."""
    config = endpoint.config.model_copy(
        update={"multipart_threshold": 5 * 1024**2, "multipart_chunksize": 5 * 1024**2}
    )
    store = make_store(endpoint, block=None, config=config)  # 1 MiB blocks
    array = np.arange(6 * 1024**2 // 8, dtype="float64").reshape(-1, 1024)  # 6 MiB: two parts, 7 blocks
    try:
        ref = RefMaker().make("NumpyArray")
        with count_requests(store) as counter:
            store.put(array, ref)
            assert counter.requests["UploadPart"] == 2
            counter.reset()
            np.testing.assert_array_equal(read(store, ref, slice(400, 404)), array[400:404])
            assert counter.requests == {"GetObject": 2}
        assert store.stats.bytes_read == 2 * 1024**2  # the header block, then the block of the rows
        assert BlockChecksums.from_metadata(backdoor.metadata(ref)[BLOCKS_METADATA]).covers(
            array.nbytes + 128
        )
        backdoor.flip_bit(ref, 128 + 401 * 8192)
        with pytest.raises(DatasetIntegrityError, match="block 3 "):
            read(store, ref, slice(400, 404))
        np.testing.assert_array_equal(read(store, ref, slice(0, 4)), array[0:4])
    finally:
        store.close()
