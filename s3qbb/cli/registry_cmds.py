"""``s3qbb ingest``, ``s3qbb datasets`` and ``s3qbb provenance``: the central registry from the shell."""

from __future__ import annotations

__all__ = ["datasets", "ingest", "provenance"]

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..errors import S3qbbError
from . import tables
from .options import S3qbbCommand, global_options, json_option
from .tables import Column, limit_option, print_table

if TYPE_CHECKING:
    from ..registry.results import DatasetRow, ProvenanceTree

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_REGISTRY = "sqlite:///s3qbb-registry.sqlite3"


def _registry_options(f: F) -> F:
    """Add ``--registry`` and ``--namespace``."""
    f = click.option(
        "--namespace",
        metavar="SCHEMA",
        help="PostgreSQL schema holding the registry tables; ingest creates it if missing "
        "(default: the connection's default schema, usually public)",
    )(f)
    f = click.option(
        "--registry",
        metavar="URL",
        default=DEFAULT_REGISTRY,
        help="registry URL: sqlite:///PATH or postgresql+psycopg://USER@HOST/DB "
        f"(default: {DEFAULT_REGISTRY})",
    )(f)
    return f


def _fail(command: str, err: BaseException) -> int:
    from ..provenance.files import redact

    print(f"s3qbb {command}: {redact(str(err))}", file=sys.stderr)
    return 2


@click.command(
    "ingest",
    cls=S3qbbCommand,
    help="Load the records and provenance a run left in S3 into the central registry.\n\n"
    "RUN_URI is the run's prefix: s3://bucket/root/<run>/. A run whose name s3qbb stores encoded "
    "(rün/日本 as r%C3%BCn/%E6%97%A5%E6%9C%AC) may be given by either name: when nothing is under the URI "
    "as given, its encoded form is read (the summary names the prefix read).",
    short_help="load the records and provenance a run left in S3 into the central registry",
)
@click.argument("run_uri")
@_registry_options
# IntRange: click refuses a bad value (exit 2, naming the option) before anything is created.
@click.option(
    "--workers", metavar="N", type=click.IntRange(min=1), default=16, help="parallel downloads (default 16)"
)
@click.option(
    "--batch-size",
    metavar="N",
    type=click.IntRange(min=1),
    default=200,
    help="quanta per transaction (default 200)",
)
@click.option(
    "--recover",
    metavar="QUANTA",
    help="first recover quanta that left no usable records (killed jobs, damaged files, outputs of a "
    "later attempt than their report), from a quantum graph (local, or s3://....qgraph) or their "
    "descriptions (a local directory or s3:// prefix of quantum JSON files); needs --config",
)
@click.option(
    "--config", metavar="LOCATION", help="repository config (local path or s3:// URI), for --recover"
)
@click.option(
    "--no-progress", is_flag=True, help="no progress bar (it is shown only when standard error is a terminal)"
)
@json_option("print the summary as JSON")
@global_options
def ingest(
    run_uri: str,
    registry: str,
    namespace: str | None,
    workers: int,
    batch_size: int,
    recover: str | None,
    config: str | None,
    no_progress: bool,
    as_json: bool,
) -> int:
    """Ingest one run; exit 0, 1 if some files were reported and skipped, 2 if it cannot."""
    from ..registry import Registry
    from .progress import IngestProgressDisplay

    try:
        if recover:
            if not config:
                return _fail("ingest", S3qbbError("--recover needs --config (the repository configuration)."))
            from ..batch.recovery import is_graph_location, load_quanta, recover_quanta
            from .options import load_config_option

            repo = load_config_option(config)
            from_graph = is_graph_location(recover)
            recovered = recover_quanta(repo, load_quanta(recover, repo.universe()), skip_unstarted=from_graph)
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
        display = IngestProgressDisplay(sys.stderr, show=not (no_progress or as_json))
        with Registry.from_url(registry, namespace=namespace) as reg, display:
            summary = reg.ingest_run(
                run_uri,
                workers=workers,
                batch_size=batch_size,
                progress=display if display.enabled else None,
            )
        # summary.uri: the prefix read (the run's sanitised prefix when the URI gave its own name).
        refusal = _refusal(summary.uri) if summary.quanta_listed == 0 and not summary.failures else None
    except (S3qbbError, OSError, ValueError) as err:
        return _fail("ingest", err)
    if refusal:
        return _fail("ingest", S3qbbError(refusal))
    if as_json:
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


def _parse_where(items: tuple[str, ...]) -> dict[str, int | str] | None:
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


@click.command(
    "datasets",
    cls=S3qbbCommand,
    help="List datasets in the registry.",
    short_help="list datasets in the registry",
)
@_registry_options
@click.option("--run", metavar="RUN", help="only this run")
@click.option("--dataset-type", metavar="NAME", help="only this dataset type")
@click.option("--where", multiple=True, metavar="DIM=VALUE", help="data ID filter, repeatable")
@json_option()
@limit_option
@global_options
def datasets(
    registry: str,
    namespace: str | None,
    run: str | None,
    dataset_type: str | None,
    where: tuple[str, ...],
    as_json: bool,
    limit: int | None,
) -> int:
    """List datasets: a table (``--limit`` rows on a terminal) or JSON."""
    from ..registry import Registry

    shown = None if as_json else tables.effective_limit(limit)  # None: every row
    try:
        filters: dict[str, Any] = {"run": run, "dataset_type": dataset_type, "data_id": _parse_where(where)}
        with Registry.from_url(registry, namespace=namespace, create=False) as reg:
            # One more than shown tells whether there are more: only then are they counted.
            rows = reg.datasets(**filters, limit=None if shown is None else shown + 1)
            total = len(rows) if shown is None or len(rows) <= shown else reg.count_datasets(**filters)
    except (S3qbbError, OSError, ValueError) as err:
        return _fail("datasets", err)
    if as_json:
        print(json.dumps([r.to_dict() for r in rows], indent=1, default=str))
        return 0
    print_table(_DATASET_COLUMNS, [_dataset_cells(r) for r in rows[:shown]], limit=limit, total=total)
    print(f"({total} dataset(s))")
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


@click.command(
    "provenance",
    cls=S3qbbCommand,
    help="Show which quantum produced a dataset and what it read, recursively.\n\n"
    "DATASET_ID is the dataset's UUID.",
    short_help="show which quantum produced a dataset and what it read, recursively",
)
@click.argument("dataset_id")
@_registry_options
@click.option(
    "--depth", metavar="N", type=int, default=3, help="levels of producing quanta to follow (default 3)"
)
@json_option()
@global_options
def provenance(registry: str, namespace: str | None, dataset_id: str, depth: int, as_json: bool) -> int:
    """Print a dataset's provenance tree (or JSON)."""
    from ..registry import Registry

    try:
        with Registry.from_url(registry, namespace=namespace, create=False) as reg:
            tree = reg.provenance(dataset_id, depth=depth)
    except (S3qbbError, OSError, ValueError) as err:
        return _fail("provenance", err)
    if as_json:
        print(json.dumps(tree.to_dict(), indent=1, default=str))
    else:
        _print_tree(tree)
    return 0
