"""Capture benchmark: what journalling a request's rows costs, as a JSON line or as an
Arrow record, in the request and in the importer, by batch size.

Run from the project root::

    .venv/bin/python benchmarks/bench_capture.py            # sizes 5 to 1,000 rows
    .venv/bin/python benchmarks/bench_capture.py --quick    # seconds-long smoke run

It copies the shipped project into a temporary folder (``setup`` run there), writes
the test rows repeated to batch files, and for each size and route sends
``POST /prediction?dataset_path=`` through the Flask test client with capture on (the
importer held back), then imports the journal with
:func:`~monitoring.capture.importer.import_journals`. The route is chosen with
``monitoring.capture.records.ARROW_MIN_ROWS`` (0: every batch an Arrow record; a
billion: every batch a JSON line). Figures are per request, medians of interleaved
rounds. Both routes store the same rows (checked): the request and the import are
the same work but for the journal line's form. The shipped threshold is where the
totals cross.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from _common import Goal, make_project, median, print_goals

from app import create_app
from monitoring.capture import importer, records
from monitoring.capture.importer import import_journals
from monitoring.config import load_settings

ROUTES = {"arrow": 0, "json": 10**9}


def measure(config: Path, sizes: Sequence[int], rounds: int) -> dict[tuple[int, str], Any]:
    """Per request: (request seconds, import seconds) by (size, route), medians."""
    settings = load_settings(config, env={})
    app = create_app(settings, {"TESTING": True})
    store = app.extensions["readmodels"].store
    client = app.test_client()
    test = pd.read_csv(settings.test_data_file)
    then = time.time() - 60  # settled files: parsed once (api.dataset_cache_bytes)
    for n in sizes:
        path = settings.test_data_path / f"batch{n}.csv"
        pd.concat([test] * (n // len(test) + 1)).iloc[:n].to_csv(path, index=False)
        os.utime(path, (then, then))
    cycle = importer.Importer.cycle
    held = lambda self, block=False: None  # noqa: E731 - the writer's own import, held back
    import_journals(store, settings)
    times: dict[tuple[int, str], list[tuple[float, float]]] = {}
    stored: dict[tuple[int, str], list[Any]] = {}
    for _ in range(rounds):
        for n in sizes:
            requests = max(20, 2000 // n)
            for route, threshold in ROUTES.items():
                records.ARROW_MIN_ROWS = threshold
                importer.Importer.cycle = held
                try:
                    start = time.perf_counter()
                    for _ in range(requests):
                        answer = client.post(f"/prediction?dataset_path=batch{n}.csv")
                    request = (time.perf_counter() - start) / requests
                finally:
                    importer.Importer.cycle = cycle
                start = time.perf_counter()
                import_journals(store, settings)
                imported = (time.perf_counter() - start) / requests
                times.setdefault((n, route), []).append((request, imported))
                rid = answer.get_json()["request_id"]
                stored[(n, route)] = [
                    (r["row_index"], r["inputs"], r["prediction"], r["probability"])
                    for r in records.captured(store, settings, request_id=rid)
                ]
    for n in sizes:
        if stored[(n, "arrow")] != stored[(n, "json")] or len(stored[(n, "json")]) != n:
            raise SystemExit(f"the routes stored different rows at {n} rows")
    return {
        key: (median([t[0] for t in values]), median([t[1] for t in values]))
        for key, values in times.items()
    }


def run(*, quick: bool = False, rounds: int | None = None) -> list[Goal]:
    """Run the benchmark, print its table and return its goal."""
    shipped = records.ARROW_MIN_ROWS
    sizes = (5, 64) if quick else (5, 20, 64, 200, 1000)
    with tempfile.TemporaryDirectory(prefix="bench-capture-", ignore_cleanup_errors=True) as tmp:
        config = make_project(Path(tmp) / "project")
        result = measure(config, sizes, rounds or (1 if quick else 3))
    records.ARROW_MIN_ROWS = shipped
    print(
        f"capture: ms per request, request + import (Flask test client, one thread); "
        f"shipped: JSON below {shipped} rows, Arrow from it"
    )
    header = f"{'rows':>5} {'route':>6} {'request':>9} {'import':>9} {'total':>9}"
    print(header)
    print("-" * len(header))
    for (n, route), (request, imported) in sorted(result.items()):
        total = 1000 * (request + imported)
        print(f"{n:>5} {route:>6} {1000 * request:>9.3f} {1000 * imported:>9.3f} {total:>9.3f}")

    def total(n: int, route: str) -> float:
        return sum(result[(n, route)])

    small = min(sizes)
    return [
        Goal(
            f"capture at {small} rows: JSON line total <= Arrow record total",
            f"{1000 * total(small, 'json'):.3f} vs {1000 * total(small, 'arrow'):.3f} ms",
            total(small, "json") <= total(small, "arrow"),
        )
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (3)")
    args = parser.parse_args(argv)
    goals = run(quick=args.quick, rounds=args.rounds)
    print_goals("goals", goals)
    return 0 if all(g.passed is not False for g in goals) else 1


if __name__ == "__main__":
    raise SystemExit(main())
