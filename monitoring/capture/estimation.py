"""Estimated performance of captured traffic before its labels arrive (CBPE).

The live model's captured rows are cut into chunks (``performance_estimation``): every
``chunk_rows`` rows in capture order, counted from the oldest row kept, or every
``chunk_period`` of ``captured_at`` (UTC). For each of the newest ``max_chunks`` chunks
the confusion counts, F1, precision and recall are estimated from the model's
probabilities with :func:`monitoring.model.estimation.estimate`, with a ±3 standard
error band; once ``POST /feedback`` labels arrive, the realised metrics of the
labelled rows are set beside the estimate on the same rows.

Only the rows of the newest chunks are read, so the cost is bounded by
``max_chunks`` times the chunk size, whatever the capture holds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, select

from monitoring.config import PerformanceEstimationSettings, Settings
from monitoring.drift.model_drift import baseline_f1
from monitoring.model.estimation import METHOD, SAMPLING_ERROR_RANGE, estimate
from monitoring.model.scoring import compute_metrics
from monitoring.storage.schema import captured_predictions
from monitoring.storage.store import Store

PERIODS = {"hour": "h", "day": "D", "week": "W-SUN", "month": "M"}  # pandas period codes

Rows = Sequence[tuple[Any, ...]]  # (captured_at, prediction, probability, label)


def _fetch(store: Store, query: Any) -> Rows:
    """Rows of ``query`` through the driver's cursor (SQLAlchemy's rows cost ~5x)."""
    with store.engine.connect() as conn:
        sql = query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
        with contextlib.closing(conn.connection.cursor()) as cursor:
            cursor.execute(str(sql))
            return list(cursor.fetchall())


def _of_version(version: str) -> Any:
    """The rows of ``version`` (counted on its index alone: no other column is read)."""
    return captured_predictions.c.model_version == version


def row_chunks(
    store: Store, version: str, options: PerformanceEstimationSettings
) -> list[dict[str, Any]]:
    """The newest ``max_chunks`` chunks of ``chunk_rows`` rows of ``version`` (the
    newest may be partial: ``complete`` false), oldest first."""
    table = captured_predictions
    size = int(options.chunk_rows)
    with store.engine.connect() as conn:
        total = int(conn.execute(select(func.count()).where(_of_version(version))).scalar_one())
    if total == 0:
        return []
    n_chunks = -(-total // size)
    first = max(0, n_chunks - int(options.max_chunks))
    wanted = total - first * size
    query = (
        select(table.c.captured_at, table.c.prediction, table.c.probability, table.c.label)
        .where(_of_version(version))
        .order_by(table.c.id.desc())
        .limit(wanted)
    )
    rows = list(reversed(_fetch(store, query)))
    chunks = []
    for index in range(first, n_chunks):
        part = rows[(index - first) * size : (index - first + 1) * size]
        if part:
            chunks.append({"key": str(index), "complete": len(part) == size, "rows": part})
    return chunks


def _period_start(now: datetime, period: str, back: int) -> pd.Timestamp:
    current = pd.Period(pd.Timestamp(now).tz_convert(None), freq=PERIODS[period])
    return (current - back).start_time.tz_localize(UTC)


def period_chunks(
    store: Store, version: str, options: PerformanceEstimationSettings, *, now: datetime
) -> list[dict[str, Any]]:
    """The chunks of ``version``'s rows by ``chunk_period`` (UTC), the newest
    ``max_chunks`` periods up to ``now`` (the current one is ``complete`` false)."""
    table = captured_predictions
    period = options.chunk_period
    since = _period_start(now, period, int(options.max_chunks) - 1)
    after = table.c.captured_at >= since.isoformat(timespec="microseconds")
    query = (
        select(table.c.captured_at, table.c.prediction, table.c.probability, table.c.label)
        .where(_of_version(version), after)
        .order_by(table.c.id)
    )
    rows = _fetch(store, query)
    if not rows:
        return []
    stamps = pd.to_datetime([r[0] for r in rows], utc=True, format="ISO8601")
    keys = stamps.tz_convert(None).to_period(PERIODS[period])
    current = pd.Period(pd.Timestamp(now).tz_convert(None), freq=PERIODS[period])
    groups: dict[Any, list[tuple[Any, ...]]] = {}
    for key, row in zip(keys, rows, strict=True):
        groups.setdefault(key, []).append(row)
    return [
        {"key": str(key), "complete": key < current, "rows": part}
        for key, part in sorted(groups.items())
    ]


def chunk_estimate(
    rows: Rows, reference: Mapping[str, Any] | None, *, min_labelled_rows: int
) -> dict[str, Any]:
    """The estimate of one chunk's rows and, once labelled, the realised metrics.

    ``realised`` (None until at least ``min_labelled_rows`` rows, and at least one, are
    labelled): the labelled rows' metrics, their estimate on the same rows
    (``estimated_f1``), the difference and whether the realised F1 is within that
    estimate's band.
    """
    # A row without a probability (none is captured so) cannot be estimated: left out.
    data = np.array(
        [(r[1], r[2], -1 if r[3] is None else r[3]) for r in rows if r[2] is not None],
        dtype=np.float64,
    ).reshape(-1, 3)
    predictions, probabilities, labels = data[:, 0].astype(int), data[:, 1], data[:, 2]
    estimated = estimate(probabilities, predictions, reference)
    labelled = labels >= 0
    n_labelled = int(labelled.sum())
    realised = None
    if n_labelled and n_labelled >= min_labelled_rows:
        metrics = compute_metrics(labels[labelled].astype(int), predictions[labelled])
        same = estimate(probabilities[labelled], predictions[labelled], reference)
        low, high = same["lower"]["f1"], same["upper"]["f1"]
        known = low is not None and high is not None
        realised = {
            "n_rows": n_labelled,
            **{name: metrics[name] for name in ("f1", "precision", "recall", "confusion_matrix")},
            "estimated_f1": same["f1"],
            "f1_error": None if same["f1"] is None else metrics["f1"] - same["f1"],
            "within_band": bool(low <= metrics["f1"] <= high) if known else None,
        }
    return {
        "start": str(rows[0][0]),
        "end": str(rows[-1][0]),
        **estimated,
        "n_labelled": n_labelled,
        "realised": realised,
    }


def estimated_performance(
    store: Store,
    settings: Settings,
    version: str,
    metadata: Mapping[str, Any],
    *,
    now: datetime | None = None,
    max_chunks: int | None = None,
) -> dict[str, Any]:
    """CBPE of the captured traffic of model ``version`` (its ``metadata``, as stored).

    Returns ``model_version``, ``method``, ``chunking``, ``calibration``,
    ``baseline_f1`` (the F1 the model is held to) and ``tolerance``, ``chunks`` (oldest
    first; each with ``key``, ``complete``, ``start``/``end``, ``n_rows``, ``counts``,
    ``f1``/``precision``/``recall``, ``sampling_error``, ``lower``/``upper``,
    ``below_baseline``, ``n_labelled``, ``realised``) and ``latest``: the newest chunk
    of at least ``min_chunk_rows`` rows (None if none), the one the policy acts on;
    ``drop``: whether its estimated F1 is below the baseline by more than the tolerance.
    ``max_chunks`` overrides the configured number of chunks read.
    """
    options = settings.performance_estimation
    if max_chunks is not None:
        options = PerformanceEstimationSettings(
            **{**options.__dict__, "max_chunks": int(max_chunks)}
        )
    reference = metadata.get("performance_estimation")
    if options.chunk_by == "rows":
        raw = row_chunks(store, version, options)
        chunking = {"by": "rows", "rows": options.chunk_rows}
    else:
        raw = period_chunks(store, version, options, now=now or datetime.now(UTC))
        chunking = {"by": "period", "period": options.chunk_period, "timezone": "UTC"}
    baseline, baseline_source = baseline_f1(metadata)
    tolerance = settings.thresholds.estimated_f1_tolerance
    minimum = int(settings.capture.min_labelled_rows)
    chunks = []
    for chunk in raw:
        entry = {"key": chunk["key"], "complete": chunk["complete"]}
        entry.update(chunk_estimate(chunk["rows"], reference, min_labelled_rows=minimum))
        f1 = entry["f1"]
        entry["below_baseline"] = (
            None if baseline is None or f1 is None else bool(f1 < baseline - tolerance)
        )
        chunks.append(entry)
    judged = [c for c in chunks if c["n_rows"] >= options.min_chunk_rows]
    latest = judged[-1] if judged else None
    calibration = (reference or {}).get("calibration") or {}
    return {
        "model_version": version,
        "method": METHOD,
        "confidence_band": f"estimate ± {SAMPLING_ERROR_RANGE} standard errors (sampling error)",
        "calibration": calibration.get("method", "none")
        if reference
        else "none (model trained before estimation was recorded: no band)",
        "chunking": {**chunking, "max_chunks": options.max_chunks},
        "min_chunk_rows": options.min_chunk_rows,
        "baseline_f1": baseline,
        "baseline_source": baseline_source,
        "tolerance": tolerance,
        "chunks": chunks,
        "latest": latest,
        "drop": bool(latest is not None and latest["below_baseline"]),
    }
