"""s3qbb: quantum-backed butler on S3-compatible object storage."""

from __future__ import annotations

__all__: list[str] = []
