"""The ``s3qbb`` command: a thin layer over plain functions."""

from __future__ import annotations

__all__ = ["main"]

from .main import main
