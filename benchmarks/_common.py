"""Helpers shared by the benchmark scripts: goals, medians, a scratch project."""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make the package importable
    sys.path.insert(0, str(ROOT))


@dataclass(frozen=True)
class Goal:
    """One goal of the issue with what this run measured.

    Parameters
    ----------
    name : str
        The goal as a sentence (``"/prediction >= 0.45x ceiling"``).
    measured : str
        The measured value, formatted.
    passed : bool or None
        ``None`` when it could not be measured in this run.
    """

    name: str
    measured: str
    passed: bool | None

    @property
    def verdict(self) -> str:
        """PASS, FAIL or SKIP."""
        return "SKIP" if self.passed is None else ("PASS" if self.passed else "FAIL")


def median(values: Sequence[float]) -> float:
    """Median of ``values`` (NaN when empty)."""
    return statistics.median(values) if values else float("nan")


def print_goals(title: str, goals: Sequence[Goal]) -> None:
    """Print goals as an aligned table."""
    print(f"\n{title}")
    width = max((len(g.name) for g in goals), default=10)
    for goal in goals:
        print(f"  {goal.name:<{width}}  {goal.measured:>22}  {goal.verdict}")


def make_project(folder: Path, *, setup: bool = True, **overrides: object) -> Path:
    """A project copy in ``folder`` (shipped data, config, requirements).

    Parameters
    ----------
    folder : Path
        Empty or missing folder.
    setup : bool, default True
        Run ``python -m monitoring --config folder/config.json setup`` (ingest,
        train, score, deploy) in a subprocess.
    **overrides
        Top-level config keys to replace.

    Returns
    -------
    Path
        The config file.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("practicedata", "sourcedata", "testdata"):
        shutil.copytree(ROOT / "data" / name, folder / "data" / name)
    for path in (folder / "data").rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    shutil.copy(ROOT / "requirements.txt", folder / "requirements.txt")
    config = json.loads((ROOT / "config.json").read_text())
    config.update(overrides)
    config_path = folder / "config.json"
    config_path.write_text(json.dumps(config, indent=2))
    if setup:
        subprocess.run(
            [sys.executable, "-m", "monitoring", "--config", str(config_path), "setup"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            timeout=300,
            env={**_env(), "MONITORING_PYPI_URL": "http://127.0.0.1:9"},
        )
    return config_path


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)
