"""``s3qbb run --executor dask``: the graph on a two-process LocalCluster, skipping quanta that succeeded."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml
from graph_helpers import EXPECTED_SUMMARY, TESTS_DIR, make_job, read_dataset

from s3qbb.cli.main import main
from s3qbb.testing.servers import S3TestEndpoint

if TYPE_CHECKING:
    from distributed import Client

pytestmark = pytest.mark.moto_server


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Client]:
    distributed = pytest.importorskip("distributed")
    warnings.filterwarnings("ignore", message="Port 8787 is already in use", category=UserWarning)
    saved = os.environ.get("PYTHONPATH")
    # The workers import graph_tasks from this directory.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS_DIR), saved]))
    try:
        with (
            distributed.LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1"
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            yield client
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


def test_dask_executor_runs_the_graph_and_skips_what_succeeded(
    moto_endpoint: S3TestEndpoint,
    dask_client: Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    job = make_job(moto_endpoint, tmp_path)
    secret = moto_endpoint.config.secret_access_key
    assert secret is not None
    config = tmp_path / "butler.yaml"  # credentials in the file: the workers have no environment for them
    config.write_text(
        yaml.safe_dump(
            {
                "datastore": {
                    "root": f"s3://{moto_endpoint.bucket}/repo",
                    "endpoint": {
                        "endpoint_url": moto_endpoint.endpoint_url,
                        "region": "us-east-1",
                        "addressing_style": "path",
                        "access_key_id": moto_endpoint.config.access_key_id,
                        "secret_access_key": secret.get_secret_value(),
                    },
                },
                "cache": {"enabled": False},
            }
        )
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint.endpoint_url)
    # The first quantum ran earlier, as a batch job: the Dask run reads its records from its provenance.
    assert main(["run-quantum", "--graph", job.graph_uri, "--index", "0", "--config", str(config)]) == 0
    scheduler = dask_client.scheduler.address  # type: ignore[union-attr]
    args = [
        "run",
        "--graph",
        job.graph_uri,
        "--config",
        str(config),
        "--executor",
        "dask",
        "--scheduler",
        scheduler,
    ]
    capsys.readouterr()
    assert main([*args, "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["counts"] == {"already succeeded": 1, "succeeded": len(job.graph) - 1}
    assert read_dataset(job, job.summary)["sum"] == EXPECTED_SUMMARY
    assert main([*args, "--json"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["counts"] == {"already succeeded": len(job.graph)}
    assert main(["run", "--graph", job.graph_uri, "--config", str(config), "--executor", "dask"]) == 2
