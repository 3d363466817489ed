"""``python -m s3qbb``: the ``s3qbb`` command."""

from __future__ import annotations

__all__: list[str] = []

import sys

from .cli.main import main

if __name__ == "__main__":
    sys.exit(main())
