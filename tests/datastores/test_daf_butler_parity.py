"""Each datastore has the signature and defaults of the daf_butler datastore it stands for.

`InMemoryDatastore` stands for daf_butler's ``InMemoryDatastore``; `S3Datastore` (and
`CachingDatastore`, which fronts it) for ``FileDatastore``. Needs lsst.daf.butler (the
``daf_butler`` test extra); skipped otherwise.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from s3qbb.datastores.caching import CachingDatastore
from s3qbb.datastores.memory import InMemoryDatastore
from s3qbb.datastores.s3 import S3Datastore

_SKIP = "lsst-daf-butler is not installed (pip install 's3qbb[daf_butler]')"
FileDatastore = pytest.importorskip("lsst.daf.butler.datastores.fileDatastore", reason=_SKIP).FileDatastore
DafInMemory = pytest.importorskip("lsst.daf.butler.datastores.inMemoryDatastore").InMemoryDatastore

PAIRS = [(InMemoryDatastore, DafInMemory), (S3Datastore, FileDatastore), (CachingDatastore, FileDatastore)]
METHODS = ["trash", "emptyTrash", "validateConfiguration"]


def _parameters(cls: type, method: str) -> list[tuple[str, Any]]:
    signature = inspect.signature(getattr(cls, method))
    return [(name, p.default) for name, p in signature.parameters.items() if name != "self"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("ours", "theirs"), PAIRS, ids=lambda c: c.__name__)
def test_parameters_and_defaults_match(ours: type, theirs: type, method: str) -> None:
    assert _parameters(ours, method) == _parameters(theirs, method)
