"""The fast paths of the request hot path give exactly what the slow paths give."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from monitoring.data.ingestion import write_csv
from monitoring.data.payloads import frame_from_records
from monitoring.exceptions import DataValidationError
from monitoring.model.artifact import Artifact

FEATURES = ["lastmonth_activity", "lastyear_activity", "number_of_employees"]


def _artifact(estimator: Any, rng: np.random.Generator) -> tuple[Artifact, pd.DataFrame]:
    frame = pd.DataFrame(rng.normal(size=(400, 3)) * [300, 2000, 50], columns=FEATURES)
    target = (frame["lastyear_activity"] + rng.normal(size=400) * 900 > 0).astype(int)
    estimator.fit(frame, target)
    metadata = {"version": "v", "features": FEATURES}
    return Artifact(estimator=estimator, metadata=metadata, folder=Path(".")), frame


@pytest.mark.parametrize("solver", ["liblinear", "lbfgs"])
def test_logistic_regression_fast_path_equals_predict_proba(
    rng: np.random.Generator, solver: str
) -> None:
    artifact, frame = _artifact(LogisticRegression(solver=solver), rng)
    for rows in (1, 10, 400):
        matrix = np.ascontiguousarray(frame.iloc[:rows].to_numpy(dtype="float64"))
        expected = artifact.estimator.predict_proba(frame.iloc[:rows])[:, 1]
        assert np.array_equal(artifact.positive_proba(matrix), expected)
    result = artifact.predict(frame)
    assert result["predictions"] == [int(v) for v in artifact.estimator.predict(frame)]


def test_other_estimators_use_predict_proba(rng: np.random.Generator) -> None:
    artifact, frame = _artifact(RandomForestClassifier(n_estimators=5, random_state=0), rng)
    matrix = frame.to_numpy(dtype="float64")
    expected = artifact.estimator.predict_proba(frame)[:, 1]
    assert np.array_equal(artifact.positive_proba(matrix), expected)


ROWS = [
    {"lastmonth_activity": 234, "lastyear_activity": 3, "number_of_employees": 10},
    {"lastmonth_activity": 14.5, "lastyear_activity": 2145, "number_of_employees": 99},
]


def test_records_fast_path_matches_pandas() -> None:
    fast = frame_from_records(ROWS, FEATURES)
    slow = pd.DataFrame.from_records(ROWS)
    assert list(fast.columns) == FEATURES
    assert np.array_equal(fast.to_numpy(dtype="float64"), slow.to_numpy(dtype="float64"))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, "column 'lastyear_activity' must be a number; row 1 has True"),
        ("3", "column 'lastyear_activity' must be a number; row 1 has '3'"),
        ([3], "column 'lastyear_activity' must be a number; row 1 has [3]"),
        (float("nan"), "column 'lastyear_activity' must be finite; row 1 has nan"),
        (float("-inf"), "column 'lastyear_activity' must be finite; row 1 has -inf"),
        (10**400, "column 'lastyear_activity' must be finite; row 1 has an integer of 401 digits"),
    ],
)
def test_records_that_are_not_plain_numbers_are_refused_by_row_and_column(
    value: object, message: str
) -> None:
    rows = [ROWS[0], {**ROWS[1], "lastyear_activity": value}]
    with pytest.raises(DataValidationError, match=re.escape(message)):
        frame_from_records(rows, FEATURES)


def test_plain_records_of_any_size_and_both_layouts_give_the_same_matrix() -> None:
    rows = [*ROWS, {**ROWS[0], "lastyear_activity": 2**70}]
    by_row = frame_from_records(rows, FEATURES)
    by_column = frame_from_records({c: [r[c] for r in rows] for c in FEATURES}, FEATURES)
    expected = np.array([[r[c] for c in FEATURES] for r in rows], dtype="float64")
    for frame in (by_row, by_column):
        assert list(frame.columns) == FEATURES
        assert np.array_equal(frame.to_numpy(), expected)
    assert by_row.to_numpy()[2, 1] == 1.1805916207174113e21


def test_rows_with_extra_or_missing_keys_keep_pandas_semantics(rng: np.random.Generator) -> None:
    extra = frame_from_records([{**ROWS[0], "corporation": "abc"}], FEATURES)
    assert list(extra.columns) == [*FEATURES, "corporation"]
    gap = frame_from_records([{**ROWS[0], "number_of_employees": None}], FEATURES)
    artifact, _ = _artifact(LogisticRegression(), rng)
    with pytest.raises(DataValidationError, match="has a missing value at row 0"):
        artifact.predict(gap, input_name="request body")
    reordered = frame_from_records([dict(reversed(list(ROWS[0].items())))], FEATURES)
    assert list(reordered.columns) == FEATURES


def test_feature_matrix_fast_path_refuses_non_finite(rng: np.random.Generator) -> None:
    artifact, _ = _artifact(LogisticRegression(), rng)
    frame = pd.DataFrame([[1.0, np.inf, 3.0]], columns=FEATURES)
    with pytest.raises(DataValidationError, match="infinite value at row 0"):
        artifact.feature_matrix(frame, input_name="x")


@pytest.mark.parametrize(
    "frame",
    [
        pd.DataFrame(
            {
                "corporation": pd.array(["a", None, "x y", ""], dtype="string"),
                "a": [1, 2, 3, 4],
                "f": [0.1, np.nan, 1e20, -0.0],
            }
        ),
        pd.DataFrame({"corporation": pd.array(["a,b", 'q"', "x", None], dtype="string"), "a": 1}),
        pd.DataFrame({"f": [1.0, np.nan]}),
        pd.DataFrame({"i": np.array([1, 2], dtype="int32"), "f": np.array([1.5, 2], "float32")}),
        pd.DataFrame({"c": pd.array(list("ab"), dtype="str"), "f": [1.234e-7, 5e-324]}),
    ],
)
def test_write_csv_is_byte_identical_to_pandas(frame: pd.DataFrame) -> None:
    handle = io.BytesIO()
    write_csv(frame, handle)
    assert handle.getvalue().decode() == frame.to_csv(index=False)


def test_cached_diagnostics_and_scoring_follow_the_store(
    deployed: dict[str, Any], client: Any, settings: Any, store: Any
) -> None:
    from monitoring.data.ingestion import ingest

    first = client.get("/diagnostics").get_json()["execution_time"]["ingestion"]["runs"]
    assert client.get("/diagnostics").get_json()["execution_time"]["ingestion"]["runs"] == first
    ingest(settings, store=store)
    assert client.get("/diagnostics").get_json()["execution_time"]["ingestion"]["runs"] == first + 1
    assert client.get("/scoring").status_code == 200


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_result_cache_recomputes_when_the_key_changes() -> None:
    from monitoring.readmodels import ResultCache

    cache, calls = ResultCache(FakeClock()), []
    assert cache.get("a", 1, lambda: calls.append(1) or len(calls)) == 1
    assert cache.get("a", 1, lambda: calls.append(1) or len(calls)) == 1
    assert cache.get("a", 2, lambda: calls.append(1) or len(calls)) == 2
    assert cache.get("b", 2, lambda: calls.append(1) or len(calls)) == 3  # names are apart
    cache.forget("a")
    assert cache.get("a", 2, lambda: calls.append(1) or len(calls)) == 4


def test_a_min_age_keeps_a_result_through_key_changes_and_longer_when_costly() -> None:
    from monitoring.readmodels import REFRESH_COST_FACTOR, ResultCache

    clock = FakeClock()
    cache, calls = ResultCache(clock), []

    def compute(seconds: float) -> int:
        clock.now += seconds  # the computation takes this long on the fake clock
        calls.append(1)
        return len(calls)

    assert cache.get("s", "k1", lambda: compute(0.0), min_age=1.0) == 1
    clock.now += 0.9
    assert cache.get("s", "k2", lambda: compute(0.0), min_age=1.0) == 1  # young enough
    clock.now += 0.2
    assert cache.get("s", "k2", lambda: compute(0.5), min_age=1.0) == 2  # took 0.5 s
    clock.now += REFRESH_COST_FACTOR * 0.5 - 0.5 - 0.1
    assert cache.get("s", "k3", lambda: compute(0.0), min_age=1.0) == 2  # kept 20 x 0.5 s
    clock.now += 0.2
    assert cache.get("s", "k3", lambda: compute(0.0), min_age=1.0) == 3


def test_captured_predictions_change_the_store_but_not_its_records(
    deployed: dict[str, Any], settings: Any, store: Any
) -> None:
    """The capture importer writes all the time; what is derived from records stays cached."""
    from monitoring import capture

    records, everything = store.change_key(records_only=True), store.change_key()
    frame = pd.DataFrame({"x": [1.0]})
    result = {"predictions": [1], "probabilities": [0.9]}
    capture.record(store, settings, request_id="r", model_version="v", frame=frame, result=result)
    capture.import_journals(store)  # captured_predictions changed
    assert store.change_key(records_only=True) == records
    assert store.change_key() != everything
    store.add_timing("ingestion", 0.5, 10)  # a record
    assert store.change_key(records_only=True) != records


def test_scoring_is_computed_once_until_a_record_changes(
    deployed: dict[str, Any], settings: Any, store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitoring import readmodels

    calls: list[str] = []
    real = readmodels.model_drift_status
    monkeypatch.setattr(readmodels, "model_drift_status", lambda *a: calls.append("x") or real(*a))
    views = readmodels.ReadModels(settings, store)
    first = views.scoring.current()
    assert views.scoring.current() == first and calls == ["x"]
    store.add_score({**store.scores(limit=1)[-1], "id": None, "f1": 0.1})
    views.scoring.current()
    assert calls == ["x", "x"]
