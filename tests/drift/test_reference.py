"""The reference profile: fit conventions, save and load."""

from __future__ import annotations

import json
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
from monitoring.exceptions import ConfigError, IntegrityError, NotFittedError
from tests.helpers import planted


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
