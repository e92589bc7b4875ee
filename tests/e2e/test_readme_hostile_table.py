"""README's table "Hostile inputs and faults": numbered rows, each naming a test that exists.

The named tests are collected in one ``pytest --collect-only`` run of the files the
table names; a row whose test was renamed, lost its parameter or never existed fails.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from monitoring.config import PROJECT_ROOT

pytestmark = pytest.mark.e2e  # collects the named test files in a pytest process of its own

HEADING = "## Hostile inputs and faults"
COLUMNS = ["#", "input or situation", "expected answer", "test"]
MIN_ROWS = 60
# `file::function[param]`, the backticks optional
NODE = re.compile(r"^(`?)(tests/[\w/]+\.py)::\w+(\[[^`]+\])?\1$")


def _table() -> list[list[str]]:
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme.split(HEADING + "\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    cells = [[cell.strip() for cell in line.strip().strip("|").split(" | ")] for line in lines]
    assert cells[0] == COLUMNS
    assert set(cells[1][0]) <= {"-", "|"}  # the separator row
    return cells[2:]


def _collected(files: set[str]) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
        + sorted(files),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return {line for line in result.stdout.splitlines() if "::" in line}


def test_the_hostile_inputs_table_names_existing_tests() -> None:
    rows = _table()
    assert len(rows) >= MIN_ROWS
    assert [row[0] for row in rows] == [str(i) for i in range(1, len(rows) + 1)]
    nodes = []
    for row in rows:
        assert len(row) == 4 and all(row), row
        match = NODE.match(row[3])
        assert match, f"row {row[0]}: the test must be `file::function[param]`, got {row[3]}"
        nodes.append(row[3].strip("`"))
    collected = _collected({node.split("::")[0] for node in nodes})
    missing = [node for node in nodes if node not in collected]
    assert not missing, f"tests named in README that do not exist: {missing}"


def test_the_table_is_placed_before_development() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert readme.index(HEADING) < readme.index("\n## Development")
