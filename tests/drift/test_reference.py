"""The reference profile: fit conventions, save and load."""

from __future__ import annotations

import io
import json
import re
import tracemalloc
import weakref
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from monitoring.config import DriftOptions
from monitoring.drift import (
    ReferenceProfile,
    detect_data_drift,
)
from monitoring.drift import reference as reference_module
from monitoring.drift.reference import SKETCH_POINTS
from monitoring.exceptions import ConfigError, DataValidationError, IntegrityError, NotFittedError
from tests.helpers import assert_same_profile, planted


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


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


# -- fitting from arrays, saving to bytes ---------------------------------------------
def arrays_of(frame: pd.DataFrame) -> list[tuple[str, np.ndarray]]:
    """Each column as ingestion keeps it: integers in their smallest type, floats
    without their missing values."""
    out = []
    for name in frame.columns:
        values = frame[name].to_numpy()
        if values.dtype.kind == "f":
            values = values[~np.isnan(values)]
        elif values.dtype.kind in "iu":
            values = values.astype(np.min_scalar_type(int(values.max())))
        out.append((name, values))
    return out


@pytest.mark.parametrize(
    "options",
    [{}, {"categorical_max_unique": 2, "psi_bins": 3, "columns": {"b": {"kind": "numeric"}}}],
)
def test_fit_arrays_equals_fit_on_the_frame(options: dict[str, Any]) -> None:
    rng = np.random.default_rng(5)
    n = 3000
    frame = pd.DataFrame(
        {
            "big": rng.integers(0, 40_000, n),  # uint16: sorted by radix sort
            "wide": rng.integers(0, 10**9, n),  # uint32
            "small": rng.integers(0, 3, n),  # categorical unless max_unique < 3
            "x": rng.normal(size=n),
            "gaps": np.where(rng.random(n) < 0.2, np.nan, rng.integers(0, 4, n)),
            "b": rng.random(n) < 0.3,
            "zeros": np.where(rng.random(n) < 0.5, -0.0, 0.0),
            "constant": np.full(n, 7.0),
            "empty": np.full(n, np.nan),
        }
    )
    opts = DriftOptions.from_mapping(options)
    expected = ReferenceProfile.from_options(opts).fit(frame)
    ours = ReferenceProfile.from_options(opts).fit_arrays(arrays_of(frame), n_rows=n)
    assert_same_profile(ours, expected)
    assert ours.kinds_["b"] == ("numeric" if options else "categorical")
    # and the same reports
    shifted = frame.sample(frac=0.5, random_state=1) + 1
    assert detect_data_drift(ours, shifted, options=opts) == detect_data_drift(
        expected, shifted, options=opts
    )


def test_fit_arrays_takes_one_column_at_a_time() -> None:
    """Each array is released before the next one is asked for: a generator building
    them one by one never holds two."""
    handed: list[weakref.ref[np.ndarray]] = []

    def columns() -> Any:
        for i in range(4):
            assert all(ref() is None for ref in handed), "an earlier column is still held"
            values = np.arange(1000, dtype=np.float64) * (i + 1)
            handed.append(weakref.ref(values))
            yield f"c{i}", values
            del values

    profile = ReferenceProfile().fit_arrays(columns(), n_rows=1000)
    assert profile.columns_ == ["c0", "c1", "c2", "c3"]


def test_save_arrays_writes_what_fit_arrays_and_save_write() -> None:
    ref, _ = planted(2000, 10, seed=6)
    ref.loc[::9, "num_shift"] = np.nan
    opts = DriftOptions.from_mapping(
        {"psi_bins": 7, "columns": {"int_stable": {"kind": "numeric"}}}
    )
    numbers = ref.drop(columns=["cat_stable", "cat_reweight"])
    fitted, streamed = io.BytesIO(), io.BytesIO()
    ReferenceProfile.from_options(opts).fit_arrays(arrays_of(numbers), n_rows=2000).save(fitted)
    profile = ReferenceProfile.from_options(opts)
    assert profile.save_arrays(streamed, arrays_of(numbers), n_rows=2000) is None
    assert not hasattr(profile, "profiles_")  # nothing kept
    assert streamed.getvalue() == fitted.getvalue()
    streamed.seek(0)
    assert_same_profile(
        ReferenceProfile.load(streamed), ReferenceProfile.from_options(opts).fit(numbers)
    )


@pytest.mark.slow  # about 1.3 s: columns of 1.2M and 2.4M values
def test_a_fit_holds_a_bounded_sketch_per_column_whatever_its_length() -> None:
    """Peak memory (numpy's allocations) of fitting does not grow with the columns'
    length: each is streamed through a sketch of SKETCH_POINTS values; fitting them
    all holds one sketch per column, never a column's values."""
    count = 6

    bases = {n: (np.arange(n) % 7).astype(np.int8) for n in (1_200_000, 2_400_000)}

    def columns(n: int) -> Any:
        for i in range(count):
            yield f"c{i}", bases[n] + np.int8(i)  # saved as 7 runs (the copy: n bytes)

    def peak(work: Any) -> int:
        tracemalloc.start()
        try:
            work()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    def streamed(n: int) -> int:
        return peak(lambda: ReferenceProfile().save_arrays(io.BytesIO(), columns(n), n_rows=n))

    short, long = streamed(1_200_000), streamed(2_400_000)
    assert long - 1_200_000 < 1.2 * short < 12e6  # twice the rows, about the same memory
    n = 2_400_000
    held = peak(lambda: ReferenceProfile().fit_arrays(columns(n), n_rows=n))
    assert held < short + count * 2 * SKETCH_POINTS * 8  # a sketch per column, not n values


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ([("a", np.zeros((2, 2)))], "must be a 1-D array of at most 4 numbers"),
        ([("a", np.array(["x"], dtype=object))], "must be a 1-D array"),
        ([("a", np.zeros(5))], "at most 4 numbers, got float64 of shape (5,)"),
        ([("a", np.zeros(2)), ("a", np.zeros(2))], "distinct strings, got 'a'"),
    ],
)
def test_fit_arrays_refuses_what_a_column_cannot_be(columns: Any, message: str) -> None:
    with pytest.raises(DataValidationError, match=re.escape(message)):
        ReferenceProfile().fit_arrays(columns, n_rows=4)


def test_save_and_load_with_file_objects_and_runs() -> None:
    rng = np.random.default_rng(9)
    frame = pd.DataFrame({"counts": rng.integers(0, 50, 5000), "x": rng.normal(size=5000)})
    profile = ReferenceProfile().fit(frame)
    buffer = io.BytesIO()
    assert profile.save(buffer) is None
    data = buffer.getvalue()
    with np.load(io.BytesIO(data)) as archive:  # few distinct values: saved as runs
        assert {"c0_run_values", "c0_run_counts", "c1_sorted"} <= set(archive.files)
        assert "c0_sorted" not in archive.files and archive["c0_run_counts"].dtype == np.uint8
    assert len(data) < 5000 * 8 + 10_000  # one float64 column, not two
    assert_same_profile(ReferenceProfile.load(io.BytesIO(data)), profile)
    with pytest.raises(IntegrityError, match="cannot load reference profile"):
        ReferenceProfile.load(io.BytesIO(data[: len(data) // 2]))


def test_a_version_1_profile_still_loads(tmp_path: Path) -> None:
    """Version 1 saved every column's sorted values as float64."""
    ref, _ = planted(300, 10, seed=4)
    profile = ReferenceProfile().fit(ref)
    buffer = io.BytesIO()
    profile.save(buffer)
    buffer.seek(0)
    with np.load(buffer) as archive:
        arrays = {key: archive[key] for key in archive.files}
    meta = json.loads(str(arrays.pop("meta")))
    for i, name in enumerate(profile.columns_):
        numeric = profile.profiles_[name].numeric
        for key in (f"c{i}_run_values", f"c{i}_run_counts"):
            arrays.pop(key, None)
        if numeric is not None:
            arrays[f"c{i}_sorted"] = numeric.sorted_values
    np.savez(tmp_path / "v1", meta=np.array(json.dumps({**meta, "version": 1})), **arrays)
    assert_same_profile(ReferenceProfile.load(tmp_path / "v1.npz"), profile)
    np.savez(tmp_path / "v9", meta=np.array(json.dumps({**meta, "version": 9})), **arrays)
    with pytest.raises(IntegrityError, match="unsupported profile version 9"):
        ReferenceProfile.load(tmp_path / "v9.npz")


@pytest.mark.parametrize("shift", [0.0, 0.02, 0.3])
def test_a_sketched_reference_gives_scipys_ks_within_the_stated_bound(
    monkeypatch: pytest.MonkeyPatch, shift: float
) -> None:
    """Past EXACT_VALUES a column is a sketch; its KS statistic stays within
    sketch_error of scipy's, its mean, spread and counts exact. Small sketch sizes
    force many reductions and compressions."""
    from scipy import stats

    points, chunk = 4096, 4096
    KS = DriftOptions.from_mapping({"method": "ks"})  # noqa: N806
    monkeypatch.setattr(reference_module, "EXACT_VALUES", chunk)
    monkeypatch.setattr(reference_module, "SKETCH_POINTS", points)
    monkeypatch.setattr(reference_module, "SKETCH_CHUNK", chunk)
    rng = np.random.default_rng(7)
    n = 200_000
    ref = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "ties": np.round(rng.normal(size=n), 1),
            "cat": rng.integers(0, 5, n),
        }
    )
    ref.loc[::97, "x"] = np.nan
    cur = pd.DataFrame(
        {
            "x": rng.normal(shift, 1.0, 50_000),
            "ties": np.round(rng.normal(shift, 1.0, 50_000), 1),
            "cat": rng.integers(0, 5, 50_000),
        }
    )
    profile = ReferenceProfile().fit(ref)
    assert profile.profiles_["x"].numeric.sorted_values.size == points
    assert profile.kinds_ == {"x": "numeric", "ties": "numeric", "cat": "categorical"}
    bound = reference_module.sketch_error(n - n // 97)  # x has the fewest values
    assert bound < 0.01
    report = detect_data_drift(profile, cur, options=KS)
    by_name = {c["column"]: c for c in report["columns"]}
    for column in (by_name["x"], by_name["ties"]):
        values = ref[column["column"]].dropna().to_numpy()
        expected = stats.ks_2samp(values, cur[column["column"]].to_numpy())
        assert abs(column["ks_statistic"] - expected.statistic) <= bound, column["column"]
        assert column["n_current"] == 50_000
    monkeypatch.undo()  # the exact profile: the same categorical statistics
    exact = detect_data_drift(ReferenceProfile().fit(ref), cur, options=KS)["columns"][2]
    assert (by_name["cat"]["chi_square"], by_name["cat"]["chi_square_p_value"]) == (
        exact["chi_square"],
        exact["chi_square_p_value"],
    )
    x = profile.profiles_["x"]
    finite = ref["x"].dropna().to_numpy()
    assert (x.n_rows, x.n_null) == (n, n - finite.size)
    assert x.numeric.mean == pytest.approx(finite.mean(), rel=1e-12)
    assert x.numeric.std == pytest.approx(finite.std(), rel=1e-12)
    counts = profile.profiles_["cat"].categorical
    assert counts.counts.tolist() == np.bincount(ref["cat"]).tolist()
    assert profile.profiles_["cat"].numeric.sorted_values.size == points
