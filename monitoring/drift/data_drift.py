"""Data drift and model drift detection.

Data drift compares the columns of a *current* batch with the *reference* data the
deployed model was trained on, one column at a time:

* numeric columns: two-sample Kolmogorov-Smirnov test (statistic and two-sided
  p-value, equal to :func:`scipy.stats.ks_2samp`), Wasserstein distance normalised
  by the reference standard deviation, and the population stability index (PSI)
  over quantile bins of the reference;
* categorical columns (object, string, category or bool dtype, or integer-valued
  numeric columns with at most ``categorical_max_unique`` distinct reference
  values): chi-square goodness-of-fit test of the current counts against the
  reference proportions, and the Jensen-Shannon distance (base 2, in ``[0, 1]``).

By default the method is chosen the way Evidently documents it: a reference of at
most ``large_reference_rows`` (1000) rows uses the p-value tests (KS / chi-square,
drift when ``p < 0.05``); a larger reference uses the distances (normed
Wasserstein / Jensen-Shannon, drift when ``distance >= 0.1``).  The dataset drifts
when the share of drifted columns reaches ``drift_share`` (0.5).

The reference is summarised once by :class:`ReferenceProfile` (sorted values,
PSI bins, category counts, ...), so a check against a fitted profile only costs
work on the new batch: the current values are sorted (``O(m log m)``) and merged
with the cached sorted reference with :func:`numpy.searchsorted`.  The merge is
pruned: it first evaluates the two empirical distribution functions at every
``_MERGE_BLOCK``-th current value and then resolves exactly only the blocks in
which the KS maximum or a sign change of ``F_ref - F_cur`` can lie, which keeps the
result exact while searching only a fraction of the current values.

Model drift compares a new model score with the history of earlier scores
(:func:`raw_drift`, :func:`parametric_drift`, :func:`iqr_drift`,
:func:`tolerance_drift`) and two score histories with each other
(:func:`compare_score_histories`).

Conventions
-----------
* Missing values are ``None``/``NaN``/``pd.NA``; in numeric columns ``+-inf``
  counts as missing too.  Null rates are reported, tests run on the other values.
* Every result is JSON-serialisable: plain Python types, ``None`` for "not
  applicable" and for non-finite numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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
)
from monitoring.drift.statistics import (
    PSI_EPS,
    FloatArray,
    _align,
    _chi_square_counts,
    _finite,
    _js_counts,
    _ks_pvalue,
    _merge,
    _normalise_wasserstein,
    _num,
    _psi_current,
    _psi_value,
    _runs,
    benjamini_hochberg,
)
from monitoring.exceptions import (
    ConfigError,
    DataValidationError,
)

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


def _resolve_method(
    profile: _ColumnProfile, col: ColumnOptions, opts: DriftOptions, n_ref_rows: int
) -> str:
    """The method a column is tested with."""
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
    """Threshold of the column's method."""
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
    """Per-column result with every key present."""
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
        "ks_statistic": None,
        "ks_p_value": None,
        "wasserstein_normed": None,
        "psi": None,
        "chi_square": None,
        "chi_square_p_value": None,
        "jensen_shannon": None,
    }


def _categorical_stats(
    profile: _ColumnProfile,
    current: FloatArray | dict[str, int],
    cur_sorted: FloatArray | None,
) -> tuple[float, float, float]:
    """Chi-square statistic, p-value and JS distance of one column."""
    cat = profile.categorical
    if isinstance(current, dict):
        assert cat is not None and isinstance(cat.values, tuple)
        ref_map = dict(zip(cat.values, cat.counts.tolist(), strict=True))
        ref_counts, cur_counts = _align(ref_map, current)
    else:
        if cat is None:  # numeric-kind column tested with a categorical method
            assert profile.numeric is not None
            cat = _numeric_categories(profile.numeric.sorted_values)
        ref_values = np.asarray(cat.values, dtype=np.float64)
        cur_values, cur_cum = _runs(cur_sorted if cur_sorted is not None else np.sort(current))
        cur_n = np.diff(cur_cum, prepend=0)
        union = np.union1d(ref_values, cur_values)
        ref_counts = np.zeros(union.size, dtype=np.float64)
        cur_counts = np.zeros(union.size, dtype=np.float64)
        ref_counts[np.searchsorted(union, ref_values)] = cat.counts
        cur_counts[np.searchsorted(union, cur_values)] = cur_n
    statistic, p_value = _chi_square_counts(ref_counts, cur_counts)
    return statistic, p_value, _js_counts(ref_counts, cur_counts)


def _check_column(
    profile: _ColumnProfile,
    series: pd.Series,
    opts: DriftOptions,
    n_ref_rows: int,
) -> dict[str, Any]:
    """Test one column and return its result entry."""
    col = opts.column(profile.name)
    method = _resolve_method(profile, col, opts, n_ref_rows)
    threshold = _resolve_threshold(method, profile.name, col, opts)
    n_cur_rows = int(series.size)
    out = _empty_result(profile, method, threshold)

    numeric_path = method in NUMERIC_METHODS or profile.kind == "numeric"
    categorical_path = method in CATEGORICAL_METHODS or profile.kind == "categorical"
    cur_sorted: FloatArray | None = None
    current: FloatArray | dict[str, int]
    if profile.value_type == "numeric":
        current = _finite(_numeric_values(series, "current"))
        n_cur_null = n_cur_rows - int(current.size)
        cur_sorted = np.sort(current)
        n_cur = int(current.size)
    else:
        current = _label_counts(series)
        n_cur = sum(current.values())
        n_cur_null = n_cur_rows - n_cur
    out["n_current"] = n_cur
    if n_cur_rows:
        out["null_rate_current"] = n_cur_null / n_cur_rows
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

    if numeric_path:
        num = profile.numeric
        assert num is not None and cur_sorted is not None
        unique, cumulative = _runs(cur_sorted)
        merged = _merge(num.sorted_values, num.prefix, unique, cumulative)
        ks_d, ks_p = _ks_pvalue(merged.ks_statistic, profile.n_valid, n_cur)
        assert merged.wasserstein is not None
        out["ks_statistic"] = _num(ks_d)
        out["ks_p_value"] = _num(ks_p)
        out["wasserstein_normed"] = _num(
            _normalise_wasserstein(merged.wasserstein, num.std, num.mean)
        )
        out["psi"] = _num(
            _psi_value(num.psi_props, _psi_current(num.psi_edges, cur_sorted), PSI_EPS)
        )
    if categorical_path:
        chi, chi_p, js = _categorical_stats(profile, current, cur_sorted)
        out["chi_square"] = _num(chi)
        out["chi_square_p_value"] = _num(chi_p)
        out["jensen_shannon"] = _num(js)

    statistic_key, p_key = {
        "ks": ("ks_statistic", "ks_p_value"),
        "wasserstein": ("wasserstein_normed", None),
        "psi": ("psi", None),
        "chisquare": ("chi_square", "chi_square_p_value"),
        "jensenshannon": ("jensen_shannon", None),
    }[method]
    out["statistic"] = out[statistic_key]
    if p_key is not None:
        out["p_value"] = out[p_key]
        out["drifted"] = out["p_value"] is not None and out["p_value"] < threshold
    else:
        out["drifted"] = out["statistic"] is not None and out["statistic"] >= threshold
    return out


def detect_data_drift(
    reference: ReferenceProfile | pd.DataFrame,
    current: pd.DataFrame,
    *,
    columns: Sequence[str] | None = None,
    options: DriftOptions | None = None,
) -> dict[str, Any]:
    """Compare every column of a current batch with the reference.

    Parameters
    ----------
    reference : ReferenceProfile or pandas.DataFrame
        A fitted profile (fast path: only the current batch is processed) or the
        reference data itself (profiled on the fly with the settings of
        ``options``).  With a profile, column kinds and PSI bins are the profile's.
    current : pandas.DataFrame
        The new batch; extra columns are ignored.
    columns : sequence of str or None, default None
        Columns to check; all reference columns when ``None``.
    options : DriftOptions or None, default None
        Settings; defaults when ``None``.

    Returns
    -------
    dict
        JSON-serialisable report::

            {"dataset_drift": bool, "drift_share": float, "share_threshold": float,
             "n_columns": int, "n_drifted": int, "drifted_columns": [str, ...],
             "n_reference": int, "n_current": int, "fdr": bool,
             "columns": [{"column", "kind", "method", "statistic", "p_value",
                          "adjusted_p_value", "threshold", "drifted", "status",
                          "null_rate_reference", "null_rate_current",
                          "null_rate_change", "n_reference", "n_current",
                          "ks_statistic", "ks_p_value", "wasserstein_normed", "psi",
                          "chi_square", "chi_square_p_value", "jensen_shannon"}, ...]}

        ``n_reference``/``n_current`` are row counts at the top level and counts of
        non-missing values per column.  Numeric columns get the KS, Wasserstein
        and PSI keys, categorical columns the chi-square and Jensen-Shannon keys
        (plus those of a method forced on them); the others are ``None``.  Columns
        whose ``status`` is not ``ok``/``constant_reference`` are not tested
        (``drifted`` false) but count in ``n_columns``.

    Raises
    ------
    DataValidationError
        When ``current`` lacks checked columns (named in the message), a column
        that should be numeric holds non-numeric values, or the inputs are not
        DataFrames.
    ConfigError
        When a per-column override does not fit the data (unknown column, a
        numeric method on labels, a kind different from the fitted profile's).
    NotFittedError
        When ``reference`` is an unfitted profile.
    """
    opts = options if options is not None else DriftOptions()
    if not isinstance(current, pd.DataFrame):
        raise DataValidationError(
            f"current must be a pandas DataFrame, got {type(current).__name__}"
        )
    if isinstance(reference, ReferenceProfile):
        reference._check_fitted()
        profile = reference
        known: Iterable[Any] = profile.columns_
    elif isinstance(reference, pd.DataFrame):
        known = list(reference.columns)
        fit_columns = _column_list(reference, columns, "reference")
        profile = ReferenceProfile.from_options(opts).fit(reference, fit_columns)
    else:
        raise DataValidationError(
            "reference must be a ReferenceProfile or a pandas DataFrame, got "
            f"{type(reference).__name__}"
        )
    known_set = set(known)
    for name, col in opts.columns.items():
        if name not in known_set:
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
    _column_list(current, names, "current data")

    # Values near the float limit (1e308) overflow intermediate sums of the
    # distance integrals; the tests' verdicts stay finite, so no warning is raised.
    with np.errstate(over="ignore", invalid="ignore"):
        results = [
            _check_column(profile.profiles_[name], current[name], opts, profile.n_rows_)
            for name in names
        ]
    if opts.fdr:
        tested = [r for r in results if r["method"] in P_VALUE_METHODS and r["p_value"] is not None]
        if tested:
            _, adjusted = benjamini_hochberg([r["p_value"] for r in tested], opts.fdr_alpha)
            for r, adj in zip(tested, adjusted.tolist(), strict=True):
                r["adjusted_p_value"] = float(adj)
                r["drifted"] = float(adj) < r["threshold"]
    for r in results:
        r["drifted"] = bool(r["drifted"])
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
        "n_current": int(len(current)),
        "fdr": bool(opts.fdr),
        "columns": results,
    }
