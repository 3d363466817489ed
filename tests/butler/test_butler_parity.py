"""daf_butler parity of the QuantumBackedButler: the same answers on memory, S3 and S3 behind the cache."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from butler_helpers import RUN, ButlerEnv

from s3qbb.butler import ProvenanceWarning, QuantumBackedButler
from s3qbb.core.dataset_ref import DatasetRef
from s3qbb.errors import (
    ButlerClosedError,
    DatasetNotFoundError,
    S3qbbError,
    UnpredictedDatasetError,
)
from s3qbb.repo import DAF_BUTLER_DATASTORE_NAME
from s3qbb.testing.backdoors import S3Backdoor
from s3qbb.testing.data import RefMaker
from s3qbb.testing.servers import S3TestEndpoint


@dataclass
class Repo:
    """A repository configuration on one backend, and a raw look at its storage (S3 only)."""

    config: dict[str, Any]
    refs: RefMaker
    backdoor: S3Backdoor | None

    def butler(self, inputs: list[DatasetRef], outputs: list[DatasetRef]) -> QuantumBackedButler:
        return QuantumBackedButler.from_predicted(
            self.config,
            [r.id for r in inputs],
            [r.id for r in outputs],
            self.refs.universe,
            None,
            run=RUN,
            refs=[*inputs, *outputs],
        )


@pytest.fixture(
    params=[
        "memory",
        pytest.param("moto", marks=pytest.mark.moto_server),
        pytest.param("moto-cache", marks=pytest.mark.moto_server),
        pytest.param("seaweedfs", marks=pytest.mark.seaweedfs),
        pytest.param("seaweedfs-cache", marks=pytest.mark.seaweedfs),
    ]
)
def repo(request: pytest.FixtureRequest) -> Repo:
    """A repository on memory, on each S3 server, and on each S3 server behind the cache tier."""
    if request.param == "memory":
        config = {"datastore": {"cls": "memory"}, "cache": {"enabled": False}}
        return Repo(config, RefMaker(run=RUN), None)
    server, _, cache = request.param.partition("-")
    endpoint: S3TestEndpoint = request.getfixturevalue(f"{server}_endpoint")
    env = ButlerEnv(endpoint, cache=bool(cache))
    return Repo(env.config(), env.refs, env.backdoor)


def test_from_predicted_accepts_none_for_datastore_records(repo: Repo) -> None:
    out = repo.refs.make()
    with QuantumBackedButler.from_predicted(repo.config, [], [out.id], repo.refs.universe, None) as butler:
        butler.put({"n": 1}, out)
        assert butler.get(out) == {"n": 1}
        provenance = butler.extract_provenance_data()
    assert provenance.actual_outputs == {out.id}


def test_get_rows_with_a_negative_step(repo: Repo) -> None:
    # The same call must succeed in the writing quantum (cache hit) and downstream (S3 read).
    out = repo.refs.make("NumpyArray")
    array = np.arange(60, dtype="float64").reshape(20, 3)
    with repo.butler([], [out]) as butler:
        butler.put(array, out)
        for rows in (slice(None, None, -1), slice(15, 2, -3)):
            got = butler.get(out, parameters={"rows": rows})
            assert np.array_equal(got, array[rows]) and got.flags.writeable
            assert np.array_equal(butler.getDeferred(out, parameters={"rows": rows}).get(), array[rows])


def test_prune_skips_datasets_not_stored(repo: Repo) -> None:
    """As daf_butler: pruning outputs never written is no error, on every datastore (memory too)."""
    written, unwritten = repo.refs.make(), repo.refs.make()
    with repo.butler([], [written, unwritten]) as butler:
        butler.put({"w": 1}, written)
        butler.pruneDatasets([written, unwritten], disassociate=False, unstore=True)
        butler.pruneDatasets([unwritten], disassociate=True, unstore=True, purge=True)
        assert not butler.stored(written)
        assert butler.extract_provenance_data().actual_outputs == {written.id}


def _calls(
    butler: QuantumBackedButler, inp: DatasetRef, out: DatasetRef, new: DatasetRef
) -> dict[str, Callable[[], Any]]:
    return {
        "stored": lambda: butler.stored(out),
        "stored_many": lambda: butler.stored_many([inp, out]),
        "get": lambda: butler.get(out),
        "getDeferred": lambda: butler.getDeferred(out),
        "put": lambda: butler.put({"late": True}, new),
        "getURI": lambda: butler.getURI(out),
        "getURIs": lambda: butler.getURIs(new, predict=True),
        "get_many_uris": lambda: butler.get_many_uris([out]),
        "pruneDatasets": lambda: butler.pruneDatasets([out], disassociate=False, unstore=True),
        "markInputUnused": lambda: butler.markInputUnused(inp),
        "getDirect": lambda: butler.getDirect(out),
        "putDirect": lambda: butler.putDirect({"late": True}, new),
        "datasetExistsDirect": lambda: butler.datasetExistsDirect(out),
    }


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.filterwarnings("ignore::s3qbb.butler.ProvenanceWarning")
def test_a_closed_butler_refuses_every_dataset_call(repo: Repo) -> None:
    inp, out, new = repo.refs.make(), repo.refs.make(), repo.refs.make()
    butler = repo.butler([inp], [out, new])
    with butler:
        butler.put({"written": True}, out)
        handle = butler.getDeferred(out)
    for name, call in _calls(butler, inp, out, new).items():
        with pytest.raises(
            ButlerClosedError, match=r"Cannot call QuantumBackedButler\.\w+: .* is closed"
        ) as info:
            call()
        assert isinstance(info.value, RuntimeError) and isinstance(info.value, S3qbbError), name
    with pytest.raises(ButlerClosedError):
        handle.get()
    if repo.backdoor is not None:
        assert not repo.backdoor.has_artifact(new), "a put after the quantum ended was stored"
        assert repo.backdoor.has_artifact(out)
    provenance = butler.extract_provenance_data()  # what the quantum ended with
    assert provenance.actual_outputs == {out.id}
    assert butler.get_datastore_names() and butler.dimensions is repo.refs.universe


def test_close_without_finish_refuses_provenance_too(repo: Repo) -> None:
    out = repo.refs.make()
    butler = repo.butler([], [out])
    butler.close()
    with pytest.raises(ButlerClosedError, match="extract_provenance_data"):
        butler.extract_provenance_data()
    with pytest.raises(ButlerClosedError):
        butler.put({"a": 1}, out)


def test_unpredicted_put_is_a_lookup_and_a_runtime_error(repo: Repo) -> None:
    inp, out, stranger = repo.refs.make(), repo.refs.make(), repo.refs.make()
    with repo.butler([inp], [out]) as butler:
        butler.stored_many([inp])
        for ref in (stranger, inp):
            with pytest.raises(RuntimeError) as info:  # what daf_butler raises
                butler.put({"x": 1}, ref)
            assert isinstance(info.value, UnpredictedDatasetError) and isinstance(info.value, LookupError)


def test_failed_get_records_the_input_as_checked_and_unavailable(repo: Repo) -> None:
    missing, out = repo.refs.make(), repo.refs.make()
    with repo.butler([missing], [out]) as butler:
        with pytest.raises(DatasetNotFoundError):
            butler.get(missing)
        with warnings.catch_warnings():
            warnings.simplefilter("error", ProvenanceWarning)  # no "did not check" warning
            provenance = butler.extract_provenance_data()
    assert provenance.available_inputs == frozenset()
    assert provenance.actual_inputs == frozenset()
    assert provenance.predicted_inputs == {missing.id}


def test_used_but_unavailable_input_is_left_out_of_actual_inputs(repo: Repo) -> None:
    missing, out = repo.refs.make(), repo.refs.make()
    with repo.butler([missing], [out]) as butler:
        butler.getDeferred(missing)  # marks it used before anything is read
        assert butler.stored(missing) is False
        with pytest.warns(ProvenanceWarning, match="left out of the actual inputs"):
            provenance = butler.extract_provenance_data()
        butler.markInputUnused(missing)
    assert provenance.actual_inputs == frozenset()
    assert provenance.available_inputs == frozenset()


def test_get_deferred_of_a_predicted_output_not_yet_written(repo: Repo) -> None:
    out = repo.refs.make()
    with repo.butler([], [out]) as butler:
        handle = butler.getDeferred(out)  # daf_butler returns a handle; so does s3qbb
        with pytest.raises(UnpredictedDatasetError, match="predicted output not yet written"):
            handle.get()
        butler.put({"later": 1}, out)
        assert handle.get() == {"later": 1}
        stranger = repo.refs.make()
        with pytest.raises(UnpredictedDatasetError, match="not part of this quantum"):
            butler.getDeferred(stranger)
        provenance = butler.extract_provenance_data()
    assert provenance.actual_inputs == frozenset() and provenance.actual_outputs == {out.id}


def test_daf_butler_compat_mode_writes_daf_butler_names(cache_env: ButlerEnv, tmp_path: Path) -> None:
    config = cache_env.config()
    config["datastore"] = {**config["datastore"], "daf_butler_compat": True}
    as_json, as_npy = cache_env.refs.make(), cache_env.refs.make("NumpyArray")
    butler = QuantumBackedButler.from_predicted(
        config, [], [as_json.id, as_npy.id], cache_env.refs.universe, None, run=RUN
    )
    with butler:
        assert butler.get_datastore_names() == (DAF_BUTLER_DATASTORE_NAME,)
        butler.put({"a": 1}, as_json)
        butler.put(np.arange(3), as_npy)
    files = cache_env.records_files(butler.quantum_id)
    rows = files.records_rows(tmp_path)
    assert rows[as_json.id]["formatter"] == "lsst.daf.butler.formatters.json.JsonFormatter"
    assert rows[as_npy.id]["formatter"] == "s3qbb.formatters.npy.NpyFormatter"  # no daf_butler equivalent
    assert set(files.provenance.datastore_records) == {DAF_BUTLER_DATASTORE_NAME}
    # s3qbb reads them back, in a downstream quantum, with or without the option.
    records = files.provenance.datastore_record_data()
    plain = {
        **cache_env.config(),
        "datastore": {**cache_env.config()["datastore"], "name": DAF_BUTLER_DATASTORE_NAME},
    }
    for downstream_config in (config, plain):
        with QuantumBackedButler.from_predicted(
            downstream_config, [as_json.id, as_npy.id], [], cache_env.refs.universe, records
        ) as downstream:
            assert downstream.get(as_json) == {"a": 1}
            assert np.array_equal(downstream.get(as_npy), np.arange(3))


def test_put_accepts_daf_butlers_provenance_keyword(repo: Repo) -> None:
    out = repo.refs.make()
    with repo.butler([], [out]) as butler:
        assert butler.put({"p": 1}, out, provenance=object()) == out
        assert butler.get(out) == {"p": 1}
