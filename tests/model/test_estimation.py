"""CBPE: the counting formulas, calibration, sampling error, and its accuracy under shift."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from monitoring.model.estimation import (
    calibrate,
    estimate,
    estimate_counts,
    fit_isotonic,
    fit_reference,
    metrics_from_counts,
    sampling_error,
    sampling_error_components,
)
from monitoring.model.scoring import compute_metrics


def test_expected_confusion_counts_and_metrics_of_a_hand_computed_chunk() -> None:
    # predicted 1 with p 0.9 and 0.6: TP 0.9 + 0.6, FP 0.1 + 0.4;
    # predicted 0 with p 0.2 and 0.4: FN 0.2 + 0.4, TN 0.8 + 0.6.
    counts = estimate_counts([0.9, 0.6, 0.2, 0.4], [1, 1, 0, 0])
    assert counts == pytest.approx({"tp": 1.5, "fp": 0.5, "fn": 0.6, "tn": 1.4}, abs=1e-12)
    metrics = metrics_from_counts(counts)
    assert metrics["f1"] == pytest.approx(3.0 / 4.1, abs=1e-12)  # 2TP / (2TP + FP + FN)
    assert metrics["precision"] == pytest.approx(0.75, abs=1e-12)  # 1.5 / 2.0
    assert metrics["recall"] == pytest.approx(1.5 / 2.1, abs=1e-12)


def test_metrics_are_none_where_undefined() -> None:
    # Nothing predicted positive and probability 0: no TP, FP or FN expected.
    assert metrics_from_counts(estimate_counts([0.0, 0.0], [0, 0])) == {
        "f1": None,
        "precision": None,
        "recall": None,
    }


def test_sampling_error_components_and_band_of_a_hand_computed_reference() -> None:
    # Rows: TP, FN, FP, TN. F1 counts TP, FN, FP (3 of 4 rows), a TP valued 3 / (1 + 2/2)
    # = 1.5 so that their mean is F1 = 0.5: std of [1.5, 0, 0] = sqrt(2)/2.
    # Precision: TP, FP (std of [1, 0] = 0.5, half); recall: TP, FN (the same).
    components = sampling_error_components([1, 1, 0, 0], [1, 0, 1, 0])
    assert components["f1"]["std"] == pytest.approx(math.sqrt(2) / 2, abs=1e-12)
    assert components["f1"]["fraction"] == 0.75
    assert components["precision"] == {"std": 0.5, "fraction": 0.5}
    assert components["recall"] == {"std": 0.5, "fraction": 0.5}
    # 100 rows: F1's standard error is (sqrt(2)/2) / sqrt(75).
    assert sampling_error(components["f1"], 100) == pytest.approx(
        math.sqrt(2) / 2 / math.sqrt(75), abs=1e-12
    )
    assert sampling_error(components["precision"], 100) == pytest.approx(0.05 * math.sqrt(2))
    assert sampling_error(components["f1"], 0) is None
    assert sampling_error({"std": math.nan, "fraction": 0.0}, 100) is None


def test_estimate_bands_are_three_standard_errors_clipped_to_0_1() -> None:
    reference = {
        "calibration": {"method": "none"},
        "sampling_error": sampling_error_components([1, 1, 0, 0], [1, 0, 1, 0]),
    }
    got = estimate([0.9, 0.6, 0.2, 0.4], [1, 1, 0, 0], reference)
    error = math.sqrt(2) / 2 / math.sqrt(4 * 0.75)
    assert got["sampling_error"]["f1"] == pytest.approx(error)
    assert got["lower"]["f1"] == 0.0  # 0.7317 - 3 * 0.272 < 0
    assert got["upper"]["f1"] == 1.0
    assert got["n_rows"] == 4
    assert got["counts"] == pytest.approx({"tp": 1.5, "fp": 0.5, "fn": 0.6, "tn": 1.4})
    # Without a reference (a model trained before): raw probabilities, no band.
    bare = estimate([0.9, 0.6, 0.2, 0.4], [1, 1, 0, 0], None)
    assert bare["f1"] == pytest.approx(3.0 / 4.1)
    assert bare["lower"]["f1"] is None and bare["sampling_error"]["f1"] is None


def test_stored_isotonic_breakpoints_give_the_libraries_calibrated_values(
    rng: np.random.Generator,
) -> None:
    p = rng.uniform(0, 1, 400)
    y = (rng.uniform(0, 1, 400) < p**2).astype(int)  # over-confident probabilities
    library = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(p, y)
    stored = {"method": "isotonic", **fit_isotonic(p, y)}
    new = np.concatenate([rng.uniform(-0.1, 1.1, 300), [0.0, 1.0]])
    assert np.allclose(calibrate(new, stored), library.predict(new), rtol=0, atol=1e-12)
    assert np.array_equal(calibrate(new, {"method": "none"}), new)


def test_calibration_is_kept_only_where_it_helps(rng: np.random.Generator) -> None:
    p = rng.uniform(0, 1, 2000)
    calibrated_already = (rng.uniform(0, 1, 2000) < p).astype(int)
    assert fit_reference(p, calibrated_already)["calibration"]["method"] == "none"
    over_confident = (rng.uniform(0, 1, 2000) < 0.25 + 0.5 * p).astype(int)
    found = fit_reference(p, over_confident)["calibration"]
    assert found["method"] == "isotonic"
    assert found["ece_isotonic"] < found["ece_raw"]
    # Probabilities that separate the classes (ROC AUC > 0.999) are left as they are.
    assert fit_reference(p, (p > 0.5).astype(int))["calibration"]["method"] == "none"


def _draw(rng: np.random.Generator, n: int, shift: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Rows of a known P(y|X) = expit(X @ W + B); ``shift`` moves the mean of X only."""
    X = rng.normal(0.0, 1.0, (n, 4)) + np.asarray(shift, dtype=float)
    y = (rng.uniform(0.0, 1.0, n) < 1.0 / (1.0 + np.exp(-(X @ W + B)))).astype(int)
    return X, y


W, B = np.array([1.5, -1.0, 0.8, 0.0]), -1.0
SHIFTS = [[0, 0, 0, 0], [0.5, 0, 0, 0], [1, 0, 0, 0], [-0.5, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 2]]


def test_estimate_within_005_of_realised_f1_under_covariate_shift() -> None:
    """Generated data with known labels; each 1000-row analysis chunk has its inputs
    shifted (covariate shift: P(X) moves, P(y|X) does not). The model is a strongly
    regularised logistic regression, whose probabilities are under-confident, so the
    estimate goes through the isotonic calibration fitted on held-out predictions."""
    rng = np.random.default_rng(0)
    X, y = _draw(rng, 5000, [0, 0, 0, 0])
    model = LogisticRegression(C=0.0005)
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    held_out = cross_val_predict(model, X, y, cv=folds, method="predict_proba")[:, 1]
    reference = fit_reference(held_out, y)
    assert reference["calibration"]["method"] == "isotonic"
    model.fit(X, y)
    realised, errors = [], []
    for shift in SHIFTS:
        X_chunk, y_chunk = _draw(rng, 1000, shift)
        p = model.predict_proba(X_chunk)[:, 1]
        predictions = (p > 0.5).astype(int)
        got = estimate(p, predictions, reference)
        actual = compute_metrics(y_chunk, predictions)["f1"]
        realised.append(actual)
        errors.append(actual - got["f1"])
        assert got["lower"]["f1"] <= actual <= got["upper"]["f1"]
        # Uncalibrated, the same probabilities miss by far more than 0.05.
        assert abs(estimate(p, predictions, None)["f1"] - actual) > 0.05
    assert max(realised) - min(realised) > 0.3  # the shift moved the real F1 a lot
    assert max(abs(e) for e in errors) < 0.05, errors
