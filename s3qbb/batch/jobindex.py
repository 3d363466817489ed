"""Which quantum of a graph a batch job runs: ``--index``, ``--quantum``, or its batch system's array index.

Batch systems tell each element of an array job its index in an environment
variable; `INDEX_VARIABLES` lists those s3qbb reads, in the order it looks
for them. With ``--stage S`` the index counts within stage ``S`` of the
graph (one array job per stage); without it, in the whole graph's order.
"""

from __future__ import annotations

__all__ = ["INDEX_VARIABLES", "JobIndexError", "graph_job", "index_from_environment", "select_index"]

import logging
import os
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..core.dimensions import DimensionUniverse
    from ..core.quantum import Quantum
    from ..repo import RepoConfig
    from .graph import QuantumGraph

_LOG = logging.getLogger(__name__)

INDEX_VARIABLES: tuple[tuple[str, str], ...] = (
    ("AWS_BATCH_JOB_ARRAY_INDEX", "AWS Batch array job"),
    ("JOB_COMPLETION_INDEX", "Kubernetes Indexed Job"),
    ("SLURM_ARRAY_TASK_ID", "Slurm job array"),
    ("PBS_ARRAY_INDEX", "PBS Pro job array"),
)
"""Environment variables holding an array job's index, and the batch system setting each."""


class JobIndexError(ConfigError):
    """The job cannot tell which quantum to run (no index, or one out of range): a usage error."""


def index_from_environment(environ: Mapping[str, str] | None = None) -> tuple[int, str]:
    """Return the array index from the first variable of `INDEX_VARIABLES` that is set, and its name.

    Raises
    ------
    JobIndexError
        If none is set, or the value is not a non-negative integer.
    """
    environ = os.environ if environ is None else environ
    for name, system in INDEX_VARIABLES:
        value = environ.get(name)
        if value is None or value == "":
            continue
        try:
            index = int(value)
        except ValueError:
            index = -1
        if index < 0:
            raise JobIndexError(f"{name}={value!r} (set by the {system}) is not a non-negative integer.")
        return index, name
    names = ", ".join(name for name, _ in INDEX_VARIABLES)
    raise JobIndexError(
        f"No quantum selected: give --index N or --quantum UUID, or run as an array job "
        f"setting one of {names}."
    )


def select_index(
    graph: QuantumGraph,
    *,
    index: int | None = None,
    quantum_id: uuid.UUID | str | None = None,
    stage: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Return the index, in the graph's order, of the quantum a job must run.

    Parameters
    ----------
    graph : `~s3qbb.batch.graph.QuantumGraph`
        The graph.
    index : `int`, optional
        Explicit index (``--index``); counts within ``stage`` if given.
    quantum_id : `uuid.UUID` or `str`, optional
        Explicit quantum ID (``--quantum``); excludes ``index`` and ``stage``.
    stage : `int`, optional
        Count the index within this stage (dependency level) of the graph.
    environ : `~collections.abc.Mapping`, optional
        Environment to read the array index from when neither ``index`` nor
        ``quantum_id`` is given; `os.environ` by default.

    Raises
    ------
    JobIndexError
        If no quantum is selected, the index is out of range, or the quantum
        ID is not in the graph.
    """
    if quantum_id is not None:
        if index is not None or stage is not None:
            raise JobIndexError("Give either --quantum or --index/--stage, not both.")
        try:
            return graph.index_of(quantum_id)
        except (KeyError, ValueError) as err:
            raise JobIndexError(str(err.args[0] if err.args else err)) from None
    source = "--index"
    if index is None:
        index, source = index_from_environment(environ)
        _LOG.info("Quantum index %d from %s.", index, source)
    base, size, where = 0, len(graph), f"graph {graph.source} ({len(graph)} quanta)"
    if stage is not None:
        try:
            indices = graph.stage_range(stage)
        except IndexError as err:
            raise JobIndexError(str(err)) from None
        base, size, where = (
            indices.start,
            len(indices),
            f"stage {stage} of graph {graph.source} ({len(indices)} quanta)",
        )
    if not 0 <= index < size:
        raise JobIndexError(
            f"Index {index} (from {source}) is out of range for {where}: valid are 0 to {size - 1}."
        )
    return base + index


def graph_job(
    graph_uri: str,
    repo: RepoConfig,
    *,
    index: int | None = None,
    quantum_id: uuid.UUID | str | None = None,
    stage: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[Quantum, str, DimensionUniverse]:
    """Load a graph; return the selected quantum (with its upstream inputs' records), its task and universe.

    Range GETs for the graph's header and the selected quantum
    (`QuantumGraph.open`), one GET per upstream quantum (in parallel, see
    `~s3qbb.batch.upstream.upstream_records`); only the selected quantum is
    read, validated and decoded.

    Raises
    ------
    JobIndexError
        If no quantum is selected or the selection is out of range (a usage error).
    GraphError
        If the graph is invalid.
    UpstreamNotDoneError, UpstreamFailedError
        If an input's producer has not finished or did not write it.
    """
    from .graph import QuantumGraph
    from .upstream import with_upstream_records

    graph = QuantumGraph.open(graph_uri, config=repo.datastore.endpoint_config())
    selected = select_index(graph, index=index, quantum_id=quantum_id, stage=stage, environ=environ)
    node = graph.nodes[selected]
    _LOG.info(
        "Graph %s: quantum %d of %d, %s (%s, stage %d).",
        graph_uri,
        selected,
        len(graph),
        node.id,
        node.label,
        node.level,
    )
    return with_upstream_records(graph, selected, repo), graph.task_of(selected), graph.universe()
