"""Benchmark of :func:`monitoring.drift.detect_data_drift` against scipy, Evidently.

Run from the project root::

    .venv/bin/python benchmarks/bench_drift.py            # 10k/100k/1M x 3/10/30
    .venv/bin/python benchmarks/bench_drift.py --quick    # seconds-long smoke run
    .venv/bin/python benchmarks/bench_drift.py --sizes 100000 --columns 10 --evidently

For every size it times, as the median of ``--repeats`` runs:

* ours: fitting a :class:`ReferenceProfile` of the reference (one streaming pass,
  a bounded sketch per column) and ``detect_data_drift`` of the current data against
  it with the KS method forced (the Wasserstein and PSI extras are computed too),
  timed together: scipy's ``ks_2samp`` sorts both samples on every call, so the fit
  counts;
* scipy: a loop calling ``scipy.stats.ks_2samp`` on every column;

and reports their ratio, the extra peak memory (RSS, the process's high-water mark
reset before the run: numpy's and the allocator's pages alike) of one fit + check,
the fit's share of the time, and the time of a single 10k-row column check against
a fitted profile.  With
``--evidently`` it installs Evidently into ``benchmarks/.venv-evidently`` (pandas <
3, which the project's venv cannot mix with) and times its ``DataDriftPreset`` on
the same data in a subprocess.  Results go to stdout only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make the package importable
    sys.path.insert(0, str(ROOT))

from monitoring.config import DriftOptions  # noqa: E402
from monitoring.drift import (  # noqa: E402
    ReferenceProfile,
    detect_data_drift,
)
from monitoring.drift.reference import sketch_error  # noqa: E402

FULL_SIZES = (10_000, 100_000, 1_000_000)
FULL_COLUMNS = (3, 10, 30)
QUICK_SIZES = (2_000, 20_000)
QUICK_COLUMNS = (3,)
GOAL_RATIO = 3.0  # fit included
GOAL_MEMORY_MB = 150.0
GOAL_COLUMN_MS = 1.0
GOAL_EVIDENTLY = 50.0
GOAL_SIZE = (1_000_000, 30)
EVIDENTLY_VENV = ROOT / "benchmarks" / ".venv-evidently"
KS_OPTIONS = DriftOptions.from_mapping({"method": "ks"})


@dataclass(frozen=True)
class Row:
    """Measurements of one (rows, columns) configuration."""

    rows: int
    columns: int
    ours_s: float
    scipy_s: float
    peak_mb: float
    fit_s: float
    ks_error: float  # largest |D - scipy's D| over the columns (0 below EXACT_VALUES rows)

    @property
    def ratio(self) -> float:
        """How many times faster ours is than the scipy loop."""
        return self.scipy_s / self.ours_s if self.ours_s > 0 else float("inf")


def make_data(rows: int, columns: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference and current frames of continuous columns; every 5th one drifts.

    Columns cycle through normal, lognormal, uniform and a normal rounded to 0.01
    (many ties); the drifted columns are shifted by a tenth of a standard
    deviation.
    """
    rng = np.random.default_rng(seed)

    def column(kind: int, size: int, shift: float) -> np.ndarray:
        if kind == 0:
            return rng.normal(shift, 1.0, size)
        if kind == 1:
            return rng.lognormal(0.0, 0.5, size) + shift * 0.5
        if kind == 2:
            return rng.uniform(0.0, 1.0, size) + shift * 0.29
        return np.round(rng.normal(shift, 1.0, size), 2)

    names = [f"f{i:02d}" for i in range(columns)]
    reference = pd.DataFrame({n: column(i % 4, rows, 0.0) for i, n in enumerate(names)})
    current = pd.DataFrame(
        {n: column(i % 4, rows, 0.1 if i % 5 == 4 else 0.0) for i, n in enumerate(names)}
    )
    return reference, current


def median_time(func: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def scipy_loop(reference: pd.DataFrame, current: pd.DataFrame) -> list[float]:
    """KS statistics of every column with ``scipy.stats.ks_2samp``."""
    return [
        float(stats.ks_2samp(reference[c].to_numpy(), current[c].to_numpy()).statistic)
        for c in reference.columns
    ]


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def peak_memory_mb(func: Callable[[], object]) -> float:
    """Peak RSS during ``func`` beyond the RSS before it, in MB (Linux: the high-water
    mark is reset through ``/proc/self/clear_refs``); NaN where that cannot be done."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return float("nan")
    before = _status_kb("VmRSS")
    func()
    return (_status_kb("VmHWM") - before) / 1e3


def measure(rows: int, columns: int, repeats: int, seed: int) -> Row:
    """Time ours (fit + check) and scipy on one configuration."""
    reference, current = make_data(rows, columns, seed)
    start = time.perf_counter()
    profile = ReferenceProfile().fit(reference)
    fit_s = time.perf_counter() - start

    def ours() -> dict[str, Any]:
        fitted = ReferenceProfile().fit(reference)
        return detect_data_drift(fitted, current, options=KS_OPTIONS)

    peak_mb = peak_memory_mb(ours)  # first: nothing of ours is cached before it
    report = detect_data_drift(profile, current, options=KS_OPTIONS)
    expected = scipy_loop(reference, current)
    got = [c["ks_statistic"] for c in report["columns"]]
    ours_s = median_time(ours, repeats)
    scipy_s = median_time(lambda: scipy_loop(reference, current), repeats)
    return Row(
        rows=rows,
        columns=columns,
        ours_s=ours_s,
        scipy_s=scipy_s,
        peak_mb=peak_mb,
        fit_s=fit_s,
        ks_error=max(abs(a - b) for a, b in zip(got, expected, strict=True)),
    )


def column_time_ms(rows: int, repeats: int, seed: int) -> tuple[float, float]:
    """Median time of a one-column check and of ``ks_2samp`` on it, in ms."""
    reference, current = make_data(rows, 1, seed)
    profile = ReferenceProfile().fit(reference)
    ours = median_time(lambda: detect_data_drift(profile, current, options=KS_OPTIONS), repeats)
    ref, cur = reference["f00"].to_numpy(), current["f00"].to_numpy()
    theirs = median_time(lambda: stats.ks_2samp(ref, cur), repeats)
    return ours * 1e3, theirs * 1e3


def verdict(ok: bool) -> str:
    """PASS or FAIL."""
    return "PASS" if ok else "FAIL"


EVIDENTLY_SCRIPT = r"""
import json, statistics, sys, time
import numpy as np
import pandas as pd
ref = pd.DataFrame(np.load(sys.argv[1]))
cur = pd.DataFrame(np.load(sys.argv[2]))
ref.columns = cur.columns = [f"f{i:02d}" for i in range(ref.shape[1])]
repeats = int(sys.argv[3])
try:  # evidently >= 0.7
    from evidently import Report
    from evidently.presets import DataDriftPreset
    def run():
        return Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref)
except ImportError:  # older API
    from evidently.report import Report
    from evidently.metric_preset import DataDriftPreset
    def run():
        report = Report(metrics=[DataDriftPreset()])
        report.run(reference_data=ref, current_data=cur)
        return report
import evidently
times = []
for _ in range(repeats):
    start = time.perf_counter()
    run()
    times.append(time.perf_counter() - start)
print(json.dumps({"version": getattr(evidently, "__version__", "?"),
                  "seconds": statistics.median(times)}))
"""


def ensure_evidently() -> tuple[Path | None, str]:
    """Create the Evidently venv if needed; return its python or why not."""
    python = EVIDENTLY_VENV / "bin" / "python"
    if python.is_file():
        check = subprocess.run(
            [str(python), "-c", "import evidently"], capture_output=True, text=True
        )
        if check.returncode == 0:
            return python, "reused"
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", str(EVIDENTLY_VENV)],
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
        )
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "evidently", "pandas<3"],
            check=True,
            capture_output=True,
            text=True,
            timeout=1200,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        return None, f"install failed: {detail.strip().splitlines()[-1:]}"
    return python, "installed"


def compare_evidently(rows: int, columns: int, repeats: int, seed: int) -> None:
    """Time Evidently's DataDriftPreset and ours (auto method) on the same data."""
    python, how = ensure_evidently()
    if python is None:
        print(f"evidently: skipped: {how}")
        return
    reference, current = make_data(rows, columns, seed)
    with tempfile.TemporaryDirectory() as tmp:
        ref_file, cur_file = Path(tmp) / "ref.npy", Path(tmp) / "cur.npy"
        np.save(ref_file, reference.to_numpy())
        np.save(cur_file, current.to_numpy())
        script = Path(tmp) / "run_evidently.py"
        script.write_text(EVIDENTLY_SCRIPT)
        done = subprocess.run(
            [str(python), str(script), str(ref_file), str(cur_file), str(repeats)],
            capture_output=True,
            text=True,
            timeout=3600,
        )
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        print(f"evidently: skipped: run failed: {tail[0]}")
        return
    result = json.loads(done.stdout.strip().splitlines()[-1])
    profile = ReferenceProfile().fit(reference)
    ours = median_time(lambda: detect_data_drift(profile, current), repeats)
    ours_fit = median_time(lambda: detect_data_drift(reference, current), repeats)
    theirs = float(result["seconds"])
    ratio = theirs / ours
    print(
        f"evidently {result['version']} ({how}) DataDriftPreset on"
        f" {rows:,} x {columns}: {theirs:.3f} s; ours (auto method) {ours:.4f} s"
        " with a fitted profile,"
        f" {ours_fit:.4f} s profiling the reference too"
    )
    print(
        f"  ratio evidently/ours: {ratio:.1f}x (with fit: {theirs / ours_fit:.1f}x)"
        f"  goal >= {GOAL_EVIDENTLY:.0f}x: {verdict(ratio >= GOAL_EVIDENTLY)}"
    )


def parse_ints(text: str) -> list[int]:
    """Parse ``"10000,100000"`` (underscores allowed)."""
    try:
        values = [int(part.replace("_", "")) for part in text.split(",") if part]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from exc
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"need positive integers: {text!r}")
    return values


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table; returns the exit status (0)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, seconds")
    parser.add_argument("--sizes", type=parse_ints, help="rows, e.g. 10000,100000")
    parser.add_argument("--columns", type=parse_ints, help="columns, e.g. 3,10,30")
    parser.add_argument("--repeats", type=int, help="timed runs per measurement")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--evidently", action="store_true", help="also time Evidently (own venv)")
    parser.add_argument(
        "--evidently-rows",
        type=int,
        default=100_000,
        help="largest row count Evidently is run on (default 100000)",
    )
    args = parser.parse_args(argv)
    sizes = args.sizes or list(QUICK_SIZES if args.quick else FULL_SIZES)
    columns = args.columns or list(QUICK_COLUMNS if args.quick else FULL_COLUMNS)
    repeats = args.repeats or (2 if args.quick else 3)

    print(
        f"ReferenceProfile.fit + detect_data_drift (method=ks) vs scipy.stats.ks_2samp loop;"
        f" median of {repeats} runs"
    )
    header = (
        f"{'rows':>10} {'cols':>5} {'ours s':>9} {'scipy s':>9} {'ratio':>7}"
        f" {'ours ms/col':>12} {'RSS+ MB':>8} {'fit s':>7} {'|D-scipy|':>10}"
    )
    print(header)
    print("-" * len(header))
    results: dict[tuple[int, int], Row] = {}
    for rows in sizes:
        for cols in columns:
            row = measure(rows, cols, repeats, args.seed)
            results[(rows, cols)] = row
            print(
                f"{rows:>10,} {cols:>5} {row.ours_s:>9.4f} {row.scipy_s:>9.4f}"
                f" {row.ratio:>6.1f}x {row.ours_s / cols * 1e3:>12.2f}"
                f" {row.peak_mb:>8.1f} {row.fit_s:>7.2f}"
                f" {row.ks_error:>10.1e}"
            )
    col_ms, col_scipy_ms = column_time_ms(10_000, 15 if args.quick else 200, args.seed)
    print(f"10k-row column: ours {col_ms:.3f} ms, ks_2samp {col_scipy_ms:.3f} ms")

    print("goals:")
    goal = results.get(GOAL_SIZE)
    if goal is None:
        print(f"  >= {GOAL_RATIO:.0f}x scipy at 1M x 30, fit included: not measured in this run")
        print(f"  extra RSS < {GOAL_MEMORY_MB:.0f} MB at 1M x 30: not measured")
    else:
        print(
            f"  >= {GOAL_RATIO:.0f}x scipy at 1M x 30, fit included: {goal.ratio:.1f}x"
            f" {verdict(goal.ratio >= GOAL_RATIO)}"
        )
        print(
            f"  extra RSS < {GOAL_MEMORY_MB:.0f} MB at 1M x 30:"
            f" {goal.peak_mb:.1f} MB {verdict(goal.peak_mb < GOAL_MEMORY_MB)}"
        )
    print(
        f"  10k-row column < {GOAL_COLUMN_MS:g} ms: {col_ms:.3f} ms"
        f" {verdict(col_ms < GOAL_COLUMN_MS)}"
    )
    worst = max(r.ks_error for r in results.values())
    within = all(r.ks_error <= sketch_error(r.rows) for r in results.values())
    print(
        f"  KS statistics within the sketch's bound of scipy's: {worst:.1e}"
        f" (bound {max(sketch_error(r.rows) for r in results.values()):.1e})"
        f" {verdict(within)}"
    )

    if args.evidently:
        ev_rows = max([s for s in sizes if s <= args.evidently_rows] or [min(sizes)])
        compare_evidently(ev_rows, max(columns), repeats, args.seed)
    else:
        print("evidently: skipped: run with --evidently to compare (installs it)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
