"""Start-up time of the command line: ``python -m monitoring --help`` and ``versions``.

Each command runs as a fresh process (what a user or a cron job pays), timed in
interleaved rounds next to two baselines measured in the same run: the bare
interpreter (``python -c pass``, the floor) and importing the modules the command
line imported eagerly before its commands loaded their libraries lazily (pipeline,
capture importer, reports, read models, diagnostics: the cost every command paid).
``versions`` reads a project set up for the run (one deployed model).

Run from the project root::

    .venv/bin/python benchmarks/bench_cli.py              # 7 rounds
    .venv/bin/python benchmarks/bench_cli.py --quick      # 1 round (smoke)
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from _common import ROOT, Goal, make_project, median, print_goals

EAGER = (
    "import monitoring.pipeline, monitoring.capture.importer, monitoring.reports.reporting, "
    "monitoring.readmodels, monitoring.diagnostics.timing, monitoring.data.profile"
)
GOAL_SECONDS = 1.0


def wall(argv: Sequence[str]) -> tuple[float, float]:
    """Seconds from start to exit of ``argv`` (which must succeed), and the CPU seconds
    (user + system) it used: the CPU time hardly moves with the machine's load."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, check=True, capture_output=True, timeout=120)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def run(*, quick: bool = False, rounds: int | None = None) -> list[Goal]:
    """Time the cases; print a table; return the goals."""
    rounds = rounds or (1 if quick else 7)
    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        config = str(make_project(Path(tmp) / "project"))
        cases = {
            "python -c pass (interpreter floor)": [py, "-c", "pass"],
            "python -m monitoring --help": [py, "-m", "monitoring", "--help"],
            "python -m monitoring versions": [
                py,
                "-m",
                "monitoring",
                "--config",
                config,
                "versions",
            ],
            "eager imports of the old command line": [py, "-c", EAGER],
        }
        if not quick:
            for argv in cases.values():  # warm the file cache and the bytecode
                wall(argv)
        samples: dict[str, list[float]] = {name: [] for name in cases}
        cpus: dict[str, list[float]] = {name: [] for name in cases}
        for r in range(rounds):
            order = list(cases.items())
            for name, argv in order if r % 2 == 0 else order[::-1]:
                elapsed, cpu = wall(argv)
                samples[name].append(elapsed)
                cpus[name].append(cpu)
    medians = {name: median(times) for name, times in samples.items()}
    eager = medians["eager imports of the old command line"]
    load = os.getloadavg()[0]
    print(f"\nCLI start-up, medians of {rounds} interleaved round(s); load average {load:.1f}")
    print(f"  {'':<40} {'wall':>8}   {'CPU':>8}   wall vs eager")
    for name, seconds in medians.items():
        cpu = median(cpus[name])
        print(f"  {name:<40} {seconds:6.3f} s   {cpu:6.3f} s   {eager / seconds:5.1f}x faster")
    help_s, versions_s = (medians[f"python -m monitoring {c}"] for c in ("--help", "versions"))
    goals = [
        Goal("CLI --help < 1 s", f"{help_s:.2f} s", help_s < GOAL_SECONDS),
        Goal("CLI versions < 1 s", f"{versions_s:.2f} s", versions_s < GOAL_SECONDS),
    ]
    print_goals("goals", goals)
    return goals


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one round (smoke)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 7)")
    args = parser.parse_args(argv)
    goals = run(quick=args.quick, rounds=args.rounds)
    return 0 if args.quick or all(g.passed for g in goals) else 1


if __name__ == "__main__":
    raise SystemExit(main())
