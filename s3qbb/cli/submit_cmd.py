"""``s3qbb submit kubernetes|aws-batch``: print manifests running a quantum graph, one array job per stage."""

from __future__ import annotations

__all__ = ["submit"]

import json
import sys
from typing import Any

import click

from ..errors import S3qbbError
from .options import S3qbbCommand, global_options

EXIT_USAGE = 2


@click.command(
    "submit",
    cls=S3qbbCommand,
    help=(
        "Print Kubernetes Indexed Jobs or AWS Batch array jobs (one per stage) that run a graph.\n\n"
        "Prints the manifests; it submits nothing. Kubernetes: multi-document YAML, one Indexed Job per "
        "stage (apply them in order, waiting for each). AWS Batch: JSON, per stage a "
        "registerJobDefinition and a submitJob request."
    ),
    short_help="print Kubernetes Indexed Jobs or AWS Batch array jobs (one per stage) that run a graph",
)
@click.argument("system", type=click.Choice(("kubernetes", "aws-batch")))
@click.option("--graph", required=True, metavar="URI", help="quantum graph the jobs read (s3:// URI)")
@click.option(
    "--image", metavar="IMAGE", required=True, help="container image with s3qbb and the tasks installed"
)
@click.option(
    "--config", metavar="LOCATION", required=True, help="repository config the jobs read (s3:// URI)"
)
@click.option("--name", metavar="PREFIX", default="s3qbb", help="prefix of the job names (default s3qbb)")
@click.option(
    "--retries",
    metavar="N",
    type=int,
    default=3,
    help="retries per quantum for retryable exits (default 3; at most 9 on AWS Batch)",
)
@click.option(
    "--parallelism",
    metavar="N",
    type=int,
    default=100,
    help="Kubernetes: pods at once per stage (default 100)",
)
@click.option("--job-queue", metavar="QUEUE", default="s3qbb", help="AWS Batch: job queue (default s3qbb)")
@click.option("--env", multiple=True, metavar="NAME=VALUE", help="container environment, repeatable")
@global_options
def submit(
    system: str,
    graph: str,
    image: str,
    config: str,
    name: str,
    retries: int,
    parallelism: int,
    job_queue: str,
    env: tuple[str, ...],
) -> int:
    """Print the manifests of the jobs running a graph (SYSTEM: kubernetes or aws-batch)."""
    from ..batch.graph import QuantumGraph
    from ..batch.manifests import aws_batch_stages, kubernetes_jobs
    from ..provenance.files import redact
    from .options import load_config_option

    environment: dict[str, str] = {}
    for item in env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"s3qbb submit: --env {item!r} must look like NAME=VALUE.", file=sys.stderr)
            return EXIT_USAGE
        environment[key] = value
    for option, where in (("--graph", graph), ("--config", config)):
        if not where.startswith("s3://"):  # the jobs open it inside their containers, not here
            print(
                f"s3qbb submit: warning: {option} {where} is not an s3:// URI: every job opens this path "
                "inside its container; upload it to S3 unless the image holds it at this path.",
                file=sys.stderr,
            )
    try:
        repo = load_config_option(config)
        qgraph = QuantumGraph.open(graph, config=repo.datastore.endpoint_config())
    except S3qbbError as err:
        print(f"s3qbb submit: {redact(str(err))}", file=sys.stderr)
        return EXIT_USAGE
    common: dict[str, Any] = {"image": image, "config": config, "name": name, "env": environment}
    try:
        if system == "kubernetes":
            jobs = kubernetes_jobs(qgraph, graph, parallelism=parallelism, retries=retries, **common)
        else:
            doc = aws_batch_stages(qgraph, graph, job_queue=job_queue, retries=retries, **common)
    except S3qbbError as err:
        print(f"s3qbb submit: {err}", file=sys.stderr)
        return EXIT_USAGE
    if system == "kubernetes":
        import yaml

        print(
            f"# {len(qgraph)} quanta in {len(jobs)} stages; apply each Job after the previous one completed."
        )
        print(yaml.safe_dump_all(jobs, sort_keys=False), end="")
    else:
        print(json.dumps(doc, indent=1))
    return 0
