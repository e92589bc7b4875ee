"""The command line starts without the heavy libraries: ``--help`` and ``versions``
import none of scikit-learn, scipy, matplotlib, pandas or pyarrow (the speed itself
is measured by ``benchmarks/bench_cli.py``, not here)."""

from __future__ import annotations

import subprocess
import sys

from monitoring.config import PROJECT_ROOT, Settings

HEAVY = {"sklearn", "scipy", "matplotlib", "pandas", "pyarrow"}


def imports(*args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``python -X importtime -m monitoring *args``; the modules it imported."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "monitoring", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    modules = {
        line.rpartition("|")[2].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    return done, modules


def test_help_imports_no_heavy_library() -> None:
    done, modules = imports("--help")
    assert done.returncode == 0
    assert "versions" in done.stdout
    assert "monitoring.cli" in modules
    tops = {name.split(".")[0] for name in modules}
    # --help needs neither the record store's libraries nor rich
    assert tops.isdisjoint(HEAVY | {"sqlalchemy", "alembic", "rich", "numpy"}), tops


def test_versions_imports_no_heavy_library(settings: Settings) -> None:
    done, modules = imports("--config", str(settings.config_path), "versions")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == (
        "No model is deployed yet: `python -m monitoring setup` deploys the first.\n"
    )
    assert "monitoring.model.versions" in modules and "sqlalchemy" in modules
    tops = {name.split(".")[0] for name in modules}
    assert tops.isdisjoint(HEAVY), sorted(tops & HEAVY)
    lines = [line for line in done.stderr.splitlines() if not line.startswith("import time:")]
    assert lines == []  # stderr is a pipe: no progress bar, no colour
