"""Deprecated seed methods: same behaviour as their replacements, plus a FutureWarning naming them."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from butler_helpers import ButlerEnv

from s3qbb.butler import DeferredDatasetHandle, ProvenanceWarning
from s3qbb.datastores.base import Datastore
from s3qbb.errors import DatasetExistsError, UnpredictedDatasetError
from s3qbb.testing.data import sample_object

pytestmark = pytest.mark.filterwarnings("ignore::s3qbb.butler.ProvenanceWarning")


def test_put_direct_is_put(env: ButlerEnv) -> None:
    ref = env.refs.make()
    with env.butler(env.quantum(outputs=[ref])) as butler:
        with pytest.warns(FutureWarning, match=r"putDirect\(\).*use put\(\)") as caught:
            returned = butler.putDirect({"p": 1}, ref)
        assert returned is ref
        assert caught[0].filename == __file__, "the warning points at the caller"
        assert butler.get(ref) == {"p": 1}
        assert env.backdoor.has_artifact(ref)
        with pytest.warns(FutureWarning, match="putDirect"), pytest.raises(DatasetExistsError):
            butler.putDirect({"p": 2}, ref)
        stranger = env.refs.make()
        with pytest.warns(FutureWarning, match="putDirect"), pytest.raises(UnpredictedDatasetError):
            butler.putDirect({"p": 3}, stranger)
    assert butler.extract_provenance_data().actual_outputs == {ref.id}


def test_get_direct_is_get(moto_env: ButlerEnv) -> None:
    ref = moto_env.refs.make("NumpyArray")
    array = sample_object("NumpyArray")
    with moto_env.butler(moto_env.quantum(outputs=[ref])) as butler:
        butler.put(array, ref)
        with pytest.warns(FutureWarning, match=r"getDirect\(\).*use get\(\)"):
            whole = butler.getDirect(ref)
        np.testing.assert_array_equal(whole, butler.get(ref))
        with pytest.warns(FutureWarning, match="getDirect"):
            rows = butler.getDirect(ref, parameters={"rows": slice(1, 3)})
        np.testing.assert_array_equal(rows, array[1:3])
        with pytest.warns(FutureWarning, match="getDirect"):
            as_list = butler.getDirect(ref, storageClass="StructuredDataList")
        assert as_list == butler.get(ref, storageClass="StructuredDataList")


def test_get_direct_marks_inputs_like_get(moto_env: ButlerEnv) -> None:
    upstream = moto_env.refs.make()
    with moto_env.butler(moto_env.quantum(outputs=[upstream], label="up")) as producer:
        producer.put({"u": 1}, upstream)
    records = producer.extract_provenance_data().datastore_record_data()
    quantum = moto_env.quantum(inputs=[upstream], outputs=[moto_env.refs.make()], records=records)
    with moto_env.butler(quantum) as butler:
        with pytest.warns(FutureWarning, match="getDirect"):
            assert butler.getDirect(upstream) == {"u": 1}
        provenance = butler.extract_provenance_data()
    assert provenance.actual_inputs == {upstream.id}
    assert provenance.available_inputs == {upstream.id}


def test_get_direct_deferred_is_get_deferred(moto_env: ButlerEnv) -> None:
    upstream = moto_env.refs.make("NumpyArray")
    array = sample_object("NumpyArray")
    with moto_env.butler(moto_env.quantum(outputs=[upstream], label="up")) as producer:
        producer.put(array, upstream)
    records = producer.extract_provenance_data().datastore_record_data()
    quantum = moto_env.quantum(inputs=[upstream], outputs=[moto_env.refs.make()], records=records)
    with moto_env.butler(quantum) as butler:
        butler.stored_many([upstream])
        with pytest.warns(FutureWarning, match=r"getDirectDeferred\(\).*use getDeferred\(\)"):
            handle = butler.getDirectDeferred(upstream, parameters={"rows": slice(0, 2)})
        assert isinstance(handle, DeferredDatasetHandle)
        assert butler.extract_provenance_data().actual_inputs == {upstream.id}, "marked used at once"
        np.testing.assert_array_equal(handle.get(), array[0:2])
        with pytest.warns(FutureWarning, match="getDirectDeferred"):
            listed = butler.getDirectDeferred(upstream, storageClass="StructuredDataList")
        assert listed.get() == array.tolist()


def test_dataset_exists_direct_is_stored(moto_env: ButlerEnv) -> None:
    upstream, missing = moto_env.refs.make(), moto_env.refs.make()
    with moto_env.butler(moto_env.quantum(outputs=[upstream], label="up")) as producer:
        producer.put({"e": 1}, upstream)
    records = producer.extract_provenance_data().datastore_record_data()
    quantum = moto_env.quantum(inputs=[upstream, missing], outputs=[moto_env.refs.make()], records=records)
    with moto_env.butler(quantum) as butler:
        with pytest.warns(FutureWarning, match=r"datasetExistsDirect\(\).*use stored\(\)"):
            assert butler.datasetExistsDirect(upstream) is True
        with pytest.warns(FutureWarning, match="datasetExistsDirect"):
            assert butler.datasetExistsDirect(missing) is False
        assert butler.stored(upstream) is True and butler.stored(missing) is False
        with warnings.catch_warnings():
            warnings.simplefilter("error", ProvenanceWarning)
            provenance = butler.extract_provenance_data()
    assert provenance.available_inputs == {upstream.id}, "datasetExistsDirect records availability"


def test_datastore_property(moto_env: ButlerEnv) -> None:
    ref = moto_env.refs.make()
    with moto_env.butler(moto_env.quantum(outputs=[ref])) as butler:
        butler.put({"d": 1}, ref)
        with pytest.warns(FutureWarning, match=r"datastore property.*get, put, stored"):
            datastore = butler.datastore
        assert isinstance(datastore, Datastore)
        assert datastore is butler._datastore
        assert datastore.name == butler.get_datastore_names()[0]
        assert datastore.get_root() == moto_env.root
        assert datastore.exists(ref) is butler.stored(ref) is True


def test_replacements_do_not_warn(moto_env: ButlerEnv) -> None:
    ref = moto_env.refs.make()
    with moto_env.butler(moto_env.quantum(outputs=[ref])) as butler, warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        butler.put({"r": 1}, ref)
        butler.get(ref)
        butler.getDeferred(ref).get()
        butler.stored(ref)
        butler.stored_many([ref])
