"""Prediction capture, delayed labels through POST /feedback, live performance."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from app import create_app
from monitoring import capture
from monitoring.capture import journal
from monitoring.config import Settings
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
    api: Any, store: Store, deployed: dict[str, Any]
) -> None:
    response = api.post("/prediction", json={"data": ROWS}, headers={"X-Request-ID": "req-1"})
    body = response.get_json()
    assert response.status_code == 200
    assert body["request_id"] == "req-1" == response.headers["X-Request-ID"]
    assert len(body["row_ids"]) == 2
    rows = capture.captured(store, request_id="req-1")
    assert [r["id"] for r in rows] == body["row_ids"]
    assert [r["row_index"] for r in rows] == [0, 1]
    assert [r["prediction"] for r in rows] == body["predictions"] == [0, 1]
    assert [r["probability"] for r in rows] == body["probabilities"]
    assert rows[0]["inputs"] == ROWS[0]
    assert {r["model_version"] for r in rows} == {deployed["model_version"]}
    assert all(r["label"] is None for r in rows)


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


def test_feedback_with_unknown_ids_is_404_and_stores_nothing(api: Any, store: Store) -> None:
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
    assert all(r["label"] is None for r in capture.captured(store, request_id=known["request_id"]))


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
    api.post("/prediction", json={"data": ROWS}, headers={"X-Request-ID": "R"})
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
    assert capture.captured(store, request_id=body["request_id"]) == []
    response = client.post("/feedback", json={"request_id": body["request_id"], "labels": [1, 0]})
    assert response.status_code == 404


def test_retention_deletes_old_rows(api: Any, settings: Settings, store: Store) -> None:
    body = api.post("/prediction", json={"data": ROWS}).get_json()
    later = datetime.now(UTC) + timedelta(days=settings.capture.retention_days + 1)
    assert capture.purge(store, settings, now=later) == 2
    assert capture.captured(store, request_id=body["request_id"]) == []


def test_the_capture_writer_checkpoints_purges_and_stops_in_the_background(
    api: Any, settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checkpoints and retention run off the request path, and the thread ends when idle."""
    import sqlite3
    import time

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


CAPTURE_IN_A_PROCESS = """
import json, os, signal, sys
import pandas as pd
from monitoring import capture
from monitoring.capture import journal
from monitoring.config import load_settings
from monitoring.storage.store import Store
journal.IMPORT_EVERY = float(os.environ.get("TEST_IMPORT_EVERY", journal.IMPORT_EVERY))
settings = load_settings(sys.argv[1], env={})
store = Store(settings.database_url)
frame = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
result = {"predictions": [0, 1, 0], "probabilities": [0.1, 0.9, 0.2]}
ids = {}
for i in range(int(sys.argv[3])):
    rid = f"{sys.argv[2]}-{i}"
    ids[rid] = capture.record(
        store, settings, request_id=rid, model_version="v", frame=frame, result=result
    )
print(json.dumps(ids), flush=True)
if sys.argv[4] == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
"""


def capture_in_processes(settings: Settings, runs: list[tuple[str, int, str]], **env: str) -> dict:
    """Run ``record`` in separate processes at once; their request ids -> row ids."""
    import json
    import subprocess
    import sys

    from monitoring.config import PROJECT_ROOT

    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CAPTURE_IN_A_PROCESS, str(settings.config_path), *map(str, run)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=PROJECT_ROOT,
            env={**os.environ, **env},
        )
        for run in runs
    ]
    ids: dict = {}
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        ids.update(json.loads(out.strip().splitlines()[-1]))
    return ids


def test_rows_journalled_by_a_killed_process_are_imported_once(
    settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = capture_in_processes(settings, [("killed", 5, "kill")])
    folder = journal.journal_folder(store.engine.url.database)
    assert len(list(folder.glob("*.jsonl"))) == 1  # nothing imported it yet
    for rid, row_ids in ids.items():
        assert [r["id"] for r in capture.captured(store, request_id=rid)] == row_ids
    # Another process's background thread imports and removes the dead journal.
    monkeypatch.setattr(journal, "IMPORT_EVERY", 0.02)
    frame = pd.DataFrame({"x": [1.0]})
    capture.record(
        store,
        settings,
        request_id="later",
        model_version="v",
        frame=frame,
        result={"predictions": [1], "probabilities": [0.7]},
    )
    deadline = time.monotonic() + 10
    while [p for p in folder.glob("*.jsonl") if not p.name.startswith(f"{os.getpid()}-")]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    capture.import_journals(store)
    total = sum(len(capture.captured(store, request_id=rid)) for rid in ids)
    assert total == 15  # each row exactly once


def test_a_finished_journal_longer_than_a_batch_is_imported_whole_before_removal(
    settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The process never imports: its whole journal is left.
    ids = capture_in_processes(settings, [("dead", 12, "kill")], TEST_IMPORT_EVERY="3600")
    database = str(store.file)
    [journal_file] = journal.journal_folder(database).glob("*.jsonl")
    monkeypatch.setattr(journal, "IMPORT_BATCH", 250)
    assert journal_file.stat().st_size > 3 * 250  # several batches
    importer = journal._Importer(database)
    try:
        assert importer.cycle(block=False)
    finally:
        importer.close()
    assert not journal_file.exists()
    with sqlite3.connect(database) as connection:
        stored = {r[0] for r in connection.execute("SELECT id FROM captured_predictions")}
    assert stored >= {i for row_ids in ids.values() for i in row_ids}


def test_concurrent_processes_get_unique_consecutive_row_ids(
    settings: Settings, store: Store
) -> None:
    ids = capture_in_processes(settings, [("a", 150, "exit"), ("b", 150, "exit")])
    flat = [i for row_ids in ids.values() for i in row_ids]
    assert len(flat) == len(set(flat)) == 900
    for rid, row_ids in ids.items():
        assert row_ids == list(range(row_ids[0], row_ids[0] + 3))
        assert [r["id"] for r in capture.captured(store, request_id=rid)] == row_ids


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


def test_the_importer_runs_at_idle_priority_and_writes_at_normal_priority() -> None:
    import subprocess
    import sys

    from monitoring.config import PROJECT_ROOT

    code = """
import os
from monitoring.capture import journal
journal.use_idle_priority()
if journal._idle_priority:
    assert os.sched_getscheduler(0) == os.SCHED_IDLE
    with journal._write_priority():
        assert os.sched_getscheduler(0) == os.SCHED_OTHER
    assert os.sched_getscheduler(0) == os.SCHED_IDLE
    print("idle")
else:
    assert os.nice(0) == 19
    print("nice")
"""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    # The documented rule: idle priority where the process may return to nice 0 for its
    # writes (root, or RLIMIT_NICE allowing it), else nice 19.
    import resource

    limit = resource.getrlimit(resource.RLIMIT_NICE)[0]
    may_return = os.geteuid() == 0 or limit == resource.RLIM_INFINITY or limit >= 20
    assert done.stdout.strip() == ("idle" if may_return else "nice")


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
    from monitoring.storage.store import captured_predictions

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
