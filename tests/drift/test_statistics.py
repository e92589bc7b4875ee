"""Drift statistics against scipy: KS, Wasserstein, PSI, chi-square, Jensen-Shannon, BH."""

from __future__ import annotations

import math
import warnings
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon as scipy_js

from monitoring.config import DriftOptions
from monitoring.drift import (
    benjamini_hochberg,
    detect_data_drift,
)
from monitoring.drift import statistics as drift
from monitoring.exceptions import ConfigError, DataValidationError


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


def numeric_column(ref: Any, cur: Any, **options: Any) -> dict[str, Any]:
    """``detect_data_drift`` result of one column of numbers, tested as numeric."""
    opts = DriftOptions.from_mapping({**options, "columns": {"x": {"kind": "numeric"}}})
    reference = pd.DataFrame({"x": np.asarray(ref, dtype=np.float64)})
    current = pd.DataFrame({"x": np.asarray(cur, dtype=np.float64)})
    return detect_data_drift(reference, current, options=opts)["columns"][0]


def categorical_column(ref: Any, cur: Any) -> dict[str, Any]:
    """``detect_data_drift`` result of one column of labels."""
    report = detect_data_drift(pd.DataFrame({"x": ref}), pd.DataFrame({"x": cur}))
    return report["columns"][0]


def _sample(rng: np.random.Generator, size: int, kind: str, shift: float) -> np.ndarray:
    if kind == "ties":
        return rng.integers(0, 6, size).astype(np.float64) + round(shift)
    if kind == "rounded":
        return np.round(rng.normal(shift, 1.0, size), 1)
    return rng.normal(shift, 1.0, size)


@pytest.mark.parametrize(
    ("n_ref", "n_cur", "kind", "shift"),
    [
        (7, 300, "normal", 0.0),
        (7, 300, "ties", 1.0),
        (300, 7, "normal", 0.8),
        (1000, 50, "normal", 0.3),
        (1000, 50, "ties", 0.0),
        (50, 1000, "rounded", 0.2),
        (5000, 5000, "normal", 0.0),
        (5000, 5000, "normal", 0.05),
        (5000, 5000, "ties", 0.0),
        (3000, 3001, "rounded", 0.05),
        (1, 1, "normal", 0.0),
        (1, 40, "normal", 0.0),
        (200, 30000, "normal", 0.1),
        (20000, 15000, "normal", 0.02),
        (20000, 15000, "rounded", 0.0),
        (100000, 2000, "normal", 0.05),
    ],
)
def test_ks_matches_scipy(
    rng: np.random.Generator, n_ref: int, n_cur: int, kind: str, shift: float
) -> None:
    ref = _sample(rng, n_ref, kind, 0.0)
    cur = _sample(rng, n_cur, kind, shift)
    expected = stats.ks_2samp(ref, cur)
    column = numeric_column(ref, cur)
    statistic, p_value = column["ks_statistic"], column["ks_p_value"]
    assert statistic == float(expected.statistic)  # bit for bit
    assert p_value == pytest.approx(float(expected.pvalue), abs=1e-3)
    assert type(statistic) is float and type(p_value) is float


def _exact_tail(n1: int, n2: int, h: int) -> Fraction:
    """P(D >= h / lcm(n1, n2)) by counting lattice paths with integers."""
    width = h * math.gcd(n1, n2)
    row = [0] * (n2 + 1)
    for j in range(n2 + 1):
        if j * n1 < width:
            row[j] = 1
    for i in range(1, n1 + 1):
        new = [0] * (n2 + 1)
        for j in range(n2 + 1):
            if abs(i * n2 - j * n1) < width:
                new[j] = row[j] + (new[j - 1] if j else 0)
        row = new
    return 1 - Fraction(row[n2], math.comb(n1 + n2, n1))


@pytest.mark.parametrize(("n1", "n2"), [(30, 31), (20, 33), (7, 50), (40, 12), (2, 1)])
@pytest.mark.parametrize("d", [0.05, 0.2, 0.35, 0.6, 1.0])
def test_exact_p_value_against_integer_path_count(n1: int, n2: int, d: float) -> None:
    lcm = n1 * n2 // math.gcd(n1, n2)
    statistic, p_value = drift._ks_pvalue(d, n1, n2)
    h = round(d * lcm)
    assert statistic == h / lcm
    expected = float(_exact_tail(n1, n2, h)) if h else 1.0
    assert p_value == pytest.approx(expected, rel=1e-9, abs=1e-12)


@settings(max_examples=60, deadline=None, database=None)
@given(
    ref=st.lists(st.integers(-3, 3), min_size=1, max_size=40),
    cur=st.lists(st.integers(-3, 3), min_size=1, max_size=40),
    scale=st.sampled_from([1.0, 0.1, 1e6]),
)
def test_ks_property_against_scipy(ref: list[int], cur: list[int], scale: float) -> None:
    a = np.asarray(ref, dtype=float) * scale
    b = np.asarray(cur, dtype=float) * scale
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        expected = stats.ks_2samp(a, b)
    # scipy's own exact computation sometimes fails and falls back, with a warning
    assume(not caught)
    column = numeric_column(a, b)
    assert column["ks_statistic"] == float(expected.statistic)
    assert column["ks_p_value"] == pytest.approx(float(expected.pvalue), abs=1e-3)


@pytest.mark.parametrize("seed", range(6))
def test_pruned_merge_equals_full_merge(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref = np.sort(np.round(rng.normal(size=3000), 2))
    cur = np.sort(np.round(rng.normal(0.02 * seed, 1.0 + 0.05 * seed, 2500), 2))
    unique, cumulative = drift._runs(cur)
    prefix = drift._prefix_integral(ref)
    pruned_ks, pruned_w = drift._merge(ref, prefix, unique, cumulative, block=8)
    full_ks, full_w = drift._merge(ref, prefix, unique, cumulative, block=10**9)
    assert pruned_ks == full_ks
    # scipy's asymp mode reports the statistic before the exact-mode rounding
    expected = stats.ks_2samp(ref, cur, method="asymp").statistic
    assert pruned_ks == float(expected)
    assert pruned_w == pytest.approx(full_w, rel=1e-12)
    assert full_w == pytest.approx(stats.wasserstein_distance(ref, cur), rel=1e-10)


def test_ks_is_not_run_on_empty_samples() -> None:
    assert numeric_column([], [1.0])["status"] == "empty_reference"
    empty = numeric_column([1.0], [np.nan])
    assert empty["status"] == "all_null_current" and empty["ks_statistic"] is None


@pytest.mark.parametrize(
    ("n_ref", "n_cur", "kind"),
    [(10, 13, "normal"), (500, 80, "ties"), (2000, 3000, "rounded"), (2, 5, "normal")],
)
def test_wasserstein_matches_scipy(
    rng: np.random.Generator, n_ref: int, n_cur: int, kind: str
) -> None:
    ref = _sample(rng, n_ref, kind, 0.0) * 3.0 + 1.0
    cur = _sample(rng, n_cur, kind, 0.4) * 2.0
    if np.std(ref) == 0:
        ref = ref + np.arange(n_ref)
    expected = stats.wasserstein_distance(ref, cur) / np.std(ref)
    assert numeric_column(ref, cur)["wasserstein_normed"] == pytest.approx(expected, rel=1e-10)


def test_wasserstein_is_scale_free_and_handles_constant_reference(
    rng: np.random.Generator,
) -> None:
    def wasserstein_normed(ref: Any, cur: Any) -> float:
        return float(numeric_column(ref, cur)["wasserstein_normed"])

    ref = rng.normal(size=400)
    cur = rng.normal(0.5, 1.0, 300)
    assert wasserstein_normed(ref * 1000.0, cur * 1000.0) == pytest.approx(
        wasserstein_normed(ref, cur), rel=1e-9
    )
    # constant reference: divided by |constant|, or absolute for a zero constant
    assert wasserstein_normed([2.5] * 10, [2.75] * 4) == pytest.approx(0.1)
    assert wasserstein_normed([0.0] * 10, [0.5, 0.5]) == pytest.approx(0.5)
    assert wasserstein_normed([3.0] * 5, [3.0] * 7) == 0.0


def test_psi_known_values(rng: np.random.Generator) -> None:
    def psi(ref: Any, cur: Any, **options: Any) -> float:
        return float(numeric_column(ref, cur, **options)["psi"])

    ref = rng.normal(size=5000)
    assert psi(ref, ref) == pytest.approx(0.0, abs=1e-12)
    shifted = psi(ref, ref + 1.0)
    assert shifted > 0.5
    # hand computation with the same bins
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, 5)[1:-1]))
    cur = rng.normal(0.3, 1.0, 3000)
    bins_ref = np.bincount(np.searchsorted(edges, ref, side="left"), minlength=4) / 5000
    bins_cur = np.bincount(np.searchsorted(edges, cur, side="left"), minlength=4) / 3000
    manual = float(np.sum((bins_cur - bins_ref) * np.log(bins_cur / bins_ref)))
    assert psi(ref, cur, psi_bins=4) == pytest.approx(manual, rel=1e-12)
    # constant reference: two bins (<= c, > c); empty bins use eps
    assert psi([1.0] * 10, [1.0] * 5) == pytest.approx(0.0, abs=1e-12)
    assert psi([1.0] * 10, [2.0] * 5) > 1.0
    with pytest.raises(ConfigError, match="psi_bins"):
        psi(ref, cur, psi_bins=1)


@pytest.mark.parametrize("seed", range(30))
def test_sorted_quantiles_are_numpy_quantiles_bit_for_bit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 4000))
    values = [
        rng.normal(size=n) * 10.0 ** int(rng.integers(-6, 9)),
        rng.integers(-50, 50, n).astype(float),  # ties
        rng.lognormal(0.0, 3.0, n),
    ][seed % 3]
    values.sort()
    q = np.linspace(0.0, 1.0, int(rng.integers(2, 40)) + 1)[1:-1]
    assert drift._sorted_quantiles(values, q).tobytes() == np.quantile(values, q).tobytes()


def test_chi_square_is_scipys_two_sample_test_of_the_contingency_table(
    rng: np.random.Generator,
) -> None:
    ref = rng.choice(["a", "b", "c", "d"], 500, p=[0.4, 0.3, 0.2, 0.1])
    cur = rng.choice(["a", "b", "c", "d"], 300, p=[0.25, 0.25, 0.25, 0.25])
    column = categorical_column(ref, cur)
    statistic, p_value = column["chi_square"], column["chi_square_p_value"]
    table = [[np.sum(sample == k) for k in "abcd"] for sample in (ref, cur)]
    expected = stats.chi2_contingency(table, correction=False)
    assert statistic == pytest.approx(float(expected.statistic), rel=1e-12)
    assert p_value == pytest.approx(float(expected.pvalue), rel=1e-9, abs=1e-300)


def test_chi_square_takes_new_categories_as_columns_of_the_table() -> None:
    def chi_square(ref: list[str], cur: list[str]) -> tuple[float, float]:
        column = categorical_column(ref, cur)
        return column["chi_square"], column["chi_square_p_value"]

    ref = ["a"] * 60 + ["b"] * 40
    few_new = ["a"] * 59 + ["b"] * 40 + ["z"]
    statistic, p_value = chi_square(ref, few_new)
    expected = stats.chi2_contingency([[60, 40, 0], [59, 40, 1]], correction=False)
    assert statistic == pytest.approx(float(expected.statistic), rel=1e-12)
    assert p_value == pytest.approx(float(expected.pvalue), rel=1e-9)
    assert p_value > 0.05  # one new value is not drift
    assert chi_square(ref, ["a"] * 30 + ["z"] * 70)[1] < 1e-10  # a new majority is
    assert chi_square(["a"] * 5, ["a"] * 3) == (0.0, 1.0)  # single category


@pytest.mark.slow
@pytest.mark.parametrize(
    ("n_ref", "n_cur", "shares"),
    [
        (200, 200, [0.3, 0.25, 0.2, 0.15, 0.1]),
        (200, 1000, [0.3, 0.25, 0.2, 0.15, 0.1]),
        (200, 1000, [0.2, 0.2, 0.15, 0.15, 0.1, 0.1, 0.05, 0.05]),
        (200, 1000, [0.7, 0.3]),
        (1000, 100, [0.3, 0.25, 0.2, 0.15, 0.1]),
    ],
)
def test_chi_square_false_alarms_stay_near_the_level_whatever_the_sizes(
    n_ref: int, n_cur: int, shares: list[float]
) -> None:
    # A goodness-of-fit test against the reference shares as if exact alarmed on 83-94%
    # of these no-drift pairs at 200 / 1000 rows; the two-sample test on about 5%.
    rng = np.random.default_rng(n_ref * 7 + n_cur + len(shares))
    labels = np.array([f"c{i}" for i in range(len(shares))])
    pairs = 400
    alarms = sum(
        categorical_column(
            rng.choice(labels, n_ref, p=shares), rng.choice(labels, n_cur, p=shares)
        )["chi_square_p_value"]
        < 0.05
        for _ in range(pairs)
    )
    assert alarms / pairs <= 0.075, alarms


@pytest.mark.parametrize(
    ("reference", "current", "drifted"),
    [
        ([5.5] * 2000, [5.51] * 400, True),  # W / |mean| was 0.0018: "not drifted"
        ([1000.5] * 2000, [1050.5] * 400, True),
        ([0.0] * 2000, [1e-9] * 400, True),
        ([5.5] * 2000, [5.5] * 400, False),
        ([5.5] * 2000, [5.5] * 399 + [7.0], False),  # one odd value is not drift
    ],
    ids=["5.5-to-5.51", "1000.5-to-1050.5", "0-to-1e-9", "unchanged", "one-odd-value"],
)
def test_a_constant_reference_is_tested_with_ks_when_a_distance_was_chosen(
    reference: list[float], current: list[float], drifted: bool
) -> None:
    column = numeric_column(reference, current)  # 2000 rows: "auto" would be Wasserstein
    assert (column["status"], column["method"], column["threshold"]) == (
        "constant_reference",
        "ks",
        0.05,
    )
    assert column["drifted"] is drifted
    assert column["p_value"] == column["ks_p_value"]


def test_jensen_shannon_matches_scipy(rng: np.random.Generator) -> None:
    def jensen_shannon(ref: Any, cur: Any) -> float:
        return float(categorical_column(ref, cur)["jensen_shannon"])

    ref = rng.choice(["a", "b", "c"], 400, p=[0.5, 0.3, 0.2])
    cur = rng.choice(["a", "b", "c", "new"], 250, p=[0.2, 0.3, 0.4, 0.1])
    keys = ["a", "b", "c", "new"]
    p = np.array([np.sum(ref == k) for k in keys], dtype=float)
    q = np.array([np.sum(cur == k) for k in keys], dtype=float)
    assert jensen_shannon(ref, cur) == pytest.approx(
        float(scipy_js(p / p.sum(), q / q.sum(), base=2)), rel=1e-12
    )
    assert jensen_shannon(ref, ref) == pytest.approx(0.0, abs=1e-7)
    assert jensen_shannon(["a"] * 3, ["b"] * 4) == pytest.approx(1.0)


def _step_up(p: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Benjamini-Hochberg written from its definition.

    Reject the ``i`` smallest p-values for the largest ``i`` with ``p_(i) <= i*alpha/n``;
    adjusted ``p_(i) = min_{j >= i} p_(j) * n / j``, capped at 1.
    """
    n = p.size
    order = np.argsort(p, kind="stable")
    ranks = np.arange(1, n + 1)
    adjusted = np.empty(n)
    adjusted[order] = np.minimum(np.minimum.accumulate((p[order] * n / ranks)[::-1])[::-1], 1.0)
    below = np.flatnonzero(p[order] <= ranks * alpha / n)
    reject = np.zeros(n, dtype=bool)
    if below.size:
        reject[order[: below[-1] + 1]] = True
    return reject, adjusted


@pytest.mark.parametrize("seed", range(8))
def test_benjamini_hochberg_equals_the_step_up_rule(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = rng.random(int(rng.integers(1, 60))) ** 3  # many small p-values
    p[:3] = p[0]  # ties
    reject, adjusted = benjamini_hochberg(p, alpha=0.05)
    expected_reject, expected_adjusted = _step_up(p, 0.05)
    np.testing.assert_allclose(adjusted, expected_adjusted, rtol=1e-14, atol=0)
    np.testing.assert_array_equal(reject, expected_reject)


def test_benjamini_hochberg_known_values_and_validation() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.5, 0.2])
    reject, adjusted = benjamini_hochberg(p, alpha=0.05)
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.03, 0.5, 0.24])
    # sorted: 0.005 <= 1/6*0.05, 0.01 <= 2/6*0.05, 0.03 > 3/6*0.05, 0.04 > 4/6*0.05
    assert reject.tolist() == [True, False, False, True, False, False]
    assert reject.dtype == bool and adjusted.dtype == np.float64
    empty_reject, empty_adjusted = benjamini_hochberg([])
    assert empty_reject.size == 0 and empty_adjusted.size == 0
    with pytest.raises(DataValidationError, match=r"p_values must lie in \[0, 1\]"):
        benjamini_hochberg([0.1, 1.5])
    with pytest.raises(DataValidationError, match=r"p_values must lie in \[0, 1\]"):
        benjamini_hochberg([0.1, np.nan])
    with pytest.raises(DataValidationError, match=r"alpha must be in \(0, 1\), got 1.0"):
        benjamini_hochberg([0.1], alpha=1.0)


@pytest.mark.parametrize("scale", [1.0, 1e160, 1e300, 1e307])
@pytest.mark.parametrize("shift", [0.0, 1.0])
def test_extreme_magnitudes_never_hide_drift(scale: float, shift: float) -> None:
    rng = np.random.default_rng(6)
    reference, current = rng.normal(size=3000), rng.normal(size=3000) + shift
    column = numeric_column(reference * scale, current * scale)  # "auto": Wasserstein
    plain = numeric_column(reference, current)
    assert column["drifted"] is plain["drifted"] is (shift > 0)
    if column["method"] == "wasserstein":  # the normed distance does not depend on scale
        assert column["statistic"] == pytest.approx(plain["statistic"], rel=1e-9)
    else:  # the distance overflows near the float limit: KS decides, as it says
        assert (scale, column["method"], column["wasserstein_normed"]) == (1e307, "ks", None)
        assert column["p_value"] == column["ks_p_value"]
