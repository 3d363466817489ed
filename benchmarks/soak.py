"""Soak test: puts and gets through QuantumBackedButler while a FaultProxy breaks a fraction of requests.

``python -m benchmarks.soak`` starts SeaweedFS, puts ``--ops`` datasets of
mixed sizes (1 KiB to 8 MiB, some above the lowered 5 MiB multipart
threshold) through producer quanta, then reads each one back through consumer
quanta, all via a `~s3qbb.testing.proxy.FaultProxy` that faults
``--fault-rate`` of the requests across every fault kind. Finally it checks
every dataset through a raw boto3 client connected straight to SeaweedFS
(not through the proxy) and prints a table:

* lost: outputs the butler said it wrote that are missing;
* corrupted: stored bytes, or bytes a get returned, that differ from what was put;
* spurious errors: errors raised to the caller other than
  `~s3qbb.errors.TransientStorageError` after an exhausted retry budget
  (those are counted separately as give-ups);
* wrong answers: ``stored_many`` saying a written dataset is missing.

The goal is 0 lost, 0 corrupted, 0 spurious, 0 wrong. Results also go to a
JSON file (``benchmarks/results/soak-<time>.json`` by default).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import threading
import time
import uuid
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s3qbb.butler.quantum_backed import ProvenanceWarning, QuantumBackedButler
from s3qbb.core.dataset_ref import DatasetRef
from s3qbb.core.dataset_type import DatasetType
from s3qbb.core.dimensions import DimensionUniverse
from s3qbb.errors import TransientStorageError
from s3qbb.testing.proxy import PROXY_FAULT_KINDS, FaultProxy

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mypy_boto3_s3 import S3Client

    from s3qbb.core.records import DatastoreRecordData
    from s3qbb.testing.servers import S3TestServer

__all__ = ["SoakConfig", "SoakResult", "format_table", "main", "run_soak"]

RESULTS_DIR = Path(__file__).resolve().parent / "results"
_RUN = "soak/run"
_MIB = 1024**2


@dataclass(frozen=True)
class SoakConfig:
    """What one soak run does."""

    ops: int = 1000
    """Datasets put, then read back (so ``ops`` puts and ``ops`` gets)."""
    fault_rate: float = 0.2
    """Fraction of all HTTP requests the proxy faults."""
    seed: int = 20261123
    """Seed of the sizes, the payloads and the proxy's fault choices."""
    min_size: int = 1024
    max_size: int = 8 * _MIB
    large_fraction: float = 0.1
    """Fraction of datasets sized between the multipart threshold and ``max_size``."""
    multipart_threshold: int = 5 * _MIB
    multipart_chunksize: int = 5 * _MIB
    outputs_per_quantum: int = 20
    workers: int = 8
    """Quanta run in parallel (threads)."""
    max_attempts: int = 10
    initial_backoff: float = 0.001
    max_backoff: float = 0.01
    read_timeout: float = 0.5
    """Client read timeout (seconds); ``slow_delay`` beyond it makes slow responses time out."""
    slow_delay: float = 0.75
    """Seconds a ``slow_first_byte`` fault holds the response back."""
    transport: str = "boto3"
    """S3 transport of the datastore (``"boto3"`` or ``"obstore"``)."""
    kinds: tuple[str, ...] = tuple(
        k for k in PROXY_FAULT_KINDS if k not in ("corrupt", "corrupt_request", "skewed")
    )
    """Fault kinds; ``corrupt`` (a flipped response bit) is left out: twice on one GET it is a
    correct `DatasetIntegrityError`, and in a listing it would alter a key name unnoticed; so are
    ``corrupt_request`` (a flipped upload bit) and ``skewed`` (a clock refused): the server's
    refusal is a correct error, not retried."""


@dataclass
class SoakResult:
    """Counts of one soak run (see the module docstring for the definitions)."""

    config: dict[str, Any]
    puts: int = 0
    puts_ok: int = 0
    bytes_put: int = 0
    gets: int = 0
    gets_ok: int = 0
    quanta: int = 0
    quanta_finished: int = 0
    requests: int = 0
    requests_by_operation: dict[str, int] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)
    attempts: int = 0
    retries: int = 0
    transient_errors: dict[str, int] = field(default_factory=dict)
    gave_up: int = 0
    """Operations that raised TransientStorageError (retry budget exhausted)."""
    gave_up_applied: int = 0
    """Puts that gave up although their object was in fact written (reported, not lost)."""
    lost: int = 0
    corrupted: int = 0
    spurious: int = 0
    wrong_answers: int = 0
    records_files_missing: int = 0
    relay_errors: int = 0
    wall_seconds: float = 0.0
    examples: list[str] = field(default_factory=list)
    """First few spurious errors / problems, for diagnosis."""

    @property
    def clean(self) -> bool:
        """Whether nothing was lost, corrupted, wrongly reported or spuriously raised."""
        problems = (self.lost, self.corrupted, self.spurious, self.wrong_answers, self.records_files_missing)
        return not any(problems)


@dataclass
class _Item:
    ref: DatasetRef
    size: int
    seed: int
    digest: str = ""
    key: str | None = None
    """Object key once the butler said it wrote the dataset."""
    put_error: str | None = None


class _Tally:
    """Thread-safe accumulation of outcomes."""

    def __init__(self, result: SoakResult) -> None:
        self.lock = threading.Lock()
        self.result = result
        self.errors: Counter[str] = Counter()

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, value in counts.items():
                setattr(self.result, name, getattr(self.result, name) + value)

    def problem(self, name: str, message: str) -> None:
        with self.lock:
            setattr(self.result, name, getattr(self.result, name) + 1)
            if len(self.result.examples) < 20:
                self.result.examples.append(f"{name}: {message[:500]}")

    def retry_stats(self, butler: QuantumBackedButler) -> None:
        # The butler builds its datastore (and retry policy) from the configuration: read its counters.
        stats = butler._datastore.retry.stats.snapshot()  # type: ignore[attr-defined]
        with self.lock:
            self.result.attempts += stats.attempts
            self.result.retries += stats.retries
            self.errors.update(stats.errors)


def _payload(item: _Item) -> bytes:
    return random.Random(item.seed).randbytes(item.size)


def _sizes(config: SoakConfig, rng: random.Random) -> list[int]:
    sizes = []
    small_max = min(config.max_size, config.multipart_threshold - 1)
    for _ in range(config.ops):
        if config.max_size >= config.multipart_threshold and rng.random() < config.large_fraction:
            sizes.append(rng.randint(config.multipart_threshold, config.max_size))
        else:
            sizes.append(int(config.min_size * (small_max / config.min_size) ** rng.random()))
    return sizes


def _repo_config(config: SoakConfig, server: S3TestServer, bucket: str, url: str) -> dict[str, Any]:
    creds = server.credentials("admin")
    endpoint = {
        "endpoint_url": url,
        "region": "us-east-1",
        "addressing_style": "path",
        "access_key_id": creds.access_key_id,
        "secret_access_key": creds.secret_access_key,
        "read_timeout": config.read_timeout,
        "multipart_threshold": config.multipart_threshold,
        "multipart_chunksize": config.multipart_chunksize,
        "transport": config.transport,
        "retry": {
            "max_attempts": config.max_attempts,
            "initial_backoff": config.initial_backoff,
            "max_backoff": config.max_backoff,
        },
    }
    return {"datastore": {"root": f"s3://{bucket}/soak", "endpoint": endpoint}, "cache": {"enabled": False}}


def _gave_up(err: BaseException) -> bool:
    """Tell whether an error is, or was caused by, a retry budget running out."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, TransientStorageError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _finish(butler: QuantumBackedButler, tally: _Tally, uploaded: list[str]) -> None:
    """Count a quantum whose ``with`` block ended, and the files its finish() uploaded."""
    uploaded.extend(str(uri) for uri in butler.finish().uris)  # finish() already ran: its result
    tally.add(quanta_finished=1)


def _failed(butler: QuantumBackedButler, tally: _Tally, what: str, err: BaseException) -> None:
    if _gave_up(err):
        tally.add(gave_up=1)
    else:
        tally.problem("spurious", f"{what} of quantum {butler.quantum_id}: {type(err).__name__}: {err}")


def _produce(
    repo: dict[str, Any], universe: DimensionUniverse, items: list[_Item], tally: _Tally, uploaded: list[str]
) -> dict[str, DatastoreRecordData]:
    """Run one producer quantum; return the records of its outputs."""
    butler = QuantumBackedButler.from_predicted(
        repo, [], [i.ref.id for i in items], universe, {}, run=_RUN, quantum_id=uuid.uuid4()
    )
    try:
        with butler:
            for item in items:
                tally.add(puts=1)
                try:
                    butler.put(_payload(item), item.ref)
                except Exception as err:
                    item.put_error = f"{type(err).__name__}: {err}"
                    item.key = _key(butler.getURI(item.ref, predict=True))
                    _failed(butler, tally, f"put {item.ref}", err)
                    continue
                item.key = _key(butler.getURI(item.ref))
                tally.add(puts_ok=1, bytes_put=item.size)
        _finish(butler, tally, uploaded)
    except Exception as err:
        _failed(butler, tally, "finish", err)
    finally:
        tally.add(quanta=1)
        tally.retry_stats(butler)
    return butler.extract_provenance_data().datastore_record_data()


def _key(uri: object) -> str:
    return str(uri).removeprefix("s3://").split("/", 1)[1].removesuffix("#predicted")


def _consume(
    repo: dict[str, Any],
    universe: DimensionUniverse,
    items: list[_Item],
    records: dict[str, DatastoreRecordData],
    tally: _Tally,
    uploaded: list[str],
) -> None:
    """Run one consumer quantum reading every dataset its producer wrote."""
    written = [i for i in items if i.put_error is None]
    refs = [i.ref for i in written]
    butler = QuantumBackedButler.from_predicted(
        repo, [r.id for r in refs], [], universe, records, run=_RUN, quantum_id=uuid.uuid4()
    )
    try:
        with butler:
            try:
                existence = butler.stored_many(refs)
            except Exception as err:
                _failed(butler, tally, "stored_many", err)
            else:
                for ref in refs:
                    if not existence[ref]:
                        tally.problem("wrong_answers", f"stored_many says {ref} is missing")
            for item in written:
                tally.add(gets=1)
                try:
                    data = butler.get(item.ref)
                except Exception as err:
                    _failed(butler, tally, f"get {item.ref}", err)
                    continue
                if hashlib.sha256(data).hexdigest() != item.digest:
                    tally.problem("corrupted", f"get {item.ref} returned {len(data)} bytes that differ")
                else:
                    tally.add(gets_ok=1)
        _finish(butler, tally, uploaded)
    except Exception as err:
        _failed(butler, tally, "finish", err)
    finally:
        tally.add(quanta=1)
        tally.retry_stats(butler)


def _verify(client: S3Client, bucket: str, items: list[_Item], uploaded: list[str], tally: _Tally) -> None:
    """Check every dataset (and records file) straight on the server, not through the proxy."""
    import botocore.exceptions

    def fetch(key: str) -> bytes | None:
        try:
            body: bytes = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except botocore.exceptions.ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        return body

    def check(item: _Item) -> None:
        assert item.key is not None
        data = fetch(item.key)
        if item.put_error is not None:  # not reported written: not lost, but was it applied?
            if data is not None:
                tally.add(gave_up_applied=1)
        elif data is None:
            tally.problem("lost", f"{item.ref} at s3://{bucket}/{item.key} is missing")
        elif hashlib.sha256(data).hexdigest() != item.digest:
            tally.problem("corrupted", f"{item.ref} at s3://{bucket}/{item.key}: stored bytes differ")

    def check_file(uri: str) -> None:
        try:
            client.head_object(Bucket=bucket, Key=_key(uri))
        except botocore.exceptions.ClientError:
            tally.problem("records_files_missing", f"{uri} reported uploaded but missing")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(check, items))
        list(pool.map(check_file, uploaded))


def run_soak(server: S3TestServer, bucket: str, config: SoakConfig | None = None) -> SoakResult:
    """Run a soak test against a running server's (existing, empty) bucket.

    Parameters
    ----------
    server : `s3qbb.testing.servers.S3TestServer`
        The server; a FaultProxy is put in front of it for the run.
    bucket : `str`
        Bucket to write under ``soak/``.
    config : `SoakConfig`, optional
        What to do; the full run by default.

    Returns
    -------
    result : `SoakResult`
        The counts.
    """
    config = config or SoakConfig()
    result = SoakResult(config=asdict(config))
    tally = _Tally(result)
    rng = random.Random(config.seed)
    universe = DimensionUniverse()
    dataset_type = DatasetType("soak_blob", ("instrument", "visit", "detector"), "Bytes", universe=universe)
    per = config.outputs_per_quantum
    items = [
        _Item(DatasetRef(dataset_type, {"instrument": "Soak", "visit": n // per, "detector": n % per}, _RUN),
              size, rng.getrandbits(63))
        for n, size in enumerate(_sizes(config, rng))
    ]  # fmt: skip
    for item in items:
        item.digest = hashlib.sha256(_payload(item)).hexdigest()
    batches = [items[i : i + per] for i in range(0, len(items), per)]
    weights = dict.fromkeys(config.kinds, 1.0)
    uploaded: list[str] = []
    started = time.monotonic()
    with (
        FaultProxy(
            server.endpoint_url, rate=config.fault_rate, kinds=weights, seed=config.seed,
            slow_delay=config.slow_delay,
        ) as proxy,
        warnings.catch_warnings(),
        ThreadPoolExecutor(config.workers, thread_name_prefix="soak-quantum") as pool,
    ):  # fmt: skip
        warnings.simplefilter("ignore", ProvenanceWarning)
        repo = _repo_config(config, server, bucket, proxy.url)
        records = list(pool.map(lambda b: _produce(repo, universe, b, tally, uploaded), batches))
        pairs = list(zip(batches, records, strict=True))
        list(pool.map(lambda pair: _consume(repo, universe, pair[0], pair[1], tally, uploaded), pairs))
        result.requests = proxy.requests.total()
        result.requests_by_operation = dict(proxy.requests.most_common())
        result.faults = {kind: proxy.injected[kind] for kind in config.kinds}
        result.relay_errors = proxy.relay_errors
    result.wall_seconds = time.monotonic() - started
    result.transient_errors = dict(tally.errors.most_common())
    _verify(server.client("admin"), bucket, items, uploaded, tally)
    return result


def format_table(result: SoakResult) -> str:
    """Return the result as a two-column plain-text table."""
    c = result.config
    faults = sum(result.faults.values())
    rows: list[tuple[str, str]] = [
        ("operations", f"{result.puts} puts ({result.puts_ok} ok), {result.gets} gets ({result.gets_ok} ok), "
                       f"{result.quanta} quanta ({result.quanta_finished} finished)"),
        ("data put, then read", f"{result.bytes_put / _MIB:.0f} MiB"),
        ("HTTP requests via proxy", f"{result.requests}"),
        ("faults injected", f"{faults} ({faults / max(result.requests, 1):.1%} of requests)"),
        *((f"  {kind}", str(n)) for kind, n in result.faults.items()),
        ("attempts / retries", f"{result.attempts} / {result.retries}"),
        ("transient errors seen", ", ".join(f"{k} {v}" for k, v in result.transient_errors.items()) or "-"),
        ("gave up (budget exhausted)", f"{result.gave_up} ({result.gave_up_applied} puts applied anyway)"),
        ("lost", str(result.lost)),
        ("corrupted", str(result.corrupted)),
        ("spurious errors", str(result.spurious)),
        ("wrong stored_many answers", str(result.wrong_answers)),
        ("records files missing", str(result.records_files_missing)),
        ("proxy relay errors", str(result.relay_errors)),
        ("wall time", f"{result.wall_seconds:.1f} s"),
        ("retry policy", f"max_attempts={c['max_attempts']}, backoff {c['initial_backoff']}.."
                         f"{c['max_backoff']} s full jitter, read_timeout={c['read_timeout']} s, "
                         f"slow_delay={c['slow_delay']} s"),
        ("sizes", f"{c['min_size']} B .. {c['max_size'] / _MIB:g} MiB, {c['large_fraction']:.0%} >= "
                  f"multipart threshold {c['multipart_threshold'] / _MIB:g} MiB; "
                  f"{c['workers']} quanta in parallel"),
    ]  # fmt: skip
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the soak test against a fresh SeaweedFS server; return 0 if it was clean."""
    from s3qbb.testing.servers import SeaweedFSServer

    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=1000, help="puts, and then gets (default 1000)")
    parser.add_argument("--fault-rate", type=float, default=0.2, help="fraction of requests faulted (0.2)")
    parser.add_argument("--seed", type=int, default=SoakConfig.seed, help="seed of sizes and faults")
    parser.add_argument("--max-attempts", type=int, default=SoakConfig.max_attempts, help="retry attempts")
    parser.add_argument("--workers", type=int, default=SoakConfig.workers, help="quanta in parallel")
    parser.add_argument("--transport", choices=("boto3", "obstore"), default="boto3", help="S3 transport")
    parser.add_argument("--json", type=Path, help="where to write the results (default benchmarks/results/)")
    args = parser.parse_args(argv)
    config = SoakConfig(
        ops=args.ops, fault_rate=args.fault_rate, seed=args.seed, max_attempts=args.max_attempts,
        workers=args.workers, transport=args.transport,
    )  # fmt: skip
    with SeaweedFSServer() as server:
        endpoint = server.endpoint("s3qbb-soak")
        result = run_soak(server, endpoint.bucket, config)
    print(format_table(result))
    path = args.json or RESULTS_DIR / f"soak-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**asdict(result), "clean": result.clean}, indent=1) + "\n")
    print(f"results: {path}")
    for example in result.examples:
        print(f"  {example}", file=sys.stderr)
    return 0 if result.clean else 1


if __name__ == "__main__":
    raise SystemExit(main())
