"""Executors: run many quanta of a pipeline on a compute framework.

Each quantum still runs through `s3qbb.execution.run_quantum`, exactly as one
batch job (``s3qbb run-quantum``) would run it; an executor only decides where
and in which order. The executors need optional dependencies, imported when
first used:

- `s3qbb.executors.dask`: a Dask cluster (the ``dask`` extra).
"""

from __future__ import annotations

__all__: list[str] = []
