"""The environment variables of the configuration models as pydantic-settings views.

`s3qbb.config.EnvConfigModel.from_env` reads the variables itself, with plain
look-ups and the same rules, and does not import this module:
pydantic-settings takes 20-40 ms of CPU to import (its sources, asyncio,
dotenv), a share of a batch job's start-up too large for reading a few
variables. This module is for applications that compose s3qbb's variables
with their own pydantic-settings classes; the tests check that both read the
same values.

Each configuration model gets an *environment view*: a
`pydantic_settings.BaseSettings` with one optional text field per field of
the model that has variables, its ``validation_alias`` the
`~pydantic.AliasChoices` of those variables in order of precedence (the
model's ``json_schema_extra["env"]``, then its ``"env_fallbacks"``). The view
reads the raw text (case-sensitive names, empty values ignored, no ``.env``
file, no secrets directory), as ``from_env`` does; the model itself validates
it, so an invalid value is reported by the model's own validation, naming the
field.
"""

from __future__ import annotations

__all__ = ["EnvironmentView", "environment_values", "view_of"]

import contextvars
import functools
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import AliasChoices, Field, create_model
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

if TYPE_CHECKING:
    from pydantic import BaseModel


_ENVIRON: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "s3qbb_config_environ", default=None
)
"""The environment `environment_values` reads (`os.environ` when unset), per thread and task."""


class EnvironmentView(BaseSettings):
    """Base of the environment views: raw text of the variables, nothing else.

    Instantiating a view reads the environment, as any ``BaseSettings`` does:
    `os.environ`, or the mapping `environment_values` was given.
    """

    model_config = SettingsConfigDict(case_sensitive=True, env_ignore_empty=True, extra="ignore", frozen=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Read the environment only (no ``.env`` file, no secrets directory)."""
        environ = _ENVIRON.get()
        return (init_settings, env_settings if environ is None else _MappingEnvSource(settings_cls, environ))


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping instead of `os.environ`."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # What the base class does with os.environ for a case-sensitive view ignoring empty values.
        return {name: value for name, value in self._environ.items() if value != ""}


@functools.cache
def view_of(
    model: type[BaseModel], aliases: tuple[tuple[str, tuple[str, ...]], ...]
) -> type[EnvironmentView]:
    """Return the environment view of a model (one per model and set of variables).

    Parameters
    ----------
    model : `type` [`pydantic.BaseModel`]
        The configuration model (names the view).
    aliases : `tuple`
        ``(field name, (variable, *fallbacks))`` pairs.

    Returns
    -------
    view : `type` [`EnvironmentView`]
        A settings class with one ``str | None`` field per pair.
    """
    fields: dict[str, Any] = {
        name: (str | None, Field(None, validation_alias=AliasChoices(*variables)))
        for name, variables in aliases
    }
    view: type[EnvironmentView] = create_model(
        f"{model.__name__}Environment", __base__=EnvironmentView, **fields
    )
    return view


def environment_values(
    model: type[BaseModel], aliases: Mapping[str, tuple[str, ...]], environ: Mapping[str, str]
) -> dict[str, tuple[str, str]]:
    """Read the variables of a model's fields.

    Parameters
    ----------
    model : `type` [`pydantic.BaseModel`]
        The configuration model.
    aliases : `~collections.abc.Mapping` [`str`, `tuple` [`str`, ...]]
        Variables of each field, in order of precedence
        (`s3qbb.config.EnvConfigModel.env_aliases`).
    environ : `~collections.abc.Mapping` [`str`, `str`]
        The environment.

    Returns
    -------
    values : `dict` [`str`, `tuple` [`str`, `str`]]
        For every field whose variables are set (non-empty): its raw text
        and the variable it came from (the first set, in precedence order).
    """
    view = view_of(model, tuple(aliases.items()))
    token = _ENVIRON.set(None if environ is os.environ else environ)
    try:
        settings = view()
    finally:
        _ENVIRON.reset(token)
    found: dict[str, tuple[str, str]] = {}
    for name in sorted(settings.model_fields_set):
        raw = getattr(settings, name)
        if raw is not None:
            variable = next(v for v in aliases[name] if environ.get(v))
            found[name] = (raw, variable)
    return found
