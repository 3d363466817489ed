"""Tests of s3qbb.core.uri."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from s3qbb.core.uri import DatasetRefURIs, ResourceURI


@pytest.mark.parametrize(
    ("uri", "scheme", "netloc", "path", "fragment"),
    [
        ("s3://bucket/run/a.json", "s3", "bucket", "run/a.json", ""),
        ("s3://bucket/run/a.json#predicted", "s3", "bucket", "run/a.json", "predicted"),
        ("s3://bucket", "s3", "bucket", "", ""),
        ("mem://store/run/x/y.npy", "mem", "store", "run/x/y.npy", ""),
        ("file:///data/repo/x.yaml", "file", "", "data/repo/x.yaml", ""),
        ("s3://bucket/a%2Fb/c%20d", "s3", "bucket", "a/b/c d", ""),
        ("s3://bucket/g%252Fr%2523x", "s3", "bucket", "g%2Fr%23x", ""),
        ("s3://bucket/k#other", "s3", "bucket", "k", "other"),
    ],
)
def test_accessors(uri: str, scheme: str, netloc: str, path: str, fragment: str) -> None:
    resource = ResourceURI(uri)
    assert resource.scheme == scheme
    assert resource.netloc == netloc
    assert resource.path == path
    assert resource.fragment == fragment
    assert resource.is_predicted == (fragment == "predicted")


@pytest.mark.parametrize("key", ["run/a.json", "run/g%2Fr%25x.json", "run/a b#c?d.json", "run/ü/x:y@z~.json"])
def test_for_key_percent_encodes_the_key_and_path_decodes_it(key: str) -> None:
    uri = ResourceURI.for_key("s3", "bucket", key)
    assert uri.path == key and uri.netloc == "bucket" and uri.fragment == ""
    assert "%" not in key or "%25" in uri
    assert not set("# ?") & set(uri.removeprefix("s3://bucket/"))
    predicted = ResourceURI.for_key("s3", "bucket", key, predicted=True)
    assert predicted.is_predicted and predicted.path == key and predicted.unpredicted() == uri


def test_is_a_str() -> None:
    uri = ResourceURI("s3://bucket/key")
    assert isinstance(uri, str)
    assert uri == "s3://bucket/key"
    assert hash(uri) == hash("s3://bucket/key")
    assert str(uri) == "s3://bucket/key"
    assert f"{uri}" == "s3://bucket/key"
    assert repr(uri) == "ResourceURI('s3://bucket/key')"
    plain = uri.geturl()
    assert type(plain) is str
    assert plain == "s3://bucket/key"
    assert {uri: 1}[ResourceURI("s3://bucket/key")] == 1
    assert {"s3://bucket/key": 1}[uri] == 1
    with pytest.raises(AttributeError):
        uri.extra = 1  # type: ignore[attr-defined]


def test_unpredicted() -> None:
    predicted = ResourceURI("s3://bucket/run/a.json#predicted")
    plain = predicted.unpredicted()
    assert isinstance(plain, ResourceURI)
    assert plain == "s3://bucket/run/a.json"
    assert not plain.is_predicted
    assert plain.unpredicted() == plain
    other = ResourceURI("s3://bucket/k#other")
    assert other.unpredicted() == other


def test_dataset_ref_uris() -> None:
    primary = ResourceURI("s3://bucket/run/a.json")
    uris = DatasetRefURIs(primary)
    assert uris.primaryURI is primary
    assert dict(uris.componentURIs) == {}
    assert uris == (primary, {})
    components: Mapping[str, ResourceURI]
    first, components = uris  # unpacks like the daf_butler tuple
    assert first is primary
    assert dict(components) == {}
    assert repr(uris) == "DatasetRefURIs(ResourceURI('s3://bucket/run/a.json'), {})"


def test_dataset_ref_uris_components() -> None:
    source = {"wcs": ResourceURI("s3://b/run/x.wcs.json"), "image": ResourceURI("s3://b/run/x.image.npy")}
    uris = DatasetRefURIs(None, source)
    assert uris.primaryURI is None
    assert dict(uris.componentURIs) == source
    source["mask"] = ResourceURI("s3://b/run/x.mask.npy")
    assert set(uris.componentURIs) == {"wcs", "image"}  # a copy
    with pytest.raises(TypeError):
        uris.componentURIs["mask"] = ResourceURI("s3://b/m")  # type: ignore[index]
    assert DatasetRefURIs() == DatasetRefURIs(None, {})
    assert DatasetRefURIs(None, {"wcs": ResourceURI("s3://b/run/x.wcs.json")}) != DatasetRefURIs()
    assert uris == DatasetRefURIs(None, dict(list(reversed(source.items()))[1:]))
