"""Drift-test quality: false-alarm rate without drift, and power under a known shift.

Run from the project root::

    .venv/bin/python benchmarks/bench_drift_quality.py            # 1000 pairs per cell
    .venv/bin/python benchmarks/bench_drift_quality.py --pairs 200 --json out.json

For every test the service offers (``ks``, ``wasserstein``, ``psi`` on a numeric
column; ``chisquare``, ``jensenshannon`` on a categorical one), each at its default
threshold, it draws seeded reference/current pairs from one distribution (no drift)
and counts how often the test says "drifted": the false-alarm rate. Then it shifts the
current sample (numeric: by 0.1, 0.2 and 1 standard deviation; categorical: 5, 10 and
30 points of share moved from the largest category to the smallest) and counts how
often the drift is found: the power. Sizes are (reference rows, current rows) pairs
from 100 to 10,000. Every verdict comes from ``detect_data_drift`` itself, as the
pipeline calls it, with the method forced by ``drift.method``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitoring.config import DriftOptions  # noqa: E402
from monitoring.drift import detect_data_drift  # noqa: E402

SIZES = [(100, 100), (200, 200), (200, 1000), (1000, 1000), (1000, 10_000), (10_000, 10_000)]
NUMERIC_METHODS = ["ks", "wasserstein", "psi"]
CATEGORICAL_METHODS = ["chisquare", "jensenshannon"]
NUMERIC_SHIFTS = [0.0, 0.1, 0.2, 1.0]  # in standard deviations
CATEGORICAL_SHIFTS = [0.0, 0.05, 0.10, 0.30]  # share moved from the largest category
SHARES = np.array([0.35, 0.25, 0.2, 0.12, 0.08])
LABELS = np.array(["a", "b", "c", "d", "e"], dtype=object)


def _options(method: str, kind: str) -> DriftOptions:
    return DriftOptions.from_mapping({"method": method, "columns": {"x": {"kind": kind}}})


def _categorical(rng: np.random.Generator, n: int, moved: float) -> np.ndarray:
    shares = SHARES.copy()
    shares[0] -= moved
    shares[-1] += moved
    return rng.choice(LABELS, n, p=shares)


def rate(method: str, kind: str, sizes: tuple[int, int], shift: float, pairs: int) -> float:
    """Share of ``pairs`` seeded pairs found drifted by ``method``."""
    options = _options(method, kind)
    methods = NUMERIC_METHODS + CATEGORICAL_METHODS
    rng = np.random.default_rng([methods.index(method), sizes[0], sizes[1], int(shift * 1000)])
    found = 0
    for _ in range(pairs):
        if kind == "numeric":
            reference = rng.normal(size=sizes[0])
            current = rng.normal(size=sizes[1]) + shift
        else:
            reference = _categorical(rng, sizes[0], 0.0)
            current = _categorical(rng, sizes[1], shift)
        report = detect_data_drift(
            pd.DataFrame({"x": reference}), pd.DataFrame({"x": current}), options=options
        )
        found += bool(report["columns"][0]["drifted"])
    return found / pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1000, help="pairs per cell (default 1000)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    results: list[dict[str, Any]] = []
    plan = [(m, "numeric", NUMERIC_SHIFTS) for m in NUMERIC_METHODS] + [
        (m, "categorical", CATEGORICAL_SHIFTS) for m in CATEGORICAL_METHODS
    ]
    for method, kind, shifts in plan:
        for sizes in SIZES:
            row = {"method": method, "kind": kind, "reference": sizes[0], "current": sizes[1]}
            row["rates"] = {str(s): rate(method, kind, sizes, s, args.pairs) for s in shifts}
            results.append(row)
            cells = "  ".join(f"{s:>5}: {r:6.1%}" for s, r in row["rates"].items())
            print(f"{method:14} {sizes[0]:>6}/{sizes[1]:<6} {cells}", flush=True)
    print(
        f"{args.pairs} seeded pairs per cell; the 0.0 column is the false-alarm rate "
        f"(numeric shifts in standard deviations, categorical in share moved); "
        f"{time.perf_counter() - started:.0f} s"
    )
    if args.json:
        args.json.write_text(json.dumps({"pairs": args.pairs, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
