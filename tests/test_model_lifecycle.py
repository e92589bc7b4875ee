"""Training, scoring, deployment and rollback."""

from __future__ import annotations

import json
import pickle
from typing import Any

import numpy as np
import pandas as pd
import pytest

from monitoring.config import Settings
from monitoring.data.ingestion import ingest
from monitoring.exceptions import (
    DataValidationError,
    IntegrityError,
    MissingArtifactError,
    NotDeployedError,
    NotFoundError,
)
from monitoring.model.artifact import load_artifact
from monitoring.model.deployment import (
    CURRENT_FILE,
    current_version,
    deploy,
    list_versions,
    load_deployed,
    rollback,
)
from monitoring.model.scoring import compute_metrics, score
from monitoring.model.training import train
from monitoring.storage.store import Store

# The starter model trained on the 26 practice rows predicts [0, 1, 1, 1, 1] for the
# five test rows whose labels are [1, 0, 0, 1, 1]: TP = 2 (rows 4, 5), FP = 2 (rows
# 2, 3), FN = 1 (row 1), TN = 0. F1 = 2TP / (2TP + FP + FN) = 4 / 7.
PRACTICE_F1 = 4 / 7
PRACTICE_CONFUSION = [[0, 2], [1, 2]]  # [[TN, FP], [FN, TP]]


def test_practice_model_scores_four_sevenths(settings: Settings, store: Store) -> None:
    ingest(settings, store=store)
    metadata = train(settings, store=store)
    metrics = score(settings, store=store)
    assert metrics["f1"] == pytest.approx(PRACTICE_F1, abs=1e-12)
    assert metrics["confusion_matrix"] == PRACTICE_CONFUSION
    assert metrics["precision"] == pytest.approx(0.5)
    assert metrics["recall"] == pytest.approx(2 / 3)
    assert metrics["accuracy"] == pytest.approx(0.4)
    assert (settings.output_model_path / "latestscore.txt").read_text().strip() == str(PRACTICE_F1)
    [row] = store.scores(dataset="test")
    assert row["model_version"] == metadata["version"]
    assert row["f1"] == pytest.approx(PRACTICE_F1)


def test_artifact_is_a_plain_pickle_with_metadata(settings: Settings, store: Store) -> None:
    ingest(settings, store=store)
    metadata = train(settings, store=store)
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
    ingest(settings, store=store)
    final = pd.read_csv(settings.finaldata_file)
    final.assign(exited=1).to_csv(settings.finaldata_file, index=False)
    with pytest.raises(DataValidationError, match="needs both classes 0 and 1"):
        train(settings, store=store)


@pytest.mark.parametrize("seed", range(12))
def test_compute_metrics_equals_scikit_learn_exactly(seed: int) -> None:
    from sklearn import metrics

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    y_true = (rng.random(n) < [0.0, 0.3, 1.0][seed % 3]).astype(int)
    y_pred = (rng.random(n) < [0.5, 0.0, 1.0, 0.2][seed % 4]).astype(int)
    labels = [0, 1]
    expected = {
        "f1": metrics.f1_score(y_true, y_pred, labels=labels, zero_division=0),
        "precision": metrics.precision_score(y_true, y_pred, labels=labels, zero_division=0),
        "recall": metrics.recall_score(y_true, y_pred, labels=labels, zero_division=0),
        "accuracy": metrics.accuracy_score(y_true, y_pred),
        "confusion_matrix": metrics.confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }
    got = compute_metrics(y_true, y_pred)
    assert {k: got[k] for k in expected} == expected  # the same floats, not approximately
    assert got["n_rows"] == n


def test_compute_metrics_handles_one_class() -> None:
    metrics = compute_metrics([1, 1], [1, 0], [0.9, 0.2])
    assert metrics["roc_auc"] is None
    assert metrics["f1"] == pytest.approx(2 / 3)


def test_deploy_publishes_a_version_and_compat_copies(
    settings: Settings, deployed: dict[str, Any]
) -> None:
    version = deployed["model_version"]
    prod = settings.prod_deployment_path
    assert current_version(settings) == version
    for name in ("trainedmodel.pkl", "latestscore.txt", "ingestedfiles.txt"):
        assert (prod / name).read_bytes() == (prod / "versions" / version / name).read_bytes()
    assert (prod / "latestscore.txt").read_text().strip() == str(PRACTICE_F1)
    assert load_deployed(settings).version == version


def test_redeploy_keeps_versions_and_rollback_walks_back(
    make_settings, settings: Settings, store: Store, deployed: dict[str, Any]
) -> None:
    first = deployed["model_version"]
    source = make_settings(input_folder_path="data/sourcedata")
    ingest(source, store=store)
    second = train(source, store=store)["version"]
    score(source, store=store)
    result = deploy(source, store=store)
    assert result == {**result, "model_version": second, "previous_version": first}
    assert [v["version"] for v in list_versions(settings)] == [first, second]

    back = rollback(settings, store=store)
    assert (back["model_version"], back["previous_version"]) == (first, second)
    assert current_version(settings) == first
    assert (settings.prod_deployment_path / "latestscore.txt").read_text().strip() == str(
        PRACTICE_F1
    )
    with pytest.raises(NotFoundError, match="no version older than"):
        rollback(settings, store=store)
    assert rollback(settings, to_version=second, store=store)["model_version"] == second
    actions = [(d["action"], d["model_version"]) for d in store.deployments()]
    assert actions == [
        ("deploy", first),
        ("deploy", second),
        ("rollback", first),
        ("rollback", second),
    ]


@pytest.mark.parametrize("version", ["nope", "../versions", ".hidden"])
def test_rollback_to_an_unknown_version(
    settings: Settings, store: Store, deployed: dict[str, Any], version: str
) -> None:
    with pytest.raises(NotFoundError):
        rollback(settings, to_version=version, store=store)


def test_rollback_and_load_without_a_deployment(settings: Settings, store: Store) -> None:
    with pytest.raises(NotDeployedError, match="no model is deployed yet"):
        rollback(settings, store=store)
    with pytest.raises(NotDeployedError):
        load_deployed(settings)


def test_deploy_requires_a_scored_model(settings: Settings, store: Store) -> None:
    ingest(settings, store=store)
    train(settings, store=store)
    with pytest.raises(MissingArtifactError, match="has not been scored"):
        deploy(settings, store=store)


def test_a_tampered_model_is_refused(settings: Settings, deployed: dict[str, Any]) -> None:
    folder = settings.prod_deployment_path / "versions" / deployed["model_version"]
    (folder / "trainedmodel.pkl").write_bytes(pickle.dumps({"evil": True}))
    with pytest.raises(IntegrityError, match="does not match its recorded checksum"):
        load_artifact(folder)


def test_current_file_names_a_complete_version(
    settings: Settings, deployed: dict[str, Any]
) -> None:
    version = (settings.prod_deployment_path / CURRENT_FILE).read_text().strip()
    folder = settings.prod_deployment_path / "versions" / version
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith("reference")) == [
        "ingestedfiles.txt",
        "latestscore.txt",
        "scores.json",
        "trainedmodel.json",
        "trainedmodel.pkl",
    ]
