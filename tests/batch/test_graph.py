"""`s3qbb.QuantumGraph`: edges from dataset IDs, deterministic level order, lazy decoding, clear errors."""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path

import pytest
from graph_helpers import DETECTORS, make_graph

import s3qbb
from s3qbb.batch.graph import GraphError, QuantumGraph
from s3qbb.batch.jobindex import JobIndexError, index_from_environment, select_index
from s3qbb.core import DatasetRef, DatasetType, DimensionUniverse, Quantum
from s3qbb.testing.servers import S3TestEndpoint

_U = DimensionUniverse()
_T = DatasetType("thing", ["visit"], "StructuredDataDict", universe=_U)


def _ref(visit: int) -> DatasetRef:
    return DatasetRef(_T, {"instrument": "Cam", "visit": visit}, "run")


def test_edges_levels_and_order() -> None:
    graph, _ = make_graph()
    assert s3qbb.QuantumGraph is QuantumGraph
    assert len(graph) == 2 + len(DETECTORS)
    assert [n.label for n in graph.nodes] == ["make", *["calibrate"] * len(DETECTORS), "summarize"]
    assert [n.level for n in graph.nodes] == [0, 1, 1, 1, 2]
    assert [n.upstream for n in graph.nodes] == [(), (0,), (0,), (0,), (1, 2, 3)]
    assert [[n.index for n in level] for level in graph.levels()] == [[0], [1, 2, 3], [4]]
    assert graph.stage_range(1) == range(1, 4)
    # Calibrate quanta sorted by data ID (detector), whatever the input order.
    assert [graph[i].dataId["detector"] for i in range(1, 4)] == list(DETECTORS)  # type: ignore[index]
    assert [q.id for q in graph] == [n.id for n in graph.nodes]
    for i, node in enumerate(graph.nodes):
        assert graph.index_of(node.id) == i and graph.quantum(str(node.id)).id == node.id
    assert graph.task_of(4) == "graph_tasks:combine"


def test_order_is_deterministic_and_survives_a_round_trip(tmp_path: Path) -> None:
    graph, _ = make_graph()
    quanta = list(graph)
    random.Random(3).shuffle(quanta)
    again = QuantumGraph.from_quanta(quanta, graph.tasks)
    assert [n.id for n in again.nodes] == [n.id for n in graph.nodes]
    path = tmp_path / "g.qgraph"
    graph.save(path)
    loaded = QuantumGraph.load(path)
    assert loaded.nodes == graph.nodes and loaded.tasks == graph.tasks
    assert loaded._decoded == {}  # nothing validated or decoded on load
    q = loaded[4]
    assert set(loaded._decoded) == {4}
    assert {r.id for r in q.input_refs()} == {r.id for r in graph[4].input_refs()}
    assert loaded.to_bytes() == graph.to_bytes()


def test_save_and_load_on_s3(s3_endpoint: S3TestEndpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    graph, _ = make_graph()
    uri = f"s3://{s3_endpoint.bucket}/graphs/g.qgraph"
    graph.save(uri, config=s3_endpoint.config)
    assert QuantumGraph.load(uri, config=s3_endpoint.config).nodes == graph.nodes


def test_invalid_graphs_are_refused_clearly() -> None:
    one, two = _ref(1), _ref(2)
    a = Quantum(taskLabel="a", inputs=[two], outputs=[one])
    b = Quantum(taskLabel="b", inputs=[one], outputs=[two])
    with pytest.raises(GraphError, match="cycle"):
        QuantumGraph.from_quanta([a, b], {"a": "m:f", "b": "m:g"})
    with pytest.raises(GraphError, match="label 'b', which has no task"):
        QuantumGraph.from_quanta([b], {"a": "m:f"})
    twice = Quantum(taskLabel="a", outputs=[one])
    with pytest.raises(GraphError, match="output of two quanta"):
        QuantumGraph.from_quanta([Quantum(taskLabel="a", outputs=[one]), twice], {"a": "m:f"})
    with pytest.raises(GraphError, match=r"package\.module:function"):
        QuantumGraph.from_quanta([twice], {"a": "not a task"})
    with pytest.raises(ValueError):  # GraphError is a ConfigError, hence a ValueError
        QuantumGraph.from_quanta([twice, twice], {"a": "m:f"})


def test_bad_files_are_refused_clearly(tmp_path: Path) -> None:
    graph, _ = make_graph()
    data = graph.to_bytes()
    preamble, _, rest = data.partition(b"\n")
    newer = json.loads(preamble)
    newer["version"] = 99
    with pytest.raises(GraphError, match="version 99"):
        QuantumGraph.from_bytes(json.dumps(newer).encode() + b"\n" + rest)
    with pytest.raises(GraphError, match="truncated"):
        QuantumGraph.from_bytes(data[:-10])
    with pytest.raises(GraphError, match="not a quantum graph"):
        QuantumGraph.from_bytes(b'{"hello": 1}\n')
    with pytest.raises(GraphError, match="not a quantum graph"):
        QuantumGraph.from_bytes(b"")
    cut = tmp_path / "cut.qgraph"
    cut.write_bytes(data[:-10])
    with pytest.raises(GraphError, match="cut short"):
        QuantumGraph.open(cut)[len(graph) - 1]
    swapped = QuantumGraph(
        graph.nodes, graph.tasks, [graph._payloads[i] for i in reversed(range(len(graph)))]
    )
    with pytest.raises(GraphError, match="corrupt"):
        swapped[0]


def test_open_reads_the_header_and_one_quantum(
    s3_endpoint: S3TestEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job's view of a large graph: two or three range GETs, a small part of the file."""
    from s3qbb.s3.objects import S3Bucket

    u = DimensionUniverse()
    types = [DatasetType(f"t{k}", ["visit"], "StructuredDataDict", universe=u) for k in range(2)]
    quanta = []
    for visit in range(300):
        first = DatasetRef(types[0], {"instrument": "Cam", "visit": visit}, "run")
        second = DatasetRef(types[1], {"instrument": "Cam", "visit": visit}, "run")
        quanta += [
            Quantum(taskLabel="a", outputs=[first]),
            Quantum(taskLabel="b", inputs=[first], outputs=[second]),
        ]
    graph = QuantumGraph.from_quanta(quanta, {"a": "m:f", "b": "m:g"})
    data = graph.to_bytes()
    uri = f"s3://{s3_endpoint.bucket}/graphs/big.qgraph"
    graph.save(uri, config=s3_endpoint.config)
    reads: list[int] = []
    original = S3Bucket.get

    def counting_get(self: S3Bucket, key: str, byte_range: tuple[int, int] | None = None) -> object:
        result = original(self, key, byte_range)
        reads.append(len(result.body))
        return result

    monkeypatch.setattr(S3Bucket, "get", counting_get)
    opened = QuantumGraph.open(uri, config=s3_endpoint.config)
    assert opened.nodes == graph.nodes and opened.tasks == graph.tasks
    quantum = opened[450]
    assert quantum.id == graph.nodes[450].id
    assert {r.id for r in quantum.input_refs()} == {r.id for r in graph[450].input_refs()}
    assert 2 <= len(reads) <= 3
    assert sum(reads) < len(data) / 3


def test_index_selection() -> None:
    graph, _ = make_graph()
    assert index_from_environment({"SLURM_ARRAY_TASK_ID": "3"}) == (3, "SLURM_ARRAY_TASK_ID")
    assert index_from_environment({"PBS_ARRAY_INDEX": "1", "AWS_BATCH_JOB_ARRAY_INDEX": "2"}) == (
        2,
        "AWS_BATCH_JOB_ARRAY_INDEX",
    )
    with pytest.raises(JobIndexError, match="No quantum selected"):
        index_from_environment({})
    with pytest.raises(JobIndexError, match="not a non-negative integer"):
        index_from_environment({"JOB_COMPLETION_INDEX": "x"})
    assert select_index(graph, environ={"JOB_COMPLETION_INDEX": "2"}, stage=1) == 3
    assert select_index(graph, index=0, stage=2) == 4
    with pytest.raises(JobIndexError, match="out of range for stage 1"):
        select_index(graph, index=3, stage=1)
    with pytest.raises(JobIndexError, match="not in graph"):
        select_index(graph, quantum_id=uuid.uuid4())
    with pytest.raises(JobIndexError, match="not both"):
        select_index(graph, quantum_id=graph.nodes[0].id, index=0)


def test_a_malformed_quantum_id_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """``--quantum xyz`` is refused by the option (exit 2), not a bare "badly formed hexadecimal"."""
    from s3qbb.cli.main import main

    assert main(["run-quantum", "--graph", "g.qgraph", "--quantum", "xyz", "--config", "butler.yaml"]) == 2
    err = capsys.readouterr().err
    assert "--quantum" in err and "'xyz'" in err
