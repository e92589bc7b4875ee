"""Confidence-based performance estimation (CBPE, as NannyML does it), without labels.

With calibrated probabilities ``p`` of class 1 and the model's predictions ``ŷ``, each
row's expected share of every confusion-matrix cell is known: a row predicted 1 is a
true positive with probability ``p`` and a false positive with ``1 - p``; a row
predicted 0 is a false negative with ``p`` and a true negative with ``1 - p``. Summed
over a chunk these are the expected counts, and F1, precision and recall follow from
them (:func:`estimate_counts`, :func:`metrics_from_counts`).

The model's own probabilities are calibrated first where that helps
(:func:`fit_reference`): an isotonic regression of the labels on the out-of-fold
(held-out) probabilities of the training data, kept only when it lowers the expected
calibration error on held-out rows (NannyML's test). Its breakpoints are kept in the model
version's metadata (JSON), and applied by linear interpolation, which is what
``IsotonicRegression.predict`` does.

The confidence band is NannyML's: ±3 standard errors of the metric, where the
standard error is the standard deviation of the metric's per-row values on the
reference (out-of-fold) predictions over the square root of the number of rows that
count for it in a chunk of that size (:func:`sampling_error`). It says how far the
realised value may fall from the estimate by sampling alone (about 99%), if the
assumptions hold: calibrated probabilities and no concept drift (P(y|X) unchanged).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedShuffleSplit

METRICS = ("f1", "precision", "recall")
SAMPLING_ERROR_RANGE = 3  # the band is the estimate ± this many standard errors
CALIBRATION_SPLITS = 10
CALIBRATION_BINS = 10
METHOD = "CBPE (confidence-based performance estimation, as NannyML)"


def estimate_counts(probabilities: npt.ArrayLike, predictions: npt.ArrayLike) -> dict[str, float]:
    """Expected confusion-matrix counts of calibrated ``probabilities`` of class 1.

    Examples
    --------
    >>> c = estimate_counts([0.9, 0.6, 0.2, 0.4], [1, 1, 0, 0])
    >>> {k: round(v, 10) for k, v in c.items()}
    {'tp': 1.5, 'fp': 0.5, 'fn': 0.6, 'tn': 1.4}
    """
    p = np.asarray(probabilities, dtype=np.float64)
    positive = np.asarray(predictions).astype(int) == 1
    return {
        "tp": float(p[positive].sum()),
        "fp": float((1.0 - p[positive]).sum()),
        "fn": float(p[~positive].sum()),
        "tn": float((1.0 - p[~positive]).sum()),
    }


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


def metrics_from_counts(counts: Mapping[str, float]) -> dict[str, float | None]:
    """F1, precision and recall of (expected) confusion counts; None where undefined.

    >>> round(metrics_from_counts({"tp": 1.5, "fp": 0.5, "fn": 0.6, "tn": 1.4})["f1"], 6)
    0.731707
    """
    tp, fp, fn = counts["tp"], counts["fp"], counts["fn"]
    return {
        "f1": _ratio(2.0 * tp, 2.0 * tp + fp + fn),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
    }


# -- calibration -------------------------------------------------------------------
def _isotonic() -> IsotonicRegression:
    return IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")


def fit_isotonic(probabilities: npt.ArrayLike, labels: npt.ArrayLike) -> dict[str, list[float]]:
    """Breakpoints of an isotonic regression of ``labels`` on ``probabilities``."""
    model = _isotonic().fit(np.asarray(probabilities, float), np.asarray(labels, float))
    return {
        "x": [float(v) for v in model.X_thresholds_],
        "y": [float(v) for v in model.y_thresholds_],
    }


def calibrate(probabilities: npt.ArrayLike, calibration: Mapping[str, Any] | None) -> np.ndarray:
    """``probabilities`` through the stored isotonic breakpoints (unchanged without them).

    Linear interpolation between the breakpoints, clipped at the ends: the same
    values as the fitted ``IsotonicRegression.predict``.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if not calibration or calibration.get("method") != "isotonic":
        return p
    x, y = calibration["x"], calibration["y"]
    if len(x) == 1:
        return np.full(p.shape, float(y[0]))
    return np.interp(p, x, y)


def _expected_calibration_error(p: np.ndarray, y: np.ndarray, bins: int) -> float:
    """Mean |mean probability - share of 1s| over ``bins`` equal-count bins of the
    sorted probabilities, each weighted by its share of rows."""
    order = np.argsort(p, kind="stable")
    p, y = p[order], y[order]
    edges = np.linspace(0, p.size, bins + 1).astype(int)
    return float(
        sum(
            (high - low) / p.size * abs(p[low:high].mean() - y[low:high].mean())
            for low, high in zip(edges[:-1], edges[1:], strict=True)
            if high > low
        )
    )


def calibration_errors(probabilities: np.ndarray, labels: np.ndarray) -> tuple[float, float] | None:
    """Expected calibration error of the raw probabilities and of isotonic calibration,
    both on held-out rows: 10 stratified shuffle splits holding out 10%, the calibration
    fitted on the other 90% each time; 10 equal-count bins over all held-out
    predictions (NannyML's test). None when the data cannot be split so (a class with
    fewer than 2 rows, or fewer than 2 rows held out)."""
    counts = np.bincount(labels, minlength=2)
    if counts.min() < 2 or math.ceil(0.1 * labels.size) < 2:
        return None
    splitter = StratifiedShuffleSplit(n_splits=CALIBRATION_SPLITS, test_size=0.1, random_state=42)
    raw, calibrated, truth = [], [], []
    for fit, held in splitter.split(probabilities.reshape(-1, 1), labels):
        model = _isotonic().fit(probabilities[fit], labels[fit].astype(float))
        raw.append(probabilities[held])
        calibrated.append(model.predict(probabilities[held]))
        truth.append(labels[held].astype(float))
    y = np.concatenate(truth)
    bins = min(CALIBRATION_BINS, y.size // 2)
    return (
        _expected_calibration_error(np.concatenate(raw), y, bins),
        _expected_calibration_error(np.concatenate(calibrated), y, bins),
    )


# -- sampling error ------------------------------------------------------------------
def sampling_error_components(
    labels: npt.ArrayLike, predictions: npt.ArrayLike
) -> dict[str, dict[str, float]]:
    """Per metric: the standard deviation of its per-row values on labelled reference
    predictions, and the share of rows that count for it.

    F1 counts the rows that are TP, FP or FN (true negatives do not enter it), a TP
    valued so that the mean is the F1; precision the predicted positives and recall
    the actual positives, a TP valued 1. A metric with no row that counts gets ``std``
    NaN (its band is then unknown).

    >>> c = sampling_error_components([1, 1, 0, 0], [1, 0, 1, 0])
    >>> c["f1"], c["precision"]
    ({'std': 0.7071067811865476, 'fraction': 0.75}, {'std': 0.5, 'fraction': 0.5})
    """
    y = np.asarray(labels).astype(int)
    yhat = np.asarray(predictions).astype(int)
    tp = (y == 1) & (yhat == 1)
    groups = {
        "f1": (tp, (y == 1) | (yhat == 1)),
        "precision": (tp, yhat == 1),
        "recall": (tp, y == 1),
    }
    out = {}
    for name, (hit, counts) in groups.items():
        values = hit[counts].astype(np.float64)
        if name == "f1" and values.size:
            # F1 = TP / (TP + (FP + FN) / 2) is not the mean of the 0/1 values: scaled
            # so that it is (a TP row counts n / (TP + (FP + FN) / 2)), as NannyML does.
            tp = values.sum()
            values = values * values.size / (tp + 0.5 * (values.size - tp))
        std = float(np.std(values)) if values.size else math.nan
        out[name] = {"std": std, "fraction": float(counts.mean()) if y.size else 0.0}
    return out


def sampling_error(component: Mapping[str, float], n_rows: int) -> float | None:
    """Standard error of a metric on a chunk of ``n_rows``: ``std / sqrt(n * fraction)``.

    >>> round(sampling_error({"std": 0.5, "fraction": 0.25}, 100), 10)
    0.1
    """
    std, fraction = float(component["std"]), float(component["fraction"])
    if not math.isfinite(std) or fraction <= 0 or n_rows <= 0:
        return None
    return std / math.sqrt(n_rows * fraction)


# -- reference (fitted at training time) and estimation -----------------------------------
def fit_reference(probabilities: npt.ArrayLike, labels: npt.ArrayLike) -> dict[str, Any]:
    """What estimation needs from held-out (out-of-fold) predictions of labelled data.

    ``calibration``: isotonic breakpoints when isotonic calibration lowers the
    expected calibration error on held-out rows (:func:`calibration_errors`; not when
    the probabilities separate the classes almost perfectly, ROC AUC > 0.999), else
    ``{"method": "none"}``; ``sampling_error``: :func:`sampling_error_components` of
    the predictions (class 1 when ``p > 0.5``, as the service predicts).
    """
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels).astype(int)
    separable = np.unique(y).size == 2 and roc_auc_score(y, p) > 0.999
    errors = None if separable else calibration_errors(p, y)
    calibration: dict[str, Any] = {"method": "none"}
    if errors is not None and errors[1] < errors[0]:
        calibration = {"method": "isotonic", **fit_isotonic(p, y)}
    calibration["ece_raw"], calibration["ece_isotonic"] = errors or (None, None)
    return {
        "method": METHOD,
        "reference": "out-of-fold predictions on the training data",
        "n_rows": int(y.size),
        "calibration": calibration,
        "sampling_error": sampling_error_components(y, (p > 0.5).astype(int)),
    }


def _clip(value: float) -> float:
    return min(1.0, max(0.0, value))


def estimate(
    probabilities: npt.ArrayLike,
    predictions: npt.ArrayLike,
    reference: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """Estimated counts, metrics and their band for one chunk of predictions.

    ``probabilities`` are the model's own (calibrated here with ``reference``);
    without a ``reference`` (a model trained before estimation was recorded) they are
    used as they are and the band is unknown (None).
    """
    p = calibrate(probabilities, (reference or {}).get("calibration"))
    counts = estimate_counts(p, predictions)
    metrics = metrics_from_counts(counts)
    n = int(p.size)
    components = (reference or {}).get("sampling_error") or {}
    errors: dict[str, float | None] = {}
    lower: dict[str, float | None] = {}
    upper: dict[str, float | None] = {}
    for name in METRICS:
        value = metrics[name]
        error = sampling_error(components[name], n) if name in components else None
        errors[name] = error
        if value is None or error is None:
            lower[name] = upper[name] = None
        else:
            lower[name] = _clip(value - SAMPLING_ERROR_RANGE * error)
            upper[name] = _clip(value + SAMPLING_ERROR_RANGE * error)
    return {
        "n_rows": n,
        "counts": counts,
        **metrics,
        "sampling_error": errors,
        "lower": lower,
        "upper": upper,
    }
