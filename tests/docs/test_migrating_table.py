"""docs/migrating.rst's method table cannot drift from the seed API nor from s3qbb's QuantumBackedButler.

The seed's methods and attributes (``golden/seed_quantum_backed_butler_api.txt``) must each have a row;
each row's daf_butler signature must name the seed's parameters in the seed's order; s3qbb's class
must accept them in that order, and list any parameter it adds in the row's s3qbb column; and every
public name of s3qbb's class must appear in the table.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from s3qbb import QuantumBackedButler

ROOT = Path(__file__).resolve().parents[2]
SEED = Path(__file__).parent / "golden" / "seed_quantum_backed_butler_api.txt"
TABLE_TITLE = "The QuantumBackedButler, method by method"


def seed_api() -> dict[str, list[str]]:
    """Return seed name -> parameter names ('/', '*' kept, defaults stripped); attributes have none."""
    api: dict[str, list[str]] = {}
    for line in SEED.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        kind, _, rest = line.partition(" ")
        name, _, params = rest.partition("(")
        api[name] = [p.strip().rstrip("=") for p in params.rstrip(")").split(",") if p.strip()]
        if kind == "attribute":
            api[name] = []
    return api


def method_table() -> list[list[str]]:
    """Return the rows (cells as one-line text) of the method table of docs/migrating.rst."""
    text = (ROOT / "docs" / "migrating.rst").read_text()
    section = text.split(TABLE_TITLE, 1)[1].split(".. list-table::", 1)[1]
    rows: list[list[str]] = []
    for line in section.splitlines()[1:]:
        if line and not line.startswith("   "):
            break  # the end of the table's indented block
        if line.startswith("   * - "):
            rows.append([line[7:].strip()])
        elif line.startswith("     - ") or line == "     -":
            rows[-1].append(line[7:].strip())
        elif line.strip() and rows:
            rows[-1][-1] += " " + line.strip()
    return rows[1:]  # the header row


def literal_calls(cell: str) -> list[tuple[str, list[str] | None]]:
    """Return the ``name(params)`` / ``name`` literals of a cell, params as names ('...' dropped)."""
    calls: list[tuple[str, list[str] | None]] = []
    for literal in re.findall(r"``([^`]+)``", cell):
        match = re.fullmatch(r"(?:QuantumProvenanceData\.)?(\w+)(?:\((.*)\))?", literal.strip())
        if match is None:
            continue
        params = None
        if match.group(2) is not None:
            params = [re.split(r"[=:]", p)[0].strip() for p in match.group(2).split(",")]
            params = [p for p in params if p and p != "..."]
        calls.append((match.group(1), params))
    return calls


def test_table_parses() -> None:
    rows = method_table()
    assert len(rows) >= 15 and all(len(row) == 3 for row in rows), rows


@pytest.mark.parametrize("name", sorted(seed_api()))
def test_every_seed_name_has_a_row_with_the_seed_parameters(name: str) -> None:
    seed = seed_api()[name]
    rows = [row for row in method_table() if any(n == name for n, _ in literal_calls(row[0]))]
    assert rows, f"docs/migrating.rst's method table has no row for the seed's {name}"
    for row in rows:
        for listed_name, params in literal_calls(row[0]):
            if listed_name != name or params is None:
                continue
            wanted = [p for p in seed if p in params or p in ("/", "*")]
            assert [p for p in params if p not in ("/", "*")] == [p for p in wanted if p not in ("/", "*")], (
                f"row {row[0]!r}: parameters {params} are not the seed's {seed} in order"
            )


@pytest.mark.parametrize("name", sorted(n for n, p in seed_api().items() if n != "QuantumBackedButler"))
def test_s3qbb_accepts_the_seed_parameters(name: str) -> None:
    assert hasattr(QuantumBackedButler, name), f"s3qbb's QuantumBackedButler lacks the seed's {name}"
    attribute = inspect.getattr_static(QuantumBackedButler, name)
    if not callable(attribute) and not isinstance(attribute, classmethod | staticmethod):
        return
    seed = [p for p in seed_api()[name] if p not in ("/", "*")]
    ours = list(inspect.signature(getattr(QuantumBackedButler, name)).parameters.values())
    ours = [p for p in ours if p.name != "self"]
    assert [p.name for p in ours[: len(seed)]] == seed
    extra = [p for p in ours[len(seed) :] if p.kind is not inspect.Parameter.VAR_KEYWORD]
    assert all(p.default is not inspect.Parameter.empty for p in extra), (
        f"{name}: added parameters need defaults"
    )
    row = next(row for row in method_table() if any(n == name for n, _ in literal_calls(row[0])))
    for parameter in extra:
        assert parameter.name in " ".join(row[1:]), f"{name}: {parameter.name!r} is not listed in its row"


def test_constructor_matches_the_seed() -> None:
    seed = [p for p in seed_api()["QuantumBackedButler"] if p not in ("/", "*")]
    ours = [p for p in inspect.signature(QuantumBackedButler).parameters if p not in ("self",)]
    assert ours[: len(seed)] == seed


def test_every_public_name_of_s3qbb_is_in_the_table() -> None:
    mentioned = {name for row in method_table() for cell in row for name, _ in literal_calls(cell)}
    public = {name for name in dir(QuantumBackedButler) if not name.startswith("_")}
    assert public - mentioned == set(), "document these in docs/migrating.rst's method table"
