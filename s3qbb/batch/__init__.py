"""The batch lifecycle: what a batch job runs for its quantum, and what runs many of them.

- `s3qbb.batch.execution`: run one quantum end to end (``s3qbb run-quantum``), its exit codes.
- `s3qbb.batch.recovery`: write the files of quanta whose jobs were killed (``s3qbb ingest --recover``).
- `s3qbb.batch.dask`: run a pipeline's quanta on a Dask cluster (the ``dask`` extra).

Each runner calls `s3qbb.batch.execution.run_quantum` per quantum, exactly as one
batch job would; a runner only decides where and in which order. Optional
dependencies are imported when first used.
"""

from __future__ import annotations

__all__: list[str] = []
