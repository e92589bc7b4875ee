"""Model drift: is the deployed model's score worse than it should be?

Score tests (raw, parametric, IQR, tolerance), a Welch t-test between histories,
and the deployed model's verdicts: a batch's F1 against the model's out-of-sample
(cross-validated) F1, beyond the tolerance and beyond the batch's sampling noise.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

from monitoring.drift.statistics import FloatArray, _as_float_1d, _num
from monitoring.exceptions import ConfigError, DataValidationError


def _history(values: npt.ArrayLike, name: str) -> FloatArray:
    """Validated 1-D array of finite scores."""
    arr = _as_float_1d(values, name)
    if not np.isfinite(arr).all():
        raise DataValidationError(f"{name} must hold finite scores")
    return arr


def _score(value: float, name: str) -> float:
    if isinstance(value, bool):
        raise DataValidationError(f"{name} must be a number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError) as exc:
        raise DataValidationError(f"{name} must be a number, got {value!r}") from exc
    if not math.isfinite(out):
        raise DataValidationError(f"{name} must be finite, got {value!r}")
    return out


def _against_history(
    method: str,
    history: npt.ArrayLike,
    new: float,
    higher_is_better: bool,
    min_size: int,
    *extra_keys: str,
) -> tuple[FloatArray, float, dict[str, Any]]:
    """Validated scores and the undecided result (status by ``min_size``)."""
    h = _history(history, "history")
    x = _score(new, "new")
    out = {
        "method": method,
        "drift": False,
        "new": x,
        "threshold": None,
        "history_size": int(h.size),
        "higher_is_better": bool(higher_is_better),
        "status": "ok" if h.size >= min_size else "insufficient_history",
        **dict.fromkeys(extra_keys),
    }
    return h, x, out


def _decide(out: dict[str, Any], new: float, threshold: float) -> None:
    """Set the threshold and drift when ``new`` is strictly beyond it on the worse side."""
    out["threshold"] = threshold
    out["drift"] = bool(new < threshold if out["higher_is_better"] else new > threshold)


def raw_drift(
    history: npt.ArrayLike, new: float, *, higher_is_better: bool = True
) -> dict[str, Any]:
    """Drift when the new score is worse than the best so far (the ``threshold``).

    Keys: ``method``, ``drift``, ``new``, ``threshold``, ``history_size``,
    ``higher_is_better``, ``status`` (``"insufficient_history"`` when empty).
    """
    h, x, out = _against_history("raw", history, new, higher_is_better, 1)
    if out["status"] == "ok":
        _decide(out, x, float(h.max() if higher_is_better else h.min()))
    return out


def parametric_drift(
    history: npt.ArrayLike, new: float, *, higher_is_better: bool = True
) -> dict[str, Any]:
    """Drift when the new score is more than two std (``ddof=1``) worse than the mean.

    Adds ``mean`` and ``std`` to the keys of :func:`raw_drift`; needs two scores.
    """
    h, x, out = _against_history("parametric", history, new, higher_is_better, 2, "mean", "std")
    if out["status"] == "ok":
        mean = float(np.mean(h))
        std = float(np.std(h, ddof=1))
        out.update(mean=mean, std=std)
        _decide(out, x, mean - 2.0 * std if higher_is_better else mean + 2.0 * std)
    return out


def iqr_drift(
    history: npt.ArrayLike, new: float, *, higher_is_better: bool = True
) -> dict[str, Any]:
    """Drift beyond the fence ``q1 - 1.5*iqr`` (``q3 + 1.5*iqr`` if lower is better).

    Adds ``q1``, ``q3`` and ``iqr`` (linear percentiles) to the keys of :func:`raw_drift`;
    needs four scores, so the quartiles have one each side of the median.
    """
    h, x, out = _against_history("iqr", history, new, higher_is_better, 4, "q1", "q3", "iqr")
    if out["status"] == "ok":
        q1, q3 = (float(v) for v in np.percentile(h, [25.0, 75.0]))
        spread = q3 - q1
        out.update(q1=q1, q3=q3, iqr=spread)
        _decide(out, x, q1 - 1.5 * spread if higher_is_better else q3 + 1.5 * spread)
    return out


def tolerance_drift(
    baseline: float, new: float, *, tolerance: float, higher_is_better: bool = True
) -> dict[str, Any]:
    """Drift when the new score is worse than the baseline by more than ``tolerance``.

    A degradation within ``1e-12`` (relative) of it counts as within, so ``0.80 ->
    0.75`` at ``0.05`` is no drift. ``threshold`` is the worst score still accepted;
    ``degradation`` is negative for a better score. Raises ConfigError for a
    negative or non-finite ``tolerance``.
    """
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float):
        raise ConfigError(f"tolerance must be a number, got {tolerance!r}")
    if not math.isfinite(tolerance) or tolerance < 0:
        raise ConfigError(f"tolerance must be finite and >= 0, got {tolerance!r}")
    base = _score(baseline, "baseline")
    x = _score(new, "new")
    degradation = base - x if higher_is_better else x - base
    slack = 1e-12 * max(1.0, abs(base), abs(x))
    return {
        "method": "tolerance",
        "drift": bool(degradation > tolerance + slack),
        "new": x,
        "baseline": base,
        "threshold": base - tolerance if higher_is_better else base + tolerance,
        "tolerance": float(tolerance),
        "degradation": degradation,
        "higher_is_better": bool(higher_is_better),
        "status": "ok",
    }


BOOTSTRAP_DRAWS = 2000
CONFIDENCE = 0.95


def f1_bounds(
    confusion: Sequence[Sequence[int]], *, confidence: float = CONFIDENCE, seed: int = 0
) -> tuple[float, float]:
    """Bootstrap ``(lower, upper)`` bounds of a batch's F1, one-sided at ``confidence`` each.

    Resampling the batch's rows only changes how many fall in each cell of its
    confusion matrix ``[[tn, fp], [fn, tp]]``, so each draw is one multinomial draw of
    the four counts (``BOOTSTRAP_DRAWS`` of them, seeded: the same batch gives the
    same bounds). An F1 with no positive at all counts as 0, as scikit-learn's
    ``zero_division=0``.

    >>> [round(bound, 3) for bound in f1_bounds([[90, 10], [10, 90]])]
    [0.86, 0.933]
    """
    (tn, fp), (fn, tp) = confusion
    n = tn + fp + fn + tp
    if n == 0:
        return 0.0, 0.0
    shares = np.array([tp, fp, fn, tn], dtype=np.float64) / n
    draws = np.random.default_rng(seed).multinomial(n, shares, size=BOOTSTRAP_DRAWS)
    denominator = 2 * draws[:, 0] + draws[:, 1] + draws[:, 2]
    f1 = np.where(denominator > 0, 2 * draws[:, 0] / np.maximum(denominator, 1), 0.0)
    lower, upper = np.quantile(f1, [1.0 - confidence, confidence])
    return float(lower), float(upper)


def batch_f1_drift(
    baseline: float,
    confusion: Sequence[Sequence[int]],
    *,
    tolerance: float,
    baseline_dataset: str,
    confidence: float = CONFIDENCE,
) -> dict[str, Any]:
    """Model-drift verdict of a labelled batch against an out-of-sample F1 baseline.

    Drift when the batch's F1 is worse than ``baseline`` by more than ``tolerance``
    (:func:`tolerance_drift`) *and* the upper bootstrap bound of the batch's F1
    (:func:`f1_bounds`) is below the baseline: the fall is larger than the batch's
    own sampling noise, so a small batch that merely scores low by chance does not
    trip it. Adds ``lower_bound``, ``upper_bound``, ``confidence`` and ``n_rows``.
    """
    (tn, fp), (fn, tp) = confusion
    denominator = 2 * tp + fp + fn
    new_f1 = 2 * tp / denominator if denominator else 0.0
    verdict = tolerance_drift(baseline, new_f1, tolerance=tolerance)
    lower, upper = f1_bounds(confusion, confidence=confidence)
    return {
        **verdict,
        "drift": bool(verdict["drift"] and upper < verdict["baseline"]),
        "method": "tolerance_and_bootstrap",
        "metric": "f1",
        "baseline_dataset": baseline_dataset,
        "lower_bound": lower,
        "upper_bound": upper,
        "confidence": confidence,
        "n_rows": int(tn + fp + fn + tp),
    }


def baseline_f1(metadata: Mapping[str, Any]) -> tuple[float | None, str]:
    """The F1 a model is held to: cross-validated at training time (out of sample),
    or, for a model trained before that was recorded, its in-sample training F1."""
    cross_validated = (metadata.get("cv_score") or {}).get("f1")
    if cross_validated is not None:
        return float(cross_validated), "cross-validation on the training data"
    training = (metadata.get("training_score") or {}).get("f1")
    return (None if training is None else float(training)), "training data (in-sample)"


def compare_score_histories(
    a: npt.ArrayLike, b: npt.ArrayLike, *, alpha: float = 0.05
) -> dict[str, Any]:
    """Welch t-test (``scipy.stats.ttest_ind(a, b, equal_var=False)``) of two histories.

    Status ``"insufficient_history"`` below two scores a side; ``"zero_variance"``
    when both are constant (no statistic; ``significant``: the means differ).
    """
    if not (0.0 < float(alpha) < 1.0):
        raise ConfigError(f"alpha must be in (0, 1), got {alpha!r}")
    x = _history(a, "a")
    y = _history(b, "b")
    out: dict[str, Any] = {
        "method": "welch_t",
        "statistic": None,
        "p_value": None,
        "significant": False,
        "alpha": float(alpha),
        "n_a": int(x.size),
        "n_b": int(y.size),
        "mean_a": _num(np.mean(x)) if x.size else None,
        "mean_b": _num(np.mean(y)) if y.size else None,
        "status": "ok",
    }
    if x.size < 2 or y.size < 2:
        out["status"] = "insufficient_history"
        return out
    if np.ptp(x) == 0 and np.ptp(y) == 0:
        out["status"] = "zero_variance"
        out["significant"] = bool(x[0] != y[0])
        return out
    with warnings.catch_warnings(action="ignore", category=RuntimeWarning):
        result = stats.ttest_ind(x, y, equal_var=False)
    out["statistic"] = _num(result.statistic)
    out["p_value"] = _num(result.pvalue)
    out["significant"] = bool(out["p_value"] is not None and out["p_value"] < alpha)
    return out


def model_drift_status(settings: Any, store: Any, artifact: Any) -> dict[str, Any]:
    """Model-drift verdict of the deployed model (``artifact``), with the tests behind it.

    The verdict: its F1 on the newest ingested batch within the tolerance of its
    training-data F1; evidence: raw, parametric and IQR on earlier versions' test F1.
    """
    latest_by_version: dict[str, float] = {}
    for row in store.scores(dataset="test"):
        if row["f1"] is not None:
            latest_by_version[row["model_version"]] = float(row["f1"])
    current = latest_by_version.pop(artifact.version, None)
    history = list(latest_by_version.values())
    checks: dict[str, Any] = {}
    if current is not None:
        checks["raw"] = raw_drift(history, current)
        checks["parametric"] = parametric_drift(history, current)
        checks["iqr"] = iqr_drift(history, current)
    ingested = store.scores(model_version=artifact.version, dataset="ingested")
    latest = ingested[-1] if ingested else {"f1": None}
    baseline, baseline_dataset = baseline_f1(artifact.metadata)
    tolerance = settings.thresholds.model_drift_tolerance
    if baseline is not None and latest["f1"] is not None:
        new_data = tolerance_drift(baseline, float(latest["f1"]), tolerance=tolerance)
        checks["new_data"] = {
            **new_data,
            "baseline_dataset": baseline_dataset,
            "scored_at": latest["scored_at"],
        }
        drift = new_data["drift"]
        reason = (
            f"F1 on the newest ingested data {latest['f1']:.4f} vs {baseline:.4f} "
            f"by {baseline_dataset} (tolerance {tolerance}; the pipeline's decision also "
            "asks the fall to exceed the batch's bootstrap bound)"
        )
    else:
        drift = False
        reason = "the deployed model has not been scored on newly ingested data yet"
    return {
        "metric": "f1",
        "higher_is_better": True,
        "drift": drift,
        "reason": reason,
        "checks": checks,
    }


def live_model_drift(
    live: dict[str, Any] | None, *, baseline: float | None, tolerance: float, min_labelled_rows: int
) -> dict[str, Any]:
    """Model-drift check of the deployed model on its labelled captured traffic.

    :func:`batch_f1_drift` of the labelled rows in ``live``, its
    ``capture.live_performance`` entry, against ``baseline`` (:func:`baseline_f1`);
    below ``min_labelled_rows`` labelled rows, evidence only (no drift).
    """
    perf = live or {"n_captured": 0, "n_labelled": 0}
    out: dict[str, Any] = {"metric": "f1", "min_labelled_rows": min_labelled_rows, "live": perf}
    if perf["n_labelled"] < min_labelled_rows or baseline is None or perf.get("f1") is None:
        reason = f"{perf['n_labelled']} labelled live rows; at least {min_labelled_rows} needed"
        out.update(checked=False, drift=False, reason=reason)
        return out
    out.update(
        batch_f1_drift(
            float(baseline),
            perf["confusion_matrix"],
            tolerance=tolerance,
            baseline_dataset="the model's out-of-sample baseline",
        )
    )
    out["checked"] = True
    return out
