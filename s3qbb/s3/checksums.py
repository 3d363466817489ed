"""S3-native checksums (CRC32C, SHA256) and per-block CRC32C lists for verified partial reads.

A checksum is written ``"<ALGORITHM>:<base64 value>"`` (``"CRC32C:yZRlqg=="``),
the base64 value being exactly what S3 expects in the ``x-amz-checksum-*``
header, so the same string serves the request, the record and verification.

A read can check its body while it downloads: the transport feeds every
chunk as it arrives to a `Digest` (`RunningChecksum` for the full-object
checksum, `RunningBlocks` for the block list), so only the comparison is
left when the last byte lands (see `s3qbb.s3.transport.Transport.get_object`).

An object larger than one block also gets a `BlockChecksums` list (CRC32C of
every block of `block_size_for` bytes), stored in its metadata under
`BLOCKS_METADATA`. Its record checksum then ends with
``";blocks=<block size>:<digest>"``, the digest being a 128-bit SHA-256 prefix
of that metadata value: a ranged read trusts the list that comes with its
response (no extra request) only if it matches the digest of the record.
"""

from __future__ import annotations

__all__ = [
    "ALGORITHMS",
    "BLOCKS_METADATA",
    "DEFAULT_BLOCK_SIZE",
    "MAX_BLOCKS",
    "MIN_BLOCK_SIZE",
    "PURE_PYTHON_BUDGET",
    "BlockChecksums",
    "Checksum",
    "Digest",
    "RunningBlocks",
    "RunningChecksum",
    "block_size_for",
    "compute",
    "compute_for_upload",
    "crc32c",
    "parse",
    "request_parameter",
]

import base64
import binascii
import hashlib
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable

    from typing_extensions import Buffer

Algorithm = Literal["CRC32C", "SHA256"]
ALGORITHMS: tuple[Algorithm, ...] = ("CRC32C", "SHA256")

BLOCKS_METADATA = "s3qbb-blocks"
"""Object metadata key holding ``"<block size>:<base64 of the big-endian CRC32C list>"``."""

DEFAULT_BLOCK_SIZE = 1 << 20
"""Smallest block of the per-block checksums unless configured otherwise (1 MiB)."""

MIN_BLOCK_SIZE = 1 << 10
"""Smallest block size accepted (1 KiB)."""

MAX_BLOCKS = 256
"""Most blocks in one list: 256 CRC32C values are 1,368 base64 characters, which leaves room
in the 2 KiB S3 allows for all user metadata for the write token and the full checksum."""

_BLOCKS_TAG = ";blocks="
_DIGEST_BYTES = 16


@dataclass(frozen=True, slots=True)
class Checksum:
    """A checksum value and its algorithm.

    Parameters
    ----------
    algorithm : `str`
        ``"CRC32C"`` or ``"SHA256"``.
    value : `str`
        Base64 of the big-endian checksum bytes, as S3 spells it.
    """

    algorithm: Algorithm
    value: str
    blocks: str | None = None
    """``"<block size>:<digest>"`` of the object's `BlockChecksums`, or `None` if it has none."""

    def __str__(self) -> str:
        text = f"{self.algorithm}:{self.value}"
        return text if self.blocks is None else f"{text}{_BLOCKS_TAG}{self.blocks}"

    @property
    def block_size(self) -> int | None:
        """Block size of the object's block checksums, or `None` if it has none."""
        return None if self.blocks is None else int(self.blocks.partition(":")[0])

    def same_value(self, other: Checksum) -> bool:
        """Tell whether two checksums agree on the whole object (the block digests are not compared).

        Parameters
        ----------
        other : `Checksum`
            The other checksum.

        Returns
        -------
        same : `bool`
            `True` if algorithm and value are equal.
        """
        return self.algorithm == other.algorithm and self.value == other.value

    def trusts(self, blocks: BlockChecksums) -> bool:
        """Tell whether a block list (e.g. read from object metadata) is the one recorded here.

        Parameters
        ----------
        blocks : `BlockChecksums`
            The list to check.

        Returns
        -------
        trusted : `bool`
            `True` if its block size and digest match `blocks`.
        """
        return self.blocks is not None and self.blocks == blocks.reference()


@dataclass(frozen=True, slots=True)
class BlockChecksums:
    """CRC32C of every block of an object: the checks of verified partial reads.

    Parameters
    ----------
    block_size : `int`
        Bytes per block (a power of two); the last block may be shorter.
    crcs : `tuple` [`int`, ...]
        CRC32C of each block, in order.
    """

    block_size: int
    crcs: tuple[int, ...]

    @classmethod
    def compute(cls, data: bytes | memoryview, block_size: int) -> BlockChecksums:
        """Return the block checksums of ``data``.

        Parameters
        ----------
        data : `bytes` or `memoryview`
            The whole object.
        block_size : `int`
            Bytes per block.

        Returns
        -------
        blocks : `BlockChecksums`
            The list.
        """
        view = memoryview(data)
        crc = _crc32c_function()
        return cls(block_size, tuple(crc(view[o : o + block_size]) for o in range(0, len(view), block_size)))

    def to_metadata(self) -> str:
        """Return the object metadata value, ``"<block size>:<base64 of the big-endian CRC32C list>"``."""
        packed = b"".join(c.to_bytes(4, "big") for c in self.crcs)
        return f"{self.block_size}:{base64.b64encode(packed).decode('ascii')}"

    @classmethod
    def from_metadata(cls, text: str) -> BlockChecksums:
        """Parse a value written by `to_metadata`.

        Parameters
        ----------
        text : `str`
            The metadata value.

        Returns
        -------
        blocks : `BlockChecksums`
            The list.

        Raises
        ------
        ValueError
            If the text is malformed.
        """
        size, sep, encoded = text.partition(":")
        try:
            packed = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            packed = b"\x00"
        if not sep or not size.isdigit() or not _is_block_size(int(size)) or not packed or len(packed) % 4:
            raise ValueError(f"Malformed block checksum list {text[:60]!r}; expected '<size>:<base64>'.")
        crcs = tuple(int.from_bytes(packed[i : i + 4], "big") for i in range(0, len(packed), 4))
        return cls(int(size), crcs)

    def reference(self) -> str:
        """Return ``"<block size>:<digest>"``, what a record keeps of this list (see `Checksum.blocks`)."""
        digest = hashlib.sha256(self.to_metadata().encode("ascii")).digest()[:_DIGEST_BYTES]
        return f"{self.block_size}:{base64.urlsafe_b64encode(digest).decode('ascii').rstrip('=')}"

    def covers(self, size: int) -> bool:
        """Tell whether the list has exactly one entry per block of an object of ``size`` bytes."""
        return len(self.crcs) == -(-size // self.block_size)

    def span(self, start: int, stop: int, size: int) -> tuple[int, int]:
        """Return ``[start, stop)`` widened to whole blocks of an object of ``size`` bytes."""
        return (start // self.block_size) * self.block_size, min(
            size, -(-stop // self.block_size) * self.block_size
        )

    def first_bad_block(self, offset: int, data: Buffer) -> int | None:
        """Return the index of the first block of ``data`` whose CRC32C is wrong, or `None`.

        Parameters
        ----------
        offset : `int`
            Offset of ``data`` in the object; a multiple of the block size.
        data : `bytes`, `memoryview` or another buffer
            Whole blocks (the last block of the object may be short).

        Returns
        -------
        index : `int` or `None`
            Index in the object of the first failing block.
        """
        running = RunningBlocks(self.block_size)
        running.update(data)
        return self.first_mismatch(offset, running.crcs())

    def first_mismatch(self, offset: int, crcs: tuple[int, ...]) -> int | None:
        """Return the index of the first of ``crcs`` (blocks from ``offset`` on) that is wrong, or `None`.

        Parameters
        ----------
        offset : `int`
            Offset in the object of the first block; a multiple of the block size.
        crcs : `tuple` [`int`, ...]
            CRC32C of consecutive blocks read (`RunningBlocks.crcs`).

        Returns
        -------
        index : `int` or `None`
            Index in the object of the first failing block.
        """
        first = offset // self.block_size
        for i, crc in enumerate(crcs):
            index = first + i
            if index >= len(self.crcs) or crc != self.crcs[index]:
                return index
        return None


class Digest(Protocol):
    """What a transport feeds a body to, chunk by chunk in order as it arrives."""

    nbytes: int
    """Bytes fed so far."""

    def update(self, data: Buffer) -> None:
        """Feed the next chunk of the body."""


class RunningChecksum:
    """The full-object checksum (CRC32C or SHA256) of a body fed chunk by chunk.

    CRC32C continues the previous chunks' value (``crc32c(chunk, crc)``), so
    a chunk is checksummed while it is fresh in the cache and the whole body
    needs no second pass.

    Parameters
    ----------
    algorithm : `str`
        ``"CRC32C"`` or ``"SHA256"``.

    Raises
    ------
    ValueError
        If the algorithm is not supported.
    """

    __slots__ = ("_crc", "_sha", "algorithm", "nbytes")

    def __init__(self, algorithm: Algorithm) -> None:
        if algorithm not in ALGORITHMS:
            raise ValueError(f"Unsupported checksum algorithm {algorithm!r}; use one of {ALGORITHMS}.")
        self.algorithm: Algorithm = algorithm
        self.nbytes = 0
        self._crc = 0
        self._sha = hashlib.sha256() if algorithm == "SHA256" else None

    def update(self, data: Buffer) -> None:
        """Feed the next chunk of the body."""
        if self._sha is not None:
            self._sha.update(data)
        else:
            self._crc = crc32c(data, self._crc)
        self.nbytes += len(data) if isinstance(data, bytes) else memoryview(data).nbytes

    def checksum(self) -> Checksum:
        """Return the checksum of what was fed (as `compute` would of the whole body)."""
        digest = self._sha.digest() if self._sha is not None else self._crc.to_bytes(4, "big")
        return Checksum(self.algorithm, base64.b64encode(digest).decode("ascii"))


class RunningBlocks:
    """The CRC32C of every block of a body fed chunk by chunk; the body starts at a block boundary.

    Parameters
    ----------
    block_size : `int`
        Bytes per block; chunks need not be aligned to it.
    """

    __slots__ = ("_crc", "_done", "_filled", "block_size", "nbytes")

    def __init__(self, block_size: int) -> None:
        self.block_size = block_size
        self.nbytes = 0
        self._done: list[int] = []
        self._crc = 0
        self._filled = 0

    def update(self, data: Buffer) -> None:
        """Feed the next chunk of the body."""
        view = memoryview(data).cast("B")
        size, block, start = len(view), self.block_size, 0
        while start < size:
            take = min(block - self._filled, size - start)
            self._crc = crc32c(view[start : start + take] if take < size else view, self._crc)
            self._filled += take
            start += take
            if self._filled == block:
                self._done.append(self._crc)
                self._crc = self._filled = 0
        self.nbytes += size

    def crcs(self) -> tuple[int, ...]:
        """Return the CRC32C of each block fed, the last one possibly short."""
        return (*self._done, self._crc) if self._filled else tuple(self._done)


def _is_block_size(size: int) -> bool:
    return size >= MIN_BLOCK_SIZE and size & (size - 1) == 0


def block_size_for(size: int, minimum: int = DEFAULT_BLOCK_SIZE) -> int:
    """Return the block size of an object: ``minimum``, doubled until at most `MAX_BLOCKS` blocks.

    Parameters
    ----------
    size : `int`
        Object size in bytes.
    minimum : `int`, optional
        Configured block size (a power of two, at least `MIN_BLOCK_SIZE`).

    Returns
    -------
    block_size : `int`
        A power of two.

    Raises
    ------
    ValueError
        If ``minimum`` is not a power of two of at least `MIN_BLOCK_SIZE`.
    """
    if not _is_block_size(minimum):
        raise ValueError(f"Block size {minimum} must be a power of two of at least {MIN_BLOCK_SIZE}.")
    block = minimum
    while -(-size // block) > MAX_BLOCKS:
        block *= 2
    return block


_POLY = 0x82F63B78
"""The CRC32C (Castagnoli) polynomial, bit-reversed."""

PURE_PYTHON_BUDGET = 64 * 1024
"""Bytes a process checksums in pure Python before it loads awscrt for CRC32C.

Importing awscrt costs a fresh process tens of milliseconds of CPU, more than
a batch job's first put; its few small bodies (a dataset, records files) are
checksummed in pure Python (about 0.1 ms per KiB) until this budget is spent
or a body is larger than what is left of it. Then awscrt is loaded, as it is
at once when something else (botocore) loaded it already. Both compute the
same CRC32C (the tests compare them).
"""

_table: list[int] | None = None
_budget = PURE_PYTHON_BUDGET
_awscrt_crc32c: Callable[..., int] | None = None


def _python_table() -> list[int]:
    global _table
    if _table is None:
        table = []
        for byte in range(256):
            crc = byte
            for _ in range(8):
                crc = (crc >> 1) ^ _POLY if crc & 1 else crc >> 1
            table.append(crc)
        _table = table
    return _table


def _crc32c_python(data: Buffer, previous: int = 0) -> int:
    """CRC32C of ``data`` (continuing ``previous``) in pure Python, a byte at a time (for small bodies)."""
    table = _python_table()
    crc = previous ^ 0xFFFFFFFF
    for byte in data if isinstance(data, bytes) else memoryview(data).cast("B"):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _awscrt() -> Callable[..., int]:
    global _awscrt_crc32c
    if _awscrt_crc32c is None:
        from awscrt import checksums  # type: ignore[import-untyped]  # from boto3[crt]; imported on need

        _awscrt_crc32c = checksums.crc32c
    return _awscrt_crc32c


def crc32c(data: Buffer, previous: int = 0) -> int:
    """Return the CRC32C of ``data`` as an integer, continuing the CRC32C ``previous`` if given.

    Small bodies are checksummed in pure Python while the process has not
    spent `PURE_PYTHON_BUDGET` bytes that way and awscrt is not loaded yet;
    everything else with awscrt (hardware-accelerated). The result is the same.

    Parameters
    ----------
    data : `bytes`, `memoryview` or another buffer
        The bytes.
    previous : `int`, optional
        The CRC32C of the bytes before ``data``: ``crc32c(b, crc32c(a)) == crc32c(a + b)``.

    Returns
    -------
    crc : `int`
        The unsigned 32-bit CRC32C.
    """
    global _budget
    size = len(data) if isinstance(data, bytes) else memoryview(data).nbytes
    if _awscrt_crc32c is None and size <= _budget and "awscrt.checksums" not in sys.modules:
        _budget -= size  # races between threads only move the switch to awscrt a little
        return _crc32c_python(data, previous)
    return _awscrt()(data, previous)


def _crc32c_function() -> Callable[..., int]:
    return crc32c


def _crc32c(data: bytes | memoryview) -> bytes:
    return crc32c(data).to_bytes(4, "big")


def compute(algorithm: Algorithm, data: bytes | memoryview) -> Checksum:
    """Return the checksum of ``data``.

    Parameters
    ----------
    algorithm : `str`
        ``"CRC32C"`` or ``"SHA256"``.
    data : `bytes` or `memoryview`
        The bytes.

    Returns
    -------
    checksum : `Checksum`
        The checksum.

    Raises
    ------
    ValueError
        If the algorithm is not supported.
    """
    if algorithm == "CRC32C":
        digest = _crc32c(data)
    elif algorithm == "SHA256":
        digest = hashlib.sha256(data).digest()
    else:
        raise ValueError(f"Unsupported checksum algorithm {algorithm!r}; use one of {ALGORITHMS}.")
    return Checksum(algorithm, base64.b64encode(digest).decode("ascii"))


def compute_for_upload(
    algorithm: Algorithm, data: bytes | memoryview, block_size: int = DEFAULT_BLOCK_SIZE
) -> tuple[Checksum, dict[str, str]]:
    """Return the checksum of a dataset to upload and the object metadata carrying its block list.

    An object of at most one block gets no block list (a partial read of it
    reads it whole: one GET); a larger one gets `BlockChecksums` with
    `block_size_for` blocks, referenced by the returned checksum.

    Parameters
    ----------
    algorithm : `str`
        Full-object checksum algorithm, ``"CRC32C"`` or ``"SHA256"``.
    data : `bytes` or `memoryview`
        The bytes to upload.
    block_size : `int`, optional
        Configured (smallest) block size.

    Returns
    -------
    checksum : `Checksum`
        The full-object checksum, with `Checksum.blocks` set if a list was made.
    metadata : `dict` [`str`, `str`]
        ``{BLOCKS_METADATA: ...}``, or empty.

    Raises
    ------
    ValueError
        If the algorithm or the block size is not supported.
    """
    size = block_size_for(len(data), block_size)
    if len(data) <= size:
        return compute(algorithm, data), {}
    blocks = BlockChecksums.compute(data, size)
    if algorithm == "CRC32C":
        from awscrt import checksums  # the blocks are larger than the pure-Python budget: awscrt is loaded

        whole = 0
        for i, crc in enumerate(blocks.crcs):
            whole = checksums.combine_crc32c(whole, crc, min(size, len(data) - i * size))
        full = Checksum("CRC32C", base64.b64encode(whole.to_bytes(4, "big")).decode("ascii"))
    else:
        full = compute(algorithm, data)
    return Checksum(full.algorithm, full.value, blocks.reference()), {BLOCKS_METADATA: blocks.to_metadata()}


def parse(text: str) -> Checksum:
    """Parse ``"<ALGORITHM>:<base64>[;blocks=<size>:<digest>]"`` as written by `Checksum.__str__`.

    Raises
    ------
    ValueError
        If the text is malformed or names an unsupported algorithm.
    """
    head, tag, blocks = text.partition(_BLOCKS_TAG)
    algorithm, sep, value = head.partition(":")
    size, _, digest = blocks.partition(":")
    if (
        not sep
        or algorithm not in ALGORITHMS
        or not value
        or (tag and not (size.isdigit() and _is_block_size(int(size)) and digest))
    ):
        raise ValueError(
            f"Malformed checksum {text!r}; expected '<CRC32C|SHA256>:<base64>[;blocks=<size>:<digest>]'."
        )
    return Checksum(algorithm, value, blocks if tag else None)


def request_parameter(algorithm: Algorithm) -> str:
    """Return the boto3 parameter carrying a precomputed checksum (``ChecksumCRC32C`` ...)."""
    return f"Checksum{algorithm}"
