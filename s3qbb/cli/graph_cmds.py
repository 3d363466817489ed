"""``s3qbb graph show|status`` and the ``--graph/--index/--quantum/--stage`` options of ``run-quantum``."""

from __future__ import annotations

__all__ = ["add_graph_arguments", "add_parsers", "resolve_job", "show_command", "status_command"]

import argparse
import json
import sys
import uuid
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, S3qbbError
from .tables import Column, add_limit_argument, print_table

if TYPE_CHECKING:
    from ..core.dimensions import DimensionUniverse
    from ..core.quantum import Quantum
    from ..repo import RepoConfig

EXIT_USAGE = 2


def add_graph_arguments(p: argparse.ArgumentParser) -> None:
    """Add the options selecting a quantum of a graph (``run-quantum``)."""
    g = p.add_argument_group(
        "quantum graph",
        "Run one quantum of a graph. Without --index or --quantum the index comes from the first of "
        "AWS_BATCH_JOB_ARRAY_INDEX, JOB_COMPLETION_INDEX, SLURM_ARRAY_TASK_ID, PBS_ARRAY_INDEX that is set.",
    )
    g.add_argument("--graph", metavar="URI", help="quantum graph file: a local path or an s3:// URI")
    sel = g.add_mutually_exclusive_group()
    sel.add_argument("--index", type=int, metavar="N", help="index of the quantum in the graph's order")
    sel.add_argument("--quantum", dest="quantum_id", type=uuid.UUID, metavar="UUID", help="ID of the quantum")
    g.add_argument(
        "--stage", type=int, metavar="S", help="count the index within stage S (one array job per stage)"
    )


def resolve_job(args: argparse.Namespace, repo: RepoConfig) -> tuple[Quantum, str, DimensionUniverse | None]:
    """Return the quantum, task and universe of a ``run-quantum`` invocation (graph or single-file form).

    Raises
    ------
    ConfigError
        If the options do not select one quantum and one task (a usage error).
    """
    if args.graph:
        from ..batch.jobindex import graph_job

        if args.quantum:
            raise ConfigError("Give either a quantum file or --graph, not both.")
        if args.task:
            raise ConfigError("With --graph the task comes from the graph; leave out --task.")
        return graph_job(args.graph, repo, index=args.index, quantum_id=args.quantum_id, stage=args.stage)
    if args.index is not None or args.quantum_id is not None or args.stage is not None:
        raise ConfigError("--index, --quantum and --stage select a quantum of a --graph; give --graph.")
    if not args.quantum or not args.task:
        raise ConfigError("Give a quantum file and --task, or --graph URI.")
    from ..batch.execution import load_quantum

    return load_quantum(args.quantum, repo.universe()), args.task, None


def add_parsers(sub: Any) -> None:
    """Register ``s3qbb graph show`` and ``s3qbb graph status``."""
    p: argparse.ArgumentParser = sub.add_parser(
        "graph", help="inspect a quantum graph and how far it has run"
    )
    gsub = p.add_subparsers(dest="graph_command", required=True)
    show = gsub.add_parser("show", help="stages, task labels and quantum counts of a graph")
    show.add_argument("graph", metavar="URI", help="quantum graph: a local path or an s3:// URI")
    show.add_argument("--quanta", action="store_true", help="also list every quantum with its index")
    show.add_argument("--json", action="store_true", help="print JSON")
    add_limit_argument(show)
    show.set_defaults(func=show_command)
    status = gsub.add_parser("status", help="per quantum: succeeded, failed, interrupted or not run")
    status.add_argument("graph", metavar="URI", help="quantum graph: a local path or an s3:// URI")
    status.add_argument("--config", required=True, help="repository config: a local file or an s3:// URI")
    status.add_argument("--json", action="store_true", help="print JSON")
    add_limit_argument(status)
    status.set_defaults(func=status_command)


def _fail(command: str, err: S3qbbError) -> int:
    from ..provenance.files import redact

    print(f"s3qbb graph {command}: {redact(str(err))}", file=sys.stderr)
    return EXIT_USAGE


def show_command(args: argparse.Namespace) -> int:
    """Print a graph's stages, labels and counts."""
    from ..batch.graph import QuantumGraph

    try:
        graph = QuantumGraph.open(args.graph)
    except S3qbbError as err:
        return _fail("show", err)
    stages: list[dict[str, Any]] = []
    for level, nodes in enumerate(graph.levels()):
        labels: dict[str, int] = {}
        for node in nodes:
            labels[node.label] = labels.get(node.label, 0) + 1
        stages.append({"stage": level, "first_index": nodes[0].index, "quanta": len(nodes), "labels": labels})
    if args.json:
        out: dict[str, Any] = {
            "graph": args.graph,
            "quanta": len(graph),
            "tasks": graph.tasks,
            "stages": stages,
        }
        if args.quanta:
            out["nodes"] = [
                {"index": n.index, "id": str(n.id), "label": n.label, "stage": n.level, "run": n.run}
                for n in graph.nodes
            ]
        print(json.dumps(out, indent=1))
        return 0
    print(f"graph {args.graph}: {len(graph)} quanta in {len(stages)} stages")
    for label, task in sorted(graph.tasks.items()):
        print(f"  task {label}: {task}")
    for s in stages:
        counts = ", ".join(f"{label} x{n}" for label, n in s["labels"].items())
        last = s["first_index"] + s["quanta"] - 1
        print(f"  stage {s['stage']}: {s['quanta']} quanta (indices {s['first_index']}-{last}): {counts}")
    if args.quanta:
        print_table(
            (Column("index", right=True), Column("quantum id", wrap=False), Column("task"),
             Column("stage", right=True)),
            [[str(n.index), str(n.id), n.label, str(n.level)] for n in graph.nodes],
            limit=args.limit,
        )  # fmt: skip
    return 0


def status_command(args: argparse.Namespace) -> int:
    """Print each quantum's status; exit 0 if every quantum succeeded, 1 otherwise."""
    from ..batch.graph import QuantumGraph
    from ..batch.status import graph_status, status_counts
    from .options import load_config_option

    try:
        repo = load_config_option(args.config)
        graph = QuantumGraph.open(args.graph, config=repo.datastore.endpoint_config())
        states = graph_status(graph, repo)
    except S3qbbError as err:
        return _fail("status", err)
    counts = status_counts(states)
    if args.json:
        print(
            json.dumps(
                {
                    "graph": args.graph,
                    "counts": counts,
                    "quanta": [
                        {"index": s.index, "id": str(s.quantum_id), "label": s.label, "status": s.status,
                         "error": s.error}
                        for s in states
                    ],
                },
                indent=1,
            )
        )  # fmt: skip
    else:
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        print(f"graph {args.graph}: {len(states)} quanta: {summary}")
        print_table(
            (Column("index", right=True), Column("quantum id", wrap=False), Column("task"), Column("status"),
             Column("error")),
            [[str(s.index), str(s.quantum_id), s.label, s.status, s.error or ""] for s in states],
            limit=args.limit,
        )  # fmt: skip
    return 0 if all(s.succeeded for s in states) else 1
