"""Prediction capture, delayed labels through POST /feedback, live performance."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import func, select

from app import create_app
from monitoring import capture
from monitoring.capture.feedback import MAX_LABEL_EVENTS
from monitoring.config import Settings
from monitoring.storage.schema import captured_predictions, label_events
from monitoring.storage.store import Store

ROWS = [
    {"lastmonth_activity": 234, "lastyear_activity": 3, "number_of_employees": 10},
    {"lastmonth_activity": 14, "lastyear_activity": 2145, "number_of_employees": 99},
]
TEST_CSV = {"dataset_path": "data/testdata/testdata.csv"}


@pytest.fixture
def api(deployed: dict[str, Any], client: Any) -> Any:
    return client


def test_every_prediction_is_captured_with_row_ids(
    api: Any, settings: Settings, store: Store, deployed: dict[str, Any]
) -> None:
    response = api.post("/prediction", json={"data": ROWS}, headers={"X-Request-ID": "req-1"})
    body = response.get_json()
    assert response.status_code == 200
    # The client's id stays its correlation id; the capture is under one the server made.
    assert response.headers["X-Request-ID"] == "req-1"
    assert re.fullmatch(r"[0-9a-f]{32}", body["request_id"])
    assert capture.captured(store, settings, request_id="req-1") == []
    assert len(body["row_ids"]) == 2
    rows = capture.captured(store, settings, request_id=body["request_id"])
    assert [r["id"] for r in rows] == body["row_ids"]
    assert [r["row_index"] for r in rows] == [0, 1]
    assert [r["prediction"] for r in rows] == body["predictions"] == [0, 1]
    assert [r["probability"] for r in rows] == body["probabilities"]
    assert rows[0]["inputs"] == ROWS[0]
    assert {r["model_version"] for r in rows} == {deployed["model_version"]}
    assert all(r["label"] is None for r in rows)


def test_live_f1_from_feedback_matches_a_hand_computation(
    api: Any, deployed: dict[str, Any]
) -> None:
    first = api.post("/prediction", json=TEST_CSV).get_json()
    second = api.post("/prediction", json={"data": ROWS}).get_json()
    assert first["predictions"] == [0, 1, 1, 1, 1]
    assert second["predictions"] == [0, 1]

    response = api.post(
        "/feedback",
        json={
            "feedback": [
                {"request_id": first["request_id"], "labels": [0, 1, 0, 1, 0]},
                {"row_id": second["row_ids"][0], "label": 1},
                {"row_id": second["row_ids"][1], "label": 1},
            ]
        },
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["labelled_rows"] == 7

    # Derivation, pairs (prediction, label):
    #   first request:  (0,0) (1,1) (1,0) (1,1) (1,0) -> TN 1, TP 2, FP 2
    #   second request: (0,1) (1,1)                   -> FN 1, TP 1
    # Total TP 3, FP 2, FN 1, TN 1.
    # precision = 3/5, recall = 3/4, F1 = 2TP / (2TP + FP + FN) = 6/9 = 2/3,
    # accuracy = (TP + TN) / 7 = 4/7.
    live = api.get("/scoring").get_json()["live_performance"][deployed["model_version"]]
    assert live["n_captured"] == 7
    assert live["n_labelled"] == 7
    assert live["f1"] == pytest.approx(2 / 3)
    assert live["precision"] == pytest.approx(3 / 5)
    assert live["recall"] == pytest.approx(3 / 4)
    assert live["accuracy"] == pytest.approx(4 / 7)
    assert live["confusion_matrix"] == [[1, 2], [1, 3]]


def test_feedback_with_unknown_ids_is_404_and_stores_nothing(
    api: Any, settings: Settings, store: Store
) -> None:
    known = api.post("/prediction", json={"data": ROWS}).get_json()
    response = api.post(
        "/feedback",
        json={
            "feedback": [
                {"request_id": known["request_id"], "labels": [1, 1]},
                {"request_id": "never-seen", "labels": [1]},
                {"row_id": 999999, "label": 0},
            ]
        },
    )
    assert response.status_code == 404
    assert response.get_json() == {
        "error": "Not Found",
        "message": "unknown request ids: ['never-seen']; unknown row ids: [999999] "
        "(never captured, sampled out or expired); no labels stored",
        "status": 404,
    }
    rows = capture.captured(store, settings, request_id=known["request_id"])
    assert [r["label"] for r in rows] == [None, None]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"request_id": "R", "labels": [1]}, 422, "has 2 captured rows but 1 labels"),
        ({"request_id": "R", "labels": [2, 0]}, 422, "a label must be 0 or 1, got 2"),
        ({"row_id": "x", "label": 1}, 422, "'row_id' must be an integer"),
        ({"labels": [1]}, 422, "give either 'request_id' with 'labels'"),
        ([], 422, "no items given"),
    ],
)
def test_invalid_feedback(api: Any, body: Any, status: int, message: str) -> None:
    rid = api.post("/prediction", json={"data": ROWS}).get_json()["request_id"]
    if isinstance(body, dict) and body.get("request_id") == "R":
        body = {**body, "request_id": rid}
    response = api.post("/feedback", json=body)
    assert response.status_code == status
    assert message in response.get_json()["message"]


def test_feedback_needs_a_json_body(api: Any) -> None:
    response = api.post("/feedback", data=b"not json", content_type="text/plain")
    assert response.status_code == 400
    assert response.get_json()["message"] == "feedback must be a JSON body"


def test_sampling_rate_zero_captures_nothing(
    make_settings: Callable[..., Settings], deployed: dict[str, Any], store: Store
) -> None:
    settings = make_settings(capture={"sample_rate": 0.0})
    client = create_app(settings, {"TESTING": True}).test_client()
    body = client.post("/prediction", json={"data": ROWS}).get_json()
    assert "row_ids" not in body and body["request_id"]
    assert capture.captured(store, settings, request_id=body["request_id"]) == []
    response = client.post("/feedback", json={"request_id": body["request_id"], "labels": [1, 0]})
    assert response.status_code == 404


def test_retention_deletes_old_rows(api: Any, settings: Settings, store: Store) -> None:
    body = api.post("/prediction", json={"data": ROWS}).get_json()
    later = datetime.now(UTC) + timedelta(days=settings.capture.retention_days + 1)
    assert capture.purge(store, settings, now=later) == 2
    assert capture.captured(store, settings, request_id=body["request_id"]) == []


def test_pipeline_uses_live_labels_as_a_model_drift_check(
    make_settings: Callable[..., Settings], deployed: dict[str, Any], store: Store
) -> None:
    from monitoring.pipeline import run_full_process

    settings = make_settings(capture={"min_labelled_rows": 4})
    client = create_app(settings, {"TESTING": True}).test_client()
    body = client.post("/prediction", json=TEST_CSV).get_json()
    # Every label the opposite of the prediction: live F1 is 0.
    wrong = [1 - p for p in body["predictions"]]
    assert client.post("/feedback", json={"request_id": body["request_id"], "labels": wrong})
    run = run_full_process(settings, store=store, force=True)
    live = run["evidence"]["live_model_drift"]
    assert live["checked"] is True
    assert live["drift"] is True
    assert live["new"] == 0.0
    assert live["live"]["n_labelled"] == 5


def test_few_labels_are_evidence_only(
    settings: Settings, deployed: dict[str, Any], store: Store
) -> None:
    from monitoring.drift import live_model_drift

    result = live_model_drift(
        capture.live_performance(store).get(deployed["model_version"]),
        baseline=0.8,
        tolerance=settings.thresholds.model_drift_tolerance,
        min_labelled_rows=settings.capture.min_labelled_rows,
    )
    assert result["checked"] is False and result["drift"] is False
    assert result["reason"] == "0 labelled live rows; at least 30 needed"


def test_live_performance_equals_per_version_metrics_of_every_labelled_row(
    store: Store, rng: Any
) -> None:
    """Versions with and without labels, a missing probability, one label class."""
    from sqlalchemy import insert

    from monitoring.model.scoring import compute_metrics
    from monitoring.storage.schema import captured_predictions

    rows = []
    for i in range(600):
        version = ["v1", "v2", "v3", "only-ones", "unlabelled"][i % 5]
        label = None if version == "unlabelled" or rng.random() < 0.3 else int(rng.random() < 0.4)
        if version == "only-ones" and label is not None:
            label = 1
        probability = float(rng.random())
        if version == "v3" and i == 2:
            probability = None  # one row without a score: no ROC AUC for v3
        rows.append(
            {
                "request_id": f"r{i}",
                "row_index": 0,
                "captured_at": "2026-11-23T00:00:00+00:00",
                "model_version": version,
                "inputs": "{}",
                "prediction": int(probability is not None and probability > 0.5),
                "probability": probability,
                "label": label,
            }
        )
    with store.engine.begin() as conn:
        conn.execute(insert(captured_predictions), rows)

    live = capture.live_performance(store)

    frame = pd.DataFrame(rows)
    assert sorted(live) == ["only-ones", "unlabelled", "v1", "v2", "v3"]
    for version, part in frame.groupby("model_version"):
        labelled = part[part["label"].notna()]
        expected: dict[str, Any] = {"n_captured": len(part), "n_labelled": len(labelled)}
        if len(labelled):
            scores = labelled["probability"]
            expected.update(
                compute_metrics(
                    labelled["label"].astype(int).to_numpy(),
                    labelled["prediction"].to_numpy(),
                    None if scores.isna().any() else scores.to_numpy(),
                )
            )
        assert live[version] == expected, version
    assert live["v3"]["roc_auc"] is None and live["only-ones"]["roc_auc"] is None
    assert live["v1"]["roc_auc"] is not None
    assert live["unlabelled"] == {"n_captured": 120, "n_labelled": 0}


def label_trail(store: Store, row_id: int) -> list[tuple[int, int | None, str]]:
    """(label, previous label, source) of each label event of ``row_id``, oldest first."""
    query = (
        select(label_events.c.label, label_events.c.previous_label, label_events.c.source)
        .where(label_events.c.row_id == row_id)
        .order_by(label_events.c.id)
    )
    with store.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query)]  # type: ignore[misc]


def test_relabelling_is_recorded_and_live_f1_uses_the_latest_label(
    api: Any, store: Store, deployed: dict[str, Any]
) -> None:
    body = api.post("/prediction", json={"data": ROWS}).get_json()
    assert body["predictions"] == [0, 1]
    first, second = body["row_ids"]
    answer = api.post("/feedback", json={"request_id": body["request_id"], "labels": [1, 0]})
    assert answer.get_json() == {
        "labelled_rows": 2,
        "relabelled": 0,
        "request_ids": [body["request_id"]],
        "row_ids": [],
    }
    live = capture.live_performance(store)[deployed["model_version"]]
    assert live["accuracy"] == 0.0  # both labels wrong
    answer = api.post("/feedback", json={"feedback": [{"row_id": first, "label": 0}]})
    assert answer.get_json()["relabelled"] == 1
    answer = api.post("/feedback", json={"row_id": second, "label": 1})
    assert answer.get_json()["relabelled"] == 1
    assert label_trail(store, first) == [(1, None, "anonymous"), (0, 1, "anonymous")]
    assert label_trail(store, second) == [(0, None, "anonymous"), (1, 0, "anonymous")]
    live = capture.live_performance(store)[deployed["model_version"]]
    assert live["n_labelled"] == 2 and live["accuracy"] == 1.0  # the latest labels


def test_a_row_keeps_its_newest_label_events(api: Any, store: Store) -> None:
    [row_id, other] = api.post("/prediction", json={"data": ROWS}).get_json()["row_ids"]
    assert api.post("/feedback", json={"row_id": other, "label": 1}).status_code == 200
    for n in range(MAX_LABEL_EVENTS + 5):
        assert api.post("/feedback", json={"row_id": row_id, "label": n % 2}).status_code == 200
    trail = label_trail(store, row_id)
    assert len(trail) == MAX_LABEL_EVENTS
    labels = [n % 2 for n in range(MAX_LABEL_EVENTS + 5)][-MAX_LABEL_EVENTS:]
    assert [event[0] for event in trail] == labels
    assert label_trail(store, other) == [(1, None, "anonymous")]  # another row's untouched


def test_a_reused_x_request_id_does_not_break_another_clients_feedback(
    api: Any, settings: Settings, store: Store
) -> None:
    """Two clients sending the same X-Request-ID each get their own capture id."""
    one = api.post("/prediction", json={"data": ROWS}, headers={"X-Request-ID": "shared"})
    two = api.post("/prediction", json={"data": ROWS[:1]}, headers={"X-Request-ID": "shared"})
    assert one.headers["X-Request-ID"] == "shared" == two.headers["X-Request-ID"]
    first, second = one.get_json(), two.get_json()
    assert first["request_id"] != second["request_id"]
    ok = api.post("/feedback", json={"request_id": first["request_id"], "labels": [1, 0]})
    assert ok.status_code == 200 and ok.get_json()["labelled_rows"] == 2
    ok = api.post("/feedback", json={"request_id": second["request_id"], "labels": [1]})
    assert ok.status_code == 200 and ok.get_json()["labelled_rows"] == 1
    missing = api.post("/feedback", json={"request_id": "shared", "labels": [1]})
    assert missing.status_code == 404
    without = api.post("/prediction", json={"data": ROWS})  # no X-Request-ID: one id
    assert without.get_json()["request_id"] == without.headers["X-Request-ID"]


def test_a_404_names_only_the_first_unknown_ids_it_was_sent(api: Any, store: Store) -> None:
    known = api.post("/prediction", json={"data": ROWS}).get_json()["row_ids"]
    unknown = [known[-1] + 1000 + i for i in range(25)]
    items = [{"row_id": r, "label": 1} for r in [*known, *unknown]]
    response = api.post("/feedback", json={"feedback": items})
    assert response.status_code == 404
    assert response.get_json()["message"] == (
        f"unknown row ids: {unknown[:10]} and 15 more (never captured, sampled out or "
        "expired); no labels stored"
    )
    assert label_trail(store, known[0]) == []


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (
            {"row_id": 2**70, "label": 1},
            f"feedback item 0: 'row_id' must be between 1 and {2**63 - 1}, got "
            "1180591620717411303424",
        ),
        ({"row_id": 0, "label": 1}, "feedback item 0: 'row_id' must be between 1 and"),
        (
            {"request_id": "r" * 129, "labels": [1]},
            "feedback item 0: 'request_id' must be at most 128 letters, digits or '._:-'",
        ),
        (
            {"row_id": "x" * 5000, "label": 1},
            "feedback item 0: 'row_id' must be an integer, got 'xxxxxxxxxx",
        ),
    ],
    ids=[
        "row-id-2-to-the-70",
        "row-id-0",
        "request-id-129-chars",
        "row-id-text",
    ],
)
def test_feedback_ids_out_of_range_are_422(api: Any, item: Any, message: str) -> None:
    response = api.post("/feedback", json=item)
    assert response.status_code == 422
    assert response.get_json()["message"].startswith(message)
    assert len(response.get_json()["message"]) < 200  # a long id is not echoed whole


def test_a_feedback_request_id_with_a_lone_surrogate_is_a_400(api: Any) -> None:
    # The JSON guard refuses it before the view: a lone surrogate anywhere is a 400.
    body = b'{"request_id": "\\ud800", "labels": [1]}'
    response = api.post("/feedback", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["message"].startswith(
        "request body: the string at /request_id is not valid Unicode"
    )


@pytest.mark.slow
def test_feedback_for_tens_of_thousands_of_rows_at_once(
    api: Any, settings: Settings, store: Store
) -> None:
    """More ids than a statement takes parameters (PostgreSQL: 65,535) are looked up
    and labelled 10,000 at a time."""
    n = 70_000 if settings.database_url.startswith("postgresql") else 34_000
    body = api.post("/prediction", json={"data": ROWS * (n // 2)}).get_json()
    items = [{"row_id": r, "label": i % 2} for i, r in enumerate(body["row_ids"])]
    answer = api.post("/feedback", json={"feedback": items})
    assert answer.status_code == 200
    assert (answer.get_json()["labelled_rows"], answer.get_json()["relabelled"]) == (n, 0)
    again = api.post("/feedback", json={"feedback": items[:25_000]})
    assert again.get_json()["relabelled"] == 25_000
    with store.engine.connect() as conn:
        labels = conn.execute(select(func.sum(captured_predictions.c.label))).scalar_one()
        events = conn.execute(select(func.count()).select_from(label_events)).scalar_one()
    assert (labels, events) == (n // 2, n + 25_000)
    unknown = [{"row_id": body["row_ids"][-1] + 1 + i, "label": 1} for i in range(n)]
    missing = api.post("/feedback", json={"feedback": unknown})
    assert missing.status_code == 404
    assert f"and {n - 10} more (never captured" in missing.get_json()["message"]
