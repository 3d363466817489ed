"""Tests of the ``{id_hash}`` / ``{id_hash:N}`` template field (keys spread over hashed prefixes)."""

from __future__ import annotations

import collections
import hashlib
import string
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3qbb.core import DatasetRef, DatasetType, DimensionUniverse
from s3qbb.datastores.s3 import S3Datastore
from s3qbb.datastores.templates import (
    DEFAULT_TEMPLATE,
    ID_HASH_DEFAULT_WIDTH,
    RESERVED_SEGMENT,
    FileTemplate,
    FileTemplates,
    TemplateFields,
    sanitize_run,
)
from s3qbb.errors import ConfigError
from s3qbb.testing.servers import S3TestEndpoint

ID = uuid.UUID("4b6c0a1e-8f3d-4c2a-9e7b-1d2f3a4b5c6d")
HASHED = "{run}/{id_hash:2}/{datasetType}/{visit:?}/{datasetType}_{detector:?}_{id}"


def fields(dataset_id: uuid.UUID = ID, run: str = "HSC/runs/RC2", **data_id: str | int) -> TemplateFields:
    return TemplateFields(
        run=run,
        dataset_type="calexp",
        component=None,
        dataset_id=dataset_id,
        data_id=data_id or {"instrument": "HSC", "visit": 903334, "detector": 16},
        required_dimensions=frozenset({"instrument", "visit", "detector"}),
    )


def digest(dataset_id: uuid.UUID) -> str:
    return hashlib.sha256(dataset_id.bytes).hexdigest()


def test_renders_hex_digits_of_the_sha256_of_the_dataset_id() -> None:
    path = FileTemplate(HASHED).render(fields())
    assert path == f"HSC/runs/RC2/{digest(ID)[:2]}/calexp/903334/calexp_16_{ID}"


@pytest.mark.parametrize("width", [1, 2, 4, 32])
def test_width(width: int) -> None:
    path = FileTemplate(f"{{run}}/{{id_hash:{width}}}/{{id}}").render(fields())
    assert path == f"HSC/runs/RC2/{digest(ID)[:width]}/{ID}"


def test_default_width_and_literals_in_the_segment() -> None:
    assert ID_HASH_DEFAULT_WIDTH == 2
    path = FileTemplate("{run}/h{id_hash}-x/{id}").render(fields())
    assert path == f"HSC/runs/RC2/h{digest(ID)[:2]}-x/{ID}"


def test_is_a_field_of_the_template() -> None:
    template = FileTemplate(HASHED)
    assert "id_hash" in template.fields
    # It does not make a template unique: that still needs {id} or the data ID.
    template.validate_for({"instrument", "visit", "detector"}, with_components=False)
    with pytest.raises(ConfigError, match="not unique"):
        FileTemplate("{run}/{id_hash:8}/{datasetType}").validate_for({"visit"}, with_components=False)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{run}/{id_hash:0}/{id}", r"has width 0 at position 6\. The width of \{id_hash:N\} is 1 to 32"),
        ("{run}/{id_hash:33}/{id}", r"has width 33 at position 6"),
        ("{run}/{id_hash:?}/{id}", r"'\{id_hash\}' is always present and cannot be optional"),
        ("{run}/{visit:2}/{id}", r"field \{visit:2\} has a width at position 6\. Only \{id_hash:N\}"),
        ("{run}/{id:4}", r"field \{id:4\} has a width"),
        ("{run}/{id_hash:2x}/{id}", r"field \{id_hash:2x\} is malformed"),
        ("{run}/{id_hash:-1}/{id}", r"field \{id_hash:-1\} is malformed"),
    ],
)
def test_invalid(template: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        FileTemplate(template)


def test_templates_must_still_start_with_the_run() -> None:
    # The hash cannot come before {run}: every run keeps its own prefix (and its _records/ folder).
    with pytest.raises(ConfigError, match=r"does not start with '\{run\}/'"):
        FileTemplate("{id_hash:2}/{run}/{id}")


def test_spreads_keys_evenly_over_first_level_prefixes() -> None:
    template = FileTemplate("{run}/{id_hash:1}/{id}")
    counts = collections.Counter(
        template.render(fields(uuid.UUID(int=i))).split("/")[3] for i in range(1, 1601)
    )  # sequential IDs, the worst case for a prefix of the ID itself
    assert set(counts) == set("0123456789abcdef")
    assert max(counts.values()) < 2 * min(counts.values())


@settings(max_examples=300, deadline=None)
@given(st.uuids(), st.integers(1, 32), st.sampled_from(["records", "x", "u/someone/run1", "a_records"]))
def test_segment_is_hex_and_never_the_reserved_folder(dataset_id: uuid.UUID, width: int, run: str) -> None:
    path = FileTemplate(f"{{run}}/{{id_hash:{width}}}/{{id}}").render(fields(dataset_id, run=run))
    prefix = sanitize_run(run) + "/"
    assert path.startswith(prefix)
    segment = path.removeprefix(prefix).split("/")[0]
    assert len(segment) == width and set(segment) <= set(string.hexdigits.lower())
    assert segment != RESERVED_SEGMENT


def test_reserved_folder_escape_still_holds_next_to_the_hash() -> None:
    template = FileTemplate("{run}/{id_hash}/{visit}/{id}")
    path = template.render(fields(instrument="HSC", visit="_records", detector=1))
    assert path.split("/")[-2] == "%5Frecords"
    assert f"/{RESERVED_SEGMENT}/" not in path


def test_default_template_is_unchanged() -> None:
    assert "id_hash" not in FileTemplate(DEFAULT_TEMPLATE).fields


def test_s3_datastore_writes_and_finds_datasets_under_hashed_prefixes(moto_endpoint: S3TestEndpoint) -> None:
    universe = DimensionUniverse()
    calexp = DatasetType("calexp", ["visit", "detector"], "StructuredDataDict", universe=universe)
    refs = [DatasetRef(calexp, {"instrument": "Cam", "visit": 1, "detector": d}, run="r") for d in range(8)]
    store = S3Datastore(
        f"s3://{moto_endpoint.bucket}/repo",
        config=moto_endpoint.config,
        templates=FileTemplates({"default": HASHED}),
    )
    try:
        for ref in refs:
            store.put({"detector": ref.dataId["detector"]}, ref)
        keys = {
            item["Key"]
            for item in moto_endpoint.client.list_objects_v2(Bucket=moto_endpoint.bucket)["Contents"]
        }
        assert keys == {
            f"repo/r/{digest(r.id)[:2]}/calexp/1/calexp_{r.dataId['detector']}_{r.id}.json" for r in refs
        }
        before = dict(store.stats.requests)
        assert store.stored_many(refs) == dict.fromkeys(refs, True)
        made = {op: n - before.get(op, 0) for op, n in store.stats.requests.items() if n != before.get(op, 0)}
        assert made == {"ListObjectsV2": 1}  # one listing of the run's prefix covers every hashed folder
        for ref in refs:
            assert store.get(ref) == {"detector": ref.dataId["detector"]}
    finally:
        store.close()
