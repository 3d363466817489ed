"""Formatters: bytes <-> Python objects (JSON, YAML, bytes, npy, Parquet; pickle opt-in).

Importing this package is cheap: numpy, pyarrow, PyYAML and pydantic are
imported only when a formatter that needs them is used.
"""

from __future__ import annotations

__all__ = [
    "BytesFormatter",
    "Formatter",
    "FormatterFactory",
    "JsonFormatter",
    "NpyFormatter",
    "ParquetFormatter",
    "PickleFormatter",
    "RangeReadable",
    "YamlFormatter",
]

from .base import Formatter, RangeReadable
from .bytes import BytesFormatter
from .json import JsonFormatter
from .npy import NpyFormatter
from .parquet import ParquetFormatter
from .pickle import PickleFormatter
from .registry import FormatterFactory
from .yaml import YamlFormatter
