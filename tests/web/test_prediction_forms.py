"""Every request form of /prediction goes through the columnar readers (pyarrow's CSV
reader, orjson then Arrow for JSON rows) and answers exactly what the checked DataFrame
path answers; the values reach the model and the capture bit for bit."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import numpy as np
import pandas as pd
import pytest
from flask import Flask

from monitoring import capture
from monitoring.config import Settings
from monitoring.data.payloads import batch_from_request
from monitoring.model.artifact import round6
from monitoring.model.deployment import load_deployed
from monitoring.storage.files import read_table
from monitoring.storage.store import Store
from tests.helpers import FEATURES


def _forms(settings: Settings) -> dict[str, dict[str, Any]]:
    """The test file's rows in each form, as clients send them (ids and target included)."""
    path = settings.test_data_file
    rows = json.loads(pd.read_csv(path).to_json(orient="records"))
    return {
        "json": {"json": {"data": rows}},
        "csv": {"data": path.read_bytes(), "content_type": "text/csv"},
        "path": {"query_string": {"dataset_path": settings.relative(path)}},
    }


def test_every_form_answers_what_the_checked_path_answers(
    api: Any, settings: Settings, store: Store
) -> None:
    artifact = load_deployed(store)
    frame = read_table(settings.test_data_file)
    expected = artifact.predict(frame, input_name="x")
    assert len(expected["predictions"]) == 5
    for name, form in _forms(settings).items():
        body = api.post("/prediction", **form).get_json()
        assert body["predictions"] == expected["predictions"], name
        assert body["probabilities"] == expected["probabilities"], name
        assert body["n_rows"] == 5 and len(body["row_ids"]) == 5, name


def test_the_forms_are_read_by_the_columnar_readers(settings: Settings) -> None:
    app = Flask(__name__)
    for name, form in _forms(settings).items():
        with app.test_request_context("/prediction", method="POST", **form):
            from flask import request

            batch = batch_from_request(request, settings)
        assert batch.table is not None, name
        # (the test client's JSON sorts keys; a table keeps the order the rows give)
        assert sorted(batch.table.column_names) == sorted(["corporation", *FEATURES, "exited"])
        matrix = batch.matrix(FEATURES)
        assert matrix is not None and matrix.flags.c_contiguous, name
        checked = read_table(settings.test_data_file)[FEATURES].to_numpy(np.float64)
        assert matrix.tobytes() == checked.tobytes(), name


def test_a_json_float_reads_bit_identical_to_the_csv_one(settings: Settings) -> None:
    rng = np.random.default_rng(3)
    values = rng.standard_normal((200, 3)) * 10.0 ** rng.integers(-200, 200, (200, 3))
    text = "\n".join(",".join(repr(float(v)) for v in row) for row in values)
    csv_body = (",".join(FEATURES) + "\n" + text + "\n").encode()
    rows = [dict(zip(FEATURES, map(float, row), strict=True)) for row in values]
    app = Flask(__name__)
    matrices = []
    for form in ({"data": csv_body, "content_type": "text/csv"}, {"json": {"data": rows}}):
        with app.test_request_context("/prediction", method="POST", **form):
            from flask import request

            batch = batch_from_request(request, settings)
        matrices.append(batch.matrix(FEATURES))
    assert matrices[0] is not None and matrices[1] is not None
    assert matrices[0].tobytes() == matrices[1].tobytes() == values.tobytes()


@pytest.mark.parametrize(
    "body",
    [
        {"data": [{"lastmonth_activity": 1, "lastyear_activity": None, "number_of_employees": 2}]},
        {"data": [{"lastmonth_activity": 1, "lastyear_activity": "3", "number_of_employees": 2}]},
        {"data": [{"lastmonth_activity": 1, "number_of_employees": 2}]},
    ],
)
def test_rows_that_are_not_plainly_valid_take_the_checked_path(
    settings: Settings, body: dict[str, Any]
) -> None:
    app = Flask(__name__)
    with app.test_request_context("/prediction", method="POST", json=body):
        from flask import request

        batch = batch_from_request(request, settings)
    assert batch.matrix(FEATURES) is None  # the model's checks then name the problem


@pytest.mark.parametrize("arrow_min_rows", [0, 64], ids=["arrow-record", "json-line"])
def test_captured_inputs_are_the_values_sent(
    api: Any, settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch, arrow_min_rows: int
) -> None:
    """The same values whichever journal line carries the batch (an Arrow record from
    ``ARROW_MIN_ROWS`` rows, a JSON line made from the Arrow table below it)."""
    from monitoring.capture import records

    monkeypatch.setattr(records, "ARROW_MIN_ROWS", arrow_min_rows)
    csv_body = (
        b"corporation,lastmonth_activity,lastyear_activity,number_of_employees,exited\n"
        b'a "q",0.1,3,1e-300,1\n'
        b",2.5,12345678901234567,-7,\n"
    )
    body = api.post("/prediction", data=csv_body, content_type="text/csv").get_json()
    rows = capture.captured(store, settings, request_id=body["request_id"])
    assert [r["inputs"] for r in rows] == [
        {
            "corporation": 'a "q"',
            "lastmonth_activity": 0.1,
            "lastyear_activity": 3,
            "number_of_employees": 1e-300,
            "exited": 1,
        },
        {
            "corporation": "",
            "lastmonth_activity": 2.5,
            "lastyear_activity": 12345678901234567,  # an integer column: exact
            "number_of_employees": -7.0,
            "exited": None,
        },
    ]
    assert [r["id"] for r in rows] == body["row_ids"]


def test_round6_is_python_round() -> None:
    rng = np.random.default_rng(5)
    ties = (np.arange(0, 1_000_000, 7) + 0.5) / 1e6  # halves of the 6th decimal
    values = np.concatenate([rng.random(50_000), ties, [0.0, 1.0, 1e-300, 0.9999995]])
    assert round6(values).tolist() == [round(float(v), 6) for v in values]
    assert round6(values[-10:]).tolist() == [round(float(v), 6) for v in values[-10:]]


@pytest.mark.parametrize("cache_bytes", [64 << 20, 0])
def test_a_dataset_file_rewritten_is_scored_as_it_is_now(
    make_settings: Any, deployed: dict[str, Any], cache_bytes: int
) -> None:
    """``?dataset_path=`` files are parsed once per version (``api.dataset_cache_bytes``)
    or on every request (0): either way a rewritten file is scored as it now is."""
    from app import create_app

    settings = make_settings(api={"dataset_cache_bytes": cache_bytes})
    client = create_app(settings, {"TESTING": True}).test_client()
    path = settings.test_data_path / "scored.csv"
    frame = read_table(settings.test_data_file)

    def write(rows: pd.DataFrame) -> None:
        rows.to_csv(path, index=False)
        then = time.time() - 60  # settled: past the cache's racy window
        os.utime(path, (then, then))

    def answer() -> list[float]:
        body = client.post("/prediction", query_string={"dataset_path": "scored.csv"})
        assert body.status_code == 200, body.get_json()
        return body.get_json()["probabilities"]

    write(frame)
    first = answer()
    assert answer() == first
    write(frame.iloc[::-1])
    assert answer() == first[::-1]
    write(frame.iloc[:2])
    assert answer() == first[:2]
