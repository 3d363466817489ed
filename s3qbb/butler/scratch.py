"""The temporary folder a quantum's in-memory records are copied to before upload, and its cleanup.

A job killed (SIGKILL, out of memory) while it copies its records leaves its
``s3qbb-records-*`` folder in the temporary directory: nothing of it can run.
Each folder holds a lock file (``owner.lock``) its owner keeps locked
(`fcntl.flock`) as long as it lives; the kernel releases the lock when the
owner dies, however it dies. The next `records_scratch` in the same temporary
directory (the retry, or any later job on that machine) removes the folders
whose lock it can take: their owner is gone. A folder whose lock is held is
left alone (its owner runs, perhaps in another container sharing the
directory, where process IDs would tell nothing), as is a folder without a
lock file (made by an s3qbb that did not lock, or not by s3qbb), another
user's folder, and any folder where locks are not supported.

The lock is taken before the folder gets the name that the cleanup looks for
(it is made under a ``.s3qbb-records-new-`` name, then renamed), so a live
folder is never seen unlocked. Only local operations: no S3 request.
"""

from __future__ import annotations

__all__ = ["LOCK_NAME", "PREFIX", "records_scratch", "remove_stale_folders"]

import contextlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

_LOG = logging.getLogger(__name__)

PREFIX = "s3qbb-records-"
"""Name prefix of the folders (in the temporary directory) holding a quantum's records file."""

LOCK_NAME = "owner.lock"
"""The lock file in each folder, locked by the process using the folder."""

_NEW_PREFIX = ".s3qbb-records-new-"


def _try_lock(path: Path) -> int | None:
    """Open ``path`` (never creating it, never following a link) and lock it; `None` if held or unusable."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held by a live owner (BlockingIOError), or locks unsupported here
        os.close(fd)
        return None
    return fd


def remove_stale_folders(tmpdir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Remove the records folders in ``tmpdir`` left by processes that died; return those removed.

    Parameters
    ----------
    tmpdir : path-like, optional
        The temporary directory (`tempfile.gettempdir` by default).
    """
    root = Path(tmpdir if tmpdir is not None else tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    uid = os.getuid()
    for entry in entries:
        try:
            if not entry.name.startswith(PREFIX) or not entry.is_dir(follow_symlinks=False):
                continue
            if entry.stat(follow_symlinks=False).st_uid != uid:
                continue  # another user's: not ours to judge
        except OSError:
            continue
        folder = Path(entry.path)
        fd = _try_lock(folder / LOCK_NAME)
        if fd is None:
            continue
        try:
            # Its owner is gone: remove the folder (its lock file last), holding the lock meanwhile.
            shutil.rmtree(folder, ignore_errors=True)
        finally:
            os.close(fd)
        if not folder.exists():
            removed.append(folder)
            _LOG.info(
                "Removed %s, the records folder of an s3qbb job that died (no process holds it).", folder
            )
    return removed


@contextlib.contextmanager
def records_scratch() -> Iterator[Path]:
    """Make a records folder in the temporary directory, locked as this process's, removed on exit.

    Folders left there by jobs that died are removed first (`remove_stale_folders`).
    """
    import fcntl

    root = tempfile.gettempdir()
    remove_stale_folders(root)
    staging = Path(tempfile.mkdtemp(prefix=_NEW_PREFIX, dir=root))
    fd = os.open(staging / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:  # no locks on this file system: the folder is still removed on exit
        _LOG.debug("Cannot lock %s (%s): if this job dies, its records folder stays.", staging, err)
    folder = staging.with_name(PREFIX + staging.name.removeprefix(_NEW_PREFIX))
    try:
        os.rename(staging, folder)
    except OSError:
        os.close(fd)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # the lock file with it, still locked until closed
        os.close(fd)
