"""The temporary records folder of a quantum: a folder left by a job that died is removed later, never a
live one (`s3qbb.butler.scratch`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from s3qbb.butler.scratch import LOCK_NAME, PREFIX, records_scratch, remove_stale_folders

_OWNER = textwrap.dedent(
    """
    import os, signal, sys
    from s3qbb.butler.scratch import records_scratch
    with records_scratch() as folder:
        (folder / "records.sqlite3").write_bytes(b"SQLite format 3\\x00" + b"half")
        print(folder, flush=True)
        if sys.argv[1] == "die":
            os.kill(os.getpid(), signal.SIGKILL)
        sys.stdin.readline()  # live until told
    """
)


def _owner(tmp: Path, how: str) -> tuple[subprocess.Popen[str], Path]:
    """Start a process using a records folder in ``tmp``; it dies by SIGKILL in it, or waits."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _OWNER, how],
        env={**os.environ, "TMPDIR": str(tmp)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    folder = Path(proc.stdout.readline().strip())
    assert folder.parent == tmp and folder.name.startswith(PREFIX), folder
    return proc, folder


def _folders(tmp: Path) -> list[Path]:
    return sorted(p for p in tmp.iterdir() if "s3qbb-records" in p.name)


def test_folder_of_a_killed_job_is_removed_by_the_next_one_a_live_ones_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    live, used = _owner(tmp_path, "wait")
    try:
        dead, left = _owner(tmp_path, "die")  # its own cleanup leaves the live job's folder
        assert dead.wait(30) == -signal.SIGKILL
        assert _folders(tmp_path) == sorted([left, used])
        monkeypatch.setenv("TMPDIR", str(tmp_path))
        monkeypatch.setattr("tempfile.tempdir", None)  # read TMPDIR again
        with records_scratch() as mine:
            assert not left.exists()  # its owner died: removed
            assert (used / "records.sqlite3").exists() and (used / LOCK_NAME).exists()  # live: kept
            assert remove_stale_folders(tmp_path) == []  # never this process's own folder either
            assert mine.exists()
        assert not mine.exists()
        assert _folders(tmp_path) == [used]
    finally:
        assert live.stdin is not None
        live.communicate("\n", timeout=30)
    assert live.returncode == 0
    assert _folders(tmp_path) == []


def test_only_locked_records_folders_of_this_user_are_judged(tmp_path: Path) -> None:
    """A folder without a lock file (an older s3qbb's, or not s3qbb's), a link, a file: left alone."""
    unlocked = tmp_path / f"{PREFIX}old"
    unlocked.mkdir()
    (unlocked / "records.sqlite3").write_bytes(b"x")
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / LOCK_NAME).write_bytes(b"")
    (tmp_path / f"{PREFIX}link").symlink_to(target)
    (tmp_path / f"{PREFIX}file").write_bytes(b"")
    other = tmp_path / "unrelated"
    other.mkdir()
    (other / LOCK_NAME).write_bytes(b"")
    assert remove_stale_folders(tmp_path) == []
    assert (unlocked / "records.sqlite3").exists() and (target / LOCK_NAME).exists() and other.exists()
