"""Run the examples of the user documentation: every ``>>>`` block of every ``docs/*.rst`` page.

Each page is one doctest run with its own globals, in page order, so a page
reads as a script: pages that need S3 start a moto server at the top and stop
it at the bottom. The AWS environment of the developer is hidden so that the
examples prove they need none.
"""

from __future__ import annotations

import doctest
import importlib.util
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from s3qbb.s3.client import clear_client_cache

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGES = sorted(DOCS.glob("*.rst"))
OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
# Pages that explain public features: each must have examples that run.
EXAMPLE_PAGES = {
    "batch",
    "butler",
    "cache",
    "concepts",
    "migrating",
    "pipeline",
    "running",
    "configuration",
    "datastores",
    "errors",
    "formatters",
    "registry",
    "model",
    "provenance",
    "testing",
}


def _load_example(name: str) -> ModuleType:
    """Import ``docs/examples/<name>.py``, which the pages show with ``literalinclude``."""
    spec = importlib.util.spec_from_file_location(f"s3qbb_docs_{name}", DOCS / "examples" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# The new datastore backend of docs/datastores.rst must pass the conformance suite, as the page says.
TestLocalDirectoryConformance = _load_example("local_datastore").TestLocalDirectoryConformance

# The example tests of docs/testing.rst, with the fixtures of s3qbb.testing.fixtures.
_s3_tests = _load_example("s3_tests")
test_put_is_one_create_only_request = _s3_tests.test_put_is_one_create_only_request
test_put_survives_throttling = _s3_tests.test_put_survives_throttling


@pytest.fixture
def no_aws_environment() -> Iterator[None]:
    """Hide every ``AWS_*`` and ``S3QBB_*`` variable and the AWS config files; no dummy credentials.

    The whole environment is restored afterwards, including variables a page sets itself.
    """
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.startswith(("AWS_", "S3QBB_")):
            del os.environ[name]
    os.environ.update(
        {
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    clear_client_cache()
    try:
        yield
    finally:
        clear_client_cache()
        os.environ.clear()
        os.environ.update(saved)


def test_quick_start_is_a_short_plain_script() -> None:
    """The quick start is copy-and-paste material: a plain code block (run by test_docs_code_blocks.py)."""
    text = (DOCS / "quickstart.rst").read_text()
    assert ">>> " not in text
    blocks = re.findall(r"^\.\. code-block:: python\n\n((?:   .*\n|\n)+)", text, flags=re.M)
    assert len(blocks) == 1
    lines = [line for line in blocks[0].splitlines() if line.strip()]
    assert len(lines) <= 20 and "MotoServer" in blocks[0] and "QuantumBackedButler" in blocks[0]
    assert text.index("pip install 's3qbb[testing]'") < text.index(".. code-block:: python")


def test_toctree_pages_exist() -> None:
    """Every page named in the index's toctrees exists, and every example page is in them."""
    lines = (DOCS / "index.rst").read_text().splitlines()
    entries = {line.strip() for line in lines if line.startswith("   ") and not line.strip().startswith(":")}
    entries.discard("")
    missing = [e for e in entries if not (DOCS / f"{e}.rst").exists() and not (DOCS / f"{e}.md").exists()]
    assert not missing
    assert not EXAMPLE_PAGES - entries


@pytest.mark.parametrize("page", PAGES, ids=[page.stem for page in PAGES])
def test_page_examples(
    page: Path, no_aws_environment: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # pages that write files write them here
    result = doctest.testfile(
        str(page), module_relative=False, optionflags=OPTIONS, raise_on_error=False, verbose=False
    )
    assert result.failed == 0, (
        f"{result.failed} of {result.attempted} examples of {page.name} failed (see above)"
    )
    if page.stem in EXAMPLE_PAGES:
        assert result.attempted > 0, f"{page.name} should show its features with examples"
