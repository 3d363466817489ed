"""Testing support shipped with s3qbb: conformance suite, servers, fixtures, fault injection."""

from __future__ import annotations

__all__: list[str] = []
