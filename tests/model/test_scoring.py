"""Scoring: the course's F1 on the shipped data, metrics equal to scikit-learn's."""

from __future__ import annotations

import json

import numpy as np
import pytest

from monitoring.config import Settings
from monitoring.data.ingestion import ingest
from monitoring.exceptions import MissingArtifactError
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
    kept = store.model_version(metadata["version"], with_bytes=False)
    assert kept is not None and kept["score"] == json.loads(
        (settings.output_model_path / "scores.json").read_text()
    )
    assert (kept["score"]["f1"], kept["score"]["dataset"]) == (PRACTICE_F1, "test")


def test_score_takes_the_newest_trained_model(settings: Settings, store: Store) -> None:
    with pytest.raises(MissingArtifactError, match="no trained model in the record store"):
        score(settings, store=store)
    ingest(settings, store=store)
    first = train(settings, store=store)["version"]
    second = train(settings, store=store)["version"]
    assert score(settings, store=store)["model_version"] == second
    assert store.model_version(first, with_bytes=False)["score"] is None  # type: ignore[index]


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
