"""How many bytes an in-memory dataset holds, estimated cheaply: what the memory bounds count."""

from __future__ import annotations

__all__ = ["estimate_nbytes"]

import sys
from collections.abc import Mapping
from typing import Any


def estimate_nbytes(obj: Any) -> int:
    """Estimate the memory used by an object, cheaply.

    Exact for `bytes`, NumPy arrays and Arrow tables; for containers, the sum
    of their items plus a small overhead, however deep they nest (walked with
    a stack, not recursion; a container reached twice, or through a cycle,
    counts once).

    Parameters
    ----------
    obj : `object`
        Object to measure.

    Returns
    -------
    nbytes : `int`
        Estimated size in bytes.
    """
    total = 0
    stack = [obj]
    seen: set[int] = set()  # containers counted (shared ones and cycles count once)
    while stack:
        item = stack.pop()
        if isinstance(item, bytes | bytearray | memoryview):
            total += len(item)
            continue
        if isinstance(item, str):
            total += len(item) + 49
            continue
        nbytes = getattr(item, "nbytes", None)
        if isinstance(nbytes, int):
            total += nbytes
            continue
        fields = None
        if not isinstance(item, Mapping | list | tuple | set | frozenset):
            fields = getattr(item, "__dict__", None)
            if not isinstance(fields, dict):
                total += sys.getsizeof(item)
                continue
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, Mapping):
            total += 64
            for key, value in item.items():
                stack.append(key)
                stack.append(value)
        elif fields is None:
            total += 56
            stack.extend(item)
        else:
            total += 64
            stack.append(fields)
    return total
