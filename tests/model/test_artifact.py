"""The model artifact: predictions match scikit-learn's, bad feature values are refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from monitoring.data.payloads import frame_from_records
from monitoring.exceptions import DataValidationError
from monitoring.storage.files import read_table
from tests.helpers import FEATURES, small_artifact


def _request_frames(rows: int, seed: int, folder: Path) -> dict[str, pd.DataFrame]:
    """The same integer rows as a CSV file reads them and as a JSON body parses them."""
    rng = np.random.default_rng(seed)
    values = np.column_stack([rng.integers(0, h, rows) for h in (1100, 4000, 110)])
    table = pd.DataFrame(values, columns=FEATURES)
    path = folder / "rows.csv"
    table.assign(corporation="c", exited=0).to_csv(path, index=False)
    records = json.loads(table.to_json(orient="records"))
    return {"csv": read_table(path), "json": frame_from_records(records, FEATURES)}


@pytest.mark.parametrize("solver", ["liblinear", "lbfgs"])
@pytest.mark.parametrize("rows", [10, 10_000])
def test_logistic_regression_fast_path_matches_predict_proba(
    rng: np.random.Generator, tmp_path: Path, solver: str, rows: int
) -> None:
    artifact, _ = small_artifact(LogisticRegression(solver=solver), rng)
    for frame in _request_frames(rows, rows, tmp_path).values():
        features = frame[FEATURES]
        proba = artifact.positive_proba(artifact.feature_matrix(frame, input_name="x"))
        expected = artifact.estimator.predict_proba(features)[:, 1]
        assert np.abs(proba - expected).max() <= 4.5e-16  # one float rounding
        predicted = artifact.predict(frame)["predictions"]
        assert predicted == artifact.estimator.predict(features).tolist()


def test_other_estimators_use_predict_proba(rng: np.random.Generator) -> None:
    artifact, frame = small_artifact(RandomForestClassifier(n_estimators=5, random_state=0), rng)
    matrix = frame.to_numpy(dtype="float64")
    expected = artifact.estimator.predict_proba(frame)[:, 1]
    assert np.array_equal(artifact.positive_proba(matrix), expected)


def test_feature_matrix_fast_path_refuses_non_finite(rng: np.random.Generator) -> None:
    artifact, _ = small_artifact(LogisticRegression(), rng)
    frame = pd.DataFrame([[1.0, np.inf, 3.0]], columns=FEATURES)
    with pytest.raises(DataValidationError, match="infinite value at row 0"):
        artifact.feature_matrix(frame, input_name="x")
