"""Request payloads: JSON rows become the feature matrix, or a message naming row and column."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from monitoring.data.payloads import frame_from_records
from monitoring.exceptions import DataValidationError
from tests.helpers import FEATURES, small_artifact

ROWS = [
    {"lastmonth_activity": 234, "lastyear_activity": 3, "number_of_employees": 10},
    {"lastmonth_activity": 14.5, "lastyear_activity": 2145, "number_of_employees": 99},
]


def test_records_fast_path_matches_pandas() -> None:
    fast = frame_from_records(ROWS, FEATURES)
    slow = pd.DataFrame.from_records(ROWS)
    assert list(fast.columns) == FEATURES
    assert np.array_equal(fast.to_numpy(dtype="float64"), slow.to_numpy(dtype="float64"))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, "column 'lastyear_activity' must be a number; row 1 has True"),
        ("3", "column 'lastyear_activity' must be a number; row 1 has '3'"),
        ([3], "column 'lastyear_activity' must be a number; row 1 has [3]"),
        (float("nan"), "column 'lastyear_activity' must be finite; row 1 has nan"),
        (float("-inf"), "column 'lastyear_activity' must be finite; row 1 has -inf"),
        (10**400, "column 'lastyear_activity' must be finite; row 1 has an integer of 401 digits"),
    ],
)
def test_records_that_are_not_plain_numbers_are_refused_by_row_and_column(
    value: object, message: str
) -> None:
    rows = [ROWS[0], {**ROWS[1], "lastyear_activity": value}]
    with pytest.raises(DataValidationError, match=re.escape(message)):
        frame_from_records(rows, FEATURES)


def test_plain_records_of_any_size_and_both_layouts_give_the_same_matrix() -> None:
    rows = [*ROWS, {**ROWS[0], "lastyear_activity": 2**70}]
    by_row = frame_from_records(rows, FEATURES)
    by_column = frame_from_records({c: [r[c] for r in rows] for c in FEATURES}, FEATURES)
    expected = np.array([[r[c] for c in FEATURES] for r in rows], dtype="float64")
    for frame in (by_row, by_column):
        assert list(frame.columns) == FEATURES
        assert np.array_equal(frame.to_numpy(), expected)
    assert by_row.to_numpy()[2, 1] == 1.1805916207174113e21


def test_rows_with_extra_or_missing_keys_keep_pandas_semantics(rng: np.random.Generator) -> None:
    extra = frame_from_records([{**ROWS[0], "corporation": "abc"}], FEATURES)
    assert list(extra.columns) == [*FEATURES, "corporation"]
    gap = frame_from_records([{**ROWS[0], "number_of_employees": None}], FEATURES)
    artifact, _ = small_artifact(LogisticRegression(), rng)
    with pytest.raises(DataValidationError, match="has a missing value at row 0"):
        artifact.predict(gap, input_name="request body")
    reordered = frame_from_records([dict(reversed(list(ROWS[0].items())))], FEATURES)
    assert list(reordered.columns) == FEATURES
