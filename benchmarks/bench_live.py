"""Benchmark of ``live_performance`` (the ``/scoring`` summary of captured traffic).

Run from the project root::

    .venv/bin/python benchmarks/bench_live.py                  # 1M captured rows
    .venv/bin/python benchmarks/bench_live.py --rows 200000 --labelled 0.5
    .venv/bin/python benchmarks/bench_live.py --quick          # seconds

It fills a SQLite record store with ``--rows`` captured predictions of three
model versions, a ``--labelled`` share of them labelled, and times (median of
``--repeats`` calls) :func:`monitoring.capture.live_performance` against the
row-by-row way it was computed before (SQLAlchemy row objects, one list per
version, scikit-learn's five metric functions), checking both give the same
result.

``--scoring`` (and :func:`scoring_goals`, run by ``run_all.py``) then serves ``/scoring``
in process from a deployed project whose store holds ``--rows`` captured predictions,
while a writer thread captures and labels a row every 50 ms (so the summary keeps
going stale and is refreshed, as under live traffic), and compares its latency
percentiles with the constant-JSON ceiling app's, requests interleaved one by one.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _common import Goal, make_project, median, print_goals
from sklearn import metrics
from sqlalchemy import func, select

from monitoring.capture import live_performance
from monitoring.storage.schema import captured_predictions
from monitoring.storage.store import Store


def fill(store: Store, rows: int, labelled: float, seed: int) -> None:
    """Insert ``rows`` captured predictions, a ``labelled`` share of them labelled."""
    assert store.file is not None
    store.engine  # noqa: B018 - creates the tables
    rnd = random.Random(seed)
    values = []
    for i in range(rows):
        probability = round(rnd.random(), 6)
        label = int(rnd.random() < 0.4) if rnd.random() < labelled else None
        version = f"v{i * 3 // rows}"
        values.append((f"r{i // 10}", i % 10, "2026-11-23T00:00:00+00:00", version, "{}"))
        values[-1] += (int(probability > 0.5), probability, label)
    with sqlite3.connect(store.file) as conn:
        conn.executemany(
            "INSERT INTO captured_predictions (request_id, row_index, captured_at,"
            " model_version, inputs, prediction, probability, label)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            values,
        )


def row_by_row(store: Store) -> dict[str, Any]:
    """The earlier computation: every labelled row as a SQLAlchemy row, then sklearn."""
    table = captured_predictions
    with store.engine.connect() as conn:
        counts = dict(
            conn.execute(
                select(table.c.model_version, func.count()).group_by(table.c.model_version)
            ).all()
        )
        labelled = conn.execute(
            select(
                table.c.model_version, table.c.label, table.c.prediction, table.c.probability
            ).where(table.c.label.is_not(None))
        ).all()
    out: dict[str, Any] = {}
    for version, n in counts.items():
        rows = [r for r in labelled if r[0] == version]
        entry: dict[str, Any] = {"n_captured": int(n), "n_labelled": len(rows)}
        if rows:
            y_true = np.array([r[1] for r in rows])
            y_pred = np.array([r[2] for r in rows])
            y_score = np.array([r[3] for r in rows], dtype=float)
            labels = [0, 1]
            entry.update(
                f1=metrics.f1_score(y_true, y_pred, labels=labels, zero_division=0),
                precision=metrics.precision_score(y_true, y_pred, labels=labels, zero_division=0),
                recall=metrics.recall_score(y_true, y_pred, labels=labels, zero_division=0),
                accuracy=metrics.accuracy_score(y_true, y_pred),
                roc_auc=metrics.roc_auc_score(y_true, y_score),
                confusion_matrix=metrics.confusion_matrix(y_true, y_pred, labels=labels).tolist(),
                n_rows=len(rows),
            )
        out[str(version)] = entry
    return out


def timed(func: Any, repeats: int) -> tuple[float, Any]:
    """Median seconds of ``repeats`` calls (after one warm-up) and the last result."""
    result = func()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - start)
    return median(times), result


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def scoring_latency(rows: int, seconds: float, labelled: float = 0.1) -> dict[str, Any]:
    """Latencies (seconds) of ``/scoring`` and of the ceiling app, interleaved, with
    ``rows`` captured predictions and a writer thread changing the store."""
    import threading

    from http_apps import ceiling

    from app import create_app
    from monitoring.config import load_settings

    with tempfile.TemporaryDirectory(prefix="bench-live-") as folder:
        config = make_project(Path(folder) / "project")
        settings = load_settings(config, env={})
        store = Store(settings.database_url)
        assert store.file is not None
        app = create_app(settings, {"TESTING": True})
        ours, ceil = app.test_client(), ceiling.test_client()
        version = ours.get("/scoring").get_json()["model_version"]
        fill(store, rows, labelled, seed=0)
        with sqlite3.connect(store.file) as conn:
            conn.execute("UPDATE captured_predictions SET model_version = ?", (version,))
        assert ours.get("/scoring").status_code == 200  # the process's first value
        stop = threading.Event()

        def writer() -> None:
            i = 0
            with sqlite3.connect(store.file, timeout=30) as conn:
                while not stop.wait(0.05):
                    conn.execute(
                        "INSERT INTO captured_predictions (request_id, row_index, captured_at,"
                        " model_version, inputs, prediction, probability, label)"
                        " VALUES (?, 0, '2026-11-23T00:00:00+00:00', ?, '{}', 1, 0.9, 1)",
                        (f"w{i}", version),
                    )
                    conn.commit()
                    i += 1

        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        times: dict[str, list[float]] = {"scoring": [], "ceiling": []}
        end = time.perf_counter() + seconds
        try:
            while time.perf_counter() < end:
                for name, client, path in (("scoring", ours, "/scoring"), ("ceiling", ceil, "/")):
                    start = time.perf_counter()
                    response = client.get(path)
                    times[name].append(time.perf_counter() - start)
                    assert response.status_code == 200, response.get_data(as_text=True)
        finally:
            stop.set()
            thread.join()
        live = ours.get("/scoring").get_json()["live_performance"][version]
    return {**times, "n_captured": live["n_captured"]}


def scoring_goals(*, quick: bool = False, rows: int | None = None) -> list[Goal]:
    """Run the ``/scoring`` latency benchmark, print its table, return its goal."""
    rows = rows or (20_000 if quick else 1_000_000)
    seconds = 3.0 if quick else 20.0
    measured = scoring_latency(rows, seconds)
    ours, ceil = measured["scoring"], measured["ceiling"]
    print(
        f"/scoring in process with {rows:,} captured rows (a row captured and labelled every"
        f" 50 ms), {len(ours):,} requests each, interleaved over {seconds:.0f} s"
    )
    print(f"{'':<10} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, values in (("/scoring", ours), ("ceiling", ceil)):
        p50, p99 = _percentile(values, 50) * 1e3, _percentile(values, 99) * 1e3
        print(f"{name:<10} {p50:>8.2f} {p99:>8.2f} {max(values) * 1e3:>8.2f}")
    ratio = _percentile(ours, 99) / _percentile(ceil, 99)
    return [
        Goal(f"/scoring p99 <= 2x ceiling p99 ({rows:,} captured)", f"{ratio:.2f}x", ratio <= 2.0)
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, help="captured rows (default 1000000)")
    parser.add_argument("--labelled", type=float, default=0.1, help="labelled share")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="20k rows, seconds")
    parser.add_argument("--scoring", action="store_true", help="also time /scoring")
    args = parser.parse_args(argv)
    rows, repeats = (20_000, 2) if args.quick else (args.rows or 1_000_000, args.repeats)
    with tempfile.TemporaryDirectory() as folder:
        store = Store(f"sqlite:///{Path(folder) / 'monitoring.db'}")
        fill(store, rows, args.labelled, seed=0)
        ours_s, ours = timed(lambda: live_performance(store), repeats)
        base_s, base = timed(lambda: row_by_row(store), repeats)
    labelled = sum(v["n_labelled"] for v in ours.values())
    print(
        f"live_performance: {rows:,} captured rows, {labelled:,} labelled, 3 versions;"
        f" median of {repeats}"
    )
    print(f"  ours (index ranges, cursor rows, counted metrics)  {ours_s * 1e3:8.1f} ms")
    print(f"  row by row (SQLAlchemy rows, sklearn metrics)      {base_s * 1e3:8.1f} ms")
    print(f"  ratio: {base_s / ours_s:.1f}x faster; same result: {'yes' if ours == base else 'NO'}")
    if args.scoring:
        print_goals("goals:", scoring_goals(quick=args.quick, rows=rows))
    return 0 if ours == base else 1


if __name__ == "__main__":
    raise SystemExit(main())
