"""``s3qbb ingest``, ``s3qbb datasets`` and ``s3qbb provenance``: the central registry from the shell."""

from __future__ import annotations

__all__ = ["add_parsers", "datasets_command", "ingest_command", "provenance_command"]

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from ..errors import S3qbbError
from . import tables
from .tables import Column, add_limit_argument, print_table

if TYPE_CHECKING:
    from ..registry.results import DatasetRow, ProvenanceTree

DEFAULT_REGISTRY = "sqlite:///s3qbb-registry.sqlite3"


def _registry_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--registry",
        default=DEFAULT_REGISTRY,
        help="registry URL: sqlite:///PATH or postgresql+psycopg://USER@HOST/DB "
        f"(default: {DEFAULT_REGISTRY})",
    )
    p.add_argument("--namespace", help="PostgreSQL schema holding the registry tables (default: public)")


def add_parsers(sub: Any) -> None:
    """Register the three sub-commands."""
    p: argparse.ArgumentParser = sub.add_parser(
        "ingest", help="load the records and provenance a run left in S3 into the central registry"
    )
    p.add_argument("run_uri", help="s3://bucket/root/<run>/")
    _registry_arg(p)
    p.add_argument("--workers", type=int, default=16, help="parallel downloads (default 16)")
    p.add_argument("--batch-size", type=int, default=200, help="quanta per transaction (default 200)")
    p.add_argument(
        "--recover",
        metavar="QUANTA",
        help="first recover quanta that left no usable records (killed jobs, damaged files, outputs of a "
        "later attempt than their report), from a quantum graph (local, or s3://....qgraph) or their "
        "descriptions (a local directory or s3:// prefix of quantum JSON files); needs --config",
    )
    p.add_argument("--config", help="repository config (local path or s3:// URI), for --recover")
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (it is shown only when standard error is a terminal)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=ingest_command)

    d: argparse.ArgumentParser = sub.add_parser("datasets", help="list datasets in the registry")
    _registry_arg(d)
    d.add_argument("--run", help="only this run")
    d.add_argument("--dataset-type", help="only this dataset type")
    d.add_argument(
        "--where", action="append", default=[], metavar="DIM=VALUE", help="data ID filter, repeatable"
    )
    d.add_argument("--json", action="store_true", help="print JSON")
    add_limit_argument(d)
    d.set_defaults(func=datasets_command)

    v: argparse.ArgumentParser = sub.add_parser(
        "provenance", help="show which quantum produced a dataset and what it read, recursively"
    )
    v.add_argument("dataset_id", help="dataset UUID")
    _registry_arg(v)
    v.add_argument("--depth", type=int, default=3, help="levels of producing quanta to follow (default 3)")
    v.add_argument("--json", action="store_true", help="print JSON")
    v.set_defaults(func=provenance_command)


def _fail(command: str, err: BaseException) -> int:
    from ..provenance.files import redact

    print(f"s3qbb {command}: {redact(str(err))}", file=sys.stderr)
    return 2


def ingest_command(args: argparse.Namespace) -> int:
    """Run ``s3qbb ingest``."""
    from ..registry import Registry
    from .progress import IngestProgressDisplay

    try:
        if args.recover:
            if not args.config:
                return _fail("ingest", S3qbbError("--recover needs --config (the repository configuration)."))
            from ..batch.recovery import is_graph_location, load_quanta, recover_quanta
            from .options import load_config_option

            repo = load_config_option(args.config)
            from_graph = is_graph_location(args.recover)
            recovered = recover_quanta(
                repo, load_quanta(args.recover, repo.universe()), skip_unstarted=from_graph
            )
            recovered = [r for r in recovered if r.status != "not-run"]
            done = [r for r in recovered if r.status == "recovered"]
            for result in recovered:
                for line in result.warnings:
                    print(f"s3qbb ingest --recover: quantum {result.quantum_id}: {line}", file=sys.stderr)
            print(
                f"recovered {len(done)} quantum(s) that left no usable records "
                f"({sum(r.outputs_found for r in done)} outputs found, "
                f"{sum(r.outputs_missing for r in done)} missing); {len(recovered) - len(done)} had intact "
                "records of their last attempt",
                file=sys.stderr,
            )
        display = IngestProgressDisplay(sys.stderr, show=not (args.no_progress or args.json))
        with Registry.from_url(args.registry, namespace=args.namespace) as registry, display:
            summary = registry.ingest_run(
                args.run_uri,
                workers=args.workers,
                batch_size=args.batch_size,
                progress=display if display.enabled else None,
            )
        refusal = _refusal(args.run_uri) if summary.quanta_listed == 0 and not summary.failures else None
    except (S3qbbError, OSError, ValueError) as err:
        return _fail("ingest", err)
    if refusal:
        return _fail("ingest", S3qbbError(refusal))
    if args.json:
        print(json.dumps(summary.to_dict(), indent=1, default=str))
    else:
        print(summary.describe())
    return 1 if summary.failures else 0


def _refusal(run_uri: str) -> str | None:
    """Say why a run with no per-quantum files is not one to ingest (see `explain_empty_run`)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from ..config import S3EndpointConfig
    from ..s3 import make_client
    from .ingest_checks import explain_empty_run

    try:
        return explain_empty_run(make_client(S3EndpointConfig.from_env()), run_uri)
    except (BotoCoreError, ClientError):  # the listing just worked: no diagnosis is no refusal
        return None


def _parse_where(items: list[str]) -> dict[str, int | str] | None:
    if not items:
        return None
    out: dict[str, int | str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise S3qbbError(f"--where {item!r} must look like DIMENSION=VALUE.")
        out[key] = int(value) if value.lstrip("-").isdigit() else value
    return out


_DATASET_COLUMNS = (
    Column("dataset id", wrap=False),
    Column("dataset type"),
    Column("run"),
    Column("data ID"),
    Column("path"),
)


def _dataset_cells(row: DatasetRow) -> list[str]:
    data_id = ", ".join(f"{k}={v}" for k, v in (row.data_id or {}).items())
    where = row.records[0].path if row.records else "-"
    return [str(row.id), row.dataset_type or "?", row.run or "?", data_id or "-", where]


def datasets_command(args: argparse.Namespace) -> int:
    """Run ``s3qbb datasets``."""
    from ..registry import Registry

    try:
        with Registry.from_url(args.registry, namespace=args.namespace, create=False) as registry:
            rows = registry.datasets(
                run=args.run, dataset_type=args.dataset_type, data_id=_parse_where(args.where)
            )
    except (S3qbbError, OSError, ValueError) as err:
        return _fail("datasets", err)
    if args.json:
        print(json.dumps([r.to_dict() for r in rows], indent=1, default=str))
        return 0
    print_table(_DATASET_COLUMNS, [_dataset_cells(r) for r in rows], limit=args.limit)
    print(f"({len(rows)} dataset(s))")
    return 0


def _print_tree(tree: ProvenanceTree) -> None:
    """Print the tree: plain indented lines in a pipe, a `rich.tree.Tree` fitted to a terminal."""
    if tables.is_terminal(sys.stdout):
        _print_rich_tree(tree)
        return

    def walk(dataset_id: Any, indent: int, seen: frozenset[Any]) -> None:
        row = tree.datasets.get(dataset_id)
        label = f"{row.dataset_type} {dict(row.data_id or {})} [{row.run}]" if row else "(unknown dataset)"
        print(f"{'  ' * indent}{dataset_id}  {label}")
        producer = tree.producer_of(dataset_id)
        if producer is None or dataset_id in seen or indent // 2 >= tree.depth:
            return
        print(f"{'  ' * (indent + 1)}<- quantum {producer.id} ({producer.task_label}, {producer.status})")
        for parent in tree.inputs_of(dataset_id):
            walk(parent.id, indent + 2, seen | {dataset_id})

    walk(tree.root, 0, frozenset())


def _print_rich_tree(tree: ProvenanceTree) -> None:
    from rich.console import Console
    from rich.text import Text
    from rich.tree import Tree

    def label(dataset_id: Any) -> Text:
        row = tree.datasets.get(dataset_id)
        text = f"{row.dataset_type} {dict(row.data_id or {})} [{row.run}]" if row else "(unknown dataset)"
        return Text.assemble((str(dataset_id), "bold"), f"  {text}")

    def walk(node: Tree, dataset_id: Any, level: int, seen: frozenset[Any]) -> None:
        producer = tree.producer_of(dataset_id)
        if producer is None or dataset_id in seen or level >= tree.depth:
            return
        quantum = node.add(Text(f"<- quantum {producer.id} ({producer.task_label}, {producer.status})"))
        for parent in tree.inputs_of(dataset_id):
            walk(quantum.add(label(parent.id)), parent.id, level + 1, seen | {dataset_id})

    root = Tree(label(tree.root))
    walk(root, tree.root, 0, frozenset())
    Console(file=sys.stdout, highlight=False).print(root)


def provenance_command(args: argparse.Namespace) -> int:
    """Run ``s3qbb provenance``."""
    from ..registry import Registry

    try:
        with Registry.from_url(args.registry, namespace=args.namespace, create=False) as registry:
            tree = registry.provenance(args.dataset_id, depth=args.depth)
    except (S3qbbError, OSError, ValueError) as err:
        return _fail("provenance", err)
    if args.json:
        print(json.dumps(tree.to_dict(), indent=1, default=str))
    else:
        _print_tree(tree)
    return 0
