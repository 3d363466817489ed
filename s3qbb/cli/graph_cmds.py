"""``s3qbb graph show|status``: a quantum graph and how far it has run."""

from __future__ import annotations

__all__ = ["graph", "show", "status"]

import json
import sys
from typing import Any

import click

from ..errors import S3qbbError
from .options import S3qbbCommand, global_options, json_option
from .tables import Column, limit_option, print_table

EXIT_USAGE = 2


@click.group(
    "graph",
    help="Inspect a quantum graph and how far it has run.",
    short_help="inspect a quantum graph and how far it has run",
)
@global_options
def graph() -> None:
    """Group ``graph show`` and ``graph status``."""


def _fail(command: str, err: S3qbbError) -> int:
    from ..provenance.files import redact

    print(f"s3qbb graph {command}: {redact(str(err))}", file=sys.stderr)
    return EXIT_USAGE


@graph.command(
    "show",
    cls=S3qbbCommand,
    help="Print the stages, task labels and quantum counts of a graph.\n\n"
    "URI is the quantum graph: a local path or an s3:// URI.",
    short_help="stages, task labels and quantum counts of a graph",
)
@click.argument("graph_uri", metavar="URI")
@click.option("--quanta", is_flag=True, help="also list every quantum with its index")
@json_option()
@limit_option
@global_options
def show(graph_uri: str, quanta: bool, as_json: bool, limit: int | None) -> int:
    """Print a graph's stages, labels and counts."""
    from ..batch.graph import QuantumGraph

    try:
        qgraph = QuantumGraph.open(graph_uri)
    except S3qbbError as err:
        return _fail("show", err)
    stages: list[dict[str, Any]] = []
    for level, nodes in enumerate(qgraph.levels()):
        labels: dict[str, int] = {}
        for node in nodes:
            labels[node.label] = labels.get(node.label, 0) + 1
        stages.append({"stage": level, "first_index": nodes[0].index, "quanta": len(nodes), "labels": labels})
    if as_json:
        out: dict[str, Any] = {
            "graph": graph_uri,
            "quanta": len(qgraph),
            "tasks": qgraph.tasks,
            "stages": stages,
        }
        if quanta:
            out["nodes"] = [
                {"index": n.index, "id": str(n.id), "label": n.label, "stage": n.level, "run": n.run}
                for n in qgraph.nodes
            ]
        print(json.dumps(out, indent=1))
        return 0
    print(f"graph {graph_uri}: {len(qgraph)} quanta in {len(stages)} stages")
    for label, task in sorted(qgraph.tasks.items()):
        print(f"  task {label}: {task}")
    for s in stages:
        counts = ", ".join(f"{label} x{n}" for label, n in s["labels"].items())
        last = s["first_index"] + s["quanta"] - 1
        print(f"  stage {s['stage']}: {s['quanta']} quanta (indices {s['first_index']}-{last}): {counts}")
    if quanta:
        print_table(
            (Column("index", right=True), Column("quantum id", wrap=False), Column("task"),
             Column("stage", right=True)),
            [[str(n.index), str(n.id), n.label, str(n.level)] for n in qgraph.nodes],
            limit=limit,
        )  # fmt: skip
    return 0


@graph.command(
    "status",
    cls=S3qbbCommand,
    help="Print per quantum: succeeded, failed, interrupted, recovered, running (an attempt holds its "
    "lease now), incomplete (an attempt started, e.g. a killed job, but left no readable report: run it "
    "again, or ingest --recover its run) or not run (never started); exit 0 if every quantum succeeded, "
    "1 otherwise.\n\nURI is the quantum graph: a local path or an s3:// URI.",
    short_help="per quantum: succeeded, failed, interrupted, running, incomplete or not run",
)
@click.argument("graph_uri", metavar="URI")
@click.option(
    "--config", metavar="LOCATION", required=True, help="repository config: a local file or an s3:// URI"
)
@json_option()
@limit_option
@global_options
def status(graph_uri: str, config: str, as_json: bool, limit: int | None) -> int:
    """Print each quantum's status; exit 0 if every quantum succeeded, 1 otherwise."""
    from ..batch.graph import QuantumGraph
    from ..batch.status import graph_status, status_counts
    from .options import load_config_option

    try:
        repo = load_config_option(config)
        qgraph = QuantumGraph.open(graph_uri, config=repo.datastore.endpoint_config())
        states = graph_status(qgraph, repo)
    except S3qbbError as err:
        return _fail("status", err)
    counts = status_counts(states)
    if as_json:
        print(
            json.dumps(
                {
                    "graph": graph_uri,
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
        summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        print(f"graph {graph_uri}: {len(states)} quanta: {summary}")
        print_table(
            (Column("index", right=True), Column("quantum id", wrap=False), Column("task"), Column("status"),
             Column("error")),
            [[str(s.index), str(s.quantum_id), s.label, s.status, s.error or ""] for s in states],
            limit=limit,
        )  # fmt: skip
    return 0 if all(s.succeeded for s in states) else 1
