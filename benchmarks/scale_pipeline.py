"""The generated pipeline of ``python -m benchmarks.scale``: its tasks and its quanta.

Two tasks, importable by ``s3qbb run-quantum`` (``benchmarks.scale_pipeline:NAME``, run from the
repository root) and by Dask workers:

- `make_raws`: writes one synthetic raw image (512 x 512 float32, 1 MiB) per output ref; it runs
  once, before the measurements, to create the inputs;
- `process_detector`: the measured quantum, one per detector. It reads its raw (one GET) and
  writes four outputs of realistic sizes: a background-subtracted image (``calexp``, 1 MiB), a
  background model (``background``, 64 x 64 float32, 16 KiB), a source table (``sources``,
  2,000 x 4 float64, 62.5 KiB) and a small metrics dict (``metrics``, JSON, about 150 bytes).

Detectors are numbered like a 189-detector camera: quantum ``k`` is detector ``k % 189`` of visit
``1000 + k // 189``.
"""

from __future__ import annotations

__all__ = [
    "BACKGROUND_BLOCK",
    "DETECTORS_PER_VISIT",
    "RAW_SHAPE",
    "ScalePipeline",
    "make_raws",
    "process_detector",
]

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from s3qbb.core import DataCoordinate, DatasetRef, DatasetType, DimensionUniverse, Quantum

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from s3qbb.butler.quantum_backed import QuantumBackedButler
    from s3qbb.core.records import DatastoreRecordData

RAW_SHAPE = (512, 512)
"""Shape of a raw image (float32: 1 MiB)."""
BACKGROUND_BLOCK = 8
"""Side of the pixel blocks averaged into the background model (512 / 8 = 64)."""
SOURCES = 2000
"""Rows of the source table."""
DETECTORS_PER_VISIT = 189
"""Detectors of one visit."""
FIRST_VISIT = 1000

OUTPUT_TYPES = ("calexp", "background", "sources", "metrics")
"""Dataset types written by `process_detector`."""


def _outputs(quantum: Quantum, name: str) -> DatasetRef:
    (ref,) = (r for r in quantum.output_refs() if r.datasetType.name == name)
    return ref


def make_raws(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Write a synthetic raw image for every output ref (seeded by its data ID)."""
    import numpy as np

    for ref in quantum.output_refs():
        seed = int(ref.dataId["visit"]) * 1000 + int(ref.dataId["detector"])
        rng = np.random.default_rng(seed)
        image = rng.normal(1000.0, 30.0, size=RAW_SHAPE).astype("float32")
        image[rng.integers(0, RAW_SHAPE[0], 3000), rng.integers(0, RAW_SHAPE[1], 3000)] += 500.0
        butler.put(image, ref)


def process_detector(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Read a raw image; write its calexp, background model, source table and metrics."""
    import numpy as np

    (raw_ref,) = quantum.input_refs()
    raw = butler.get(raw_ref)
    b = BACKGROUND_BLOCK
    ny, nx = raw.shape
    background = raw.reshape(ny // b, b, nx // b, b).mean(axis=(1, 3)).astype("float32")
    calexp = raw - np.repeat(np.repeat(background, b, axis=0), b, axis=1)
    flat = calexp.ravel()
    brightest = np.argpartition(flat, -SOURCES)[-SOURCES:]
    ys, xs = np.divmod(brightest, nx)
    sources = np.stack([xs, ys, flat[brightest], np.hypot(xs - nx / 2, ys - ny / 2)], axis=1).astype(
        "float64"
    )
    butler.put(calexp, _outputs(quantum, "calexp"))
    butler.put(background, _outputs(quantum, "background"))
    butler.put(sources, _outputs(quantum, "sources"))
    butler.put(
        {
            "visit": int(raw_ref.dataId["visit"]),
            "detector": int(raw_ref.dataId["detector"]),
            "background_median": float(np.median(background)),
            "noise": float(calexp.std()),
            "sources": SOURCES,
        },
        _outputs(quantum, "metrics"),
    )


@dataclass
class ScalePipeline:
    """Dataset types and quanta of the generated pipeline."""

    universe: DimensionUniverse = field(default_factory=DimensionUniverse)
    types: dict[str, DatasetType] = field(init=False)

    def __post_init__(self) -> None:
        u = self.universe
        dims = ["visit", "detector"]
        self.types = {
            "raw": DatasetType("raw", dims, "NumpyArray", universe=u),
            "calexp": DatasetType("calexp", dims, "NumpyArray", universe=u),
            "background": DatasetType("background", dims, "NumpyArray", universe=u),
            "sources": DatasetType("sources", dims, "NumpyArray", universe=u),
            "metrics": DatasetType("metrics", dims, "StructuredDataDict", universe=u),
        }

    @staticmethod
    def data_id(index: int) -> dict[str, Any]:
        """Data ID of the ``index``-th detector quantum."""
        visit, detector = divmod(index, DETECTORS_PER_VISIT)
        return {"instrument": "ScaleCam", "visit": FIRST_VISIT + visit, "detector": detector}

    def raw_quanta(
        self, count: int, run: str, per_quantum: int = 16
    ) -> tuple[list[Quantum], list[DatasetRef]]:
        """Quanta writing ``count`` raws (``per_quantum`` each), and the raw refs in detector order."""
        raws = [DatasetRef(self.types["raw"], self.data_id(i), run) for i in range(count)]
        quanta = [
            Quantum(
                taskLabel="make_raws",
                taskName="benchmarks.scale_pipeline.make_raws",
                outputs=raws[i : i + per_quantum],
            )
            for i in range(0, count, per_quantum)
        ]
        return quanta, raws

    def detector_quanta(
        self, raws: Sequence[DatasetRef], records: Mapping[str, DatastoreRecordData], run: str
    ) -> list[Quantum]:
        """One `process_detector` quantum per raw, writing into ``run``, with the raws' records."""
        quanta = []
        for raw in raws:
            data_id = {k: raw.dataId[k] for k in ("instrument", "visit", "detector")}
            quanta.append(
                Quantum(
                    taskLabel="process_detector",
                    taskName="benchmarks.scale_pipeline.process_detector",
                    dataId=DataCoordinate.standardize(data_id, universe=self.universe),
                    inputs=[raw],
                    outputs=[DatasetRef(self.types[name], data_id, run) for name in OUTPUT_TYPES],
                    datastore_records={
                        name: sub
                        for name, data in records.items()
                        if (sub := data.subset([raw.id])) is not None
                    },
                    id=uuid.uuid4(),
                )
            )
        return quanta
