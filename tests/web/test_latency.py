"""Request latency per hour: counted by every request, added to the store, bounded."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from monitoring.storage.latency import hourly_quantiles, latency_bucket
from monitoring.storage.store import Store
from monitoring.web import latency
from monitoring.web.latency import MAX_PENDING_HOURS, LatencyRecorder, hour_key


def test_requests_are_counted_by_url_rule_and_stored_on_flush(
    api: Any, app: Any, store: Store
) -> None:
    recorder: LatencyRecorder = app.extensions["latency"]
    assert recorder.background is False  # under test: no thread, flush() adds the counts
    for _ in range(3):
        assert api.post("/prediction", json={"dataset_path": "testdata.csv"}).status_code == 200
    api.get("/health")
    api.get("/no/such/path")  # not a URL rule: not counted
    pending = recorder.pending()
    per_rule: dict[str, int] = {}
    for (_, endpoint, _), n in pending.items():
        per_rule[endpoint] = per_rule.get(endpoint, 0) + n
    assert per_rule == {"/prediction": 3, "/health": 1}
    assert recorder.flush() is True and recorder.pending() == {}
    assert recorder.flush() is False
    rows = hourly_quantiles(store, since="2000-01-01T00")
    assert {(r["endpoint"], r["requests"]) for r in rows} == {
        ("/prediction", 3),
        ("/health", 1),
        ("all", 4),
    }
    assert all(r["seconds"] is not None and 0 < r["seconds"] < 30 for r in rows)


def test_counts_wait_while_the_store_fails_and_stay_bounded(
    store: Store, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(*args: Any, **kwargs: Any) -> None:
        raise OSError("the store is unreachable")

    monkeypatch.setattr(latency, "add_latency_counts", unreachable)
    recorder = LatencyRecorder(store, retention_days=30, background=False)
    hours = MAX_PENDING_HOURS + 5
    for h in range(hours):
        recorder.observe("/prediction", 0.01, now=h * 3600.0 + 1)
    with caplog.at_level(logging.WARNING, logger="monitoring.latency"):
        assert recorder.flush() is True
        recorder.flush()
    kept = {key[0] for key in recorder.pending()}
    assert kept == {hour_key(h) for h in range(5, hours)}  # the newest 48 hours
    assert [r.message for r in caplog.records] == [  # once while failing
        "request latencies not stored (kept for the next try): the store is unreachable"
    ]
    assert next(iter(recorder.pending().items())) == (
        (hour_key(5), "/prediction", latency_bucket(0.01)),
        1,
    )


def test_background_thread_adds_the_counts_and_stops_when_idle(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.ping()
    monkeypatch.setattr(latency, "FLUSH_EVERY", 0.01)
    recorder = LatencyRecorder(store, retention_days=30)
    recorder.observe("/prediction", 0.002)
    thread = recorder._thread
    assert thread is not None
    thread.join(timeout=10)
    assert not thread.is_alive() and recorder._thread is None
    [row, _all] = hourly_quantiles(store, since="2000-01-01T00")
    assert (row["endpoint"], row["requests"]) == ("/prediction", 1)
