"""The garbage collector is paused while a command starts, on while the task runs, and as it was after."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import cli_tasks
import pytest
from cli_helpers import CliJob, make_ref, write_quantum

from s3qbb.cli.main import main
from s3qbb.core import Quantum


@pytest.fixture
def gc_seen() -> Iterator[list[tuple[bool, bool]]]:
    cli_tasks.GC_SEEN.clear()
    yield cli_tasks.GC_SEEN
    cli_tasks.GC_SEEN.clear()
    gc.enable()


def _run(job: CliJob, label: str) -> int:
    quantum = Quantum(taskLabel=label, taskName="cli_tasks.record_gc", outputs=[make_ref(label, 1)])
    path = write_quantum(job.workdir / f"{label}.json", quantum)
    return main(["run-quantum", str(path), "--task", "cli_tasks:record_gc", "--config", str(job.config)])


def test_the_task_runs_with_the_collector_on_and_main_leaves_it_as_it_was(
    cli_job: CliJob, gc_seen: list[tuple[bool, bool]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert gc.isenabled() and gc.get_freeze_count() == 0
    assert _run(cli_job, "first") == 0, capsys.readouterr().err
    # On during the task; what start-up made is frozen, so its first collections do not traverse it.
    assert gc_seen == [(True, True)]
    assert gc.isenabled() and gc.get_freeze_count() == 0  # unfrozen: garbage among it can be collected
    assert main(["run-quantum", "-h"]) == 0 and main(["inspect", str(cli_job.workdir / "nothing")]) == 2
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_a_collector_turned_off_by_the_caller_stays_off(
    cli_job: CliJob, gc_seen: list[tuple[bool, bool]], capsys: pytest.CaptureFixture[str]
) -> None:
    gc.disable()
    assert _run(cli_job, "second") == 0, capsys.readouterr().err
    assert gc_seen == [(False, False)]
    assert not gc.isenabled() and gc.get_freeze_count() == 0
