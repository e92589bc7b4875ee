"""The dashboard's time series, read from the record store as plain rows.

Each function is one or two indexed queries; what grows with traffic (captured rows,
request latencies) is aggregated per hour or day in SQL, so the answer is at most one
row per hour (or day) and version over the capture retention period. Times are UTC.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Integer, case, cast, func, select

from monitoring.storage.latency import hourly_quantiles
from monitoring.storage.schema import captured_predictions, drift_reports, ingestions
from monitoring.storage.store import Store

MAX_DRIFT_RUNS = 60  # pipeline drift reports shown, the newest
MAX_HOURS = 24 * 31  # hours of traffic and latency shown, the newest


def _cutoff(hours: int) -> str:
    """``YYYY-MM-DDTHH`` of ``hours`` hours ago (UTC)."""
    return (datetime.now(UTC) - timedelta(hours=hours)).strftime("%Y-%m-%dT%H")


def drift_runs(store: Store, *, limit: int = MAX_DRIFT_RUNS) -> list[dict[str, Any]]:
    """The pipeline's drift reports, oldest first: ``created_at``, ``model_version``,
    ``drift_share``, ``share_threshold``, ``dataset_drift`` and per-column ``columns``
    (``statistic``, ``p_value``, ``method``, ``drifted``)."""
    query = (
        select(drift_reports)
        .where(drift_reports.c.source == "pipeline")
        .order_by(drift_reports.c.id.desc())
        .limit(limit)
    )
    with store.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    out = []
    for row in reversed(rows):
        report = json.loads(row["report"])
        out.append(
            {
                "created_at": row["created_at"],
                "model_version": row["model_version"],
                "drift_share": row["drift_share"],
                "share_threshold": report.get("share_threshold"),
                "dataset_drift": bool(row["dataset_drift"]),
                "columns": {
                    c["column"]: {
                        k: c.get(k) for k in ("statistic", "p_value", "method", "drifted")
                    }
                    for c in report.get("columns", [])
                },
            }
        )
    return out


def hourly_traffic(store: Store, *, hours: int = MAX_HOURS) -> list[dict[str, Any]]:
    """Captured prediction rows per hour: ``hour`` (``YYYY-MM-DDTHH``), ``rows``,
    ``positives`` and ``positive_rate``; oldest first."""
    table = captured_predictions
    hour = func.substr(table.c.captured_at, 1, 13)
    query = (
        select(hour, func.count(), func.sum(cast(table.c.prediction == 1, Integer)))
        .where(table.c.captured_at >= _cutoff(hours))
        .group_by(hour)
        .order_by(hour)
    )
    with store.engine.connect() as conn:
        found = conn.execute(query).all()
    return [
        {
            "hour": h,
            "rows": int(n),
            "positives": int(p or 0),
            "positive_rate": (int(p or 0) / int(n)) if n else None,
        }
        for h, n, p in found
    ]


def daily_live_f1(store: Store, *, min_rows: int = 1) -> list[dict[str, Any]]:
    """F1 of each model version on the labelled captured rows of each day (UTC):
    ``day``, ``last_at`` (its latest labelled row's capture time), ``model_version``,
    ``n_labelled``, ``f1`` (None without a positive);
    days with fewer than ``min_rows`` labelled rows are left out. Oldest first."""
    table = captured_predictions
    day = func.substr(table.c.captured_at, 1, 10)
    both = (table.c.label == 1) & (table.c.prediction == 1)
    query = (
        select(
            table.c.model_version,
            day,
            func.count(),
            func.sum(case((both, 1), else_=0)),
            func.sum(cast(table.c.prediction == 1, Integer)),
            func.sum(cast(table.c.label == 1, Integer)),
            func.max(table.c.captured_at),
        )
        .where(table.c.label.is_not(None))
        .group_by(table.c.model_version, day)
    )
    with store.engine.connect() as conn:
        found = conn.execute(query).all()
    out = []
    for version, d, n, tp, predicted, actual, last_at in found:
        if n < min_rows:
            continue
        denominator = int(predicted or 0) + int(actual or 0)
        f1 = 2 * int(tp or 0) / denominator if denominator else None
        out.append(
            {"day": d, "last_at": last_at, "model_version": version, "n_labelled": int(n), "f1": f1}
        )
    return sorted(out, key=lambda r: (r["day"], str(r["model_version"])))


def ingested_rows(store: Store, *, limit: int = 500) -> list[dict[str, Any]]:
    """Per ingestion batch, oldest first: ``ingested_at`` (its first file's), ``rows_read``,
    ``rows_kept``, ``files`` and ``rejected`` files."""
    table = ingestions
    query = select(table).order_by(table.c.id.desc()).limit(limit)
    with store.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    batches: dict[str, dict[str, Any]] = {}
    for row in reversed(rows):
        batch = batches.setdefault(
            row["batch_id"],
            {
                "ingested_at": row["ingested_at"],
                "rows_read": 0,
                "rows_kept": 0,
                "files": 0,
                "rejected": 0,
            },
        )
        batch["files"] += 1
        batch["rows_read"] += int(row["rows_read"] or 0)
        batch["rows_kept"] += int(row["rows_kept"] or 0)
        batch["rejected"] += row["status"] == "rejected"
    return list(batches.values())


def hourly_latency(store: Store, *, hours: int = MAX_HOURS) -> list[dict[str, Any]]:
    """p95 request latency per hour of ``/prediction`` and of all requests (``endpoint``
    ``"all"``): ``hour``, ``endpoint``, ``requests``, ``seconds``; oldest first."""
    rows = hourly_quantiles(store, since=_cutoff(hours), q=0.95)
    keep = {"all", "/prediction"}
    return [r for r in rows if r["endpoint"] in keep]


def group_by(rows: list[dict[str, Any]], key: str) -> dict[Any, list[dict[str, Any]]]:
    """``rows`` grouped by their ``key`` value, in order of first appearance."""
    groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[row[key]].append(row)
    return dict(groups)
