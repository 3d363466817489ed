"""Checksums and per-block checksum lists: formats, block sizes, the metadata budget."""

from __future__ import annotations

import os

import pytest

from s3qbb.core.attempt import WriteToken
from s3qbb.s3 import checksums
from s3qbb.s3.checksums import (
    BLOCKS_METADATA,
    DEFAULT_BLOCK_SIZE,
    MAX_BLOCKS,
    BlockChecksums,
    Checksum,
    block_size_for,
    compute,
    compute_for_upload,
    parse,
)
from s3qbb.s3.objects import WRITE_CHECKSUM, WRITE_TOKEN

KIB, MIB = 1024, 1024**2


def test_small_objects_have_no_block_list() -> None:
    checksum, metadata = compute_for_upload("CRC32C", b"payload")
    assert checksum == Checksum("CRC32C", "9ONpcA==") and str(checksum) == "CRC32C:9ONpcA=="
    assert metadata == {}
    assert compute_for_upload("CRC32C", b"x" * MIB)[1] == {}  # exactly one block


@pytest.mark.parametrize("algorithm", ["CRC32C", "SHA256"])
def test_block_list_and_full_checksum_of_a_large_object(algorithm: checksums.Algorithm) -> None:
    data = os.urandom(2 * MIB + 5)
    checksum, metadata = compute_for_upload(algorithm, data)
    assert checksum.same_value(compute(algorithm, data))  # combined from the blocks for CRC32C
    blocks = BlockChecksums.from_metadata(metadata[BLOCKS_METADATA])
    assert blocks == BlockChecksums.compute(data, DEFAULT_BLOCK_SIZE) and len(blocks.crcs) == 3
    assert checksum.trusts(blocks) and checksum.block_size == DEFAULT_BLOCK_SIZE
    assert parse(str(checksum)) == checksum
    assert str(checksum).startswith(f"{algorithm}:{checksum.value};blocks={DEFAULT_BLOCK_SIZE}:")
    altered = BlockChecksums(blocks.block_size, (blocks.crcs[0] ^ 1, *blocks.crcs[1:]))
    assert not checksum.trusts(altered)
    assert not Checksum(algorithm, checksum.value).trusts(blocks)


def test_block_checks_locate_the_damaged_block() -> None:
    data = bytearray(os.urandom(10 * KIB + 100))
    blocks = BlockChecksums.compute(bytes(data), KIB)
    assert blocks.covers(len(data)) and not blocks.covers(len(data) + KIB)
    assert blocks.first_bad_block(0, data) is None
    assert blocks.first_bad_block(4 * KIB, data[4 * KIB : 6 * KIB]) is None
    data[5 * KIB + 7] ^= 4
    assert blocks.first_bad_block(0, data) == 5
    assert blocks.first_bad_block(4 * KIB, data[4 * KIB : 6 * KIB]) == 5
    assert blocks.first_bad_block(10 * KIB, data[10 * KIB :]) is None  # the short last block
    assert blocks.span(1500, 1600, len(data)) == (KIB, 2 * KIB)
    assert blocks.span(10 * KIB + 1, 10 * KIB + 2, len(data)) == (10 * KIB, len(data))


@pytest.mark.parametrize(
    ("size", "minimum", "expected"),
    [(10, MIB, MIB), (256 * MIB, MIB, MIB), (256 * MIB + 1, MIB, 2 * MIB), (5 * 1024**4, MIB, 32 * 1024**3)],
)
def test_block_size_grows_to_keep_the_list_short(size: int, minimum: int, expected: int) -> None:
    assert block_size_for(size, minimum) == expected
    assert -(-size // expected) <= MAX_BLOCKS


@pytest.mark.parametrize("bad", [0, 1000, 3 * KIB, MIB + 1])
def test_block_size_must_be_a_power_of_two_of_at_least_1_kib(bad: int) -> None:
    with pytest.raises(ValueError, match="power of two"):
        block_size_for(10, bad)


def test_metadata_of_the_largest_list_fits_the_s3_limit() -> None:
    """AWS allows 2 KiB of user metadata in all (keys and values): the longest list leaves room."""
    blocks = BlockChecksums(MIB, tuple(range(MAX_BLOCKS)))
    checksum = Checksum("SHA256", "A" * 43 + "=", blocks.reference())
    metadata = {
        BLOCKS_METADATA: blocks.to_metadata(),
        WRITE_CHECKSUM: str(checksum),
        WRITE_TOKEN: str(WriteToken.new()),
    }
    used = sum(len(k.encode()) + len(v.encode()) for k, v in metadata.items())
    assert used <= 1700 < 2048
    assert len(str(checksum)) <= 128  # the records' checksum column is VARCHAR(128)


@pytest.mark.parametrize(
    "text",
    [
        "CRC32C",
        "MD5:abc",
        "CRC32C:",
        "CRC32C:AAAAAA==;blocks=",
        "CRC32C:AAAAAA==;blocks=1000:abc",
        "CRC32C:AAAAAA==;blocks=1024:",
    ],
)
def test_malformed_checksums_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="Malformed checksum"):
        parse(text)


@pytest.mark.parametrize(
    "text", ["", "1024", "1024:", "1000:AAAAAA==", "1024:AAAAAA", "1024:AAA=", "x:AAAAAA=="]
)
def test_malformed_block_lists_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="Malformed block checksum list"):
        BlockChecksums.from_metadata(text)


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 1023, 1024, 4097, 64 * KIB + 1])
def test_pure_python_crc32c_is_awscrt_s(size: int) -> None:
    from awscrt import checksums as crt  # type: ignore[import-untyped]

    data = os.urandom(size + 7)
    assert checksums._crc32c_python(data) == crt.crc32c(data)
    view = memoryview(data)[7:]  # an offset slice, as the block checks pass them
    assert checksums._crc32c_python(view) == crt.crc32c(bytes(view)) == checksums.crc32c(view)
    assert checksums.crc32c(memoryview(bytearray(data))) == crt.crc32c(data)
    assert checksums._crc32c_python(b"123456789") == 0xE3069283  # the CRC-32C check value


def test_crc32c_continues_a_previous_value() -> None:
    data = os.urandom(3 * KIB + 5)
    for cut in (0, 1, KIB, len(data)):
        first = checksums.crc32c(data[:cut])
        assert checksums.crc32c(data[cut:], first) == checksums.crc32c(data)
        assert checksums._crc32c_python(data[cut:], first) == checksums.crc32c(data)


def chunked(data: bytes, sizes: list[int]) -> list[memoryview]:
    """``data`` cut into pieces of the given sizes, cycled, as a streamed body arrives."""
    view, pieces, start, i = memoryview(data), [], 0, 0
    while start < len(data):
        pieces.append(view[start : start + sizes[i % len(sizes)]])
        start += sizes[i % len(sizes)]
        i += 1
    return pieces


@pytest.mark.parametrize("algorithm", ["CRC32C", "SHA256"])
@pytest.mark.parametrize("sizes", [[1], [KIB], [7, 3000, 256 * KIB], [10 * MIB]])
def test_running_checksum_of_chunks_is_the_checksum_of_the_body(
    algorithm: checksums.Algorithm, sizes: list[int]
) -> None:
    data = os.urandom(MIB + 13) if sizes != [1] else os.urandom(300)
    running = checksums.RunningChecksum(algorithm)
    for piece in chunked(data, sizes):
        running.update(piece)
    assert running.nbytes == len(data) and running.checksum() == compute(algorithm, data)
    assert checksums.RunningChecksum(algorithm).checksum() == compute(algorithm, b"")
    with pytest.raises(ValueError, match="Unsupported"):
        checksums.RunningChecksum("MD5")  # type: ignore[arg-type]


@pytest.mark.parametrize("sizes", [[1000], [KIB], [7, 3000, 5 * KIB], [MIB]])
def test_running_blocks_of_chunks_are_the_block_checksums(sizes: list[int]) -> None:
    data = bytearray(os.urandom(10 * KIB + 100))
    blocks = BlockChecksums.compute(bytes(data), KIB)
    running = checksums.RunningBlocks(KIB)
    for piece in chunked(bytes(data), sizes):
        running.update(piece)
    assert running.nbytes == len(data) and running.crcs() == blocks.crcs
    assert blocks.first_mismatch(0, running.crcs()) is None
    data[5 * KIB + 7] ^= 4
    running = checksums.RunningBlocks(KIB)
    for piece in chunked(bytes(data[4 * KIB :]), sizes):
        running.update(piece)
    assert blocks.first_mismatch(4 * KIB, running.crcs()) == 5
    assert blocks.first_mismatch(4 * KIB, running.crcs()[:1]) is None
    assert checksums.RunningBlocks(KIB).crcs() == ()


def test_small_bodies_do_not_load_awscrt_until_the_budget_is_spent() -> None:
    # A batch job's few small bodies are checksummed without importing awscrt (tens of ms of CPU).
    code = (
        "import sys\n"
        "from s3qbb.s3 import checksums as c\n"
        "assert str(c.compute('CRC32C', b'payload')) == 'CRC32C:9ONpcA=='\n"
        "c.compute_for_upload('CRC32C', b'x' * 1024)\n"
        "print('awscrt' in sys.modules)\n"
        "c.compute('CRC32C', b'x' * (c.PURE_PYTHON_BUDGET + 1))\n"
        "print('awscrt' in sys.modules)\n"
    )
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "True"]
