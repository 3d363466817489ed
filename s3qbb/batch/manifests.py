"""Batch-system manifests for a quantum graph: one Kubernetes Indexed Job / AWS Batch array job per stage.

Each stage (dependency level) of the graph becomes one array job whose
elements run ``s3qbb run-quantum --graph G --stage S --config C``; each
element finds its quantum from the index variable its batch system sets
(``JOB_COMPLETION_INDEX``, ``AWS_BATCH_JOB_ARRAY_INDEX``). A stage starts
when the previous one has completed: Kubernetes has no dependency between
Jobs, so apply them in order and wait for each (see :doc:`/pipeline`); the
AWS Batch submissions name the previous stage in ``dependsOn``.

The retry policies follow the job's exit codes (:doc:`/batch`): 0 done (or
already done), 1 the task failed (retrying will not help), 2 usage or
configuration error (no element can succeed), 75 transient infrastructure
failure (retry), 143/130 interrupted (retry). A retried element whose
quantum already succeeded exits 0 at once.
"""

from __future__ import annotations

__all__ = [
    "AWS_BATCH_MAX_ARRAY_SIZE",
    "AWS_BATCH_MAX_ATTEMPTS",
    "EXIT_INTERRUPTED",
    "EXIT_TASK_FAILED",
    "EXIT_TEMPFAIL",
    "EXIT_USAGE",
    "KUBERNETES_MAX_INDEXED_COMPLETIONS",
    "aws_batch_stages",
    "job_command",
    "kubernetes_jobs",
]

import re
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from .graph import QuantumGraph

EXIT_TASK_FAILED = 1
EXIT_USAGE = 2
EXIT_TEMPFAIL = 75
EXIT_INTERRUPTED = (143, 130)

_NAME_RE = re.compile(r"[^a-z0-9-]+")

AWS_BATCH_MAX_ARRAY_SIZE = 10_000
"""Largest AWS Batch array job."""
AWS_BATCH_MAX_ATTEMPTS = 10
"""Most attempts of an AWS Batch job (``retryStrategy.attempts``)."""
KUBERNETES_MAX_INDEXED_COMPLETIONS = 100_000
"""Largest Indexed Job with ``backoffLimitPerIndex``."""


def _check_stage_size(stage: int, size: int, limit: int, system: str) -> None:
    if size > limit:
        raise ConfigError(
            f"Stage {stage} has {size} quanta, more than one {system} array job holds ({limit}); "
            "split the graph (several graphs of fewer quanta per stage) or run it with 's3qbb run'."
        )


def _check_retries(retries: int, most: int | None, system: str) -> None:
    if retries < 0 or (most is not None and retries > most):
        upper = f" to {most}" if most is not None else " or more"
        raise ConfigError(f"{system}: retries must be 0{upper}, not {retries}.")


def _dns_name(text: str) -> str:
    name = _NAME_RE.sub("-", text.lower()).strip("-")
    return name[:50] or "s3qbb"


def job_command(graph_uri: str, config: str, stage: int, *, single: bool = False) -> list[str]:
    """Return the container command of one stage's elements (``--index 0`` when the stage is not an array)."""
    cmd = ["s3qbb", "run-quantum", "--graph", graph_uri, "--stage", str(stage), "--config", config]
    return [*cmd, "--index", "0"] if single else cmd


def kubernetes_jobs(
    graph: QuantumGraph,
    graph_uri: str,
    *,
    image: str,
    config: str,
    name: str = "s3qbb",
    parallelism: int = 100,
    retries: int = 3,
    grace_period_s: int = 30,
    env: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Return one Kubernetes Indexed Job per stage of the graph.

    Parameters
    ----------
    graph : `~s3qbb.batch.graph.QuantumGraph`
        The graph.
    graph_uri : `str`
        Where the jobs read the graph (an ``s3://`` URI).
    image : `str`
        Container image with s3qbb and the tasks installed.
    config : `str`
        Repository configuration the jobs read (an ``s3://`` URI).
    name : `str`, optional
        Prefix of the Job names.
    parallelism : `int`, optional
        Pods running at once per stage.
    retries : `int`, optional
        Retries per index (``backoffLimitPerIndex``) for retryable exits.
    grace_period_s : `int`, optional
        ``terminationGracePeriodSeconds``: time between SIGTERM and SIGKILL.
    env : `dict` [`str`, `str`], optional
        Environment of the container.

    Returns
    -------
    jobs : `list` [`dict`]
        The Job manifests, stage 0 first.

    Raises
    ------
    ConfigError
        If a stage has more quanta than an Indexed Job holds, ``retries`` is
        negative or ``parallelism`` below 1.
    """
    _check_retries(retries, None, "Kubernetes")
    if parallelism < 1:
        raise ConfigError(f"Kubernetes: parallelism must be at least 1, not {parallelism}.")
    prefix = _dns_name(name)
    jobs = []
    for stage, nodes in enumerate(graph.levels()):
        _check_stage_size(stage, len(nodes), KUBERNETES_MAX_INDEXED_COMPLETIONS, "Kubernetes Indexed Job")
        labels = {"app.kubernetes.io/name": "s3qbb", "s3qbb/stage": str(stage)}
        container: dict[str, Any] = {
            "name": "quantum",
            "image": image,
            "command": job_command(graph_uri, config, stage),
        }
        if env:
            container["env"] = [{"name": k, "value": v} for k, v in sorted(env.items())]
        jobs.append(
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {
                    "name": f"{prefix}-stage-{stage}",
                    "labels": labels,
                    "annotations": {
                        "s3qbb/graph": graph_uri,
                        "s3qbb/tasks": ",".join(sorted({n.label for n in nodes})),
                    },
                },
                "spec": {
                    "completionMode": "Indexed",
                    "completions": len(nodes),
                    "parallelism": min(parallelism, len(nodes)),
                    "backoffLimitPerIndex": retries,
                    "maxFailedIndexes": len(nodes),
                    "podFailurePolicy": {
                        "rules": [
                            # A task failure fails its index only; the other quanta go on.
                            {
                                "action": "FailIndex",
                                "onExitCodes": {
                                    "containerName": "quantum",
                                    "operator": "In",
                                    "values": [EXIT_TASK_FAILED],
                                },
                            },
                            # A usage/configuration error fails every index alike: stop the Job.
                            {
                                "action": "FailJob",
                                "onExitCodes": {
                                    "containerName": "quantum",
                                    "operator": "In",
                                    "values": [EXIT_USAGE],
                                },
                            },
                            # Evicted or preempted: retry without counting against the budget.
                            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                            # Transient failure, interrupted: retry, counted (backoffLimitPerIndex).
                            {
                                "action": "Count",
                                "onExitCodes": {
                                    "containerName": "quantum",
                                    "operator": "In",
                                    "values": [EXIT_TEMPFAIL, *EXIT_INTERRUPTED],
                                },
                            },
                        ]
                    },
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "restartPolicy": "Never",
                            "terminationGracePeriodSeconds": grace_period_s,
                            "containers": [container],
                        },
                    },
                },
            }
        )
    return jobs


def aws_batch_stages(
    graph: QuantumGraph,
    graph_uri: str,
    *,
    image: str,
    config: str,
    job_queue: str = "s3qbb",
    name: str = "s3qbb",
    retries: int = 3,
    vcpus: float = 1.0,
    memory_mib: int = 2048,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Return AWS Batch job definitions and array-job submissions, one per stage.

    Each stage holds a ``registerJobDefinition`` request and a ``submitJob``
    request (an array job of the stage's size; a plain job with ``--index
    0`` when the stage has one quantum, since AWS Batch arrays have at least
    two elements). ``dependsOn`` of stage ``S`` names the job ID of stage
    ``S-1`` as ``"${STAGE_<S-1>_JOB_ID}"``, to be replaced by the ID that
    ``aws batch submit-job`` returned (see :doc:`/pipeline`).

    Parameters
    ----------
    graph : `~s3qbb.batch.graph.QuantumGraph`
        The graph.
    graph_uri : `str`
        Where the jobs read the graph (an ``s3://`` URI).
    image : `str`
        Container image with s3qbb and the tasks installed.
    config : `str`
        Repository configuration the jobs read (an ``s3://`` URI).
    job_queue : `str`, optional
        The job queue.
    name : `str`, optional
        Prefix of the job and job definition names.
    retries : `int`, optional
        Retries per element for retryable exits, 0 to 9 (``retryStrategy.attempts``
        is one more: AWS Batch counts the first attempt).
    vcpus, memory_mib : `float`, `int`, optional
        Resources of each element.
    env : `dict` [`str`, `str`], optional
        Environment of the container.

    Returns
    -------
    document : `dict`
        ``{"stages": [{"stage", "quanta", "registerJobDefinition", "submitJob"}, ...]}``.

    Raises
    ------
    ConfigError
        If a stage has more quanta than an AWS Batch array job holds, or
        ``retries`` is out of range.
    """
    _check_retries(retries, AWS_BATCH_MAX_ATTEMPTS - 1, "AWS Batch")
    prefix = _dns_name(name)
    stages = []
    retry_strategy = {
        "attempts": retries + 1,  # the first attempt counts: --retries 3 retries 3 times, as on Kubernetes
        "evaluateOnExit": [
            {"onExitCode": str(EXIT_TEMPFAIL), "action": "RETRY"},
            {"onExitCode": "143", "action": "RETRY"},
            {"onStatusReason": "Host EC2*", "action": "RETRY"},  # instance reclaimed (Spot) or lost
            {"onReason": "*", "action": "EXIT"},  # 1 task failed, 2 usage error, anything else
        ],
    }
    for stage, nodes in enumerate(graph.levels()):
        _check_stage_size(stage, len(nodes), AWS_BATCH_MAX_ARRAY_SIZE, "AWS Batch")
        single = len(nodes) == 1
        definition_name = f"{prefix}-stage-{stage}"
        container: dict[str, Any] = {
            "image": image,
            "command": job_command(graph_uri, config, stage, single=single),
            "resourceRequirements": [
                {"type": "VCPU", "value": f"{vcpus:g}"},
                {"type": "MEMORY", "value": str(memory_mib)},
            ],
        }
        if env:
            container["environment"] = [{"name": k, "value": v} for k, v in sorted(env.items())]
        submit: dict[str, Any] = {
            "jobName": definition_name,
            "jobQueue": job_queue,
            "jobDefinition": definition_name,
        }
        if not single:
            submit["arrayProperties"] = {"size": len(nodes)}
        if stage > 0:
            submit["dependsOn"] = [{"jobId": f"${{STAGE_{stage - 1}_JOB_ID}}"}]
        stages.append(
            {
                "stage": stage,
                "quanta": len(nodes),
                "registerJobDefinition": {
                    "jobDefinitionName": definition_name,
                    "type": "container",
                    "containerProperties": container,
                    "retryStrategy": retry_strategy,
                    "tags": {"s3qbb-graph": graph_uri},
                },
                "submitJob": submit,
            }
        )
    return {"stages": stages}
