"""The progress display of ``s3qbb ingest``: a `rich.progress` bar on standard error, only on a terminal."""

from __future__ import annotations

__all__ = ["IngestProgressDisplay", "format_bytes"]

import sys
from types import TracebackType
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.console import Console

    from ..registry.results import IngestProgress


def format_bytes(size: int) -> str:
    """Return a byte count in binary units.

    Parameters
    ----------
    size : `int`
        Bytes.

    Returns
    -------
    text : `str`
        ``"512 B"``, ``"1.2 MiB"``.

    Examples
    --------
    >>> from s3qbb.cli.progress import format_bytes
    >>> format_bytes(512), format_bytes(1258291), format_bytes(3 * 1024**4)
    ('512 B', '1.2 MiB', '3.0 TiB')
    """
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"


class IngestProgressDisplay:
    """A progress callback of `~s3qbb.registry.Registry.ingest_run`, drawn by `rich.progress`.

    It draws nothing unless its stream is a terminal, so a redirected log
    (``2> ingest.log``) holds no progress lines. Use it as a context manager.

    Parameters
    ----------
    stream : `typing.TextIO`, optional
        Where to draw; standard error by default.
    show : `bool`, optional
        `False` draws nothing (``--no-progress``).
    console : `rich.console.Console`, optional
        Draw on this console instead (it decides whether it is a terminal).
    """

    def __init__(
        self, stream: TextIO | None = None, *, show: bool = True, console: Console | None = None
    ) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._console = console or Console(file=stream or sys.stderr, highlight=False)
        self.enabled = show and self._console.is_terminal
        """Whether anything is drawn."""
        self._progress = Progress(
            TextColumn("ingest"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("quanta, {task.fields[detail]}"),
            TimeElapsedColumn(),
            console=self._console,
            disable=not self.enabled,
            transient=False,
        )
        self._task = self._progress.add_task("ingest", total=None, detail="")

    def __call__(self, progress: IngestProgress) -> None:
        """Show where the ingest stands."""
        detail = (
            f"{progress.quanta_added} added, {progress.failures} failed, "
            f"{format_bytes(progress.bytes_downloaded)}"
        )
        self._progress.update(self._task, total=progress.total, completed=progress.done, detail=detail)

    def __enter__(self) -> IngestProgressDisplay:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()
