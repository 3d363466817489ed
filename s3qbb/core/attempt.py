"""Write tokens: which attempt of which quantum wrote an object.

Every object s3qbb writes carries a `WriteToken` in its metadata
(``x-amz-meta-s3qbb-write-token``). It answers the questions a batch system
makes us ask again and again, without ever comparing content:

- *Is this object mine?* After a create-only write whose response was lost,
  or after a conditional write on a server whose conditional multipart
  complete is not atomic: only an object carrying this attempt's token is.
- *Is it from an earlier attempt of my quantum?* A retried job (AWS Batch
  retry, restarted pod) finds outputs left by the attempt that died; those,
  and only those, may be replaced. A token may carry an `AttemptGuard`
  (a batch job's attempt lease, `s3qbb.batch.attempts`) that refuses to
  replace the objects of another attempt that may still be running, or that
  succeeded.
- *Which attempt is the last?* Attempt IDs sort by the time the attempt
  started, so ingest keeps exactly the last attempt's outputs.

The text form is ``<quantum id hex>.<attempt id>``; the attempt ID is 12 hex
digits of milliseconds since the Unix epoch followed by 16 random hex digits,
so attempt IDs of one quantum compare in start order as plain strings.
"""

from __future__ import annotations

__all__ = ["ATTEMPT_ID_LENGTH", "AttemptGuard", "WriteToken", "new_attempt_id"]

import os
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Protocol

ATTEMPT_ID_LENGTH = 28
"""Characters in an attempt ID: 12 hex digits of epoch milliseconds, 16 random hex digits."""

_ATTEMPT_RE = re.compile(r"[0-9a-f]{28}")
_TOKEN_RE = re.compile(r"(?P<quantum>[0-9a-f]{32})\.(?P<attempt>[0-9a-f]{28})")


def new_attempt_id(now: float | None = None) -> str:
    """Return a new attempt ID that sorts after every ID made earlier (to the millisecond).

    Parameters
    ----------
    now : `float`, optional
        Seconds since the Unix epoch; the current time by default.

    Returns
    -------
    attempt_id : `str`
        28 lowercase hex digits.
    """
    millis = int((time.time() if now is None else now) * 1000)
    # os.urandom is what secrets.token_hex draws from; importing secrets (random, hmac) costs a job ~3 ms.
    return f"{millis & 0xFFFFFFFFFFFF:012x}{os.urandom(8).hex()}"


class AttemptGuard(Protocol):
    """What a write token consults before its attempt replaces another attempt's object."""

    def check_replace(self, mine: WriteToken, other: WriteToken, uri: str) -> None:
        """Raise `~s3qbb.s3.ownership.AttemptActiveError` unless ``other``'s object at ``uri`` may go.

        ``other`` is another attempt of ``mine``'s quantum; its object may be
        replaced only if that attempt ended without success or died.
        """

    def check_held(self) -> None:
        """Raise `~s3qbb.s3.ownership.AttemptActiveError` if this attempt may have been taken over.

        Asked before the attempt reports success.
        """


@dataclass(frozen=True, slots=True)
class WriteToken:
    """The quantum and the attempt that write an object.

    Parameters
    ----------
    quantum_id : `uuid.UUID`
        The quantum (a random one for a datastore used outside any quantum).
    attempt_id : `str`
        This attempt's ID (see `new_attempt_id`).
    guard : `AttemptGuard`, optional
        Asked before this attempt replaces another attempt's object; without
        one, any other attempt's object may be replaced. Not part of the
        token's value (equality, text form).

    Examples
    --------
    >>> import uuid
    >>> token = WriteToken(uuid.UUID(int=7), "0190a1b2c3d4" + "0" * 16)
    >>> str(token)
    '00000000000000000000000000000007.0190a1b2c3d40000000000000000'
    >>> WriteToken.parse(str(token)) == token
    True
    >>> token.same_quantum(WriteToken.new(uuid.UUID(int=7)))
    True
    """

    quantum_id: uuid.UUID
    attempt_id: str
    guard: AttemptGuard | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.quantum_id, uuid.UUID):
            raise TypeError(f"WriteToken.quantum_id must be a UUID, got {self.quantum_id!r}.")
        if not isinstance(self.attempt_id, str) or not _ATTEMPT_RE.fullmatch(self.attempt_id):
            raise ValueError(
                f"WriteToken.attempt_id must be {ATTEMPT_ID_LENGTH} lowercase hex digits, "
                f"got {self.attempt_id!r}."
            )

    @classmethod
    def new(cls, quantum_id: uuid.UUID | None = None) -> WriteToken:
        """Return the token of a new attempt (of a random quantum if none is given)."""
        return cls(quantum_id if quantum_id is not None else uuid.uuid4(), new_attempt_id())

    @classmethod
    def parse(cls, text: str | None) -> WriteToken | None:
        """Return the token written as ``text``, or `None` if ``text`` is not a token."""
        if not isinstance(text, str):
            return None
        match = _TOKEN_RE.fullmatch(text.strip().lower())
        if match is None:
            return None
        return cls(uuid.UUID(hex=match["quantum"]), match["attempt"])

    @property
    def started_ms(self) -> int:
        """Milliseconds since the Unix epoch at which the attempt started (from its ID)."""
        return int(self.attempt_id[:12], 16)

    def same_quantum(self, other: WriteToken | None) -> bool:
        """Tell whether ``other`` is a token of this token's quantum (any attempt)."""
        return other is not None and other.quantum_id == self.quantum_id

    def is_earlier_attempt(self, other: WriteToken | None) -> bool:
        """Tell whether ``other`` is another attempt of this quantum (not this one)."""
        return self.same_quantum(other) and other is not None and other.attempt_id != self.attempt_id

    def check_replace(self, other: WriteToken, uri: str) -> None:
        """Raise unless this attempt may replace ``other``'s object at ``uri`` (asks the `guard`, if any).

        Raises
        ------
        s3qbb.s3.ownership.AttemptActiveError
            If the guard says ``other`` may still be running, or succeeded.
        """
        if self.guard is not None:
            self.guard.check_replace(self, other, uri)

    def __str__(self) -> str:
        return f"{self.quantum_id.hex}.{self.attempt_id}"
