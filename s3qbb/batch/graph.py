"""`QuantumGraph`: the quanta of a pipeline, the task of each label and the edges between quanta, in one file.

A quantum depends on the quanta producing its inputs (matched by dataset ID).
The graph orders its quanta *level by level*: level 0 holds the quanta that
depend on no other quantum of the graph, level ``k`` those whose producers
are all on lower levels. Within a level, quanta are sorted by task label,
data ID and quantum ID. That order is deterministic (the same quanta always
give the same order, whatever order they were given in), it is a
topological order, and it is what ``s3qbb run-quantum --graph G --index N``
counts in; each level is a contiguous range of indices, which is what a
per-stage array job (``--stage``) counts in.

The file (`s3qbb.batch.graphfile`) holds a small header (the tasks and one
entry per quantum: ID, label, level, run, producers, byte offset) and one
line of ``SerializedQuantum`` JSON per quantum. `QuantumGraph.load` reads
it whole and validates the header only (milliseconds for 10,000 quanta);
each quantum is validated and decoded when first asked for.
`QuantumGraph.open`, what a batch job uses, reads the header with range
reads and fetches only the quanta it is asked for.
"""

from __future__ import annotations

__all__ = [
    "GRAPH_FORMAT",
    "GRAPH_VERSION",
    "GraphError",
    "GraphNode",
    "QuantumGraph",
]

import graphlib
import json
import os
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from ..core.wire import SerializedDimensionUniverse, SerializedQuantum
from ..errors import ConfigError

if TYPE_CHECKING:
    from ..config import S3EndpointConfig
    from ..core.dimensions import DimensionUniverse
    from ..core.quantum import Quantum
    from .graphfile import GraphParts

GRAPH_FORMAT = "s3qbb-quantum-graph"
"""Value of the header's ``format`` field."""
GRAPH_VERSION = 1
"""Version of the graph file written by this release; readers refuse newer versions."""

_TASK_RE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


class GraphError(ConfigError):
    """An invalid quantum graph: a cycle, a dataset with two producers, a quantum without a task, a bad file.

    A `~s3qbb.errors.ConfigError` (hence a `ValueError`): a job given such a
    graph exits with the usage/configuration code and should not be retried.
    """


def _check_task_spec(label: str, spec: str) -> None:
    if not isinstance(spec, str) or not _TASK_RE.match(spec):
        raise GraphError(f"Task of label {label!r} is {spec!r}; it must look like 'package.module:function'.")


@dataclass(frozen=True, slots=True)
class GraphNode:
    """What the graph knows of a quantum without decoding it."""

    index: int
    """Position in the graph's order (what ``--index`` counts)."""
    id: uuid.UUID
    """Quantum ID."""
    label: str
    """Task label."""
    level: int
    """Dependency level (stage): 0 for quanta that depend on no quantum of the graph."""
    run: str | None
    """Run of the quantum's outputs (where its ``_records`` files go); `None` if none or several."""
    upstream: tuple[int, ...]
    """Indices of the quanta producing its inputs (all on lower levels)."""


def _sort_key(q: Quantum, level: int) -> tuple[int, str, str, str]:
    data_id = json.dumps(q.dataId.to_simple(), sort_keys=True, default=str) if q.dataId is not None else ""
    return (level, q.taskLabel or "", data_id, str(q.id))


class QuantumGraph:
    """The quanta of a pipeline, their tasks and their dependencies; saved to and loaded from a file or S3.

    Build one with `from_quanta`, `save` it, and `load` it in each job. Use
    ``len(graph)``, ``graph[i]`` (a `~s3qbb.core.quantum.Quantum`, by
    index in the graph's order), ``graph.quantum(qid)``, iteration (quanta in
    that order), `nodes` (without decoding any quantum), `levels` and `task_of`.

    Raises
    ------
    GraphError
        From the constructors when the graph is invalid.
    """

    def __init__(
        self,
        nodes: Sequence[GraphNode],
        tasks: Mapping[str, str],
        payloads: Sequence[bytes],
        universe: SerializedDimensionUniverse | None = None,
        *,
        source: str = "<memory>",
        decoded: Mapping[int, Quantum] | None = None,
    ) -> None:
        if len(nodes) != len(payloads):
            raise GraphError(
                f"Quantum graph {source} lists {len(nodes)} quanta in its header but holds {len(payloads)}; "
                "the file is truncated or corrupt: write it again."
            )
        self._nodes = tuple(nodes)
        self._tasks = dict(tasks)
        self._payloads = payloads
        self._universe = universe
        self._universe_obj: DimensionUniverse | None = None
        self._source = source
        self._decoded: dict[int, Quantum] = dict(decoded or {})
        self._by_id: dict[uuid.UUID, int] = {}
        for node in self._nodes:
            if node.label not in self._tasks:
                raise GraphError(
                    f"Quantum {node.id} of graph {source} has task label {node.label!r}, which has no task; "
                    f"the graph's tasks are {sorted(self._tasks)}."
                )
            if self._by_id.setdefault(node.id, node.index) != node.index:
                raise GraphError(f"Quantum {node.id} appears twice in graph {source}.")
            if any(not 0 <= u < node.index or self._nodes[u].level >= node.level for u in node.upstream):
                raise GraphError(
                    f"Quantum {node.id} of graph {source} depends on a quantum that is not on a lower level "
                    "(a cycle or a corrupt file): build the graph again with QuantumGraph.from_quanta."
                )

    # ------------------------------------------------------------------ building

    @classmethod
    def from_quanta(cls, quanta: Iterable[Quantum], tasks: Mapping[str, str]) -> QuantumGraph:
        """Build a graph from quanta and the task of each label.

        Parameters
        ----------
        quanta : `~collections.abc.Iterable` [`~s3qbb.core.quantum.Quantum`]
            The quanta, in any order. Each must have a ``taskLabel``. Inputs
            produced by no quantum of the graph must already be stored (their
            datastore records in the quantum, or the datastore in trust mode).
        tasks : `~collections.abc.Mapping` [`str`, `str`]
            The task of each label, as ``"package.module:function"``.

        Returns
        -------
        graph : `QuantumGraph`
            The graph, in its deterministic level-by-level order.

        Raises
        ------
        GraphError
            If a quantum has no task, a dataset is the output of two quanta,
            a quantum appears twice, or the quanta form a cycle.
        """
        from ..butler.setup import single_run
        from ..core.wire import quantum_to_simple

        quanta = list(quanta)
        for label, spec in tasks.items():
            _check_task_spec(label, spec)
        by_id: dict[uuid.UUID, Quantum] = {}
        producers: dict[uuid.UUID, uuid.UUID] = {}
        for q in quanta:
            if q.taskLabel is None or q.taskLabel not in tasks:
                raise GraphError(
                    f"Quantum {q.id} has task label {q.taskLabel!r}, which has no task; "
                    f"tasks were given for {sorted(tasks)}."
                )
            if by_id.setdefault(q.id, q) is not q:
                raise GraphError(f"Quantum {q.id} appears twice in the quanta given.")
            for ref in q.output_refs():
                other = producers.setdefault(ref.id, q.id)
                if other != q.id:
                    raise GraphError(
                        f"Dataset {ref} is an output of two quanta, {other} and {q.id}; "
                        "each dataset must have a single producer."
                    )
        deps = {
            q.id: sorted({producers[r.id] for r in q.input_refs() if r.id in producers} - {q.id})
            for q in quanta
        }
        sorter = graphlib.TopologicalSorter(deps)
        try:
            sorter.prepare()
        except graphlib.CycleError as err:
            cycle = " -> ".join(f"{by_id[i].taskLabel}:{i}" for i in err.args[1])
            raise GraphError(f"The quanta form a cycle through their datasets: {cycle}.") from None
        level: dict[uuid.UUID, int] = {}
        while sorter.is_active():
            ready = sorter.get_ready()
            for qid in ready:
                level[qid] = 1 + max((level[d] for d in deps[qid]), default=-1)
            sorter.done(*ready)
        order = sorted(quanta, key=lambda q: _sort_key(q, level[q.id]))
        index = {q.id: i for i, q in enumerate(order)}
        nodes = [
            GraphNode(
                i,
                q.id,
                q.taskLabel or "",
                level[q.id],
                single_run(q.output_refs()),
                tuple(sorted(index[d] for d in deps[q.id])),
            )
            for i, q in enumerate(order)
        ]
        universe = None
        for q in order:
            for ref in q.input_refs() + q.output_refs():
                universe = SerializedDimensionUniverse.from_universe(ref.datasetType.dimensions.universe)
                break
            if universe is not None:
                break
        payloads = [quantum_to_simple(q).model_dump_json().encode() for q in order]
        return cls(nodes, tasks, payloads, universe, decoded=dict(enumerate(order)))

    # --------------------------------------------------------------- file I/O

    def to_bytes(self) -> bytes:
        """Return the graph file's content (see `s3qbb.batch.graphfile` for its layout)."""
        from .graphfile import encode

        header = {
            "tasks": self._tasks,
            "universe": self._universe.model_dump(mode="json") if self._universe is not None else None,
            "quanta": [
                {
                    "id": str(n.id),
                    "label": n.label,
                    "level": n.level,
                    "run": n.run,
                    "upstream": list(n.upstream),
                }
                for n in self._nodes
            ],
        }
        return encode(header, [self._payloads[i] for i in range(len(self._nodes))])

    @classmethod
    def _from_parts(cls, parts: GraphParts, source: str) -> QuantumGraph:
        header = parts.header
        for label, spec in header.tasks.items():
            _check_task_spec(label, spec)
        nodes = [GraphNode(i, n.id, n.label, n.level, n.run, n.upstream) for i, n in enumerate(header.quanta)]
        return cls(nodes, header.tasks, parts.payloads, header.universe, source=source)

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str = "<bytes>") -> QuantumGraph:
        """Read a graph from its file content; only the header is validated (see `load`).

        Raises
        ------
        GraphError
            If the header is invalid, of a newer version, or inconsistent with the quanta.
        """
        from .graphfile import GraphFileError, decode

        try:
            parts = decode(data, source)
        except GraphFileError as err:
            raise GraphError(str(err)) from None
        return cls._from_parts(parts, source)

    def save(self, destination: str | os.PathLike[str], *, config: S3EndpointConfig | None = None) -> str:
        """Write the graph to a local file or an ``s3://bucket/key`` URI (one PUT, replacing any object).

        Parameters
        ----------
        destination : `str` or `os.PathLike`
            Local path or ``s3://`` URI.
        config : `~s3qbb.config.S3EndpointConfig`, optional
            Endpoint for an ``s3://`` destination; from the environment by default.

        Returns
        -------
        where : `str`
            The destination, as a string.
        """
        where = os.fspath(destination)
        data = self.to_bytes()
        if where.startswith("s3://"):
            from .graphfile import put_s3

            put_s3(where, data, config)
        else:
            Path(where).write_bytes(data)
        return where

    @classmethod
    def load(cls, source: str | os.PathLike[str], *, config: S3EndpointConfig | None = None) -> QuantumGraph:
        """Read a graph from a local file or an ``s3://`` URI (one GET).

        Only the header is validated; each quantum is validated when it is
        first asked for, so a job that runs one quantum validates one.

        Parameters
        ----------
        source : `str` or `os.PathLike`
            Local path or ``s3://`` URI.
        config : `~s3qbb.config.S3EndpointConfig`, optional
            Endpoint for an ``s3://`` source; from the environment by default.

        Raises
        ------
        GraphError
            If the file is not a valid graph.
        ConfigError
            If the file cannot be read.
        DatasetNotFoundError
            If the ``s3://`` object does not exist.
        """
        where = os.fspath(source)
        if where.startswith("s3://"):
            from ..s3.config_files import read_s3_bytes

            data = read_s3_bytes(where, config)
        else:
            try:
                data = Path(where).read_bytes()
            except OSError as err:
                raise ConfigError(f"Cannot read quantum graph {where}: {err}") from err
        return cls.from_bytes(data, source=where)

    @classmethod
    def open(cls, source: str | os.PathLike[str], *, config: S3EndpointConfig | None = None) -> QuantumGraph:
        """Read a graph's header with range reads; each quantum is read (one range GET) when first used.

        What a batch job does: it transfers the header (one or two range
        GETs) and its own quantum, not the whole file. Iterating over an
        opened graph reads the quanta one request each: use `load` to read
        them all.

        Parameters
        ----------
        source : `str` or `os.PathLike`
            Local path or ``s3://`` URI.
        config : `~s3qbb.config.S3EndpointConfig`, optional
            Endpoint for an ``s3://`` source; from the environment by default.

        Raises
        ------
        GraphError
            If the file is not a valid graph.
        DatasetNotFoundError
            If the ``s3://`` object does not exist.
        """
        from .graphfile import GraphFileError, open_ranged

        where = os.fspath(source)
        try:
            parts = open_ranged(where, config)
        except GraphFileError as err:
            raise GraphError(str(err)) from None
        return cls._from_parts(parts, where)

    # ------------------------------------------------------------------ access

    @property
    def tasks(self) -> Mapping[str, str]:
        """The task of each label (``"package.module:function"``)."""
        return dict(self._tasks)

    @property
    def nodes(self) -> tuple[GraphNode, ...]:
        """Every quantum's node, in the graph's order (no quantum is decoded)."""
        return self._nodes

    @property
    def source(self) -> str:
        """Where the graph was read from (``<memory>`` if built here)."""
        return self._source

    def universe(self) -> DimensionUniverse:
        """Return the dimension universe the quanta were built with (the shipped one if unknown)."""
        from ..core.dimensions import DimensionUniverse

        if self._universe_obj is None:
            self._universe_obj = (
                self._universe.to_universe() if self._universe is not None else DimensionUniverse()
            )
        return self._universe_obj

    def __len__(self) -> int:
        return len(self._nodes)

    def __iter__(self) -> Iterator[Quantum]:
        for i in range(len(self._nodes)):
            yield self[i]

    def __contains__(self, quantum_id: object) -> bool:
        return quantum_id in self._by_id

    def __getitem__(self, index: int) -> Quantum:
        """Return the quantum at ``index`` in the graph's order, validating and decoding it.

        Raises
        ------
        IndexError
            If the index is out of range.
        GraphError
            If the quantum's entry is invalid.
        """
        if not 0 <= index < len(self._nodes):
            raise IndexError(
                f"Index {index} is out of range: graph {self._source} has {len(self._nodes)} quanta "
                f"(indices 0 to {len(self._nodes) - 1})."
            )
        quantum = self._decoded.get(index)
        if quantum is None:
            quantum = self._decode(index)
            self._decoded[index] = quantum
        return quantum

    def _decode(self, index: int) -> Quantum:
        from ..core.wire import quantum_from_simple

        node = self._nodes[index]
        try:
            simple = SerializedQuantum.model_validate_json(self._payloads[index])
            quantum = quantum_from_simple(simple, self.universe())
        except (ValidationError, ValueError) as err:
            raise GraphError(
                f"Quantum {index} ({node.id}) of graph {self._source} is invalid: {err}"
            ) from err
        if quantum.id != node.id or (quantum.taskLabel or "") != node.label:
            raise GraphError(
                f"Quantum {index} of graph {self._source} is {quantum.id} ({quantum.taskLabel}) but the "
                f"header says {node.id} ({node.label}); the file is corrupt: write it again."
            )
        return quantum

    def index_of(self, quantum_id: uuid.UUID | str) -> int:
        """Return the index of a quantum in the graph's order.

        Raises
        ------
        KeyError
            If no quantum of the graph has this ID.
        """
        qid = quantum_id if isinstance(quantum_id, uuid.UUID) else uuid.UUID(str(quantum_id))
        try:
            return self._by_id[qid]
        except KeyError:
            raise KeyError(f"Quantum {qid} is not in graph {self._source} ({len(self)} quanta).") from None

    def quantum(self, quantum_id: uuid.UUID | str) -> Quantum:
        """Return the quantum with this ID (see `index_of`)."""
        return self[self.index_of(quantum_id)]

    def task_of(self, index: int) -> str:
        """Return the task (``"package.module:function"``) of the quantum at ``index``."""
        return self._tasks[self._nodes[index].label]

    def levels(self) -> list[list[GraphNode]]:
        """Return the quanta level by level (dependency stages); each level is a contiguous index range."""
        out: list[list[GraphNode]] = []
        for node in self._nodes:
            while len(out) <= node.level:
                out.append([])
            out[node.level].append(node)
        return out

    def stage_range(self, stage: int) -> range:
        """Return the indices of the quanta of one level (stage).

        Raises
        ------
        IndexError
            If the graph has no such stage.
        """
        levels = self.levels()
        if not 0 <= stage < len(levels):
            raise IndexError(f"Stage {stage} is out of range: graph {self._source} has {len(levels)} stages.")
        return range(levels[stage][0].index, levels[stage][-1].index + 1)

    def __repr__(self) -> str:
        return f"QuantumGraph({len(self)} quanta, {len(self.levels())} levels, tasks={sorted(self._tasks)})"
