"""Cold start to first put, and the cost of one job, in fresh processes against one server.

Each *variant* is a fresh process that starts Python, imports what it needs,
builds its client (or butler), reads one small input and puts one small
output:

``python``
    ``python -c`` that only records the time: the interpreter's own start, the floor;
``libraries``
    ``python -c`` importing only the libraries a job on the obstore transport is built on
    (pydantic, click, PyYAML, obstore), no s3qbb and no request: the floor of that design;
``config_models``
    ``python -c`` importing s3qbb's configuration models and reading one from the
    environment, as every job does before its first request: the share of pydantic
    (its import and the building of the model classes), no request;
``boto3_script``
    a raw boto3 script: ``import boto3``, a default client, ``get_object``, ``put_object``;
``obstore_script``
    a raw obstore script: ``import obstore``, an ``S3Store``, ``obstore.get``, ``obstore.put``;
``run_quantum``
    ``s3qbb run-quantum`` on a 1-in/1-out quantum (`benchmarks.job_task.copy`), configuration
    and quantum description on S3 as a batch job has them, boto3 transport;
``run_quantum_obstore``
    the same with ``S3QBB_S3_TRANSPORT=obstore`` (when this s3qbb has the obstore transport).

Every process runs from bytecode, as an installed package does
(`benchmarks.child_processes`).

For each, over ``repeats`` rounds (5 by default; variants in rotating order,
after one untimed round): *start to first put* is the wall time from just before the
process is spawned to the moment its put returned (the process appends
``time.time()`` to a file), with the CPU the process had used by then; *job*
is the wall time and CPU (``RUSAGE_CHILDREN``) of the whole process, exit
included, which for ``run-quantum`` includes the upload of the quantum's
three records files. Medians are reported. The requests of each variant are
counted on the wire in one more, untimed, run through a relaying proxy
(`s3qbb.testing.proxy.FaultProxy` injecting no fault) in front of the server.

*Where the start goes*: one more, untimed, run of each ``run-quantum``
variant with ``PYTHONPROFILEIMPORTTIME=1`` (``python -X importtime``), whose
per-module times up to the first put are summed by the library a module
belongs to (`IMPORT_GROUPS`, `parse_importtime`): how much of a job's start
is spent importing pydantic, s3qbb's own modules (building their pydantic
models included, as that happens when a module defines them), click and the
rest. The import profiler slows what it measures; its shares, not its
milliseconds, compare with the timed runs.
"""

from __future__ import annotations

import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .child_processes import compile_bytecode, job_environment
from .job_task import FIRST_PUT_LINE, MARK_ENV, MARK_STDERR_ENV
from .servers import REPO_ROOT

if TYPE_CHECKING:
    from collections.abc import Callable

    from s3qbb.testing.servers import S3TestServer

__all__ = ["BUCKET", "IMPORT_GROUPS", "VARIANTS", "describe_imports", "job_start", "parse_importtime"]

BUCKET = "s3qbb-jobs"
ROOT = "repo"
TASK = "benchmarks.job_task:copy"

VARIANTS = {
    "python": "python -c (interpreter start only)",
    "libraries": "python -c: pydantic, click, PyYAML and obstore imported, no s3qbb, no request",
    "config_models": "python -c: s3qbb's configuration models only (pydantic), no request",
    "boto3_script": "raw boto3 script: import, client, GET, PUT",
    "obstore_script": "raw obstore script: import, S3Store, GET, PUT",
    "run_quantum": "s3qbb run-quantum, 1 in / 1 out, boto3 transport",
    "run_quantum_obstore": "s3qbb run-quantum, 1 in / 1 out, obstore transport",
}
"""The variants, in report order, with their labels."""
_OPTIONAL = frozenset({"libraries", "obstore_script", "run_quantum_obstore"})
"""Variants reported as not available (with the error) when their first run fails."""
_NO_REQUESTS = frozenset({"python", "libraries", "config_models"})
"""Variants that send no request (not counted on the wire)."""

IMPORT_GROUPS: dict[str, tuple[str, ...]] = {
    "pydantic": ("pydantic", "pydantic_core", "annotated_types", "typing_extensions", "typing_inspection"),
    "s3qbb": ("s3qbb",),
    "click": ("click",),
    "PyYAML": ("yaml", "_yaml"),
    "obstore": ("obstore",),
    "boto3": ("boto3", "botocore", "s3transfer", "urllib3", "jmespath", "dateutil", "six", "awscrt"),
    "task": ("benchmarks",),
}
"""Libraries whose import time a job's start is split into, by top-level package; the rest is
``other`` (the standard library, mostly)."""
_GROUP_OF = {package: group for group, packages in IMPORT_GROUPS.items() for package in packages}

_MARK = (
    "def _mark():\n"
    "    import json, os, time\n"
    f"    with open(os.environ[{MARK_ENV!r}], 'a') as out:\n"
    "        out.write(json.dumps({'t': time.time(), 'cpu': time.process_time()}) + '\\n')\n"
)

_PYTHON = _MARK + "_mark()\n"

_LIBRARIES = (
    _MARK
    + """
import click
import obstore
import pydantic
import yaml
from obstore.store import S3Store
from pydantic import BaseModel

_mark()
"""
)

_CONFIG_MODELS = (
    _MARK
    + """
from s3qbb.repo import RepoConfig
from s3qbb.config import S3EndpointConfig

S3EndpointConfig.from_env()
_mark()
"""
)

_BOTO3 = (
    _MARK
    + """
import os
import boto3
from botocore.config import Config

client = boto3.client(
    "s3",
    endpoint_url=os.environ["BENCH_ENDPOINT"],
    region_name="us-east-1",
    config=Config(s3={"addressing_style": "path"}),
)
body = client.get_object(Bucket=os.environ["BENCH_BUCKET"], Key=os.environ["BENCH_INPUT"])["Body"].read()
client.put_object(Bucket=os.environ["BENCH_BUCKET"], Key=os.environ["BENCH_OUTPUT"], Body=body)
_mark()
"""
)

_OBSTORE = (
    _MARK
    + """
import os
import obstore
from obstore.store import S3Store

store = S3Store(
    os.environ["BENCH_BUCKET"],
    endpoint=os.environ["BENCH_ENDPOINT"],
    access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
    secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
    region="us-east-1",
    client_options={"allow_http": True},
    virtual_hosted_style_request=False,
)
body = obstore.get(store, os.environ["BENCH_INPUT"]).bytes()
obstore.put(store, os.environ["BENCH_OUTPUT"], body, mode="create")
_mark()
"""
)


def parse_importtime(stderr: str, until: str | None = None) -> dict[str, float]:
    """Seconds of import time by `IMPORT_GROUPS` group in ``python -X importtime`` output.

    Each module's own (self) time counts once: for the group of its top-level
    package, or else (the standard library, mostly) for the group of the
    nearest module up its import chain that has one (``email``, imported by
    pydantic's plugin loader, counts for pydantic), or else for ``other``
    (what the interpreter imports at start, or a function imports when it
    runs). So the groups add up to the whole import time (``total``). Lines
    after the line ``until`` (if given) are not counted.
    """
    entries: list[tuple[int, str, int]] = []  # (depth, top-level package, self microseconds)
    for line in stderr.splitlines():
        if until is not None and line == until:
            break
        if not line.startswith("import time:"):
            continue
        fields = line.removeprefix("import time:").split("|")
        if len(fields) != 3 or not fields[0].strip().isdigit():
            continue  # the header line
        name = fields[2].rstrip()
        depth = (len(name) - len(name.lstrip()) - 1) // 2
        entries.append((depth, name.strip().split(".")[0], int(fields[0])))
    groups = dict.fromkeys([*IMPORT_GROUPS, "other"], 0.0)
    # The output lists a module after those it imported, one level deeper: read backwards, a
    # module's importer is the last one read at the level above.
    chain: list[str] = []
    for depth, package, self_us in reversed(entries):
        del chain[depth:]
        group = _GROUP_OF.get(package) or (chain[-1] if chain else "other")
        chain.append(group)
        groups[group] += self_us / 1e6
    groups["total"] = sum(groups.values())
    return groups


def describe_imports(imports: dict[str, float]) -> str:
    """One line of a variant's import profile: each group's share of the imports, largest first."""
    total = imports.get("total", 0.0)
    if not total > 0:
        return "no import profile"
    shares = sorted(
        ((group, imports.get(group, 0.0)) for group in [*IMPORT_GROUPS, "other"]), key=lambda g: -g[1]
    )
    parts = ", ".join(f"{group} {sec / total:.0%}" for group, sec in shares if sec / total >= 0.005)
    start = imports.get("start_to_put_s", math.nan)
    of_start = f" ({total / start:.0%} of its start to first put under the profiler)" if start > 0 else ""
    return f"imports to first put{of_start}: {parts}"


def _rusage_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _s3qbb_command() -> list[str]:
    """The ``s3qbb`` console script beside this interpreter, else ``python -m s3qbb``."""
    script = Path(sys.executable).with_name("s3qbb")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "s3qbb"]


class _Jobs:
    """The server-side set-up: configuration, input dataset, raw input object, quanta."""

    def __init__(self, server: S3TestServer, tag: str) -> None:
        import yaml

        from s3qbb import DatasetRef, DatasetType, DimensionUniverse, Quantum, QuantumBackedButler
        from s3qbb.config import S3EndpointConfig

        self.server = server
        self.tag = tag
        self.endpoint = server.endpoint(BUCKET)
        self.client = self.endpoint.client
        self.universe = DimensionUniverse()
        self.out_type = DatasetType(
            "jobout", ["instrument", "visit"], "StructuredDataDict", universe=self.universe
        )
        in_type = DatasetType("jobin", ["instrument", "visit"], "StructuredDataDict", universe=self.universe)
        self.input = DatasetRef(in_type, {"instrument": "Bench", "visit": 0}, f"jobs/{tag}/in")
        payload = {f"key{i:03d}": i for i in range(64)}
        secret = self.endpoint.config.secret_access_key
        endpoint = json.loads(self.endpoint.config.model_dump_json()) | {
            "secret_access_key": secret.get_secret_value() if secret is not None else None
        }
        config = {"datastore": {"root": f"s3://{BUCKET}/{ROOT}", "endpoint": endpoint}}
        writer = QuantumBackedButler.initialize(config, Quantum(outputs=[self.input]), self.universe)
        try:
            writer.put(payload, self.input)
            self.records = writer._datastore.export_records([self.input])
        finally:
            writer.close()
        self.raw_input = f"raw-jobs/{tag}/input.json"
        self.client.put_object(Bucket=BUCKET, Key=self.raw_input, Body=json.dumps(payload).encode())
        self.config_uri = f"s3://{BUCKET}/config/{tag}/butler.yaml"
        self.client.put_object(
            Bucket=BUCKET,
            Key=self.config_uri.removeprefix(f"s3://{BUCKET}/"),
            Body=yaml.safe_dump({"datastore": {"root": f"s3://{BUCKET}/{ROOT}"}}).encode(),
        )
        creds = server.credentials("admin")
        self.env = job_environment(os.environ) | {
            "AWS_ACCESS_KEY_ID": creds.access_key_id,
            "AWS_SECRET_ACCESS_KEY": creds.secret_access_key,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_DEFAULT_REGION": "us-east-1",
            "S3QBB_S3_ENDPOINT_URL": server.endpoint_url,
            "S3QBB_S3_REGION": "us-east-1",
            "S3QBB_S3_ADDRESSING_STYLE": "path",
            "BENCH_ENDPOINT": server.endpoint_url,
            "BENCH_BUCKET": BUCKET,
            "BENCH_INPUT": self.raw_input,
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p),
        }
        self.has_transport = "transport" in S3EndpointConfig.model_fields

    def command(
        self, variant: str, index: int, endpoint_url: str | None = None
    ) -> tuple[list[str], dict[str, str]]:
        """Command line and environment of one run of ``variant`` (against ``endpoint_url`` if given)."""
        env = dict(self.env)
        if endpoint_url is not None:
            env["S3QBB_S3_ENDPOINT_URL"] = env["BENCH_ENDPOINT"] = endpoint_url
        if variant == "python":
            return [sys.executable, "-c", _PYTHON], env
        if variant == "config_models":
            return [sys.executable, "-c", _CONFIG_MODELS], env
        if variant == "libraries":
            return [sys.executable, "-c", _LIBRARIES], env
        if variant in ("boto3_script", "obstore_script"):
            env["BENCH_OUTPUT"] = f"raw-jobs/{self.tag}/{variant}/{index}-{uuid.uuid4().hex[:8]}.json"
            return [sys.executable, "-c", _BOTO3 if variant == "boto3_script" else _OBSTORE], env
        uri = self._upload_quantum(variant, index)
        if self.has_transport:
            env["S3QBB_S3_TRANSPORT"] = "obstore" if variant == "run_quantum_obstore" else "boto3"
        cmd = [*_s3qbb_command(), "run-quantum", uri, "--task", TASK, "--config", self.config_uri]
        return cmd, env

    def _upload_quantum(self, variant: str, index: int) -> str:
        from s3qbb import DatasetRef, Quantum
        from s3qbb.core.wire import quantum_to_simple

        run = f"jobs/{self.tag}/{variant}"
        quantum = Quantum(
            taskLabel="copy",
            taskName="benchmarks.job_task.copy",
            inputs=[self.input],
            outputs=[DatasetRef(self.out_type, {"instrument": "Bench", "visit": index}, run)],
            datastore_records=self.records,
            id=uuid.uuid4(),
        )
        key = f"quanta/{self.tag}/{quantum.id}.json"
        self.client.put_object(
            Bucket=BUCKET, Key=key, Body=quantum_to_simple(quantum).model_dump_json().encode()
        )
        return f"s3://{BUCKET}/{key}"

    def import_profile(self, variant: str, mark_file: Path) -> dict[str, float]:
        """Import time to the first put of one run of ``variant`` by library (`parse_importtime`).

        With the run's start to first put (slowed by the profiler) as ``start_to_put_s``.
        """
        cmd, env = self.command(variant, 20_000)
        env = env | {"PYTHONPROFILEIMPORTTIME": "1", MARK_ENV: str(mark_file), MARK_STDERR_ENV: "1"}
        mark_file.write_text("")
        began = time.time()
        done = subprocess.run(
            cmd, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{variant} (importtime) exited {done.returncode}: {done.stderr[-2000:]}")
        lines = mark_file.read_text().splitlines()
        if FIRST_PUT_LINE not in done.stderr.splitlines():
            raise RuntimeError(f"{variant} (importtime) did not mark its first put: {done.stderr[-2000:]}")
        found = parse_importtime(done.stderr, until=FIRST_PUT_LINE)
        found["start_to_put_s"] = json.loads(lines[0])["t"] - began if lines else math.nan
        return found

    def wire_requests(self, variant: str, mark_file: Path) -> dict[str, int]:
        """Requests one run of ``variant`` sends, counted by a relaying proxy in front of the server."""
        from s3qbb.testing.proxy import FaultProxy

        with FaultProxy(self.server.endpoint_url) as proxy:
            cmd, env = self.command(variant, 10_000, endpoint_url=proxy.url)
            _run_once(cmd, env, mark_file)
            return dict(sorted(proxy.requests.items()))


def _run_once(cmd: list[str], env: dict[str, str], mark_file: Path) -> dict[str, float]:
    mark_file.write_text("")
    env = env | {MARK_ENV: str(mark_file)}
    cpu_before = _rusage_children()
    began = time.time()
    t0 = time.perf_counter()
    done = subprocess.run(
        cmd, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    wall = time.perf_counter() - t0
    cpu = _rusage_children() - cpu_before
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or done.stdout.strip().splitlines() or [""])[-1]
        raise RuntimeError(
            f"{Path(cmd[0]).name} {cmd[1] if len(cmd) > 1 else ''} ... exited {done.returncode}: {last}\n"
            f"{done.stdout[-1000:]}\n{done.stderr[-2000:]}"
        )
    lines = mark_file.read_text().splitlines()
    if not lines:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... did not mark its first put")
    first = json.loads(lines[0])
    return {
        "start_to_put_s": first["t"] - began,
        "cpu_to_put_s": first["cpu"],
        "job_wall_s": wall,
        "job_cpu_s": cpu,
    }


def job_start(
    server: S3TestServer,
    repeats: int = 5,
    *,
    warmup: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure every variant against ``server`` (see the module docstring); return medians and samples.

    Parameters
    ----------
    server : `s3qbb.testing.servers.S3TestServer`
        A running server; it gets a bucket `BUCKET`.
    repeats : `int`, optional
        Timed rounds.
    warmup : `bool`, optional
        Run one untimed round first (file-system caches, ``.pyc`` files).
    progress : `~collections.abc.Callable` [[`str`], `None`], optional
        Where a line per round goes.
    """
    from .shipped import obstore_raw_status, obstore_transport_status

    unavailable: dict[str, str] = {}
    if (why := obstore_raw_status()) is not None:
        unavailable["obstore_script"] = why
        unavailable["libraries"] = why
    if (why := obstore_transport_status()) is not None:
        unavailable["run_quantum_obstore"] = why
    compile_bytecode()
    jobs = _Jobs(server, uuid.uuid4().hex[:8])
    samples: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    tried: set[str] = set()
    tmp = Path(tempfile.mkdtemp(prefix="s3qbb-jobstart-"))
    try:
        for round_ in range(-1 if warmup else 0, repeats):
            variants = [v for v in VARIANTS if v not in unavailable]
            shift = max(round_, 0) % len(variants)
            for variant in [*variants[shift:], *variants[:shift]]:
                cmd, env = jobs.command(variant, round_ + 1)
                try:
                    sample = _run_once(cmd, env, tmp / f"{variant}.mark")
                except RuntimeError as err:
                    if variant not in _OPTIONAL or variant in tried:
                        raise
                    # An optional variant that cannot run at all is reported as not available.
                    unavailable[variant] = f"its first run failed: {(str(err).splitlines() or [''])[0][:300]}"
                    continue
                finally:
                    tried.add(variant)
                if round_ >= 0:
                    samples[variant].append(sample)
            if progress is not None and round_ >= 0:
                progress(f"[{server.name}] job start round {round_ + 1}/{repeats}")
        requests = {
            v: jobs.wire_requests(v, tmp / "wire.mark")
            for v in VARIANTS
            if v not in _NO_REQUESTS and v not in unavailable
        }
        imports = {
            v: jobs.import_profile(v, tmp / "imports.mark")
            for v in ("run_quantum", "run_quantum_obstore")
            if v not in unavailable
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results: dict[str, Any] = {}
    for variant in VARIANTS:
        if variant in unavailable:
            results[variant] = {"label": VARIANTS[variant], "available": False, "why": unavailable[variant]}
            continue
        found = samples[variant]
        results[variant] = {
            "label": VARIANTS[variant],
            "available": True,
            **{key: statistics.median(s[key] for s in found) for key in found[0]},
            "samples": found,
            "requests": requests.get(variant, {}),
        }
        if variant in imports:
            results[variant]["imports"] = imports[variant]
    reference = results["boto3_script"]
    for result in results.values():
        if result["available"]:
            result["start_to_put_vs_boto3"] = result["start_to_put_s"] / reference["start_to_put_s"]
            result["cpu_to_put_vs_boto3"] = result["cpu_to_put_s"] / reference["cpu_to_put_s"]
            result["job_cpu_vs_boto3"] = result["job_cpu_s"] / reference["job_cpu_s"]
    return {"repeats": repeats, "warmup": warmup, "variants": results, "unavailable": unavailable}
