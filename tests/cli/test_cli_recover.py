"""``s3qbb ingest --recover``: a quantum killed by SIGKILL after writing some outputs, recorded afterwards."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from cli_helpers import PREFIX, RUN, CliJob, make_ref, object_keys, write_quantum

from s3qbb.cli.main import main
from s3qbb.core import DatasetRef, Quantum
from s3qbb.registry import Registry


def make_killed_quantum(job: CliJob, quanta_dir: Path) -> tuple[Quantum, list[DatasetRef]]:
    """Run a quantum whose process is SIGKILLed after writing all outputs but the last.

    Returns the quantum (three outputs predicted) and the outputs it wrote;
    its description is in ``quanta_dir/<id>.json``.
    """
    outputs = [make_ref("killed", d) for d in (1, 2, 3)]
    quantum = Quantum(taskLabel="killed", taskName="cli_tasks.write_some_then_die", outputs=outputs)
    path = write_quantum(quanta_dir / f"{quantum.id}.json", quantum)
    proc = job.run("run-quantum", path, "--task", "cli_tasks:write_some_then_die", "--config", job.config)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr)
    assert [
        k for k in object_keys(job.endpoint) if "/_records/" in k and "/_records/_attempts/" not in k
    ] == []  # nothing left to ingest
    return quantum, outputs[:-1]


def test_ingest_recover_records_the_killed_quantum_once(cli_job: CliJob) -> None:
    quanta_dir = cli_job.workdir / "quanta"
    quantum, written = make_killed_quantum(cli_job, quanta_dir)
    (missing,) = set(quantum.output_refs()) - set(written)
    db = cli_job.workdir / "reg.sqlite3"
    run_uri = f"s3://{cli_job.endpoint.bucket}/{PREFIX}/{RUN}/"

    # Without --recover the run holds nothing to ingest.
    empty = cli_job.run("ingest", run_uri, "--registry", f"sqlite:///{db}", "--no-progress")
    assert empty.returncode == 0, empty.stderr
    assert "Nothing new: no per-quantum files were found under this prefix." in empty.stdout

    first = cli_job.run(
        "ingest", run_uri, "--registry", f"sqlite:///{db}", "--recover", quanta_dir,
        "--config", cli_job.config, "--no-progress",
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert (
        "recovered 1 quantum(s) that left no usable records (2 outputs found, 1 missing); 0 had intact "
        "records of their last attempt" in first.stderr
    )
    assert " 1 quanta added, 0 already present, 3 datasets, 2 records" in first.stdout

    with Registry.from_url(db, create=False) as registry:
        row = registry.quantum(quantum.id)
        assert row is not None
        assert (row.status, row.task_label, row.run) == ("recovered", "killed", RUN)
        assert set(row.datasets["actual_output"]) == {r.id for r in written}
        assert set(row.datasets["predicted_output"]) == {r.id for r in quantum.output_refs()}
        stored = {r.id for r in registry.datasets(run=RUN, stored=True)}
        assert stored == {r.id for r in written}
        assert [r.id for r in registry.datasets(run=RUN, stored=False)] == [missing.id]
        tree = registry.provenance(written[0].id)
        assert tree.producer is not None and tree.producer.status == "recovered"
        assert tree.dataset.records[0].path.endswith(f"{written[0].id}.json")
        # The adopted record carries the size and checksum the killed job's put wrote into the metadata.
        record = tree.dataset.records[0]
        assert record.file_size is not None and record.file_size > 0
        assert record.checksum is not None and record.checksum.startswith("CRC32C:")

    # A second run, with the descriptions on S3 this time, skips the quantum: its report exists now.
    for path in quanta_dir.glob("*.json"):
        cli_job.endpoint.client.put_object(
            Bucket=cli_job.endpoint.bucket, Key=f"quanta/killed/{path.name}", Body=path.read_bytes()
        )
    second = cli_job.run(
        "ingest", run_uri, "--registry", f"sqlite:///{db}", "--recover",
        f"s3://{cli_job.endpoint.bucket}/quanta/killed", "--config", cli_job.config_uri, "--no-progress",
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert (
        "recovered 0 quantum(s) that left no usable records (0 outputs found, 0 missing); 1 had intact "
        "records of their last attempt" in second.stderr
    )
    assert "Nothing new: all 1 quanta listed were already in the registry." in second.stdout
    with Registry.from_url(db, create=False) as registry:
        assert registry.counts()["quantum"] == 1


def test_recover_needs_config_and_descriptions(
    cli_job: CliJob, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_uri = f"s3://{cli_job.endpoint.bucket}/{PREFIX}/{RUN}/"
    url = f"sqlite:///{tmp_path / 'reg.sqlite3'}"
    assert main(["ingest", run_uri, "--registry", url, "--recover", str(tmp_path)]) == 2
    assert "--recover needs --config" in capsys.readouterr().err

    empty = tmp_path / "no-quanta"
    empty.mkdir()
    args = ["ingest", run_uri, "--registry", url, "--recover", str(empty), "--config", str(cli_job.config)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("s3qbb ingest: ") and "No quantum descriptions (*.json) found" in err

    (empty / "broken.json").write_text("{}")
    assert main(args) == 2
    assert "broken.json is invalid" in capsys.readouterr().err
