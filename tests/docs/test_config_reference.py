"""The configuration reference documents every field of every configuration model a user can set.

``docs/configuration.rst`` renders one ``config-fields`` table per model and
one ``config-env-vars`` table with the directives of
``docs/_ext/s3qbb_config_table.py``. These tests check the rows those
directives produce, as data and as rendered by docutils, against the models
themselves, and that every ``S3QBB_*`` environment variable s3qbb reads is
documented.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import typing
from pathlib import Path
from types import ModuleType

import pytest
from docutils import nodes
from docutils.core import publish_doctree
from docutils.parsers.rst import directives
from pydantic import BaseModel, ByteSize
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

import s3qbb.config
import s3qbb.repo

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
CONFIGURATION = DOCS / "configuration.rst"
# S3QBB_ names that are not environment variables a user sets: a Python constant, and a variable
# s3qbb itself sets for the LocalStack launcher it starts.
NOT_USER_VARIABLES = {"S3QBB_RECORD_CLASS", "S3QBB_LOCALSTACK_S3_DIR"}


def _load_extension() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "s3qbb_config_table", DOCS / "_ext" / "s3qbb_config_table.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


EXT = _load_extension()


def _nested(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _nested(arg)]


def config_models() -> list[type[BaseModel]]:
    """Every public model with fields in s3qbb.config and s3qbb.repo, and every model nested in them."""
    found: list[type[BaseModel]] = []
    todo = [
        obj
        for module in (s3qbb.config, s3qbb.repo)
        for obj in (getattr(module, name) for name in module.__all__)
        if isinstance(obj, type) and issubclass(obj, BaseModel) and obj.model_fields
    ]
    while todo:
        model = todo.pop()
        if model not in found:
            found.append(model)
            todo.extend(m for info in model.model_fields.values() for m in _nested(info.annotation))
    return sorted(found, key=lambda m: m.__name__)


MODELS = config_models()


def _directive_arguments(name: str) -> list[list[str]]:
    pattern = re.compile(rf"^\.\. {re.escape(name)}::\s+(.+)$", re.MULTILINE)
    return [match.group(1).split() for match in pattern.finditer(CONFIGURATION.read_text())]


def _env(info: FieldInfo) -> str | None:
    extra = info.json_schema_extra
    value = extra.get("env") if isinstance(extra, dict) else None
    return value if isinstance(value, str) else None


def _expected_default(info: FieldInfo) -> str:
    """The default as the table must show it, computed without the extension's code."""
    shown = re.search(r"Default: ``(.*?)``\.", info.description or "")
    if shown:
        return shown.group(1)
    if isinstance(info.default, ByteSize):
        return str(int(info.default))
    if info.default is not PydanticUndefined:
        return repr(info.default)
    if info.default_factory is None:
        return "required"
    factory = info.default_factory
    if isinstance(factory, type) and issubclass(factory, BaseModel):
        return f"{factory.__name__}()"
    return repr(factory())  # type: ignore[call-arg]


def test_models_found() -> None:
    names = {m.__name__ for m in MODELS}
    assert {"RepoConfig", "DatastoreConfig", "CacheConfig", "S3EndpointConfig", "RetryConfig"} <= names


def test_every_config_model_has_a_table() -> None:
    documented = {EXT.import_model(args[0]) for args in _directive_arguments("config-fields")}
    missing = [m.__name__ for m in MODELS if m not in documented]
    assert not missing, f"docs/configuration.rst has no '.. config-fields::' table for {missing}"


def test_every_environment_model_is_in_the_variables_table() -> None:
    listed = {EXT.import_model(path) for args in _directive_arguments("config-env-vars") for path in args}
    with_env = [m for m in MODELS if any(_env(info) for info in m.model_fields.values())]
    assert with_env and not [m.__name__ for m in with_env if m not in listed]


@pytest.mark.parametrize("model", MODELS, ids=[m.__name__ for m in MODELS])
def test_table_rows_describe_every_field(model: type[BaseModel]) -> None:
    rows = EXT.field_rows(model)
    assert [row.name for row in rows] == [f"``{name}``" for name in model.model_fields]
    for row, (name, info) in zip(rows, model.model_fields.items(), strict=True):
        assert row.type.strip("`"), f"{model.__name__}.{name}: no type"
        assert _expected_default(info) in row.default, f"{model.__name__}.{name}: default {row.default}"
        assert row.meaning, f"{model.__name__}.{name} has no description"
        env = _env(info)
        if env is not None:
            assert row.env == f"``{env}``"
        elif nested := _nested(info.annotation):
            assert all(f"``{v.split('_')[0]}_{v.split('_')[1]}_*``" in row.env for v in _all_env(nested))
        else:
            assert row.env == EXT.NO_ENV


def _all_env(models: list[type[BaseModel]]) -> list[str]:
    out: list[str] = []
    for model in models:
        for info in model.model_fields.values():
            if env := _env(info):
                out.append(env)
            out.extend(_all_env(_nested(info.annotation)))
    return out


def _render(source: str) -> list[list[str]]:
    """Render reStructuredText with the extension's directives; return the text of each table row."""
    directives.register_directive("config-fields", EXT.ConfigFieldsDirective)
    directives.register_directive("config-env-vars", EXT.ConfigEnvVarsDirective)
    doctree = publish_doctree(source, settings_overrides={"report_level": 2, "halt_level": 2})
    return [
        [entry.astext() for entry in row.findall(nodes.entry)]
        for row in doctree.findall(nodes.row)
        if not isinstance(row.parent, nodes.thead)
    ]


@pytest.mark.parametrize("model", MODELS, ids=[m.__name__ for m in MODELS])
def test_rendered_table_lists_every_field(model: type[BaseModel]) -> None:
    rows = _render(f".. config-fields:: {model.__module__}.{model.__name__}\n")
    assert [row[0] for row in rows] == list(model.model_fields)
    for row, info in zip(rows, model.model_fields.values(), strict=True):
        assert len(row) == 5 and all(row), row
        assert _expected_default(info) in row[2]
        env = _env(info)
        assert (env or "") in row[3]


def test_rendered_variables_table_lists_every_variable() -> None:
    paths = [f"{m.__module__}.{m.__name__}" for m in MODELS]
    rows = _render(f".. config-env-vars:: {' '.join(paths)}\n")
    expected = sorted(_env(i) or "" for m in MODELS for i in m.model_fields.values() if _env(i))
    assert [row[0] for row in rows] == expected
    assert all(row[1] and row[2] for row in rows)


def _variables_read() -> set[str]:
    """``S3QBB_*`` names in string literals of the library and in the LocalStack scripts."""
    found: set[str] = set()
    for path in [*(ROOT / "s3qbb").rglob("*.py"), *(ROOT / "localstack").glob("*.sh")]:
        found |= set(re.findall(r"\bS3QBB_[A-Z0-9_]*[A-Z0-9]\b", path.read_text()))
    return found - NOT_USER_VARIABLES


def test_every_environment_variable_is_documented() -> None:
    generated = {_env(i) for m in MODELS for i in m.model_fields.values()} - {None}
    text = CONFIGURATION.read_text()
    undocumented = sorted(v for v in _variables_read() if v not in generated and f"``{v}``" not in text)
    assert not undocumented, f"document these variables in docs/configuration.rst: {undocumented}"


def test_every_variable_read_is_known_to_the_unknown_variable_warning() -> None:
    # The warning about misspelt S3QBB_* variables must not fire for one s3qbb reads.
    known = s3qbb.config.known_env_variables()
    unknown = sorted(_variables_read() - known)
    assert not unknown, f"add these to s3qbb.config_checks.OTHER_ENV_VARIABLES (or to a model): {unknown}"


def test_the_docs_name_only_variables_that_exist() -> None:
    # docs/configuration.rst said "The S3QBB_CACHE_* variables" when only S3QBB_CACHE_MAX_PUT_BYTES exists.
    known = s3qbb.config.known_env_variables()
    text = "\n".join(path.read_text() for path in DOCS.glob("*.rst"))
    unknown = set(re.findall(r"``(S3QBB_[A-Z0-9_]*[A-Z0-9])``", text)) - known - NOT_USER_VARIABLES
    # Names shown as misspellings are the exception.
    assert unknown <= {"S3QBB_RETRY_CONNECT_RETRY_TIME"}, sorted(unknown)
    for family in set(re.findall(r"``(S3QBB_[A-Z0-9_]*_)\*``", text)):
        members = sorted(v for v in known if v.startswith(family))
        assert len(members) > 1, f"``{family}*`` names {members}: name the variable itself"
