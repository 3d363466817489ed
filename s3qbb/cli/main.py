"""Entry point of the ``s3qbb`` command: the `click` group and `main`.

Global options (``-v``, ``--log-format``, ``--log-file``) are accepted before
and after the sub-command: ``s3qbb -v run-quantum ...`` and
``s3qbb run-quantum ... -v`` mean the same (see `s3qbb.cli.options`).

The sub-commands are imported only when run (or their help shown), so that
``s3qbb run-quantum``, which starts every batch job, imports neither the other
commands nor what they need (rich, SQLAlchemy).
"""

from __future__ import annotations

__all__ = ["COMMANDS", "COMPLETE_VAR", "cli", "main"]

import os
import sys
from collections.abc import Sequence

import click

from .. import __version__
from .lazy import LazyGroup
from .options import PROCESS_KEY, global_options, pause_gc, unfreeze_gc

_EXIT_BROKEN_PIPE = 141
"""Exit status when the reader of stdout went away (128 + SIGPIPE)."""
_EXIT_INTERRUPTED = 130
"""Exit status after Ctrl-C (128 + SIGINT), as `s3qbb.batch.exitcodes.ExitCode.INTERRUPTED_SIGINT`."""
COMPLETE_VAR = "_S3QBB_COMPLETE"
"""Environment variable asking for shell completion (click's protocol: ``bash_source``, ...)."""

COMMANDS = {
    "run-quantum": "s3qbb.cli.run_quantum:run_quantum",
    "inspect": "s3qbb.cli.inspect_cmd:inspect",
    "ingest": "s3qbb.cli.registry_cmds:ingest",
    "datasets": "s3qbb.cli.registry_cmds:datasets",
    "provenance": "s3qbb.cli.registry_cmds:provenance",
    "graph": "s3qbb.cli.graph_cmds:graph",
    "run": "s3qbb.cli.run_cmd:run",
    "submit": "s3qbb.cli.submit_cmd:submit",
}
"""Each sub-command and where it is defined (imported when it is used)."""

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 110}
"""Context settings of ``s3qbb`` and its sub-commands (which inherit them)."""


@click.group(
    "s3qbb",
    cls=LazyGroup,
    lazy_commands=COMMANDS,
    context_settings=CONTEXT_SETTINGS,
    epilog="-v, --log-format and --log-file may also be given after the sub-command.",
)
@click.version_option(__version__, "--version", prog_name="s3qbb", message="%(prog)s %(version)s")
@global_options
def cli() -> None:
    """Quantum-backed butler on S3-compatible storage."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``s3qbb`` command and return its exit status.

    Parameters
    ----------
    argv : `~collections.abc.Sequence` [`str`], optional
        The arguments after ``s3qbb``; `sys.argv` by default.

    Returns
    -------
    status : `int`
        The command's exit status: 2 for a usage error (the message, naming
        the option, goes to standard error), 0 after ``--help`` or
        ``--version``; see `s3qbb.batch.exitcodes` for the codes of
        ``run-quantum``. A reader that closes the pipe early (``s3qbb datasets
        ... | head -1``) ends the command quietly, without a
        ``BrokenPipeError`` traceback, with status 141 (128 + SIGPIPE, what
        the shell reports for a command killed by it); Ctrl-C ends it quietly
        with 130. Without ``argv`` (the ``s3qbb`` command itself) the command
        may leave its logging and ``run-quantum`` its signal handlers
        installed, as the process exits next; with ``argv`` (in-process) it
        puts everything back.
    """
    pause_gc()  # while the command starts: see `s3qbb.cli.options.pause_gc`
    try:
        code = _main(argv)
        sys.stdout.flush()  # a closed pipe shows here, not in Python's exit
    except BrokenPipeError:
        # Python would fail again flushing stdout at exit: point it at the null device.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return _EXIT_BROKEN_PIPE
    finally:
        unfreeze_gc()
    return code


def _main(argv: Sequence[str] | None) -> int:
    # Not `cli.main(standalone_mode=False)`: it turns a closed pipe into exit 1 and Ctrl-C into "Aborted!".
    # Which is why shell completion, which click's `main` would handle, is dispatched here.
    instruction = os.environ.get(COMPLETE_VAR)
    if instruction:
        from click.shell_completion import shell_complete

        return shell_complete(cli, {}, "s3qbb", COMPLETE_VAR, instruction)
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        with cli.make_context("s3qbb", args) as ctx:
            ctx.meta[PROCESS_KEY] = argv is None  # the process's own command line: see `owns_process`
            result = cli.invoke(ctx)
    except click.exceptions.Exit as exc:  # --help, --version
        return exc.exit_code
    except click.ClickException as exc:  # usage errors: exit 2
        exc.show()
        return exc.exit_code
    except (KeyboardInterrupt, click.Abort):
        if sys.stderr.isatty():
            print(file=sys.stderr)  # end the line the terminal's ^C is on
        return _EXIT_INTERRUPTED
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
