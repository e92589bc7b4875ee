"""Training: the artifact and what it needs."""

from __future__ import annotations

import hashlib
import io
import json
import pickle

import pandas as pd
import pytest

from monitoring.config import Settings
from monitoring.data.ingestion import ingest
from monitoring.drift import ReferenceProfile
from monitoring.exceptions import (
    DataValidationError,
    MissingArtifactError,
)
from monitoring.model.training import train
from monitoring.storage.store import Store

# The starter model trained on the 26 practice rows predicts [0, 1, 1, 1, 1] for the
# five test rows whose labels are [1, 0, 0, 1, 1]: TP = 2 (rows 4, 5), FP = 2 (rows
# 2, 3), FN = 1 (row 1), TN = 0. F1 = 2TP / (2TP + FP + FN) = 4 / 7.


def test_artifact_is_a_plain_pickle_with_metadata(settings: Settings, store: Store) -> None:
    ingest(settings, store=store)
    metadata = train(settings, store=store)
    exported = (settings.output_model_path / "trainedmodel.pkl").read_bytes()
    row = store.model_version(metadata["version"])
    assert row is not None and row["artifact"] == exported  # the export is the stored model
    assert row["sha256"] == metadata["sha256"] == hashlib.sha256(exported).hexdigest()
    assert (row["score"], row["deployed_at"], row["metadata"]) == (None, None, metadata)
    reference = (settings.output_model_path / "reference_profile").read_bytes()
    assert row["reference"] == reference
    assert metadata["reference_sha256"] == hashlib.sha256(reference).hexdigest()
    assert ReferenceProfile.load(io.BytesIO(reference)).columns_ == list(settings.features)
    with open(settings.output_model_path / "trainedmodel.pkl", "rb") as handle:
        model = pickle.load(handle)  # what course scripts do
    test = pd.read_csv(settings.test_data_file)
    assert model.predict(test[list(settings.features)]).tolist() == [0, 1, 1, 1, 1]
    params = model.get_params()
    assert (params["C"], params["solver"], params["random_state"]) == (1.0, "liblinear", 0)
    saved = json.loads((settings.output_model_path / "trainedmodel.json").read_text())
    assert saved == json.loads(json.dumps(metadata))
    assert saved["training_data"]["rows"] == 26
    assert saved["features"] == list(settings.features)
    assert len(saved["training_data"]["sha256"]) == 64
    assert {"python", "scikit-learn", "numpy", "pandas"} <= set(saved["library_versions"])


def test_training_needs_ingested_data_with_both_classes(settings: Settings, store: Store) -> None:
    with pytest.raises(MissingArtifactError, match="run 'python -m monitoring ingest' first"):
        train(settings, store=store)
    for path in settings.input_folder_path.glob("*.csv"):
        pd.read_csv(path).assign(exited=1).to_csv(path, index=False)
    ingest(settings, store=store)
    with pytest.raises(DataValidationError, match="needs both classes 0 and 1"):
        train(settings, store=store)
