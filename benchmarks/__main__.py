"""``python -m benchmarks``: run the S3Datastore benchmarks (see `benchmarks.run`)."""

from __future__ import annotations

from .run import main

__all__: list[str] = []

raise SystemExit(main())
