"""Records, provenance and report uploaded beside the outputs when a quantum ends, whatever happened."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import numpy as np
import pytest
from butler_helpers import PREFIX, RUN, ButlerEnv, client_of

from s3qbb.config import RetryConfig
from s3qbb.core.attempt import WriteToken
from s3qbb.core.quantum import Quantum
from s3qbb.errors import DatasetExistsError, RecordsUploadError, S3qbbError
from s3qbb.provenance import QuantumProvenanceData, records_key
from s3qbb.s3.objects import WRITE_TOKEN
from s3qbb.s3.ownership import AttemptActiveError
from s3qbb.testing.faults import FaultInjector

pytestmark = pytest.mark.filterwarnings("ignore::s3qbb.butler.ProvenanceWarning")


class TaskError(Exception):
    """What a failing task raises."""


def _no_retries(env: ButlerEnv, identity: str = "admin") -> dict[str, object]:
    return env.config(identity, retry=RetryConfig(max_attempts=1))


def test_files_after_success(cache_env: ButlerEnv, tmp_path: Path) -> None:
    outs = [cache_env.refs.make(), cache_env.refs.make("NumpyArray"), cache_env.refs.make("Bytes")]
    unwritten = cache_env.refs.make()
    quantum = cache_env.quantum(outputs=[*outs, unwritten], label="writer")
    with cache_env.butler(quantum) as butler:
        butler.put({"a": 1}, outs[0])
        butler.put(np.arange(6.0), outs[1])
        butler.put(b"raw bytes", outs[2])
        expected = butler.extract_provenance_data()
    result = butler.finish()
    assert result.status == "succeeded"
    rec_key, prov_key, rep_key = cache_env.records_keys(quantum.id)
    assert {rec_key, prov_key, rep_key} <= set(cache_env.all_keys())
    assert [u.path for u in result.uris] == [rec_key, prov_key, rep_key]

    files = cache_env.records_files(quantum.id)
    rows = files.records_rows(tmp_path)
    assert set(rows) == {r.id for r in outs}
    for ref in outs:
        key = cache_env.backdoor.location(ref)
        assert key is not None
        row = rows[ref.id]
        assert f"{PREFIX}/{row['path']}" == key, "paths are relative to the datastore root"
        assert row["file_size"] == len(cache_env.read(key))
        assert row["checksum"], "s3qbb records real checksums"
        assert row["storage_class"] == ref.datasetType.storageClass.name

    provenance = files.provenance
    assert provenance == expected
    assert provenance.predicted_outputs == {r.id for r in [*outs, unwritten]}
    assert provenance.actual_outputs == {r.id for r in outs}
    assert provenance.predicted_inputs == frozenset()
    assert set(provenance.datastore_records["S3Datastore"].dataset_ids) == {r.id for r in outs}
    assert files.provenance_bytes == provenance.to_json()

    report = files.report
    assert report.status == "succeeded"
    assert report.error is None
    assert report.quantum_id == quantum.id
    assert report.task_label == "writer" and report.task_name == "tests.butler.writer"
    assert report.run == RUN
    assert report.datastores == {"S3Datastore": cache_env.root}
    assert report.datasets.actual_outputs == 3 and report.datasets.predicted_outputs == 4
    assert report.requests.get("PutObject", 0) >= 3
    assert report.bytes_written > 0


def test_report_counts_cache_hits_and_misses(cache_env: ButlerEnv) -> None:
    out = cache_env.refs.make()
    quantum = cache_env.quantum(outputs=[out], label="writer")
    with cache_env.butler(quantum) as butler:
        butler.put({"a": 1}, out)
        assert butler.get(out) == {"a": 1}
        assert butler.get(out) == {"a": 1}
    report = cache_env.records_files(quantum.id).report
    if cache_env.cache:
        # Write-through: both reads are served by the cache, and S3 sees no GetObject.
        assert (report.cache_hits, report.cache_misses) == (2, 0)
        assert "GetObject" not in report.requests
    else:
        assert (report.cache_hits, report.cache_misses) == (0, 0)
        assert report.requests["GetObject"] == 2


def test_records_file_opens_with_plain_sqlite(moto_env: ButlerEnv, tmp_path: Path) -> None:
    out = moto_env.refs.make()
    quantum = moto_env.quantum(outputs=[out])
    with moto_env.butler(quantum) as butler:
        butler.put({"s": 1}, out)
    path = tmp_path / "downloaded.sqlite3"
    path.write_bytes(moto_env.read(moto_env.records_keys(quantum.id)[0]))
    conn = sqlite3.connect(path)
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"file_datastore_records", "dataset_location"} <= tables
        located = conn.execute("SELECT datastore_name, dataset_id FROM dataset_location").fetchall()
        assert located == [("S3Datastore", out.id.hex)]
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        conn.close()


def test_task_failure_propagates_and_is_recorded(env: ButlerEnv) -> None:
    written, never = env.refs.make(), env.refs.make()
    quantum = env.quantum(outputs=[written, never], label="crashes")
    error = TaskError("the task fell over")
    with pytest.raises(TaskError) as info, env.butler(quantum) as butler:
        butler.put({"partial": True}, written)
        raise error
    assert info.value is error
    assert not getattr(error, "__notes__", None), "a successful upload adds nothing to the task's error"
    assert butler.finish().status == "failed"
    files = env.records_files(quantum.id)
    assert files.report.status == "failed"
    assert files.report.error is not None
    assert files.report.error.type.endswith("TaskError")
    assert "the task fell over" in files.report.error.message
    assert files.report.error.traceback_tail
    assert files.provenance.actual_outputs == {written.id}
    assert env.backdoor.has_artifact(written)


def test_upload_failure_after_task_failure_keeps_the_task_error_seaweedfs_reader(
    seaweedfs_env: ButlerEnv,
) -> None:
    """A read-only identity cannot upload; the task's own exception is what the caller sees."""
    quantum = seaweedfs_env.quantum(outputs=[seaweedfs_env.refs.make()])
    error = TaskError("task failed first")
    with (
        pytest.raises(TaskError) as info,
        seaweedfs_env.butler(quantum, config=_no_retries(seaweedfs_env, "reader")),
    ):
        raise error
    assert info.value is error
    notes = "\n".join(getattr(error, "__notes__", []))
    assert "uploading the records" in notes and str(quantum.id) in notes
    assert not any("/_records/" in k for k in seaweedfs_env.all_keys())


def test_upload_failure_alone_raises_records_upload_error_seaweedfs_reader(seaweedfs_env: ButlerEnv) -> None:
    quantum = seaweedfs_env.quantum(outputs=[seaweedfs_env.refs.make()])
    butler = seaweedfs_env.butler(quantum, config=_no_retries(seaweedfs_env, "reader"))
    with pytest.raises(RecordsUploadError) as info, butler:
        pass
    message = str(info.value)
    assert records_key(RUN, quantum.id) in message
    assert isinstance(info.value, OSError) and isinstance(info.value, S3qbbError)
    assert isinstance(info.value.__cause__, PermissionError)
    assert not any("/_records/" in k for k in seaweedfs_env.all_keys())


def test_upload_failure_after_task_failure_keeps_the_task_error_faults(env: ButlerEnv) -> None:
    out = env.refs.make()
    quantum = env.quantum(outputs=[out])
    error = TaskError("task failed, then storage did")
    butler = env.butler(quantum, config=_no_retries(env))
    injector: FaultInjector | None = None
    try:
        with pytest.raises(TaskError) as info, butler:
            butler.put({"ok": 1}, out)
            injector = FaultInjector(client_of(butler), {"PutObject": ["internal"] * 10})
            raise error
    finally:
        if injector is not None:
            injector.detach()
    assert info.value is error
    assert any("uploading the records" in n for n in getattr(error, "__notes__", []))
    assert injector is not None and injector.injected_by_operation["PutObject"] >= 1
    assert env.backdoor.has_artifact(out), "outputs written before the failure are intact"
    assert not any("/_records/" in k for k in env.all_keys())


def test_upload_failure_alone_raises_records_upload_error_faults(env: ButlerEnv) -> None:
    out = env.refs.make()
    quantum = env.quantum(outputs=[out])
    butler = env.butler(quantum, config=_no_retries(env))
    butler.put({"ok": 1}, out)
    with FaultInjector(client_of(butler), {"PutObject": ["internal"] * 10}) as injector:
        with pytest.raises(RecordsUploadError) as info:
            butler.finish()
        assert injector.injected_by_operation["PutObject"] == 1
    message = str(info.value)
    assert records_key(RUN, quantum.id) in message
    assert str(quantum.id) in message
    assert env.backdoor.has_artifact(out)


def test_filename_is_the_uploaded_records_file(env: ButlerEnv, tmp_path: Path) -> None:
    filename = tmp_path / "quantum-records.sqlite3"
    outs = [env.refs.make(), env.refs.make()]
    quantum = env.quantum(outputs=outs)
    with env.butler(quantum, filename=str(filename)) as butler:
        for i, ref in enumerate(outs):
            butler.put({"i": i}, ref)
    assert filename.is_file()
    uploaded = env.read(env.records_keys(quantum.id)[0])
    assert filename.read_bytes() == uploaded
    conn = sqlite3.connect(filename)
    try:
        ids = {uuid.UUID(row[0]) for row in conn.execute("SELECT dataset_id FROM file_datastore_records")}
    finally:
        conn.close()
    assert ids == {r.id for r in outs}


def test_run_override_and_report_warnings(moto_env: ButlerEnv) -> None:
    upstream = moto_env.refs.make()
    with moto_env.butler(moto_env.quantum(outputs=[upstream], label="up")) as producer:
        producer.put({"u": 1}, upstream)
    records = producer.extract_provenance_data().datastore_record_data()
    out = moto_env.refs.make()
    quantum = moto_env.quantum(inputs=[upstream], outputs=[out], records=records)
    with moto_env.butler(quantum, run="elsewhere/run2") as butler:
        butler.put({"o": 1}, out)  # inputs never checked: a provenance warning
    files = moto_env.records_files(quantum.id, run="elsewhere/run2")
    assert files.report.run == "elsewhere/run2"
    assert any("did not check" in w for w in files.report.warnings)
    assert files.provenance.actual_outputs == {out.id}


def test_outputs_in_several_runs_without_run_are_not_uploaded(moto_env: ButlerEnv) -> None:
    a, b = moto_env.refs.make(run="run_a"), moto_env.refs.make(run="run_b")
    with moto_env.butler(moto_env.quantum(outputs=[a, b])) as butler:
        butler.put({"a": 1}, a)
        butler.put({"b": 1}, b)
    assert butler.finish().status == "skipped"
    assert not any("/_records/" in k for k in moto_env.all_keys())


def test_second_attempt_of_a_quantum_does_not_overwrite_the_first_files(moto_env: ButlerEnv) -> None:
    first_out, second_out = moto_env.refs.make(), moto_env.refs.make()
    quantum = moto_env.quantum(outputs=[first_out])
    with moto_env.butler(quantum) as butler:
        butler.put({"attempt": 1}, first_out)
    before = moto_env.read(moto_env.records_keys(quantum.id)[1])
    retry = Quantum(taskLabel="task", outputs=[second_out], id=quantum.id)
    with pytest.raises(RecordsUploadError, match=str(quantum.id)), moto_env.butler(retry) as again:
        again.put({"attempt": 2}, second_out)
    after = moto_env.read(moto_env.records_keys(quantum.id)[1])
    assert after == before
    assert QuantumProvenanceData.from_json(after).actual_outputs == {first_out.id}


def test_no_secret_reaches_the_uploaded_files(seaweedfs_env: ButlerEnv) -> None:
    secret = seaweedfs_env.endpoint.config.secret_access_key
    assert secret is not None
    plain = secret.get_secret_value()
    out = seaweedfs_env.refs.make()
    quantum = seaweedfs_env.quantum(outputs=[out])
    with pytest.raises(TaskError), seaweedfs_env.butler(quantum) as butler:
        butler.put({"o": 1}, out)
        raise TaskError(f"cannot connect with aws_secret_access_key={plain}")
    files = [seaweedfs_env.read(key) for key in seaweedfs_env.records_keys(quantum.id)]
    assert all(plain.encode() not in data for data in files)
    report = seaweedfs_env.records_files(quantum.id).report
    assert report.error is not None and "aws_secret_access_key=***" in report.error.message


def test_upload_error_message_has_no_secret(seaweedfs_env: ButlerEnv) -> None:
    reader = seaweedfs_env.endpoint.config_for("reader").secret_access_key
    assert reader is not None
    quantum = seaweedfs_env.quantum(outputs=[seaweedfs_env.refs.make()])
    with pytest.raises(RecordsUploadError) as info:
        seaweedfs_env.butler(quantum, config=_no_retries(seaweedfs_env, "reader")).finish()
    text = "\n".join([str(info.value), *getattr(info.value, "__notes__", []), str(info.value.__cause__)])
    assert reader.get_secret_value() not in text


def test_every_object_of_a_quantum_carries_its_attempt_token(cache_env: ButlerEnv) -> None:
    out = cache_env.refs.make()
    quantum = cache_env.quantum(outputs=[out])
    token = WriteToken.new(quantum.id)
    with cache_env.butler(quantum, write_token=token) as butler:
        butler.put({"a": 1}, out)
    keys = cache_env.all_keys()
    assert len(keys) == 4  # the output and the three _records files
    for key in keys:
        head = cache_env.endpoint.client.head_object(Bucket=cache_env.endpoint.bucket, Key=key)
        assert head["Metadata"][WRITE_TOKEN] == str(token), key


def test_files_of_another_quantum_are_never_replaced(moto_env: ButlerEnv) -> None:
    out = moto_env.refs.make()
    quantum = moto_env.quantum(outputs=[out])
    with moto_env.butler(quantum) as butler:
        butler.put({"attempt": 1}, out)
    before = [moto_env.read(key) for key in moto_env.records_keys(quantum.id)]
    other = moto_env.quantum(outputs=[moto_env.refs.make()])
    impostor = moto_env.butler(other, replace_success=True)
    impostor._info.quantum_id = quantum.id  # its files land at the first quantum's names
    with pytest.raises(RecordsUploadError, match=str(quantum.id)):
        impostor.finish()
    assert [moto_env.read(key) for key in moto_env.records_keys(quantum.id)] == before


def test_an_attempt_without_lease_never_replaces_outputs_of_a_successful_one(env: ButlerEnv) -> None:
    """A butler used outside ``run-quantum`` (no lease): the quantum's report decides, before any write."""
    out = env.refs.make()
    quantum = env.quantum(outputs=[out])
    with env.butler(quantum) as butler:
        butler.put({"attempt": 1}, out)
    before = {k: env.read(k) for k in env.all_keys() if "/_records/" not in k}
    records_before = env.read(env.records_keys(quantum.id)[1])

    # The same quantum again (a retry after the upload, say): its put fails before replacing anything,
    # and its own files cannot replace those of the success either.
    with pytest.raises(RecordsUploadError), env.butler(quantum) as again:
        with pytest.raises(DatasetExistsError, match=r"report .* says it succeeded") as caught:
            again.put({"attempt": 2}, out)
        assert isinstance(caught.value.__cause__, AttemptActiveError)
    assert {k: env.read(k) for k in env.all_keys() if "/_records/" not in k} == before  # untouched
    assert env.read(env.records_keys(quantum.id)[1]) == records_before

    with env.butler(quantum, replace_success=True) as rerun:  # a re-run on purpose replaces it all
        rerun.put({"attempt": 3}, out)
    records = QuantumProvenanceData.from_json(env.read(env.records_keys(quantum.id)[1]))
    downstream = env.quantum(inputs=[out], outputs=[env.refs.make()], records=records.datastore_record_data())
    with env.butler(downstream) as reader:
        assert reader.get(out) == {"attempt": 3}  # checksum verified against the new records
