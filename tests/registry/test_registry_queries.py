"""Tests of the registry queries: datasets by run, type and data ID; provenance; quanta."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from registry_data import SyntheticQuantum, SyntheticRuns, make_ref

from s3qbb.errors import ConfigError, DatasetNotFoundError
from s3qbb.registry import DATASET_ROLES, Registry
from s3qbb.testing.servers import S3TestEndpoint

pytestmark = pytest.mark.moto_server


@pytest.fixture
def chain(registry: Registry, moto_endpoint: S3TestEndpoint) -> list[list[SyntheticQuantum]]:
    """Three runs; quantum i of each run reads output 0 of quantum i of the previous run."""
    runs = SyntheticRuns(moto_endpoint.client, moto_endpoint.bucket)
    stages = runs.chain(["c/a", "c/b", "c/c"], width=3)
    for run in ("c/a", "c/b", "c/c"):
        assert registry.ingest_run(runs.uri(run), config=moto_endpoint.config).failures == []
    return stages


def test_datasets_filters(registry: Registry, chain: list[list[SyntheticQuantum]]) -> None:
    everything = registry.datasets()
    assert len(everything) == 18
    assert {r.id for r in registry.datasets(run="c/b")} == {ref.id for q in chain[1] for ref in q.outputs}
    out1 = registry.datasets(dataset_type="out1")
    assert [r.data_id for r in out1] == [{"detector": d, "instrument": "Cam", "visit": 1} for d in range(3)]
    assert {r.dataset_type for r in registry.datasets(data_id={"detector": 2})} == {
        "out0", "meta0", "out1", "meta1", "out2", "meta2",
    }  # fmt: skip
    assert registry.datasets(data_id={"detector": 2, "visit": 1}) == registry.datasets(
        data_id={"detector": "2"}
    )
    (one,) = registry.datasets(run="c/c", dataset_type="meta2", data_id={"detector": 0})
    assert one.id == chain[2][0].outputs[1].id
    assert one.stored and one.records[0].path.endswith(f"{one.id}.json")
    assert registry.datasets(run="nope") == []
    assert registry.datasets(data_id={"detector": 99}) == []
    assert registry.datasets(stored=False) == []
    assert len(registry.datasets(stored=True)) == 18


def test_datasets_limit_is_the_querys_and_counts_datasets_not_records(
    registry: Registry, chain: list[list[SyntheticQuantum]]
) -> None:
    import sqlalchemy as sa

    from s3qbb.registry.schema import make_tables

    everything = registry.datasets()
    # A second datastore's record for the first dataset: two joined rows, still one dataset.
    first = everything[0]
    record = make_tables().record
    with registry.engine.begin() as conn:
        row = conn.execute(sa.select(record).where(record.c.dataset_id == first.id)).mappings().one()
        conn.execute(record.insert().values({**row, "datastore_name": "zz-second"}))
    statements: list[str] = []

    def capture(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    sa.event.listen(registry.engine, "before_cursor_execute", capture)
    try:
        two = registry.datasets(limit=2)
    finally:
        sa.event.remove(registry.engine, "before_cursor_execute", capture)
    assert [r.id for r in two] == [r.id for r in everything[:2]]
    assert [r.datastore_name for r in two[0].records] == [first.records[0].datastore_name, "zz-second"]
    (select,) = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert "LIMIT" in select.upper()  # the database stops, not a Python slice
    assert [r.id for r in registry.datasets(run="c/b", limit=1)] == [registry.datasets(run="c/b")[0].id]
    assert registry.datasets(limit=0) == []
    assert registry.count_datasets() == 18
    assert registry.count_datasets(run="c/b", data_id={"detector": 2}) == len(
        registry.datasets(run="c/b", data_id={"detector": 2})
    )
    assert registry.count_datasets(stored=False) == 0


def test_unwritten_outputs_are_known_but_not_stored(
    registry: Registry, moto_endpoint: S3TestEndpoint
) -> None:
    runs = SyntheticRuns(moto_endpoint.client, moto_endpoint.bucket)
    written, skipped = make_ref("a", "r", visit=1), make_ref("b", "r", visit=1)
    runs.quantum("r", "t", [], [written, skipped], not_written=frozenset({skipped.id}), failed=True)
    registry.ingest_run(runs.uri("r"), config=moto_endpoint.config)
    assert [r.id for r in registry.datasets(stored=False)] == [skipped.id]
    assert [r.id for r in registry.datasets(stored=True)] == [written.id]
    assert registry.datasets(run="r", stored=False)[0].records == ()


def test_provenance_depths(registry: Registry, chain: list[list[SyntheticQuantum]]) -> None:
    target = chain[2][1].outputs[0]
    alone = registry.provenance(target.id, depth=0)
    assert alone.dataset.id == target.id and alone.producer is None and alone.quanta == {}
    one = registry.provenance(target.id)
    assert one.producer is not None and one.producer.id == chain[2][1].quantum_id
    assert one.producer.task_label == "task2" and one.producer.status == "succeeded"
    assert [r.id for r in one.inputs_of(target.id)] == [chain[1][1].outputs[0].id]
    assert one.ancestors() == {chain[1][1].outputs[0].id}
    full = registry.provenance(str(target.id), depth=10)
    assert full.ancestors() == {chain[1][1].outputs[0].id, chain[0][1].outputs[0].id}
    assert set(full.quanta) == {chain[level][1].quantum_id for level in range(3)}
    top = chain[0][1].outputs[0].id
    assert full.producer_of(top) is not None and full.inputs_of(top) == []
    tree = json.loads(json.dumps(full.to_dict()))
    assert tree["producer"]["task_label"] == "task2"
    assert tree["inputs"][0]["inputs"][0]["dataset"]["id"] == str(top)
    assert tree["inputs"][0]["inputs"][0]["inputs"] == []


def test_unused_and_missing_inputs_are_not_actual(registry: Registry, moto_endpoint: S3TestEndpoint) -> None:
    runs = SyntheticRuns(moto_endpoint.client, moto_endpoint.bucket)
    used, unused, missing = (make_ref("in", "r0", visit=v) for v in (1, 2, 3))
    out = make_ref("out", "r1", visit=1)
    q = runs.quantum(
        "r1",
        "t",
        [used, unused, missing],
        [out],
        unused=frozenset({unused.id}),
        missing=frozenset({missing.id}),
    )
    registry.ingest_run(runs.uri("r1"), config=moto_endpoint.config)
    tree = registry.provenance(out.id)
    assert [r.id for r in tree.inputs_of(out.id)] == [used.id]
    row = registry.quantum(q.quantum_id)
    assert row is not None
    assert set(row.datasets) == set(DATASET_ROLES)
    assert set(row.datasets["predicted_input"]) == {used.id, unused.id, missing.id}
    assert set(row.datasets["available_input"]) == {used.id, unused.id}
    assert row.datasets["actual_input"] == (used.id,)
    assert row.datasets["predicted_output"] == row.datasets["actual_output"] == (out.id,)
    assert json.loads(json.dumps(row.to_dict()))["datasets"]["actual_input"] == [str(used.id)]


def test_shared_ancestors_and_cycles_terminate(registry: Registry, moto_endpoint: S3TestEndpoint) -> None:
    runs = SyntheticRuns(moto_endpoint.client, moto_endpoint.bucket)
    x, y = make_ref("x", "loop", visit=1), make_ref("y", "loop", visit=1)
    # Hostile: each quantum claims to have written what the other read.
    runs.quantum("loop", "a", [x], [y])
    runs.quantum("loop", "b", [y], [x])
    registry.ingest_run(runs.uri("loop"), config=moto_endpoint.config)
    tree = registry.provenance(x.id, depth=50)
    assert len(tree.quanta) == 2 and set(tree.datasets) == {x.id, y.id}
    assert tree.ancestors() == {x.id, y.id}
    rendered = tree.to_dict()
    assert rendered["inputs"][0]["inputs"][0]["cycle"] is True


def test_lookups_of_unknown_things(registry: Registry, chain: list[list[SyntheticQuantum]]) -> None:
    with pytest.raises(DatasetNotFoundError, match="not in the registry"):
        registry.provenance(uuid.uuid4())
    with pytest.raises(ConfigError, match="not a UUID"):
        registry.provenance("definitely-not")
    with pytest.raises(ConfigError, match="depth"):
        registry.provenance(chain[0][0].outputs[0].id, depth=-1)
    assert registry.quantum(uuid.uuid4()) is None
    assert registry.quantum(str(chain[0][0].quantum_id)) is not None
