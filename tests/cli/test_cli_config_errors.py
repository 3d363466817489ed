"""Configuration errors a job meets are reported before its task runs, naming the setting (exit 2)."""

from __future__ import annotations

import yaml
from cli_helpers import CliJob, make_ref, plain_config, write_quantum

from s3qbb import Quantum

_TASK = """
def write(butler, quantum):
    print("TASK RAN")
    for ref in quantum.output_refs():
        butler.put({"x": 1}, ref)
"""


def _run_with(cli_job: CliJob, datastore: dict[str, object]) -> tuple[int, str]:
    config = plain_config(cli_job.endpoint)
    config["datastore"].update(datastore)
    (cli_job.workdir / "bad.yaml").write_text(yaml.safe_dump(config))
    (cli_job.workdir / "cfgtask.py").write_text(_TASK)
    quantum = Quantum(taskLabel="write", outputs=[make_ref("out", 1)])
    write_quantum(cli_job.workdir / "q.json", quantum)
    done = cli_job.run("run-quantum", "q.json", "--task", "cfgtask:write", "--config", "bad.yaml")
    return done.returncode, done.stdout + done.stderr


def test_misspelt_formatter_is_a_setup_error(cli_job: CliJob) -> None:
    """A formatter override naming no formatter fails when the butler is built: exit 2, nothing run."""
    code, said = _run_with(cli_job, {"formatters": {"StructuredDataDict": "jsn"}})
    assert code == 2, said
    assert "TASK RAN" not in said
    assert "datastore.formatters" in said and "'jsn'" in said and "known formatters" in said, said
    assert "Cannot tell whether" not in said, said  # a set-up error, not a question about earlier attempts


def test_root_with_a_doubled_slash_is_refused_before_anything_is_written(cli_job: CliJob) -> None:
    """'s3://bucket//repo' used to become 's3://bucket/repo' silently."""
    root = f"s3://{cli_job.endpoint.bucket}//repo"
    code, said = _run_with(cli_job, {"root": root})
    assert code == 2, said
    assert "TASK RAN" not in said and "empty" in said, said
    listed = cli_job.endpoint.client.list_objects_v2(Bucket=cli_job.endpoint.bucket, Prefix="repo/run")
    assert listed.get("KeyCount", 0) == 0
