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

import json
import math
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, TypeAlias, cast

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import special, stats

from monitoring.exceptions import (
    ConfigError,
    DataValidationError,
    IntegrityError,
    MonitoringError,
)

__all__ = [
    "CATEGORICAL_METHODS",
    "KINDS",
    "METHODS",
    "NUMERIC_METHODS",
    "P_VALUE_METHODS",
    "STATUSES",
    "ColumnOptions",
    "DriftOptions",
    "NotFittedError",
    "ReferenceProfile",
    "benjamini_hochberg",
    "chi_square",
    "compare_score_histories",
    "detect_data_drift",
    "iqr_drift",
    "jensen_shannon",
    "ks_statistic_sorted",
    "parametric_drift",
    "psi",
    "raw_drift",
    "tolerance_drift",
    "wasserstein_normed",
]

FloatArray: TypeAlias = npt.NDArray[np.float64]
IntArray: TypeAlias = npt.NDArray[np.int64]
BoolArray: TypeAlias = npt.NDArray[np.bool_]
PathLike: TypeAlias = str | os.PathLike[str]

METHODS: Final[tuple[str, ...]] = (
    "auto",
    "ks",
    "wasserstein",
    "psi",
    "chisquare",
    "jensenshannon",
)
"""Drift methods accepted by :class:`DriftOptions` (globally and per column)."""

NUMERIC_METHODS: Final[frozenset[str]] = frozenset({"ks", "wasserstein", "psi"})
"""Methods that need numeric values."""

CATEGORICAL_METHODS: Final[frozenset[str]] = frozenset({"chisquare", "jensenshannon"})
"""Methods that compare category frequencies."""

P_VALUE_METHODS: Final[frozenset[str]] = frozenset({"ks", "chisquare"})
"""Methods whose verdict is ``p_value < threshold`` (the others: ``>=``)."""

KINDS: Final[tuple[str, ...]] = ("numeric", "categorical")
"""Column kinds."""

STATUSES: Final[tuple[str, ...]] = (
    "ok",
    "constant_reference",
    "empty_reference",
    "all_null_reference",
    "empty_current",
    "all_null_current",
)
"""Per-column ``status`` values.

``ok`` and ``constant_reference`` columns are tested; the others are reported with
``statistic`` ``None`` and ``drifted`` ``False``.
"""

PSI_EPS: Final[float] = 1e-4
"""Proportion used instead of 0 for an empty PSI bin."""

KS_EXACT_MAX_N: Final[int] = 10_000
"""Like ``scipy.stats.ks_2samp(method='auto')``: exact p-value up to this size."""

_KSTWO_MAX_N: Final[int] = 1_000
_MERGE_BLOCK: Final[int] = 32
_PRUNE_MAX_NM: Final[int] = 2**62
_NEGLIGIBLE_MASS: Final[float] = 1e-24
_FAR_TAIL: Final[float] = 1e-20
_FAR_TAIL_MIN_N: Final[int] = 1000
_PROFILE_FORMAT: Final[str] = "monitoring.drift.ReferenceProfile"
_PROFILE_VERSION: Final[int] = 1

MIN_HISTORY: Final[Mapping[str, int]] = MappingProxyType({"raw": 1, "parametric": 2, "iqr": 4})
"""Shortest score history each model-drift method decides on.

``parametric`` needs two scores for a sample standard deviation; ``iqr`` needs four
so that the quartiles come from at least one score on each side of the median.
"""

_OPTION_KEYS: Final[tuple[str, ...]] = (
    "method",
    "p_value_threshold",
    "distance_threshold",
    "psi_threshold",
    "large_reference_rows",
    "categorical_max_unique",
    "drift_share",
    "fdr",
    "fdr_alpha",
    "psi_bins",
    "columns",
)
_COLUMN_OPTION_KEYS: Final[tuple[str, ...]] = ("method", "threshold", "kind")


class NotFittedError(MonitoringError, ValueError, AttributeError):
    """A :class:`ReferenceProfile` was used before :meth:`ReferenceProfile.fit`."""

    status_code = 500


# --------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------


def _num(value: float | np.floating[Any] | None) -> float | None:
    """Return ``value`` as a Python float, or ``None`` when missing or non-finite."""
    if value is None:
        return None
    out = float(value)
    return out if math.isfinite(out) else None


def _as_float_1d(values: npt.ArrayLike, name: str) -> FloatArray:
    """Return ``values`` as a 1-D float64 array or raise DataValidationError."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataValidationError(f"{name} must be numeric: {exc}") from exc
    if arr.ndim != 1:
        raise DataValidationError(f"{name} must be one-dimensional, got {arr.ndim}-D")
    return arr


def _finite(arr: FloatArray) -> FloatArray:
    """Return the finite values of ``arr`` (``arr`` itself when all are finite)."""
    mask = np.isfinite(arr)
    if mask.all():
        return arr
    return arr[mask]


def _runs(sorted_values: FloatArray) -> tuple[FloatArray, IntArray]:
    """Distinct values of a sorted array and the count of values ``<=`` each.

    Parameters
    ----------
    sorted_values : ndarray of float64
        Sorted, NaN-free values.

    Returns
    -------
    unique : ndarray of float64
        The distinct values, increasing.
    cumulative : ndarray of int64
        ``cumulative[k]`` is the number of values ``<= unique[k]``.
    """
    m = sorted_values.size
    if m == 0:
        return sorted_values, np.zeros(0, dtype=np.int64)
    change = sorted_values[1:] != sorted_values[:-1]
    if change.all():
        return sorted_values, np.arange(1, m + 1, dtype=np.int64)
    ends = np.flatnonzero(change)
    last = np.append(ends, m - 1)
    return sorted_values[last], (last + 1).astype(np.int64)


def _left_counts(ref: FloatArray, keys: FloatArray, right: IntArray) -> IntArray:
    """Number of reference values ``< keys`` given the counts of values ``<= keys``.

    Only keys that equal a reference value need a second search.
    """
    if keys.size == 0:
        return right
    prev = ref[np.maximum(right - 1, 0)]
    tie = (right > 0) & (prev == keys)
    if not tie.any():
        return right
    left = right.copy()
    left[tie] = np.searchsorted(ref, keys[tie], side="left")
    return left


def _ranges(starts: IntArray, stops: IntArray) -> IntArray:
    """Concatenate ``arange(starts[i], stops[i])`` for all ``i`` without a loop."""
    lengths = stops - starts
    keep = lengths > 0
    starts, lengths = starts[keep], lengths[keep]
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.cumsum(lengths) - lengths
    return np.arange(total, dtype=np.int64) + np.repeat(starts - offsets, lengths)


def _prefix_integral(ref_sorted: FloatArray) -> FloatArray:
    """Running integral of ``n * F_ref`` at the sorted reference values.

    ``out[i] = n * integral from ref[0] to ref[i] of F_ref(x) dx``.
    """
    n = ref_sorted.size
    out = np.zeros(n, dtype=np.float64)
    if n > 1:
        steps = np.arange(1, n, dtype=np.float64) * np.diff(ref_sorted)
        np.cumsum(steps, out=out[1:])
    return out


def _integral_at(
    ref: FloatArray, prefix: FloatArray, points: FloatArray, right: IntArray
) -> FloatArray:
    """``n * integral of F_ref`` from ``-inf`` to each point.

    ``right`` holds the number of reference values ``<=`` each point.
    """
    idx = np.maximum(right - 1, 0)
    out = prefix[idx] + right * (points - ref[idx])
    out[right == 0] = 0.0
    return out


# --------------------------------------------------------------------------------
# Kolmogorov-Smirnov
# --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Merge:
    """Result of merging a current batch with the sorted reference."""

    ks_statistic: float
    wasserstein: float | None


def _merge(
    ref: FloatArray,
    prefix: FloatArray | None,
    unique: FloatArray,
    cumulative: IntArray,
    *,
    block: int = _MERGE_BLOCK,
) -> _Merge:
    """KS statistic (and Wasserstein distance) of a sorted reference and a batch.

    Parameters
    ----------
    ref : ndarray of float64
        Sorted, finite reference values (``n`` of them).
    prefix : ndarray of float64 or None
        :func:`_prefix_integral` of ``ref``; ``None`` skips the Wasserstein
        distance.
    unique, cumulative : ndarray
        :func:`_runs` of the sorted current values (``m = cumulative[-1]``).
    block : int, default 32
        Number of distinct current values per block of the pruned merge.

    Returns
    -------
    _Merge
        The KS statistic before scipy's exact-mode rounding (bit-identical to
        ``max |F_ref - F_cur|`` as :func:`scipy.stats.ks_2samp` computes it) and the
        1-Wasserstein distance.

    Notes
    -----
    Both empirical CDFs are step functions, so ``F_ref - F_cur`` only needs to be
    known at the current values ``u_k`` (right limits ``(#ref <= u_k, #cur <= u_k)``
    and left limits ``(#ref < u_k, #cur < u_k)``); every such pair is a value
    scipy evaluates too, so the float maximum is the same.  Blocks of ``block``
    distinct current values are bounded from their end points; only blocks whose
    bound can reach the best value found, or inside which ``F_ref - F_cur`` may
    change sign (needed for ``integral |F_ref - F_cur|``), are searched value by
    value.  Bounds are compared in exact integer arithmetic (``a*m - b*n``) with a
    margin that covers float rounding, so pruning never changes the result.
    """
    n = int(ref.size)
    m = int(cumulative[-1])
    k_count = int(unique.size)
    need_w = prefix is not None
    prune = k_count > 4 * block and n * m < _PRUNE_MAX_NM
    if prune:
        keys = np.arange(0, k_count, block, dtype=np.int64)
        if keys[-1] != k_count - 1:
            keys = np.append(keys, k_count - 1)
    else:
        keys = np.arange(k_count, dtype=np.int64)
    key_u = unique[keys]
    key_right = np.searchsorted(ref, key_u, side="right").astype(np.int64)
    key_left = _left_counts(ref, key_u, key_right)
    key_cum = cumulative[keys]
    key_prev = np.where(keys > 0, cumulative[np.maximum(keys - 1, 0)], 0)

    starts, stops = keys[:-1], keys[1:]
    nonneg = np.zeros(starts.size, dtype=np.bool_)
    if prune:
        # exact integer scores: a/n - b/m  <=>  a*m - b*n
        right_score = key_right * m - key_cum * n
        left_score = key_left * m - key_prev * n
        best = max(int(right_score.max()), int(left_score.max()), int(-right_score.min()))
        margin = int(7e-16 * n * m) + 1
        pos_bound = key_left[1:] * m - cumulative[starts] * n
        neg_bound = cumulative[stops - 1] * n - key_right[:-1] * m
        inner = stops - starts > 1
        refine = inner & ((pos_bound >= best - margin) | (neg_bound >= best - margin))
        if need_w:
            nonneg = key_right[:-1] * m >= cumulative[stops - 1] * n
            nonpos = key_left[1:] * m <= cumulative[starts] * n
            refine |= ~(nonneg | nonpos)
    else:
        refine = np.ones(starts.size, dtype=np.bool_)

    inner_idx = _ranges(starts[refine] + 1, stops[refine])
    inner_u = unique[inner_idx]
    inner_right = np.searchsorted(ref, inner_u, side="right").astype(np.int64)
    inner_left = _left_counts(ref, inner_u, inner_right)
    inner_cum = cumulative[inner_idx]
    inner_prev = cumulative[inner_idx - 1]

    # KS statistic from the exactly evaluated pairs, as scipy computes it
    d_right = np.concatenate((key_right / n - key_cum / m, inner_right / n - inner_cum / m))
    d_left = np.concatenate((key_left / n - key_prev / m, inner_left / n - inner_prev / m))
    max_s = max(float(d_right.max()), float(d_left.max()))
    min_s = float(np.clip(-d_right.min(), 0, 1))
    ks = min_s if min_s > max_s else max_s

    if prefix is None:
        return _Merge(ks_statistic=ks, wasserstein=None)

    # Wasserstein: n * integral |F_ref - F_cur|, block by block
    key_g = _integral_at(ref, prefix, key_u, key_right)
    total = float(key_g[0])  # (-inf, u_0): F_cur = 0
    last_u = float(unique[-1])
    if last_u < ref[-1]:  # [u_last, inf): F_cur = 1
        total += n * (float(ref[-1]) - last_u) - (float(prefix[-1]) - float(key_g[-1]))
    plain = ~refine
    if plain.any():
        widths = np.diff(unique)
        cur_area = np.add.reduceat(cumulative[:-1] * widths, starts)  # m * int F_cur
        block_sum = (key_g[1:] - key_g[:-1]) - cur_area * (n / m)
        sign = np.where(nonneg, 1.0, -1.0)
        total += float(np.sum((sign * block_sum)[plain]))
    if refine.any():
        right_full = np.empty(k_count, dtype=np.int64)
        right_full[keys] = key_right
        right_full[inner_idx] = inner_right
        g_full = np.empty(k_count, dtype=np.float64)
        g_full[keys] = key_g
        g_full[inner_idx] = _integral_at(ref, prefix, inner_u, inner_right)
        k = _ranges(starts[refine], stops[refine])
        lo_u, hi_u = unique[k], unique[k + 1]
        lo_g, hi_g = g_full[k], g_full[k + 1]
        b = cumulative[k]
        level = b * n / m  # n * F_cur on the interval
        q = (b * n + m - 1) // m  # F_ref >= F_cur from ref[q - 1] on
        cross = ref[q - 1]
        split = np.clip(cross, lo_u, hi_u)
        split_g = np.where(cross <= lo_u, lo_g, np.where(cross >= hi_u, hi_g, prefix[q - 1]))
        below = level * (split - lo_u) - (split_g - lo_g)
        above = (hi_g - split_g) - level * (hi_u - split)
        total += float(np.sum(below + above))
    return _Merge(ks_statistic=ks, wasserstein=max(total, 0.0) / n)


def _ks_exact_equal(n: int, h: int) -> float:
    """``P(D >= h/n)`` for two samples of size ``n`` (alternating binomial sum)."""
    k = np.arange(1, n // h + 1, dtype=np.float64)
    log_terms = (
        2.0 * special.gammaln(n + 1.0)
        - special.gammaln(n - k * h + 1.0)
        - special.gammaln(n + k * h + 1.0)
    )
    terms = np.exp(log_terms)[::-1]
    signs = np.where(k[::-1] % 2 == 1, 1.0, -1.0)
    return float(2.0 * np.sum(signs * terms))


def _ks_exact_unequal(n1: int, n2: int, h: int) -> float:
    """``P(D >= h/lcm(n1, n2))`` by following lattice paths inside the band.

    A path from ``(0, 0)`` to ``(n1, n2)`` keeps ``|i/n1 - j/n2| < D`` exactly when
    ``|i*n2 - j*n1| < h*g`` at every lattice point (``g = gcd(n1, n2)``).  Instead
    of path counts (whose range within a row exceeds float64) the recursion
    carries the probabilities of a random walk that steps in ``i`` with
    probability ``a = rows / (rows + cols)`` and in ``j`` with ``b = 1 - a``: every
    path to ``(i, j)`` has the same weight ``a**i * b**j``, the mass of a row is
    centred on the diagonal, and cells whose mass underflows carry no weight for
    the result.  Each row is ``r(i, j) = a*r(i-1, j) + b*r(i, j-1)`` over the band,
    a first-order linear filter.  Cells whose mass drops below 1e-24 leave the
    band: the mass dropped is at most ``rows * cols * 1e-24 <= 1e-16`` and changes
    the p-value by at most that divided by the walk's chance of ending at
    ``(rows, cols)`` (about ``1 / sqrt(2 pi (rows + cols) a b)``), below 1e-13.
    """
    from scipy.signal import lfilter

    rows, cols = (n1, n2) if n1 <= n2 else (n2, n1)
    width = h * math.gcd(n1, n2)
    step_i = rows / (rows + cols)
    step_j = cols / (rows + cols)
    num = np.array([step_i])
    den = np.array([1.0, -step_j])
    buf = np.zeros(cols + 1, dtype=np.float64)
    hi = min(cols, (width - 1) // rows)
    buf[: hi + 1] = step_j ** np.arange(hi + 1, dtype=np.float64)
    floor = 0
    for i in range(1, rows + 1):
        lo_new = max(floor, (i * cols - width) // rows + 1)
        hi_new = min(cols, -(-(i * cols + width) // rows) - 1)
        if lo_new > hi:
            return 1.0
        row = lfilter(num, den, buf[lo_new : hi_new + 1])
        alive = np.flatnonzero(row > _NEGLIGIBLE_MASS)
        if alive.size == 0:
            return 1.0
        buf[lo_new : hi_new + 1] = row
        # cells carrying less than 1e-24 of probability are dropped from the band
        floor = lo_new + int(alive[0])
        hi_kept = lo_new + int(alive[-1])
        buf[hi_kept + 1 : hi_new + 1] = 0.0
        hi = hi_kept
    inside = float(buf[cols])
    if inside <= 0.0:
        return 1.0
    log_all = (
        float(special.gammaln(rows + cols + 1.0))
        - float(special.gammaln(rows + 1.0))
        - float(special.gammaln(cols + 1.0))
        + rows * math.log(step_i)
        + cols * math.log(step_j)
    )
    return float(-math.expm1(math.log(inside) - log_all))


def _ks_asymptotic(d: float, n1: int, n2: int) -> float:
    """Two-sided p-value of scipy's ``asymp`` mode, ``kstwo.sf(d, round(en))``.

    For an effective size of at least 1000 the Kolmogorov limit with its
    first-order finite-size correction is used instead of ``kstwo.sf`` (which can
    take half a second there); its error is below ``3e-5``.
    """
    big, small = (float(n1), float(n2)) if n1 >= n2 else (float(n2), float(n1))
    en = float(np.round(big * small / (big + small)))
    if en < _KSTWO_MAX_N:
        return float(stats.kstwo.sf(d, en))
    root = math.sqrt(en)
    x = root * d
    return float(special.kolmogorov(x + 1.0 / (6.0 * root) + (x - 1.0) / (4.0 * en)))


def _ks_pvalue(d: float, n1: int, n2: int) -> tuple[float, float]:
    """Statistic and p-value as ``scipy.stats.ks_2samp(method='auto')`` gives them.

    Up to :data:`KS_EXACT_MAX_N` values per sample the statistic is rounded to the
    lattice ``h / lcm(n1, n2)`` and the p-value is exact (except when both unequal
    samples have 1000 values or more and the asymptotic p-value is below 1e-20,
    which is then returned); above it the asymptotic distribution is used.
    """
    if max(n1, n2) <= KS_EXACT_MAX_N:
        g = math.gcd(n1, n2)
        lcm = (n1 // g) * n2
        h = round(d * lcm)
        d = h * 1.0 / lcm
        if h == 0:
            return d, 1.0
        if n1 == n2:
            p = _ks_exact_equal(n1, h)
        else:
            # deep in the tail the lattice walk only returns rounding noise
            # (~1e-11) after its longest run; the asymptotic value is as good there
            if min(n1, n2) >= _FAR_TAIL_MIN_N:
                tail = _ks_asymptotic(d, n1, n2)
                if tail < _FAR_TAIL:
                    return d, tail
            p = _ks_exact_unequal(n1, n2, h)
        if math.isfinite(p) and -1e-9 <= p <= 1.0 + 1e-9:
            return d, min(max(p, 0.0), 1.0)
    p = _ks_asymptotic(d, n1, n2)
    return d, min(max(p, 0.0), 1.0)


def ks_statistic_sorted(ref_sorted: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov test against an already sorted reference.

    Parameters
    ----------
    ref_sorted : ndarray
        Reference values sorted ascending, without NaN (not checked: sorting it
        again is the cost this function exists to avoid).
    cur : ndarray
        Current values in any order; NaN are dropped.

    Returns
    -------
    statistic : float
        Equal to ``scipy.stats.ks_2samp(ref, cur).statistic``.
    p_value : float
        Two-sided p-value following scipy's ``method='auto'``: exact when both
        samples have at most 10 000 values, asymptotic otherwise.

    Raises
    ------
    DataValidationError
        When either sample is empty or not one-dimensional numeric.
    """
    ref = _as_float_1d(ref_sorted, "ref_sorted")
    values = _as_float_1d(cur, "cur")
    values = values[~np.isnan(values)]
    if ref.size == 0 or values.size == 0:
        raise DataValidationError("ks_statistic_sorted needs two non-empty samples")
    unique, cumulative = _runs(np.sort(values))
    merged = _merge(ref, None, unique, cumulative)
    return _ks_pvalue(merged.ks_statistic, int(ref.size), int(values.size))


# --------------------------------------------------------------------------------
# Wasserstein, PSI
# --------------------------------------------------------------------------------


def _normalise_wasserstein(distance: float, std: float, mean: float) -> float:
    """Divide by the reference std; see :func:`wasserstein_normed` for std 0."""
    if std > 0.0:
        return distance / std
    scale = abs(mean)
    return distance / scale if scale > 0.0 else distance


def wasserstein_normed(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    """Wasserstein-1 distance divided by the reference standard deviation.

    Parameters
    ----------
    reference, current : array_like
        Numeric samples; non-finite values are dropped.

    Returns
    -------
    float
        ``scipy.stats.wasserstein_distance(reference, current) / std`` with the
        population standard deviation (``ddof=0``) of ``reference``.  The result
        does not change when both samples are scaled by the same factor.  For a
        constant reference (std 0) the distance is divided by ``|c|`` of the
        constant ``c`` instead (a relative distance), or returned as it is when
        ``c == 0``.

    Raises
    ------
    DataValidationError
        When a sample has no finite value.
    """
    ref = np.sort(_finite(_as_float_1d(reference, "reference")))
    cur = np.sort(_finite(_as_float_1d(current, "current")))
    if ref.size == 0 or cur.size == 0:
        raise DataValidationError("wasserstein_normed needs two non-empty samples")
    unique, cumulative = _runs(cur)
    merged = _merge(ref, _prefix_integral(ref), unique, cumulative)
    assert merged.wasserstein is not None
    return _normalise_wasserstein(merged.wasserstein, float(np.std(ref)), float(np.mean(ref)))


def _psi_bins(ref_sorted: FloatArray, bins: int) -> tuple[FloatArray, FloatArray]:
    """Interior PSI bin edges (reference quantiles) and reference proportions.

    Bins are right-closed, ``(-inf, e1], (e1, e2], ..., (e_last, inf)``; duplicate
    quantiles (ties) merge bins.
    """
    n = ref_sorted.size
    if n == 0:
        return np.zeros(0, dtype=np.float64), np.zeros(0, dtype=np.float64)
    quantiles = np.quantile(ref_sorted, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    edges = np.unique(quantiles)
    counts = np.diff(np.searchsorted(ref_sorted, edges, side="right"), prepend=0, append=n)
    return edges.astype(np.float64), counts / n


def _psi_value(ref_props: FloatArray, cur_props: FloatArray, eps: float) -> float:
    """Population stability index of two aligned proportion vectors."""
    p = np.maximum(ref_props, eps)
    q = np.maximum(cur_props, eps)
    return float(np.sum((q - p) * np.log(q / p)))


def _psi_current(edges: FloatArray, cur_sorted: FloatArray) -> FloatArray:
    """Proportions of sorted current values in the PSI bins given by ``edges``."""
    m = cur_sorted.size
    counts = np.diff(np.searchsorted(cur_sorted, edges, side="right"), prepend=0, append=m)
    return counts / m


def psi(
    reference: npt.ArrayLike,
    current: npt.ArrayLike,
    *,
    bins: int = 10,
    eps: float = PSI_EPS,
) -> float:
    """Population stability index over quantile bins of the reference.

    Parameters
    ----------
    reference, current : array_like
        Numeric samples; non-finite values are dropped.
    bins : int, default 10
        Number of quantile bins of the reference; the outer bins are open so that
        current values outside the reference range are counted.  Tied quantiles
        merge bins (a constant reference has two: ``<= c`` and ``> c``).
    eps : float, default 1e-4
        Proportion used in place of an empty bin's 0.

    Returns
    -------
    float
        ``sum((cur - ref) * ln(cur / ref))`` over the bins.

    Raises
    ------
    DataValidationError
        When a sample is empty or ``bins < 2``.
    """
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
        raise DataValidationError(f"bins must be an integer >= 2, got {bins!r}")
    ref = np.sort(_finite(_as_float_1d(reference, "reference")))
    cur = np.sort(_finite(_as_float_1d(current, "current")))
    if ref.size == 0 or cur.size == 0:
        raise DataValidationError("psi needs two non-empty samples")
    edges, ref_props = _psi_bins(ref, bins)
    return _psi_value(ref_props, _psi_current(edges, cur), eps)


# --------------------------------------------------------------------------------
# chi-square, Jensen-Shannon
# --------------------------------------------------------------------------------


def _chi_square_counts(ref_counts: FloatArray, cur_counts: FloatArray) -> tuple[float, float]:
    """Chi-square statistic and p-value of aligned category counts.

    Expected counts are ``m * ref_counts / n``.  When the current batch has a
    category the reference never had, a pseudo-count of 0.5 is added to every
    reference count first (otherwise the expected count is 0 and the statistic
    infinite), so a handful of new values is not drift but a large new share is.
    """
    n = float(ref_counts.sum())
    m = float(cur_counts.sum())
    if (cur_counts[ref_counts == 0] > 0).any():
        ref_counts = ref_counts + 0.5
        n = float(ref_counts.sum())
    expected = m * (ref_counts / n)
    if ref_counts.size < 2:
        return 0.0, 1.0
    keep = expected > 0
    statistic = float(np.sum((cur_counts[keep] - expected[keep]) ** 2 / expected[keep]))
    dof = int(keep.sum()) - 1
    if dof < 1:
        return statistic, 1.0
    return statistic, float(stats.chi2.sf(statistic, dof))


def _js_counts(ref_counts: FloatArray, cur_counts: FloatArray) -> float:
    """Jensen-Shannon distance (base 2) of aligned category counts."""
    p = ref_counts / ref_counts.sum()
    q = cur_counts / cur_counts.sum()
    mid = (p + q) / 2.0
    divergence = (
        float(np.sum(special.rel_entr(p, mid))) + float(np.sum(special.rel_entr(q, mid)))
    ) / 2.0
    return math.sqrt(max(divergence / math.log(2.0), 0.0))


def _labels_counts(values: npt.ArrayLike | pd.Series) -> dict[Any, int]:
    """Counts of the non-missing values of a 1-D array-like."""
    series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values))
    counts = series.value_counts(dropna=True)
    return {key: int(c) for key, c in counts.items() if c > 0}


def _align(ref: Mapping[Any, float], cur: Mapping[Any, float]) -> tuple[FloatArray, FloatArray]:
    """Counts of both sides over the union of categories (reference order first)."""
    keys = list(ref)
    keys.extend(k for k in cur if k not in ref)
    return (
        np.array([ref.get(k, 0) for k in keys], dtype=np.float64),
        np.array([cur.get(k, 0) for k in keys], dtype=np.float64),
    )


def chi_square(reference: npt.ArrayLike, current: npt.ArrayLike) -> tuple[float, float]:
    """Chi-square test of the current category counts against the reference.

    Parameters
    ----------
    reference, current : array_like
        Category labels (any hashable values); missing values are dropped.

    Returns
    -------
    statistic : float
        ``sum((observed - expected)**2 / expected)`` over the union of categories,
        with ``expected = m * reference_share``; equal to
        ``scipy.stats.chisquare(observed, expected)``.  Categories absent from the
        reference get a pseudo-count of 0.5 added to every reference count.
    p_value : float
        Chi-square survival function with ``categories - 1`` degrees of freedom
        (1.0 when there is a single category).

    Raises
    ------
    DataValidationError
        When either side has no value.
    """
    ref, cur = _align(_labels_counts(reference), _labels_counts(current))
    if ref.sum() == 0 or cur.sum() == 0:
        raise DataValidationError("chi_square needs two non-empty samples")
    return _chi_square_counts(ref, cur)


def jensen_shannon(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    """Jensen-Shannon distance between the category frequencies, base 2.

    Parameters
    ----------
    reference, current : array_like
        Category labels; missing values are dropped.

    Returns
    -------
    float
        In ``[0, 1]``; equal to ``scipy.spatial.distance.jensenshannon(p, q,
        base=2)`` of the frequencies over the union of categories.

    Raises
    ------
    DataValidationError
        When either side has no value.
    """
    ref, cur = _align(_labels_counts(reference), _labels_counts(current))
    if ref.sum() == 0 or cur.sum() == 0:
        raise DataValidationError("jensen_shannon needs two non-empty samples")
    return _js_counts(ref, cur)


# --------------------------------------------------------------------------------
# Benjamini-Hochberg
# --------------------------------------------------------------------------------


def benjamini_hochberg(
    p_values: npt.ArrayLike, alpha: float = 0.05
) -> tuple[BoolArray, FloatArray]:
    """Benjamini-Hochberg false-discovery-rate control.

    Parameters
    ----------
    p_values : array_like
        1-D p-values in ``[0, 1]``.
    alpha : float, default 0.05
        Target false discovery rate, in ``(0, 1)``.

    Returns
    -------
    reject : ndarray of bool
        ``True`` for the hypotheses rejected by the step-up rule (``p_(i) <= i *
        alpha / n`` for the largest such ``i`` and all smaller p-values), i.e.
        ``adjusted <= alpha``.
    adjusted : ndarray of float64
        Adjusted p-values ``min_{j >= i} p_(j) * n / j``, capped at 1, in the input
        order.

    Raises
    ------
    DataValidationError
        When a p-value is outside ``[0, 1]`` or NaN, or ``alpha`` is not in
        ``(0, 1)``.
    """
    p = _as_float_1d(p_values, "p_values")
    if not (0.0 < float(alpha) < 1.0):
        raise DataValidationError(f"alpha must be in (0, 1), got {alpha!r}")
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise DataValidationError("p_values must lie in [0, 1]")
    count = p.size
    if count == 0:
        return np.zeros(0, dtype=np.bool_), np.zeros(0, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    scaled = p[order] * count / np.arange(1, count + 1)
    adjusted_sorted = np.minimum.accumulate(scaled[::-1])[::-1]
    adjusted = np.empty(count, dtype=np.float64)
    adjusted[order] = np.minimum(adjusted_sorted, 1.0)
    return adjusted <= alpha, adjusted


# --------------------------------------------------------------------------------
# options
# --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnOptions:
    """Per-column overrides of :class:`DriftOptions`.

    Attributes
    ----------
    method : str or None
        One of :data:`METHODS`; ``None`` keeps the global choice.
    threshold : float or None
        The method's threshold: a p-value (``ks``, ``chisquare``, drift when
        ``p < threshold``), a distance (``wasserstein``, ``jensenshannon``) or a
        PSI (drift when ``>= threshold``).
    kind : str or None
        ``"numeric"`` or ``"categorical"`` instead of the dtype rule.
    """

    method: str | None = None
    threshold: float | None = None
    kind: str | None = None


def _check_number(
    value: object, key: str, *, low: float, high: float, low_open: bool, high_open: bool
) -> float:
    """Validate a finite number within an interval or raise ConfigError."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{key} must be a number, got {value!r}")
    out = float(value)
    too_low = out <= low if low_open else out < low
    too_high = out >= high if high_open else out > high
    if not math.isfinite(out) or too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        shown_high = "inf" if math.isinf(high) else f"{high:g}"
        raise ConfigError(f"{key} must be in {left}{low:g}, {shown_high}{right}, got {value!r}")
    return out


def _check_int(value: object, key: str, *, low: int) -> int:
    """Validate an integer ``>= low`` or raise ConfigError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    if value < low:
        raise ConfigError(f"{key} must be >= {low}, got {value!r}")
    return int(value)


def _check_choice(value: object, key: str, choices: Sequence[str]) -> str:
    """Validate one of ``choices`` or raise ConfigError."""
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _check_keys(mapping: Mapping[Any, Any], prefix: str, known: Sequence[str]) -> None:
    """Reject keys not in ``known``, naming the first unknown one."""
    for key in mapping:
        if key not in known:
            raise ConfigError(f"{prefix}.{key} is not a known option (known: {', '.join(known)})")


@dataclass(frozen=True)
class DriftOptions:
    """Validated data-drift settings (the ``drift`` section of the config).

    Build it with :meth:`from_mapping`; the defaults follow Evidently.

    Attributes
    ----------
    method : str
        ``"auto"`` or a method of :data:`METHODS` for every column of the matching
        kind (a numeric method applies to numeric columns only and a categorical
        one to categorical columns only; the other kind keeps ``"auto"``).
    p_value_threshold : float
        Drift when ``p < p_value_threshold`` (KS, chi-square).
    distance_threshold : float
        Drift when ``distance >= distance_threshold`` (normed Wasserstein,
        Jensen-Shannon).
    psi_threshold : float
        Drift when ``psi >= psi_threshold``.
    large_reference_rows : int
        ``"auto"`` uses p-value tests up to this many reference rows, distances
        above.
    categorical_max_unique : int
        Integer-valued numeric columns with at most this many distinct reference
        values are categorical.
    drift_share : float
        The dataset drifts when ``drifted columns / columns >= drift_share``.
    fdr : bool
        Apply Benjamini-Hochberg to the p-value tests across columns and decide on
        the adjusted p-values.
    fdr_alpha : float
        Threshold of the adjusted p-values (unless a column sets its own).
    psi_bins : int
        Number of PSI quantile bins.
    columns : Mapping[str, ColumnOptions]
        Per-column overrides.
    """

    method: str = "auto"
    p_value_threshold: float = 0.05
    distance_threshold: float = 0.1
    psi_threshold: float = 0.2
    large_reference_rows: int = 1000
    categorical_max_unique: int = 10
    drift_share: float = 0.5
    fdr: bool = False
    fdr_alpha: float = 0.05
    psi_bins: int = 10
    columns: Mapping[str, ColumnOptions] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> DriftOptions:
        """Validate a config mapping and build the options.

        Parameters
        ----------
        data : Mapping or None
            The ``drift`` section; missing keys take their defaults, ``None`` gives
            all defaults.

        Returns
        -------
        DriftOptions

        Raises
        ------
        ConfigError
            Naming the offending key, e.g. ``drift.columns.x.method must be one of
            auto, ks, ..., got 'foo'``.
        """
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ConfigError(f"drift must be a mapping, got {type(data).__name__}")
        _check_keys(data, "drift", _OPTION_KEYS)
        kwargs: dict[str, Any] = {}
        if "method" in data:
            kwargs["method"] = _check_choice(data["method"], "drift.method", METHODS)
        for key, low, high in (
            ("p_value_threshold", 0.0, 1.0),
            ("fdr_alpha", 0.0, 1.0),
        ):
            if key in data:
                kwargs[key] = _check_number(
                    data[key],
                    f"drift.{key}",
                    low=low,
                    high=high,
                    low_open=True,
                    high_open=True,
                )
        for key in ("distance_threshold", "psi_threshold"):
            if key in data:
                kwargs[key] = _check_number(
                    data[key],
                    f"drift.{key}",
                    low=0.0,
                    high=math.inf,
                    low_open=True,
                    high_open=True,
                )
        if "drift_share" in data:
            kwargs["drift_share"] = _check_number(
                data["drift_share"],
                "drift.drift_share",
                low=0.0,
                high=1.0,
                low_open=True,
                high_open=False,
            )
        for key, low in (
            ("large_reference_rows", 0),
            ("categorical_max_unique", 0),
            ("psi_bins", 2),
        ):
            if key in data:
                kwargs[key] = _check_int(data[key], f"drift.{key}", low=low)
        if "fdr" in data:
            if not isinstance(data["fdr"], bool):
                raise ConfigError(f"drift.fdr must be true or false, got {data['fdr']!r}")
            kwargs["fdr"] = data["fdr"]
        if "columns" in data:
            kwargs["columns"] = MappingProxyType(_parse_columns(data["columns"]))
        return cls(**kwargs)

    def column(self, name: str) -> ColumnOptions:
        """Overrides of column ``name`` (all ``None`` when it has none)."""
        return self.columns.get(name, _NO_OVERRIDE)


_NO_OVERRIDE: Final[ColumnOptions] = ColumnOptions()


def _parse_columns(raw: object) -> dict[str, ColumnOptions]:
    """Validate the ``drift.columns`` mapping."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"drift.columns must be a mapping, got {type(raw).__name__}")
    out: dict[str, ColumnOptions] = {}
    for name, spec in raw.items():
        if not isinstance(name, str):
            raise ConfigError(f"drift.columns keys must be column names, got {name!r}")
        prefix = f"drift.columns.{name}"
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{prefix} must be a mapping, got {type(spec).__name__}")
        _check_keys(spec, prefix, _COLUMN_OPTION_KEYS)
        method = spec.get("method")
        if method is not None:
            method = _check_choice(method, f"{prefix}.method", METHODS)
        kind = spec.get("kind")
        if kind is not None:
            kind = _check_choice(kind, f"{prefix}.kind", KINDS)
        threshold = spec.get("threshold")
        if threshold is not None:
            p_test = method in P_VALUE_METHODS
            threshold = _check_number(
                threshold,
                f"{prefix}.threshold",
                low=0.0,
                high=1.0 if p_test else math.inf,
                low_open=True,
                high_open=True,
            )
        out[name] = ColumnOptions(method=method, threshold=threshold, kind=kind)
    return out


# --------------------------------------------------------------------------------
# reference profile
# --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _NumericProfile:
    """Cached numeric summary of one reference column."""

    sorted_values: FloatArray
    prefix: FloatArray
    mean: float
    std: float
    psi_edges: FloatArray
    psi_props: FloatArray


@dataclass(frozen=True)
class _CategoricalProfile:
    """Cached category counts of one reference column.

    ``values`` is a float64 array (sorted) for numeric-valued columns and a tuple of
    strings for label columns.
    """

    values: FloatArray | tuple[str, ...]
    counts: IntArray


@dataclass(frozen=True)
class _ColumnProfile:
    """Everything a drift check needs to know about one reference column."""

    name: str
    kind: str
    value_type: str  # "numeric" (float64 values) or "label" (string labels)
    n_rows: int
    n_null: int
    numeric: _NumericProfile | None
    categorical: _CategoricalProfile | None

    @property
    def n_valid(self) -> int:
        """Number of non-missing reference values."""
        return self.n_rows - self.n_null


def _is_label_dtype(dtype: Any) -> bool:
    """Object, string and category dtypes hold labels."""
    return bool(
        pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_string_dtype(dtype)
        or isinstance(dtype, pd.CategoricalDtype)
    )


def _numeric_values(series: pd.Series, what: str) -> FloatArray:
    """Float64 values of a column (missing as NaN) or DataValidationError."""
    dtype = series.dtype
    if isinstance(dtype, np.dtype) and dtype == np.float64:
        return series.to_numpy()
    if pd.api.types.is_bool_dtype(dtype) or (
        pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype)
    ):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    if _is_label_dtype(dtype):
        try:
            converted = pd.to_numeric(series, errors="raise")
            return pd.Series(converted).to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError) as exc:
            raise DataValidationError(
                f"{what} column {series.name!r} is numeric but has non-numeric values: {exc}"
            ) from exc
        except OverflowError:
            raise DataValidationError(
                f"{what} column {series.name!r} has an integer beyond the float range"
            ) from None
    raise DataValidationError(f"{what} column {series.name!r} has unsupported dtype {dtype}")


def _label_counts(series: pd.Series) -> dict[str, int]:
    """Counts of the non-missing values of a label column, keyed by ``str(value)``."""
    out: dict[str, int] = {}
    for key, count in series.value_counts(dropna=True).items():
        if count > 0:
            label = str(key)
            out[label] = out.get(label, 0) + int(count)
    return out


def _numeric_profile(sorted_values: FloatArray, psi_bins: int) -> _NumericProfile:
    """Summarise sorted finite values."""
    if sorted_values.size == 0:
        empty = np.zeros(0, dtype=np.float64)
        return _NumericProfile(empty, empty, math.nan, math.nan, empty, empty)
    edges, props = _psi_bins(sorted_values, psi_bins)
    return _NumericProfile(
        sorted_values=sorted_values,
        prefix=_prefix_integral(sorted_values),
        mean=float(np.mean(sorted_values)),
        std=float(np.std(sorted_values)),
        psi_edges=edges,
        psi_props=props,
    )


def _numeric_categories(sorted_values: FloatArray) -> _CategoricalProfile:
    """Category counts of sorted numeric values."""
    values, cumulative = _runs(sorted_values)
    counts = np.diff(cumulative, prepend=0).astype(np.int64)
    return _CategoricalProfile(values=values.copy(), counts=counts)


def _profile_column(
    series: pd.Series, name: str, *, kind: str | None, max_unique: int, psi_bins: int
) -> _ColumnProfile:
    """Build the profile of one reference column."""
    dtype = series.dtype
    n_rows = int(series.size)
    is_bool = pd.api.types.is_bool_dtype(dtype)
    if (_is_label_dtype(dtype) or is_bool) and kind != "numeric":
        counts = _label_counts(series)
        n_valid = sum(counts.values())
        return _ColumnProfile(
            name=name,
            kind="categorical",
            value_type="label",
            n_rows=n_rows,
            n_null=n_rows - n_valid,
            numeric=None,
            categorical=_CategoricalProfile(
                values=tuple(counts),
                counts=np.array(list(counts.values()), dtype=np.int64),
            ),
        )
    raw = _numeric_values(series, "reference")
    values = np.sort(_finite(raw))
    if kind is None:
        unique = _runs(values)[0]
        small = 0 < unique.size <= max_unique
        kind = "categorical" if small and bool(np.all(unique == np.floor(unique))) else "numeric"
    return _ColumnProfile(
        name=name,
        kind=kind,
        value_type="numeric",
        n_rows=n_rows,
        n_null=n_rows - int(values.size),
        numeric=_numeric_profile(values, psi_bins),
        categorical=_numeric_categories(values) if kind == "categorical" else None,
    )


class ReferenceProfile:
    """Per-column summary of the reference data, computed once.

    Follows the scikit-learn conventions: ``__init__`` only stores its parameters,
    :meth:`fit` learns the attributes ending in ``_`` and returns ``self``, and
    using an unfitted profile raises :class:`NotFittedError`.

    Parameters
    ----------
    categorical_max_unique : int, default 10
        Integer-valued numeric columns with at most this many distinct values are
        categorical.
    psi_bins : int, default 10
        Number of PSI quantile bins.
    kinds : Mapping[str, str] or None, default None
        ``"numeric"`` or ``"categorical"`` per column instead of the dtype rule.

    Attributes
    ----------
    columns_ : list of str
        Profiled columns, in order.
    n_rows_ : int
        Rows of the reference data.
    kinds_ : dict of str to str
        Kind of each column.
    n_features_in_ : int
        Number of profiled columns.
    feature_names_in_ : ndarray of object
        Same as ``columns_``.
    profiles_ : dict
        Internal per-column summaries: sorted non-missing values (float64), null
        count, mean and population std, PSI bin edges and proportions, category
        counts.

    Examples
    --------
    >>> import pandas as pd
    >>> ref = pd.DataFrame({"x": [0.1, 0.5, 0.9, 1.3], "c": ["a", "b", "a", "a"]})
    >>> profile = ReferenceProfile().fit(ref)
    >>> profile.kinds_
    {'x': 'numeric', 'c': 'categorical'}
    """

    def __init__(
        self,
        *,
        categorical_max_unique: int = 10,
        psi_bins: int = 10,
        kinds: Mapping[str, str] | None = None,
    ) -> None:
        self.categorical_max_unique = categorical_max_unique
        self.psi_bins = psi_bins
        self.kinds = kinds

    @classmethod
    def from_options(cls, options: DriftOptions | None = None) -> ReferenceProfile:
        """Unfitted profile with the settings of ``options`` (kinds, bins, ...)."""
        opts = options if options is not None else DriftOptions()
        kinds = {name: c.kind for name, c in opts.columns.items() if c.kind is not None}
        return cls(
            categorical_max_unique=opts.categorical_max_unique,
            psi_bins=opts.psi_bins,
            kinds=kinds or None,
        )

    def __repr__(self) -> str:
        """Show the parameters, like scikit-learn estimators do."""
        return (
            f"ReferenceProfile(categorical_max_unique={self.categorical_max_unique!r}, "
            f"psi_bins={self.psi_bins!r}, kinds={self.kinds!r})"
        )

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters (scikit-learn protocol)."""
        del deep
        return {
            "categorical_max_unique": self.categorical_max_unique,
            "psi_bins": self.psi_bins,
            "kinds": self.kinds,
        }

    def _validated_params(self) -> tuple[int, int, dict[str, str]]:
        """Check the constructor parameters at fit time."""
        max_unique = _check_int(self.categorical_max_unique, "categorical_max_unique", low=0)
        bins = _check_int(self.psi_bins, "psi_bins", low=2)
        kinds: dict[str, str] = {}
        for name, kind in (self.kinds or {}).items():
            kinds[name] = _check_choice(kind, f"kinds.{name}", KINDS)
        return max_unique, bins, kinds

    def fit(
        self, reference_df: pd.DataFrame, columns: Sequence[str] | None = None
    ) -> ReferenceProfile:
        """Profile the reference data.

        Parameters
        ----------
        reference_df : pandas.DataFrame
            The data the deployed model was trained on.
        columns : sequence of str or None, default None
            Columns to profile; all of them when ``None``.

        Returns
        -------
        ReferenceProfile
            ``self``.

        Raises
        ------
        DataValidationError
            When ``reference_df`` is not a DataFrame, a column is missing or
            duplicated, or a column forced numeric has non-numeric values.
        ConfigError
            When a parameter is invalid.
        """
        max_unique, bins, kinds = self._validated_params()
        if not isinstance(reference_df, pd.DataFrame):
            raise DataValidationError(
                f"reference must be a pandas DataFrame, got {type(reference_df).__name__}"
            )
        names = _column_list(reference_df, columns, "reference")
        profiles: dict[str, _ColumnProfile] = {}
        for name in names:
            profiles[name] = _profile_column(
                reference_df[name],
                name,
                kind=kinds.get(name),
                max_unique=max_unique,
                psi_bins=bins,
            )
        self._set_learned(profiles, int(len(reference_df)))
        return self

    def _set_learned(self, profiles: dict[str, _ColumnProfile], n_rows: int) -> None:
        """Store the learned attributes."""
        self.profiles_ = profiles
        self.columns_ = list(profiles)
        self.kinds_ = {name: p.kind for name, p in profiles.items()}
        self.n_rows_ = n_rows
        self.n_features_in_ = len(profiles)
        self.feature_names_in_ = np.array(self.columns_, dtype=object)

    def _check_fitted(self) -> None:
        """Raise NotFittedError unless :meth:`fit` or :meth:`load` ran."""
        if not hasattr(self, "profiles_"):
            raise NotFittedError(
                "This ReferenceProfile is not fitted yet; call fit(reference_df) or "
                "ReferenceProfile.load(path) first"
            )

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable overview of the profile (no per-value arrays)."""
        self._check_fitted()
        columns = []
        for p in self.profiles_.values():
            columns.append(
                {
                    "column": p.name,
                    "kind": p.kind,
                    "n": p.n_valid,
                    "null_rate": p.n_null / p.n_rows if p.n_rows else None,
                    "mean": _num(p.numeric.mean) if p.numeric else None,
                    "std": _num(p.numeric.std) if p.numeric else None,
                    "n_categories": (
                        len(p.categorical.counts) if p.categorical is not None else None
                    ),
                }
            )
        return {"n_rows": self.n_rows_, "columns": columns}

    def save(self, path: PathLike) -> Path:
        """Write the profile to one ``.npz`` file (arrays plus JSON metadata).

        No pickle is involved; :meth:`load` reads it back exactly.

        Parameters
        ----------
        path : str or os.PathLike
            Destination; written as given (no suffix is added).

        Returns
        -------
        pathlib.Path
            The path written.
        """
        self._check_fitted()
        target = Path(path)
        arrays: dict[str, Any] = {}
        meta_columns: list[dict[str, Any]] = []
        for i, p in enumerate(self.profiles_.values()):
            entry: dict[str, Any] = {
                "name": p.name,
                "kind": p.kind,
                "value_type": p.value_type,
                "n_rows": p.n_rows,
                "n_null": p.n_null,
                "labels": None,
            }
            if p.numeric is not None:
                arrays[f"c{i}_sorted"] = p.numeric.sorted_values
                arrays[f"c{i}_psi_edges"] = p.numeric.psi_edges
                arrays[f"c{i}_psi_props"] = p.numeric.psi_props
                entry["mean"] = _num(p.numeric.mean)
                entry["std"] = _num(p.numeric.std)
            if p.categorical is not None:
                arrays[f"c{i}_cat_counts"] = p.categorical.counts
                if isinstance(p.categorical.values, tuple):
                    entry["labels"] = list(p.categorical.values)
                else:
                    arrays[f"c{i}_cat_values"] = p.categorical.values
            meta_columns.append(entry)
        meta = {
            "format": _PROFILE_FORMAT,
            "version": _PROFILE_VERSION,
            "params": {
                "categorical_max_unique": self.categorical_max_unique,
                "psi_bins": self.psi_bins,
                "kinds": dict(self.kinds) if self.kinds else None,
            },
            "n_rows": self.n_rows_,
            "columns": meta_columns,
        }
        arrays["meta"] = np.array(json.dumps(meta))
        with target.open("wb") as handle:
            np.savez(handle, **arrays)
        return target

    @classmethod
    def load(cls, path: PathLike) -> ReferenceProfile:
        """Read a profile written by :meth:`save`.

        Parameters
        ----------
        path : str or os.PathLike
            File written by :meth:`save`.

        Returns
        -------
        ReferenceProfile
            A fitted profile giving the same drift results as the saved one.

        Raises
        ------
        IntegrityError
            When the file is not a readable profile.
        """
        source = Path(path)
        try:
            with np.load(source, allow_pickle=False) as archive:
                data = {key: archive[key] for key in archive.files}
            meta = json.loads(str(data.pop("meta")))
            if meta.get("format") != _PROFILE_FORMAT:
                raise ValueError("not a reference profile")
            if meta.get("version") != _PROFILE_VERSION:
                raise ValueError(f"unsupported profile version {meta.get('version')!r}")
            params = meta["params"]
            profile = cls(
                categorical_max_unique=params["categorical_max_unique"],
                psi_bins=params["psi_bins"],
                kinds=params["kinds"],
            )
            profiles: dict[str, _ColumnProfile] = {}
            for i, entry in enumerate(meta["columns"]):
                numeric = None
                if f"c{i}_sorted" in data:
                    values = np.ascontiguousarray(data[f"c{i}_sorted"], dtype=np.float64)
                    numeric = _NumericProfile(
                        sorted_values=values,
                        prefix=_prefix_integral(values),
                        mean=math.nan if entry["mean"] is None else float(entry["mean"]),
                        std=math.nan if entry["std"] is None else float(entry["std"]),
                        psi_edges=data[f"c{i}_psi_edges"].astype(np.float64),
                        psi_props=data[f"c{i}_psi_props"].astype(np.float64),
                    )
                categorical = None
                if f"c{i}_cat_counts" in data:
                    counts = data[f"c{i}_cat_counts"].astype(np.int64)
                    labels = entry["labels"]
                    cat_values: FloatArray | tuple[str, ...] = (
                        tuple(str(v) for v in labels)
                        if labels is not None
                        else data[f"c{i}_cat_values"].astype(np.float64)
                    )
                    categorical = _CategoricalProfile(values=cat_values, counts=counts)
                profiles[str(entry["name"])] = _ColumnProfile(
                    name=str(entry["name"]),
                    kind=_check_choice(entry["kind"], "kind", KINDS),
                    value_type=entry["value_type"],
                    n_rows=int(entry["n_rows"]),
                    n_null=int(entry["n_null"]),
                    numeric=numeric,
                    categorical=categorical,
                )
            profile._set_learned(profiles, int(meta["n_rows"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"cannot load reference profile {source}: {exc}") from exc
        return profile


# --------------------------------------------------------------------------------
# data drift
# --------------------------------------------------------------------------------


def _column_list(frame: pd.DataFrame, columns: Iterable[str] | None, what: str) -> list[str]:
    """Validated, de-duplicated list of columns of ``frame``."""
    names = list(frame.columns) if columns is None else list(dict.fromkeys(columns))
    if frame.columns.has_duplicates:
        repeated = set(frame.columns[frame.columns.duplicated()])
        dup = sorted(str(c) for c in names if c in repeated)
        if dup:
            raise DataValidationError(f"{what} has duplicate columns: {', '.join(dup)}")
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise DataValidationError(
            f"{what} is missing columns: {', '.join(map(str, missing))}",
            details={"missing_columns": [str(m) for m in missing]},
        )
    bad = [name for name in names if not isinstance(name, str)]
    if bad:
        raise DataValidationError(f"column names must be strings, got {bad[0]!r}")
    return names


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


# --------------------------------------------------------------------------------
# model drift
# --------------------------------------------------------------------------------


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


# -- the service's model-drift verdict (reads the record store) ------------------------


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
            tolerance=settings.thresholds["model_drift_tolerance"],
        )
        new_data["scored_at"] = ingested[-1]["scored_at"]
        checks["new_data"] = new_data
        drift = bool(new_data["drift"])
        reason = (
            f"F1 on the newest ingested data {ingested[-1]['f1']:.4f} vs "
            f"{float(baseline):.4f} on the training data "
            f"(tolerance {settings.thresholds['model_drift_tolerance']})"
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
