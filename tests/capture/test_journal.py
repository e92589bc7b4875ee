"""Capture journals: rows reach the store once, in order, off the request path."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitoring import capture
from monitoring.capture import journal
from monitoring.config import Settings
from monitoring.storage.store import Store

ROWS = [
    {"lastmonth_activity": 234, "lastyear_activity": 3, "number_of_employees": 10},
    {"lastmonth_activity": 14, "lastyear_activity": 2145, "number_of_employees": 99},
]


@pytest.fixture
def api(deployed: dict[str, Any], client: Any) -> Any:
    return client


def test_a_large_request_gets_row_ids_in_row_order(api: Any, store: Store) -> None:
    # 2,500 rows cross the 1,000-row statement chunks of the SQLite writer.
    rows = [
        {"lastmonth_activity": i, "lastyear_activity": 7, "number_of_employees": i % 50}
        for i in range(2500)
    ]
    body = api.post("/prediction", json={"data": rows}, headers={"X-Request-ID": "big"}).get_json()
    captured = capture.captured(store, request_id="big")
    assert [r["id"] for r in captured] == body["row_ids"]
    assert body["row_ids"] == list(range(body["row_ids"][0], body["row_ids"][0] + 2500))
    assert [r["inputs"]["lastmonth_activity"] for r in captured] == list(range(2500))
    assert [r["prediction"] for r in captured] == body["predictions"]


def test_the_capture_writer_checkpoints_purges_and_stops_in_the_background(
    api: Any, settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checkpoints and retention run off the request path, and the thread ends when idle."""
    import time

    if store.file is None:
        pytest.skip("the capture journal reaches only SQLite stores so far")

    monkeypatch.setattr(journal, "IMPORT_EVERY", 0.02)
    monkeypatch.setattr(journal, "PURGE_EVERY", 0.0)
    monkeypatch.setattr(journal, "IDLE_STOP", 0.3)
    database = store.engine.url.database
    old = (datetime.now(UTC) - timedelta(days=settings.capture.retention_days + 1)).isoformat()
    with sqlite3.connect(database) as connection:
        connection.execute(
            "INSERT INTO captured_predictions (request_id, row_index, captured_at, inputs,"
            " prediction) VALUES ('expired', 0, ?, '{}', 0)",
            (old,),
        )
    size_before = Path(database).stat().st_size
    bodies = [api.post("/prediction", json={"data": ROWS * 50}).get_json() for _ in range(20)]

    def wait_for(condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 10
        while not condition():
            assert time.monotonic() < deadline, "the background thread did not act"
            time.sleep(0.02)

    wait_for(lambda: capture.captured(store, request_id="expired") == [])
    wait_for(lambda: Path(database).stat().st_size > size_before)  # WAL copied in
    wait_for(lambda: not any(k[1] == database for k in journal._writers))  # idle: stopped
    assert all(len(capture.captured(store, request_id=b["request_id"])) == 100 for b in bodies)
    again = api.post("/prediction", json={"data": ROWS}).get_json()  # a new writer starts
    assert [r["id"] for r in capture.captured(store, request_id=again["request_id"])] == (
        again["row_ids"]
    )


def test_a_full_journal_is_replaced_and_nothing_is_lost(
    api: Any, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal, "IMPORT_EVERY", 0.01)
    monkeypatch.setattr(journal, "ROTATE_BYTES", 2000)
    monkeypatch.setattr(journal, "IMPORT_BATCH", 700)  # several transactions per import
    bodies = []
    for _ in range(60):
        bodies.append(api.post("/prediction", json={"data": ROWS}).get_json())
        time.sleep(0.005)
    for body in bodies:
        rows = capture.captured(store, request_id=body["request_id"])
        assert [r["id"] for r in rows] == body["row_ids"]


def test_a_journal_line_longer_than_an_import_batch_is_imported(
    api: Any, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal, "IMPORT_BATCH", 64)  # every line is longer
    bodies = [api.post("/prediction", json={"data": ROWS * k}).get_json() for k in (1, 3, 2)]
    for body in bodies:
        rows = capture.captured(store, request_id=body["request_id"])
        assert [r["id"] for r in rows] == body["row_ids"]
