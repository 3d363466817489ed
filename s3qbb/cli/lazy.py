"""A `click.Group` whose sub-commands are imported only when one is run or its help is shown.

``s3qbb run-quantum`` starts every batch job, so the ``s3qbb`` group must not
import the modules of the other commands (nor what they import: rich,
SQLAlchemy, boto3): each sub-command is named by ``"module:attribute"`` and
imported by `LazyGroup.get_command`.
"""

from __future__ import annotations

__all__ = ["LazyGroup"]

import importlib
from collections.abc import Mapping
from typing import Any

import click


class LazyGroup(click.Group):
    """A group of commands given as import paths, imported on first use.

    Parameters
    ----------
    *args : `~typing.Any`
        Passed to `click.Group`.
    lazy_commands : `~collections.abc.Mapping` [`str`, `str`]
        Sub-command name -> ``"package.module:attribute"`` of its `click.Command`,
        in the order ``--help`` lists them.
    **kwargs : `~typing.Any`
        Passed to `click.Group`.
    """

    def __init__(self, *args: Any, lazy_commands: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})
        """Sub-command name -> import path of its command."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Return the sub-command names: the lazy ones in their given order, then any added eagerly."""
        eager = [name for name in super().list_commands(ctx) if name not in self.lazy_commands]
        return [*self.lazy_commands, *eager]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Return a sub-command, importing its module if it is a lazy one."""
        path = self.lazy_commands.get(cmd_name)
        if path is None:
            return super().get_command(ctx, cmd_name)
        module_name, _, attribute = path.partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):  # a wrong path in the table: a bug, not a usage error
            raise TypeError(f"{path} is a {type(command).__name__}, not a click command.")
        return command
