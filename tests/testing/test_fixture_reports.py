"""A failed test's report shows what the session servers logged while it ran (s3qbb.testing.fixtures)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

_CONFTEST = """
from pathlib import Path

import pytest

from s3qbb.testing import fixtures


class FakeServer:
    name = "fake"

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.running = True


@pytest.fixture(scope="session", autouse=True)
def fake_server(tmp_path_factory: pytest.TempPathFactory):
    log = tmp_path_factory.mktemp("fake") / "fake.log"
    log.write_text("written before any test\\n")
    server = FakeServer(log)
    fixtures._LOGGING_SERVERS.append(server)
    yield server
    fixtures._LOGGING_SERVERS.remove(server)


def log(server: FakeServer, text: str) -> None:
    with server.log_path.open("a") as out:
        out.write(text + "\\n")
"""

_TESTS = """
from conftest import log


def test_a_passing_test_adds_nothing(fake_server):
    log(fake_server, "logged by the passing test")


def test_a_failing_test_shows_its_lines(fake_server):
    log(fake_server, "volume server went away")
    assert False


def test_a_dead_server_is_named(fake_server):
    fake_server.running = False
    assert False


def test_a_long_log_is_cut_to_its_end(fake_server):
    fake_server.running = True
    for i in range(200):
        log(fake_server, f"line {i}")
    assert False
"""


def _run(tmp_path: Path) -> str:
    (tmp_path / "conftest.py").write_text(textwrap.dedent(_CONFTEST))
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(_TESTS))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "s3qbb", "-q", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    return result.stdout


def _section(output: str, test: str) -> str:
    """The failure block of ``test`` in pytest's output."""
    start = output.index(f"_ {test} _")
    end = output.find("\n_____", start + 1)
    return output[start : end if end != -1 else len(output)]


def test_server_log_lines_appear_only_for_failures_and_only_their_own(tmp_path: Path) -> None:
    output = _run(tmp_path)
    assert "3 failed, 1 passed" in output
    failing = _section(output, "test_a_failing_test_shows_its_lines")
    assert "fake server log during call (running)" in failing
    assert "volume server went away" in failing
    assert "written before any test" not in failing
    assert "logged by the passing test" not in output
    dead = _section(output, "test_a_dead_server_is_named")
    assert "fake server log during call (NOT RUNNING)" in dead
    long = _section(output, "test_a_long_log_is_cut_to_its_end")
    assert "[120 earlier lines in " in long
    assert "line 199" in long and "line 120" in long and "line 119\n" not in long
