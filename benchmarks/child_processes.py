"""What the benchmarks' job processes start from: an installed package's bytecode, a clean environment.

A job measured in a fresh process must pay what a user's job pays and no more.
An installed package has its ``.pyc`` files (pip compiles them at install), so
the benchmarks compile s3qbb's and their own modules before the first timed
process, and do not pass ``PYTHONDONTWRITEBYTECODE`` on. With that variable
set and no ``.pyc`` files, every s3qbb process compiled about 80 modules from
source: some 100 ms of a ``run-quantum`` job's start here. (``make report``
compiles first too, its ``pyc`` step; this keeps ``python -m benchmarks...``
run directly honest.)
"""

from __future__ import annotations

import compileall
from typing import TYPE_CHECKING

from .servers import REPO_ROOT

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["compile_bytecode", "job_environment"]


def job_environment(parent: Mapping[str, str]) -> dict[str, str]:
    """Return the part of ``parent`` a measured job inherits: no AWS or s3qbb settings, bytecode allowed."""
    return {
        name: value
        for name, value in parent.items()
        if not name.startswith(("AWS_", "S3QBB_")) and name != "PYTHONDONTWRITEBYTECODE"
    }


def compile_bytecode() -> None:
    """Write the ``.pyc`` files of s3qbb and of the benchmarks, as installing a package does."""
    for package in ("s3qbb", "benchmarks"):
        compileall.compile_dir(REPO_ROOT / package, quiet=1)
