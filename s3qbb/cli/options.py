"""Options shared by the sub-commands, and errors that name the option to fix.

The global options (``-v``, ``--log-format``, ``--log-file``) are accepted
before and after the sub-command: `global_options` adds them to the ``s3qbb``
group and to every command, and each occurrence is recorded in one
`GlobalOptions` shared by the whole command line. ``-v`` counts add up
(``s3qbb -v run-quantum ... -v`` is ``-vv``); for the others the one given
last wins. `S3qbbCommand` installs the logging they describe around the
command and removes it afterwards.
"""

from __future__ import annotations

__all__ = [
    "LOG_FORMATS",
    "GlobalOptions",
    "S3qbbCommand",
    "current_global_options",
    "global_options",
    "json_option",
    "load_config_option",
    "pause_gc",
    "resume_gc",
    "unfreeze_gc",
]

import dataclasses
import gc
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..repo import RepoConfig

F = TypeVar("F", bound=Callable[..., Any])

LOG_FORMATS = ("text", "json")
"""The values of ``--log-format`` (those of `s3qbb.batch.logs.LOG_FORMATS`, not imported: it is not cheap)."""

_META_KEY = "s3qbb.global_options"
PROCESS_KEY = "s3qbb.process_command"
"""Key of ``ctx.meta``: whether the command is the process's own (`s3qbb.cli.main` without ``argv``)."""


@dataclasses.dataclass
class GlobalOptions:
    """The global options of one command line, wherever they were given."""

    verbose: int = 0
    """How many ``-v``: 0 warnings, 1 s3qbb's steps, 2 its debug messages, 3 every library's."""
    log_format: str = "text"
    """``--log-format``: ``text`` or ``json``."""
    log_file: str | None = None
    """``--log-file``: also append the log to this file."""


def _global_options_of(ctx: click.Context) -> GlobalOptions:
    options: GlobalOptions = ctx.meta.setdefault(_META_KEY, GlobalOptions())  # meta: one per command line
    return options


def owns_process(ctx: click.Context | None = None) -> bool:
    """Tell whether the command is the process's own: the ``s3qbb`` command, not `s3qbb.cli.main` in-process.

    Such a command may leave process-wide state behind when it returns (its
    logging, ``run-quantum``'s signal handlers): the process exits next.
    """
    ctx = ctx or click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.meta.get(PROCESS_KEY, False))


def current_global_options() -> GlobalOptions:
    """Return the global options of the command line being run (inside a command's callback)."""
    return _global_options_of(click.get_current_context())


def _record(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    options = _global_options_of(ctx)
    if param.name == "verbose":
        options.verbose += value
    elif value is not None:
        setattr(options, str(param.name), value)
    return value


_GLOBAL_OPTIONS = (
    click.option(
        "-v",
        "--verbose",
        count=True,
        expose_value=False,
        callback=_record,
        help="-v: s3qbb's steps (each request, its size and time); -vv: its debug; -vvv: every library's",
    ),
    click.option(
        "--log-format",
        type=click.Choice(LOG_FORMATS),
        expose_value=False,
        callback=_record,
        help="text (time, quantum ID and task label on each line; the default) or json (an object a line)",
    ),
    click.option(
        "--log-file",
        metavar="PATH",
        expose_value=False,
        callback=_record,
        help="also append the log to PATH",
    ),
)


def global_options(f: F) -> F:
    """Add ``-v``, ``--log-format`` and ``--log-file`` to a command or group (see the module)."""
    for option in reversed(_GLOBAL_OPTIONS):
        f = option(f)
    return f


def json_option(help: str = "print JSON") -> Callable[[F], F]:
    """Return the ``--json`` flag (the callback's ``as_json`` argument)."""
    return click.option("--json", "as_json", is_flag=True, help=help)


_gc_state = "running"
"""``paused`` by `pause_gc`, ``frozen`` by `resume_gc`, ``running`` again after `unfreeze_gc`."""


def pause_gc() -> None:
    """Turn Python's cyclic garbage collector off while a command starts (see `resume_gc`).

    Starting a command imports a few hundred modules and builds their classes
    and models: objects that live as long as the process, which the collector,
    triggered by all those allocations, would traverse again and again without
    finding garbage. Nothing is done if the collector is off already, or if
    the program froze objects itself (`gc.freeze`).
    """
    global _gc_state
    if _gc_state == "running" and gc.isenabled() and gc.get_freeze_count() == 0:
        gc.disable()
        _gc_state = "paused"


def resume_gc() -> None:
    """Turn the garbage collector back on if `pause_gc` turned it off, freezing what start-up made.

    The objects made while it was off are moved to the permanent generation
    (`gc.freeze`), so that its first collections do not traverse them all (which
    would cost what the pause saved). Every command resumes it before its
    callback runs (`S3qbbCommand`), except ``run-quantum``, which resumes it
    once its configuration, quantum and task are loaded, before the job runs.
    """
    global _gc_state
    if _gc_state == "paused":
        gc.freeze()
        gc.enable()
        _gc_state = "frozen"


def unfreeze_gc() -> None:
    """Undo `pause_gc` and `resume_gc` (`s3qbb.cli.main` calls it before returning).

    The frozen objects go back to the oldest generation, so that a program
    running commands in-process (a test, a notebook) gets any garbage among
    them collected.
    """
    global _gc_state
    resume_gc()
    if _gc_state == "frozen":
        gc.unfreeze()
        _gc_state = "running"


class S3qbbCommand(click.Command):
    """A sub-command of ``s3qbb``: its callback runs with the logging the global options ask for.

    The handlers are removed and the levels restored when it returns, so a
    program calling `s3qbb.cli.main` in-process keeps its own logging (the
    process's own command keeps them until it exits: see `owns_process`). The
    garbage collector paused while the command started is resumed before the
    callback runs, unless `resumes_gc` says the callback resumes it itself.
    """

    resumes_gc = False
    """Whether the callback calls `resume_gc` itself (after loading what it needs)."""

    def invoke(self, ctx: click.Context) -> Any:
        """Install the logging of the global options, run the callback, restore the logging."""
        from ..batch.logs import configure_logging

        if not self.resumes_gc:
            resume_gc()

        options = _global_options_of(ctx)
        try:
            restore = configure_logging(options.verbose, options.log_format, options.log_file)
        except OSError as err:
            raise click.UsageError(
                f"cannot open --log-file {options.log_file}: {err.strerror}", ctx
            ) from None
        try:
            return super().invoke(ctx)
        finally:
            if not owns_process(ctx):  # else what the process logs until it exits keeps the format
                restore()


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
