"""Tables and progress of the command line: fitted by rich on a terminal, plain and whole in a pipe."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from cli_helpers import RAW_RUN, RUN, CliJob, Pipeline, run_pipeline
from rich.console import Console

from s3qbb.cli import tables
from s3qbb.cli.main import main
from s3qbb.cli.progress import IngestProgressDisplay
from s3qbb.registry import IngestProgress, Registry, TextProgressBar
from s3qbb.testing.servers import MotoServer

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture(scope="module")
def registry_url(moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[Pipeline, str]:
    """Both runs of `run_pipeline` ingested into a SQLite registry (5 datasets)."""
    endpoint = moto_server.endpoint("cli-tables")
    pipeline = run_pipeline(endpoint)
    url = f"sqlite:///{tmp_path_factory.mktemp('registry') / 'reg.sqlite3'}"
    with Registry.from_url(url) as registry:
        for run in (RAW_RUN, RUN):
            assert registry.ingest_run(pipeline.uri(run), config=endpoint.config).quanta_added > 0
    return pipeline, url


def _ids(pipeline: Pipeline) -> set[str]:
    refs = [*pipeline.raws.values(), *pipeline.calexps.values(), pipeline.summary]
    return {str(r.id) for r in refs}


def test_datasets_in_a_pipe_are_plain_and_whole(
    registry_url: tuple[Pipeline, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline, url = registry_url
    monkeypatch.setenv("COLUMNS", "40")  # ignored: not a terminal
    assert main(["datasets", "--registry", url]) == 0
    out = capsys.readouterr().out
    assert not ANSI.search(out)
    lines = out.splitlines()
    assert lines[0].split() == ["dataset", "id", "dataset", "type", "run", "data", "ID", "path"]
    assert lines[-1] == "(5 dataset(s))"
    assert {line.split()[0] for line in lines[1:-1]} == _ids(pipeline)  # every ID whole, one row a line
    assert all(line.split()[-1].endswith(".json") for line in lines[1:-1])  # paths not cut
    assert max(map(len, lines)) > 40

    assert main(["datasets", "--registry", url, "--limit", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + 2 + 2
    assert lines[-2:] == ["... 3 more rows (--limit 0 shows all)", "(5 dataset(s))"]


def test_datasets_on_a_terminal_fit_its_width(
    registry_url: tuple[Pipeline, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline, url = registry_url
    monkeypatch.setattr(tables, "is_terminal", lambda stream: True)
    monkeypatch.setenv("COLUMNS", "90")
    assert main(["datasets", "--registry", url]) == 0
    out = ANSI.sub("", capsys.readouterr().out)
    lines = out.splitlines()
    assert max(map(len, lines)) <= 90
    ids = {m for line in lines for m in re.findall(r"\b[0-9a-f]{8}-[0-9a-f-]{27}\b", line)}
    assert ids == _ids(pipeline)  # IDs never wrap
    assert len(lines) > 7  # the path column wrapped instead


def test_provenance_on_a_terminal_is_a_fitted_tree(
    registry_url: tuple[Pipeline, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline, url = registry_url
    assert main(["provenance", str(pipeline.summary.id), "--registry", url, "--depth", "1"]) == 0
    plain = capsys.readouterr().out
    assert max(map(len, plain.splitlines())) > 70  # in a pipe: one long line per node, as before

    monkeypatch.setattr(tables, "is_terminal", lambda stream: True)
    monkeypatch.setenv("COLUMNS", "70")
    assert main(["provenance", str(pipeline.summary.id), "--registry", url, "--depth", "1"]) == 0
    out = ANSI.sub("", capsys.readouterr().out)
    assert max(map(len, out.splitlines())) <= 70
    flat = "".join(out.split())  # wrapped lines joined: every ID is there
    for dataset_id in [pipeline.summary.id, *(r.id for r in pipeline.calexps.values())]:
        assert str(dataset_id) in flat
    assert f"<-quantum{pipeline.summarize.id}(summarize,succeeded)" in flat


def test_terminal_limit_defaults_to_50_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tables, "is_terminal", lambda stream: True)
    out = io.StringIO()
    console = Console(file=out, width=60, force_terminal=True, color_system=None)
    rows = [[str(i), f"value {i}"] for i in range(60)]
    tables.print_table(
        [tables.Column("n", right=True), tables.Column("value")], rows, limit=None, console=console
    )
    lines = out.getvalue().splitlines()
    assert tables.effective_limit(None, out) == tables.TERMINAL_LIMIT == 50
    assert len(lines) == 1 + 50 + 1
    assert lines[-1] == "... 10 more rows (--limit 0 shows all)"
    assert tables.effective_limit(0, out) is None


def test_limit_must_not_be_negative(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["datasets", "--limit", "-1"]) == 2
    assert "--limit must be 0 (all rows) or more, not -1" in capsys.readouterr().err


def test_datasets_piped_into_head_ends_quietly(registry_url: tuple[Pipeline, str], cli_job: CliJob) -> None:
    import subprocess
    import sys

    _, url = registry_url
    script = f"{sys.executable} -m s3qbb datasets --registry '{url}' | head -1"
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c", script], env=cli_job.env, capture_output=True, text=True, check=False
    )
    assert proc.stdout.split() == ["dataset", "id", "dataset", "type", "run", "data", "ID", "path"]
    assert proc.stderr == ""
    assert proc.returncode in (0, 141)


# ------------------------------------------------------------------------ progress


def test_progress_is_drawn_on_a_terminal_only() -> None:
    state = IngestProgress(total=5, done=5, quanta_added=4, failures=1, bytes_downloaded=1258291)
    terminal = io.StringIO()
    with IngestProgressDisplay(console=Console(file=terminal, force_terminal=True, width=120)) as display:
        assert display.enabled
        display(state)
    drawn = ANSI.sub("", terminal.getvalue())
    assert "5/5 quanta, 4 added, 1 failed, 1.2 MiB" in drawn
    assert "iBiB" not in drawn

    redirected = io.StringIO()
    with IngestProgressDisplay(redirected) as display:
        assert not display.enabled
        display(state)
    assert redirected.getvalue() == ""

    with IngestProgressDisplay(console=Console(file=terminal, force_terminal=True), show=False) as display:
        assert not display.enabled


def test_text_progress_bar_blanks_a_longer_previous_line() -> None:
    out = io.StringIO()
    bar = TextProgressBar(out, width=2, min_interval=0.0)
    bar(IngestProgress(2, 1, 1, 0, 1023 * 1024 + 1000))  # "1023.98 KiB"... "1024.0 KiB"
    bar(IngestProgress(2, 2, 2, 0, 1258291))  # "1.2 MiB": shorter
    first, second = out.getvalue().split("\r")[1:]
    assert second.rstrip() == "[##] 2/2 quanta, 2 added, 0 failed, 1.2 MiB"
    assert len(second) == len(first)  # what the screen shows: no "1.2 MiBiB"


def test_ingest_into_a_log_file_draws_no_progress(cli_job: CliJob, tmp_path: Path) -> None:
    pipeline = run_pipeline(cli_job.endpoint)
    proc = cli_job.run("ingest", pipeline.uri(RUN), "--registry", f"sqlite:///{tmp_path / 'r.sqlite3'}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # stderr is a pipe here: no bar, no escape codes
