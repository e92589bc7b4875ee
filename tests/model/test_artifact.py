"""The model artifact: predictions equal scikit-learn's, bad feature values are refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

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


def test_feature_matrix_fast_path_refuses_non_finite(rng: np.random.Generator) -> None:
    artifact, _ = _artifact(LogisticRegression(), rng)
    frame = pd.DataFrame([[1.0, np.inf, 3.0]], columns=FEATURES)
    with pytest.raises(DataValidationError, match="infinite value at row 0"):
        artifact.feature_matrix(frame, input_name="x")
