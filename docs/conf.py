"""Sphinx configuration for the s3qbb documentation."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
# Build from the source tree even when s3qbb is not installed; local extensions live in _ext.
sys.path.insert(0, str(_HERE.parent))
sys.path.insert(0, str(_HERE / "_ext"))

project = "s3qbb"
author = "s3qbb developers"
copyright = "s3qbb developers"
release = "0.1.0"
version = "0.1"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "myst_parser",  # Markdown pages (reliability.md)
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

html_theme = "alabaster"
html_title = "s3qbb"
