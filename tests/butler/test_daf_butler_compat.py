"""Compatibility with lsst.daf.butler itself: each side reads the other's provenance, records and datasets.

Needs the optional ``daf_butler`` test extra (``pip install s3qbb[daf_butler]``); skipped otherwise.
daf_butler reads s3qbb's datasets from a local copy of the bucket's files (its own datastore on a
local repository), and s3qbb reads daf_butler's from the S3 server once they are uploaded there.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest
from butler_helpers import PREFIX, RUN, ButlerEnv

from s3qbb.butler import QuantumBackedButler
from s3qbb.core.dataset_ref import DatasetRef
from s3qbb.core.dataset_type import DatasetType
from s3qbb.provenance import QuantumProvenanceData
from s3qbb.records.schema import create_statements
from s3qbb.repo import DAF_BUTLER_DATASTORE_NAME

daf = pytest.importorskip(
    "lsst.daf.butler",
    reason="lsst-daf-butler is not installed (pip install 's3qbb[daf_butler]'): "
    "the daf_butler compatibility tests need daf_butler itself",
)

pytestmark = pytest.mark.filterwarnings("ignore::s3qbb.butler.ProvenanceWarning")

DATA_ID = {"instrument": "Cam", "visit": 1, "detector": 2}


def _s3qbb_ref(
    env: ButlerEnv, name: str, ref_id: uuid.UUID | None = None, storage_class: str = "StructuredDataDict"
) -> DatasetRef:
    dataset_type = DatasetType(name, ["visit", "detector"], storage_class, universe=env.refs.universe)
    return DatasetRef(dataset_type, DATA_ID, run=RUN, id=ref_id)


def _daf_ref(
    universe: Any, ref_id: uuid.UUID, name: str, run: str = RUN, storage_class: str = "StructuredDataDict"
) -> Any:
    dataset_type = daf.DatasetType(name, ["visit", "detector"], storage_class, universe=universe)
    data_id = daf.DataCoordinate.standardize(DATA_ID, dimensions=dataset_type.dimensions)
    return daf.DatasetRef(dataset_type, data_id, run=run, id=ref_id)


def _daf_records(provenance_json: bytes) -> dict[str, Any]:
    """Read a provenance file with daf_butler's model and return its records as daf_butler objects."""
    provenance = daf.QuantumProvenanceData.direct(**json.loads(provenance_json))
    from lsst.daf.butler.datastore.record_data import DatastoreRecordData

    return {
        name: DatastoreRecordData.from_simple(data) for name, data in provenance.datastore_records.items()
    }


def _compat_config(env: ButlerEnv) -> dict[str, Any]:
    config = env.config()
    config["datastore"] = {
        **config["datastore"],
        "daf_butler_compat": True,
        "formatters": {"counts_yaml": "yaml"},
    }
    return config


def _write_with_s3qbb(env: ButlerEnv) -> tuple[DatasetRef, DatasetRef, uuid.UUID]:
    as_json, as_yaml = _s3qbb_ref(env, "counts_json"), _s3qbb_ref(env, "counts_yaml")
    butler = QuantumBackedButler.from_predicted(
        _compat_config(env), [], [as_json.id, as_yaml.id], env.refs.universe, None, run=RUN
    )
    with butler:
        butler.put({"format": "json", "n": [1, 2]}, as_json)
        butler.put({"format": "yaml", "n": [3]}, as_yaml)
    return as_json, as_yaml, butler.quantum_id


def test_s3qbb_provenance_loads_in_daf_butler(moto_env: ButlerEnv) -> None:
    as_json, as_yaml, quantum_id = _write_with_s3qbb(moto_env)
    files = moto_env.records_files(quantum_id)
    provenance = daf.QuantumProvenanceData.model_validate_json(files.provenance_bytes)
    assert provenance.actual_outputs == {as_json.id, as_yaml.id}
    assert set(provenance.datastore_records) == {DAF_BUTLER_DATASTORE_NAME}
    records = _daf_records(files.provenance_bytes)[DAF_BUTLER_DATASTORE_NAME].records
    formatters = {
        info.formatter for by_class in records.values() for infos in by_class.values() for info in infos
    }
    assert formatters == {
        "lsst.daf.butler.formatters.json.JsonFormatter",
        "lsst.daf.butler.formatters.yaml.YamlFormatter",
    }


def _local_daf_repo(env: ButlerEnv, root: Path) -> None:
    """Make a daf_butler repository at ``root`` holding the bucket's files at their relative paths."""
    daf.Butler.makeRepo(str(root))
    for key in env.all_keys():
        target = root / key.removeprefix(f"{PREFIX}/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(env.read(key))


def test_daf_butler_reads_s3qbb_datasets(moto_env: ButlerEnv, tmp_path: Path) -> None:
    as_json, as_yaml, quantum_id = _write_with_s3qbb(moto_env)
    root = tmp_path / "repo"
    _local_daf_repo(moto_env, root)
    records = _daf_records(moto_env.records_files(quantum_id).provenance_bytes)
    universe = daf.DimensionUniverse()
    refs = [_daf_ref(universe, as_json.id, "counts_json"), _daf_ref(universe, as_yaml.id, "counts_yaml")]
    qbb = daf.QuantumBackedButler.from_predicted(
        str(root),
        [r.id for r in refs],
        [],
        universe,
        records,
        dataset_types={r.datasetType.name: r.datasetType for r in refs},
    )
    assert qbb.stored_many(refs) == dict.fromkeys(refs, True)
    assert qbb.get(refs[0]) == {"format": "json", "n": [1, 2]}
    assert qbb.get(refs[1]) == {"format": "yaml", "n": [3]}


def test_daf_butler_reads_s3qbb_parquet(moto_env: ButlerEnv, tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    table = pa.table({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    ref = _s3qbb_ref(moto_env, "sources", storage_class="ArrowTable")
    butler = QuantumBackedButler.from_predicted(
        _compat_config(moto_env), [], [ref.id], moto_env.refs.universe, None, run=RUN
    )
    with butler:
        butler.put(table, ref)
    root = tmp_path / "repo"
    _local_daf_repo(moto_env, root)
    provenance = moto_env.records_files(butler.quantum_id).provenance_bytes
    assert b"lsst.daf.butler.formatters.parquet.ParquetFormatter" in provenance
    universe = daf.DimensionUniverse()
    theirs = _daf_ref(universe, ref.id, "sources", storage_class="ArrowTable")
    qbb = daf.QuantumBackedButler.from_predicted(
        str(root),
        [ref.id],
        [],
        universe,
        _daf_records(provenance),
        dataset_types={"sources": theirs.datasetType},
    )
    assert qbb.get(theirs).equals(table)


def test_s3qbb_reads_daf_butler_datasets(moto_env: ButlerEnv, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    daf.Butler.makeRepo(str(root))
    universe = daf.DimensionUniverse()
    as_yaml = _daf_ref(universe, uuid.uuid4(), "counts_yaml")
    as_json = _daf_ref(universe, uuid.uuid4(), "counts_json")
    config = daf.Config(str(root / "butler.yaml"))
    config["datastore", "formatters", "counts_json"] = "lsst.daf.butler.formatters.json.JsonFormatter"
    # The default template needs dimension records (day_obs), which a bare data ID does not carry.
    config["datastore", "templates", "default"] = (
        "{run}/{datasetType}/{visit}/{datasetType}_{instrument}_{detector}_{run}"
    )
    qbb = daf.QuantumBackedButler.from_predicted(
        config,
        [],
        [as_yaml.id, as_json.id],
        universe,
        {},
        filename=str(tmp_path / "daf.sqlite3"),
        dataset_types={r.datasetType.name: r.datasetType for r in (as_yaml, as_json)},
    )
    qbb.put({"by": "daf_butler", "n": 1}, as_yaml)
    qbb.put({"by": "daf_butler", "n": 2}, as_json)
    provenance_json = qbb.extract_provenance_data().model_dump_json().encode()
    for path in root.rglob("*"):
        if path.is_file() and path.suffix in (".yaml", ".json") and path.parent != root:
            moto_env.endpoint.client.put_object(
                Bucket=moto_env.endpoint.bucket,
                Key=f"{PREFIX}/{path.relative_to(root)}",
                Body=path.read_bytes(),
            )
    records = QuantumProvenanceData.from_json(provenance_json).datastore_record_data()
    assert set(records) == {DAF_BUTLER_DATASTORE_NAME}
    mine = [_s3qbb_ref(moto_env, "counts_yaml", as_yaml.id), _s3qbb_ref(moto_env, "counts_json", as_json.id)]
    with QuantumBackedButler.from_predicted(
        _compat_config(moto_env), [r.id for r in mine], [], moto_env.refs.universe, records, run=RUN
    ) as butler:
        assert butler.stored_many(mine) == dict.fromkeys(mine, True)
        assert butler.get(mine[0]) == {"by": "daf_butler", "n": 1}
        assert butler.get(mine[1]) == {"by": "daf_butler", "n": 2}
    # The records database daf_butler wrote has the DDL s3qbb's records store creates.
    conn = sqlite3.connect(tmp_path / "daf.sqlite3")
    theirs = {
        _normalise(sql) for (sql,) in conn.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL")
    }
    conn.close()
    assert theirs <= {_normalise(sql) for sql in create_statements()}


def _normalise(statement: str) -> str:
    statement = " ".join(statement.replace("IF NOT EXISTS ", "").split())
    return statement.replace("( ", "(").replace(" )", ")")
