"""detect_data_drift: methods, verdicts, overrides, missing values and degenerate columns."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from monitoring.config import DriftOptions
from monitoring.drift import (
    ReferenceProfile,
    detect_data_drift,
)
from monitoring.exceptions import ConfigError, DataValidationError
from tests.helpers import assert_plain_json, planted

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


def by_column(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["column"]: c for c in report["columns"]}


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
