"""Sphinx configuration for the s3qbb documentation."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
# Build from the source tree even when s3qbb is not installed; local extensions live in _ext.
sys.path.insert(0, str(_HERE.parent))
sys.path.insert(0, str(_HERE / "_ext"))

from s3qbb import __version__  # noqa: E402  (cheap: the package imports its API lazily)

project = "s3qbb"
author = "s3qbb developers"
copyright = "s3qbb developers"
release = __version__
version = ".".join(__version__.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "myst_parser",  # Markdown pages (reliability.md)
    "sphinx_copybutton",  # a copy button on code blocks, without prompts and output
    "sphinx_click",  # the command-line reference (cli.rst), from the click commands
    "s3qbb_config_table",  # the config-fields directive of configuration.rst
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}

# Docstrings follow numpydoc; `name` in them refers to a Python object.
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
default_role = "py:obj"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {
    "show-inheritance": True,
    # pydantic's own class attributes, documented by pydantic.
    "exclude-members": "model_config, model_fields, model_computed_fields",
}

# No intersphinx: builds must work without network access. Without it, references to
# Python, boto3 or pydantic objects cannot resolve; nitpicky mode would report each one.
nitpicky = False

exclude_patterns = ["_build", "_ext", "examples", "perf"]  # perf/*.md are included by pages
root_doc = "index"
# Smart quotes and ellipses, but no dashes: "--json" in the command-line reference (cli.rst, whose
# text comes from the commands' help) must not become an en dash.
smartquotes_action = "qe"

# Optional libraries some documented modules import, mocked only when missing, so that
# `pip install 's3qbb[docs]'` alone builds the docs (and a full install documents the real ones).
_OPTIONAL = ["pytest", "moto", "numpy", "pyarrow", "psycopg", "dask", "distributed", "matplotlib", "obstore"]
autodoc_mock_imports = [name for name in _OPTIONAL if importlib.util.find_spec(name) is None]

html_theme = "furo"
html_title = f"s3qbb {release}"
html_static_path = ["_static"]
html_css_files = ["s3qbb.css"]

# Copy only what to type: no ">>> " / "... " / "$ " prompts, no output lines of sessions.
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True
copybutton_only_copy_prompt_lines = True
