"""The job start-up benchmark's import profile: parsing ``python -X importtime`` and naming the shares."""

from __future__ import annotations

import subprocess
import sys

import pytest

from benchmarks.job_start import describe_imports, parse_importtime
from benchmarks.job_task import FIRST_PUT_LINE

# As CPython prints it: a module after the modules it imported, one level (two spaces) deeper.
_PROFILE = """import time: self [us] | cumulative | imported package
import time:       100 |        100 | encodings
import time:        40 |         40 |       email.utils
import time:        60 |        100 |     importlib.metadata
import time:       300 |        400 |   pydantic.plugin._loader
import time:        20 |         20 |   typing
import time:      1000 |       1420 | s3qbb.config
import time:       200 |        200 |     http.client
import time:        50 |        250 |   s3qbb.s3.errors
import time:        10 |         10 |   yaml.reader
import time:         5 |        265 | s3qbb.s3
s3qbb-bench: first put done
import time:      9000 |       9000 | s3qbb.provenance.model
"""


def test_each_module_counts_once_for_its_library_or_its_importers() -> None:
    groups = parse_importtime(_PROFILE, until=FIRST_PUT_LINE)
    us = {group: round(seconds * 1e6) for group, seconds in groups.items()}
    # email.utils and importlib.metadata were imported by pydantic's plugin loader: pydantic's.
    assert us["pydantic"] == 300 + 60 + 40
    # s3qbb's own modules, and the standard library modules s3qbb imported first (typing, http.client).
    assert us["s3qbb"] == 1000 + 20 + 50 + 200 + 5
    # A library's module counts for it wherever it was imported from.
    assert us["PyYAML"] == 10
    # What nothing of a group imported (the interpreter's start) is "other".
    assert us["other"] == 100
    assert us["boto3"] == us["click"] == us["obstore"] == 0
    assert us["total"] == sum(v for k, v in us.items() if k != "total")


def test_the_profile_stops_at_the_first_put_only_when_asked() -> None:
    assert round(parse_importtime(_PROFILE)["s3qbb"] * 1e6) == 1275 + 9000
    assert parse_importtime("no profile here")["total"] == 0.0


def test_a_real_interpreter_profile_is_parsed() -> None:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import yaml, click"],
        capture_output=True,
        text=True,
        check=True,
    )
    groups = parse_importtime(done.stderr)
    assert groups["PyYAML"] > 0 and groups["click"] > 0 and groups["other"] > 0
    assert groups["pydantic"] == 0.0
    assert groups["total"] == pytest.approx(sum(v for k, v in groups.items() if k != "total"))


def test_the_shares_are_named_largest_first() -> None:
    profile = {"pydantic": 0.3, "s3qbb": 0.6, "click": 0.1, "total": 1.0, "start_to_put_s": 2.0}
    assert describe_imports(profile) == (
        "imports to first put (50% of its start to first put under the profiler): "
        "s3qbb 60%, pydantic 30%, click 10%"
    )
    assert describe_imports({"total": 0.0}) == "no import profile"
