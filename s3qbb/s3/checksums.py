"""S3-native checksums (CRC32C, SHA256): computed once, sent with uploads, stored in records.

A checksum is written ``"<ALGORITHM>:<base64 value>"`` (``"CRC32C:yZRlqg=="``),
the base64 value being exactly what S3 expects in the ``x-amz-checksum-*``
header, so the same string serves the request, the record and verification.
"""

from __future__ import annotations

__all__ = ["ALGORITHMS", "Checksum", "compute", "parse", "request_parameter"]

import base64
import hashlib
from dataclasses import dataclass
from typing import Literal

Algorithm = Literal["CRC32C", "SHA256"]
ALGORITHMS: tuple[Algorithm, ...] = ("CRC32C", "SHA256")


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

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.value}"


def _crc32c(data: bytes | memoryview) -> bytes:
    from awscrt import checksums  # type: ignore[import-untyped]  # from boto3[crt]; imported on first use

    value: int = checksums.crc32c(data)
    return value.to_bytes(4, "big")


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


def parse(text: str) -> Checksum:
    """Parse ``"<ALGORITHM>:<base64>"`` as written by `Checksum.__str__`.

    Raises
    ------
    ValueError
        If the text is malformed or names an unsupported algorithm.
    """
    algorithm, sep, value = text.partition(":")
    if not sep or algorithm not in ALGORITHMS or not value:
        raise ValueError(f"Malformed checksum {text!r}; expected '<CRC32C|SHA256>:<base64>'.")
    return Checksum(algorithm, value)


def request_parameter(algorithm: Algorithm) -> str:
    """Return the boto3 parameter carrying a precomputed checksum (``ChecksumCRC32C`` ...)."""
    return f"Checksum{algorithm}"
