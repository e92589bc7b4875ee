"""Model drift: is the deployed model's score worse than it should be?

Score tests (raw, parametric, IQR, tolerance), a Welch t-test between histories,
and the deployed model's verdicts: F1 against its F1 on the training data.
"""

from __future__ import annotations

import math
import warnings
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


def training_f1_drift(baseline: float, new_f1: float, *, tolerance: float) -> dict[str, Any]:
    """Model-drift verdict: :func:`tolerance_drift` of an F1 against the training-data F1."""
    verdict = tolerance_drift(baseline, new_f1, tolerance=tolerance)
    return {**verdict, "metric": "f1", "baseline_dataset": "training data"}


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
    baseline = (artifact.metadata.get("training_score") or {}).get("f1")
    tolerance = settings.thresholds.model_drift_tolerance
    if baseline is not None and latest["f1"] is not None:
        new_data = tolerance_drift(float(baseline), float(latest["f1"]), tolerance=tolerance)
        checks["new_data"] = {**new_data, "scored_at": latest["scored_at"]}
        drift = new_data["drift"]
        reason = (
            f"F1 on the newest ingested data {latest['f1']:.4f} vs {float(baseline):.4f} "
            f"on the training data (tolerance {tolerance})"
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

    :func:`training_f1_drift` of the F1 in ``live``, its ``capture.live_performance``
    entry; below ``min_labelled_rows`` labelled rows, evidence only (no drift).
    """
    perf = live or {"n_captured": 0, "n_labelled": 0}
    out: dict[str, Any] = {"metric": "f1", "min_labelled_rows": min_labelled_rows, "live": perf}
    if perf["n_labelled"] < min_labelled_rows or baseline is None or perf.get("f1") is None:
        reason = f"{perf['n_labelled']} labelled live rows; at least {min_labelled_rows} needed"
        out.update(checked=False, drift=False, reason=reason)
        return out
    out.update(training_f1_drift(float(baseline), float(perf["f1"]), tolerance=tolerance))
    out["checked"] = True
    return out
