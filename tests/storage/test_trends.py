"""The dashboard's time series in the store: hourly latency counts and the trend queries."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert

from monitoring.reports import trends
from monitoring.storage.latency import (
    LATENCY_BUCKETS,
    add_latency_counts,
    hourly_quantiles,
    latency_bucket,
    quantile,
)
from monitoring.storage.schema import captured_predictions
from monitoring.storage.store import Store


def test_latency_buckets_are_1_2x_apart_from_a_tenth_of_a_millisecond() -> None:
    finite = LATENCY_BUCKETS[:-1]
    assert finite[0] == 1e-4 and finite[-1] >= 60 and LATENCY_BUCKETS[-1] == math.inf
    assert all(b / a == pytest.approx(1.2) for a, b in zip(finite, finite[1:], strict=False))
    assert [latency_bucket(s) for s in (0.0, 1e-4, 1.1e-4, 0.05, 1e6)] == [0, 0, 1, 35, 74]
    assert LATENCY_BUCKETS[34] < 0.05 <= LATENCY_BUCKETS[35]


def test_quantile_interpolates_within_its_bucket() -> None:
    low, high = LATENCY_BUCKETS[9], LATENCY_BUCKETS[10]
    # 95th of 100: the 45th of the 50 in bucket 10.
    assert quantile({0: 50, 10: 50}, 0.95) == pytest.approx(low + (high - low) * 45 / 50)
    assert quantile({0: 100}, 0.5) == pytest.approx(5e-5)
    assert quantile({74: 3}, 0.95) == LATENCY_BUCKETS[73]  # the open bucket: its lower bound
    assert quantile({}, 0.95) is None


def test_latency_counts_add_up_across_writers_and_old_hours_go(store: Store) -> None:
    add_latency_counts(store, {("2026-12-01T10", "/prediction", 3): 5})
    add_latency_counts(
        store, {("2026-12-01T10", "/prediction", 3): 2, ("2026-12-02T09", "/health", 0): 4}
    )
    rows = hourly_quantiles(store, since="2026-12-01T00", q=1.0)
    assert [(r["hour"], r["endpoint"], r["requests"]) for r in rows] == [
        ("2026-12-01T10", "/prediction", 7),
        ("2026-12-01T10", "all", 7),
        ("2026-12-02T09", "/health", 4),
        ("2026-12-02T09", "all", 4),
    ]
    assert rows[0]["seconds"] == pytest.approx(LATENCY_BUCKETS[3])
    add_latency_counts(store, {}, delete_before="2026-12-02T00")
    assert [r["hour"] for r in hourly_quantiles(store, since="2026-01-01T00")] == [
        "2026-12-02T09",
        "2026-12-02T09",
    ]


def _capture(store: Store, rows: list[dict[str, Any]]) -> None:
    base = {"request_id": "r", "row_index": 0, "inputs": "{}", "probability": 0.5}
    with store.engine.begin() as conn:
        conn.execute(
            insert(captured_predictions),
            [{**base, "id": i + 1, **row} for i, row in enumerate(rows)],
        )


def test_traffic_per_hour_and_live_f1_per_day(store: Store) -> None:
    store.ping()  # the schema exists
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    h1, h2 = now - timedelta(hours=3), now - timedelta(hours=1)
    old = now - timedelta(hours=trends.MAX_HOURS + 2)

    def at(hour: datetime, minute: int) -> str:
        return (hour + timedelta(minutes=minute)).isoformat(timespec="microseconds")

    # v1 in h1: TP, TP, FP, FN, TN and one unlabelled positive; v2 in h2: two rows, one TP.
    rows = [
        {"captured_at": at(h1, 1), "model_version": "v1", "prediction": 1, "label": 1},
        {"captured_at": at(h1, 2), "model_version": "v1", "prediction": 1, "label": 1},
        {"captured_at": at(h1, 3), "model_version": "v1", "prediction": 1, "label": 0},
        {"captured_at": at(h1, 4), "model_version": "v1", "prediction": 0, "label": 1},
        {"captured_at": at(h1, 5), "model_version": "v1", "prediction": 0, "label": 0},
        {"captured_at": at(h1, 6), "model_version": "v1", "prediction": 1, "label": None},
        {"captured_at": at(h2, 7), "model_version": "v2", "prediction": 1, "label": 1},
        {"captured_at": at(h2, 8), "model_version": "v2", "prediction": 0, "label": None},
        {"captured_at": at(old, 0), "model_version": "v1", "prediction": 1, "label": None},
    ]
    _capture(store, rows)
    assert trends.hourly_traffic(store) == [
        {"hour": h1.strftime("%Y-%m-%dT%H"), "rows": 6, "positives": 4, "positive_rate": 4 / 6},
        {"hour": h2.strftime("%Y-%m-%dT%H"), "rows": 2, "positives": 1, "positive_rate": 0.5},
    ]
    daily = {(r["model_version"], r["day"]): r for r in trends.daily_live_f1(store)}
    v1 = daily[("v1", h1.strftime("%Y-%m-%d"))]
    # F1 = 2 TP / (predicted + actual positives) = 4 / (3 + 3)
    assert (v1["n_labelled"], v1["f1"], v1["last_at"]) == (5, pytest.approx(4 / 6), at(h1, 5))
    assert daily[("v2", h2.strftime("%Y-%m-%d"))]["f1"] == 1.0
    assert [r["model_version"] for r in trends.daily_live_f1(store, min_rows=2)] == ["v1"]


def test_drift_runs_and_ingested_batches(store: Store) -> None:
    report = {
        "dataset_drift": True,
        "drift_share": 0.5,
        "share_threshold": 0.5,
        "columns": [
            {"column": "a", "statistic": 0.3, "p_value": 0.01, "method": "ks", "drifted": True},
            {"column": "b", "statistic": 0.1, "p_value": 0.6, "method": "ks", "drifted": False},
        ],
    }
    store.add_drift_report(report, model_version="v1", source="pipeline")
    store.add_drift_report({**report, "dataset_drift": False}, model_version="v1", source="request")
    [run] = trends.drift_runs(store)
    assert {k: v for k, v in run.items() if k != "created_at"} == {
        "model_version": "v1",
        "drift_share": 0.5,
        "share_threshold": 0.5,
        "dataset_drift": True,
        "columns": {
            "a": {"statistic": 0.3, "p_value": 0.01, "method": "ks", "drifted": True},
            "b": {"statistic": 0.1, "p_value": 0.6, "method": "ks", "drifted": False},
        },
    }
    file = {"source_path": "x", "sha256": None, "duplicates_removed": 0, "message": None}
    store.add_ingestions(
        [
            {
                **file,
                "batch_id": "b1",
                "ingested_at": "2026-12-01T10:00:00+00:00",
                "file_name": "one.csv",
                "status": "accepted",
                "rows_read": 10,
                "rows_kept": 9,
            },
            {
                **file,
                "batch_id": "b1",
                "ingested_at": "2026-12-01T10:00:01+00:00",
                "file_name": "two.csv",
                "status": "rejected",
                "rows_read": 5,
                "rows_kept": 0,
            },
        ]
    )
    store.add_ingestions(
        [
            {
                **file,
                "batch_id": "b2",
                "ingested_at": "2026-12-02T10:00:00+00:00",
                "file_name": "three.csv",
                "status": "accepted",
                "rows_read": 7,
                "rows_kept": 7,
            }
        ]
    )
    assert trends.ingested_rows(store) == [
        {
            "ingested_at": "2026-12-01T10:00:00+00:00",
            "rows_read": 15,
            "rows_kept": 9,
            "files": 2,
            "rejected": 1,
        },
        {
            "ingested_at": "2026-12-02T10:00:00+00:00",
            "rows_read": 7,
            "rows_kept": 7,
            "files": 1,
            "rejected": 0,
        },
    ]
    assert json.loads(json.dumps(run))  # plain data, ready for the page
