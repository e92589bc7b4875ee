"""Two-sample drift statistics against a reference that is sorted once.

KS and Wasserstein come from one pruned merge with the cached sorted reference, the
KS p-value follows ``ks_2samp(method='auto')``, PSI uses bins fixed at fit time: the
fast path ``benchmarks/bench_drift.py`` measures, held to scipy by the tests.
"""

from __future__ import annotations

import math
from typing import Any, Final, TypeAlias

import numpy as np
import numpy.typing as npt
from scipy import special, stats
from scipy.spatial import distance

from monitoring.exceptions import DataValidationError

FloatArray: TypeAlias = npt.NDArray[np.float64]
IntArray: TypeAlias = npt.NDArray[np.int64]
PSI_EPS: Final[float] = 1e-4  # share used instead of 0 for an empty PSI bin
# As scipy.stats.ks_2samp(method='auto'): exact p-value up to this size.
KS_EXACT_MAX_N: Final[int] = 10_000
_KSTWO_MAX_N: Final[int] = 1_000
_MERGE_BLOCK: Final[int] = 32
_PRUNE_MAX_NM: Final[int] = 2**62
_NEGLIGIBLE_MASS: Final[float] = 1e-24
_FAR_TAIL: Final[float] = 1e-20
_FAR_TAIL_MIN_N: Final[int] = 1000


def _num(value: float | np.floating[Any]) -> float | None:
    """Return ``value`` as a Python float, or ``None`` when it is not finite."""
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
    return arr if mask.all() else arr[mask]


def _runs(sorted_values: FloatArray) -> tuple[FloatArray, IntArray]:
    """Distinct values of a sorted array and the count of values ``<=`` each."""
    m = sorted_values.size
    if m == 0:
        return sorted_values, np.zeros(0, dtype=np.int64)
    change = sorted_values[1:] != sorted_values[:-1]
    if change.all():
        return sorted_values, np.arange(1, m + 1, dtype=np.int64)
    last = np.append(np.flatnonzero(change), m - 1)
    return sorted_values[last], (last + 1).astype(np.int64)


def _left_counts(ref: FloatArray, keys: FloatArray, right: IntArray) -> IntArray:
    """Counts of reference values ``< keys`` from the counts ``<= keys`` (``right``)."""
    if keys.size == 0:
        return right
    tie = (right > 0) & (ref[np.maximum(right - 1, 0)] == keys)
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
    """``n * integral of F_ref`` from ``ref[0]`` to each sorted reference value."""
    n = ref_sorted.size
    out = np.zeros(n, dtype=np.float64)
    if n > 1:
        np.cumsum(np.arange(1, n, dtype=np.float64) * np.diff(ref_sorted), out=out[1:])
    return out


def _integral_at(
    ref: FloatArray, prefix: FloatArray, points: FloatArray, right: IntArray
) -> FloatArray:
    """``n * integral of F_ref`` from ``-inf`` to each point (``right``: counts ``<=``)."""
    idx = np.maximum(right - 1, 0)
    out = prefix[idx] + right * (points - ref[idx])
    out[right == 0] = 0.0
    return out


def _merge(
    ref: FloatArray,
    prefix: FloatArray,
    unique: FloatArray,
    cumulative: IntArray,
    *,
    block: int = _MERGE_BLOCK,
) -> tuple[float, float]:
    """KS statistic (bit for bit ``ks_2samp``'s) and Wasserstein-1 distance.

    ``ref`` is sorted, ``prefix`` its :func:`_prefix_integral`, ``unique, cumulative``
    the :func:`_runs` of the sorted batch. Blocks of ``block`` distinct batch values
    are bounded from their end points in exact integers (``a*m - b*n``, plus a
    rounding margin); only blocks that can hold the maximum or a sign change of
    ``F_ref - F_cur`` are searched value by value, so pruning never changes the result.
    """
    n = int(ref.size)
    m = int(cumulative[-1])
    k_count = int(unique.size)
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
    return ks, max(total, 0.0) / n


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
    """``P(D >= h/lcm(n1, n2))`` from lattice paths with ``|i*n2 - j*n1| < h*gcd``.

    Rows hold random-walk probabilities (path counts overflow float64), each row a
    linear filter of the last; dropping cells below 1e-24 moves the result < 1e-13.
    """
    from scipy.signal import lfilter  # imported here: scipy.signal costs ~0.1 s

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
    """Scipy's ``asymp`` p-value ``kstwo.sf(d, round(en))``.

    From ``en = 1000`` on, the corrected Kolmogorov limit replaces it (error < 3e-5).
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

    Up to :data:`KS_EXACT_MAX_N` values a sample, ``d`` is rounded to the lattice
    ``h / lcm(n1, n2)`` and the p-value exact; above, and far in the tail, asymptotic.
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
            # deep in the tail the lattice walk only returns rounding noise (~1e-11)
            if min(n1, n2) >= _FAR_TAIL_MIN_N:
                tail = _ks_asymptotic(d, n1, n2)
                if tail < _FAR_TAIL:
                    return d, tail
            p = _ks_exact_unequal(n1, n2, h)
        if math.isfinite(p) and -1e-9 <= p <= 1.0 + 1e-9:
            return d, min(max(p, 0.0), 1.0)
    p = _ks_asymptotic(d, n1, n2)
    return d, min(max(p, 0.0), 1.0)


def _wasserstein_normed(value: float, std: float, mean: float) -> float:
    """Divide by the reference std; by ``|mean|`` for a constant reference, unless 0.

    NaN (not tested) when the std is not finite: dividing by an overflowed spread
    would read as "no drift".
    """
    if not math.isfinite(std):
        return math.nan
    if std > 0.0:
        return value / std
    scale = abs(mean)
    return value / scale if scale > 0.0 else value


def _bin_shares(edges: FloatArray, sorted_values: FloatArray) -> FloatArray:
    """Shares of sorted values in the bins ``(-inf, e_1], ..., (e_k, inf)``."""
    n = sorted_values.size
    counts = np.diff(np.searchsorted(sorted_values, edges, side="right"), prepend=0, append=n)
    return counts / n


def _sorted_quantiles(sorted_values: FloatArray, q: FloatArray) -> FloatArray:
    """``np.quantile(sorted_values, q)`` (linear) of sorted values, without sorting.

    ``np.quantile`` partitions the data to find the two values around each virtual
    index ``(n - 1) * q``; sorted, they are read off, and ``np.quantile`` of each pair
    interpolates them with its own formula: the same floats, 10-20x faster at 1M.
    """
    n = sorted_values.size
    position = (n - 1) * q
    below = np.floor(position)
    low = below.astype(np.intp)
    pairs = np.stack((sorted_values[low], sorted_values[np.minimum(low + 1, n - 1)]), axis=1)
    # the quantile gamma of the pair [a, b] has virtual index gamma: lerp(a, b, gamma)
    return np.quantile(pairs, position - below, axis=1).diagonal().copy()


def _psi_bins(ref_sorted: FloatArray, bins: int) -> tuple[FloatArray, FloatArray]:
    """PSI bin edges (distinct interior reference quantiles) and reference shares."""
    quantiles = _sorted_quantiles(ref_sorted, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    edges = np.unique(quantiles).astype(np.float64)
    return edges, _bin_shares(edges, ref_sorted)


def _psi(ref_shares: FloatArray, edges: FloatArray, cur_sorted: FloatArray) -> float:
    """Population stability index of sorted current values over the reference bins."""
    p = np.maximum(ref_shares, PSI_EPS)
    q = np.maximum(_bin_shares(edges, cur_sorted), PSI_EPS)
    return float(np.sum((q - p) * np.log(q / p)))


def _chi_square(ref_counts: FloatArray, cur_counts: FloatArray) -> tuple[float, float]:
    """Two-sample chi-square test of homogeneity on the 2 x k table of aligned counts.

    Both samples are samples: the reference's own sampling noise counts, unlike a
    goodness-of-fit test against the reference shares taken as exact, whose false
    alarms grow with the current batch (83% at 200 vs 1000 rows over 5 categories).
    Categories absent from both are dropped; a category new in the current batch is
    simply a column of the table. Fewer than two categories give ``(0.0, 1.0)``.
    No continuity correction, so the false-alarm rate stays near the level for 2 x 2.
    """
    seen = (ref_counts + cur_counts) > 0
    if int(seen.sum()) < 2 or ref_counts.sum() == 0 or cur_counts.sum() == 0:
        return 0.0, 1.0
    table = np.vstack((ref_counts[seen], cur_counts[seen]))
    result = stats.chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue)


def _jensen_shannon(ref_counts: FloatArray, cur_counts: FloatArray) -> float:
    """Jensen-Shannon distance (base 2) between aligned category counts."""
    with np.errstate(invalid="ignore"):
        value = float(distance.jensenshannon(ref_counts, cur_counts, base=2))
    # equal shares can round the divergence a hair below 0, and its root to NaN
    return 0.0 if math.isnan(value) else value


def benjamini_hochberg(
    p_values: npt.ArrayLike, alpha: float = 0.05
) -> tuple[npt.NDArray[np.bool_], FloatArray]:
    """Benjamini-Hochberg: ``(adjusted <= alpha, adjusted)``, scipy's adjusted p-values.

    Raises DataValidationError for a p-value outside ``[0, 1]`` or ``alpha`` outside ``(0, 1)``.
    """
    p = _as_float_1d(p_values, "p_values")
    if not (0.0 < float(alpha) < 1.0):
        raise DataValidationError(f"alpha must be in (0, 1), got {alpha!r}")
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise DataValidationError("p_values must lie in [0, 1]")
    adjusted = np.asarray(stats.false_discovery_control(p, method="bh"), dtype=np.float64)
    return adjusted <= alpha, adjusted
