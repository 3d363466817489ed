"""Butlers: `LimitedButler` and the `QuantumBackedButler` of one quantum."""

from __future__ import annotations

__all__ = [
    "DeferredDatasetHandle",
    "FinishResult",
    "LimitedButler",
    "ProvenanceWarning",
    "QuantumBackedButler",
]

from .limited import DeferredDatasetHandle, LimitedButler
from .quantum_backed import ProvenanceWarning, QuantumBackedButler
from .uploads import FinishResult
