"""Estimated performance (CBPE) of captured traffic: chunks, realised values, API, metrics."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import insert

from app import create_app
from monitoring import capture
from monitoring.capture.estimation import estimated_performance
from monitoring.config import Settings
from monitoring.model.estimation import sampling_error_components
from monitoring.storage.schema import captured_predictions
from monitoring.storage.store import Store
from tests.helpers import metric_value

# Ten captured rows of version "v1": (probability, label), predicted 1 when p > 0.5.
ROWS = [
    (0.9, 1),
    (0.8, 1),
    (0.3, 0),
    (0.2, None),
    (0.7, 0),
    (0.6, 1),
    (0.4, 1),
    (0.1, 0),
    (0.9, None),
    (0.2, None),
]
REFERENCE = {
    "calibration": {"method": "none"},
    "sampling_error": sampling_error_components([1, 1, 0, 0], [1, 0, 1, 0]),
}
METADATA = {"performance_estimation": REFERENCE, "cv_score": {"f1": 0.9}}


def _capture(store: Store, rows: list[tuple[float, int | None]], stamps: list[str]) -> None:
    values = [
        {
            "request_id": f"r{i}",
            "row_index": 0,
            "captured_at": stamp,
            "model_version": "v1",
            "inputs": "{}",
            "prediction": int(p > 0.5),
            "probability": p,
            "label": label,
        }
        for i, ((p, label), stamp) in enumerate(zip(rows, stamps, strict=True))
    ]
    with store.engine.begin() as conn:
        conn.execute(insert(captured_predictions), values)


def test_row_chunks_are_estimated_from_the_newest_and_compared_once_labelled(
    make_settings: Callable[..., Settings], store: Store
) -> None:
    settings = make_settings(
        performance_estimation={"chunk_rows": 4, "max_chunks": 2, "min_chunk_rows": 3},
        capture={"min_labelled_rows": 2},
    )
    _capture(store, ROWS, [f"2026-12-01T10:00:{i:02d}.000000+00:00" for i in range(10)])
    found = estimated_performance(store, settings, "v1", METADATA)
    # Chunks of 4 from the oldest: 0 (rows 0-3), 1 (rows 4-7), 2 (rows 8-9, partial);
    # the newest 2 are shown.
    assert [(c["key"], c["n_rows"], c["complete"]) for c in found["chunks"]] == [
        ("1", 4, True),
        ("2", 2, False),
    ]
    first, second = found["chunks"]
    # Chunk 1: p 0.7 0.6 (predicted 1), 0.4 0.1 (predicted 0).
    # TP 1.3, FP 0.7, FN 0.5, TN 1.5; F1 = 2.6 / (2.6 + 1.2) = 0.684210...
    assert first["counts"] == pytest.approx({"tp": 1.3, "fp": 0.7, "fn": 0.5, "tn": 1.5})
    assert first["f1"] == pytest.approx(2.6 / 3.8)
    assert first["precision"] == pytest.approx(0.65)
    assert first["recall"] == pytest.approx(1.3 / 1.8)
    error = math.sqrt(2) / 2 / math.sqrt(4 * 0.75)
    assert first["sampling_error"]["f1"] == pytest.approx(error)
    assert first["start"] == "2026-12-01T10:00:04.000000+00:00"
    assert first["end"] == "2026-12-01T10:00:07.000000+00:00"
    # All four labelled: (pred, label) (1,0) (1,1) (0,1) (0,0): TP 1, FP 1, FN 1, TN 1.
    realised = first["realised"]
    assert realised["n_rows"] == 4 and realised["f1"] == 0.5
    assert realised["confusion_matrix"] == [[1, 1], [1, 1]]
    assert realised["estimated_f1"] == pytest.approx(2.6 / 3.8)
    assert realised["f1_error"] == pytest.approx(0.5 - 2.6 / 3.8)
    assert realised["within_band"] is True
    # Chunk 2 has no label; 2 rows are fewer than min_chunk_rows: the policy judges chunk 1.
    assert second["n_labelled"] == 0 and second["realised"] is None
    assert found["latest"]["key"] == "1"
    assert found["baseline_f1"] == 0.9 and found["tolerance"] == 0.05
    assert first["below_baseline"] is True and found["drop"] is True
    assert found["calibration"] == "none"


def test_period_chunks_follow_the_utc_calendar(
    make_settings: Callable[..., Settings], store: Store
) -> None:
    settings = make_settings(
        performance_estimation={
            "chunk_by": "period",
            "chunk_period": "day",
            "max_chunks": 2,
            "min_chunk_rows": 1,
        }
    )
    stamps = [
        *["2026-11-29T23:00:00.000000+00:00"] * 3,  # older than the 2 days shown
        *["2026-11-30T08:00:00.000000+00:00"] * 4,
        *["2026-12-01T01:00:00.000000+00:00"] * 3,
    ]
    _capture(store, ROWS, stamps)
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    found = estimated_performance(store, settings, "v1", METADATA, now=now)
    chunking = {"by": "period", "period": "day", "timezone": "UTC", "max_chunks": 2}
    assert found["chunking"] == chunking
    assert [(c["key"], c["n_rows"], c["complete"]) for c in found["chunks"]] == [
        ("2026-11-30", 4, True),
        ("2026-12-01", 3, False),  # today: still filling
    ]
    # 2026-12-01: p 0.1 (0), 0.9 (1), 0.2 (0): TP 0.9, FP 0.1, FN 0.3.
    assert found["latest"]["counts"]["tp"] == pytest.approx(0.9)
    assert found["latest"]["f1"] == pytest.approx(1.8 / 2.2)


def test_no_captured_rows_no_chunks(settings: Settings, store: Store) -> None:
    found = estimated_performance(store, settings, "v1", {})
    assert found["chunks"] == [] and found["latest"] is None and found["drop"] is False
    assert found["calibration"].startswith("none (model trained before")


def test_scoring_and_metrics_show_the_estimate_of_the_live_model(
    make_settings: Callable[..., Settings], store: Store, deployed: dict[str, Any]
) -> None:
    version = deployed["model_version"]
    reference = store.model_version(version, with_bytes=False)["metadata"]["performance_estimation"]
    assert reference["n_rows"] > 0
    assert set(reference["sampling_error"]) == {"f1", "precision", "recall"}
    small_chunks = make_settings(performance_estimation={"chunk_rows": 5, "min_chunk_rows": 5})
    client = create_app(small_chunks, {"TESTING": True}).test_client()
    body = client.post("/prediction", json={"dataset_path": "data/testdata/testdata.csv"})
    assert body.status_code == 200
    capture.import_journals(store, small_chunks)
    scoring = client.get("/scoring").get_json()
    assert {"model_drift", "live_performance", "f1"} <= set(scoring)  # the keys before
    estimated = scoring["estimated_performance"]
    assert estimated["model_version"] == version
    [chunk] = estimated["chunks"]
    assert chunk["n_rows"] == 5 and chunk["complete"] is True
    assert estimated["latest"] == chunk
    text = client.get("/metrics").get_data(as_text=True)
    assert metric_value(text, "monitoring_estimated_f1", model_version=version) == pytest.approx(
        chunk["f1"]
    )
    for bound in ("lower", "upper"):
        got = metric_value(text, f"monitoring_estimated_f1_{bound}", model_version=version)
        assert got == pytest.approx(chunk[bound]["f1"])


def test_the_pipeline_retrains_on_an_estimated_drop_only_when_the_policy_says_so(
    make_settings: Callable[..., Settings], store: Store, deployed: dict[str, Any]
) -> None:
    from monitoring.pipeline import run_full_process

    version = deployed["model_version"]
    # Mostly confident negatives (estimated FN ~ 0.45 each), one weak positive.
    rows = [(0.45, None)] * 9 + [(0.51, None)]
    _capture(store, rows, [f"2026-12-01T10:00:{i:02d}.000000+00:00" for i in range(10)])
    with store.engine.begin() as conn:
        conn.execute(captured_predictions.update().values(model_version=version))
    common = {
        "input_folder_path": "data/sourcedata",  # new data: the pipeline looks
        "performance_estimation": {"chunk_rows": 10, "min_chunk_rows": 10},
    }
    off = {"retrain_on_model_drift": False, "retrain_on_data_drift": False}
    ignoring = make_settings(**common, policy=off)
    metadata = store.model_version(version, with_bytes=False)["metadata"]
    assert estimated_performance(store, ignoring, version, metadata)["drop"] is True
    record = run_full_process(ignoring, store=store)
    evidence = record["evidence"]["estimated_performance"]
    assert evidence["drop"] is True and evidence["latest"]["n_rows"] == 10
    assert record["evidence"]["retrain_reasons"] == []
    assert record["outcome"] != "deployed"

    acting = make_settings(**common, policy={**off, "retrain_on_estimated_f1_drop": True})
    (acting.input_folder_path / "extra.csv").write_text(
        (acting.input_folder_path / "dataset3.csv").read_text()
    )  # unseen again: another file name
    record = run_full_process(acting, store=store)
    assert record["evidence"]["retrain_reasons"] == ["estimated F1 drop (no labels: CBPE)"]
    assert record["evidence"]["challenger"] is not None


def _churn_rows(rng: np.random.Generator, n: int, shift: float) -> pd.DataFrame:
    """Generated clients with a known P(exited | X); ``shift`` moves last month's activity
    (covariate shift: who the clients are changes, not how they churn)."""
    lastmonth = rng.normal(100.0 + shift, 40.0, n)
    lastyear = rng.normal(1000.0, 400.0, n)
    employees = rng.integers(1, 200, n).astype(float)
    logit = -0.03 * (lastmonth - 100.0) + 0.002 * (lastyear - 1000.0) + 0.004 * employees - 0.8
    exited = (rng.uniform(0.0, 1.0, n) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    return pd.DataFrame(
        {
            "corporation": [f"c{i}" for i in range(n)],
            "lastmonth_activity": lastmonth.round(2),
            "lastyear_activity": lastyear.round(2),
            "number_of_employees": employees,
            "exited": exited,
        }
    )


@pytest.mark.slow  # trains on 3000 generated rows and predicts 2000 over the API
def test_end_to_end_on_generated_data_with_a_planted_shift(
    make_settings: Callable[..., Settings], store: Store, project: Path
) -> None:
    from monitoring.pipeline import bootstrap

    rng = np.random.default_rng(7)
    for folder in ("practicedata", "testdata"):
        for old in (project / "data" / folder).glob("*.csv"):
            old.unlink()
    _churn_rows(rng, 3000, 0.0).to_csv(project / "data/practicedata/generated.csv", index=False)
    _churn_rows(rng, 500, 0.0).to_csv(project / "data/testdata/testdata.csv", index=False)
    settings = make_settings(performance_estimation={"chunk_rows": 1000, "min_chunk_rows": 500})
    bootstrap(settings, store)
    client = create_app(settings, {"TESTING": True}).test_client()
    chunks = [_churn_rows(rng, 1000, 0.0), _churn_rows(rng, 1000, -80.0)]  # planted shift
    for rows in chunks:
        data = rows.drop(columns="exited").to_dict(orient="records")
        body = client.post("/prediction", json={"data": data}).get_json()
        capture.import_journals(store, settings)
        labels = {"request_id": body["request_id"], "labels": rows["exited"].tolist()}
        assert client.post("/feedback", json=labels).status_code == 200
    found = client.get("/scoring").get_json()["estimated_performance"]
    assert [c["n_rows"] for c in found["chunks"]] == [1000, 1000]
    before, after = found["chunks"]
    for chunk in found["chunks"]:
        realised = chunk["realised"]
        assert realised["n_rows"] == 1000
        assert realised["estimated_f1"] == pytest.approx(chunk["f1"])  # every row labelled
        assert abs(realised["f1_error"]) < 0.05, chunk
        assert realised["within_band"] is True
    assert after["realised"]["f1"] - before["realised"]["f1"] > 0.1  # the shift mattered
    assert after["f1"] - before["f1"] > 0.1  # and the estimate saw it without labels
