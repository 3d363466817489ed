"""Ingest the per-quantum files of a run into a registry: list, download in parallel, validate, insert.

The pipeline: one listing of ``<run>/_records/`` (one LIST request per 1,000
keys, which also gives each file's ETag); one query for the quanta already in
the registry (those whose files have the ETags read last time are skipped,
which makes a second ingest add nothing and an interrupted one resume; files
rewritten since, by a later attempt or a recovery, are read again and the
last attempt wins); parallel downloads (three GETs per quantum: provenance,
report and records file), each file validated in the worker thread (pydantic;
the records file by `~s3qbb.registry.records_check.check_records_file`); rows inserted by the calling
thread in batches, one transaction per batch, while the workers go on
downloading. Files that fail are reported with their key and skipped.
"""

from __future__ import annotations

__all__ = ["TextProgressBar", "ingest_run"]

import collections
import itertools
import logging
import threading
import time
import urllib.parse
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, TextIO

from ..errors import ConfigError
from .results import IngestFailure, IngestProgress, IngestSummary
from .rows import QuantumRows, build_rows
from .sources import (
    DEFAULT_MAX_FILE_BYTES,
    FetchResult,
    QuantumFiles,
    encoded_run_prefix,
    fetch_quantum,
    list_run,
    parse_run_uri,
)
from .writer import BatchOutcome

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..config import S3EndpointConfig
    from ..s3.objects import S3Bucket
    from .writer import RegistryWriter


class TextProgressBar:
    """A progress callback drawing one self-updating line on a text stream.

    Parameters
    ----------
    stream : `typing.TextIO`
        Where to draw (a terminal: ``sys.stderr``).
    width : `int`, optional
        Characters of the bar itself.
    min_interval : `float`, optional
        Seconds between redraws (the last state is always drawn).
    clock : `~collections.abc.Callable` [[], `float`], optional
        Monotonic clock.

    Examples
    --------
    >>> import io
    >>> from s3qbb.registry import IngestProgress, TextProgressBar
    >>> out = io.StringIO()
    >>> bar = TextProgressBar(out, width=10)
    >>> bar(IngestProgress(total=4, done=2, quanta_added=2, failures=0, bytes_downloaded=2048))
    >>> out.getvalue().strip()
    '[#####.....] 2/4 quanta, 2 added, 0 failed, 2.0 KiB'
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        width: int = 30,
        min_interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._width = width
        self._min_interval = min_interval
        self._clock = clock
        self._last = -float("inf")
        self._drawn = False
        self._length = 0

    def __call__(self, progress: IngestProgress) -> None:
        """Draw the progress (at most every ``min_interval`` seconds, and always when done)."""
        now = self._clock()
        if progress.done < progress.total and now - self._last < self._min_interval:
            return
        self._last = now
        filled = self._width if progress.total == 0 else self._width * progress.done // progress.total
        size = float(progress.bytes_downloaded)
        unit = "B"
        for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
            if size < 1024 or unit == "TiB":
                break
            size /= 1024
        line = (
            f"[{'#' * filled}{'.' * (self._width - filled)}] {progress.done}/{progress.total} quanta, "
            f"{progress.quanta_added} added, {progress.failures} failed, {size:.1f} {unit}"
        )
        # Blank what a longer previous line leaves ("1023.9 KiB" then "1.0 MiB" showed "1.0 MiBiB").
        self._stream.write(f"\r{line}{' ' * (self._length - len(line))}")
        self._length = len(line)
        self._stream.flush()
        self._drawn = True

    def close(self) -> None:
        """End the line, if anything was drawn."""
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = False
            self._length = 0


_LOG = logging.getLogger(__name__)


def _holds_keys(bucket: S3Bucket, prefix: str) -> bool:
    """Whether any key starts with ``prefix`` (one LIST)."""
    return any(bool(page) for page in itertools.islice(bucket.list_keys(prefix), 1))


class _Requests:
    """Thread-safe request counter passed to `~s3qbb.s3.objects.S3Bucket`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()

    def __call__(self, operation: str) -> None:
        with self._lock:
            self.counts[operation] += 1


def _default_run(prefix: str) -> str | None:
    last = prefix.rstrip("/").rpartition("/")[2]
    return urllib.parse.unquote(last) or None


def ingest_run(
    writer: RegistryWriter,
    uri: str,
    *,
    registry_name: str,
    config: S3EndpointConfig | None = None,
    workers: int = 16,
    batch_size: int = 200,
    progress: Callable[[IngestProgress], None] | None = None,
    run: str | None = None,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    bucket: S3Bucket | None = None,
) -> IngestSummary:
    """Ingest one run's per-quantum files; see `s3qbb.registry.Registry.ingest_run`.

    Parameters
    ----------
    writer : `~s3qbb.registry.writer.RegistryWriter`
        Inserts rows into the registry.
    uri : `str`
        ``s3://bucket/root/<run>/``: the run's prefix as stored (its name
        sanitised), or its own name (``s3://bucket/root/rün/日本/``), read at
        its sanitised prefix when nothing is under the URI as given
        (`~s3qbb.registry.sources.encoded_run_prefix`); `IngestSummary.uri`
        says which prefix was read.
    registry_name : `str`
        The registry URL without password, for the summary.
    config : `~s3qbb.config.S3EndpointConfig`, optional
        S3 endpoint; from the environment if not given.
    workers : `int`, optional
        Parallel downloads.
    batch_size : `int`, optional
        Quanta per transaction.
    progress : `~collections.abc.Callable` [[`IngestProgress`], `None`], optional
        Called from the calling thread after each quantum and each batch.
    run : `str`, optional
        Run of quanta that leave no report and whose outputs name none; the
        last segment of the URI (percent-decoded) by default.
    max_file_bytes : `int`, optional
        Largest file downloaded.
    bucket : `~s3qbb.s3.objects.S3Bucket`, optional
        Bucket to read instead of one built from ``config`` (for tests).

    Returns
    -------
    summary : `IngestSummary`
        What was added, skipped and reported.
    """
    if workers < 1 or batch_size < 1 or max_file_bytes < 1:
        raise ConfigError(
            f"ingest needs workers, batch_size and max_file_bytes of at least 1, not {workers}, "
            f"{batch_size} and {max_file_bytes}."
        )
    started = time.monotonic()
    bucket_name, prefix = parse_run_uri(uri)
    requests = _Requests()
    if bucket is None:
        from ..config import S3EndpointConfig
        from ..s3.objects import S3Bucket

        config = config or S3EndpointConfig.from_env()
        bucket = S3Bucket.open(config, bucket_name, count=requests)
    listed = list_run(bucket, prefix)
    if listed.files == 0:
        # The URI may name the run by its own name (s3://bkt/repo/rün/日本/), stored sanitised.
        encoded = encoded_run_prefix(prefix, lambda p: _holds_keys(bucket, p))
        found = None if encoded is None else list_run(bucket, encoded)
        if encoded is not None and found is not None and (found.files or _holds_keys(bucket, encoded)):
            _LOG.info(
                "Nothing under s3://%s/%s: reading the run at s3://%s/%s, its name as s3qbb stores it "
                "(sanitised).",
                bucket_name,
                prefix,
                bucket_name,
                encoded,
            )
            prefix, listed = encoded, found
    failures: list[IngestFailure] = list(listed.rejected)
    present = writer.existing_quanta(listed.quanta)
    # A quantum whose files are those read last time (same listed ETags) is skipped without a download;
    # rewritten files (a later attempt, a recovery) are read, and the writer keeps the last attempt.
    unchanged = {q for q, tag in present.items() if tag is not None and tag == listed.quanta[q].files_tag}
    todo = [listed.quanta[q] for q in sorted(listed.quanta) if q not in unchanged]
    default_run = run or _default_run(prefix)
    totals = BatchOutcome()
    skipped = len(unchanged)
    done = 0
    downloaded = 0
    pending: list[QuantumRows] = []

    def report() -> None:
        if progress is not None:
            progress(IngestProgress(len(todo), done, totals.quanta_added, len(failures), downloaded))

    def flush() -> None:
        nonlocal skipped
        if not pending:
            return
        outcome = writer.write(pending)
        totals.add(outcome)
        failures.extend(outcome.failures)
        skipped += len(pending) - outcome.quanta_added - outcome.quanta_replaced - len(outcome.failures)
        pending.clear()
        report()

    report()
    window = 2 * batch_size + 2 * workers  # downloads go on while a batch is inserted

    def fetch(files: QuantumFiles) -> tuple[FetchResult, QuantumRows | None, IngestFailure | None]:
        # In the worker thread: download, validate and build the rows, so the calling thread only inserts.
        # The bundle's models are dropped once its rows are built: results wait in the queue, and fewer
        # objects kept alive means fewer for the garbage collector to go through.
        result = fetch_quantum(bucket, files, max_file_bytes=max_file_bytes)
        bundle = result.bundle
        if bundle is None:
            return result, None, None
        result = FetchResult(None, result.failures, result.bytes_downloaded)
        try:
            return result, build_rows(bundle, default_run=default_run), None
        except ValueError as err:
            return result, None, IngestFailure(bundle.source, str(err))

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s3qbb-ingest")
    try:
        queue: collections.deque[Future[tuple[FetchResult, QuantumRows | None, IngestFailure | None]]]
        queue = collections.deque()
        remaining = iter(todo)
        for files in remaining:
            queue.append(pool.submit(fetch, files))
            if len(queue) >= window:
                break
        while queue:
            result, rows, problem = queue.popleft().result()
            nxt: QuantumFiles | None = next(remaining, None)
            if nxt is not None:
                queue.append(pool.submit(fetch, nxt))
            downloaded += result.bytes_downloaded
            failures.extend(result.failures)
            if problem is not None:
                failures.append(problem)
            if rows is not None:
                pending.append(rows)
            done += 1
            if len(pending) >= batch_size:
                flush()
            else:
                report()
        flush()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if totals.quanta_added or totals.quanta_replaced:
        writer.analyze()
    return IngestSummary(
        uri=f"s3://{bucket_name}/{prefix}",
        registry=registry_name,
        quanta_listed=len(listed.quanta),
        quanta_added=totals.quanta_added,
        quanta_replaced=totals.quanta_replaced,
        quanta_skipped=skipped,
        datasets_added=totals.datasets_added,
        records_added=totals.records_added,
        bytes_downloaded=downloaded,
        failures=failures,
        elapsed_s=time.monotonic() - started,
        requests=dict(requests.counts),
    )
