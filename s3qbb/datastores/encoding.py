"""The optional surface of a datastore that stores datasets as bytes: `EncodingDatastore` and `Encoded`.

A cache tier in front of such a datastore (`~s3qbb.datastores.caching.CachingDatastore`)
keeps the bytes a PUT sent or a GET read, with the means to decode them,
instead of serialising, copying or decoding the dataset once more.
"""

from __future__ import annotations

__all__ = ["Encoded", "EncodingDatastore"]

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..core.dataset_ref import DatasetRef
    from .base import ReadPlan


@dataclass(frozen=True, slots=True)
class Encoded:
    """A whole dataset as a datastore wrote or read it: the bytes, and how to decode them.

    What `EncodingDatastore` hands to a cache tier, so that it can keep the
    bytes already serialised for a PUT, or already read and verified by a GET,
    instead of serialising, copying or decoding the object once more.

    Parameters
    ----------
    data : `bytes`
        The bytes stored (never modified).
    decode : `~collections.abc.Callable` [[`bytes`], `object`]
        Returns a new object equal to what a read of the dataset returns.
    copy_by_decoding : `bool`
        Whether decoding is a cheaper way to get a private copy than copying a
        decoded object (the formatter's `~s3qbb.formatters.Formatter.copy_by_decoding`).
    """

    data: bytes
    decode: Callable[[bytes], Any]
    copy_by_decoding: bool = True


@runtime_checkable
class EncodingDatastore(Protocol):
    """Optional surface of a datastore that stores datasets as bytes (`~s3qbb.datastores.s3.S3Datastore`).

    Each method does what its plain counterpart does, with the same requests,
    checks and errors, and also returns the `Encoded` form of each dataset.
    """

    def put_encoded(self, inMemoryDataset: Any, ref: DatasetRef) -> Encoded:
        """Store a dataset as `Datastore.put` does; return the bytes written."""
        ...

    def put_many_encoded(self, items: Iterable[tuple[Any, DatasetRef]]) -> dict[DatasetRef, Encoded]:
        """Store datasets as `Datastore.put_many` does; return the bytes written, by ref."""
        ...

    def get_encoded(self, ref: DatasetRef, *, plan: ReadPlan | None = None) -> tuple[Any, Encoded]:
        """Read a whole (non-component) dataset as `Datastore.get` does; also return the bytes read.

        ``plan`` is the caller's validated plan of that very read (no parameters,
        the ref's own storage class), so that it is not made twice.
        """
        ...

    def get_many_encoded(self, refs: Iterable[DatasetRef]) -> dict[DatasetRef, tuple[Any, Encoded]]:
        """Read whole datasets as `Datastore.get_many` does; also return the bytes read, by ref."""
        ...
