"""Benchmarks of s3qbb against plain boto3 on local S3 servers (``python -m benchmarks``).

Nothing is imported here: `benchmarks.memory_child` runs in processes that
must import only what their side of the comparison needs.
"""

from __future__ import annotations

__all__: list[str] = []
