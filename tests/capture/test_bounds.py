"""Capture bounded whatever clients send: text values cut, oversized rows as a marker,
a request id of at most 128 characters, and a byte budget kept by evicting the oldest
rows (on SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import func, insert, select

from app import create_app
from monitoring import capture
from monitoring.capture import ledger
from monitoring.capture.records import _cap_text
from monitoring.config import Settings
from monitoring.storage.schema import captured_predictions, counters, label_events
from monitoring.storage.store import Store
from tests.helpers import FEATURES, metric_value, stored_capture

ROW = {"lastmonth_activity": 234, "lastyear_activity": 3, "number_of_employees": 10}
MIB = 1 << 20


def csv_body(row: dict[str, Any]) -> bytes:
    """One CSV row with a header of ``row``'s keys."""
    return (",".join(row) + "\n" + ",".join(str(v) for v in row.values()) + "\n").encode()


def client_for(settings: Settings) -> Any:
    return create_app(settings, {"TESTING": True}).test_client()


def metrics(client: Any) -> str:
    return str(client.get("/metrics").get_data(as_text=True))


def test_a_long_text_value_is_captured_as_its_start_and_its_length(
    api: Any, settings: Settings, store: Store
) -> None:
    row = {"corporation": "x" * 1_000_000, **ROW}  # past the csv module's default field limit
    before = metric_value(metrics(api), "monitoring_capture_truncated_total", part="value")
    response = api.post("/prediction", data=csv_body(row), content_type="text/csv")
    assert response.status_code == 200
    body = response.get_json()
    [stored] = capture.captured(store, settings, request_id=body["request_id"])
    assert stored["inputs"] == {
        "corporation": "x" * 64 + "...[truncated: 1000000 characters]",
        **ROW,
    }
    assert stored["id"] == body["row_ids"][0] and stored["prediction"] == body["predictions"][0]
    after = metric_value(metrics(api), "monitoring_capture_truncated_total", part="value")
    assert after == before + 1


@pytest.mark.parametrize("char", ["y", "é", "😀"])  # 1, 2 and 4 bytes in UTF-8
def test_a_text_value_of_the_limit_is_captured_whole(
    api: Any, settings: Settings, store: Store, char: str
) -> None:
    """The limit counts characters, not bytes."""
    row = {"corporation": char * 256, **ROW}
    before = metric_value(metrics(api), "monitoring_capture_truncated_total", part="value")
    body = api.post("/prediction", data=csv_body(row), content_type="text/csv").get_json()
    [stored] = capture.captured(store, settings, request_id=body["request_id"])
    assert stored["inputs"] == row
    after = metric_value(metrics(api), "monitoring_capture_truncated_total", part="value")
    assert after == before


def test_a_row_over_max_row_bytes_is_stored_as_a_marker_and_can_be_labelled(
    make_settings: Callable[..., Settings], deployed: dict[str, Any], store: Store
) -> None:
    settings = make_settings(capture={"max_row_bytes": 256})
    client = client_for(settings)
    wide = {**ROW, **{f"extra_column_{i:03d}": i for i in range(20)}}
    small = {**ROW, "corporation": "acme"}
    inputs_bytes = len(json.dumps(wide, separators=(",", ":")))
    assert inputs_bytes > 256 >= len(json.dumps(small, separators=(",", ":")))
    before = metric_value(metrics(client), "monitoring_capture_truncated_total", part="row")
    bodies = [
        client.post("/prediction", data=csv_body(row), content_type="text/csv").get_json()
        for row in (wide, small)
    ]
    [marked] = capture.captured(store, settings, request_id=bodies[0]["request_id"])
    assert marked["inputs"] == {"_omitted": {"bytes": inputs_bytes, "max_row_bytes": 256}}
    assert marked["prediction"] == bodies[0]["predictions"][0]
    assert marked["probability"] == bodies[0]["probabilities"][0]
    [kept] = capture.captured(store, settings, request_id=bodies[1]["request_id"])
    assert kept["inputs"] == small
    after = metric_value(metrics(client), "monitoring_capture_truncated_total", part="row")
    assert after == before + 1
    labelled = client.post("/feedback", json={"row_id": marked["id"], "label": 1})
    assert labelled.status_code == 200 and labelled.get_json()["labelled_rows"] == 1


@pytest.mark.parametrize(("extra", "omitted"), [(3, False), (100, True)])
def test_rows_of_finite_floats_are_bounded_too(
    make_settings: Callable[..., Settings],
    deployed: dict[str, Any],
    store: Store,
    extra: int,
    omitted: bool,
) -> None:
    """The matrix fast path: rows that may exceed the bound are checked one by one."""
    settings = make_settings(capture={"max_row_bytes": 1024})
    client = client_for(settings)
    row = {**{k: float(v) for k, v in ROW.items()}, **{f"f{i:02d}": 0.5 + i for i in range(extra)}}
    body = client.post("/prediction", json={"data": [row, row]}).get_json()
    stored = capture.captured(store, settings, request_id=body["request_id"])
    size = len(json.dumps(row, separators=(",", ":")))
    expected = {"_omitted": {"bytes": size, "max_row_bytes": 1024}} if omitted else row
    assert (size > 1024) is omitted
    assert [r["inputs"] for r in stored] == [expected, expected]


def test_a_request_id_over_128_characters_is_not_stored(
    api: Any, settings: Settings, store: Store
) -> None:
    given = "a" * 129
    response = api.post("/prediction", json={"data": [ROW]}, headers={"X-Request-ID": given})
    body = response.get_json()
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] != given and len(body["request_id"]) == 32
    [stored] = capture.captured(store, settings, request_id=body["request_id"])
    assert stored["request_id"] == body["request_id"]
    with store.engine.connect() as conn:
        longest = conn.execute(select(func.max(func.length(captured_predictions.c.request_id))))
        assert longest.scalar_one() == 32


def test_the_byte_budget_evicts_the_oldest_rows_and_counts_them(
    make_settings: Callable[..., Settings], deployed: dict[str, Any], store: Store
) -> None:
    settings = make_settings(capture={"max_bytes": MIB})
    client = client_for(settings)
    wide = {**ROW, **{f"c{i:03d}" + "x" * 240: 1 for i in range(200)}}
    inputs_bytes = len(json.dumps(wide, separators=(",", ":")))
    version = deployed["model_version"]
    size = inputs_bytes + 32 + len(version) + ledger.ROW_OVERHEAD  # ledger.row_bytes
    bodies = [client.post("/prediction", data=csv_body(wide), content_type="text/csv").get_json()]
    labelled = client.post("/feedback", json={"row_id": bodies[0]["row_ids"][0], "label": 1})
    assert labelled.status_code == 200  # the oldest row has a label event
    for _ in range(29):
        bodies.append(
            client.post("/prediction", data=csv_body(wide), content_type="text/csv").get_json()
        )
    capture.import_journals(store, settings)

    n = 30
    kept = MIB // size  # whole rows within the budget: 20 rows of ~51 KB
    assert kept == 20
    with store.engine.connect() as conn:
        ids = [r[0] for r in conn.execute(select(captured_predictions.c.id).order_by("id"))]
        events = conn.execute(select(func.count()).select_from(label_events)).scalar_one()
    first = bodies[0]["row_ids"][0]
    assert ids == list(range(first + n - kept, first + n))  # the newest, by row id
    assert events == 0  # the labelled row was evicted, and its label events with it
    assert stored_capture(store)[1] == kept * size == ledger.counter_values(store)[ledger.BYTES]
    text = metrics(client)
    assert metric_value(text, "monitoring_capture_bytes") == kept * size
    assert metric_value(text, "monitoring_capture_evicted_total") == n - kept
    gone = client.post("/feedback", json={"row_id": first, "label": 0})
    assert gone.status_code == 404


def test_retention_takes_the_expired_rows_bytes_and_label_events(
    api: Any, settings: Settings, store: Store
) -> None:
    body = api.post("/prediction", json={"data": [ROW, ROW]}).get_json()
    assert api.post("/feedback", json={"request_id": body["request_id"], "labels": [1, 0]})
    before = ledger.counter_values(store)[ledger.BYTES]
    assert before == stored_capture(store)[1] > 0
    later = datetime.now(UTC) + timedelta(days=settings.capture.retention_days + 1)
    assert capture.purge(store, settings, now=later) == 2
    assert ledger.counter_values(store)[ledger.BYTES] == 0 == stored_capture(store)[1]
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(label_events)).scalar_one() == 0


def test_the_byte_count_starts_from_rows_stored_before_it_existed(store: Store) -> None:
    """An upgrade: rows stored by a version without the count are counted once."""
    rows = [
        {
            "id": i,
            "request_id": f"old-{i}",
            "row_index": 0,
            "captured_at": "2026-11-01T00:00:00.000000+00:00",
            "model_version": "v1",
            "inputs": json.dumps({"a": i, "pad": "p" * 1000}),
            "prediction": 0,
        }
        for i in range(1, 11)
    ]
    with store.engine.begin() as conn:
        conn.execute(insert(captured_predictions), rows)
    each = [ledger.row_bytes(r["request_id"], "v1", r["inputs"]) for r in rows]
    assert ledger.enforce_budget(store, sum(each)) == 0  # within: nothing evicted
    assert ledger.counter_values(store) == {ledger.BYTES: sum(each), ledger.EVICTED: 0}
    assert ledger.enforce_budget(store, sum(each[5:])) == 5  # the five oldest go
    assert ledger.counter_values(store) == {ledger.BYTES: sum(each[5:]), ledger.EVICTED: 5}
    with store.engine.connect() as conn:
        ids = [r[0] for r in conn.execute(select(captured_predictions.c.id).order_by("id"))]
        names = {r[0] for r in conn.execute(select(counters.c.name))}
    assert ids == [6, 7, 8, 9, 10]
    assert {ledger.BYTES, ledger.EVICTED} <= names
    assert ledger.enforce_budget(store, sum(each[5:]) - 1) == 1  # one byte over: one row
    assert ledger.counter_values(store)[ledger.BYTES] == sum(each[6:]) == stored_capture(store)[1]


def test_features_of_a_capped_row_stay_numbers(api: Any, settings: Settings, store: Store) -> None:
    """Cutting a text column leaves the feature columns' values as they were sent."""
    row = {"corporation": "z" * 1000, **{k: v + 0.25 for k, v in ROW.items()}}
    body = api.post("/prediction", json={"data": [row]}).get_json()
    [stored] = capture.captured(store, settings, request_id=body["request_id"])
    assert [stored["inputs"][f] for f in FEATURES] == [234.25, 3.25, 10.25]
    assert stored["inputs"]["corporation"].endswith("...[truncated: 1000 characters]")


def test_text_is_cut_in_columns_of_every_kind() -> None:
    """Text, object (mixed values) and categorical columns; numbers and short text stay."""
    long, cut = "q" * 300, "q" * 64 + "...[truncated: 300 characters]"
    frame = pd.DataFrame(
        {
            "text": pd.Series([long, "short", None], dtype="str"),
            "mixed": pd.Series([5, long, [1, 2]], dtype=object),
            "category": pd.Series([long, long, "b"], dtype="category"),
            "number": [1.5, 2.5, 3.5],
        }
    )
    out = _cap_text(frame)
    assert out["text"].tolist()[:2] == [cut, "short"] and pd.isna(out["text"].tolist()[2])
    assert out["mixed"].tolist() == [5, cut, [1, 2]]
    assert out["category"].tolist() == [cut, cut, "b"]
    assert out["number"].tolist() == [1.5, 2.5, 3.5]
    assert frame["text"].tolist()[0] == long  # the frame predicted on is not changed
    unchanged = frame.assign(text=["a", "b", "c"], mixed=[1, 2, 3], category=["x", "y", "z"])
    assert _cap_text(unchanged) is unchanged


def test_a_multibyte_text_value_over_the_limit_is_cut(
    api: Any, settings: Settings, store: Store
) -> None:
    row = {"corporation": "é" * 257, **ROW}
    body = api.post("/prediction", data=csv_body(row), content_type="text/csv").get_json()
    [stored] = capture.captured(store, settings, request_id=body["request_id"])
    assert stored["inputs"]["corporation"] == "é" * 64 + "...[truncated: 257 characters]"
