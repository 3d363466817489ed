"""The ``s3qbb`` command line on click: global options anywhere, usage errors, lazy sub-commands."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

import s3qbb
from s3qbb.batch import logs
from s3qbb.batch.exitcodes import EXIT_CODES
from s3qbb.cli import inspect_cmd, options
from s3qbb.cli.main import COMMANDS, cli, main

REPO_ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("rich", "sqlalchemy", "boto3", "botocore", "pydantic")
"""Top-level packages ``s3qbb run-quantum --help`` must not import."""


_LIST_MODULES = """
import atexit, runpy, sys
atexit.register(lambda: print("MODULES", *sorted(sys.modules), file=sys.stderr))
sys.argv[0] = "s3qbb"
{run}
"""


def _imported_modules(run: str, *args: str) -> set[str]:
    """Run ``run`` in a fresh interpreter (``runpy.run_module("s3qbb")`` is ``python -m s3qbb``) with ``args``
    as ``sys.argv[1:]``; return every module imported by the end (``-X importtime`` misses those
    imported through `importlib.import_module`, as the lazy sub-commands are).
    """
    path = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{path}" if path else str(REPO_ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", _LIST_MODULES.format(run=run), *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = next(line for line in proc.stderr.splitlines() if line.startswith("MODULES "))
    return set(line.split()[1:])


def test_run_quantum_help_imports_neither_the_other_commands_nor_heavy_libraries() -> None:
    modules = _imported_modules('runpy.run_module("s3qbb", run_name="__main__")', "run-quantum", "--help")
    assert "s3qbb.cli.run_quantum" in modules and "click" in modules
    assert not {m for m in modules if m.split(".")[0] in HEAVY}
    others = {path.partition(":")[0] for name, path in COMMANDS.items() if name != "run-quantum"}
    assert not others & modules


def test_importing_the_group_imports_no_sub_command() -> None:
    modules = _imported_modules("import s3qbb.cli")
    assert "s3qbb.cli.main" in modules
    assert not {m for m in modules if m.split(".")[0] in HEAVY}
    assert not {path.partition(":")[0] for path in COMMANDS.values()} & modules


def test_every_lazy_command_resolves() -> None:
    import click

    ctx = click.Context(cli)
    assert cli.list_commands(ctx) == list(COMMANDS)
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert isinstance(command, click.Command) and command.name == name


@pytest.fixture
def logging_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Record what each command passes to `s3qbb.batch.logs.configure_logging`."""
    calls: list[tuple[Any, ...]] = []

    def configure(verbosity: int = 0, log_format: str = "text", log_file: Any = None, **_: Any) -> Any:
        calls.append((verbosity, log_format, log_file))
        return lambda: None

    monkeypatch.setattr(logs, "configure_logging", configure)
    return calls


def test_global_options_before_and_after_the_sub_command_add_up(
    logging_calls: list[tuple[Any, ...]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "nope.sqlite3")
    argv = [
        "-v",
        "--log-format",
        "text",
        "inspect",
        missing,
        "-vv",
        "--log-format",
        "json",
        "--log-file",
        "x",
    ]
    assert main(argv) == 2  # the file does not exist
    assert logging_calls == [(3, "json", "x")]
    assert main(["graph", "-v", "show", missing, "--verbose"]) == 2  # also between group and command
    assert main(["inspect", missing]) == 2
    assert logging_calls[1:] == [(2, "text", None), (0, "text", None)]
    assert f"s3qbb inspect: Cannot read {missing}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run-quantum", "q.json", "--task", "t:f"], "Missing option '--config'"),
        (["datasets", "--no-such-flag"], "No such option '--no-such-flag'"),
        (["--log-format", "xml", "datasets"], "Invalid value for '--log-format'"),
        (["graph", "status", "g.qgraph"], "Missing option '--config'"),
        (
            ["submit", "slurm", "--graph", "g", "--image", "i", "--config", "c"],
            "'slurm' is not one of 'kubernetes', 'aws-batch'",
        ),
        (
            ["run-quantum", "--graph", "g", "--index", "1", "--quantum", str(uuid.uuid4()), "--config", "c"],
            "--index and --quantum both select the quantum: give one of them.",
        ),
        (["run-quantum", "--config", "c", "--grace-period", "-1"], "Invalid value for '--grace-period'"),
        (
            ["-v", "--log-file", "/nonexistent-dir/x.log", "inspect", "f"],
            "cannot open --log-file /nonexistent",
        ),
        (["frobnicate"], "No such command 'frobnicate'"),
    ],
)
def test_usage_errors_exit_2_naming_the_option(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Usage: s3qbb" in err and "Traceback" not in err


def test_grace_period_from_the_environment_is_checked_as_the_option(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("S3QBB_GRACE_PERIOD", "soon")
    assert main(["run-quantum", "q.json", "--task", "t:f", "--config", "c"]) == 2
    assert "Invalid value for '--grace-period' (env var: 'S3QBB_GRACE_PERIOD')" in capsys.readouterr().err


def test_version_help_and_exit_codes_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"s3qbb {s3qbb.__version__}\n"
    assert main(["run-quantum", "-h"]) == 0
    out = capsys.readouterr().out
    epilog = out[out.index("Exit status:") :]
    assert [int(m) for m in re.findall(r"^  (\d+) ", epilog, re.MULTILINE)] == [
        int(i.code) for i in EXIT_CODES
    ]
    for flag in ("--graph", "--index", "--quantum", "--stage", "--grace-period", "-v", "--log-file"):
        assert re.search(rf"^  (-v, )?{flag}\b", out, re.MULTILINE), flag


def test_ctrl_c_ends_a_command_quietly_with_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(location: str) -> dict[str, Any]:
        raise KeyboardInterrupt

    monkeypatch.setattr(inspect_cmd, "describe_file", interrupted)
    assert main(["inspect", "anything"]) == 130
    assert capsys.readouterr().err == ""


def test_log_formats_are_those_of_the_logging_module() -> None:
    assert options.LOG_FORMATS == logs.LOG_FORMATS


# --- shell completion -----------------------------------------------------------------------------------


def _bash_complete(words: str) -> list[str]:
    """What bash offers after ``words`` (the last one being completed), set up as docs/cli.rst says."""
    script = (
        'eval "$(_S3QBB_COMPLETE=bash_source s3qbb)"\n'
        f"COMP_WORDS=({words})\n"
        "COMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n"
        "_s3qbb_completion s3qbb\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("_S3QBB_COMPLETE", None)
    done = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_bash_completes_sub_commands_options_and_choices() -> None:
    """The recipe of docs/cli.rst works in a real bash: commands, a sub-command's options, choices."""
    assert _bash_complete("s3qbb run-q") == ["run-quantum"]
    assert set(_bash_complete("s3qbb ''")) >= set(COMMANDS)
    assert "--task" in _bash_complete("s3qbb run-quantum --ta")
    assert _bash_complete("s3qbb --log-format ''") == ["text", "json"]
    assert "status" in _bash_complete("s3qbb graph ''")


def test_completion_is_answered_without_running_a_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the completion variable set, `main` prints the shell script and exits 0, whatever follows."""
    monkeypatch.setenv("_S3QBB_COMPLETE", "zsh_source")
    done = subprocess.run(
        [sys.executable, "-m", "s3qbb", "run-quantum", "--bogus"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "compdef _s3qbb_completion s3qbb" in done.stdout
