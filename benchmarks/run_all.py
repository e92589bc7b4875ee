"""Run every benchmark and print each goal with its measured value and PASS/FAIL.

Run from the project root::

    .venv/bin/python benchmarks/run_all.py           # everything, under 5 minutes
    .venv/bin/python benchmarks/run_all.py --quick   # smoke run in seconds (CI)

``--quick`` shrinks every size and load so the scripts are exercised end to end
(the numbers are then not measurements); ``--no-wrk`` forces the Python load
generator. The exit status is 1 when a goal fails in a full run, 0 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_cli  # noqa: E402
import bench_dashboard  # noqa: E402
import bench_drift  # noqa: E402
import bench_http  # noqa: E402
import bench_live  # noqa: E402
import bench_pipeline  # noqa: E402
import bench_prediction  # noqa: E402
from _common import Goal  # noqa: E402

GOAL_LINE = re.compile(r"^\s+(?P<name>.+?):\s+(?P<value>.*?)\s+(?P<verdict>PASS|FAIL)\s*$")


class _Tee(io.TextIOBase):
    """Write to the real stdout and keep a copy."""

    def __init__(self, stream: io.TextIOBase) -> None:
        self.stream = stream
        self.copy = io.StringIO()

    def write(self, text: str) -> int:
        self.stream.write(text)
        self.copy.write(text)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def drift_goals(quick: bool) -> list[Goal]:
    """Run bench_drift (1M x 30 once, or its quick mode) and parse its goal lines."""
    argv = ["--quick"] if quick else ["--sizes", "1000000", "--columns", "30", "--repeats", "3"]
    tee = _Tee(sys.stdout)  # type: ignore[arg-type]
    with contextlib.redirect_stdout(tee):
        bench_drift.main(argv)
    goals = []
    for line in tee.copy.getvalue().splitlines():
        match = GOAL_LINE.match(line)
        if match:
            goals.append(
                Goal(f"drift: {match['name']}", match["value"], match["verdict"] == "PASS")
            )
    return goals


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks; return 1 if a goal failed in a full run, else 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run")
    parser.add_argument("--no-wrk", action="store_true", help="use the Python load generator")
    parser.add_argument("--json", metavar="FILE", help="also write the goals as JSON to FILE")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    sections: list[tuple[str, list[Goal], float]] = []
    for title, run in (
        ("HTTP", lambda: bench_http.run(quick=args.quick, use_wrk=not args.no_wrk)),
        ("/prediction", lambda: bench_prediction.run(quick=args.quick, use_wrk=not args.no_wrk)),
        ("pipeline", lambda: bench_pipeline.run(quick=args.quick)),
        ("drift", lambda: drift_goals(args.quick)),
        ("CLI", lambda: bench_cli.run(quick=args.quick)),
        ("live performance", lambda: bench_live.scoring_goals(quick=args.quick)),
        # 100 features once (the goals' size); bench_dashboard.py alone gives 3/30/100.
        (
            "dashboard",
            lambda: bench_dashboard.run(
                quick=args.quick, features=None if args.quick else (100,), repeats=1
            ),
        ),
    ):
        print(f"\n=== {title} ===", flush=True)
        t0 = time.perf_counter()
        goals = run()
        sections.append((title, goals, time.perf_counter() - t0))

    total = time.perf_counter() - started
    print("\n=== goals ===")
    goals = [g for _, section, _ in sections for g in section]
    goals.append(Goal("whole benchmark < 5 minutes", f"{total:.0f} s", total < 300))
    width = max(len(g.name) for g in goals)
    for goal in goals:
        print(f"  {goal.name:<{width}}  {goal.measured:>22}  {goal.verdict}")
    if args.json:
        rows = [{"name": g.name, "measured": g.measured, "verdict": g.verdict} for g in goals]
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    timing = ", ".join(f"{title} {seconds:.0f} s" for title, _, seconds in sections)
    failed = [g for g in goals if g.passed is False]
    print(f"\n{len(goals) - len(failed)}/{len(goals)} goals met ({timing}; total {total:.0f} s)")
    if args.quick:
        print("(quick mode: smoke sizes, the verdicts are not measurements)")
        return 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
