"""Tables of the command line: fitted to the terminal with `rich`, plain and complete in a pipe.

On a terminal, a table is drawn by `rich.table.Table` at the terminal's width
(long columns wrap; IDs never do) and ``--limit`` defaults to
`TERMINAL_LIMIT` rows. When standard output is not a terminal (a pipe, a
file), the table is plain text: columns separated by two spaces, no ANSI
codes, nothing truncated, and every row unless ``--limit`` is given. Rows left
out are counted on a last line, ``... N more rows (--limit 0 shows all)``.
"""

from __future__ import annotations

__all__ = ["TERMINAL_LIMIT", "Column", "effective_limit", "is_terminal", "limit_option", "print_table"]

import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, TextIO, TypeVar

import click

if TYPE_CHECKING:
    from rich.console import Console

F = TypeVar("F", bound=Callable[..., Any])

TERMINAL_LIMIT = 50
"""Rows shown on a terminal when ``--limit`` is not given."""


class Column(NamedTuple):
    """A column of a table."""

    header: str
    """Its heading."""
    wrap: bool = True
    """Whether long values may wrap on a terminal (`False` for IDs, which are shown whole)."""
    right: bool = False
    """Align right (numbers)."""


def _non_negative(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value is not None and value < 0:
        raise click.UsageError(f"--limit must be 0 (all rows) or more, not {value}", ctx)
    return value


def limit_option(f: F) -> F:
    """Add ``--limit N`` to a sub-command printing a table (the callback's ``limit`` argument)."""
    option = click.option(
        "--limit",
        type=int,
        metavar="N",
        callback=_non_negative,
        help=f"print at most N rows; 0 prints all (default: {TERMINAL_LIMIT} on a terminal, all otherwise; "
        "--json always prints all)",
    )
    return option(f)


def is_terminal(stream: TextIO) -> bool:
    """Tell whether a stream is a terminal (tables and trees are then drawn by `rich`)."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def effective_limit(limit: int | None, stream: TextIO | None = None) -> int | None:
    """Return the number of rows to print, `None` for all.

    Parameters
    ----------
    limit : `int` or `None`
        The ``--limit`` given (0 means all), `None` if not given.
    stream : `typing.TextIO`, optional
        Where the table goes; standard output by default.
    """
    if limit is None:
        return TERMINAL_LIMIT if is_terminal(stream or sys.stdout) else None
    return limit or None


def _plain(columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max([len(c.header), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    lines = []
    for cells in [[c.header for c in columns], *rows]:
        aligned = zip(cells, columns, widths, strict=True)
        parts = [cell.rjust(w) if c.right else cell.ljust(w) for cell, c, w in aligned]
        lines.append("  ".join(parts).rstrip())
    return lines


def print_table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    *,
    limit: int | None,
    stream: TextIO | None = None,
    console: Console | None = None,
    total: int | None = None,
) -> None:
    """Print a table: fitted by `rich` on a terminal, plain otherwise.

    Parameters
    ----------
    columns : `~collections.abc.Sequence` [`Column`]
        The columns.
    rows : `~collections.abc.Sequence` [`~collections.abc.Sequence` [`str`]]
        The cells, one sequence per row.
    limit : `int` or `None`
        The ``--limit`` option as given (see `effective_limit`).
    stream : `typing.TextIO`, optional
        Where to print; standard output by default.
    console : `rich.console.Console`, optional
        Draw with this console (a terminal) instead of deciding from ``stream``.
    total : `int`, optional
        How many rows there are in all, when ``rows`` holds only the first
        ones (a query's ``LIMIT``): the footer counts the others.
    """
    out = stream or sys.stdout
    terminal = console.is_terminal if console is not None else is_terminal(out)
    shown_limit = (TERMINAL_LIMIT if terminal else None) if limit is None else (limit or None)
    shown = rows if shown_limit is None else rows[:shown_limit]
    more = (len(rows) if total is None else total) - len(shown)
    footer = f"... {more} more row{'s' if more != 1 else ''} (--limit 0 shows all)" if more else None
    if not terminal:
        lines = _plain(columns, shown)
        out.write("\n".join([*lines, *([footer] if footer else [])]) + "\n")
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = console or Console(file=out, highlight=False)
    table = Table(box=None, pad_edge=False, header_style="bold")
    for i, column in enumerate(columns):
        table.add_column(
            Text(column.header),
            no_wrap=not column.wrap,
            overflow="fold",
            justify="right" if column.right else "left",
            min_width=None if column.wrap else max((len(r[i]) for r in shown), default=0),
        )
    for cells in shown:
        table.add_row(*(Text(cell) for cell in cells))  # Text: no markup in data IDs like [x]
    console.print(table)
    if footer:
        console.print(Text(footer, style="dim"))
