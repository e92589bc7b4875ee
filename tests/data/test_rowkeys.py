"""Row keys: equal rows get equal keys; SeenRows de-duplicates as pandas does."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitoring.data.rowkeys import SeenRows, row_keys


@pytest.mark.parametrize(
    ("left", "right", "same"),
    [
        ({"n": [3]}, {"n": [3.0]}, True),
        ({"n": [0.0]}, {"n": [-0.0]}, True),
        ({"n": [np.nan]}, {"n": [np.nan]}, True),
        ({"n": [2**60]}, {"n": [2**60 + 1]}, False),
        ({"s": ["abcdefgh1"]}, {"s": ["abcdefgh2"]}, False),
        ({"s": ["ab"]}, {"s": ["ab\x00"]}, False),
        ({"s": [None]}, {"s": [""]}, False),
        ({"s": ["y" * 400 + "a"]}, {"s": ["y" * 400 + "b"]}, False),
        ({"s": ["y" * 400]}, {"s": ["y" * 400]}, True),
        ({"s": ["a"], "n": [1]}, {"s": ["a"], "n": [2]}, False),
    ],
)
def test_row_keys_compare_values(left: dict, right: dict, same: bool) -> None:
    def key(data: dict) -> tuple[int, int]:
        frame = pd.DataFrame(data)
        if "s" in frame:
            frame["s"] = frame["s"].astype("string")
        a, b = row_keys(frame)
        return int(a[0]), int(b[0])

    assert (key(left) == key(right)) is same


def test_a_rows_key_does_not_depend_on_the_other_rows() -> None:
    frame = pd.DataFrame(
        {
            "s": pd.array(["a", None, "y" * 300, "", "é☃" * 5, "abcdefghi"], dtype="string"),
            "n": [1.0, np.nan, 3.0, -0.0, 5.0, 6.0],
        }
    )
    a, b = row_keys(frame)
    for i in range(len(frame)):
        alone_a, alone_b = row_keys(frame.iloc[[i]])
        assert (alone_a[0], alone_b[0]) == (a[i], b[i])


def test_seen_rows_stay_exact_when_first_halves_collide(monkeypatch) -> None:
    """Every row gets the same first 64 bits: the second half must still tell them apart."""
    from monitoring.data import rowkeys

    real = rowkeys.row_keys

    def colliding(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        a, b = real(frame)
        return np.zeros_like(a), b

    monkeypatch.setattr(rowkeys, "row_keys", colliding)
    seen = SeenRows()
    assert seen.admit(pd.DataFrame({"x": [1, 2, 1, 3]})).tolist() == [True, True, False, True]
    assert seen.admit(pd.DataFrame({"x": [3, 4, 2, 5, 4]})).tolist() == [
        False,
        True,
        False,
        True,
        False,
    ]
    assert seen.admit(pd.DataFrame({"x": [6, 1, 5]})).tolist() == [True, False, False]


def test_seen_rows_across_many_batches_match_pandas(rng: np.random.Generator) -> None:
    values = rng.integers(0, 3000, 20_000)
    seen = SeenRows()
    kept = np.concatenate(
        [seen.admit(pd.DataFrame({"x": chunk})) for chunk in np.array_split(values, 37)]
    )
    assert kept.tolist() == (~pd.Series(values).duplicated()).tolist()
