"""Entry point of the ``s3qbb`` command and its sub-command registry."""

from __future__ import annotations

__all__ = ["build_parser", "main"]

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from .. import __version__
from . import graph_cmds, inspect_cmd, registry_cmds, run_cmd, submit_cmd
from . import run_quantum as run_quantum_cmd

_EXIT_BROKEN_PIPE = 141
"""Exit status when the reader of stdout went away (128 + SIGPIPE)."""


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="s3qbb", description="Quantum-backed butler on S3-compatible storage."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", required=True)
    run_quantum_cmd.add_parser(sub)
    inspect_cmd.add_parser(sub)
    registry_cmds.add_parsers(sub)
    graph_cmds.add_parsers(sub)
    run_cmd.add_parser(sub)
    submit_cmd.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``s3qbb`` command and return its exit status.

    A reader that closes the pipe early (``s3qbb datasets ... | head -1``) ends
    the command quietly, without a ``BrokenPipeError`` traceback, with status
    141 (128 + SIGPIPE, what the shell reports for a command killed by it).
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
    level = logging.WARNING - 10 * min(args.verbose, 2)
    from ..provenance.files import RedactingFormatter

    # Credentials in use are masked in every line logged (botocore logs signed headers at debug level).
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    code: int = args.func(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
