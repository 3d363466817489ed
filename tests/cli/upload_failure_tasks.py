"""Tasks of the upload-failure job tests (``upload_failure_tasks:NAME``)."""

from __future__ import annotations

import os
import tempfile
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from s3qbb.butler import QuantumBackedButler
    from s3qbb.core.quantum import Quantum


def fail_with_no_temporary_folder(butler: QuantumBackedButler, quantum: Quantum) -> None:
    """Write the first output, point temporary files at a missing folder, then raise."""
    ref = quantum.output_refs()[0]
    butler.put({"detector": dict(ref.dataId)["detector"]}, ref)
    if "UPLOAD_TEST_TMPDIR" in os.environ:
        tempfile.tempdir = os.environ["UPLOAD_TEST_TMPDIR"]  # the records copy at the end cannot be made
    raise ValueError("the task failed on purpose")
