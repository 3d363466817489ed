"""Datastore records of a quantum's inputs, read from the provenance files of the quanta that produced them.

A quantum graph holds no records for datasets produced inside it: they do
not exist when the graph is built. When a job starts, it reads the
provenance file (``<run>/_records/<qid>.provenance.json``) of each quantum
producing its inputs, one GET per upstream quantum, in parallel, and hands
the records of its inputs to the butler. A missing file means the upstream
quantum has not finished (`UpstreamNotDoneError`); a file without a record
for an input means it did not write it (`UpstreamFailedError`). With
``trust_mode: true`` in the datastore configuration, both only log a warning
and the inputs are read from their templated locations instead.
"""

from __future__ import annotations

__all__ = [
    "UpstreamFailedError",
    "UpstreamNotDoneError",
    "repo_bucket",
    "upstream_records",
    "with_upstream_records",
]

import logging
import uuid
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from ..errors import ConfigError, DatasetNotFoundError, S3qbbError

if TYPE_CHECKING:
    from ..core.quantum import Quantum
    from ..core.records import DatastoreRecordData
    from ..repo import RepoConfig
    from ..s3.objects import S3Bucket
    from .graph import QuantumGraph

_LOG = logging.getLogger(__name__)

MAX_PARALLEL_GETS = 16
"""Upper bound on concurrent provenance GETs of one job."""


class UpstreamNotDoneError(S3qbbError, LookupError):
    """A quantum producing an input has left no provenance file: it has not run or has not finished.

    Run the upstream stage first (or wait for it); ``s3qbb graph status`` shows
    which quanta have run.
    """


class UpstreamFailedError(S3qbbError, LookupError):
    """A quantum producing an input ran but left no record of that input (it failed or skipped it)."""


def repo_bucket(repo: RepoConfig) -> tuple[S3Bucket, str]:
    """Return the bucket of an S3 repository and the key prefix of its root (``""`` or ending in ``/``).

    Raises
    ------
    ConfigError
        If the repository's datastore is not on S3.
    """
    from ..s3.config_files import split_s3_uri
    from ..s3.objects import S3Bucket

    root = repo.datastore.root
    if repo.datastore.cls != "s3" or not root:
        raise ConfigError(
            f"The repository ({repo.source or 'given'}) has no S3 datastore root; graph jobs need one."
        )
    bucket_name, _, prefix = root.removeprefix("s3://").partition("/")
    if not prefix:
        split_s3_uri(f"{root.rstrip('/')}/x")  # validates the bucket part
    config = repo.datastore.endpoint_config()
    bucket = S3Bucket.open(config, bucket_name)
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


def upstream_records(
    graph: QuantumGraph, index: int, repo: RepoConfig, *, only: Collection[int] | None = None
) -> dict[str, DatastoreRecordData]:
    """Return the datastore records of the inputs of quantum ``index`` produced by other quanta of the graph.

    Parameters
    ----------
    graph : `~s3qbb.batch.graph.QuantumGraph`
        The graph.
    index : `int`
        The quantum's index in the graph.
    repo : `~s3qbb.repo.RepoConfig`
        The repository (its root locates the provenance files).
    only : `~collections.abc.Collection` [`int`], optional
        Read only these upstream quanta (indices); all of them by default.

    Returns
    -------
    records : `dict` [`str`, `~s3qbb.core.records.DatastoreRecordData`]
        By datastore name; only records of this quantum's inputs.

    Raises
    ------
    UpstreamNotDoneError
        If an upstream quantum has no provenance file (outside trust mode).
    UpstreamFailedError
        If an upstream provenance file has no record for an input (outside trust mode).
    """
    from ..core.records import DatastoreRecordData
    from ..provenance.files import provenance_key
    from ..provenance.model import QuantumProvenanceData

    node = graph.nodes[index]
    upstream_indices = [u for u in node.upstream if only is None or u in only]
    if not upstream_indices:
        return {}
    quantum = graph[index]
    wanted = {ref.id for ref in quantum.input_refs()}
    trust = repo.datastore.trust_mode
    bucket, prefix = repo_bucket(repo)

    def fetch(up: int) -> tuple[int, QuantumProvenanceData | None, str]:
        upstream = graph.nodes[up]
        if upstream.run is None:
            raise ConfigError(
                f"Upstream quantum {upstream.id} ({upstream.label}) of quantum {node.id} writes to several "
                "runs or none, so its provenance file cannot be located."
            )
        key = f"{prefix}{provenance_key(upstream.run, upstream.id)}"
        try:
            body = bucket.get(key).body
        except DatasetNotFoundError:
            return up, None, bucket.uri(key)
        return up, QuantumProvenanceData.from_json(body, source=bucket.uri(key)), bucket.uri(key)

    workers = min(MAX_PARALLEL_GETS, len(upstream_indices))
    with ThreadPoolExecutor(workers, thread_name_prefix="s3qbb-upstream") as pool:
        fetched = list(pool.map(fetch, upstream_indices))
    merged: dict[str, DatastoreRecordData] = {}
    for up, provenance, uri in fetched:
        upstream = graph.nodes[up]
        if provenance is None:
            message = (
                f"Quantum {node.id} ({node.label}) needs outputs of quantum {upstream.id} "
                f"({upstream.label}), which has not finished: {uri} does not exist. "
                f"Run stage {upstream.level} first ('s3qbb graph status' shows what has run)."
            )
            if not trust:
                raise UpstreamNotDoneError(message)
            _LOG.warning("%s Reading its outputs by location (trust mode).", message)
            continue
        needed = wanted & set(provenance.predicted_outputs)
        found: set[uuid.UUID] = set()
        for name, data in provenance.datastore_record_data().items():
            subset = data.subset(needed)
            if subset is not None:
                merged.setdefault(name, DatastoreRecordData({})).update(subset)
                found |= subset.dataset_ids
        if needed - found:
            message = (
                f"Quantum {node.id} ({node.label}) needs {len(needed - found)} dataset(s) that upstream "
                f"quantum {upstream.id} ({upstream.label}) did not write, e.g. {sorted(needed - found)[0]} "
                f"(its provenance {uri} has no record of them): that quantum failed or skipped them."
            )
            if not trust:
                raise UpstreamFailedError(message)
            _LOG.warning("%s Reading them by location (trust mode).", message)
    _LOG.info(
        "Read the records of %d input(s) of quantum %s from %d upstream provenance file(s).",
        sum(len(d.dataset_ids) for d in merged.values()),
        node.id,
        len(fetched),
    )
    return merged


def with_upstream_records(
    graph: QuantumGraph, index: int, repo: RepoConfig, *, only: Collection[int] | None = None
) -> Quantum:
    """Return quantum ``index`` of the graph with its upstream inputs' records (see `upstream_records`)."""
    return graph[index].with_datastore_records(upstream_records(graph, index, repo, only=only))
