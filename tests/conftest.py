"""Shared fixtures: the S3 servers and fixtures shipped in s3qbb.testing."""

from __future__ import annotations

pytest_plugins = ["s3qbb.testing.fixtures"]
