"""`explain_empty_run` finds hierarchical runs (``u/alice/run1``) below a folder and beside a typo."""

from __future__ import annotations

import pytest

from s3qbb.cli import ingest_checks
from s3qbb.cli.ingest_checks import explain_empty_run
from s3qbb.testing.servers import S3TestEndpoint


def _put(endpoint: S3TestEndpoint, *keys: str) -> None:
    for key in keys:
        endpoint.client.put_object(Bucket=endpoint.bucket, Key=key, Body=b"x")


@pytest.fixture
def repo(moto_endpoint: S3TestEndpoint) -> S3TestEndpoint:
    """A repository ``repo/`` with runs ``u/alice/run1``, ``u/bob/run2`` and ``raw`` (and their data)."""
    _put(
        moto_endpoint,
        "repo/raw/_records/q1.provenance.json",
        "repo/raw/flat/1.json",
        "repo/u/alice/run1/_records/q2.provenance.json",
        "repo/u/alice/run1/calexp/v1/x.json",
        "repo/u/bob/run2/_records/q3.provenance.json",
        "repo/u/bob/scratch/notes.txt",
    )
    return moto_endpoint


def test_the_root_lists_nested_runs(repo: S3TestEndpoint) -> None:
    base = f"s3://{repo.bucket}/"
    message = explain_empty_run(repo.client, f"{base}repo/")
    assert message == (
        f"{base}repo/ is not a run but a folder of runs (raw, u/alice/run1, u/bob/run2): ingest one run at a "
        f"time, e.g. s3qbb ingest {base}repo/raw/"
    )


def test_a_user_folder_is_a_folder_of_runs(repo: S3TestEndpoint) -> None:
    base = f"s3://{repo.bucket}/"
    message = explain_empty_run(repo.client, f"{base}repo/u/")
    assert message is not None
    assert "folder of runs (alice/run1, bob/run2)" in message
    assert f"e.g. s3qbb ingest {base}repo/u/alice/run1/" in message


def test_a_typo_in_a_nested_run_names_its_siblings(repo: S3TestEndpoint) -> None:
    base = f"s3://{repo.bucket}/"
    message = explain_empty_run(repo.client, f"{base}repo/u/alice/rnu1/")
    assert message == (
        f"nothing under {base}repo/u/alice/rnu1/: no such run (runs beside it under {base}repo/u/alice/: "
        f"run1; pass one of them, e.g. s3qbb ingest {base}repo/u/alice/run1/)."
    )


def test_a_run_named_by_its_own_name_is_looked_for_encoded(repo: S3TestEndpoint) -> None:
    """Only the run part is encoded, not the root (``my repo``, stored as given), and both prefixes named."""
    _put(repo, "my repo/r%C3%BCn/run%201/_records/q4.provenance.json")
    base = f"s3://{repo.bucket}/"
    message = explain_empty_run(repo.client, f"{base}my repo/rün/run 2/")
    assert message == (
        f"nothing under {base}my repo/rün/run 2/ nor under {base}my repo/r%C3%BCn/run%202/ (the run name as "
        f"s3qbb stores it): no such run (runs beside it under {base}my repo/r%C3%BCn/: run%201; pass one of "
        f"them, e.g. s3qbb ingest {base}my repo/r%C3%BCn/run%201/)."
    )
    # A name that needs no encoding is looked for as given only.
    assert "nor under" not in (explain_empty_run(repo.client, f"{base}repo/u/alice/rnu1/") or "")


def test_a_run_killed_before_its_records_is_not_refused(repo: S3TestEndpoint) -> None:
    _put(repo, "repo/killed/calexp/v1/x.json")
    assert explain_empty_run(repo.client, f"s3://{repo.bucket}/repo/killed/") is None


def test_the_search_is_bounded(repo: S3TestEndpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    list_objects = repo.client.list_objects_v2

    def counting(**kwargs: str) -> object:
        calls.append(kwargs["Prefix"])
        return list_objects(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ingest_checks, "MAX_LISTS", 3)
    monkeypatch.setattr(repo.client, "list_objects_v2", counting)
    message = explain_empty_run(repo.client, f"s3://{repo.bucket}/repo/")
    assert len(calls) == 3
    assert message is not None
    assert "folder of runs (raw ...)" in message
