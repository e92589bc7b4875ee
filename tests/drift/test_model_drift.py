"""Model-drift tests on score histories."""

from __future__ import annotations

from typing import Any

import pytest
from scipy import stats

from monitoring.drift import (
    compare_score_histories,
    iqr_drift,
    parametric_drift,
    raw_drift,
    tolerance_drift,
)
from monitoring.exceptions import ConfigError, DataValidationError
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
