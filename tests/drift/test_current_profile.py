"""A profile of the current data gives the drift report of the data it was fitted on."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd
import pytest

from monitoring.config import PROJECT_ROOT, DriftOptions
from monitoring.drift import ReferenceProfile, detect_data_drift
from monitoring.exceptions import DataValidationError, NotFittedError
from tests.helpers import FEATURES, planted

OPTIONS = {
    "default": {},
    "fdr and overrides": {
        "fdr": True,
        "columns": {
            "num_stable": {"method": "chisquare"},  # a categorical test of numbers
            "int_stable": {"method": "psi"},  # a numeric test of a categorical column
            "num_scale": {"method": "wasserstein", "threshold": 0.05},
        },
    },
    "kinds and bins": {
        "psi_bins": 4,
        "categorical_max_unique": 3,
        "columns": {"bool_stable": {"kind": "numeric"}, "int_stable": {"kind": "categorical"}},
    },
}


def profiled(frame: pd.DataFrame, options: DriftOptions) -> ReferenceProfile:
    """``frame``'s profile, fitted with ``options`` and passed through save and load."""
    buffer = io.BytesIO()
    ReferenceProfile.from_options(options).fit(frame).save(buffer)
    buffer.seek(0)
    return ReferenceProfile.load(buffer)


def with_gaps(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """``frame`` with missing values in some columns and a constant and an empty one."""
    rng = np.random.default_rng(seed)
    out = frame.copy()
    out.loc[rng.random(len(out)) < 0.1, "num_shift"] = np.nan
    out.loc[rng.random(len(out)) < 0.1, "num_stable"] = np.inf  # counts as missing
    out["cat_stable"] = out["cat_stable"].astype(object)
    out.loc[rng.random(len(out)) < 0.2, "cat_stable"] = None
    out["constant"] = 2.5
    out["constant_label"] = "only"
    out["all_missing"] = np.nan
    return out


@pytest.mark.parametrize("options", OPTIONS.values(), ids=list(OPTIONS))
@pytest.mark.parametrize(("n_ref", "n_cur", "seed"), [(600, 400, 2), (5000, 2000, 8)])
def test_profile_as_current_gives_the_report_of_its_data(
    options: dict[str, Any], n_ref: int, n_cur: int, seed: int
) -> None:
    opts = DriftOptions.from_mapping(options)
    ref, cur = planted(n_ref, n_cur, seed)
    ref, cur = with_gaps(ref, seed), with_gaps(cur, seed + 1)
    cur.loc[:, "constant"] = 3.0  # the reference's constant moved
    reference = ReferenceProfile.from_options(opts).fit(ref)
    expected = detect_data_drift(reference, cur, options=opts)
    assert set(expected["drifted_columns"]) >= {"num_shift", "cat_reweight", "constant"}
    statuses = {c["column"]: c["status"] for c in expected["columns"]}
    assert statuses["constant"] == statuses["constant_label"] == "constant_reference"
    assert statuses["all_missing"] == "all_null_reference"

    current = profiled(cur, opts)
    assert detect_data_drift(reference, current, options=opts) == expected
    assert detect_data_drift(ref, current, options=opts) == expected
    subset = ["cat_stable", "num_shift"]
    assert detect_data_drift(reference, current, columns=subset, options=opts) == (
        detect_data_drift(reference, cur, columns=subset, options=opts)
    )


def test_profile_as_current_of_the_shipped_source_data() -> None:
    data = PROJECT_ROOT / "data"
    training = pd.concat(
        [pd.read_csv(p) for p in sorted((data / "practicedata").glob("*.csv"))]
    ).drop_duplicates()
    reference = ReferenceProfile().fit(training[FEATURES])
    batches = [pd.read_csv(p) for p in sorted((data / "sourcedata").glob("*.csv"))]
    batches.append(pd.concat(batches, ignore_index=True))
    for batch in batches:
        expected = detect_data_drift(reference, batch, columns=FEATURES)
        current = profiled(batch[FEATURES], DriftOptions())
        assert detect_data_drift(reference, current, columns=FEATURES) == expected
    # all of it: drift in every feature, as the full process finds (README)
    assert expected["drifted_columns"] == FEATURES and expected["n_current"] == 26


def test_an_empty_or_all_missing_current_profile() -> None:
    ref = pd.DataFrame({"x": np.linspace(0.0, 1.0, 50), "c": ["a", "b"] * 25})
    for cur in (ref.iloc[:0], pd.DataFrame({"x": [np.nan] * 4, "c": [None] * 4})):
        expected = detect_data_drift(ref, cur)
        assert detect_data_drift(ref, profiled(cur, DriftOptions())) == expected
    assert {c["status"] for c in expected["columns"]} == {"all_null_current"}


def test_labels_of_numbers_in_the_current_profile_are_converted() -> None:
    ref = pd.DataFrame({"a": [1.0, 2.0, 3.5, 2.0]})
    cur = pd.DataFrame({"a": ["1.0", "2.0", None, "3.5", "2.0"]})
    current = profiled(cur, DriftOptions())
    assert current.profiles_["a"].value_type == "label"
    assert detect_data_drift(ref, current) == detect_data_drift(ref, cur)
    words = profiled(pd.DataFrame({"a": ["x", "2.0"]}), DriftOptions())
    with pytest.raises(DataValidationError, match="'a' is numeric but has non-numeric values"):
        detect_data_drift(ref, words)


def test_numbers_in_the_current_profile_against_labels_are_refused() -> None:
    ref = pd.DataFrame({"c": ["1", "2", "2"]})
    current = profiled(pd.DataFrame({"c": [1, 2, 2]}), DriftOptions())
    with pytest.raises(DataValidationError, match="column 'c' holds numbers but the reference"):
        detect_data_drift(ref, current)


def test_a_current_profile_must_be_fitted_and_hold_the_columns() -> None:
    ref = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0], "c": [5.0, 6.0]})
    with pytest.raises(NotFittedError):
        detect_data_drift(ref, ReferenceProfile())
    current = profiled(ref[["b"]], DriftOptions())
    with pytest.raises(DataValidationError, match="current profile is missing columns: a, c") as e:
        detect_data_drift(ref, current)
    assert e.value.details == {"missing_columns": ["a", "c"]}
    with pytest.raises(DataValidationError, match="a pandas DataFrame or a ReferenceProfile"):
        detect_data_drift(ref, ref.to_numpy())  # type: ignore[arg-type]
