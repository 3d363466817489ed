"""Entry point of the ``s3qbb`` command and its sub-command registry.

Global options (``-v``, ``--log-format``, ``--log-file``) are accepted before
and after the sub-command: ``s3qbb -v run-quantum ...`` and
``s3qbb run-quantum ... -v`` mean the same.
"""

from __future__ import annotations

__all__ = ["GlobalOptionsSubParsers", "build_parser", "global_options_parser", "main"]

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from .. import __version__
from . import graph_cmds, inspect_cmd, registry_cmds, run_cmd, submit_cmd
from . import run_quantum as run_quantum_cmd

_EXIT_BROKEN_PIPE = 141
"""Exit status when the reader of stdout went away (128 + SIGPIPE)."""
_AFTER = "_after_"
"""Prefix of the destinations of global options given after the sub-command."""


def global_options_parser(*, after: bool) -> argparse.ArgumentParser:
    """Return a parent parser holding the global options.

    Parameters
    ----------
    after : `bool`
        Build it for sub-commands: destinations are prefixed so that values
        given after the sub-command add to (``-v``) or override those given
        before it, and defaults are suppressed.
    """
    from ..batch.logs import LOG_FORMATS

    prefix = _AFTER if after else ""
    default: Any = argparse.SUPPRESS if after else None
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("logging (before or after the sub-command)")
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        dest=f"{prefix}verbose",
        default=argparse.SUPPRESS if after else 0,
        help="-v: s3qbb's steps (each request, its size and time); -vv: its debug; -vvv: every library's",
    )
    group.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        dest=f"{prefix}log_format",
        default=default,
        help="text (time, quantum ID and task label on each line; the default) or json (an object a line)",
    )
    group.add_argument(
        "--log-file",
        dest=f"{prefix}log_file",
        default=default,
        metavar="PATH",
        help="also append the log to PATH",
    )
    return parser


class GlobalOptionsSubParsers:
    """The sub-parsers action of ``s3qbb``: each sub-command added through it accepts the global options.

    Parameters
    ----------
    action : `argparse._SubParsersAction`
        What ``parser.add_subparsers()`` returned.
    """

    def __init__(self, action: Any) -> None:
        self._action = action
        self._parent = global_options_parser(after=True)

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        """Add a sub-command (as `argparse` does), with the global options."""
        kwargs["parents"] = [*kwargs.get("parents", ()), self._parent]
        parser: argparse.ArgumentParser = self._action.add_parser(name, **kwargs)
        return parser


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="s3qbb",
        description="Quantum-backed butler on S3-compatible storage.",
        parents=[global_options_parser(after=False)],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = GlobalOptionsSubParsers(parser.add_subparsers(dest="command", required=True))
    run_quantum_cmd.add_parser(sub)
    inspect_cmd.add_parser(sub)
    registry_cmds.add_parsers(sub)
    graph_cmds.add_parsers(sub)
    run_cmd.add_parser(sub)
    submit_cmd.add_parser(sub)
    return parser


def _merge_global_options(args: argparse.Namespace) -> None:
    args.verbose = (args.verbose or 0) + getattr(args, f"{_AFTER}verbose", 0)
    for name in ("log_format", "log_file"):
        after = getattr(args, f"{_AFTER}{name}", None)
        if after is not None:
            setattr(args, name, after)
    args.log_format = args.log_format or "text"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``s3qbb`` command and return its exit status.

    Exit status 2 is a usage error (argparse's code); see
    `s3qbb.batch.exitcodes` for the codes of ``run-quantum``. A reader that
    closes the pipe early (``s3qbb datasets ... | head -1``) ends the command
    quietly, without a ``BrokenPipeError`` traceback, with status 141
    (128 + SIGPIPE, what the shell reports for a command killed by it).
    """
    try:
        code = _main(argv)
        sys.stdout.flush()  # a closed pipe shows here, not in Python's exit
    except BrokenPipeError:
        # Python would fail again flushing stdout at exit: point it at the null device.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return _EXIT_BROKEN_PIPE
    return code


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _merge_global_options(args)
    from ..batch.logs import configure_logging

    try:
        restore_logging = configure_logging(args.verbose, args.log_format, args.log_file)
    except OSError as err:
        parser.error(f"cannot open --log-file {args.log_file}: {err.strerror}")
    try:
        code: int = args.func(args)
    finally:
        restore_logging()
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
