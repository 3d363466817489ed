"""``quantum.inputs["raw"]``: refs by dataset type name, as daf_butler's NamedKeyDict allows."""

from __future__ import annotations

import pytest

from s3qbb.core import DatasetRef, DatasetType, DimensionUniverse, Quantum
from s3qbb.core.wire import quantum_from_simple, quantum_to_simple

_UNIVERSE = DimensionUniverse()


def _ref(name: str, detector: int) -> DatasetRef:
    dataset_type = DatasetType(name, ["visit", "detector"], "StructuredDataDict", universe=_UNIVERSE)
    return DatasetRef(dataset_type, {"instrument": "Cam", "visit": 1, "detector": detector}, run="r")


def test_inputs_and_outputs_by_dataset_type_name_or_type() -> None:
    raws, calexp = [_ref("raw", 1), _ref("raw", 2)], _ref("calexp", 1)
    quantum = Quantum(taskLabel="isr", inputs=raws, outputs=[calexp])

    assert quantum.inputs["raw"] == tuple(raws)
    assert quantum.inputs[raws[0].datasetType] == tuple(raws)
    assert quantum.outputs["calexp"] == (calexp,)
    assert "raw" in quantum.inputs and "calexp" not in quantum.inputs
    assert quantum.outputs.names == {"calexp"}
    assert [t.name for t in quantum.inputs] == ["raw"]  # keys stay dataset types
    assert dict(quantum.inputs) == {raws[0].datasetType: tuple(raws)}
    with pytest.raises(KeyError, match=r"No dataset type 'bias' here; the dataset types are \['raw'\]"):
        quantum.inputs["bias"]


def test_mapping_round_trips_through_a_new_quantum_and_the_wire_form() -> None:
    quantum = Quantum(taskLabel="isr", inputs=[_ref("raw", 1)], outputs=[_ref("calexp", 1)])
    copy = Quantum(taskLabel="isr", inputs=quantum.inputs, outputs=quantum.outputs, id=quantum.id)
    assert copy.inputs["raw"] == quantum.inputs["raw"]
    wired = quantum_from_simple(quantum_to_simple(quantum), _UNIVERSE)
    assert wired.outputs["calexp"][0].id == quantum.outputs["calexp"][0].id
