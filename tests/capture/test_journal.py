"""Capture journals: rows reach the store once, in order, off the request path, on
SQLite and PostgreSQL alike, and a store or journal failure never fails /prediction."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import OperationalError

from monitoring import capture
from monitoring.capture import importer, journal, ledger, writer
from monitoring.config import Settings
from monitoring.storage.schema import captured_predictions
from monitoring.storage.store import Store
from tests.helpers import metric_value

ROWS = [
    {"lastmonth_activity": 234, "lastyear_activity": 3, "number_of_employees": 10},
    {"lastmonth_activity": 14, "lastyear_activity": 2145, "number_of_employees": 99},
]


@pytest.fixture
def api(deployed: dict[str, Any], client: Any) -> Any:
    return client


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def stored(store: Store, *request_ids: str) -> list[tuple[str, int, int]]:
    """(request id, row index, id) of the stored rows of ``request_ids``, read without
    importing anything."""
    table = captured_predictions
    query = (
        select(table.c.request_id, table.c.row_index, table.c.id)
        .where(table.c.request_id.in_(request_ids))
        .order_by(table.c.request_id, table.c.row_index)
    )
    with store.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query)]  # type: ignore[misc]


def test_a_large_request_gets_row_ids_in_row_order(
    api: Any, settings: Settings, store: Store
) -> None:
    rows = [
        {"lastmonth_activity": i, "lastyear_activity": 7, "number_of_employees": i % 50}
        for i in range(2500)
    ]
    body = api.post("/prediction", json={"data": rows}).get_json()
    captured = capture.captured(store, settings, request_id=body["request_id"])
    assert [r["id"] for r in captured] == body["row_ids"]
    assert body["row_ids"] == list(range(body["row_ids"][0], body["row_ids"][0] + 2500))
    assert [r["inputs"]["lastmonth_activity"] for r in captured] == list(range(2500))
    assert [r["prediction"] for r in captured] == body["predictions"]


def test_journals_live_in_the_configured_folder_one_per_store(
    make_settings: Callable[..., Settings], settings: Settings, project: Path
) -> None:
    assert settings.capture.journal_path == str(project / "models" / "capture-journal")
    folder = journal.journal_folder(settings)
    assert folder.parent == project / "models" / "capture-journal"
    other = make_settings(database_url="sqlite:///other.db", capture={"journal_path": "j"})
    assert journal.journal_folder(other).parent == project / "j"
    assert journal.journal_folder(other).name.startswith("sqlite-other-")
    assert journal.journal_folder(other).name != folder.name


def test_the_capture_writer_imports_checkpoints_purges_and_stops_in_the_background(
    api: Any, settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rows, checkpoints and retention are handled off the request path, and the
    thread ends when idle."""
    monkeypatch.setattr(importer, "IMPORT_EVERY", 0.02)
    monkeypatch.setattr(importer, "PURGE_EVERY", 0.0)
    monkeypatch.setattr(writer, "IDLE_STOP", 0.3)
    old = (datetime.now(UTC) - timedelta(days=settings.capture.retention_days + 1)).isoformat()
    expired = {
        "id": ledger.reserve_ids(store, 1),
        "request_id": "expired",
        "row_index": 0,
        "captured_at": old,
        "inputs": "{}",
        "prediction": 0,
    }
    with store.engine.begin() as conn:
        conn.execute(insert(captured_predictions), expired)
    size_before = store.file.stat().st_size if store.file else 0
    bodies = [api.post("/prediction", json={"data": ROWS * 50}).get_json() for _ in range(20)]
    rids = [b["request_id"] for b in bodies]

    # Nothing here imports: the writer's thread does.
    wait_for(lambda: len(stored(store, *rids)) == 2000, "the thread did not import")
    wait_for(lambda: stored(store, "expired") == [], "the thread did not purge")
    if store.file is not None:  # SQLite: the write-ahead log is copied into the file
        wait_for(lambda: store.file.stat().st_size > size_before, "no WAL checkpoint")
    wait_for(lambda: all(key[1] != store.url for key in writer._writers), "the idle thread ran on")
    for body in bodies:
        rows = stored(store, body["request_id"])
        assert [r[2] for r in rows] == body["row_ids"]
    again = api.post("/prediction", json={"data": ROWS}).get_json()  # a new writer starts
    assert [r["id"] for r in capture.captured(store, settings, request_id=again["request_id"])] == (
        again["row_ids"]
    )


def test_a_full_journal_is_replaced_and_nothing_is_lost(
    api: Any, settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "IMPORT_EVERY", 0.01)
    monkeypatch.setattr(writer, "ROTATE_BYTES", 2000)
    monkeypatch.setattr(journal, "IMPORT_BATCH", 700)  # several transactions per import
    bodies = []
    for _ in range(60):
        bodies.append(api.post("/prediction", json={"data": ROWS}).get_json())
        time.sleep(0.005)
    for body in bodies:
        rows = capture.captured(store, settings, request_id=body["request_id"])
        assert [r["id"] for r in rows] == body["row_ids"]


def test_a_journal_line_longer_than_an_import_batch_is_imported(
    api: Any, settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal, "IMPORT_BATCH", 64)  # every line is longer
    bodies = [api.post("/prediction", json={"data": ROWS * k}).get_json() for k in (1, 3, 2)]
    for body in bodies:
        rows = capture.captured(store, settings, request_id=body["request_id"])
        assert [r["id"] for r in rows] == body["row_ids"]


def test_rows_journalled_while_the_store_is_down_get_ids_once_it_is_back(
    api: Any, settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "IMPORT_EVERY", 0.02)
    monkeypatch.setattr(importer, "RETRY_MAX", 0.1)
    assert api.get("/health").status_code == 200  # the model in memory; no capture yet
    reachable = Store.engine
    tries: list[float] = []

    def unreachable(self: Store) -> Any:
        tries.append(time.monotonic())
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(Store, "engine", property(unreachable))
    down = [api.post("/prediction", json={"data": ROWS * k}) for k in (1, 2, 3, 1, 2)]
    assert [r.status_code for r in down] == [200] * 5
    bodies = [r.get_json() for r in down]
    assert [b["row_ids"] for b in bodies] == [None] * 5  # no ids could be had
    assert [len(b["predictions"]) for b in bodies] == [2, 4, 6, 2, 4]
    time.sleep(0.3)  # the writer's thread tries the store again and again meanwhile
    assert len(tries) >= 3

    monkeypatch.setattr(Store, "engine", reachable)
    rids = [b["request_id"] for b in bodies]
    # The writer's thread imports them (nothing else here imports), with ids.
    wait_for(lambda: len(stored(store, *rids)) == 18, "the rows were not imported")
    for body in bodies:
        rows = stored(store, body["request_id"])
        assert [r[1] for r in rows] == list(range(len(body["predictions"])))
        ids = [r[2] for r in rows]
        assert ids == list(range(ids[0], ids[0] + len(ids)))  # consecutive, in row order
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(captured_predictions)).scalar() == 18
    # Feedback by request id works for them; new requests get ids again.
    labels = {"request_id": rids[0], "labels": [1, 0]}
    assert api.post("/feedback", json=labels).get_json()["labelled_rows"] == 2
    wait_for(
        lambda: api.post("/prediction", json={"data": ROWS}).get_json()["row_ids"] is not None,
        "no ids after the store came back",
    )
    metrics = api.get("/metrics").get_data(as_text=True)
    assert metric_value(metrics, "monitoring_capture_dropped_total", reason="journal") == 0


def test_ids_in_hand_serve_an_outage_and_the_store_is_tried_at_the_writers_pace(
    api: Any, settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "IMPORT_EVERY", 0.02)
    monkeypatch.setattr(importer, "RETRY_MAX", 0.1)
    monkeypatch.setattr(writer, "ID_BLOCK", 400)
    first = api.post("/prediction", json={"data": ROWS}).get_json()  # a block of 400 ids
    reachable = Store.engine
    tries: list[float] = []

    def unreachable(self: Store) -> Any:
        tries.append(time.monotonic())
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(Store, "engine", property(unreachable))
    started = time.monotonic()
    bodies = [api.post("/prediction", json={"data": ROWS}).get_json() for _ in range(150)]
    seconds = time.monotonic() - started
    ids = [i for body in bodies for i in body["row_ids"]]  # all from the block in hand
    assert ids == list(range(first["row_ids"][0] + 2, first["row_ids"][0] + 302))
    # Past half the block the next one is wanted: tried every 0.02 s doubling to 0.1 s
    # (each try reaches the store twice: ids, import), not once per request.
    assert len(tries) <= 2 * (seconds / 0.02 + 1) < 150
    monkeypatch.setattr(Store, "engine", reachable)
    for body in bodies:
        rows = capture.captured(store, settings, request_id=body["request_id"])
        assert [r["id"] for r in rows] == body["row_ids"]


def test_a_capture_that_cannot_be_journalled_is_logged_counted_and_the_prediction_answers(
    api: Any, settings: Settings, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    def dropped() -> float:
        text = api.get("/metrics").get_data(as_text=True)
        return metric_value(text, "monitoring_capture_dropped_total", reason="journal")

    first = api.post("/prediction", json={"data": ROWS}).get_json()
    before = dropped()
    journal_writer = writer.writer_for(store, settings)
    unwritable = os.open(os.devnull, os.O_RDONLY)  # write() fails: EBADF
    with journal_writer.mutex:
        good, journal_writer.fd = journal_writer.fd, unwritable
    try:
        with caplog.at_level(logging.ERROR, logger="monitoring.capture"):
            response = api.post("/prediction", json={"data": ROWS}, headers={"X-Request-ID": "x"})
    finally:
        with journal_writer.mutex:
            journal_writer.fd = good
        os.close(unwritable)
    assert response.status_code == 200
    body = response.get_json()
    assert body["predictions"] == first["predictions"] and body["row_ids"] is None
    assert dropped() == before + 1
    assert f"capture of request {body['request_id']} dropped (journal)" in caplog.text
    assert capture.captured(store, settings, request_id=body["request_id"]) == []
    again = api.post("/prediction", json={"data": ROWS}).get_json()
    assert [r["id"] for r in capture.captured(store, settings, request_id=again["request_id"])] == (
        again["row_ids"]
    )
