"""Why ``s3qbb ingest`` found no per-quantum files: a mistyped run, the repository root, or neither.

Called only when the listing of ``<run>/_records/`` came back empty, it costs
one delimited LIST of the prefix, then one of its parent (nothing there) or
one single-key LIST per sub-folder, at most `MAX_CHILDREN` (the root).
"""

from __future__ import annotations

__all__ = ["MAX_CHILDREN", "explain_empty_run"]

from typing import TYPE_CHECKING

from ..registry.sources import parse_run_uri

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MAX_CHILDREN = 20
"""Sub-folders of a prefix looked into for ``_records/`` (and run names shown)."""


def _children(client: S3Client, bucket: str, prefix: str) -> tuple[list[str], bool]:
    """Return the sub-folders of a prefix (names, at most 1,000) and whether it holds any key at all."""
    page = client.list_objects_v2(Bucket=bucket, Prefix=prefix, Delimiter="/", MaxKeys=1000)
    names = [p["Prefix"][len(prefix) :].rstrip("/") for p in page.get("CommonPrefixes", [])]
    return names, bool(names or page.get("Contents"))


def _has_records(client: S3Client, bucket: str, prefix: str) -> bool:
    return bool(client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}_records/", MaxKeys=1).get("Contents"))


def _runs_under(client: S3Client, bucket: str, prefix: str, names: list[str]) -> list[str]:
    return [
        n for n in names[:MAX_CHILDREN] if n != "_records" and _has_records(client, bucket, f"{prefix}{n}/")
    ]


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
        prefix (with the runs found beside it), or sub-folders that are runs
        (the repository root). `None` when the prefix holds objects but no run
        below it: a run whose jobs were killed before uploading records.
    """
    bucket, prefix = parse_run_uri(uri)
    base = f"s3://{bucket}/"
    names, anything = _children(client, bucket, prefix)
    if not anything:
        parent = prefix.rstrip("/").rpartition("/")[0]
        parent = f"{parent}/" if parent else ""
        siblings = _runs_under(client, bucket, parent, _children(client, bucket, parent)[0])
        found = (
            f"runs beside it under {base}{parent}: {', '.join(siblings)}; pass one of them, "
            f"e.g. s3qbb ingest {base}{parent}{siblings[0]}/"
            if siblings
            else f"no run under {base}{parent} either; check the bucket and the run name "
            "(the run's folder holds a _records/ folder)"
        )
        return f"nothing under {uri}: no such run ({found})."
    runs = _runs_under(client, bucket, prefix, names)
    if runs:
        more = " ..." if len(names) > MAX_CHILDREN else ""
        return (
            f"{uri} is not a run but a folder of runs ({', '.join(runs)}{more}): ingest one run at a time, "
            f"e.g. s3qbb ingest {base}{prefix}{runs[0]}/"
        )
    return None
