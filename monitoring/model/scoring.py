"""Scoring: how good a model is on labelled data (every metric: higher is better).

F1 of class 1 on the test data is the reference metric, as in the course.
:func:`score` scores the newest trained model of the record store, keeps the score
with it, appends to the score history and exports ``latestscore.txt`` (the bare F1)
and ``scores.json`` to ``output_model_path``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from monitoring.config import Settings
from monitoring.data.validation import check_binary_target, check_columns, to_numeric_columns
from monitoring.exceptions import DataValidationError, MissingArtifactError
from monitoring.model.artifact import Artifact, load_artifact
from monitoring.model.tracking import log_scoring
from monitoring.storage.files import atomic_write_json, atomic_write_text, read_table, sha256_file
from monitoring.storage.store import Store, utcnow

SCORE_FILE = "latestscore.txt"
SCORES_JSON = "scores.json"
METRICS = ("f1", "precision", "recall", "accuracy", "roc_auc")


def compute_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, y_score: np.ndarray | None = None
) -> dict[str, Any]:
    """Classification metrics of binary labels (positive class 1).

    ``roc_auc`` is None without ``y_score`` or with one class in ``y_true``;
    ``confusion_matrix`` is ``[[tn, fp], [fn, tp]]``.

    Examples
    --------
    >>> m = compute_metrics(np.array([1, 0, 1, 1]), np.array([1, 0, 0, 1]))
    >>> round(m["f1"], 4), m["confusion_matrix"]
    (0.8, [[1, 0], [1, 2]])
    """
    y_true = np.asarray(y_true).astype(int)
    y_pred = np.asarray(y_pred).astype(int)
    roc_auc = None
    if y_score is not None and len(np.unique(y_true)) == 2:
        roc_auc = float(roc_auc_score(y_true, y_score))
    binary = all(bool(((a == 0) | (a == 1)).all()) for a in (y_true, y_pred))
    if y_true.size and y_true.shape == y_pred.shape and binary:
        # From the confusion counts, with scikit-learn's divisions: identical floats
        # at a fraction of the cost of its five validated calls.
        counts = np.bincount(2 * y_true + y_pred, minlength=4).reshape(2, 2)
        (tn, fp), (fn, tp) = matrix = counts.tolist()
        f1 = _ratio(2.0 * tp, float(tp + fn) + float(tp + fp))
        precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
        accuracy = (tp + tn) / y_true.size
    else:  # scikit-learn's checks and messages for anything else
        labels = [0, 1]
        f1 = float(f1_score(y_true, y_pred, labels=labels, zero_division=0))
        precision = float(precision_score(y_true, y_pred, labels=labels, zero_division=0))
        recall = float(recall_score(y_true, y_pred, labels=labels, zero_division=0))
        accuracy = float(accuracy_score(y_true, y_pred))
        matrix = confusion_matrix(y_true, y_pred, labels=labels).tolist()
    return {
        "f1": f1,
        "precision": precision,
        "recall": recall,
        "accuracy": accuracy,
        "roc_auc": roc_auc,
        "confusion_matrix": matrix,
        "n_rows": int(len(y_true)),
    }


def _ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``; 0.0 for a zero denominator (``zero_division=0``)."""
    return float(numerator) / float(denominator) if denominator else 0.0


def evaluate(
    artifact: Artifact, frame: pd.DataFrame, target: str, *, input_name: str
) -> dict[str, Any]:
    """Metrics of ``artifact`` on a ``frame`` labelled in ``target`` (no label missing)."""
    check_columns(frame, [target], input_name=input_name, allow_extra=True)
    y = to_numeric_columns(frame, [target], input_name=input_name, allow_missing=False)[target]
    check_binary_target(y, input_name=input_name, column=target)
    result = artifact.predict(frame, input_name=input_name)
    return compute_metrics(y.to_numpy(), result["predictions"], result["probabilities"])


def read_test_data(settings: Settings) -> pd.DataFrame:
    """The test data, or a clear error when it is missing."""
    path = settings.test_data_file
    if not path.is_file():
        raise MissingArtifactError(f"test data {settings.public(path)} does not exist")
    return read_table(path)


def score_record(
    artifact: Artifact, metrics: dict[str, Any], *, dataset: str, dataset_sha256: str | None
) -> dict[str, Any]:
    """A score-history row for the record store."""
    return {
        "scored_at": utcnow(),
        "model_version": artifact.version,
        "dataset": dataset,
        "dataset_sha256": dataset_sha256,
        "n_rows": metrics["n_rows"],
        **{name: metrics[name] for name in METRICS},
    }


def score(settings: Settings, *, store: Store | None = None) -> dict[str, Any]:
    """Score the newest trained model of the store on the test data; return its metrics.

    The score is kept with the model (what deployment requires) and exported as
    ``scores.json`` and ``latestscore.txt`` in ``output_model_path``. MissingArtifactError
    if no model was trained.
    """
    store = store or Store(settings.database_url)
    newest = store.newest_model()
    if newest is None:
        raise MissingArtifactError(
            "no trained model in the record store; run 'python -m monitoring train' first"
        )
    artifact = load_artifact(store, newest["version"])
    frame = read_test_data(settings)
    if len(frame) == 0:
        raise DataValidationError(f"{settings.test_data_file.name}: contains no rows")
    metrics = evaluate(artifact, frame, settings.target, input_name=settings.test_data_file.name)
    digest = sha256_file(settings.test_data_file)
    record = score_record(artifact, metrics, dataset="test", dataset_sha256=digest)
    saved = {k: record[k] for k in ("model_version", "dataset", "dataset_sha256", "scored_at")}
    store.set_model_score(artifact.version, {**metrics, **saved})
    store.add_score(record)
    folder = settings.output_model_path
    atomic_write_json(folder / SCORES_JSON, {**metrics, **saved})
    atomic_write_text(folder / SCORE_FILE, f"{metrics['f1']}\n")
    result = {**metrics, "model_version": artifact.version}
    tracked = log_scoring(settings, artifact.version, {**metrics, **saved})
    if tracked is not None:  # MLflow on
        result["mlflow"] = tracked
    return result
