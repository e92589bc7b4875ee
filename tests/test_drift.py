"""Tests of :mod:`monitoring.drift`: statistics against scipy, verdicts, profiles."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import warnings
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon as scipy_js

from monitoring.config import ColumnOptions, DriftOptions
from monitoring.drift import (
    ReferenceProfile,
    benjamini_hochberg,
    compare_score_histories,
    detect_data_drift,
    iqr_drift,
    parametric_drift,
    raw_drift,
    tolerance_drift,
)
from monitoring.drift import statistics as drift
from monitoring.exceptions import ConfigError, DataValidationError, IntegrityError, NotFittedError

COLUMN_KEYS = {
    "column",
    "kind",
    "method",
    "statistic",
    "p_value",
    "adjusted_p_value",
    "threshold",
    "drifted",
    "status",
    "null_rate_reference",
    "null_rate_current",
    "null_rate_change",
    "n_reference",
    "n_current",
    "ks_statistic",
    "ks_p_value",
    "wasserstein_normed",
    "psi",
    "chi_square",
    "chi_square_p_value",
    "jensen_shannon",
}
TOP_KEYS = {
    "dataset_drift",
    "drift_share",
    "share_threshold",
    "n_columns",
    "n_drifted",
    "drifted_columns",
    "n_reference",
    "n_current",
    "fdr",
    "columns",
}


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


def assert_plain_json(value: Any) -> None:
    """Only plain Python JSON types, no NaN/inf, anywhere in ``value``."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert type(key) is str
            assert_plain_json(item)
    elif isinstance(value, list):
        for item in value:
            assert_plain_json(item)
    elif isinstance(value, float):
        assert type(value) is float and math.isfinite(value)
    else:
        assert value is None or type(value) in (str, int, bool), type(value)


def by_column(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["column"]: c for c in report["columns"]}


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


def test_chi_square_matches_scipy(rng: np.random.Generator) -> None:
    ref = rng.choice(["a", "b", "c", "d"], 500, p=[0.4, 0.3, 0.2, 0.1])
    cur = rng.choice(["a", "b", "c", "d"], 300, p=[0.25, 0.25, 0.25, 0.25])
    column = categorical_column(ref, cur)
    statistic, p_value = column["chi_square"], column["chi_square_p_value"]
    ref_counts = np.array([np.sum(ref == k) for k in "abcd"], dtype=float)
    cur_counts = np.array([np.sum(cur == k) for k in "abcd"], dtype=float)
    expected = stats.chisquare(cur_counts, ref_counts / ref_counts.sum() * 300)
    assert statistic == pytest.approx(float(expected.statistic), rel=1e-12)
    assert p_value == pytest.approx(float(expected.pvalue), rel=1e-9, abs=1e-300)


def test_chi_square_smooths_categories_unseen_in_reference() -> None:
    def chi_square(ref: list[str], cur: list[str]) -> tuple[float, float]:
        column = categorical_column(ref, cur)
        return column["chi_square"], column["chi_square_p_value"]

    ref = ["a"] * 60 + ["b"] * 40
    few_new = ["a"] * 59 + ["b"] * 40 + ["z"]
    statistic, p_value = chi_square(ref, few_new)
    smoothed = np.array([60.5, 40.5, 0.5])
    expected = stats.chisquare([59, 40, 1], smoothed / smoothed.sum() * 100)
    assert statistic == pytest.approx(float(expected.statistic), rel=1e-12)
    assert p_value == pytest.approx(float(expected.pvalue), rel=1e-9)
    assert p_value > 0.05  # one new value is not drift
    assert chi_square(ref, ["a"] * 30 + ["z"] * 70)[1] < 1e-10  # a new majority is
    assert chi_square(["a"] * 5, ["a"] * 3) == (0.0, 1.0)  # single category


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


def planted(n_ref: int, n_cur: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Drift planted in num_shift (mean), num_scale (spread), cat_reweight."""
    rng = np.random.default_rng(seed)
    cats = np.array(["a", "b", "c"])

    def frame(n: int, drifted: bool) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "num_stable": rng.normal(0.0, 1.0, n),
                "num_shift": rng.normal(0.5 if drifted else 0.0, 1.0, n),
                "num_scale": rng.normal(0.0, 2.0 if drifted else 1.0, n),
                "lognormal_stable": rng.lognormal(0.0, 0.7, n),
                "cat_stable": rng.choice(cats, n, p=[0.5, 0.3, 0.2]),
                "cat_reweight": rng.choice(
                    cats, n, p=[0.2, 0.3, 0.5] if drifted else [0.5, 0.3, 0.2]
                ),
                "int_stable": rng.integers(0, 5, n),
                "bool_stable": rng.random(n) < 0.3,
            }
        )

    return frame(n_ref, False), frame(n_cur, True)


EXPECTED_DRIFT = ["num_shift", "num_scale", "cat_reweight"]


def test_planted_drift_small_reference_uses_p_value_tests() -> None:
    ref, cur = planted(600, 400, seed=2)
    report = detect_data_drift(ref, cur)
    assert report["drifted_columns"] == EXPECTED_DRIFT
    cols = by_column(report)
    assert {c: cols[c]["method"] for c in cols} == {
        "num_stable": "ks",
        "num_shift": "ks",
        "num_scale": "ks",
        "lognormal_stable": "ks",
        "cat_stable": "chisquare",
        "cat_reweight": "chisquare",
        "int_stable": "chisquare",
        "bool_stable": "chisquare",
    }
    assert cols["int_stable"]["kind"] == "categorical"
    assert report["n_drifted"] == 3 and report["n_columns"] == 8
    assert report["drift_share"] == 3 / 8 and report["dataset_drift"] is False
    assert report["n_reference"] == 600 and report["n_current"] == 400
    assert set(report) == TOP_KEYS
    for column in report["columns"]:
        assert set(column) == COLUMN_KEYS
        assert column["threshold"] == 0.05
        p_key = "ks_p_value" if column["method"] == "ks" else "chi_square_p_value"
        assert column["p_value"] == column[p_key] is not None
    # extras of the column's kind, None for the other kind
    assert cols["num_shift"]["wasserstein_normed"] is not None
    assert cols["num_shift"]["chi_square"] is None
    assert cols["cat_stable"]["jensen_shannon"] is not None
    assert cols["cat_stable"]["ks_statistic"] is None
    # the statistic is scipy's
    expected = stats.ks_2samp(ref["num_shift"], cur["num_shift"])
    assert cols["num_shift"]["statistic"] == float(expected.statistic)
    assert cols["num_shift"]["p_value"] == pytest.approx(expected.pvalue, abs=1e-3)
    assert_plain_json(report)
    json.dumps(report, allow_nan=False)


def test_planted_drift_large_reference_uses_distances() -> None:
    ref, cur = planted(5000, 2000, seed=8)
    report = detect_data_drift(ref, cur)
    assert report["drifted_columns"] == EXPECTED_DRIFT
    cols = by_column(report)
    assert cols["num_shift"]["method"] == "wasserstein"
    assert cols["cat_reweight"]["method"] == "jensenshannon"
    assert cols["num_stable"]["threshold"] == 0.1
    assert cols["num_stable"]["p_value"] is None
    assert cols["num_shift"]["statistic"] == pytest.approx(
        stats.wasserstein_distance(ref["num_shift"], cur["num_shift"]) / np.std(ref["num_shift"]),
        rel=1e-9,
    )
    assert cols["cat_reweight"]["statistic"] > 0.2
    assert_plain_json(report)


def test_dataset_verdict_follows_drift_share() -> None:
    ref, cur = planted(5000, 2000, seed=8)
    opts = DriftOptions.from_mapping({"drift_share": 0.375})
    report = detect_data_drift(ref, cur, options=opts)
    assert report["dataset_drift"] is True and report["share_threshold"] == 0.375
    subset = detect_data_drift(ref, cur, columns=["num_shift", "num_stable"])
    assert subset["dataset_drift"] is True and subset["drift_share"] == 0.5
    assert [c["column"] for c in subset["columns"]] == ["num_shift", "num_stable"]


def test_per_column_overrides() -> None:
    ref, cur = planted(5000, 2000, seed=8)
    opts = DriftOptions.from_mapping(
        {
            "columns": {
                "num_shift": {"method": "psi", "threshold": 5.0},
                "cat_stable": {"method": "chisquare"},
                "num_stable": {"threshold": 0.001},
            }
        }
    )
    report = detect_data_drift(ref, cur, options=opts)
    cols = by_column(report)
    assert cols["num_shift"]["method"] == "psi"
    assert cols["num_shift"]["threshold"] == 5.0
    assert cols["num_shift"]["statistic"] == cols["num_shift"]["psi"]
    assert cols["cat_stable"]["method"] == "chisquare"
    assert cols["cat_stable"]["p_value"] == cols["cat_stable"]["chi_square_p_value"]
    assert cols["num_stable"]["threshold"] == 0.001
    # num_shift no longer drifts (PSI < 5); num_stable does (W normed ~0.03 >= 0.001)
    assert report["drifted_columns"] == ["num_stable", "num_scale", "cat_reweight"]


def test_global_method_applies_to_its_kind_only() -> None:
    ref, cur = planted(5000, 2000, seed=8)
    report = detect_data_drift(ref, cur, options=DriftOptions.from_mapping({"method": "ks"}))
    methods = {c["column"]: c["method"] for c in report["columns"]}
    assert methods["num_stable"] == "ks" and methods["cat_stable"] == "jensenshannon"


def test_fdr_changes_the_verdict() -> None:
    base = np.arange(200, dtype=float) / 200
    columns = {"signal": (base, base + 28 / 200)}  # D = 0.14, p about 0.04
    for i in range(9):
        columns[f"noise{i}"] = (base, base[::-1].copy())  # D = 0, p = 1
    ref = pd.DataFrame({name: pair[0] for name, pair in columns.items()})
    cur = pd.DataFrame({name: pair[1] for name, pair in columns.items()})
    p_signal = float(stats.ks_2samp(ref["signal"], cur["signal"]).pvalue)
    assert 0.01 < p_signal < 0.05

    plain = detect_data_drift(ref, cur, options=DriftOptions.from_mapping({"drift_share": 0.1}))
    assert plain["drifted_columns"] == ["signal"] and plain["dataset_drift"] is True
    assert by_column(plain)["signal"]["adjusted_p_value"] is None

    fdr = detect_data_drift(
        ref, cur, options=DriftOptions.from_mapping({"drift_share": 0.1, "fdr": True})
    )
    assert fdr["fdr"] is True
    assert fdr["drifted_columns"] == [] and fdr["dataset_drift"] is False
    signal = by_column(fdr)["signal"]
    assert signal["p_value"] == pytest.approx(p_signal, abs=1e-3)
    assert signal["adjusted_p_value"] == pytest.approx(min(1.0, signal["p_value"] * 10))
    assert by_column(fdr)["noise0"]["adjusted_p_value"] == 1.0


def test_null_rates_are_reported_exactly() -> None:
    ref = pd.DataFrame(
        {
            "x": [1.25, np.nan, 2.5, 3.75] * 25,
            "label": ["a", None, "b", "a"] * 25,
        }
    )
    cur = pd.DataFrame(
        {
            "x": [1.5, np.nan, np.inf, 2.5] * 10,  # inf counts as missing
            "label": [None, None, "b", "a"] * 10,
        }
    )
    report = detect_data_drift(ref, cur)
    cols = by_column(report)
    for name in ("x", "label"):
        assert cols[name]["null_rate_reference"] == 0.25
        assert cols[name]["null_rate_current"] == 0.5
        assert cols[name]["null_rate_change"] == 0.25
        assert cols[name]["status"] == "ok"
        assert cols[name]["n_reference"] == 75 and cols[name]["n_current"] == 20
    expected = stats.ks_2samp([1.25, 2.5, 3.75] * 25, [1.5, 2.5] * 10)
    assert cols["x"]["ks_statistic"] == float(expected.statistic)


def test_degenerate_columns_get_a_status_and_never_raise() -> None:
    n = 50
    ref = pd.DataFrame(
        {
            "ok": np.linspace(0, 1, n),
            "null_ref": np.full(n, np.nan),
            "null_cur": np.linspace(0, 1, n),
            "constant": np.full(n, 2.5),
            "constant_label": ["only"] * n,
        }
    )
    cur = pd.DataFrame(
        {
            "ok": np.linspace(0, 1, 20),
            "null_ref": np.linspace(0, 1, 20),
            "null_cur": np.full(20, np.nan),
            "constant": np.full(20, 2.75),
            "constant_label": ["only"] * 18 + ["other"] * 2,
        }
    )
    report = detect_data_drift(ref, cur)
    cols = by_column(report)
    assert cols["ok"]["status"] == "ok"
    assert cols["null_ref"]["status"] == "all_null_reference"
    assert cols["null_cur"]["status"] == "all_null_current"
    assert cols["null_cur"]["null_rate_current"] == 1.0
    for name in ("null_ref", "null_cur"):
        assert cols[name]["statistic"] is None and cols[name]["drifted"] is False
    constant = cols["constant"]
    assert constant["status"] == "constant_reference" and constant["kind"] == "numeric"
    assert constant["ks_statistic"] == 1.0 and constant["drifted"] is True
    assert constant["wasserstein_normed"] == pytest.approx(0.25 / 2.5)
    label = cols["constant_label"]
    assert label["status"] == "constant_reference" and label["statistic"] is not None
    assert_plain_json(report)

    empty = detect_data_drift(ref, cur.iloc[:0])
    statuses = {c["column"]: c["status"] for c in empty["columns"]}
    assert statuses.pop("null_ref") == "all_null_reference"  # reference first
    assert set(statuses.values()) == {"empty_current"}
    assert empty["n_current"] == 0 and empty["dataset_drift"] is False
    assert_plain_json(empty)

    no_reference = detect_data_drift(ref.iloc[:0], cur)
    assert {c["status"] for c in no_reference["columns"]} == {"empty_reference"}
    assert_plain_json(no_reference)


def test_missing_and_invalid_columns_raise() -> None:
    ref = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [1.0, 2.0, 5.5], "c": ["x", "y", "z"]})
    with pytest.raises(DataValidationError, match="a, c") as info:
        detect_data_drift(ref, pd.DataFrame({"b": [1.0]}))
    assert info.value.details == {"missing_columns": ["a", "c"]}
    with pytest.raises(DataValidationError, match="'b'"):
        detect_data_drift(ref, pd.DataFrame({"a": [1.0], "b": ["oops"], "c": ["x"]}))
    with pytest.raises(DataValidationError, match="'c'"):
        ReferenceProfile(kinds={"c": "numeric"}).fit(ref)
    with pytest.raises(DataValidationError, match="not in the reference"):
        detect_data_drift(ReferenceProfile().fit(ref), ref, columns=["zzz"])
    with pytest.raises(ConfigError, match="drift.columns.zzz"):
        detect_data_drift(ref, ref, options=DriftOptions.from_mapping({"columns": {"zzz": {}}}))
    with pytest.raises(ConfigError, match="drift.columns.c.method"):
        detect_data_drift(
            ref,
            ref,
            options=DriftOptions.from_mapping({"columns": {"c": {"method": "ks"}}}),
        )


def test_numeric_strings_in_current_are_accepted() -> None:
    ref = pd.DataFrame({"a": [1.0, 2.0, 3.5]})
    report = detect_data_drift(ref, pd.DataFrame({"a": ["1.0", "2.0", None]}))
    assert by_column(report)["a"]["null_rate_current"] == pytest.approx(1 / 3)


def test_profile_round_trip(tmp_path: Path) -> None:
    ref, cur = planted(800, 300, seed=3)
    ref.loc[::7, "num_stable"] = np.nan
    ref.loc[::5, "cat_stable"] = None
    profile = ReferenceProfile().fit(ref)
    assert profile.kinds_["int_stable"] == "categorical"
    assert profile.kinds_["num_shift"] == "numeric"
    path = profile.save(tmp_path / "reference_profile")  # no suffix added
    assert path == tmp_path / "reference_profile" and path.is_file()
    loaded = ReferenceProfile.load(path)
    assert loaded.columns_ == profile.columns_ and loaded.n_rows_ == 800
    assert loaded.kinds_ == profile.kinds_
    for name in profile.columns_:
        np.testing.assert_equal(asdict(loaded.profiles_[name]), asdict(profile.profiles_[name]))
    options = DriftOptions.from_mapping({"fdr": True})
    assert detect_data_drift(loaded, cur, options=options) == detect_data_drift(
        profile, cur, options=options
    )
    assert detect_data_drift(loaded, cur) == detect_data_drift(ref, cur)


def test_profile_load_rejects_other_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(IntegrityError):
        ReferenceProfile.load(bad)
    np.savez(tmp_path / "other.npz", meta=np.array(json.dumps({"format": "x"})))
    with pytest.raises(IntegrityError, match="not a reference profile"):
        ReferenceProfile.load(tmp_path / "other.npz")


def test_unfitted_profile_raises(tmp_path: Path) -> None:
    profile = ReferenceProfile()
    assert not hasattr(profile, "columns_")
    with pytest.raises(NotFittedError, match="not fitted"):
        detect_data_drift(profile, pd.DataFrame({"a": [1.0]}))
    with pytest.raises(NotFittedError):
        profile.save(tmp_path / "p")
    with pytest.raises(ValueError):  # NotFittedError is a ValueError
        detect_data_drift(profile, pd.DataFrame({"a": [1.0]}))


def test_profile_follows_fit_conventions() -> None:
    params: dict[str, Any] = {
        "categorical_max_unique": 3,
        "psi_bins": 5,
        "kinds": {"a": "numeric"},
    }
    profile = ReferenceProfile(**params)
    assert vars(profile) == params  # __init__ only stores its parameters
    frame = pd.DataFrame({"a": [1, 2, 1, 2], "b": [1, 2, 3, 4], "c": [1, 2, 1, 3]})
    assert profile.fit(frame) is profile
    assert profile.kinds_ == {"a": "numeric", "b": "numeric", "c": "categorical"}
    assert profile.columns_ == ["a", "b", "c"] and profile.n_rows_ == 4
    # fit learns only attributes ending in "_" and leaves the parameters alone
    assert {k: v for k, v in vars(profile).items() if not k.endswith("_")} == params
    with pytest.raises(ConfigError, match="psi_bins"):
        ReferenceProfile(psi_bins=1).fit(frame)
    with pytest.raises(ConfigError, match="drift.columns.a.kind"):
        detect_data_drift(
            profile,
            frame,
            options=DriftOptions.from_mapping({"columns": {"a": {"kind": "categorical"}}}),
        )


def test_default_options() -> None:
    opts = DriftOptions.from_mapping(None)
    assert opts == DriftOptions.from_mapping({})
    assert (opts.method, opts.p_value_threshold, opts.distance_threshold) == (
        "auto",
        0.05,
        0.1,
    )
    assert (opts.psi_threshold, opts.large_reference_rows, opts.drift_share) == (
        0.2,
        1000,
        0.5,
    )
    assert (opts.fdr, opts.fdr_alpha, opts.psi_bins, opts.categorical_max_unique) == (
        False,
        0.05,
        10,
        10,
    )
    assert dict(opts.columns) == {}
    hash(opts)
    config = json.loads((Path(__file__).parents[1] / "config.json").read_text())
    assert DriftOptions.from_mapping(config.get("drift")).method == "auto"


def test_column_options_are_parsed() -> None:
    opts = DriftOptions.from_mapping(
        {"columns": {"x": {"method": "ks", "threshold": 0.01, "kind": "numeric"}}}
    )
    assert opts.column("x") == ColumnOptions("ks", 0.01, "numeric")
    assert opts.column("y") == ColumnOptions()


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"method": "foo"}, "config key 'drift.method' must be one of ['auto', 'ks'"),
        ({"p_value_threshold": 1.5}, "drift.p_value_threshold"),
        (
            {"p_value_threshold": True},
            "config key 'drift.p_value_threshold' must be a number, got True",
        ),
        ({"distance_threshold": -1}, "drift.distance_threshold"),
        ({"psi_threshold": float("nan")}, "drift.psi_threshold"),
        (
            {"large_reference_rows": 1.5},
            "config key 'drift.large_reference_rows' must be an integer, got 1.5",
        ),
        (
            {"categorical_max_unique": -1},
            "config key 'drift.categorical_max_unique' must be zero or more, got -1",
        ),
        ({"drift_share": 0}, "drift.drift_share"),
        ({"fdr": "yes"}, "config key 'drift.fdr' must be bool (true or false), got 'yes'"),
        ({"fdr_alpha": 0}, "drift.fdr_alpha"),
        ({"psi_bins": 1}, "config key 'drift.psi_bins' must be at least 2, got 1"),
        ({"bogus": 1}, "unknown config key 'drift.bogus'; expected one of"),
        ({"columns": []}, "config key 'drift.columns' must be an object, got []"),
        ({"columns": {"x": 1}}, "config key 'drift.columns.x' must be an object, got 1"),
        (
            {"columns": {"x": {"method": "foo"}}},
            "config key 'drift.columns.x.method' must be one of ['auto', 'ks', 'wasserstein', "
            "'psi', 'chisquare', 'jensenshannon'], got 'foo'",
        ),
        ({"columns": {"x": {"kind": "text"}}}, "drift.columns.x.kind"),
        ({"columns": {"x": {"threshold": 0}}}, "drift.columns.x.threshold"),
        (
            {"columns": {"x": {"method": "ks", "threshold": 2}}},
            "drift.columns.x.threshold",
        ),
        ({"columns": {"x": {"bogus": 1}}}, "drift.columns.x.bogus"),
    ],
)
def test_invalid_options_name_the_key(mapping: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        DriftOptions.from_mapping(mapping)
    assert message in str(info.value)


def test_options_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match="config key 'drift' must be an object"):
        DriftOptions.from_mapping(["method"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("history", "new", "higher", "drift_expected", "threshold"),
    [
        ([0.7, 0.8, 0.75], 0.78, True, True, 0.8),
        ([0.7, 0.8, 0.75], 0.8, True, False, 0.8),
        ([0.7, 0.8, 0.75], 0.9, True, False, 0.8),
        ([0.3, 0.2, 0.25], 0.21, False, True, 0.2),
        ([0.3, 0.2, 0.25], 0.2, False, False, 0.2),
    ],
)
def test_raw_drift(
    history: list[float],
    new: float,
    higher: bool,
    drift_expected: bool,
    threshold: float,
) -> None:
    result = raw_drift(history, new, higher_is_better=higher)
    assert result["drift"] is drift_expected
    assert result["threshold"] == threshold
    assert result["method"] == "raw" and result["history_size"] == 3
    assert result["status"] == "ok" and result["new"] == new


PARAMETRIC_STD = 1.5811388300841898  # sample std of 1..5


@pytest.mark.parametrize(
    ("new", "higher", "drift_expected"),
    [(-0.2, True, True), (-0.1, True, False), (6.2, False, True), (6.1, False, False)],
)
def test_parametric_drift(new: float, higher: bool, drift_expected: bool) -> None:
    result = parametric_drift([1, 2, 3, 4, 5], new, higher_is_better=higher)
    assert result["drift"] is drift_expected
    assert result["mean"] == 3.0 and result["std"] == pytest.approx(PARAMETRIC_STD)
    sign = -1 if higher else 1
    assert result["threshold"] == pytest.approx(3.0 + sign * 2 * PARAMETRIC_STD)


@pytest.mark.parametrize(
    ("new", "higher", "drift_expected", "threshold"),
    [
        (-2.6, True, True, -2.5),
        (-2.5, True, False, -2.5),
        (11.6, False, True, 11.5),
        (11.5, False, False, 11.5),
    ],
)
def test_iqr_drift(new: float, higher: bool, drift_expected: bool, threshold: float) -> None:
    result = iqr_drift([1, 2, 3, 4, 5, 6, 7, 8], new, higher_is_better=higher)
    assert (result["q1"], result["q3"], result["iqr"]) == (2.75, 6.25, 3.5)
    assert result["threshold"] == threshold
    assert result["drift"] is drift_expected


@pytest.mark.parametrize(
    ("func", "history"),
    [(raw_drift, []), (parametric_drift, [0.5]), (iqr_drift, [0.5, 0.6, 0.7])],
)
def test_short_history_is_not_drift(func: Any, history: list[float]) -> None:
    result = func(history, 0.0)
    assert result["drift"] is False
    assert result["status"] == "insufficient_history"
    assert result["threshold"] is None and result["history_size"] == len(history)
    assert_plain_json(result)


@pytest.mark.parametrize(
    ("baseline", "new", "higher", "drift_expected"),
    [
        (0.80, 0.75, True, False),  # exactly the tolerance
        (0.80, 0.74, True, True),
        (0.80, 0.80, True, False),
        (0.80, 0.95, True, False),
        (0.20, 0.26, False, True),
        (0.20, 0.25, False, False),
        (0.20, 0.10, False, False),
    ],
)
def test_tolerance_drift(baseline: float, new: float, higher: bool, drift_expected: bool) -> None:
    result = tolerance_drift(baseline, new, tolerance=0.05, higher_is_better=higher)
    assert result["drift"] is drift_expected
    assert result["threshold"] == pytest.approx(baseline - 0.05 if higher else baseline + 0.05)
    assert_plain_json(result)


def test_tolerance_must_be_valid() -> None:
    with pytest.raises(ConfigError):
        tolerance_drift(0.8, 0.7, tolerance=-0.1)
    with pytest.raises(DataValidationError):
        tolerance_drift(0.8, float("nan"), tolerance=0.1)
    with pytest.raises(DataValidationError):
        raw_drift([0.5, float("nan")], 0.4)


def test_compare_score_histories() -> None:
    a = [0.80, 0.82, 0.81, 0.79, 0.83]
    b = [0.70, 0.72, 0.69, 0.71]
    result = compare_score_histories(a, b)
    expected = stats.ttest_ind(a, b, equal_var=False)
    assert result["statistic"] == pytest.approx(float(expected.statistic))
    assert result["p_value"] == pytest.approx(float(expected.pvalue))
    assert result["significant"] is True and result["n_a"] == 5 and result["n_b"] == 4
    assert compare_score_histories(a, a)["significant"] is False
    assert compare_score_histories([0.5], b)["status"] == "insufficient_history"
    constant = compare_score_histories([0.5, 0.5], [0.6, 0.6])
    assert constant["status"] == "zero_variance" and constant["significant"] is True
    assert_plain_json(result)


def test_benchmark_quick_run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = Path(__file__).parents[1] / "benchmarks" / "bench_drift.py"
    spec = importlib.util.spec_from_file_location("bench_drift", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_drift", module)
    spec.loader.exec_module(module)
    assert module.main(["--quick", "--sizes", "3000", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "10k-row column" in out and "evidently: skipped" in out
    assert " NO" not in out  # the KS statistics equal scipy's
