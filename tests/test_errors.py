"""Every exception s3qbb raises derives from S3qbbError and from the builtin daf_butler code catches.

The table below names, for each class of `s3qbb.errors`, the builtin(s) code written for daf_butler
(or plain Python) catches in the same situation; a new class must be added to it. Exception classes
defined elsewhere in the package are walked too (private ones, which never leave their module, aside).
"""

from __future__ import annotations

import builtins
import importlib
import inspect
import pkgutil

import pytest

import s3qbb
import s3qbb.errors
from s3qbb.errors import S3qbbError

# class -> builtins it must derive from: what daf_butler raises (or Python raises) in that situation.
EXPECTED: dict[str, tuple[type[BaseException], ...]] = {
    "AccessDeniedError": (PermissionError,),  # lsst.resources raises PermissionError
    "AmbiguousDatasetError": (TypeError,),  # daf_butler's AmbiguousDatasetError is not builtin; TypeError
    "BucketNotFoundError": (FileNotFoundError,),
    "ButlerClosedError": (RuntimeError,),
    "ConfigError": (ValueError,),
    "CredentialsError": (PermissionError,),
    "DataIdError": (ValueError,),
    "DatasetExistsError": (FileExistsError,),  # FileDatastore refuses to overwrite with FileExistsError
    "DatasetIntegrityError": (OSError,),
    "DatasetReplacedError": (OSError,),  # a DatasetIntegrityError: not damage, another attempt's write
    "DatasetNotFoundError": (FileNotFoundError, LookupError),  # datastore get / DatasetNotFoundError
    "DatasetTypeError": (ValueError,),  # daf_butler's DatasetTypeError is a ValueError
    "DatastoreCapacityError": (MemoryError,),
    # daf_butler's DatastoreValidationError is a RuntimeError (ValidationError); a ValueError too: bad input
    "DatastoreValidationError": (ValueError, RuntimeError),
    "DimensionNameError": (ValueError, KeyError),  # daf_butler's DimensionNameError is a KeyError
    "FormatterError": (ValueError,),
    "InvalidNameError": (ValueError,),
    "InvalidParameterError": (ValueError,),
    "NotAComponentError": (
        ValueError,
        RuntimeError,
    ),  # makeCompositeRef of a parent: RuntimeError  # daf_butler: KeyError/ValueError on unknown parameters
    "PickleDisabledError": (PermissionError, ValueError),
    "PreconditionFailedError": (FileExistsError,),
    "RecordDataError": (ValueError,),
    "RecordExistsError": (FileExistsError, KeyError),  # addStoredItemInfo raises KeyError
    "RecordNotFoundError": (KeyError,),  # getStoredItemInfo raises KeyError
    "RecordsStoreError": (OSError,),
    "RecordsUploadError": (OSError,),
    "RegistryConnectionError": (ConnectionError,),
    "RegistryError": (OSError,),
    # daf_butler raises TypeError on storage class mismatch, ValueError for an unconvertible override
    "StorageClassError": (TypeError, ValueError),
    "TLSError": (ConnectionError,),
    "TransientStorageError": (ConnectionError,),
    "UnknownComponentError": (ValueError, KeyError),  # daf_butler's UnknownComponentError is a KeyError
    "UnknownFormatterError": (LookupError,),
    "UnknownStorageClassError": (KeyError,),  # StorageClassFactory.getStorageClass raises KeyError
    "UnpredictedDatasetError": (LookupError, RuntimeError),  # QBB.put raises RuntimeError
}

_BUILTIN_EXCEPTIONS = {
    obj for obj in vars(builtins).values() if isinstance(obj, type) and issubclass(obj, BaseException)
}


def _defined_in(module: object) -> list[type[BaseException]]:
    return [
        obj
        for name, obj in vars(module).items()
        if isinstance(obj, type)
        and issubclass(obj, BaseException)
        and not issubclass(obj, Warning)
        and obj.__module__ == getattr(module, "__name__", None)
        and not name.startswith("_")
    ]


def _all_public_exceptions() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(s3qbb.__path__, "s3qbb."):
        if info.name.endswith(".__main__"):  # running it is its only effect
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an optional dependency missing: its module cannot raise anything
            continue
        for cls in _defined_in(module):
            found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return found


def test_every_error_class_is_listed() -> None:
    defined = {cls.__name__ for cls in _defined_in(s3qbb.errors)}
    assert defined == set(s3qbb.errors.__all__)
    assert defined - {"S3qbbError"} == set(EXPECTED), "classify new errors in EXPECTED"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_error_derives_from_s3qbb_error_and_its_builtins(name: str) -> None:
    cls = getattr(s3qbb.errors, name)
    assert issubclass(cls, S3qbbError)
    for builtin in EXPECTED[name]:
        assert issubclass(cls, builtin), f"{name} is not a {builtin.__name__}"
    error = cls(f"{name}: what failed, where, and what to do")
    assert str(error) == f"{name}: what failed, where, and what to do", "str() is the message, unquoted"


# Not errors but stop requests: a KeyboardInterrupt, so that task code's ``except Exception`` lets it pass.
INTERRUPTS = {"s3qbb.batch.signals.JobInterrupted": KeyboardInterrupt}


def test_every_public_exception_in_the_package_has_both_bases() -> None:
    found = _all_public_exceptions()
    assert "s3qbb.s3.errors.S3ServiceError" in found and "s3qbb.batch.upstream.UpstreamNotDoneError" in found
    for qualified, cls in found.items():
        if cls is S3qbbError:
            continue
        if qualified in INTERRUPTS:
            assert issubclass(cls, INTERRUPTS[qualified]) and not issubclass(cls, Exception)
            continue
        assert issubclass(cls, S3qbbError), f"{qualified} does not derive from S3qbbError"
        builtin = [
            b for b in inspect.getmro(cls) if b in _BUILTIN_EXCEPTIONS and b not in (Exception, BaseException)
        ]
        assert builtin, f"{qualified} derives from no builtin category besides Exception"
