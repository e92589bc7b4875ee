"""Two-sample statistics of data drift, each a pure function of two samples.

* numeric: two-sample Kolmogorov-Smirnov test (statistic and two-sided p-value,
  equal to :func:`scipy.stats.ks_2samp`), Wasserstein distance normalised by the
  reference standard deviation, population stability index (PSI) over quantile
  bins of the reference;
* categorical: chi-square test of the current counts against the reference
  proportions, Jensen-Shannon distance (base 2, in ``[0, 1]``);
* Benjamini-Hochberg adjustment of p-values across columns.

The KS statistic is computed against an already sorted reference: the current
values are sorted (``O(m log m)``) and merged with the cached sorted reference
with :func:`numpy.searchsorted`. The merge is pruned: it first evaluates the two
empirical distribution functions at every ``_MERGE_BLOCK``-th current value and
then resolves exactly only the blocks in which the KS maximum or a sign change of
``F_ref - F_cur`` can lie, which keeps the result exact while searching only a
fraction of the current values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import special, stats
from scipy.spatial import distance

from monitoring.exceptions import (
    DataValidationError,
)

FloatArray: TypeAlias = npt.NDArray[np.float64]
IntArray: TypeAlias = npt.NDArray[np.int64]
BoolArray: TypeAlias = npt.NDArray[np.bool_]
# Proportion used instead of 0 for an empty PSI bin.
PSI_EPS: Final[float] = 1e-4
# As scipy.stats.ks_2samp(method='auto'): exact p-value up to this size.
KS_EXACT_MAX_N: Final[int] = 10_000
_KSTWO_MAX_N: Final[int] = 1_000
_MERGE_BLOCK: Final[int] = 32
_PRUNE_MAX_NM: Final[int] = 2**62
_NEGLIGIBLE_MASS: Final[float] = 1e-24
_FAR_TAIL: Final[float] = 1e-20
_FAR_TAIL_MIN_N: Final[int] = 1000


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


def _chi_square_counts(ref_counts: FloatArray, cur_counts: FloatArray) -> tuple[float, float]:
    """Chi-square test of aligned current counts against the reference shares.

    A category unseen in the reference would expect 0 values, so 0.5 is then added
    to every reference count: a few new values are not drift, a large new share is.
    A single category gives ``(0.0, 1.0)``.
    """
    if ref_counts.size < 2:
        return 0.0, 1.0
    if (ref_counts == 0).any():
        ref_counts = ref_counts + 0.5
    expected = float(cur_counts.sum()) * (ref_counts / float(ref_counts.sum()))
    result = stats.chisquare(cur_counts, expected)
    return float(result.statistic), float(result.pvalue)


def _js_counts(ref_counts: FloatArray, cur_counts: FloatArray) -> float:
    """Jensen-Shannon distance (base 2) between aligned category counts."""
    with np.errstate(invalid="ignore"):
        value = float(distance.jensenshannon(ref_counts, cur_counts, base=2))
    # equal shares can round the divergence a hair below 0, and its root to NaN
    return 0.0 if math.isnan(value) else value


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


def benjamini_hochberg(
    p_values: npt.ArrayLike, alpha: float = 0.05
) -> tuple[BoolArray, FloatArray]:
    """Benjamini-Hochberg false-discovery-rate control.

    Returns
    -------
    reject : ndarray of bool
        ``adjusted <= alpha``: the hypotheses the step-up rule rejects at false
        discovery rate ``alpha``.
    adjusted : ndarray of float64
        ``scipy.stats.false_discovery_control(p_values, method="bh")``.

    Raises
    ------
    DataValidationError
        When a p-value is NaN or outside ``[0, 1]``, or ``alpha`` is not in ``(0, 1)``.
    """
    p = _as_float_1d(p_values, "p_values")
    if not (0.0 < float(alpha) < 1.0):
        raise DataValidationError(f"alpha must be in (0, 1), got {alpha!r}")
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise DataValidationError("p_values must lie in [0, 1]")
    adjusted = np.asarray(stats.false_discovery_control(p, method="bh"), dtype=np.float64)
    return adjusted <= alpha, adjusted
