"""The package's shape: layers that only import downward, and no hidden imports.

The layers contract lives in ``pyproject.toml`` (``[tool.importlinter]``) and is
checked with import-linter. An import inside a function hides a dependency from
that check, so one is allowed only for a heavy or optional library, with a comment
on the same line saying why. The command line (``monitoring/cli/``) is the exception:
each command imports what it uses when it runs, so that ``--help`` and light commands
start fast (tests/test_cli_startup.py); import-linter still sees those imports.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from monitoring.config import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "monitoring"


def function_level_imports(path: Path) -> list[tuple[int, str]]:
    """(line, source) of every import statement inside a function of ``path``."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    found.append((inner.lineno, lines[inner.lineno - 1].strip()))
    return sorted(set(found))


def test_layers_contract_is_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint), "--no-cache"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "1 kept, 0 broken" in done.stdout


def test_imports_inside_functions_are_only_lazy_libraries_with_a_reason() -> None:
    offenders = []
    lazy_by_design = PACKAGE / "cli"
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.is_relative_to(lazy_by_design):
            continue
        for line, text in function_level_imports(path):
            own = text.startswith(("from monitoring", "import monitoring"))
            if own or "#" not in text:
                offenders.append(f"{path.relative_to(PROJECT_ROOT)}:{line}: {text}")
    assert offenders == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import os\n", []),
        ("def f():\n    import os  # why\n", [(2, "import os  # why")]),
        ("def f():\n    def g():\n        from a import b\n", [(3, "from a import b")]),
    ],
)
def test_function_level_imports_are_found(tmp_path: Path, source: str, expected: list) -> None:
    module = tmp_path / "m.py"
    module.write_text(source)
    assert function_level_imports(module) == expected


def test_the_public_api_resolves() -> None:
    import monitoring

    for name in monitoring.__all__:
        assert getattr(monitoring, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = monitoring.nope
