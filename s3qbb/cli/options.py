"""Options shared by sub-commands, with errors that name the option to fix."""

from __future__ import annotations

__all__ = ["load_config_option"]

from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..repo import RepoConfig


def load_config_option(location: str) -> RepoConfig:
    """Load the repository configuration given as ``--config``.

    Parameters
    ----------
    location : `str`
        The option's value: a local file, a folder holding ``butler.yaml``, or an ``s3://`` URI.

    Returns
    -------
    repo : `~s3qbb.repo.RepoConfig`
        The configuration.

    Raises
    ------
    ConfigError
        If it cannot be found or read; the message starts with ``--config LOCATION:``.
    """
    from ..repo import load_repo_config

    try:
        return load_repo_config(location)
    except ConfigError as err:
        err.args = (f"--config {location}: {err}", *err.args[1:])
        raise
