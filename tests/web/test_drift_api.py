"""Drift over the API: GET/POST /drift, /drift/history, model drift in /scoring, /runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, update

from app import create_app
from monitoring import readmodels
from monitoring.data.ingestion import ingest
from monitoring.pipeline import run_full_process
from monitoring.readmodels import ReadModels
from monitoring.storage.files import read_table
from monitoring.storage.schema import data_profiles, drift_reports
from monitoring.storage.store import Store
from tests.helpers import FEATURES, error_body, metric_samples


def test_get_drift_on_the_training_data_finds_none_and_records_nothing(
    client: Any, store: Store, deployed: dict[str, Any]
) -> None:
    body = client.get("/drift").get_json()
    assert body["model_version"] == deployed["model_version"]
    assert body["source"] == "ingested"
    assert (body["dataset_drift"], body["drifted_columns"], body["n_columns"]) == (False, [], 3)
    assert [c["column"] for c in body["columns"]] == FEATURES
    assert all(c["statistic"] == 0.0 and c["p_value"] == 1.0 for c in body["columns"])
    assert store.drift_reports() == []


def test_get_drift_checks_the_stored_profile_as_it_would_the_data(
    client: Any, make_settings: Any, store: Store, deployed: dict[str, Any]
) -> None:
    """Drift of the latest ingestion's profile: the report of the ingested data itself,
    without reading finaldata.csv."""
    source = make_settings(input_folder_path="data/sourcedata")
    ingest(source, store=store)
    frame = read_table(source.finaldata_file)
    source.finaldata_file.unlink()
    body = client.get("/drift").get_json()
    expected = ReadModels(source, store).drift.report(frame, input_name="x", source="ingested")
    assert body.pop("computed_at") <= expected.pop("computed_at")  # checked first
    assert body == expected
    assert body["drifted_columns"] == FEATURES and body["n_current"] == 26
    p_values = [round(c["p_value"], 4) for c in body["columns"]]
    assert p_values == [0.0071, 0.0008, 0.0026]  # KS against the practice training data


def test_get_drift_is_computed_once_per_model_and_profile(
    client: Any, app: Any, settings: Any, store: Store, deployed: dict[str, Any], monkeypatch: Any
) -> None:
    calls: list[int] = []
    real = readmodels.detect_data_drift
    monkeypatch.setattr(
        readmodels, "detect_data_drift", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    first = client.get("/drift").get_json()
    assert client.get("/drift").get_json() == first and len(calls) == 1
    store.add_timing("training", 1.0)  # another record: the same profile
    assert client.get("/drift").get_json() == first and len(calls) == 1
    ingest(settings, store=store)  # a new profile of the same data
    again = client.get("/drift").get_json()
    assert len(calls) == 2 and again["computed_at"] > first["computed_at"]


def test_get_drift_needs_an_ingestion_in_the_store(
    client: Any, settings: Any, store: Store, deployed: dict[str, Any]
) -> None:
    with store.engine.begin() as conn:
        conn.execute(delete(data_profiles))
    error_body(client.get("/drift"), 503, "no data has been ingested yet")
    ingest(settings, store=store)
    assert client.get("/drift").status_code == 200


def test_post_drift_with_the_source_data_is_detected_and_recorded(
    client: Any, settings: Any, store: Store, deployed: dict[str, Any]
) -> None:
    csv = (settings.input_folder_path.parent / "sourcedata" / "dataset4.csv").read_bytes()
    body = client.post("/drift", data=csv, content_type="text/csv").get_json()
    assert body["source"] == "request" and body["n_current"] == 15
    assert body["dataset_drift"] is True
    assert "lastmonth_activity" in body["drifted_columns"]
    history = client.get("/drift/history").get_json()["reports"]
    assert [(r["id"], r["source"], r["dataset_drift"]) for r in history] == [
        (body["id"], "request", True)
    ]
    assert history[0]["drifted_columns"] == body["drifted_columns"]
    assert "report" not in history[0]
    full = client.get("/drift/history?full=1&limit=1").get_json()["reports"][0]
    assert [c["column"] for c in full["report"]["columns"]] == FEATURES


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=abc", "query parameter 'limit' must be an integer, got 'abc'"),
        ("limit=0", "query parameter 'limit' must be between 1 and 1000"),
    ],
)
def test_drift_history_bad_query(
    client: Any, deployed: dict[str, Any], query: str, message: str
) -> None:
    response = client.get(f"/drift/history?{query}")
    assert response.status_code == 422
    assert response.get_json()["message"] == message


def test_post_drift_needs_the_feature_columns(client: Any, deployed: dict[str, Any]) -> None:
    response = client.post("/drift", json={"data": [{"lastmonth_activity": 1}]})
    assert response.status_code == 422
    assert "request body: missing column(s) 'lastyear_activity'" in response.get_json()["message"]


def test_scoring_reports_model_drift_after_a_run_and_runs_are_queryable(
    client: Any, make_settings: Any, store: Store, deployed: dict[str, Any]
) -> None:
    before = client.get("/scoring").get_json()["model_drift"]
    assert before["drift"] is False
    assert before["reason"] == "the deployed model has not been scored on newly ingested data yet"

    source = make_settings(input_folder_path="data/sourcedata", training={"window": "new"})
    run_full_process(source, store=store)  # the challenger, on 26 rows, is rejected
    after = client.get("/scoring").get_json()["model_drift"]
    # F1 18/26 on the new data against 8/11 out of sample: within the 0.05 tolerance.
    assert after["drift"] is False
    assert after["checks"]["new_data"]["baseline"] == pytest.approx(8 / 11)
    assert after["checks"]["new_data"]["baseline_dataset"] == (
        "cross-validation on the training data"
    )
    assert after["checks"]["new_data"]["new"] == pytest.approx(18 / 26)

    [run] = client.get("/runs").get_json()["runs"]
    assert run["outcome"] == "rejected"
    assert run["evidence"]["data_drift"]["dataset_drift"] is True
    assert run["evidence"]["gate"]["accepted"] is False
    versions = client.get("/versions").get_json()
    assert [v["live"] for v in versions["versions"]] == [True]


def _post_drifted(client: Any, settings: Any) -> dict[str, Any]:
    csv = (settings.input_folder_path.parent / "sourcedata" / "dataset4.csv").read_bytes()
    response = client.post("/drift", data=csv, content_type="text/csv")
    assert response.status_code == 200
    return dict(response.get_json())


def _drift_metrics(client: Any) -> dict[str, float | None]:
    samples = metric_samples(client.get("/metrics").get_data(as_text=True))
    names = ("monitoring_data_drift_detected", "monitoring_data_drift_drifted_columns")
    return {name: samples.get((name, ())) for name in names}


def test_adhoc_drift_is_marked_and_never_drives_the_drift_metric(
    client: Any, settings: Any, store: Store, deployed: dict[str, Any]
) -> None:
    body = _post_drifted(client, settings)
    assert body["adhoc"] is True and body["dataset_drift"] is True
    no_verdict = {
        "monitoring_data_drift_detected": None,
        "monitoring_data_drift_drifted_columns": None,
    }
    assert _drift_metrics(client) == no_verdict
    store.add_drift_report(
        {"dataset_drift": False, "drifted_columns": []}, model_version="v", source="pipeline"
    )
    calm = {"monitoring_data_drift_detected": 0.0, "monitoring_data_drift_drifted_columns": 0.0}
    assert _drift_metrics(client) == calm
    again = _post_drifted(client, settings)  # a client's drifted batch cannot raise it
    assert _drift_metrics(client) == calm
    store.add_drift_report(  # the operator's drift command: a check, not the pipeline's
        {"dataset_drift": True, "drifted_columns": ["a"]}, model_version="v", source="ingested"
    )
    assert _drift_metrics(client) == calm
    store.add_drift_report(
        {"dataset_drift": True, "drifted_columns": ["a", "b"]}, model_version="v", source="pipeline"
    )
    assert _drift_metrics(client) == {
        "monitoring_data_drift_detected": 1.0,
        "monitoring_data_drift_drifted_columns": 2.0,
    }
    history = client.get("/drift/history").get_json()["reports"]
    assert [(r["source"], r["adhoc"]) for r in history] == [
        ("pipeline", False),
        ("ingested", False),
        ("request", True),
        ("pipeline", False),
        ("request", True),
    ]
    assert [history[2]["id"], history[4]["id"]] == [again["id"], body["id"]]
    full = client.get("/drift/history?full=1&limit=1").get_json()["reports"]
    assert full[0]["adhoc"] is False


def test_adhoc_drift_reports_are_kept_within_their_count_and_age(
    make_settings: Any, store: Store, deployed: dict[str, Any]
) -> None:
    settings = make_settings(drift={"max_adhoc_reports": 2, "adhoc_retention_days": 7})
    client = create_app(settings, {"TESTING": True}).test_client()
    pipeline_id = store.add_drift_report(
        {"dataset_drift": False}, model_version="v", source="pipeline"
    )
    old_id = store.add_drift_report({"dataset_drift": True}, model_version="v", source="request")
    eight_days_ago = (datetime.now(UTC) - timedelta(days=8)).isoformat(timespec="microseconds")
    with store.engine.begin() as conn:
        conn.execute(
            update(drift_reports)
            .where(drift_reports.c.id.in_([old_id, pipeline_id]))
            .values(created_at=eight_days_ago)
        )
    first = _post_drifted(client, settings)
    ids = [r["id"] for r in store.drift_reports()]
    assert ids == [first["id"], pipeline_id]  # the old ad-hoc report went; the pipeline's stays
    posted = [_post_drifted(client, settings)["id"] for _ in range(3)]
    assert [r["id"] for r in store.drift_reports()] == [posted[2], posted[1], pipeline_id]
