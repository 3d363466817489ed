"""The quantum graph file: its layout, whole reads, and ranged reads that fetch one quantum.

Layout (UTF-8, one JSON document per line)::

    line 1       preamble: {"format": "s3qbb-quantum-graph", "version": 1, "header_bytes": H}
    line 2       header (H bytes): tasks, dimension universe, one small entry per quantum
                 (ID, label, level, run, indices of its producers) and the byte offset of
                 each quantum's line in the quanta section
    line 3 + i   the i-th quantum, as ``SerializedQuantum`` JSON

A whole read (`decode`) keeps each quantum's line as bytes. A ranged read
(`open_ranged`) fetches the preamble and header (one or two range GETs) and
each quantum's line only when it is asked for (one range GET): a batch job
on a graph of 100,000 quanta transfers the header and its own quantum, not
the whole file.
"""

from __future__ import annotations

__all__ = ["GraphFileError", "GraphParts", "decode", "encode", "open_ranged", "put_s3"]

import itertools
import json
import os
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..core.wire import SerializedDimensionUniverse
from ..errors import ConfigError

if TYPE_CHECKING:
    from ..config import S3EndpointConfig
    from ..s3.objects import S3Bucket

FORMAT = "s3qbb-quantum-graph"
VERSION = 1
FIRST_READ = 64 * 1024
"""Bytes of the first range GET of a ranged read (the preamble, and all of a small header)."""


class GraphFileError(ConfigError):
    """The file is not a quantum graph this s3qbb can read (truncated, corrupt, newer version)."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class _Preamble(_Model):
    format: Literal["s3qbb-quantum-graph"]
    version: int
    header_bytes: int = Field(gt=0)

    @field_validator("version")
    @classmethod
    def _known_version(cls, v: int) -> int:
        if v < 1 or v > VERSION:
            raise ValueError(
                f"quantum graph version {v} is not one this s3qbb reads (1..{VERSION}); upgrade s3qbb."
            )
        return v


class Node(_Model):
    """A quantum's entry in the header."""

    id: uuid.UUID
    label: str
    level: int = Field(ge=0)
    run: str | None = None
    upstream: tuple[int, ...] = ()


class Header(_Model):
    """The header: tasks, universe, nodes and the offsets of the quanta lines."""

    tasks: dict[str, str]
    universe: SerializedDimensionUniverse | None = None
    quanta: list[Node]
    offsets: list[int]


@dataclass(frozen=True)
class GraphParts:
    """What a graph file holds: the header and each quantum's JSON (bytes, read lazily or not)."""

    header: Header
    payloads: Sequence[bytes]


def encode(header: Mapping[str, Any], payloads: Sequence[bytes]) -> bytes:
    """Return the file content of a header (without ``offsets``) and the quanta's JSON."""
    offsets = [0]
    for payload in payloads:
        offsets.append(offsets[-1] + len(payload) + 1)
    head = json.dumps({**header, "offsets": offsets}, separators=(",", ":")).encode()
    preamble = json.dumps({"format": FORMAT, "version": VERSION, "header_bytes": len(head)}).encode()
    return b"\n".join([preamble, head, *payloads]) + b"\n"


def _fail(source: str, what: str) -> GraphFileError:
    return GraphFileError(f"{source} is not a quantum graph this s3qbb can read: {what}")


def _validation_message(err: ValidationError) -> str:
    first = err.errors()[0]
    return f"{first['msg']} (at {'.'.join(map(str, first['loc'])) or 'the top'})."


def _parse_head(first: bytes, source: str) -> tuple[_Preamble, int]:
    """Parse the preamble line of ``first``; return it and where the header starts."""
    line, newline, _ = first.partition(b"\n")
    if not newline:
        raise _fail(source, "no preamble line.")
    try:
        preamble = _Preamble.model_validate_json(line)
    except ValidationError as err:
        raise _fail(source, _validation_message(err)) from None
    return preamble, len(line) + 1


def _parse_header(data: bytes, source: str) -> Header:
    try:
        header = Header.model_validate_json(data)
    except ValidationError as err:
        raise _fail(source, _validation_message(err)) from None
    offsets = header.offsets
    if (
        len(offsets) != len(header.quanta) + 1
        or offsets[0] != 0
        or any(b <= a for a, b in itertools.pairwise(offsets))
    ):
        raise _fail(source, "the header's offsets do not match its quanta (corrupt file: write it again).")
    return header


def decode(data: bytes, source: str) -> GraphParts:
    """Split a whole file's content; only the preamble and header are validated."""
    preamble, start = _parse_head(data[:FIRST_READ], source)
    end = start + preamble.header_bytes
    header = _parse_header(data[start:end], source)
    section = memoryview(data)[end + 1 :]
    if len(section) != header.offsets[-1]:
        raise _fail(
            source,
            f"its quanta take {len(section)} bytes where the header says {header.offsets[-1]} "
            "(truncated or corrupt: write it again).",
        )
    offsets = header.offsets
    payloads = [bytes(section[offsets[i] : offsets[i + 1] - 1]) for i in range(len(offsets) - 1)]
    return GraphParts(header, payloads)


RangeReader = Callable[[int, int], bytes]
"""Returns the bytes ``[start, stop)`` of the file (fewer at its end)."""


class _RangedPayloads(Sequence[bytes]):
    """Each quantum's JSON, fetched by one range read when first asked for."""

    def __init__(self, read: RangeReader, base: int, offsets: list[int], source: str) -> None:
        self._read = read
        self._base = base
        self._offsets = offsets
        self._source = source
        self._cache: dict[int, bytes] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        with self._lock:
            cached = self._cache.get(index)
        if cached is None:
            start, stop = self._base + self._offsets[index], self._base + self._offsets[index + 1] - 1
            cached = self._read(start, stop)
            if len(cached) != stop - start:
                raise _fail(self._source, f"quantum {index} is cut short (truncated file: write it again).")
            with self._lock:
                self._cache[index] = cached
        return cached


def _local_reader(path: str) -> RangeReader:
    def read(start: int, stop: int) -> bytes:
        try:
            with Path(path).open("rb") as f:
                f.seek(start)
                return f.read(stop - start)
        except OSError as err:
            raise ConfigError(f"Cannot read quantum graph {path}: {err}") from err

    return read


def _s3_reader(uri: str, config: S3EndpointConfig | None) -> RangeReader:
    bucket, key = _bucket(uri, config)

    def read(start: int, stop: int) -> bytes:
        return bucket.get(key, byte_range=(start, stop)).body

    return read


def open_ranged(source: str | os.PathLike[str], config: S3EndpointConfig | None = None) -> GraphParts:
    """Read the header of a graph file with range reads; quanta are read when first asked for.

    Raises
    ------
    GraphFileError
        If the file is not a graph this s3qbb reads.
    DatasetNotFoundError
        If the ``s3://`` object does not exist.
    """
    where = os.fspath(source)
    read = _s3_reader(where, config) if where.startswith("s3://") else _local_reader(where)
    first = read(0, FIRST_READ)
    preamble, start = _parse_head(first, where)
    end = start + preamble.header_bytes
    head = first[start:end] if end <= len(first) else first[start:] + read(len(first), end)
    header = _parse_header(head, where)
    return GraphParts(header, _RangedPayloads(read, end + 1, header.offsets, where))


def _bucket(uri: str, config: S3EndpointConfig | None) -> tuple[S3Bucket, str]:
    from ..s3.config_files import bucket_for_uri

    return bucket_for_uri(uri, config)


def put_s3(uri: str, data: bytes, config: S3EndpointConfig | None) -> None:
    """Write ``data`` to ``s3://bucket/key`` with one PUT (replacing any object)."""
    bucket, key = _bucket(uri, config)
    bucket.put_raw(key, data)
