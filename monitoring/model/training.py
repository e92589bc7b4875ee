"""Training: fit the configured model on the training window and save it in the store.

The window (``training.window``, :mod:`monitoring.data.window`) is every ingested
row by default, or the newest ingestion's ``finaldata.csv`` as in the course.

Saved with it: the data's SHA-256, the in-sample score (the model-drift baseline)
and the drift reference profile, so each drift check only costs the new batch. The
course's ``trainedmodel.pkl`` and ``trainedmodel.json`` are exported to
``output_model_path``.
"""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from monitoring.config import Settings
from monitoring.data.validation import check_binary_target, check_columns, to_numeric_columns
from monitoring.data.window import TrainingData, training_data
from monitoring.drift import ReferenceProfile
from monitoring.exceptions import DataValidationError
from monitoring.model.artifact import (
    Artifact,
    build_estimator,
    export_artifact,
    library_versions,
    save_artifact,
)
from monitoring.model.estimation import fit_reference
from monitoring.model.scoring import compute_metrics, score_record
from monitoring.model.tracking import log_training
from monitoring.storage.store import Store, utcnow


def training_matrix(
    frame: pd.DataFrame, settings: Settings, *, input_name: str
) -> tuple[pd.DataFrame, pd.Series, int]:
    """Features (float64), 0/1 target and count of incomplete rows dropped.

    Raises DataValidationError for missing columns, non-numeric values or one class.
    """
    columns = [*settings.features, settings.target]
    check_columns(frame, columns, input_name=input_name, allow_extra=True)
    numeric = to_numeric_columns(frame, columns, input_name=input_name, allow_missing=True)
    complete = numeric.dropna()
    dropped = len(numeric) - len(complete)
    y = complete[settings.target]
    check_binary_target(y, input_name=input_name, column=settings.target)
    if y.nunique() < 2:
        raise DataValidationError(
            f"{input_name}: the target '{settings.target}' needs both classes 0 and 1 "
            f"to train; found only {sorted(y.unique().tolist())} in {len(y)} complete rows"
        )
    return complete[list(settings.features)], y.astype(int), dropped


def new_version(data_sha256: str) -> str:
    """A sortable model version: UTC training time plus the training data's hash."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + data_sha256[:8]


CV_FOLDS = 5


def feature_importance(estimator: Any, X: pd.DataFrame) -> dict[str, float]:
    """Each feature's share of the model's own importance, summing to 1.

    Tree ensembles: their ``feature_importances_``. Linear models: ``|coefficient|``
    times the feature's standard deviation on the training data (the effect of a
    typical change of it, whatever its unit). Equal shares when all are 0.

    >>> from sklearn.linear_model import LogisticRegression
    >>> X = pd.DataFrame({"a": [0.0, 1, 2, 3, 4, 5], "b": [5.0, 3, 4, 4, 3, 5]})
    >>> shares = feature_importance(LogisticRegression().fit(X, [0, 0, 0, 1, 1, 1]), X)
    >>> round(shares["a"], 3), round(sum(shares.values()), 12)
    (1.0, 1.0)
    """
    if hasattr(estimator, "feature_importances_"):
        raw = np.asarray(estimator.feature_importances_, dtype=np.float64)
    else:
        raw = np.abs(np.ravel(estimator.coef_)) * X.std(ddof=0).to_numpy(dtype=np.float64)
    total = float(raw.sum())
    shares = raw / total if total > 0 else np.full(raw.size, 1.0 / raw.size)
    return {str(name): float(share) for name, share in zip(X.columns, shares, strict=True)}


def out_of_fold_proba(
    settings: Settings, X: pd.DataFrame, y: pd.Series
) -> tuple[np.ndarray, int] | None:
    """Positive-class probabilities of out-of-fold predictions on the training data, and
    the number of folds; ``None`` when a class has fewer than 2 rows.

    Stratified, shuffled with a fixed seed, ``min(5, rows of the rarer class)`` folds
    with the configured estimator.
    """
    counts = y.value_counts()
    folds = int(min(CV_FOLDS, counts.min())) if counts.size == 2 else 0
    if folds < 2:
        return None
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    proba = cross_val_predict(
        build_estimator(settings.model), X, y, cv=splitter, method="predict_proba"
    )[:, 1]
    return np.asarray(proba, dtype=np.float64), folds


def cross_validated_score(
    settings: Settings, X: pd.DataFrame, y: pd.Series
) -> dict[str, Any] | None:
    """Metrics of out-of-fold predictions on the training data: the baseline model drift
    is judged against (an in-sample F1 is optimistic, so batches without any drift
    looked worse than it); ``None`` as :func:`out_of_fold_proba`.
    """
    held_out = out_of_fold_proba(settings, X, y)
    if held_out is None:
        return None
    return _cv_metrics(y, *held_out)


def _cv_metrics(y: pd.Series, proba: np.ndarray, folds: int) -> dict[str, Any]:
    return {**compute_metrics(y.to_numpy(), (proba > 0.5).astype(int), proba), "folds": folds}


def _input_name(settings: Settings, data: TrainingData) -> str:
    """How errors name the training data: the file, or the window of stored batches."""
    if data.source == settings.relative(settings.finaldata_file):
        return settings.finaldata_file.name
    return f"the training window ({data.source})"


def train(settings: Settings, *, store: Store | None = None) -> dict[str, Any]:
    """Train on the training window, save the model in the store and export it; return its metadata.

    Raises MissingArtifactError if nothing was ingested, DataValidationError if the
    data cannot be trained on.
    """
    started = time.perf_counter()
    store = store or Store(settings.database_url)
    data = training_data(settings, store)
    frame, data_sha = data.frame, data.sha256
    X, y, dropped = training_matrix(frame, settings, input_name=_input_name(settings, data))

    estimator = build_estimator(settings.model).fit(X, y)

    reference = io.BytesIO()
    ReferenceProfile.from_options(settings.drift).fit(X).save(reference)

    proba = estimator.predict_proba(X)[:, 1]
    in_sample = compute_metrics(y.to_numpy(), (proba > 0.5).astype(int), proba)
    held_out = out_of_fold_proba(settings, X, y)
    out_of_sample = None if held_out is None else _cv_metrics(y, *held_out)
    # CBPE's calibration and sampling error, from the same held-out predictions.
    estimation = None if held_out is None else fit_reference(held_out[0], y.to_numpy())
    row = save_artifact(
        store,
        estimator,
        {
            "version": new_version(data_sha),
            "trained_at": utcnow(),
            "estimator": type(estimator).__name__,
            "params": estimator.get_params(),
            "features": list(settings.features),
            "target": settings.target,
            "training_data": {
                "path": data.source,
                "window": data.window,
                "sha256": data_sha,
                "rows": len(frame),
                "rows_used": len(X),
                "rows_dropped_missing": dropped,
                "class_balance": {str(k): int(v) for k, v in y.value_counts().sort_index().items()},
            },
            "training_score": in_sample,
            "cv_score": out_of_sample,
            "performance_estimation": estimation,
            "feature_importance": feature_importance(estimator, X),
            "library_versions": library_versions(),
        },
        reference.getvalue(),
    )
    export_artifact(settings.output_model_path, row)
    store.add_timing("training", time.perf_counter() - started, len(X))
    artifact = Artifact(estimator, row["metadata"])
    store.add_score(score_record(artifact, in_sample, dataset="training", dataset_sha256=data_sha))
    result = dict(row["metadata"])
    tracked = log_training(settings, estimator, row["metadata"])  # None unless MLflow is on
    if tracked is not None:
        result["mlflow"] = tracked
    return result
