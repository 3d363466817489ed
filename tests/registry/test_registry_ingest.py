"""Tests of Registry.ingest_run on the moto server: real butlers, idempotency, resumption, degradation."""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from registry_data import ROOT, SyntheticRuns, make_ref, run_pipeline

from s3qbb.datastores.templates import sanitize_run
from s3qbb.errors import BucketNotFoundError, ConfigError, DatasetNotFoundError
from s3qbb.provenance import provenance_key, records_key, report_key
from s3qbb.registry import IngestProgress, Registry, TextProgressBar
from s3qbb.registry.database import is_transient_db_error, parse_registry_url
from s3qbb.registry.sources import encoded_run_prefix, parse_run_uri
from s3qbb.retry import RetryPolicy
from s3qbb.s3 import make_client, make_retry_policy
from s3qbb.s3.objects import GetResult, S3Bucket
from s3qbb.testing.servers import S3TestEndpoint

pytestmark = pytest.mark.moto_server


def ingest(registry: Registry, uri: str, endpoint: S3TestEndpoint, **kwargs: Any) -> Any:
    return registry.ingest_run(uri, config=endpoint.config, **kwargs)


def object_size(endpoint: S3TestEndpoint, key: str) -> int:
    return int(endpoint.client.head_object(Bucket=endpoint.bucket, Key=key)["ContentLength"])


# --- real butlers ------------------------------------------------------------------------


def test_pipeline_of_real_butlers(registry: Registry, moto_endpoint: S3TestEndpoint) -> None:
    p = run_pipeline(moto_endpoint, detectors=3, fail_detector=1)
    raw = ingest(registry, p.uri(p.raw_run), moto_endpoint)
    assert (raw.quanta_added, raw.datasets_added, raw.records_added, raw.failures) == (1, 3, 3, [])
    summary = ingest(registry, p.uri(p.run), moto_endpoint, workers=4)
    assert summary.failures == []
    assert summary.quanta_listed == summary.quanta_added == 4  # 3 calibrate + summarize
    assert summary.quanta_skipped == 0
    assert summary.datasets_added == 7  # 3 calexp + 3 metrics + 1 summary (raws were known)
    assert summary.records_added == 5  # detectors 0 and 2 wrote two datasets each, plus the summary
    # Budget: one LIST for the run, three GETs (provenance, report, records file) per quantum.
    assert summary.requests == {"ListObjectsV2": 1, "GetObject": 12}
    expected_bytes = sum(
        object_size(moto_endpoint, f"{ROOT}/{key(p.run, q.id)}")
        for q in [*p.quanta["calibrate"], *p.quanta["summarize"]]
        for key in (provenance_key, report_key, records_key)
    )
    assert summary.bytes_downloaded == expected_bytes

    rows = {row.id: row for row in registry.datasets()}
    assert len(rows) == 10
    for d, ref in p.calexps.items():
        row = rows[ref.id]
        assert (row.dataset_type, row.run) == ("calexp", p.run)
        assert row.data_id == {"instrument": "DemoCam", "visit": 42, "detector": d}
        assert row.stored == (d != 1)
    for ref in [*p.raws.values(), p.summary]:
        (record,) = rows[ref.id].records
        # Records point at real objects of the recorded size.
        assert object_size(moto_endpoint, f"{ROOT}/{record.path}") == record.file_size
        assert record.checksum is not None and record.checksum.startswith("CRC32C:")
        assert record.component is None and record.datastore_name == "S3Datastore"

    failed = registry.quantum(p.quanta["calibrate"][1].id)
    assert failed is not None
    assert (failed.status, failed.task_label, failed.run) == ("failed", "calibrate", p.run)
    assert failed.error is not None and "calibration diverged" in failed.error
    assert failed.datasets["actual_input"] == (p.raws[1].id,)
    assert failed.datasets["actual_output"] == ()
    assert set(failed.datasets["predicted_output"]) == {p.calexps[1].id, p.metrics[1].id}
    assert failed.started_at is not None and failed.ended_at is not None
    assert failed.started_at <= failed.ended_at and failed.started_at.utcoffset() is not None
    assert failed.source == f"s3://{p.bucket}/{ROOT}/{provenance_key(p.run, failed.id)}"

    tree = registry.provenance(p.summary.id, depth=2)
    producer = tree.producer
    assert producer is not None and producer.task_label == "summarize"
    assert {r.id for r in tree.inputs_of(p.summary.id)} == {p.metrics[0].id, p.metrics[2].id}
    assert tree.ancestors() == {p.metrics[0].id, p.metrics[2].id, p.raws[0].id, p.raws[2].id}


def test_second_ingest_adds_nothing_and_says_so(registry: Registry, moto_endpoint: S3TestEndpoint) -> None:
    p = run_pipeline(moto_endpoint, detectors=2)
    first = ingest(registry, p.uri(p.run), moto_endpoint)
    assert first.quanta_added == 3 and not first.nothing_new
    before = registry.counts()
    again = ingest(registry, p.uri(p.run), moto_endpoint)
    assert (again.quanta_added, again.quanta_skipped, again.datasets_added, again.records_added) == (
        0,
        3,
        0,
        0,
    )
    assert again.bytes_downloaded == 0
    assert again.requests == {"ListObjectsV2": 1}  # one query found every quantum: nothing downloaded
    assert again.nothing_new
    assert "Nothing new: all 3 quanta listed were already in the registry." in again.describe()
    assert registry.counts() == before


def test_runs_in_any_order_give_the_same_registry(moto_endpoint: S3TestEndpoint, tmp_path: Any) -> None:
    p = run_pipeline(moto_endpoint, detectors=2)
    forward = Registry.from_url(tmp_path / "a.sqlite3")
    backward = Registry.from_url(tmp_path / "b.sqlite3")
    for run in (p.raw_run, p.run):
        ingest(forward, p.uri(run), moto_endpoint)
    late = [ingest(backward, p.uri(run), moto_endpoint) for run in (p.run, p.raw_run)]
    # The raws were known from the calibrate quanta's refs; ingesting their run adds their records.
    assert (late[1].datasets_added, late[1].records_added) == (0, 2)
    assert forward.counts() == backward.counts()
    assert forward.datasets() == backward.datasets()
    forward.close()
    backward.close()


# --- degrading without refs or reports -----------------------------------------------------


def test_without_refs_outputs_get_the_quantum_run(registry: Registry, moto_endpoint: S3TestEndpoint) -> None:
    runs = SyntheticRuns(moto_endpoint.client, moto_endpoint.bucket)
    raw = make_ref("raw", "r/raw", detector=1, visit=1)
    q = runs.quantum(
        "r/proc", "proc", [raw], [make_ref("calexp", "r/proc", detector=1, visit=1)], with_refs=False
    )
    summary = ingest(registry, runs.uri("r/proc"), moto_endpoint)
    assert summary.failures == [] and summary.quanta_added == 1
    rows = {row.id: row for row in registry.datasets()}
    out = rows[q.outputs[0].id]
    assert (out.dataset_type, out.run, out.data_id, out.stored) == (None, "r/proc", None, True)
    assert (rows[raw.id].dataset_type, rows[raw.id].run, rows[raw.id].stored) == (None, None, False)
    # The producing run, ingested later with refs, fills what was missing.
    producer = runs.quantum("r/raw", "ingest", [], [raw])
    ingest(registry, runs.uri("r/raw"), moto_endpoint)
    filled = {row.id: row for row in registry.datasets()}[raw.id]
    assert (filled.dataset_type, filled.run, filled.stored) == ("raw", "r/raw", True)
    assert filled.data_id == {"instrument": "Cam", "detector": 1, "visit": 1}
    assert registry.datasets(data_id={"detector": 1}, dataset_type="raw") == [filled]
    assert registry.provenance(raw.id).producer is not None
    assert registry.provenance(raw.id).producer.id == producer.quantum_id  # type: ignore[union-attr]


def test_without_report_the_run_comes_from_the_uri(registry: Registry, moto_endpoint: S3TestEndpoint) -> None:
    runs = SyntheticRuns(moto_endpoint.client, moto_endpoint.bucket)
    q = runs.quantum("bare", "t", [], [make_ref("x", "bare", visit=3)], with_report=False)
    summary = ingest(registry, runs.uri("bare"), moto_endpoint)
    assert summary.failures == [] and summary.quanta_added == 1
    row = registry.quantum(q.quantum_id)
    assert row is not None
    assert (row.run, row.status, row.task_label, row.host) == ("bare", None, None, None)
    assert registry.datasets(run="bare")[0].id == q.outputs[0].id
    other = ingest(registry, runs.uri("bare"), moto_endpoint, run="explicit")
    assert other.nothing_new


# --- resumption and progress -----------------------------------------------------------------


class _StopError(Exception):
    pass


def test_interrupted_ingest_resumes(registry: Registry, moto_endpoint: S3TestEndpoint) -> None:
    runs = SyntheticRuns(moto_endpoint.client, moto_endpoint.bucket)
    (stage,) = runs.chain(["r1"], width=7)

    def stop_after_first_batch(progress: IngestProgress) -> None:
        if progress.quanta_added >= 2:
            raise _StopError

    with pytest.raises(_StopError):
        ingest(
            registry, runs.uri("r1"), moto_endpoint, batch_size=2, workers=2, progress=stop_after_first_batch
        )
    assert registry.counts()["quantum"] == 2  # the committed batch stays
    rest = ingest(registry, runs.uri("r1"), moto_endpoint, batch_size=2, workers=2)
    assert (rest.quanta_added, rest.quanta_skipped, rest.failures) == (5, 2, [])
    counts = registry.counts()
    assert counts["quantum"] == 7
    assert counts["dataset"] == 14
    assert counts["quantum_dataset"] == 7 * 2 * 2  # predicted + actual output, two outputs each
    assert {registry.quantum(q.quantum_id).id for q in stage} == {q.quantum_id for q in stage}  # type: ignore[union-attr]


def test_progress_reports_every_quantum(registry: Registry, moto_endpoint: S3TestEndpoint) -> None:
    runs = SyntheticRuns(moto_endpoint.client, moto_endpoint.bucket)
    runs.chain(["r1"], width=5)
    seen: list[IngestProgress] = []
    out = io.StringIO()
    bar = TextProgressBar(out, min_interval=0.0)

    def progress(p: IngestProgress) -> None:
        seen.append(p)
        bar(p)

    summary = ingest(registry, runs.uri("r1"), moto_endpoint, batch_size=2, progress=progress)
    bar.close()
    assert [p.done for p in seen] == sorted(p.done for p in seen)
    assert seen[0].done == 0 and seen[-1].done == seen[-1].total == 5
    assert seen[-1].quanta_added == 5 and seen[-1].bytes_downloaded == summary.bytes_downloaded
    last_line = out.getvalue().rsplit("\r", 1)[1]
    assert last_line.startswith("[" + "#" * 30 + "] 5/5 quanta, 5 added, 0 failed, ")
    assert last_line.endswith(" KiB\n")


def test_text_progress_bar_throttles() -> None:
    out = io.StringIO()
    now = [0.0]
    bar = TextProgressBar(out, width=4, min_interval=1.0, clock=lambda: now[0])
    bar(IngestProgress(10, 1, 1, 0, 0))
    bar(IngestProgress(10, 2, 2, 0, 0))  # too soon: not drawn
    now[0] = 0.5
    bar(IngestProgress(10, 10, 10, 1, 3 * 1024**2))  # done: always drawn
    assert out.getvalue().count("\r") == 2
    assert out.getvalue().endswith("[####] 10/10 quanta, 10 added, 1 failed, 3.0 MiB")


# --- arguments and S3 failures -------------------------------------------------------------------


def test_run_uri_parsing() -> None:
    assert parse_run_uri("s3://b/repo/u/me/run/") == ("b", "repo/u/me/run/")
    assert parse_run_uri("s3://b/repo/run") == ("b", "repo/run/")
    # A "_records" segment is a run's folder of per-quantum files, never part of a run: refused, not
    # silently read as the parent run (a run "run/_records" cannot exist).
    for uri in ("s3://b/repo/run/_records/", "s3://b/repo/run/_records", "s3://b/_records/x/"):
        with pytest.raises(ConfigError, match="points into a '_records' folder") as info:
            parse_run_uri(uri)
        assert "give the run's own prefix" in str(info.value)
    with pytest.raises(ConfigError):
        parse_run_uri("/local/path")
    with pytest.raises(ConfigError):
        parse_run_uri("s3://b/repo?x=1")


def test_bad_arguments(registry: Registry, moto_endpoint: S3TestEndpoint) -> None:
    with pytest.raises(ConfigError):
        ingest(registry, f"s3://{moto_endpoint.bucket}/r/", moto_endpoint, workers=0)


def test_missing_bucket_is_an_error(registry: Registry, moto_endpoint: S3TestEndpoint) -> None:
    with pytest.raises(BucketNotFoundError):
        ingest(registry, "s3://no-such-bucket-here/repo/run/", moto_endpoint)


def test_empty_prefix_says_nothing_found(registry: Registry, moto_endpoint: S3TestEndpoint) -> None:
    summary = ingest(registry, f"s3://{moto_endpoint.bucket}/repo/nothing/", moto_endpoint)
    assert summary.quanta_listed == 0 and summary.nothing_new
    assert "no per-quantum files were found" in summary.describe()


class _VanishingBucket(S3Bucket):
    """Answers 'not found' for some keys, as if they were deleted between LIST and GET."""

    gone: frozenset[str] = frozenset()

    def get(self, key: str, byte_range: tuple[int, int] | None = None) -> GetResult:
        if key in self.gone:
            raise DatasetNotFoundError(f"{self.uri(key)} does not exist")
        return super().get(key, byte_range)


def test_download_failure_is_reported_and_others_kept(
    registry: Registry, moto_endpoint: S3TestEndpoint
) -> None:
    runs = SyntheticRuns(moto_endpoint.client, moto_endpoint.bucket)
    (stage,) = runs.chain(["r1"], width=3)
    config = moto_endpoint.config
    bucket = _VanishingBucket(
        make_client(config), moto_endpoint.bucket, config=config, retry=make_retry_policy(config), count=print
    )
    lost = f"{ROOT}/{provenance_key('r1', stage[1].quantum_id)}"
    bucket.gone = frozenset({lost})
    summary = registry.ingest_run(runs.uri("r1"), bucket=bucket)
    assert summary.quanta_added == 2
    ((key, reason),) = summary.failures
    assert key == f"s3://{moto_endpoint.bucket}/{lost}"
    assert "download failed" in reason and "does not exist" in reason
    assert registry.quantum(stage[1].quantum_id) is None  # a later ingest can still add it


# --- database contention and refusal ---------------------------------------------------------------


def test_contention_is_retried_with_injected_sleep(tmp_path: Any, moto_endpoint: S3TestEndpoint) -> None:
    runs = SyntheticRuns(moto_endpoint.client, moto_endpoint.bucket)
    runs.chain(["r1"], width=2)
    path = tmp_path / "r.sqlite3"
    base = Registry.from_url(path)
    sleeps: list[float] = []
    policy = RetryPolicy(is_transient=is_transient_db_error, sleep=sleeps.append)
    registry = Registry(base.engine, parse_registry_url(path), retry=policy)
    calls = {"n": 0}

    class _DeadlockError(Exception):
        sqlstate = "40P01"

    @sa.event.listens_for(base.engine, "before_cursor_execute")
    def fail_once(*args: Any) -> None:
        statement = args[2]
        if statement.startswith("INSERT INTO quantum ") and calls["n"] == 0:
            calls["n"] += 1
            raise sa.exc.OperationalError(statement, {}, _DeadlockError("deadlock detected"))

    summary = registry.ingest_run(runs.uri("r1"), config=moto_endpoint.config)
    assert calls["n"] == 1 and len(sleeps) == 1
    assert summary.quanta_added == 2 and summary.failures == []
    assert policy.stats.retries == 1
    registry.close()


def test_refused_batch_is_split_to_find_the_quantum_at_fault(
    registry: Registry, moto_endpoint: S3TestEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    from s3qbb.registry import rows as row_module

    runs = SyntheticRuns(moto_endpoint.client, moto_endpoint.bucket)
    (stage,) = runs.chain(["r1"], width=3)
    bad_id = stage[1].quantum_id
    real_build = row_module.build_rows

    def build_with_a_dangling_edge(bundle: Any, **kwargs: Any) -> row_module.QuantumRows:
        rows = real_build(bundle, **kwargs)
        if bundle.quantum_id == bad_id:  # an edge to a dataset no row creates: a foreign key violation
            rows.edges.append((bad_id.hex, uuid.uuid4().hex, "actual_input"))
        return rows

    monkeypatch.setattr("s3qbb.registry.ingest.build_rows", build_with_a_dangling_edge)
    summary = ingest(registry, runs.uri("r1"), moto_endpoint, batch_size=10)
    assert summary.quanta_added == 2
    ((key, reason),) = summary.failures
    assert key == f"s3://{moto_endpoint.bucket}/{ROOT}/{provenance_key('r1', bad_id)}"
    assert "the registry refused it" in reason and "foreign key" in reason.lower()
    assert registry.quantum(bad_id) is None
    assert registry.counts()["quantum"] == 2


def test_a_run_given_by_its_own_name_is_read_at_its_sanitised_prefix(
    registry: Registry, moto_endpoint: S3TestEndpoint
) -> None:
    """``s3://bkt/ROOT/rün/日本/`` reads ``ROOT/r%C3%BCn/%E6%97%A5%E6%9C%AC/``; the root is not encoded."""
    runs = SyntheticRuns(moto_endpoint.client, moto_endpoint.bucket, root="dätä root")
    runs.chain(["rün/日本", "run 1"], width=2)
    base = f"s3://{moto_endpoint.bucket}/dätä root/"
    nested = ingest(registry, f"{base}rün/日本/", moto_endpoint)
    assert (nested.quanta_added, nested.failures) == (2, [])
    assert nested.uri == runs.uri("rün/日本") == f"{base}r%C3%BCn/%E6%97%A5%E6%9C%AC/"
    # One LIST finding nothing as given, three walking up to the root (which needs encoding too, so
    # the walk goes up to it), one listing the run at its sanitised prefix.
    assert nested.requests["ListObjectsV2"] == 5
    flat = ingest(registry, f"{base}run 1", moto_endpoint)
    assert (flat.quanta_added, flat.uri) == (2, f"{base}run%201/")
    again = ingest(registry, runs.uri("rün/日本"), moto_endpoint)  # the encoded URI, as documented
    assert (again.quanta_listed, again.quanta_added, again.requests) == (2, 0, {"ListObjectsV2": 1})
    missing = ingest(registry, f"{base}rün/日木/", moto_endpoint)
    assert (missing.quanta_listed, missing.uri) == (0, f"{base}rün/日木/")


def test_encoded_run_prefix_walks_up_to_the_root() -> None:
    existing = {"a/", "a/b c/", "a/b c/r%C3%BCn/"}
    asked: list[str] = []

    def exists(prefix: str) -> bool:
        asked.append(prefix)
        return prefix in existing

    assert encoded_run_prefix("a/b c/rün/x y/", exists) == "a/b c/r%C3%BCn/x%20y/"
    assert asked == ["a/b c/rün/x y/", "a/b c/rün/", "a/b c/"]  # the root ends at the deepest that exists
    asked.clear()
    assert encoded_run_prefix("a/b/rün/", exists) == "a/b/r%C3%BCn/"
    assert asked == ["a/b/rün/"]  # not above the first segment that sanitising changes
    assert encoded_run_prefix("a/run/", exists) is None  # nothing to encode: no LIST
    assert encoded_run_prefix("a/b c/", exists) is None  # exists as given
    assert encoded_run_prefix("x y/", exists) == "x%20y/"
    assert encoded_run_prefix("", exists) is None
    assert encoded_run_prefix("a/../", exists) is None  # cannot be a run name
    assert asked[-1] == "a/../"


def test_encoded_run_prefix_reads_a_printed_uri_as_the_keys_it_encodes() -> None:
    existing = {"repo/", "repo/run%20x/"}  # run "run x", stored sanitised
    asked: list[str] = []

    def exists(prefix: str) -> bool:
        asked.append(prefix)
        return prefix in existing

    assert encoded_run_prefix("repo/run%2520x/", exists) == "repo/run%20x/"  # as s3qbb prints it
    assert asked == ["repo/run%20x/"]  # one LIST
    assert encoded_run_prefix("repo/run x/", exists) == "repo/run%20x/"  # by its name


def test_summary_to_dict_is_json(registry: Registry, moto_endpoint: S3TestEndpoint) -> None:
    runs = SyntheticRuns(moto_endpoint.client, moto_endpoint.bucket)
    runs.chain(["r1"], width=1)
    runs.put(f"{sanitize_run('r1')}/_records/junk.txt", b"x")
    data = json.loads(json.dumps(ingest(registry, runs.uri("r1"), moto_endpoint).to_dict()))
    assert data["quanta_added"] == 1
    assert data["failures"][0]["key"].endswith("/_records/junk.txt")
    assert data["requests"]["GetObject"] == 3  # provenance, report, records file


def test_concurrent_processes_on_one_sqlite_file(moto_endpoint: S3TestEndpoint, tmp_path: Any) -> None:
    import multiprocessing

    from registry_child import ingest_in_child

    runs = SyntheticRuns(moto_endpoint.client, moto_endpoint.bucket)
    runs.chain(["s/a", "s/b"], width=3)
    path = str(tmp_path / "shared.sqlite3")
    config = {
        **moto_endpoint.config.model_dump(exclude={"secret_access_key"}),
        "secret_access_key": moto_endpoint.config.secret_access_key.get_secret_value(),  # type: ignore[union-attr]
    }
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    procs = [
        ctx.Process(target=ingest_in_child, args=(path, None, runs.uri(run), config, barrier, results))
        for run in ("s/a", "s/b", "s/a", "s/b")
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert [tb for *_, tb in outcomes if tb] == []
    assert sum(summary["quanta_added"] for _, summary, _, _ in outcomes) == 6
    with Registry.from_url(path) as registry:
        assert registry.counts()["quantum"] == 6
        assert registry.counts()["dataset"] == 12


def test_daf_butler_provenance_file_alone(registry: Registry, moto_endpoint: S3TestEndpoint) -> None:
    """A file written by daf_butler (no s3qbb report), with a disassembled dataset, ingests."""
    from pathlib import Path

    golden = Path(__file__).parents[1] / "provenance" / "golden" / "daf_butler_provenance.json"
    runs = SyntheticRuns(moto_endpoint.client, moto_endpoint.bucket)
    qid = uuid.uuid4()
    runs.put(provenance_key("u/someone/run1", qid), golden.read_bytes())
    # Without a report, the run of the outputs is the URI's last segment unless given.
    summary = ingest(registry, runs.uri("u/someone/run1"), moto_endpoint, run="u/someone/run1")
    assert summary.failures == []
    assert (summary.quanta_added, summary.datasets_added, summary.records_added) == (1, 6, 3)
    calexp = uuid.UUID("7f3b9d20-5c4e-4a1f-9e2d-00000000000b")
    (row,) = [r for r in registry.datasets(run="u/someone/run1") if r.id == calexp]
    assert [(r.component, r.storage_class, r.file_size) for r in row.records] == [
        ("image", "ImageF", 40320),
        ("mask", "MaskX", -1),
    ]
    assert row.records[0].checksum == "CRC32C:9ONpcA=="
    assert row.records[0].datastore_name == "FileDatastore@s3://bucket/repo"
    tree = registry.provenance(calexp)
    assert tree.producer is not None and tree.producer.id == qid and tree.producer.status is None
    assert {r.id for r in tree.inputs_of(calexp)} == {
        uuid.UUID("1a1e0c5e-2f0b-4b7e-8c1d-000000000001"),
        uuid.UUID("1a1e0c5e-2f0b-4b7e-8c1d-000000000003"),
    }
