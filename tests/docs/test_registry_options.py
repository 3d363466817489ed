"""docs/registry.rst describes every option of the ingest, datasets and provenance commands."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from s3qbb.cli.options import global_options
from s3qbb.cli.registry_cmds import datasets, ingest, provenance

PAGE = Path(__file__).resolve().parents[2] / "docs" / "registry.rst"


def _global_option_names() -> set[str]:
    """The options every command has (``-v``, ``--log-format`` ...), documented elsewhere."""
    command = global_options(click.Command("probe"))
    return {opt for param in command.params for opt in param.opts}


@pytest.mark.parametrize("command", [ingest, datasets, provenance], ids=lambda c: c.name)
def test_every_option_is_documented(command: click.Command) -> None:
    text = PAGE.read_text()
    skip = _global_option_names()
    options = [o for p in command.params for o in p.opts if o.startswith("--") and o not in skip]
    assert options, f"s3qbb {command.name} has no options?"
    missing = [o for o in options if f"``{o}" not in text]
    assert not missing, f"docs/registry.rst does not describe s3qbb {command.name} {missing}"
