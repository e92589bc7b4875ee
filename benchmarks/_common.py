"""Helpers shared by the benchmark scripts: goals, medians, a scratch project."""

from __future__ import annotations

import gc
import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
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


def per_call(func: Callable[[], object], number: int) -> float:
    """Mean wall time of ``number`` calls of ``func``, in seconds."""
    start = time.perf_counter()
    for _ in range(number):
        func()
    return (time.perf_counter() - start) / number


def calls_for(func: Callable[[], object], target: float) -> int:
    """How many calls of ``func`` last about ``target`` seconds (calibrated on a tenth)."""
    number = 1
    while True:
        elapsed = per_call(func, number) * number
        if elapsed >= target / 10 or number >= 1_000_000:
            return max(1, round(number * target / elapsed))
        number *= 10


def interleaved(funcs: Sequence[Callable[[], object]], rounds: int, target: float) -> list[float]:
    """Median time per call of each of ``funcs``, timed in interleaved rounds.

    Each round times every function once (the order reversed every other round),
    each sample calling it enough times to last about ``target`` seconds, so machine
    noise falls on all of them alike. The young garbage is collected before each
    sample (a full collection, ~0.2 s with the libraries loaded, only once).
    """
    ways = [(func, calls_for(func, target), []) for func in funcs]
    gc.collect()
    for r in range(rounds):
        for func, number, times in ways if r % 2 == 0 else ways[::-1]:
            gc.collect(1)
            times.append(per_call(func, number))
    return [median(times) for _, _, times in ways]


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
