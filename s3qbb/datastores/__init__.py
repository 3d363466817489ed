"""Datastores: where dataset artifacts live (memory, S3) and wrappers around them."""

from __future__ import annotations

__all__: list[str] = []
