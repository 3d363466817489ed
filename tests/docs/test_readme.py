"""The README's Python example runs as written, against a moto server standing in for S3."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from s3qbb.s3.client import clear_client_cache
from s3qbb.testing.servers import MotoServer

README = Path(__file__).resolve().parents[2] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def test_readme_opens_with_the_two_commands() -> None:
    first = re.search(r"^```\w*\n(.*?)^```", README.read_text(), flags=re.S | re.M)
    assert first is not None and first.group(1).split("\n")[:2] == ["make demo", "make test"]


def test_readme_python_example_runs(
    moto_server: MotoServer, s3_env_scrubber: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = _python_blocks()
    assert blocks, "the README shows the Python API"
    endpoint = moto_server.endpoint()
    endpoint.client.create_bucket(Bucket="my-bucket")
    monkeypatch.setenv("S3QBB_S3_ENDPOINT_URL", moto_server.endpoint_url)
    clear_client_cache()
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    keys = {o["Key"] for o in endpoint.client.list_objects_v2(Bucket="my-bucket")["Contents"]}
    assert any(k.startswith("repo/run1/calexp/") and k.endswith(".npy") for k in keys)
    suffixes = sorted(k.rsplit("/", 1)[1].split(".", 1)[1] for k in keys if "/_records/" in k)
    assert suffixes == ["provenance.json", "quantum.json", "sqlite3"]
