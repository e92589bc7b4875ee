"""Prometheus metrics (single process and across gunicorn workers), request ids, JSON logs."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import random
import re
import string
import uuid
from typing import Any

import pytest

from app import create_app
from monitoring.config import Settings
from monitoring.storage.store import Store
from monitoring.web.logs import (
    JsonFormatter,
    JsonLogHandler,
    RequestIdFilter,
    new_request_id,
    sole_json_handler,
)
from monitoring.web.metrics import METHODS, REQUESTS, STATUSES, series
from tests.helpers import metric_value

ROWS = [
    {"lastmonth_activity": 234, "lastyear_activity": 3, "number_of_employees": 10},
    {"lastmonth_activity": 14, "lastyear_activity": 2145, "number_of_employees": 99},
]


def test_metrics_count_requests_and_predictions(api: Any, deployed: dict[str, Any]) -> None:
    version = deployed["model_version"]
    before = api.get("/metrics").get_data(as_text=True)
    for _ in range(3):
        assert api.post("/prediction", json={"data": ROWS}).status_code == 200
    assert api.post("/prediction", json={"data": [{"x": 1}]}).status_code == 422
    response = api.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    after = response.get_data(as_text=True)

    def delta(name: str, **labels: str) -> float:
        return metric_value(after, name, **labels) - metric_value(before, name, **labels)

    ok = {"endpoint": "/prediction", "method": "POST", "status": "200"}
    assert delta("monitoring_http_requests_total", **ok) == 3
    assert delta("monitoring_http_requests_total", **{**ok, "status": "422"}) == 1
    assert delta("monitoring_http_request_duration_seconds_count", **ok) == 3
    assert delta("monitoring_predictions_total", model_version=version) == 6
    assert delta("monitoring_predicted_positive_total", model_version=version) == 3
    assert metric_value(after, "monitoring_model_info", model_version=version) == 1
    assert metric_value(after, "monitoring_ingested_data_age_seconds") >= 0
    assert metric_value(after, "monitoring_live_labelled_rows", model_version=version) == 0


def test_state_metrics_come_from_the_record_store(
    api: Any, settings: Settings, store: Store
) -> None:
    from monitoring.pipeline import run_full_process

    run_full_process(settings, store=store)  # the CLI's process: nothing new
    assert api.post("/drift", json={"data": ROWS * 3}).status_code == 200
    text = api.get("/metrics").get_data(as_text=True)
    assert metric_value(text, "monitoring_pipeline_runs_total", outcome="no_new_data") == 1
    latest = store.drift_reports(limit=1)[0]
    assert metric_value(text, "monitoring_data_drift_detected") == float(latest["dataset_drift"])
    assert metric_value(text, "monitoring_data_drift_drifted_columns") == len(
        latest["drifted_columns"]
    )


def test_ingested_data_age_is_the_latest_stored_profiles(
    api: Any, settings: Settings, store: Store
) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from monitoring.storage.schema import data_profiles

    an_hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    with store.engine.begin() as conn:
        conn.execute(update(data_profiles).values(created_at=an_hour_ago))
    settings.finaldata_file.unlink()  # not read: another host may not have it
    text = api.get("/metrics").get_data(as_text=True)
    assert 3600 <= metric_value(text, "monitoring_ingested_data_age_seconds") < 3660


def test_request_id_is_accepted_when_sane_and_generated_otherwise(api: Any) -> None:
    given = api.get("/health", headers={"X-Request-ID": "abc-123.x"})
    assert given.headers["X-Request-ID"] == "abc-123.x"
    for bad in ("bad id with spaces", "x" * 200, "<script>"):
        got = api.get("/health", headers={"X-Request-ID": bad}).headers["X-Request-ID"]
        assert got != bad and len(got) == 32 and int(got, 16) >= 0
    # A trailing newline (which could split the echoed header) is not sane either.
    newline = api.get("/health", environ_overrides={"HTTP_X_REQUEST_ID": "abc\n"})
    assert newline.status_code == 200 and len(newline.headers["X-Request-ID"]) == 32
    error = api.get("/nowhere")
    assert error.status_code == 404 and len(error.headers["X-Request-ID"]) == 32


class _Collect(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__()
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def collecting_json_handler(lines: list[str]) -> logging.Handler:
    """A handler that appends each record, formatted as the service's JSON line, to ``lines``."""
    handler = _Collect(lines)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    return handler


def test_log_lines_are_json_with_the_request_id(api: Any) -> None:
    lines: list[str] = []
    handler = collecting_json_handler(lines)
    logger = logging.getLogger("monitoring.request")
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.INFO)
    try:
        api.get("/health", headers={"X-Request-ID": "trace-42"})
        logging.getLogger("monitoring.other").warning("outside a request")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)
    record = json.loads(lines[0])
    assert record["request_id"] == "trace-42"
    assert record["message"] == "GET /health 200"
    assert record["status"] == 200 and record["path"] == "/health"
    assert record["duration_ms"] >= 0 and record["level"] == "INFO"
    assert record["time"].endswith("Z")


def test_access_line_written_directly_matches_the_logged_line(api: Any) -> None:
    # Production: one JsonLogHandler is the only handler, so the access line is
    # written without a LogRecord. With another handler present it goes through
    # logging; both must give the same line.
    logger = logging.getLogger("monitoring.request")
    direct = io.StringIO()
    handler = JsonLogHandler(direct)
    records: list[logging.LogRecord] = []
    emit = handler.emit
    handler.emit = lambda record: records.append(record) or emit(record)  # type: ignore[method-assign]
    lines: list[str] = []
    other = collecting_json_handler(lines)
    old = logger.level, logger.propagate
    logger.setLevel(logging.INFO)
    logger.propagate = False  # away from pytest's capture handlers
    logger.addHandler(handler)
    try:
        assert sole_json_handler(logger, logging.INFO) is handler
        api.get("/health", headers={"X-Request-ID": "direct-1"})
        assert records == []  # no LogRecord made
        logger.addHandler(other)
        assert sole_json_handler(logger, logging.INFO) is None
        api.get("/health", headers={"X-Request-ID": "logged-1"})
    finally:
        logger.removeHandler(handler)
        logger.removeHandler(other)
        logger.setLevel(old[0])
        logger.propagate = old[1]
    first, second = (json.loads(line) for line in direct.getvalue().splitlines())
    assert len(records) == 1 and json.loads(lines[0]) == second
    assert first["request_id"] == "direct-1" and second["request_id"] == "logged-1"
    keys = ["time", "level", "logger", "message", "request_id"]
    keys += ["method", "path", "status", "duration_ms"]
    for record in (first, second):
        assert list(record) == keys
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["time"])
        assert record["message"] == "GET /health 200" and record["status"] == 200
        assert record["level"] == "INFO" and record["logger"] == "monitoring.request"
        assert isinstance(record["duration_ms"], float) and record["duration_ms"] >= 0


def test_new_request_ids_are_uuid4_hex() -> None:
    ids = {new_request_id() for _ in range(200)}
    assert len(ids) == 200
    for rid in ids:
        parsed = uuid.UUID(hex=rid)
        assert parsed.hex == rid and parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_a_forked_process_draws_its_own_request_ids() -> None:
    """gunicorn forks its workers: no two may make the same ids."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child writes its first two ids and leaves
        os.write(write, (new_request_id() + new_request_id()).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    os.close(write)
    mine = new_request_id()
    assert len(child) == 64 and child[:16] == child[32:48] != mine[:16]
    assert int(child[48:], 16) == int(child[16:32], 16) + 1  # a counter within a process


def test_metric_series_are_the_labelled_children() -> None:
    labels = ("/x-test", "GET", "200")
    assert series(REQUESTS, *labels) is REQUESTS.labels(*labels)
    assert series(REQUESTS, *labels) is series(REQUESTS, *labels)


def test_refused_requests_get_a_request_id_and_are_counted(
    deployed: dict[str, Any], settings: Settings
) -> None:
    # The request hook runs before the token check, so a 401 carries its id too.
    app = create_app(dataclasses.replace(settings, api_token="t0ken"), {"TESTING": True})
    client = app.test_client()
    before = client.get("/metrics").get_data(as_text=True)
    refused = client.post("/deploy", headers={"X-Request-ID": "refused-1"})
    assert refused.status_code == 401 and refused.headers["X-Request-ID"] == "refused-1"
    assert len(client.post("/deploy").headers["X-Request-ID"]) == 32
    after = client.get("/metrics").get_data(as_text=True)
    labels = {"endpoint": "/deploy", "method": "POST", "status": "401"}
    assert (
        metric_value(after, "monitoring_http_requests_total", **labels)
        - metric_value(before, "monitoring_http_requests_total", **labels)
        == 2
    )


def test_metrics_are_served_while_the_store_is_down(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    from monitoring.storage.store import Store

    api.post("/prediction", json={"data": ROWS})
    up = api.get("/metrics").get_data(as_text=True)
    assert metric_value(up, "monitoring_store_up") == 1.0

    def down(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("SELECT", {}, Exception("connection refused"))

    monkeypatch.setattr(Store, "drift_reports", down)
    response = api.get("/metrics")
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert metric_value(text, "monitoring_store_up") == 0.0
    assert "monitoring_http_requests_total" in text  # the process metrics are all there
    assert "monitoring_model_info" not in text  # no state when it cannot be read


def test_metric_labels_stay_in_fixed_sets_whatever_clients_send(api: Any) -> None:
    rng = random.Random(13)
    before = api.get("/metrics").get_data(as_text=True)
    sent = set()
    for i in range(200):
        method = "".join(rng.choices(string.ascii_uppercase, k=rng.randint(3, 12)))
        path = "/" + "".join(rng.choices(string.ascii_lowercase + "/", k=rng.randint(1, 30)))
        sent |= {method, path}
        assert api.open(path, method=method).status_code in (404, 405)
        api.open("/health", method=f"ZQ{i}")
    text = api.get("/metrics").get_data(as_text=True)
    methods = set(re.findall(r'monitoring_http_requests_total\{[^}]*method="([^"]*)"', text))
    endpoints = set(re.findall(r'monitoring_http_requests_total\{[^}]*endpoint="([^"]*)"', text))
    statuses = set(re.findall(r'monitoring_http_requests_total\{[^}]*status="([^"]*)"', text))
    assert methods <= METHODS | {"other"} and "other" in methods
    assert "<unmatched>" in endpoints and not endpoints & sent  # (other tests' apps add rules)
    assert statuses <= STATUSES
    unmatched = {"endpoint": "<unmatched>", "method": "other"}
    added = metric_value(text, "monitoring_http_requests_total", **unmatched, status="404")
    added -= metric_value(before, "monitoring_http_requests_total", **unmatched, status="404")
    assert added == 200
    health = {"endpoint": "<unmatched>", "method": "other", "status": "405"}
    assert metric_value(text, "monitoring_http_requests_total", **health) == 200
