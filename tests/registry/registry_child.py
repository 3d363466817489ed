"""Body of the child processes of the multi-process registry tests (kept light: spawned 32 times)."""

from __future__ import annotations

import os
import traceback
from typing import Any


def ingest_in_child(
    url: str, namespace: str, uri: str, config: dict[str, Any], barrier: Any, results: Any
) -> None:
    """Open the registry (racing on its creation), wait for every sibling, ingest one run, report."""
    try:
        from s3qbb.config import S3EndpointConfig
        from s3qbb.registry import Registry

        endpoint = S3EndpointConfig(**config)
        barrier.wait(timeout=300)
        with Registry.from_url(url, namespace=namespace) as registry:
            summary = registry.ingest_run(uri, config=endpoint, workers=2, batch_size=2)
            results.put((os.getpid(), summary.to_dict(), registry.retry_stats.retries, None))
    except BaseException:
        results.put((os.getpid(), None, 0, traceback.format_exc()))
