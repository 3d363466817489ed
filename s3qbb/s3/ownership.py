"""Who wrote an object: the metadata keys s3qbb puts on every object, and what a HEAD tells of them.

Ownership is decided by the write token alone (`WRITE_TOKEN`, a
`~s3qbb.core.attempt.WriteToken`), never by content: see `S3Bucket.put_new
<s3qbb.s3.objects.S3Bucket.put_new>` and docs/security.rst, "Races". This
module needs no boto3.
"""

from __future__ import annotations

__all__ = [
    "WRITE_CHECKSUM",
    "WRITE_DATASET",
    "WRITE_PENDING",
    "WRITE_TOKEN",
    "AttemptActiveError",
    "HeadResult",
    "WriteConflictError",
    "conflict",
    "object_metadata",
    "other_dataset",
    "refused_by_foreign_object",
]

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..core.attempt import WriteToken
from ..errors import PreconditionFailedError

WRITE_TOKEN = "s3qbb-write-token"
"""Object metadata key holding the `~s3qbb.core.attempt.WriteToken` of the write that created it."""

WRITE_CHECKSUM = "s3qbb-checksum"
"""Object metadata key holding the full-object checksum of what the write sent ("CRC32C:...")."""

WRITE_PENDING = "s3qbb-pending"
"""Object metadata key (value ``"1"``) of a multipart upload's placeholder: not a dataset, never adopt it."""

WRITE_DATASET = "s3qbb-dataset-id"
"""Object metadata key holding the ID (32 hex digits) of the dataset an object stores.

Read where no record says which object is a dataset's: trust mode and recovery
adopt an object at a dataset's templated location only if it names that
dataset (or names none: written before this key existed, or by another tool).
"""


def object_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """Return user metadata of a response with lowercase keys (servers differ in case)."""
    return {k.lower(): v for k, v in (metadata or {}).items()}


def other_dataset(metadata: Mapping[str, str] | None, dataset_id: uuid.UUID) -> str | None:
    """Return the dataset an object's metadata names (`WRITE_DATASET`) if it is not ``dataset_id``.

    Parameters
    ----------
    metadata : `~collections.abc.Mapping` [`str`, `str`] or `None`
        User metadata of a GET or HEAD response (any key case).
    dataset_id : `uuid.UUID`
        The dataset the object is expected to store.

    Returns
    -------
    other : `str` or `None`
        The ID the metadata names, as written, or `None` if it names
        ``dataset_id`` or no dataset.
    """
    named = object_metadata(metadata).get(WRITE_DATASET)
    return None if named is None or named.lower() == dataset_id.hex else named


@dataclass(frozen=True, slots=True)
class HeadResult:
    """Metadata of a HEAD."""

    size: int
    metadata: dict[str, str] = field(default_factory=dict)
    etag: str | None = None

    @property
    def token(self) -> WriteToken | None:
        """The write token in the metadata (`None` if absent or malformed)."""
        return WriteToken.parse(self.metadata.get(WRITE_TOKEN))

    @property
    def pending(self) -> bool:
        """Whether this is the placeholder of a multipart upload that has not completed."""
        return self.metadata.get(WRITE_PENDING) == "1"

    def is_complete_write_of(self, token: WriteToken) -> bool:
        """Tell whether this object is ``token``'s write, complete (not a placeholder)."""
        return self.token == token and not self.pending


class WriteConflictError(PreconditionFailedError):
    """A create-only write found (or lost to) an object it does not own; ``reason`` says whose.

    Parameters
    ----------
    message : `str`
        The full message.
    reason : `str`
        Whose object it is, for messages of callers (e.g. "written by another
        writer: quantum ..., attempt ...").
    """

    def __init__(self, message: str, *, reason: str, head: HeadResult | bool | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.head = head
        """What the HEAD that decided saw (`None` if none was made, or nothing was stored)."""


class AttemptActiveError(WriteConflictError):
    """Another attempt of the same quantum owns the object and may still be running, or succeeded.

    Its object is left untouched; a later attempt (a retry) finds the quantum
    done, or the other attempt ended, and may then replace what it left.
    """


def conflict(
    uri: str, head: HeadResult | bool | None, *, lost: bool = False, mine: WriteToken | None = None
) -> WriteConflictError:
    """Return the error of a write refused at ``uri``, naming the owner the HEAD showed.

    Parameters
    ----------
    uri : `str`
        The object's URI.
    head : `HeadResult`, `bool` or `None`
        What a HEAD saw: the object, `None` if missing, `False` if it could not be read.
    lost : `bool`, optional
        Whether the write seemed to succeed but another writer's object is stored.
    mine : `~s3qbb.core.attempt.WriteToken`, optional
        The refused write's token (names an earlier attempt of its own quantum as such).
    """
    owner = head.token if isinstance(head, HeadResult) else None
    if lost:
        reason = "another writer's object was stored in place of this write"
    elif isinstance(head, HeadResult) and owner is None:
        reason = "written by another writer, carrying no write token"
    elif isinstance(head, HeadResult) and owner is not None and head.pending:
        reason = f"another writer, quantum {owner.quantum_id}, is uploading it or died doing so"
    elif owner is not None and mine is not None and owner == mine:
        reason = (
            f"written by this same attempt ({owner.attempt_id}) with other content: another thread, "
            "or an earlier put of other bytes"
        )
    elif owner is not None and mine is not None and mine.same_quantum(owner):
        reason = f"written by another attempt ({owner.attempt_id}) of quantum {owner.quantum_id}"
    elif owner is not None:
        reason = f"written by another writer: quantum {owner.quantum_id}, attempt {owner.attempt_id}"
    else:
        reason = "written by another writer"
    return WriteConflictError(
        f"{uri} already exists ({reason}); it was left untouched.", reason=reason, head=head
    )


def refused_by_foreign_object(exc: BaseException) -> bool:
    """Whether a write in ``exc``'s chain was refused by an object carrying no write token (not s3qbb's).

    No retry replaces such an object (it is not the quantum's to replace): a job that meets one
    fails (exit 1) instead of asking for a retry that would only be refused again.

    Parameters
    ----------
    exc : `BaseException`
        An error, with its ``__cause__`` and ``__context__`` chain.
    """
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo:
        item = todo.pop()
        if any(item is s for s in seen):
            continue
        seen.append(item)
        head = item.head if isinstance(item, WriteConflictError) else None
        if isinstance(head, HeadResult) and head.token is None and not head.pending:
            return True
        todo.extend(linked for linked in (item.__cause__, item.__context__) if linked is not None)
    return False
