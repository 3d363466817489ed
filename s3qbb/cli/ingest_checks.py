"""Why ``s3qbb ingest`` found no per-quantum files: a mistyped run, the repository root, or neither.

Called only when the listing of ``<run>/_records/`` came back empty (under the
URI as given and, when its run part needs encoding, under its sanitised form:
`~s3qbb.registry.sources.encoded_run_prefix`). Run names
may be hierarchical (``u/alice/run1``), so runs are looked for below the prefix
(or, when nothing is there, below its parent) breadth first, one delimited LIST
per folder: a folder holding a ``_records/`` folder is a run and is not looked
into. The search stops after `MAX_LISTS` LISTs, at `MAX_DEPTH` levels, or once
`MAX_CHILDREN` runs are found, so it stays cheap on a large repository.
"""

from __future__ import annotations

__all__ = ["MAX_CHILDREN", "MAX_DEPTH", "MAX_LISTS", "explain_empty_run"]

from collections import deque
from typing import TYPE_CHECKING

from ..registry.sources import encoded_run_prefix, parse_run_uri

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MAX_CHILDREN = 20
"""Runs named in a message (the search stops once it has found this many)."""
MAX_DEPTH = 4
"""Folder levels below the prefix looked into (a run ``u/alice/run1`` is 3 below the root)."""
MAX_LISTS = 40
"""LIST requests the search may make."""
_RECORDS = "_records"


def _children(client: S3Client, bucket: str, prefix: str) -> tuple[list[str], bool]:
    """Return the sub-folders of a prefix (names, at most 1,000) and whether it holds any key at all."""
    page = client.list_objects_v2(Bucket=bucket, Prefix=prefix, Delimiter="/", MaxKeys=1000)
    names = [p["Prefix"][len(prefix) :].rstrip("/") for p in page.get("CommonPrefixes", [])]
    return names, bool(names or page.get("Contents"))


def _runs_under(
    client: S3Client, bucket: str, prefix: str, names: list[str] | None = None
) -> tuple[list[str], bool]:
    """Return runs below ``prefix`` (relative names, breadth first) and whether the search stopped early.

    ``names`` are the sub-folders of ``prefix`` when already listed (that LIST counts in `MAX_LISTS`).
    """
    runs: list[str] = []
    lists = 1
    if names is None:
        names = _children(client, bucket, prefix)[0]
    queue: deque[tuple[str, int]] = deque((n, 1) for n in names if n != _RECORDS)
    while queue:
        if lists >= MAX_LISTS or len(runs) >= MAX_CHILDREN:
            return runs, True
        folder, depth = queue.popleft()
        below, _ = _children(client, bucket, f"{prefix}{folder}/")
        lists += 1
        if _RECORDS in below:
            runs.append(folder)
        elif depth < MAX_DEPTH:
            queue.extend((f"{folder}/{n}", depth + 1) for n in below)
    return runs, False


def explain_empty_run(client: S3Client, uri: str) -> str | None:
    """Return why a run URI is not one to ingest, or `None` if it may be a run whose jobs left no records.

    Parameters
    ----------
    client : `mypy_boto3_s3.S3Client`
        Client of the endpoint.
    uri : `str`
        The ``s3://bucket/root/<run>/`` given to ``s3qbb ingest``.

    Returns
    -------
    message : `str` or `None`
        What was found and what to pass instead: nothing at all under the
        prefix, nor under its sanitised form when its run part needs encoding
        (`~s3qbb.registry.sources.encoded_run_prefix`; with the runs found
        beside the prefix, or beside its sanitised form), or sub-folders that are runs
        (the repository root). `None` when the prefix holds objects but no run
        below it: a run whose jobs were killed before uploading records.
    """
    bucket, prefix = parse_run_uri(uri)
    base = f"s3://{bucket}/"
    names, anything = _children(client, bucket, prefix)
    if not anything:
        # A run named by its own name is stored sanitised: ingest looked there too, and so does the hint.
        encoded = encoded_run_prefix(prefix, lambda p: _children(client, bucket, p)[1])
        parent = (encoded or prefix).rstrip("/").rpartition("/")[0]
        parent = f"{parent}/" if parent else ""
        siblings, _ = _runs_under(client, bucket, parent)
        found = (
            f"runs beside it under {base}{parent}: {', '.join(siblings)}; pass one of them, "
            f"e.g. s3qbb ingest {base}{parent}{siblings[0]}/"
            if siblings
            else f"no run under {base}{parent} either; check the bucket and the run name "
            "(the run's folder holds a _records/ folder)"
        )
        if encoded is not None:
            uri = f"{uri} nor under {base}{encoded} (the run name as s3qbb stores it)"
        return f"nothing under {uri}: no such run ({found})."
    runs, stopped = _runs_under(client, bucket, prefix, names)
    if runs:
        more = " ..." if stopped else ""
        return (
            f"{uri} is not a run but a folder of runs ({', '.join(runs)}{more}): ingest one run at a time, "
            f"e.g. s3qbb ingest {base}{prefix}{runs[0]}/"
        )
    return None
