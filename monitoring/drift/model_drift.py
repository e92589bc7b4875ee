"""Model drift: is the deployed model's score worse than it should be?

Pure tests compare a new score with the history of earlier scores
(:func:`raw_drift`, :func:`parametric_drift`, :func:`iqr_drift`), with a
baseline and a tolerance (:func:`tolerance_drift`), and two score histories with
each other (:func:`compare_score_histories`). :func:`model_drift_status` is the
service's verdict for the deployed model, read from the record store.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, cast

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from monitoring.drift.statistics import FloatArray, _as_float_1d, _num
from monitoring.exceptions import (
    ConfigError,
    DataValidationError,
)

# Shortest score history each method decides on: parametric needs two scores
# for a sample std, iqr four so the quartiles have a score on each side of the median.
MIN_HISTORY: Final[Mapping[str, int]] = MappingProxyType({"raw": 1, "parametric": 2, "iqr": 4})


def _history(values: Iterable[float] | npt.ArrayLike, name: str) -> FloatArray:
    """Validated 1-D array of finite scores."""
    data: Any = values
    if not isinstance(values, np.ndarray | pd.Series | list | tuple):
        data = list(cast(Iterable[float], values))
    arr = _as_float_1d(data, name)
    if not np.isfinite(arr).all():
        raise DataValidationError(f"{name} must hold finite scores")
    return arr


def _score(value: float, name: str) -> float:
    """Validated finite score."""
    if isinstance(value, bool):
        raise DataValidationError(f"{name} must be a number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError) as exc:
        raise DataValidationError(f"{name} must be a number, got {value!r}") from exc
    if not math.isfinite(out):
        raise DataValidationError(f"{name} must be finite, got {value!r}")
    return out


def _model_result(
    method: str, history: FloatArray, new: float, higher_is_better: bool
) -> dict[str, Any]:
    """Common keys of a model-drift result (drift false until decided)."""
    return {
        "method": method,
        "drift": False,
        "new": new,
        "threshold": None,
        "history_size": int(history.size),
        "higher_is_better": bool(higher_is_better),
        "status": "ok",
    }


def raw_drift(
    history: Sequence[float] | npt.ArrayLike,
    new: float,
    *,
    higher_is_better: bool = True,
) -> dict[str, Any]:
    """Drift when the new score is worse than the best score so far.

    Parameters
    ----------
    history : sequence of float
        Earlier scores.
    new : float
        The new score.
    higher_is_better : bool, default True
        ``False`` for losses/errors.

    Returns
    -------
    dict
        ``{"method": "raw", "drift", "new", "threshold" (the best score),
        "history_size", "higher_is_better", "status"}``; an empty history gives
        ``drift`` false and status ``"insufficient_history"``.
    """
    h = _history(history, "history")
    x = _score(new, "new")
    out = _model_result("raw", h, x, higher_is_better)
    if h.size < MIN_HISTORY["raw"]:
        out["status"] = "insufficient_history"
        return out
    best = float(h.max() if higher_is_better else h.min())
    out["threshold"] = best
    out["drift"] = bool(x < best if higher_is_better else x > best)
    return out


def parametric_drift(
    history: Sequence[float] | npt.ArrayLike,
    new: float,
    *,
    higher_is_better: bool = True,
) -> dict[str, Any]:
    """Drift when the new score is more than two standard deviations worse.

    Parameters
    ----------
    history : sequence of float
        Earlier scores; at least two are needed.
    new : float
        The new score.
    higher_is_better : bool, default True
        Which side is worse.

    Returns
    -------
    dict
        ``{"method": "parametric", "drift", "new", "threshold", "history_size",
        "higher_is_better", "status", "mean", "std"}`` with ``threshold = mean -
        2*std`` (``+`` when lower is better) and the sample std (``ddof=1``);
        drift when the new score is strictly beyond the threshold.
    """
    h = _history(history, "history")
    x = _score(new, "new")
    out = _model_result("parametric", h, x, higher_is_better)
    out.update(mean=None, std=None)
    if h.size < MIN_HISTORY["parametric"]:
        out["status"] = "insufficient_history"
        return out
    mean = float(np.mean(h))
    std = float(np.std(h, ddof=1))
    threshold = mean - 2.0 * std if higher_is_better else mean + 2.0 * std
    out.update(mean=mean, std=std, threshold=threshold)
    out["drift"] = bool(x < threshold if higher_is_better else x > threshold)
    return out


def iqr_drift(
    history: Sequence[float] | npt.ArrayLike,
    new: float,
    *,
    higher_is_better: bool = True,
) -> dict[str, Any]:
    """Drift when the new score is beyond the 1.5 IQR fence on the worse side.

    Parameters
    ----------
    history : sequence of float
        Earlier scores; at least four are needed.
    new : float
        The new score.
    higher_is_better : bool, default True
        Which side is worse.

    Returns
    -------
    dict
        ``{"method": "iqr", "drift", "new", "threshold", "history_size",
        "higher_is_better", "status", "q1", "q3", "iqr"}`` with quartiles by
        linear interpolation (``numpy.percentile``) and ``threshold = q1 -
        1.5*iqr`` (``q3 + 1.5*iqr`` when lower is better); drift when strictly
        beyond.
    """
    h = _history(history, "history")
    x = _score(new, "new")
    out = _model_result("iqr", h, x, higher_is_better)
    out.update(q1=None, q3=None, iqr=None)
    if h.size < MIN_HISTORY["iqr"]:
        out["status"] = "insufficient_history"
        return out
    q1, q3 = (float(v) for v in np.percentile(h, [25.0, 75.0]))
    spread = q3 - q1
    threshold = q1 - 1.5 * spread if higher_is_better else q3 + 1.5 * spread
    out.update(q1=q1, q3=q3, iqr=spread, threshold=threshold)
    out["drift"] = bool(x < threshold if higher_is_better else x > threshold)
    return out


def tolerance_drift(
    baseline: float, new: float, *, tolerance: float, higher_is_better: bool = True
) -> dict[str, Any]:
    """Drift when the new score is worse than the baseline by more than a tolerance.

    Parameters
    ----------
    baseline : float
        Score of the deployed model.
    new : float
        The new score.
    tolerance : float
        Allowed degradation, ``>= 0``.  Differences within ``1e-12`` (relative to
        the scores' magnitude) of the tolerance count as within it, so that e.g.
        ``0.80 -> 0.75`` with tolerance ``0.05`` is not drift.
    higher_is_better : bool, default True
        Which side is worse.

    Returns
    -------
    dict
        ``{"method": "tolerance", "drift", "new", "baseline", "threshold",
        "tolerance", "degradation", "higher_is_better", "status"}`` where
        ``degradation`` is how much worse the new score is (negative when better)
        and ``threshold`` the worst score still accepted.  Equal scores are never
        drift.

    Raises
    ------
    ConfigError
        When ``tolerance`` is negative or not finite.
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


def compare_score_histories(
    a: Sequence[float] | npt.ArrayLike,
    b: Sequence[float] | npt.ArrayLike,
    *,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Welch two-sample t-test between two score histories.

    Parameters
    ----------
    a, b : sequence of float
        Scores of two models (or periods); at least two each.
    alpha : float, default 0.05
        Significance level.

    Returns
    -------
    dict
        ``{"method": "welch_t", "statistic", "p_value", "significant", "alpha",
        "n_a", "n_b", "mean_a", "mean_b", "status"}`` as
        ``scipy.stats.ttest_ind(a, b, equal_var=False)`` gives them.  With fewer
        than two scores on a side the status is ``"insufficient_history"``; when
        both sides are constant the t statistic is undefined, the status is
        ``"zero_variance"`` and ``significant`` tells whether the means differ.
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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_ind(x, y, equal_var=False)
    out["statistic"] = _num(result.statistic)
    out["p_value"] = _num(result.pvalue)
    out["significant"] = bool(out["p_value"] is not None and out["p_value"] < alpha)
    return out


def model_drift_status(settings: Any, store: Any, artifact: Any) -> dict[str, Any]:
    """Model-drift verdict of the deployed model, with the tests behind it.

    The verdict compares like with like: the deployed model's F1 on the newest
    ingested batch against its F1 on its own training data, with the configured
    tolerance. The seed's three tests on the history of test-set F1 across model
    versions (raw, parametric, IQR) are reported beside it as evidence.

    Parameters
    ----------
    settings : Settings
    store : Store
    artifact : Artifact
        The deployed model.
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
    baseline = (artifact.metadata.get("training_score") or {}).get("f1")
    if ingested and baseline is not None and ingested[-1]["f1"] is not None:
        new_data = tolerance_drift(
            float(baseline),
            float(ingested[-1]["f1"]),
            tolerance=settings.thresholds.model_drift_tolerance,
        )
        new_data["scored_at"] = ingested[-1]["scored_at"]
        checks["new_data"] = new_data
        drift = bool(new_data["drift"])
        reason = (
            f"F1 on the newest ingested data {ingested[-1]['f1']:.4f} vs "
            f"{float(baseline):.4f} on the training data "
            f"(tolerance {settings.thresholds.model_drift_tolerance})"
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
    live: dict[str, Any] | None,
    *,
    baseline: float | None,
    tolerance: float,
    min_labelled_rows: int,
) -> dict[str, Any]:
    """Model-drift check of the deployed model on its labelled captured traffic.

    The baseline is the model's F1 on its training data (as for the ingested-data
    check), the new value its F1 on labelled live rows, with ``tolerance``. It is a
    check (``checked`` true, with a ``drift`` verdict) only with at least
    ``min_labelled_rows`` labelled rows; otherwise it is reported as evidence only.

    Parameters
    ----------
    live : dict or None
        The model version's entry of :func:`monitoring.capture.live_performance`.
    baseline : float or None
        The model's F1 on its training data.
    tolerance : float
    min_labelled_rows : int
    """
    perf = live or {"n_captured": 0, "n_labelled": 0}
    out: dict[str, Any] = {"metric": "f1", "min_labelled_rows": min_labelled_rows, "live": perf}
    if perf["n_labelled"] < min_labelled_rows or baseline is None or perf.get("f1") is None:
        out.update(
            checked=False,
            drift=False,
            reason=f"{perf['n_labelled']} labelled live rows; at least {min_labelled_rows} needed",
        )
        return out
    verdict = tolerance_drift(float(baseline), float(perf["f1"]), tolerance=tolerance)
    out.update(verdict, checked=True, baseline_dataset="training data")
    return out
