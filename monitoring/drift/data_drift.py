"""Data drift: every column of a new batch against the reference profile.

Numeric columns get KS, the normed Wasserstein distance and PSI; categorical ones
chi-square and Jensen-Shannon; ``method: "auto"`` picks as Evidently does. Missing
values (and ``+-inf``) are reported as null rates, left out of the tests. The batch
is a DataFrame or the profile of one (the ingested data's, fitted at ingestion).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import pandas as pd

from monitoring.config import (
    CATEGORICAL_METHODS,
    NUMERIC_METHODS,
    P_VALUE_METHODS,
    ColumnOptions,
    DriftOptions,
)
from monitoring.drift.reference import (
    ReferenceProfile,
    _column_list,
    _ColumnProfile,
    _label_counts,
    _numeric_categories,
    _numeric_values,
    sorted_sample,
)
from monitoring.drift.statistics import (
    FloatArray,
    _chi_square,
    _finite,
    _jensen_shannon,
    _ks_pvalue,
    _merge,
    _num,
    _psi,
    _runs,
    _wasserstein_normed,
    benjamini_hochberg,
)
from monitoring.exceptions import ConfigError, DataValidationError

# Per-column ``status`` values: ``ok`` and ``constant_reference`` columns are
# tested; the others are reported with ``statistic`` None and ``drifted`` False.
STATUSES: Final[tuple[str, ...]] = (
    "ok",
    "constant_reference",
    "empty_reference",
    "all_null_reference",
    "empty_current",
    "all_null_current",
)
# Result keys of each method's statistic and p-value, in the order results list them.
_RESULT_KEYS: Final[dict[str, tuple[str, str | None]]] = {
    "ks": ("ks_statistic", "ks_p_value"),
    "wasserstein": ("wasserstein_normed", None),
    "psi": ("psi", None),
    "chisquare": ("chi_square", "chi_square_p_value"),
    "jensenshannon": ("jensen_shannon", None),
}


def _resolve_method(
    profile: _ColumnProfile, col: ColumnOptions, opts: DriftOptions, n_ref_rows: int
) -> str:
    if col.method is not None and col.method != "auto":
        if col.method in NUMERIC_METHODS and profile.value_type != "numeric":
            raise ConfigError(
                f"drift.columns.{profile.name}.method {col.method!r} needs numeric "
                f"values, but the column holds labels"
            )
        return col.method
    chosen = opts.method
    if chosen != "auto" and (
        (chosen in NUMERIC_METHODS and profile.kind == "numeric")
        or (chosen in CATEGORICAL_METHODS and profile.kind == "categorical")
    ):
        return chosen
    small = n_ref_rows <= opts.large_reference_rows
    if profile.kind == "numeric":
        return "ks" if small else "wasserstein"
    return "chisquare" if small else "jensenshannon"


def _resolve_threshold(method: str, name: str, col: ColumnOptions, opts: DriftOptions) -> float:
    if col.threshold is not None:
        if method in P_VALUE_METHODS and col.threshold >= 1.0:
            raise ConfigError(
                f"drift.columns.{name}.threshold must be in (0, 1) for method "
                f"{method!r}, got {col.threshold!r}"
            )
        return col.threshold
    if method in P_VALUE_METHODS:
        return opts.fdr_alpha if opts.fdr else opts.p_value_threshold
    if method == "psi":
        return opts.psi_threshold
    return opts.distance_threshold


def _empty_result(profile: _ColumnProfile, method: str, threshold: float) -> dict[str, Any]:
    """Per-column result with every key present, nothing tested yet."""
    return {
        "column": profile.name,
        "kind": profile.kind,
        "method": method,
        "statistic": None,
        "p_value": None,
        "adjusted_p_value": None,
        "threshold": threshold,
        "drifted": False,
        "status": "ok",
        "null_rate_reference": (profile.n_null / profile.n_rows if profile.n_rows else None),
        "null_rate_current": None,
        "null_rate_change": None,
        "n_reference": profile.n_valid,
        "n_current": 0,
        **dict.fromkeys(key for keys in _RESULT_KEYS.values() for key in keys if key),
    }


def _categorical_stats(
    profile: _ColumnProfile, labels: dict[str, int] | None, cur_sorted: FloatArray | None
) -> tuple[float, float, float]:
    """Chi-square, its p-value and JS distance over the union of categories."""
    cat = profile.categorical
    if labels is not None:
        assert cat is not None and isinstance(cat.values, tuple)
        ref_map = dict(zip(cat.values, cat.counts.tolist(), strict=True))
        keys = [*ref_map, *(k for k in labels if k not in ref_map)]
        ref_counts = np.array([ref_map.get(k, 0) for k in keys], dtype=np.float64)
        cur_counts = np.array([labels.get(k, 0) for k in keys], dtype=np.float64)
    else:
        assert cur_sorted is not None
        if cat is None:  # numeric-kind column tested with a categorical method
            assert profile.numeric is not None
            cat = _numeric_categories(profile.numeric.sorted_values)
        ref_values = np.asarray(cat.values, dtype=np.float64)
        cur_values, cur_cum = _runs(cur_sorted)
        union = np.union1d(ref_values, cur_values)
        ref_counts = np.zeros(union.size, dtype=np.float64)
        cur_counts = np.zeros(union.size, dtype=np.float64)
        ref_counts[np.searchsorted(union, ref_values)] = cat.counts
        cur_counts[np.searchsorted(union, cur_values)] = np.diff(cur_cum, prepend=0)
    statistic, p_value = _chi_square(ref_counts, cur_counts)
    return statistic, p_value, _jensen_shannon(ref_counts, cur_counts)


def _current_values(
    profile: _ColumnProfile, current: pd.Series | _ColumnProfile
) -> tuple[int, FloatArray | None, dict[str, int] | None, int | None]:
    """Rows of a current column (data or its profile) and, as the reference column
    holds numbers or labels, its sorted finite numbers or its label counts; and for
    data, how many finite numbers it holds (past :data:`EXACT_VALUES` the sorted
    numbers are the points of a sketch, see :func:`sorted_sample`).

    A profiled column of labels against numbers is converted as ``pd.to_numeric``
    converts the data; numbers against labels cannot be (``1`` or ``1.0``?).
    """
    if isinstance(current, pd.Series):
        if profile.value_type == "numeric":
            numbers = _numeric_values(current, "current")
            if profile.categorical is not None:  # category counts: every value
                return int(current.size), np.sort(_finite(numbers)), None, None
            values, n_finite = sorted_sample(numbers)
            return int(current.size), values, None, n_finite
        return int(current.size), None, _label_counts(current), None
    cat = current.categorical
    if profile.value_type == "numeric":
        if current.numeric is not None:
            return current.n_rows, current.numeric.sorted_values, None, None
        assert cat is not None and isinstance(cat.values, tuple)
        labels = pd.Series(list(cat.values), dtype=object, name=current.name)
        numbers = np.repeat(_numeric_values(labels, "current"), cat.counts)
        return current.n_rows, np.sort(_finite(numbers)), None, None
    if cat is not None and isinstance(cat.values, tuple):
        return (
            current.n_rows,
            None,
            dict(zip(cat.values, cat.counts.tolist(), strict=True)),
            None,
        )
    raise DataValidationError(
        f"current profile column {current.name!r} holds numbers but the reference column "
        "holds labels; check the data itself"
    )


def _check_column(
    profile: _ColumnProfile,
    current: pd.Series | _ColumnProfile,
    opts: DriftOptions,
    n_ref_rows: int,
) -> dict[str, Any]:
    col = opts.column(profile.name)
    method = _resolve_method(profile, col, opts, n_ref_rows)
    threshold = _resolve_threshold(method, profile.name, col, opts)
    out = _empty_result(profile, method, threshold)

    numeric_path = method in NUMERIC_METHODS or profile.kind == "numeric"
    categorical_path = method in CATEGORICAL_METHODS or profile.kind == "categorical"
    n_cur_rows, cur_sorted, labels, n_finite = _current_values(profile, current)
    n_cur = int(cur_sorted.size) if cur_sorted is not None else sum((labels or {}).values())
    if isinstance(current, _ColumnProfile) and current.numeric is not None:
        n_cur = current.n_valid  # its sorted values may be a sketch's points
    elif n_finite is not None:
        n_cur = n_finite  # past EXACT_VALUES its sorted values are a sketch's points
    out["n_current"] = n_cur
    if n_cur_rows:
        out["null_rate_current"] = (n_cur_rows - n_cur) / n_cur_rows
        if out["null_rate_reference"] is not None:
            out["null_rate_change"] = out["null_rate_current"] - out["null_rate_reference"]

    if profile.n_rows == 0:
        out["status"] = "empty_reference"
    elif profile.n_valid == 0:
        out["status"] = "all_null_reference"
    elif n_cur_rows == 0:
        out["status"] = "empty_current"
    elif n_cur == 0:
        out["status"] = "all_null_current"
    else:
        constant = (
            profile.numeric.std == 0.0
            if profile.kind == "numeric" and profile.numeric is not None
            else profile.categorical is not None and len(profile.categorical.counts) == 1
        )
        out["status"] = "constant_reference" if constant else "ok"
    if out["status"] not in ("ok", "constant_reference"):
        return out
    if out["status"] == "constant_reference" and method == "wasserstein":
        # A distance divided by a zero spread means nothing (5.5 -> 5.51 gave 0.0018):
        # KS decides, and any real move of the values is drift (D = 1 there).
        method = out["method"] = "ks"
        threshold = out["threshold"] = opts.p_value_threshold

    if numeric_path:
        num = profile.numeric
        assert num is not None and cur_sorted is not None
        ks, wasserstein = _merge(num.sorted_values, num.prefix, *_runs(cur_sorted))
        ks_d, ks_p = _ks_pvalue(ks, profile.n_valid, n_cur)
        out["ks_statistic"] = _num(ks_d)
        out["ks_p_value"] = _num(ks_p)
        out["wasserstein_normed"] = _num(_wasserstein_normed(wasserstein, num.std, num.mean))
        out["psi"] = _num(_psi(num.psi_props, num.psi_edges, cur_sorted))
    if categorical_path:
        chi, chi_p, js = _categorical_stats(profile, labels, cur_sorted)
        out["chi_square"] = _num(chi)
        out["chi_square_p_value"] = _num(chi_p)
        out["jensen_shannon"] = _num(js)

    if method == "wasserstein" and out["wasserstein_normed"] is None:
        # The distance overflowed (values near the float limit): KS, which only
        # compares the order of values, decides instead of a silent "no drift".
        method = out["method"] = "ks"
        out["threshold"] = threshold = opts.p_value_threshold
    statistic_key, p_key = _RESULT_KEYS[method]
    out["statistic"] = out[statistic_key]
    if p_key is not None:
        out["p_value"] = out[p_key]
        out["drifted"] = out["p_value"] is not None and out["p_value"] < threshold
    else:
        out["drifted"] = out["statistic"] is not None and out["statistic"] >= threshold
    return out


def detect_data_drift(
    reference: ReferenceProfile | pd.DataFrame,
    current: pd.DataFrame | ReferenceProfile,
    *,
    columns: Sequence[str] | None = None,
    options: DriftOptions | None = None,
) -> dict[str, Any]:
    """Compare ``columns`` (default: all reference columns) of a batch with the reference.

    ``reference`` is a fitted profile (its kinds and PSI bins apply; only ``current`` is
    processed) or the reference data, profiled with ``options``. ``current`` is the
    batch or a profile fitted on it with the same options (the report is the same,
    number for number); only its values are used. Returns plain JSON
    (``None`` for "not applicable" and non-finite numbers): ``dataset_drift``,
    ``drift_share``, ``share_threshold``, ``n_columns``, ``n_drifted``,
    ``drifted_columns``, ``n_reference`` and ``n_current`` (rows), ``fdr``, and
    ``columns``, each with the keys of :func:`_empty_result` (``n_*`` counting
    non-missing values): the statistics of its kind and of a method forced on it. A
    column whose ``status`` is not ``ok``/``constant_reference`` is untested but counts.

    Raises DataValidationError when an input is neither a DataFrame nor a profile,
    ``current`` lacks a checked column or a numeric column holds non-numbers;
    ConfigError when a column override does not fit the data; NotFittedError for an
    unfitted profile.
    """
    opts = options if options is not None else DriftOptions()
    if isinstance(current, ReferenceProfile):
        current._check_fitted()
    elif not isinstance(current, pd.DataFrame):
        raise DataValidationError(
            f"current must be a pandas DataFrame or a ReferenceProfile, got "
            f"{type(current).__name__}"
        )
    if isinstance(reference, ReferenceProfile):
        reference._check_fitted()
        profile, known = reference, set(reference.columns_)
    elif isinstance(reference, pd.DataFrame):
        profile = ReferenceProfile.from_options(opts).fit(reference, columns)
        known = set(reference.columns)
    else:
        raise DataValidationError(
            "reference must be a ReferenceProfile or a pandas DataFrame, got "
            f"{type(reference).__name__}"
        )
    for name, col in opts.columns.items():
        if name not in known:
            raise ConfigError(f"drift.columns.{name} names a column not in the reference")
        fitted = profile.kinds_.get(name)
        if col.kind is not None and fitted is not None and fitted != col.kind:
            raise ConfigError(
                f"drift.columns.{name}.kind is {col.kind!r} but the reference profile "
                f"was fitted with kind {fitted!r}; refit the profile"
            )
    names = list(profile.columns_) if columns is None else list(dict.fromkeys(columns))
    unknown = [name for name in names if name not in profile.profiles_]
    if unknown:
        raise DataValidationError(f"columns not in the reference: {', '.join(map(str, unknown))}")
    if isinstance(current, ReferenceProfile):
        missing = [str(name) for name in names if name not in current.profiles_]
        if missing:
            raise DataValidationError(
                f"current profile is missing columns: {', '.join(missing)}",
                details={"missing_columns": missing},
            )
        current_columns: Any = current.profiles_
        n_current = current.n_rows_
    else:
        _column_list(current, names, "current data")
        current_columns, n_current = current, len(current)

    # Values near the float limit (1e308) overflow intermediate sums of the
    # distance integrals; the tests' verdicts stay finite, so no warning is raised.
    with np.errstate(over="ignore", invalid="ignore"):
        results = [
            _check_column(profile.profiles_[name], current_columns[name], opts, profile.n_rows_)
            for name in names
        ]
    if opts.fdr:
        tested = [r for r in results if r["method"] in P_VALUE_METHODS and r["p_value"] is not None]
        if tested:
            _, adjusted = benjamini_hochberg([r["p_value"] for r in tested], opts.fdr_alpha)
            for r, adj in zip(tested, adjusted.tolist(), strict=True):
                r["adjusted_p_value"] = float(adj)
                r["drifted"] = float(adj) < r["threshold"]
    drifted = [r["column"] for r in results if r["drifted"]]
    n_columns = len(results)
    share = len(drifted) / n_columns if n_columns else 0.0
    return {
        "dataset_drift": bool(n_columns > 0 and share >= opts.drift_share),
        "drift_share": share,
        "share_threshold": opts.drift_share,
        "n_columns": n_columns,
        "n_drifted": len(drifted),
        "drifted_columns": drifted,
        "n_reference": int(profile.n_rows_),
        "n_current": int(n_current),
        "fdr": bool(opts.fdr),
        "columns": results,
    }
