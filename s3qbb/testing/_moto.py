"""Make moto's conditional writes atomic, as AWS S3 documents its own.

moto 5.2 answers a conditional write by looking, then writing, with no lock
between: its PUT handler checks ``get_object(...) is not None`` for
``If-None-Match: *`` and then stores the key, and a
``CompleteMultipartUpload`` or DELETE checks ``If-Match`` the same way.
Under load, two racing create-only PUTs of one key both pass the check (a
thread switch falls between them), so moto reports two writers as the
creator. No client protocol can make a non-atomic primitive exclusive; a
test of s3qbb's racing writers on moto would test moto's luck.

`make_conditional_writes_atomic` wraps moto's key handler so that every
request carrying ``If-None-Match`` or ``If-Match`` runs under one lock of
this process: a conditional write's check and store are then atomic with
respect to every other conditional request, as on AWS. Requests without a
condition (part uploads, plain GETs and PUTs) are not serialised.
"""

from __future__ import annotations

__all__ = ["make_conditional_writes_atomic"]

import functools
import threading
from typing import Any, Final

_CONDITIONS: Final = ("If-None-Match", "If-Match")
_WRITES: Final = frozenset({"PUT", "POST", "DELETE"})
_LOCK = threading.Lock()
_MARK = "_s3qbb_conditional_writes_atomic"


def make_conditional_writes_atomic() -> None:
    """Serialise moto's conditional writes in this process (idempotent).

    Applies to every moto S3 server and ``moto.mock_aws`` of this process;
    `s3qbb.testing.servers.MotoServer` calls it when it starts.
    """
    from moto.s3.responses import S3Response

    original = S3Response._key_response
    if getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def key_response(self: S3Response, request: Any, full_url: str) -> Any:
        headers = request.headers
        if request.method in _WRITES and any(name in headers for name in _CONDITIONS):
            with _LOCK:
                return original(self, request, full_url)
        return original(self, request, full_url)

    setattr(key_response, _MARK, True)
    S3Response._key_response = key_response  # type: ignore[method-assign]
