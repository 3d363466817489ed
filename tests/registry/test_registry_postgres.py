"""Many ingest processes at once into one PostgreSQL registry: no duplicates, no deadlock, nothing lost."""

from __future__ import annotations

import multiprocessing

import pytest
import sqlalchemy as sa
from registry_child import ingest_in_child
from registry_data import SyntheticRuns

from s3qbb.registry import Registry
from s3qbb.testing.servers import S3TestEndpoint

pytestmark = [pytest.mark.postgres, pytest.mark.moto_server]

PROCESSES = 32
RUNS = ["conc/a", "conc/b", "conc/c", "conc/d"]
WIDTH = 8


def test_32_concurrent_ingests_over_overlapping_runs(
    pg_namespace: tuple[str, str], moto_endpoint: S3TestEndpoint
) -> None:
    url, namespace = pg_namespace
    runs = SyntheticRuns(moto_endpoint.client, moto_endpoint.bucket)
    # Each run reads the previous run's outputs, so concurrent batches of different runs insert the same
    # datasets; each run is ingested by 8 processes at once, so they also insert the same quanta.
    stages = runs.chain(RUNS, width=WIDTH)
    config = {
        **moto_endpoint.config.model_dump(exclude={"secret_access_key"}),
        "secret_access_key": moto_endpoint.config.secret_access_key.get_secret_value(),  # type: ignore[union-attr]
    }
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=ingest_in_child,
            args=(url, namespace, runs.uri(RUNS[i % len(RUNS)]), config, barrier, results),
        )
        for i in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    errors = [tb for _, _, _, tb in outcomes if tb]
    assert errors == [], errors[0] if errors else ""
    summaries = [s for _, s, _, _ in outcomes]
    assert all(s["failures"] == [] for s in summaries)
    # Every quantum was counted as added by exactly one process, and skipped by the others.
    total = len(RUNS) * WIDTH
    assert sum(s["quanta_added"] for s in summaries) == total
    assert sum(s["quanta_added"] + s["quanta_skipped"] for s in summaries) == PROCESSES * WIDTH
    assert sum(s["datasets_added"] for s in summaries) == total * 2
    assert sum(s["records_added"] for s in summaries) == total * 2
    # No transaction had to be retried: no deadlock, no serialization failure.
    assert [retries for _, _, retries, _ in outcomes] == [0] * PROCESSES

    with Registry.from_url(url, namespace=namespace) as registry:
        counts = registry.counts()
        edges_per_quantum = {0: 4}  # first run: predicted + actual output, two outputs each
        expected_edges = sum(edges_per_quantum.get(level, 4 + 3) for level in range(len(RUNS))) * WIDTH
        assert counts == {
            "dataset_type": 2 * len(RUNS),
            "run": len(RUNS),
            "dataset": total * 2,
            "dataset_data_id": total * 2 * 3,
            "datastore_record": total * 2,
            "quantum": total,
            "quantum_dataset": expected_edges,
        }
        t = registry.engine
        with t.connect() as conn:
            dupes = conn.exec_driver_sql(
                f'SELECT id FROM "{namespace}".quantum GROUP BY id HAVING count(*) > 1'
            ).fetchall()
            assert dupes == []
            ids = set(conn.execute(sa.text(f'SELECT id FROM "{namespace}".quantum')).scalars())
        assert ids == {q.quantum_id for stage in stages for q in stage}
        # Provenance crosses the runs, whichever process inserted which part.
        last = stages[-1][3].outputs[0].id
        tree = registry.provenance(last, depth=len(RUNS))
        assert len(tree.quanta) == len(RUNS)
        assert tree.ancestors() == {stages[level][3].outputs[0].id for level in range(len(RUNS) - 1)}
