"""The data profile equals numpy's and pandas' statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitoring.data.profile import column_summary, quartiles


@pytest.mark.parametrize("seed", range(20))
def test_quartiles_and_summary_equal_numpy_and_pandas(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    low, high = sorted(int(v) for v in rng.integers(-(10**6), 10**6, 2))
    values = rng.integers(low, high + 1, n)
    expected = np.quantile(values.astype(float), [0.25, 0.5, 0.75]).tolist()
    assert quartiles(values) == expected
    series = pd.Series(values.astype(float))
    summary = column_summary(values)
    assert summary["mean"] == series.mean()
    assert summary["std"] == (series.std(ddof=1) if n > 1 else None)
    assert (summary["min"], summary["max"]) == (series.min(), series.max())
    floats = rng.normal(size=n) * 10 ** float(rng.integers(-3, 6))
    summary = column_summary(floats)
    assert summary["mean"] == pd.Series(floats).mean()
    assert [summary["q25"], summary["median"], summary["q75"]] == np.quantile(
        floats, [0.25, 0.5, 0.75]
    ).tolist()
