"""Each hand-written fast path against the library way it replaces, in the same run.

Run from the project root::

    .venv/bin/python benchmarks/bench_fastpaths.py           # full sizes, a few minutes
    .venv/bin/python benchmarks/bench_fastpaths.py --quick   # smoke sizes, seconds
    .venv/bin/python benchmarks/bench_fastpaths.py --json    # results as JSON on stdout

The team rule: a fast path that re-does what a library does stays only where it is
at least 2x faster on the same work and inputs (its own set-up, such as fitting a
profile, inside the timed region) and gives the library's answer. For every path
and size both ways run once and their answers are compared: ``identical``,
``close`` (floats within 1e-12 relative; KS p-values within 1e-3) or ``DIFFER``
(exit status 1). Then both are timed in interleaved rounds (the order alternating),
each sample calling a way enough times to last about 50 ms; the table gives the
median time per call of each and their ratio (library / ours). With ``--json``
the table goes to stderr and stdout holds only the JSON document.
"""

from __future__ import annotations

import argparse
import functools
import io
import itertools
import json
import logging
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy
import sklearn
from _common import ROOT, interleaved
from bench_drift import KS_OPTIONS, make_data
from flask import Flask, g
from prometheus_client import CollectorRegistry, Counter
from scipy import stats
from sklearn import metrics as skm
from sqlalchemy import create_engine, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from monitoring.capture import journal, ledger
from monitoring.capture.records import _inputs
from monitoring.config import load_settings
from monitoring.data.ingestion import write_csv
from monitoring.data.payloads import frame_from_records
from monitoring.data.profile import quartiles
from monitoring.data.rowkeys import SeenRows
from monitoring.drift import ReferenceProfile, detect_data_drift
from monitoring.drift.statistics import _sorted_quantiles
from monitoring.model.artifact import Artifact, build_estimator, round6
from monitoring.model.scoring import compute_metrics
from monitoring.model.training import training_matrix
from monitoring.storage.files import read_table
from monitoring.storage.schema import captured_predictions, metadata
from monitoring.web.logs import JsonLogHandler, _utc_time, new_request_id, sole_json_handler
from monitoring.web.metrics import series

FEATURES = ["lastmonth_activity", "lastyear_activity", "number_of_employees"]
REQUIRED_RATIO = 2.0


def equal(a: Any, b: Any) -> bool:
    """Exactly the same answer (arrays element by element, bit for bit)."""
    return bool(np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b)


@dataclass(frozen=True)
class Case:
    """One fast path at one input size: both ways and how to compare their answers."""

    name: str
    size: str
    ours: Callable[[], Any]
    library: Callable[[], Any]
    same: Callable[[Any, Any], bool] = equal
    close: Callable[[Any, Any], bool] | None = None  # the same up to rounding
    check: Callable[[], bool] | None = None  # instead of same(ours(), library())


def label(n: int) -> str:
    """``10``, ``10k``, ``1M``."""
    for size, suffix in ((1_000_000, "M"), (1_000, "k")):
        if n >= size and n % size == 0:
            return f"{n // size}{suffix}"
    return f"{n:,}"


def payload(rows: int, seed: int) -> list[dict[str, Any]]:
    """JSON-decoded ``/prediction`` rows: the features as integers, as clients send them."""
    rng = np.random.default_rng(seed)
    high = (1100, 4000, 110)  # about the practice data's ranges
    matrix = np.column_stack([rng.integers(0, h, rows) for h in high]).tolist()
    return json.loads(json.dumps([dict(zip(FEATURES, r, strict=True)) for r in matrix]))


def table(rows: int, seed: int) -> pd.DataFrame:
    """Ingested-data rows (string id, a float feature with 1% missing, integers),
    about 8% of them repeating an earlier row."""
    rng = np.random.default_rng(seed)
    unique = int(rows * 0.92)
    activity = np.round(rng.lognormal(4.0, 1.2, unique), 1)
    activity[rng.random(unique) < 0.01] = np.nan
    base = pd.DataFrame(
        {
            "corporation": np.char.add("c", rng.integers(0, 10**7, unique).astype(str)),
            "lastmonth_activity": activity,
            "lastyear_activity": rng.integers(0, 40_000, unique),
            "number_of_employees": rng.integers(1, 500, unique),
            "exited": rng.integers(0, 2, unique),
        }
    )
    frame = pd.concat([base, base.iloc[rng.integers(0, unique, rows - unique)]])
    return frame.iloc[rng.permutation(rows)].reset_index(drop=True)


@functools.cache
def trained() -> Artifact:
    """The shipped config's model trained on ``data/practicedata``, as an artifact."""
    settings = load_settings(env={})
    data = pd.concat(read_table(p) for p in sorted(settings.input_folder_path.glob("*.csv")))
    x, y, _ = training_matrix(data, settings, input_name="practicedata")
    estimator = build_estimator(settings.model).fit(x, y)
    return Artifact(estimator, {"version": "bench", "features": FEATURES}, ROOT)


def proba(rows: int) -> Iterator[Case]:
    """1. Logistic regression from coef_/intercept_ vs predict_proba(DataFrame)."""
    artifact = trained()
    frame = frame_from_records(payload(rows, rows), FEATURES)  # what a request builds

    def ours() -> np.ndarray:  # with the validation predict_proba does too
        return artifact.positive_proba(artifact.feature_matrix(frame, input_name="body"))

    def close(a: np.ndarray, b: np.ndarray) -> bool:
        return bool(np.allclose(a, b, rtol=1e-12, atol=0.0))

    library = lambda: artifact.estimator.predict_proba(frame)[:, 1]  # noqa: E731
    yield Case("Artifact.positive_proba", f"{label(rows)} rows", ours, library, close=close)


def metrics(rows: int) -> Iterator[Case]:
    """2. compute_metrics (bincount) vs scikit-learn's five metric functions."""
    rng = np.random.default_rng(rows)
    t = (rng.random(rows) < 0.3).astype(int)
    p = np.where(rng.random(rows) < 0.8, t, 1 - t)

    def ours() -> list[Any]:
        result = compute_metrics(t, p)
        return [result[k] for k in ("f1", "precision", "recall", "accuracy", "confusion_matrix")]

    def library() -> list[Any]:
        labels = [0, 1]  # as compute_metrics' own fallback calls them
        return [
            float(skm.f1_score(t, p, labels=labels, zero_division=0)),
            float(skm.precision_score(t, p, labels=labels, zero_division=0)),
            float(skm.recall_score(t, p, labels=labels, zero_division=0)),
            float(skm.accuracy_score(t, p)),
            skm.confusion_matrix(t, p, labels=labels).tolist(),
        ]

    yield Case("scoring.compute_metrics", f"{label(rows)} rows", ours, library)


def quartile(rows: int) -> Iterator[Case]:
    """3. quartiles (bincount for integers) vs np.quantile of the values as floats."""
    rng = np.random.default_rng(3)
    ints = rng.integers(0, 40_000, rows)
    ints = ints.astype(np.min_scalar_type(int(ints.max())))  # as ProfileParts keeps them
    for kind, values in (("ints 0-40k", ints), ("floats", rng.lognormal(4.0, 1.2, rows))):

        def library(values: np.ndarray = values) -> list[float]:
            return [float(q) for q in np.quantile(values.astype(float), [0.25, 0.5, 0.75])]

        size = f"{label(rows)} {kind}"
        yield Case("profile.quartiles", size, lambda v=values: quartiles(v), library)


def sorted_quantile(rows: int) -> Iterator[Case]:
    """12. the PSI bin edges of a sorted column: _sorted_quantiles vs np.quantile."""
    rng = np.random.default_rng(12)
    q = np.linspace(0.0, 1.0, 11)[1:-1]  # the interior edges of 10 bins
    for kind, values in (
        ("floats", rng.lognormal(4.0, 1.2, rows)),
        ("ints 0-40k", rng.integers(0, 40_000, rows).astype(np.float64)),
    ):
        values.sort()

        def ours(v: np.ndarray = values) -> np.ndarray:
            return _sorted_quantiles(v, q)

        def library(v: np.ndarray = values) -> np.ndarray:
            return np.quantile(v, q)

        yield Case("statistics._sorted_quantiles", f"{label(rows)} {kind}", ours, library)


def records(rows: int) -> Iterator[Case]:
    """4. frame_from_records (_plain_matrix) vs DataFrame.from_records + to_numpy."""
    body = payload(rows, rows + 1)
    ours = lambda: frame_from_records(body, FEATURES).to_numpy(np.float64)  # noqa: E731
    library = lambda: pd.DataFrame.from_records(body)[FEATURES].to_numpy(np.float64)  # noqa: E731
    yield Case("payloads.frame_from_records", f"{label(rows)} rows", ours, library)


def csv(rows: int) -> Iterator[Case]:
    """5. write_csv (Arrow) vs DataFrame.to_csv: the same bytes."""
    frame = table(rows, 5)

    def ours() -> bytes:
        buffer = io.BytesIO()
        write_csv(frame, buffer)
        return buffer.getvalue()

    def library() -> bytes:
        buffer = io.BytesIO()
        frame.to_csv(buffer, index=False)
        return buffer.getvalue()

    yield Case("ingestion.write_csv", f"{label(rows)} x 5 cols", ours, library)


def dedup(piece: int) -> Iterator[Case]:
    """6. SeenRows().admit per piece vs concat + duplicated(keep="first")."""
    frame = table(10 * piece, 6)
    pieces = [frame.iloc[i : i + piece] for i in range(0, len(frame), piece)]

    def ours() -> np.ndarray:
        seen = SeenRows()
        return np.concatenate([seen.admit(p) for p in pieces])

    def library() -> np.ndarray:
        return ~pd.concat(pieces).duplicated(keep="first").to_numpy()

    yield Case("rowkeys.SeenRows.admit", f"10 x {label(piece)} rows", ours, library)


class _LastLine(io.StringIO):
    """An in-memory stream that keeps only the last line written."""

    last = ""

    def write(self, text: str) -> int:
        self.last = text
        return len(text)


def access_log(lines: int) -> Iterator[Case]:
    """7. The access line: write_fields via sole_json_handler vs Logger.info."""
    stream = _LastLine()
    logger = logging.getLogger("monitoring.bench.request")
    logger.handlers[:] = [JsonLogHandler(stream)]
    logger.propagate, logger.level = False, logging.INFO
    method, path, status, duration_ms = "POST", "/prediction", 200, 1.234
    with Flask("bench").test_request_context(path, method=method):  # as in a request
        g.request_id = rid = new_request_id()

        def ours() -> str:  # access_log's way
            handler = sole_json_handler(logger, logging.INFO)
            assert handler is not None
            handler.write_fields(
                {
                    "time": _utc_time(time.time()),
                    "level": "INFO",
                    "logger": logger.name,
                    "message": f"{method} {path} {status}",
                    "request_id": rid,
                    "method": method,
                    "path": path,
                    "status": status,
                    "duration_ms": duration_ms,
                }
            )
            return stream.last

        def library() -> str:
            extra = {"method": method, "path": path, "status": status, "duration_ms": duration_ms}
            logger.info("%s %s %s", method, path, str(status), extra=extra)
            return stream.last

        def same(a: str, b: str) -> bool:  # modulo the time, the first field
            return a.startswith('{"time": ') and a.split('", ', 1)[1] == b.split('", ', 1)[1]

        yield Case("logs.JsonLogHandler.write_fields", f"{lines} line", ours, library, same)


def request_id(ids: int) -> Iterator[Case]:
    """8. new_request_id (process prefix + counter) vs uuid4().hex: the same layout."""

    def check() -> bool:  # uuid4 hex (version 4, RFC 4122 variant), never repeated
        made = [new_request_id() for _ in range(10_000)]
        parsed = [uuid.UUID(hex=rid) for rid in made]
        layout = all(p.hex == r and p.version == 4 for p, r in zip(parsed, made, strict=True))
        return (
            layout
            and all(p.variant == uuid.RFC_4122 for p in parsed)
            and len(set(made)) == len(made)
        )

    library = lambda: uuid.uuid4().hex  # noqa: E731
    yield Case("logs.new_request_id", f"{ids} id", new_request_id, library, check=check)


def rounding(rows: int) -> Iterator[Case]:
    """8b. round6 (vectorised) vs round(float(p), 6) per probability: identical floats."""
    values = np.random.default_rng(rows).random(rows)
    ours = lambda: round6(values).tolist()  # noqa: E731
    library = lambda: [round(float(p), 6) for p in values]  # noqa: E731
    yield Case("artifact.round6", f"{label(rows)} rows", ours, library)


def metric_series(lookups: int) -> Iterator[Case]:
    """9. series(metric, *labels) vs metric.labels(*labels): the same child."""
    registry = CollectorRegistry()
    counter = Counter("bench_requests", "", ["endpoint", "method", "status"], registry=registry)
    labels = ("/prediction", "POST", "200")
    ways = (lambda: series(counter, *labels), lambda: counter.labels(*labels))
    yield Case("metrics.series", f"{lookups} lookup", *ways, same=lambda a, b: a is b)


def journal_json(rows: int) -> Iterator[Case]:
    """10. row_json (format template) vs json.dumps of each row's dict."""
    columns, inputs = _inputs(frame_from_records(payload(rows, rows + 2), FEATURES), 1 << 16)

    def library() -> list[str]:
        dicts = (dict(zip(columns, r, strict=True)) for r in inputs)
        return [json.dumps(d, separators=(",", ":")) for d in dicts]  # the journal's format

    ours = lambda: journal.row_json(columns, inputs)  # noqa: E731
    yield Case("journal.row_json", f"{label(rows)} rows", ours, library)


def drift(shape: tuple[int, int]) -> Iterator[Case]:
    """11. detect_data_drift, reference profile fitted in the timed region, vs ks_2samp."""
    reference, current = make_data(*shape, seed=11)

    def ours() -> list[tuple[float, float]]:
        profile = ReferenceProfile().fit(reference)
        report = detect_data_drift(profile, current, options=KS_OPTIONS)
        return [(c["ks_statistic"], c["ks_p_value"]) for c in report["columns"]]

    def library() -> list[tuple[float, float]]:
        pairs = ((reference[c].to_numpy(), current[c].to_numpy()) for c in reference)
        return [(float(t.statistic), float(t.pvalue)) for t in (stats.ks_2samp(*p) for p in pairs)]

    def close(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> bool:
        pairs = zip(a, b, strict=True)  # equal statistics, p-values within 1e-3
        return all(d == e and abs(p - q) <= 1e-3 for (d, p), (e, q) in pairs)

    size = f"{label(shape[0])} x {shape[1]} cols"
    yield Case("drift.detect_data_drift + fit", size, ours, library, close=close)


def capture_insert(rows: int) -> Iterator[Case]:
    """12. ledger._insert_rows on SQLite (the driver's executemany of the tuples) vs
    SQLAlchemy's executemany of a dict per row: the same rows stored."""
    engine = create_engine("sqlite://")  # in memory: the inserts' own cost
    metadata.create_all(engine)
    ids = itertools.count(1, rows)

    def batch() -> list[tuple[Any, ...]]:
        first = next(ids)
        return [
            (first + i, f"r{first}", i, "2026-12-02T10:00:00.000000+00:00", "v1",
             '{"corporation":"acme","lastmonth_activity":12.5}', i % 2, 0.25)
            for i in range(rows)
        ]  # fmt: skip

    def stored(values: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        with engine.connect() as conn:
            query = select(*(captured_predictions.c[n] for n in ledger._ROW_COLUMNS))
            ranged = query.where(captured_predictions.c.id.between(values[0][0], values[-1][0]))
            return [tuple(row) for row in conn.execute(ranged.order_by("id"))]

    def ours() -> list[tuple[Any, ...]]:
        values = batch()
        with engine.begin() as conn:
            ledger._insert_rows(conn, values)
        return values

    def library() -> list[tuple[Any, ...]]:
        values = batch()
        keyed = [dict(zip(ledger._ROW_COLUMNS, v, strict=True)) for v in values]
        with engine.begin() as conn:
            conn.execute(sqlite_insert(captured_predictions).on_conflict_do_nothing(), keyed)
        return values

    def check() -> bool:  # each way's rows read back as they were given
        return all(stored(values) == values for values in (ours(), library()))

    yield Case("ledger._insert_rows (SQLite)", f"{label(rows)} rows", ours, library, check=check)


# (cases, full-run inputs, quick-run inputs)
PLAN: tuple[tuple[Callable[[Any], Iterator[Case]], tuple[Any, ...], tuple[Any, ...]], ...] = (
    (proba, (10, 10_000), (10, 1_000)),
    (metrics, (100, 100_000), (100, 2_000)),
    (quartile, (1_000_000,), (20_000,)),
    (sorted_quantile, (1_000_000,), (20_000,)),
    (records, (10, 10_000), (10, 1_000)),
    (csv, (1_000_000,), (20_000,)),
    (dedup, (100_000,), (2_000,)),
    (access_log, (1,), (1,)),
    (request_id, (1,), (1,)),
    (rounding, (10, 10_000), (10, 1_000)),
    (metric_series, (1,), (1,)),
    (journal_json, (10, 10_000), (10, 1_000)),
    (drift, ((100_000, 10), (1_000_000, 5)), ((20_000, 3),)),
    (capture_insert, (10, 10_000), (10, 1_000)),
)


def measure(case: Case, rounds: int, target: float) -> dict[str, Any]:
    """Compare the answers, then time both ways in interleaved rounds."""
    if case.check is not None:
        answers = "identical" if case.check() else "DIFFER"
    else:
        a, b = case.ours(), case.library()  # also the warm-up
        close = case.close is not None and case.close(a, b)
        answers = "identical" if case.same(a, b) else "close" if close else "DIFFER"
    ours_s, library_s = interleaved((case.ours, case.library), rounds, target)
    same, ratio = answers != "DIFFER", library_s / ours_s
    return {
        "name": case.name,
        "size": case.size,
        "ours_s": ours_s,
        "library_s": library_s,
        "ratio": ratio,
        "keep": same and ratio >= REQUIRED_RATIO,
        "same": same,
        "answers": answers,
    }


def seconds(value: float) -> str:
    """A duration in us, ms or s, 3 significant digits."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-6:.3g} us"


def print_table(results: Sequence[dict[str, Any]], out: Any) -> None:
    """One line per fast path and input size."""
    head = f"{'fast path':<31} {'input':<16} {'ours':>9} {'library':>9} {'ratio':>7}  verdict"
    print(head + "    answers", "-" * (len(head) + 11), sep="\n", file=out)
    for r in results:
        verdict = f"{'>=' if r['ratio'] >= REQUIRED_RATIO else '< '} 2x"
        print(
            f"{r['name']:<31} {r['size']:<16} {seconds(r['ours_s']):>9}"
            f" {seconds(r['library_s']):>9} {r['ratio']:>6.2f}x  {verdict:<9} {r['answers']}",
            file=out,
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run every case; return 1 if a fast path's answer differs from the library's."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke sizes, seconds")
    parser.add_argument("--json", action="store_true", help="JSON results on stdout")
    parser.add_argument("--rounds", type=int, help="timed rounds per way (default 7, quick 3)")
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 7)
    out = sys.stderr if args.json else sys.stdout
    started = time.perf_counter()
    results = []
    for build, full, quick in PLAN:
        for case in (c for size in (quick if args.quick else full) for c in build(size)):
            results.append(measure(case, rounds, 0.002 if args.quick else 0.05))
            print(f"  measured {case.name}, {case.size}", file=sys.stderr, flush=True)
    total = time.perf_counter() - started
    print(f"\nmedian per call of {rounds} interleaved rounds; ratio = library / ours", file=out)
    print_table(results, out)
    versions = ", ".join(f"{m.__name__} {m.__version__}" for m in (np, pd, sklearn, scipy))
    print(f"{total:.0f} s in all; {versions}", file=out)
    all_same = all(r["same"] for r in results)
    if args.json:
        doc = {"quick": args.quick, "rounds": rounds, "seconds": total, "all_same": all_same}
        print(json.dumps({**doc, "results": results}, indent=2))
    return 0 if all_same else 1


if __name__ == "__main__":
    raise SystemExit(main())
