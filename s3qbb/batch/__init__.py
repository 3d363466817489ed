"""The batch lifecycle: what a batch job runs for its quantum, and what runs many of them.

- `s3qbb.batch.execution`: run one quantum end to end (``s3qbb run-quantum``), its exit codes.
- `s3qbb.batch.recovery`: write the files of quanta whose jobs were killed (``s3qbb ingest --recover``).
- `s3qbb.batch.graph`: the quantum graph (`s3qbb.QuantumGraph`) and its file (`s3qbb.batch.graphfile`).
- `s3qbb.batch.jobindex`, `s3qbb.batch.upstream`: which quantum of a graph a job runs, and the
  records of its inputs from the provenance files of the quanta that produced them.
- `s3qbb.batch.status`: how far a graph has run (``s3qbb graph status``).
- `s3qbb.batch.local`: run a whole graph here, one process per quantum (``s3qbb run``), forked
  from a preloaded fork server (`s3qbb.batch.workers`).
- `s3qbb.batch.manifests`: Kubernetes and AWS Batch array jobs per stage (``s3qbb submit``).
- `s3qbb.batch.dask`: run a pipeline's quanta on a Dask cluster (the ``dask`` extra).

Each runner runs each quantum exactly as one batch job would; a runner only
decides where and in which order. Optional dependencies are imported when
first used.
"""

from __future__ import annotations

__all__: list[str] = []
