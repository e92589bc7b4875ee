"""``/prediction`` benchmark: every request form and batch size, against the framework
ceiling, the course app's way (naive) and the in-process limit, in the same run.

Run from the project root::

    .venv/bin/python benchmarks/bench_prediction.py            # ~3 minutes, wrk if installed
    .venv/bin/python benchmarks/bench_prediction.py --quick    # seconds-long smoke run

It copies the shipped data and config into a temporary project, runs ``python -m
monitoring setup`` there and starts, under gunicorn with the project's
``gunicorn.conf.py`` (2 threaded workers each, the same for every app):

* ``ours``: ``wsgi:app`` with the shipped config (prediction capture on, SQLite store,
  gunicorn's capture importer process);
* ``ours-nocap``: the same with capture off (a reference row for the 5-row forms);
* ``ceiling``: a Flask app returning a constant JSON (``http_apps:ceiling``);
* ``naive``: the course app's per-request work (``http_apps:naive``): read the CSV (or
  the body), unpickle the deployed model, predict.

Request forms, each as the rows come from the test CSV (``corporation`` and ``exited``
included, as clients send them): JSON rows (``{"data": [...]}``), a CSV body
(``text/csv``) and a dataset path (``?dataset_path=`` to a CSV file in the test data
folder). First the test file's 5 rows; then batches of 1, 10, 100, 1,000 and 10,000
rows (the test rows repeated). Each (form, size, server) is driven by ``wrk`` (1
thread, 4 connections) or without wrk by the Python load generator, in interleaved
rounds; ratios are medians of per-round ratios.

The in-process limit of a batch is what one Python thread does with the same CSV bytes
and no HTTP: pyarrow's CSV reader, the feature matrix, the deployed model's
``predict_proba`` (median of repeated runs, measured between the rounds).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import pickle
import shutil
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
from _common import Goal, make_project, median, print_goals
from bench_http import CONNECTIONS, WRK_DONE, Load, gunicorn, wrk_load

SIZES = (1, 10, 100, 1_000, 10_000)
FORMS = ("JSON rows", "CSV body", "dataset path")
SERVERS = {
    "ceiling": "http_apps:ceiling",
    "ours": "wsgi:app",
    "ours-nocap": "wsgi:app",
    "naive": "http_apps:naive",
}
BATCH_SERVERS = ("ours", "naive")  # batches: ours against naive (and the in-process limit)


@dataclass(frozen=True)
class Shape:
    """One request: method, path (with its query), body and content type."""

    name: str
    path: str
    body: bytes | None = None
    content_type: str | None = None


def shapes(frame: pd.DataFrame, csv_name: str, csv_bytes: bytes) -> dict[str, Shape]:
    """The three request forms of the rows of ``frame`` (written as ``csv_name``)."""
    rows = json.loads(frame.to_json(orient="records"))
    return {
        "JSON rows": Shape(
            "JSON rows", "/prediction", json.dumps({"data": rows}).encode(), "application/json"
        ),
        "CSV body": Shape("CSV body", "/prediction", csv_bytes, "text/csv"),
        "dataset path": Shape("dataset path", f"/prediction?dataset_path=data/testdata/{csv_name}"),
    }


def request(port: int, shape: Shape) -> tuple[int, Any]:
    """One request; its status and parsed body."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Content-Type": shape.content_type} if shape.content_type else {}
        conn.request("POST", shape.path, body=shape.body, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        conn.close()


def wrk_script(shape: Shape, folder: Path, key: str) -> Path:
    """A wrk Lua script sending ``shape`` and printing a JSON summary."""
    lines = ['wrk.method = "POST"']
    if shape.body is not None:
        lines.append(f"wrk.body = {json.dumps(shape.body.decode())}")
    if shape.content_type:
        lines.append(f'wrk.headers["Content-Type"] = "{shape.content_type}"')
    path = folder / f"{key}.lua"
    path.write_text("\n".join(lines) + "\n" + WRK_DONE)
    return path


def drive(port: int, shape: Shape, seconds: float, script: Path | None) -> Load:
    """Load ``shape`` on ``port`` for ``seconds`` with wrk (``script``) or Python threads."""
    if script is None:
        return _python_load(port, shape, seconds)
    return wrk_load(port, shape.path, seconds, script, timeout="10s", slack=60)


def _python_load(port: int, shape: Shape, seconds: float) -> Load:
    """Without wrk: one connection at a time, sequentially (a smoke run, not a load)."""
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        try:
            ok = request(port, shape)[0] == 200
        except OSError:
            ok = False
        if ok:
            latencies.append(time.perf_counter() - t0)
        else:
            errors += 1
    total = time.perf_counter() - start
    latencies.sort()

    def pct(q: float) -> float:
        if not latencies:
            return float("nan")
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e3

    return Load(len(latencies), total, pct(0.5), pct(0.99), errors)


def in_process_limit(model: Any, features: list[str], csv_bytes: bytes, repeats: int) -> float:
    """Rows per second of one thread doing pyarrow's CSV read of ``csv_bytes``, the
    feature matrix and ``predict_proba``, without HTTP (the median of ``repeats`` runs)."""
    options = pa_csv.ReadOptions(use_threads=False)

    def once() -> int:
        table = pa_csv.read_csv(pa.BufferReader(csv_bytes), read_options=options)
        matrix = np.column_stack([table.column(f).to_numpy() for f in features]).astype(float)
        model.predict_proba(matrix)
        return table.num_rows

    times = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fitted with feature names; given a matrix
        rows = once()
        for _ in range(repeats):
            t0 = time.perf_counter()
            once()
            times.append(time.perf_counter() - t0)
    return rows / median(times)


def batch_frame(test: pd.DataFrame, rows: int) -> pd.DataFrame:
    """``rows`` rows: the test rows repeated."""
    repeat = -(-rows // len(test))
    return pd.concat([test] * repeat, ignore_index=True).head(rows)


def run(*, quick: bool = False, use_wrk: bool = True, rounds: int | None = None) -> list[Goal]:
    """Run the benchmark, print its tables, return the goals."""
    rounds = rounds or (1 if quick else 3)
    seconds = 0.3 if quick else 1.5
    sizes = (1, 10, 100) if quick else SIZES
    wrk = use_wrk and not quick and shutil.which("wrk") is not None
    tool = "wrk (1 thread)" if wrk else "Python load generator"
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(
            tempfile.TemporaryDirectory(prefix="bench-pred-", ignore_cleanup_errors=True)
        )
        folder = Path(tmp)
        config = make_project(folder / "project")
        project = config.parent
        raw = json.loads(config.read_text())
        no_capture = config.with_name("config-nocapture.json")
        no_capture.write_text(json.dumps({**raw, "capture": {**raw["capture"], "enabled": False}}))
        features = list(raw["features"])
        test_dir = project / raw["test_data_path"]
        test_bytes = (test_dir / "testdata.csv").read_bytes()
        test = pd.read_csv(io.BytesIO(test_bytes))
        model_file = project / raw["prod_deployment_path"] / "trainedmodel.pkl"
        model = pickle.loads(model_file.read_bytes())  # noqa: S301 - our own artifact

        five = shapes(test, "testdata.csv", test_bytes)
        batches: dict[int, dict[str, Shape]] = {}
        batch_bytes: dict[int, bytes] = {}
        for size in sizes:
            frame = batch_frame(test, size)
            data = frame.to_csv(index=False).encode()
            (test_dir / f"batch-{size}.csv").write_bytes(data)
            batches[size], batch_bytes[size] = shapes(frame, f"batch-{size}.csv", data), data

        specs = {name: (app, config) for name, app in SERVERS.items()}
        specs["ours-nocap"] = (SERVERS["ours-nocap"], no_capture)
        five_rows: dict[tuple[str, str], list[Load]] = {}
        five_ratio: dict[tuple[str, str], list[float]] = {}
        batch_loads: dict[tuple[str, int, str], list[Load]] = {}
        naive_ratio: dict[tuple[str, int], list[float]] = {}
        limits: dict[int, list[float]] = {}
        with gunicorn(specs) as ports:
            scripts: dict[str, Path | None] = {}

            def script(key: str, shape: Shape) -> Path | None:
                if key not in scripts:
                    scripts[key] = wrk_script(shape, folder, key) if wrk else None
                return scripts[key]

            every = [*five.values(), *(s for b in batches.values() for s in b.values())]
            for name, port in ports.items():  # warm up, and check every answer
                for shape in every if name != "ceiling" else []:
                    for _ in range(2 if quick else 5):
                        status, body = request(port, shape)
                        if status != 200:
                            raise RuntimeError(f"{name} {shape.name}: {status} {body}")
            ceiling = Shape("ceiling", "/prediction", five["JSON rows"].body, "application/json")
            for r in range(rounds):
                # 5 rows, every form: ours (capture on and off) and naive against the ceiling
                ceiling_load = drive(ports["ceiling"], ceiling, seconds, script("ceil", ceiling))
                five_rows.setdefault(("ceiling", "ceiling"), []).append(ceiling_load)
                for form, shape in five.items():
                    order = ["ours", "ours-nocap", "naive"]
                    order = order[r % 3 :] + order[: r % 3]
                    for name in order:
                        load = drive(ports[name], shape, seconds, script(f"five{form[0]}", shape))
                        five_rows.setdefault((form, name), []).append(load)
                        if ceiling_load.rps:
                            five_ratio.setdefault((form, name), []).append(
                                load.rps / ceiling_load.rps
                            )
                # batches: ours against naive, and the in-process limit
                for size in sizes:
                    limits.setdefault(size, []).append(
                        in_process_limit(model, features, batch_bytes[size], 3 if quick else 15)
                    )
                    for form, shape in batches[size].items():
                        loads = {}
                        for name in BATCH_SERVERS[r % 2 :] + BATCH_SERVERS[: r % 2]:
                            key = f"b{size}{form[0]}"
                            loads[name] = drive(ports[name], shape, seconds, script(key, shape))
                            batch_loads.setdefault((form, size, name), []).append(loads[name])
                        if loads["naive"].rps:
                            naive_ratio.setdefault((form, size), []).append(
                                loads["ours"].rps / loads["naive"].rps
                            )

    def med(loads: list[Load], what: str) -> float:
        return median([getattr(x, what) for x in loads])

    print(
        f"/prediction: gunicorn, 2 threaded workers each, loopback, {CONNECTIONS} connections,"
        f" {tool}; median of {rounds} interleaved round(s) of {seconds:g} s"
    )
    print("\n5 rows of the test CSV (corporation and exited included), by form:")
    header = (
        f"{'form':<14} {'server':<11} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'x ceiling':>10}"
    )
    print(header + "\n" + "-" * len(header))
    ceiling_loads = five_rows[("ceiling", "ceiling")]
    ceiling_p99 = med(ceiling_loads, "p99_ms")
    print(
        f"{'-':<14} {'ceiling':<11} {med(ceiling_loads, 'rps'):>8.0f}"
        f" {med(ceiling_loads, 'p50_ms'):>8.2f} {ceiling_p99:>8.2f} {1:>9.2f}x"
    )
    for form in FORMS:
        for name in ("ours", "ours-nocap", "naive"):
            loads = five_rows[(form, name)]
            print(
                f"{form:<14} {name:<11} {med(loads, 'rps'):>8.0f} {med(loads, 'p50_ms'):>8.2f}"
                f" {med(loads, 'p99_ms'):>8.2f} {median(five_ratio[(form, name)]):>9.2f}x"
            )
    print("\nbatches (the test rows repeated), capture on; rows/s:")
    header = (
        f"{'rows':>6} {'form':<14} {'ours':>10} {'naive':>10} {'x naive':>8}"
        f" {'in-process':>11} {'x limit':>8} {'ours p99':>9}"
    )
    print(header + "\n" + "-" * len(header))
    for size in sizes:
        limit = median(limits[size])
        for form in FORMS:
            ours = med(batch_loads[(form, size, "ours")], "rps") * size
            naive = med(batch_loads[(form, size, "naive")], "rps") * size
            print(
                f"{size:>6} {form:<14} {ours:>10.0f} {naive:>10.0f}"
                f" {median(naive_ratio.get((form, size), [float('nan')])):>7.1f}x"
                f" {limit:>11.0f} {ours / limit:>7.2f}x"
                f" {med(batch_loads[(form, size, 'ours')], 'p99_ms'):>8.2f}"
            )

    goals = []
    for form in FORMS:
        x = median(five_ratio[(form, "ours")])
        goals.append(Goal(f"/prediction 5 rows {form} >= 0.35x ceiling", f"{x:.2f}x", x >= 0.35))
    top = max(sizes)
    limit = median(limits[top])
    for form, need in (("CSV body", 0.5), ("dataset path", 0.5), ("JSON rows", 0.3)):
        x = med(batch_loads[(form, top, "ours")], "rps") * top / limit
        name = f"/prediction 10k rows {form} >= {need}x in-process limit"
        goals.append(Goal(name, f"{x:.2f}x at {top} rows", x >= need))
    for form in FORMS:
        worst = min(sizes, key=lambda s: median(naive_ratio.get((form, s), [0.0])))
        x = median(naive_ratio.get((form, worst), [0.0]))
        goals.append(
            Goal(f"/prediction {form} >= 3x naive, every size", f"{x:.1f}x at {worst}", x >= 3.0)
        )
    for form in FORMS:
        loads = batch_loads[(form, 10, "ours")]
        p99, errors = med(loads, "p99_ms"), sum(x.errors for x in loads)
        goals.append(
            Goal(
                f"/prediction 10 rows {form} p99 <= 2x ceiling p99",
                f"{p99:.2f} ms (ceiling {ceiling_p99:.2f})",
                p99 <= 2 * ceiling_p99 and errors == 0,
            )
        )
    return goals


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run")
    parser.add_argument("--no-wrk", action="store_true", help="use the Python load generator")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3)")
    args = parser.parse_args(argv)
    goals = run(quick=args.quick, use_wrk=not args.no_wrk, rounds=args.rounds)
    print_goals("goals:", goals)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
