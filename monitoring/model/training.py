"""Training: fit the configured model on ``finaldata.csv`` and save it in the store.

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

import pandas as pd

from monitoring.config import Settings
from monitoring.data.validation import check_binary_target, check_columns, to_numeric_columns
from monitoring.drift import ReferenceProfile
from monitoring.exceptions import DataValidationError, MissingArtifactError
from monitoring.model.artifact import (
    Artifact,
    build_estimator,
    export_artifact,
    library_versions,
    save_artifact,
)
from monitoring.model.scoring import compute_metrics, score_record
from monitoring.storage.files import read_table, sha256_file
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


def train(settings: Settings, *, store: Store | None = None) -> dict[str, Any]:
    """Train on ``finaldata.csv``, save the model in the store and export it; return its metadata.

    Raises MissingArtifactError if nothing was ingested, DataValidationError if the
    data cannot be trained on.
    """
    started = time.perf_counter()
    store = store or Store(settings.database_url)
    path = settings.finaldata_file
    if not path.is_file():
        raise MissingArtifactError(
            f"{settings.public(path)} does not exist; run 'python -m monitoring ingest' first"
        )
    data_sha = sha256_file(path)
    frame = read_table(path)
    X, y, dropped = training_matrix(frame, settings, input_name=path.name)

    estimator = build_estimator(settings.model).fit(X, y)

    reference = io.BytesIO()
    ReferenceProfile.from_options(settings.drift).fit(X).save(reference)

    proba = estimator.predict_proba(X)[:, 1]
    in_sample = compute_metrics(y.to_numpy(), (proba > 0.5).astype(int), proba)
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
                "path": str(path.relative_to(settings.root))
                if path.is_relative_to(settings.root)
                else str(path),
                "sha256": data_sha,
                "rows": len(frame),
                "rows_used": len(X),
                "rows_dropped_missing": dropped,
                "class_balance": {str(k): int(v) for k, v in y.value_counts().sort_index().items()},
            },
            "training_score": in_sample,
            "library_versions": library_versions(),
        },
        reference.getvalue(),
    )
    export_artifact(settings.output_model_path, row)
    store.add_timing("training", time.perf_counter() - started, len(X))
    artifact = Artifact(estimator, row["metadata"])
    store.add_score(score_record(artifact, in_sample, dataset="training", dataset_sha256=data_sha))
    return dict(row["metadata"])
