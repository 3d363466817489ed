"""Sphinx configuration for the s3qbb documentation."""

from __future__ import annotations

import sys
from pathlib import Path

# Build from the source tree even when s3qbb is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

project = "s3qbb"
author = "s3qbb developers"
copyright = "s3qbb developers"
release = "0.1.0"
version = "0.1"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]

# Docstrings follow numpydoc.
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"show-inheritance": True}

# No intersphinx: builds must work without network access.
nitpicky = False

exclude_patterns = ["_build"]
root_doc = "index"

html_theme = "alabaster"
html_title = "s3qbb"
