"""``s3qbb submit kubernetes|aws-batch``: print manifests running a quantum graph, one array job per stage."""

from __future__ import annotations

__all__ = ["add_parser", "command"]

import argparse
import json
import sys
from typing import Any

from ..errors import S3qbbError

EXIT_USAGE = 2


def add_parser(sub: Any) -> None:
    """Register the sub-command."""
    p: argparse.ArgumentParser = sub.add_parser(
        "submit",
        help="print Kubernetes Indexed Jobs or AWS Batch array jobs (one per stage) that run a graph",
        description=(
            "Prints the manifests; it submits nothing. Kubernetes: multi-document YAML, one Indexed Job per "
            "stage (apply them in order, waiting for each). AWS Batch: JSON, per stage a "
            "registerJobDefinition and a submitJob request."
        ),
    )
    p.add_argument("system", choices=("kubernetes", "aws-batch"), help="the batch system")
    p.add_argument("--graph", required=True, metavar="URI", help="quantum graph the jobs read (s3:// URI)")
    p.add_argument("--image", required=True, help="container image with s3qbb and the tasks installed")
    p.add_argument("--config", required=True, help="repository config the jobs read (s3:// URI)")
    p.add_argument("--name", default="s3qbb", help="prefix of the job names (default s3qbb)")
    p.add_argument(
        "--retries",
        type=int,
        default=3,
        help="retries per quantum for retryable exits (default 3; at most 9 on AWS Batch)",
    )
    p.add_argument(
        "--parallelism", type=int, default=100, help="Kubernetes: pods at once per stage (default 100)"
    )
    p.add_argument("--job-queue", default="s3qbb", help="AWS Batch: job queue (default s3qbb)")
    p.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="container environment, repeatable"
    )
    p.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    """Run the sub-command."""
    from ..batch.graph import QuantumGraph
    from ..batch.manifests import aws_batch_stages, kubernetes_jobs
    from ..provenance.files import redact
    from .options import load_config_option

    env: dict[str, str] = {}
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"s3qbb submit: --env {item!r} must look like NAME=VALUE.", file=sys.stderr)
            return EXIT_USAGE
        env[key] = value
    for option, where in (("--graph", args.graph), ("--config", args.config)):
        if not where.startswith("s3://"):  # the jobs open it inside their containers, not here
            print(
                f"s3qbb submit: warning: {option} {where} is not an s3:// URI: every job opens this path "
                "inside its container; upload it to S3 unless the image holds it at this path.",
                file=sys.stderr,
            )
    try:
        repo = load_config_option(args.config)
        graph = QuantumGraph.open(args.graph, config=repo.datastore.endpoint_config())
    except S3qbbError as err:
        print(f"s3qbb submit: {redact(str(err))}", file=sys.stderr)
        return EXIT_USAGE
    common: dict[str, Any] = {"image": args.image, "config": args.config, "name": args.name, "env": env}
    try:
        if args.system == "kubernetes":
            jobs = kubernetes_jobs(
                graph, args.graph, parallelism=args.parallelism, retries=args.retries, **common
            )
        else:
            doc = aws_batch_stages(
                graph, args.graph, job_queue=args.job_queue, retries=args.retries, **common
            )
    except S3qbbError as err:
        print(f"s3qbb submit: {err}", file=sys.stderr)
        return EXIT_USAGE
    if args.system == "kubernetes":
        import yaml

        print(
            f"# {len(graph)} quanta in {len(jobs)} stages; apply each Job after the previous one completed."
        )
        print(yaml.safe_dump_all(jobs, sort_keys=False), end="")
    else:
        print(json.dumps(doc, indent=1))
    return 0
