"""Delivery metrics from a fixed sequence of store records with fixed timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, update

from monitoring.diagnostics.delivery import as_time, delivery_metrics
from monitoring.model.deployment import rollback
from monitoring.pipeline import run_full_process
from monitoring.storage.schema import deployments, ingestions, model_versions, runs
from monitoring.storage.store import Store

BASE = datetime(2026, 1, 1, tzinfo=UTC)
HOUR = 3600.0


def at(hours: float, base: datetime = BASE) -> str:
    return (base + timedelta(hours=hours)).isoformat(timespec="microseconds")


def record_history(store: Store, base: datetime = BASE) -> None:
    """The story, in hours after ``base``:

    ingestion batches (every file of the input folder each time):
      0  d1                 48  d1 d2          72  d9 rejected       96  d1 d2 d3
    models trained: v1 at 1 (on d1), v2 at 50 (d1 d2), v3 at 102 and v4 at 120 (d1 d2 d3)
    live changes:
      2    deploy v1           new data d1, arrived at 0        lead  2 h
      51   deploy v2           new data d2, arrived at 48       lead  3 h
      108  deploy v3           new data d3, arrived at 96       lead 12 h
      112  rollback to v2      v3 failed; restored in 4 h
      121  deploy v4           against v2, d3 is new: arrived 96 lead 25 h
    runs: failed at 24 (22 h after v1: v1 failed), failed at 77 (26 h after v2: not
    within 24 h), completed at 110, failed at 125 (4 h after v4: v4 failed).
    """
    files = {"d1": "a1", "d2": "a2", "d3": "a3", "d9": "a9"}
    batches = [(0, ["d1"], "accepted"), (48, ["d1", "d2"], "accepted")]
    batches += [(72, ["d9"], "rejected"), (96, ["d1", "d2", "d3"], "accepted")]
    trained = {"v1": 1, "v2": 50, "v3": 102, "v4": 120}
    changes = [
        (2, "v1", "deploy", None),
        (51, "v2", "deploy", "v1"),
        (108, "v3", "deploy", "v2"),
        (112, "v2", "rollback", "v3"),
        (121, "v4", "deploy", "v2"),
    ]
    finished = [(24, "failed"), (77, "failed"), (110, "completed"), (125, "failed")]
    for version, hours in trained.items():
        store.add_model_version(
            version,
            trained_at=at(hours, base),
            metadata={},
            sha256="0" * 64,
            artifact=b"",
            reference=b"",
        )
    with store.engine.begin() as conn:
        for i, (hours, names, status) in enumerate(batches):
            conn.execute(
                insert(ingestions),
                [
                    {
                        "batch_id": f"b{i}",
                        "ingested_at": at(hours, base),
                        "file_name": f"{name}.csv",
                        "source_path": f"data/{name}.csv",
                        "status": status,
                        "sha256": files[name],
                    }
                    for name in names
                ],
            )
        for hours, version, action, previous in changes:
            conn.execute(
                insert(deployments),
                {
                    "deployed_at": at(hours, base),
                    "model_version": version,
                    "action": action,
                    "previous_version": previous,
                },
            )
            if action == "deploy":
                conn.execute(
                    update(model_versions)
                    .where(model_versions.c.version == version)
                    .values(deployed_at=at(hours, base))
                )
        for i, (hours, status) in enumerate(finished):
            conn.execute(
                insert(runs),
                {
                    "id": f"run{i}",
                    "started_at": at(hours - 0.5, base),
                    "finished_at": at(hours, base),
                    "status": status,
                    "outcome": status,
                },
            )


def test_the_four_metrics_over_a_fixed_history(make_settings: Any, store: Store) -> None:
    record_history(store)
    settings = make_settings(delivery={"window_days": 28, "failure_window_hours": 24})
    found = delivery_metrics(store, settings, now=BASE + timedelta(days=7))
    assert found["deployments"] == 4 and found["rollbacks"] == 1
    assert found["deployment_frequency_per_week"] == 4 / 4  # 4 in 28 days
    lead = [2 * HOUR, 3 * HOUR, 12 * HOUR, 25 * HOUR]
    assert found["lead_time_seconds"] == {
        "n": 4,
        "median": (3 + 12) / 2 * HOUR,
        "mean": sum(lead) / 4,
    }
    assert [d["lead_time_seconds"] for d in found["details"]] == lead
    assert [d["failed"] for d in found["details"]] == [True, False, True, True]
    assert [d["failed_run"] for d in found["details"]] == ["run0", None, None, "run3"]
    assert found["change_failure_rate"] == 3 / 4
    assert found["failed_deployments"] == 3
    assert found["time_to_restore_seconds"] == {"n": 1, "median": 4 * HOUR, "mean": 4 * HOUR}
    assert found["details"][2]["rolled_back_at"] == at(112)
    assert (found["since"], found["until"]) == (
        "2025-12-11T00:00:00+00:00",
        "2026-01-08T00:00:00+00:00",
    )


def test_a_short_window_and_a_wider_failure_window(make_settings: Any, store: Store) -> None:
    record_history(store)
    # Since hour 120: only v4's deployment (no rollback inside the window).
    settings = make_settings(delivery={"window_days": 2, "failure_window_hours": 24})
    found = delivery_metrics(store, settings, now=BASE + timedelta(hours=168))
    assert (found["deployments"], found["rollbacks"]) == (1, 0)
    assert found["deployment_frequency_per_week"] == 1 / (2 / 7)
    assert found["lead_time_seconds"] == {"n": 1, "median": 25 * HOUR, "mean": 25 * HOUR}
    assert found["change_failure_rate"] == 1.0
    assert found["time_to_restore_seconds"] == {"n": 0, "median": None, "mean": None}
    # A 27-hour failure window: the run failed at 77 now counts against v2 (26 h).
    settings = make_settings(delivery={"window_days": 28, "failure_window_hours": 27})
    found = delivery_metrics(store, settings, now=BASE + timedelta(days=7))
    assert [d["failed"] for d in found["details"]] == [True, True, True, True]
    # No failure window: only the rollback counts.
    settings = make_settings(delivery={"window_days": 28, "failure_window_hours": 0})
    assert delivery_metrics(store, settings, now=BASE + timedelta(days=7))[
        "change_failure_rate"
    ] == pytest.approx(1 / 4)


def test_no_deployment_gives_no_figures(settings: Any, store: Store) -> None:
    found = delivery_metrics(store, settings, now=BASE)
    assert found["deployments"] == 0
    assert found["deployment_frequency_per_week"] == 0.0
    assert found["change_failure_rate"] is None
    assert found["lead_time_seconds"] == {"n": 0, "median": None, "mean": None}


def _gauges(text: str) -> dict[str, float]:
    return {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line.startswith("monitoring_delivery_")
    }


def test_metrics_exposes_the_delivery_gauges(client: Any, store: Store) -> None:
    assert _gauges(client.get("/metrics").get_data(as_text=True)) == {
        "monitoring_delivery_deployments": 0.0,
        "monitoring_delivery_deployments_per_week": 0.0,
    }
    record_history(store, base=datetime.now(UTC) - timedelta(days=7))
    assert _gauges(client.get("/metrics").get_data(as_text=True)) == {
        "monitoring_delivery_deployments": 4.0,
        "monitoring_delivery_deployments_per_week": 1.0,
        "monitoring_delivery_lead_time_seconds": 7.5 * HOUR,
        "monitoring_delivery_change_failure_rate": 0.75,
        "monitoring_delivery_time_to_restore_seconds": 4 * HOUR,
    }


def test_delivery_of_real_runs_on_the_shipped_data(
    make_settings: Any, store: Store, deployed: dict[str, Any]
) -> None:
    # Practice data deployed; the source data arrives, is trained on and deployed (a
    # wide gate margin), then rolled back.
    source = make_settings(
        input_folder_path="data/sourcedata",
        thresholds={"model_drift_tolerance": 0.05, "gate_margin": 0.3},
    )
    run = run_full_process(source, store=store)
    assert run["outcome"] == "deployed"
    rollback(source, store=store)
    found = delivery_metrics(store, source)
    first, second, back = store.deployments()
    assert (first["action"], second["action"], back["action"]) == ("deploy", "deploy", "rollback")
    arrivals = {r["file_name"]: r["ingested_at"] for r in reversed(store.ingested_files())}
    assert (found["deployments"], found["rollbacks"]) == (2, 1)
    assert found["deployment_frequency_per_week"] == 2 / 4
    # The first model's new data: the practice files; the second's: the source files.
    lead = [
        (as_time(first["deployed_at"]) - as_time(arrivals["dataset1.csv"])).total_seconds(),
        (as_time(second["deployed_at"]) - as_time(arrivals["dataset3.csv"])).total_seconds(),
    ]
    assert [d["lead_time_seconds"] for d in found["details"]] == lead
    assert [d["new_files"] for d in found["details"]] == [2, 2]
    assert [d["failed"] for d in found["details"]] == [False, True]
    assert found["change_failure_rate"] == 0.5
    restore = (as_time(back["deployed_at"]) - as_time(second["deployed_at"])).total_seconds()
    assert found["time_to_restore_seconds"] == {"n": 1, "median": restore, "mean": restore}


def test_scrapes_read_the_delivery_history_once_until_records_change(
    client: Any, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each scrape would read every deployment and ingestion: on SQLite they are read
    again only when the store's records change, or when the window has slid a minute;
    PostgreSQL (written by other hosts too) is read every scrape."""
    from monitoring.web import metrics

    calls: list[int] = []
    real = metrics.delivery_metrics
    monkeypatch.setattr(
        metrics, "delivery_metrics", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    clock = [1_000_000.0 * metrics.DELIVERY_SECONDS]
    monkeypatch.setattr(metrics.time, "time", lambda: clock[0])
    every_scrape = store.change_key(records_only=True) is None
    for _ in range(3):
        client.get("/metrics")
    assert len(calls) == (3 if every_scrape else 1)
    record_history(store, base=datetime.now(UTC) - timedelta(days=7))
    gauges = _gauges(client.get("/metrics").get_data(as_text=True))
    assert gauges["monitoring_delivery_deployments"] == 4.0
    client.get("/metrics")
    assert len(calls) == (5 if every_scrape else 2)
    clock[0] += metrics.DELIVERY_SECONDS
    client.get("/metrics")
    assert len(calls) == (6 if every_scrape else 3)
