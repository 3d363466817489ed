"""Logging of batch jobs: timestamps, the quantum on every line, text or JSON, credentials redacted.

`configure_logging` is what the ``s3qbb`` command installs from ``-v``,
``--log-format`` and ``--log-file``; `log_context` tags every record logged
inside it with the quantum ID and task label. Records of other threads (the
datastore's thread pools) carry them too while a single `log_context` is
active in the process, as in a batch job; with several at once (quanta run in
threads of one worker) only the threads that entered one are tagged.

Verbosity levels:

- 0: warnings and errors;
- 1 (``-v``): s3qbb's own steps: graph and quantum loaded, inputs checked,
  each S3 request with its size and time, uploads;
- 2 (``-vv``): s3qbb's debug messages too (retries, clients created);
- 3 (``-vvv``): every library's debug messages, botocore's and urllib3's
  included (signed headers are redacted).
"""

from __future__ import annotations

__all__ = [
    "LOG_FORMATS",
    "ContextFilter",
    "JsonFormatter",
    "configure_logging",
    "current_context",
    "log_context",
]

import contextlib
import contextvars
import datetime
import json
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Literal

from ..redaction import RedactingFormatter

LOG_FORMATS = ("text", "json")
"""Values of ``--log-format``."""

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(task_label)s %(quantum_id)s] %(message)s"

_QUANTUM_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("s3qbb_quantum_id", default=None)
_TASK_LABEL: contextvars.ContextVar[str | None] = contextvars.ContextVar("s3qbb_task_label", default=None)

_MARK = "_s3qbb_handler"

# Loggers that -v and -vv leave at WARNING (-vvv opens them).
_NOISY = ("botocore", "boto3", "urllib3", "s3transfer", "obstore", "asyncio", "aiobotocore", "distributed")


_ACTIVE: dict[int, tuple[str | None, str | None]] = {}
"""Every active `log_context` (for records of threads that did not enter one)."""
_ACTIVE_LOCK = threading.Lock()


@contextlib.contextmanager
def log_context(*, quantum_id: object | None, task_label: str | None) -> Iterator[None]:
    """Tag every log record emitted inside the block with a quantum ID and task label.

    Parameters
    ----------
    quantum_id : `object`
        The quantum's ID (shown as ``str(quantum_id)``), or `None`.
    task_label : `str`
        The task label, or `None`.
    """
    value = None if quantum_id is None else str(quantum_id)
    q = _QUANTUM_ID.set(value)
    t = _TASK_LABEL.set(task_label)
    key = object()
    with _ACTIVE_LOCK:
        _ACTIVE[id(key)] = (value, task_label)
    try:
        yield
    finally:
        with _ACTIVE_LOCK:
            del _ACTIVE[id(key)]
        _TASK_LABEL.reset(t)
        _QUANTUM_ID.reset(q)


def current_context() -> dict[str, str | None]:
    """Return the quantum ID and task label of the current `log_context` (`None` outside one).

    In a thread that entered no `log_context`, those of the only one active
    in the process, if exactly one is.
    """
    quantum_id, task_label = _QUANTUM_ID.get(), _TASK_LABEL.get()
    if quantum_id is None and task_label is None:
        with _ACTIVE_LOCK:
            if len(_ACTIVE) == 1:
                ((quantum_id, task_label),) = _ACTIVE.values()
    return {"quantum_id": quantum_id, "task_label": task_label}


class ContextFilter(logging.Filter):
    """Add ``quantum_id`` and ``task_label`` attributes (``-`` outside a `log_context`) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:  # noqa: D102
        context = current_context()
        record.quantum_id = context["quantum_id"] or "-"
        record.task_label = context["task_label"] or "-"
        return True


class JsonFormatter(RedactingFormatter):
    """Format each record as one JSON object per line, credentials redacted.

    Keys: ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``,
    ``quantum_id``, ``task_label``, and ``exception`` when there is one.
    """

    def __init__(self) -> None:
        super().__init__("%(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: D102 (logging's name)
        document: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "quantum_id": getattr(record, "quantum_id", None),
            "task_label": getattr(record, "task_label", None),
        }
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)

    def format(self, record: logging.LogRecord) -> str:  # noqa: D102
        record.message = record.getMessage()
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_text = None
        try:
            text = self.formatMessage(record)  # the exception goes inside the JSON object
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved
        from ..redaction import credential_values, redact

        return redact(text, credential_values() | self._secrets)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Write to whatever `sys.stderr` is when a record is emitted (it may be replaced, as in tests)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, value: IO[str]) -> None:
        pass

    def close(self) -> None:  # never close sys.stderr
        logging.Handler.close(self)


def _formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter()
    if log_format == "text":
        return RedactingFormatter(_TEXT_FORMAT)
    raise ValueError(f"Log format {log_format!r} is not one of {LOG_FORMATS}.")


def configure_logging(
    verbosity: int = 0,
    log_format: Literal["text", "json"] | str = "text",
    log_file: str | Path | None = None,
    *,
    stream: IO[str] | None = None,
) -> Callable[[], None]:
    """Install the handlers of the ``s3qbb`` command on the root logger (replacing those of an earlier call).

    Parameters
    ----------
    verbosity : `int`, optional
        0 warnings, 1 s3qbb's steps, 2 s3qbb's debug messages, 3 every library's debug messages.
    log_format : {"text", "json"}, optional
        ``text``: ``time level logger [task quantum] message``; ``json``: one object per line.
    log_file : `str` or `pathlib.Path`, optional
        Also append the log to this file (same format).
    stream : file-like, optional
        Where the log goes; `sys.stderr` by default.

    Returns
    -------
    restore : `~collections.abc.Callable` [[], `None`]
        Puts the logger levels back as they were and removes (closes) the
        handlers installed here, so a program calling `s3qbb.cli.main`
        in-process (a test, a notebook) keeps its own logging.
    """
    root = logging.getLogger()
    touched = [root, logging.getLogger("s3qbb"), *(logging.getLogger(name) for name in _NOISY)]
    levels = [(logger, logger.level) for logger in touched]
    formatter = _formatter(log_format)
    context = ContextFilter()
    handlers: list[logging.Handler] = [logging.StreamHandler(stream) if stream else _StderrHandler()]
    if log_file is not None:
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(context)
    for old in list(root.handlers):
        if getattr(old, _MARK, False):  # ours, from an earlier call; other handlers stay
            root.removeHandler(old)
            old.close()
    for handler in handlers:
        setattr(handler, _MARK, True)
        root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbosity >= 3 else logging.WARNING)
    own = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    logging.getLogger("s3qbb").setLevel(own)
    for name in _NOISY:
        logging.getLogger(name).setLevel(logging.DEBUG if verbosity >= 3 else logging.WARNING)

    def restore() -> None:
        for handler in handlers:
            root.removeHandler(handler)
            handler.close()
        for logger, level in levels:
            logger.setLevel(level)

    return restore
