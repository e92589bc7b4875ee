"""Model-drift tests on score histories."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from scipy import stats
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split

from monitoring.config import ModelSettings
from monitoring.drift import (
    compare_score_histories,
    iqr_drift,
    parametric_drift,
    raw_drift,
    tolerance_drift,
)
from monitoring.drift.model_drift import batch_f1_drift, f1_bounds
from monitoring.exceptions import ConfigError, DataValidationError
from monitoring.model.artifact import build_estimator
from monitoring.model.scoring import compute_metrics
from monitoring.model.training import cross_validated_score
from tests.helpers import assert_plain_json


@pytest.mark.parametrize(
    ("history", "new", "higher", "drift_expected", "threshold"),
    [
        ([0.7, 0.8, 0.75], 0.78, True, True, 0.8),
        ([0.7, 0.8, 0.75], 0.8, True, False, 0.8),
        ([0.7, 0.8, 0.75], 0.9, True, False, 0.8),
        ([0.3, 0.2, 0.25], 0.21, False, True, 0.2),
        ([0.3, 0.2, 0.25], 0.2, False, False, 0.2),
    ],
)
def test_raw_drift(
    history: list[float],
    new: float,
    higher: bool,
    drift_expected: bool,
    threshold: float,
) -> None:
    result = raw_drift(history, new, higher_is_better=higher)
    assert result["drift"] is drift_expected
    assert result["threshold"] == threshold
    assert result["method"] == "raw" and result["history_size"] == 3
    assert result["status"] == "ok" and result["new"] == new


PARAMETRIC_STD = 1.5811388300841898  # sample std of 1..5


@pytest.mark.parametrize(
    ("new", "higher", "drift_expected"),
    [(-0.2, True, True), (-0.1, True, False), (6.2, False, True), (6.1, False, False)],
)
def test_parametric_drift(new: float, higher: bool, drift_expected: bool) -> None:
    result = parametric_drift([1, 2, 3, 4, 5], new, higher_is_better=higher)
    assert result["drift"] is drift_expected
    assert result["mean"] == 3.0 and result["std"] == pytest.approx(PARAMETRIC_STD)
    sign = -1 if higher else 1
    assert result["threshold"] == pytest.approx(3.0 + sign * 2 * PARAMETRIC_STD)


@pytest.mark.parametrize(
    ("new", "higher", "drift_expected", "threshold"),
    [
        (-2.6, True, True, -2.5),
        (-2.5, True, False, -2.5),
        (11.6, False, True, 11.5),
        (11.5, False, False, 11.5),
    ],
)
def test_iqr_drift(new: float, higher: bool, drift_expected: bool, threshold: float) -> None:
    result = iqr_drift([1, 2, 3, 4, 5, 6, 7, 8], new, higher_is_better=higher)
    assert (result["q1"], result["q3"], result["iqr"]) == (2.75, 6.25, 3.5)
    assert result["threshold"] == threshold
    assert result["drift"] is drift_expected


@pytest.mark.parametrize(
    ("func", "history"),
    [(raw_drift, []), (parametric_drift, [0.5]), (iqr_drift, [0.5, 0.6, 0.7])],
)
def test_short_history_is_not_drift(func: Any, history: list[float]) -> None:
    result = func(history, 0.0)
    assert result["drift"] is False
    assert result["status"] == "insufficient_history"
    assert result["threshold"] is None and result["history_size"] == len(history)
    assert_plain_json(result)


@pytest.mark.parametrize(
    ("baseline", "new", "higher", "drift_expected"),
    [
        (0.80, 0.75, True, False),  # exactly the tolerance
        (0.80, 0.74, True, True),
        (0.80, 0.80, True, False),
        (0.80, 0.95, True, False),
        (0.20, 0.26, False, True),
        (0.20, 0.25, False, False),
        (0.20, 0.10, False, False),
    ],
)
def test_tolerance_drift(baseline: float, new: float, higher: bool, drift_expected: bool) -> None:
    result = tolerance_drift(baseline, new, tolerance=0.05, higher_is_better=higher)
    assert result["drift"] is drift_expected
    assert result["threshold"] == pytest.approx(baseline - 0.05 if higher else baseline + 0.05)
    assert_plain_json(result)


def test_tolerance_must_be_valid() -> None:
    with pytest.raises(ConfigError):
        tolerance_drift(0.8, 0.7, tolerance=-0.1)
    with pytest.raises(DataValidationError):
        tolerance_drift(0.8, float("nan"), tolerance=0.1)
    with pytest.raises(DataValidationError):
        raw_drift([0.5, float("nan")], 0.4)


def test_compare_score_histories() -> None:
    a = [0.80, 0.82, 0.81, 0.79, 0.83]
    b = [0.70, 0.72, 0.69, 0.71]
    result = compare_score_histories(a, b)
    expected = stats.ttest_ind(a, b, equal_var=False)
    assert result["statistic"] == pytest.approx(float(expected.statistic))
    assert result["p_value"] == pytest.approx(float(expected.pvalue))
    assert result["significant"] is True and result["n_a"] == 5 and result["n_b"] == 4
    assert compare_score_histories(a, a)["significant"] is False
    assert compare_score_histories([0.5], b)["status"] == "insufficient_history"
    constant = compare_score_histories([0.5, 0.5], [0.6, 0.6])
    assert constant["status"] == "zero_variance" and constant["significant"] is True
    assert_plain_json(result)


def test_f1_bounds_match_a_row_bootstrap_of_the_batch() -> None:
    confusion = [[90, 10], [20, 80]]  # F1 160/190
    lower, upper = f1_bounds(confusion)
    rng = np.random.default_rng(1)
    y_true = np.repeat([0, 0, 1, 1], [90, 10, 20, 80])
    y_pred = np.repeat([0, 1, 0, 1], [90, 10, 20, 80])
    draws = rng.integers(0, 200, size=(2000, 200))
    true, pred = y_true[draws], y_pred[draws]
    tp = (true & pred).sum(axis=1)
    f1 = 2 * tp / (true.sum(axis=1) + pred.sum(axis=1))  # scikit-learn's f1_score per draw
    assert f1[0] == pytest.approx(f1_score(true[0], pred[0]))
    assert lower == pytest.approx(np.quantile(f1, 0.05), abs=0.01)
    assert upper == pytest.approx(np.quantile(f1, 0.95), abs=0.01)
    assert lower < 160 / 190 < upper
    assert f1_bounds(confusion) == (lower, upper)  # seeded


@pytest.mark.parametrize(
    ("confusion", "drift"),
    [
        ([[90, 10], [10, 90]], False),  # F1 0.90 against 0.92: within the tolerance
        ([[90, 10], [40, 60]], True),  # F1 0.71: far below, beyond the noise
        ([[5, 1], [2, 6]], False),  # F1 0.80 on 14 rows: below, but within the noise
    ],
)
def test_batch_f1_drift_needs_the_tolerance_and_the_bootstrap_bound(
    confusion: list[list[int]], drift: bool
) -> None:
    verdict = batch_f1_drift(0.92, confusion, tolerance=0.05, baseline_dataset="cv")
    assert verdict["drift"] is drift
    assert verdict["n_rows"] == sum(map(sum, confusion))
    assert (verdict["baseline"], verdict["threshold"]) == (0.92, pytest.approx(0.87))


@pytest.mark.slow
def test_model_drift_decision_on_a_real_dataset_false_alarms_and_power() -> None:
    # 300 seeded splits of scikit-learn's breast-cancer data (3 of its features, like the
    # churn model): train as the service does (cross-validated baseline), then judge a
    # 200-row batch without drift and the same batch with 20% of its labels flipped.
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X = X.iloc[:, [0, 1, 4]]
    settings = SimpleNamespace(model=ModelSettings())  # the default estimator
    false_alarms = caught = 0
    splits = 300
    for seed in range(splits):
        X_train, X_batch, y_train, y_batch = train_test_split(
            X, y, test_size=200, random_state=seed, stratify=y
        )
        model = build_estimator(settings.model).fit(X_train, y_train)
        baseline = cross_validated_score(settings, X_train, y_train)["f1"]
        predictions = model.predict(X_batch)
        flipped = np.random.default_rng(seed).random(200) < 0.2
        for labels, changed in (
            (y_batch.to_numpy(), False),
            (np.where(flipped, 1 - y_batch, y_batch), True),
        ):
            confusion = compute_metrics(labels, predictions)["confusion_matrix"]
            drift = batch_f1_drift(baseline, confusion, tolerance=0.05, baseline_dataset="cv")
            false_alarms += drift["drift"] and not changed
            caught += drift["drift"] and changed
    assert false_alarms / splits <= 0.05, false_alarms
    assert caught / splits >= 0.90, caught
