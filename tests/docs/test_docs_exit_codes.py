"""The exit codes and retry policies of docs/batch.rst agree with s3qbb.batch.exitcodes."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import yaml

from s3qbb.batch.exitcodes import EXIT_CODES

PAGE = Path(__file__).resolve().parents[2] / "docs" / "batch.rst"
RETRY = {int(row.code) for row in EXIT_CODES if row.retry}
NO_RETRY = {int(row.code) for row in EXIT_CODES if not row.retry and row.code != 0}


def _blocks(language: str) -> list[str]:
    text = PAGE.read_text()
    pattern = re.compile(rf"^\.\. code-block:: {language}\n\n((?:(?:   .*)?\n)+)", re.MULTILINE)
    return [textwrap.dedent(m.group(1)) for m in pattern.finditer(text)]


def _find(document: Any, key: str) -> list[Any]:
    found: list[Any] = []
    if isinstance(document, dict):
        for k, v in document.items():
            found.extend([v] if k == key else _find(v, key))
    elif isinstance(document, list):
        for item in document:
            found.extend(_find(item, key))
    return found


def test_pod_failure_policies_retry_exactly_the_retryable_codes() -> None:
    policies = [
        p for b in _blocks("yaml") for d in yaml.safe_load_all(b) for p in _find(d, "podFailurePolicy")
    ]
    assert policies
    for policy in policies:
        codes: dict[str, set[int]] = {}
        for rule in policy["rules"]:
            if "onExitCodes" in rule:
                assert rule["onExitCodes"]["operator"] == "In"
                codes.setdefault(rule["action"], set()).update(rule["onExitCodes"]["values"])
        assert codes["Count"] == RETRY
        assert codes["FailIndex"] | codes["FailJob"] == NO_RETRY


def test_evaluate_on_exit_retries_only_retryable_codes() -> None:
    strategies = [s for b in _blocks("json") for s in _find(json.loads(b), "evaluateOnExit")]
    assert len(strategies) >= 2
    for rules in strategies:
        retried = {int(r["onExitCode"]) for r in rules if r["action"] == "RETRY" and "onExitCode" in r}
        assert {75, 143} <= retried <= RETRY  # AWS Batch sends SIGTERM, never SIGINT
        assert rules[-1] == {"onReason": "*", "action": "EXIT"}  # 1, 2 and anything else: no retry


def test_exit_code_table_lists_every_code() -> None:
    text = PAGE.read_text()
    table = text[text.index("Exit codes\n----------") :]
    table = table[: table.index("\n\n", table.index("====  ====="))]
    rows = {int(m.group(1)) for m in re.finditer(r"^(\d+)\s{2,}", table, re.MULTILINE)}
    assert rows == {int(row.code) for row in EXIT_CODES}
