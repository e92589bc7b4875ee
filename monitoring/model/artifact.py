"""The model artifact: building, saving, loading and predicting.

A folder with ``trainedmodel.pkl`` (the estimator, under the course's file name)
and ``trainedmodel.json`` (version, features, training-data hash, library versions,
the pickle's SHA-256). Pickles run code, so :func:`load_artifact` refuses one whose
SHA-256 is not the recorded one.
"""

from __future__ import annotations

import pickle
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from scipy.special import expit
from sklearn.base import ClassifierMixin
from sklearn.linear_model import LogisticRegression

from monitoring.config import ESTIMATOR_CLASSES, ModelSettings
from monitoring.data.validation import check_columns, check_not_empty, to_numeric_columns
from monitoring.exceptions import IntegrityError, MissingArtifactError
from monitoring.storage.files import atomic_write_bytes, atomic_write_json, read_json, sha256_bytes

MODEL_FILE = "trainedmodel.pkl"
METADATA_FILE = "trainedmodel.json"


def build_estimator(model: ModelSettings) -> ClassifierMixin:
    """An unfitted instance of the configured (and already checked) estimator."""
    return ESTIMATOR_CLASSES[model.estimator](**model.params)


@dataclass(frozen=True)
class Artifact:
    """A loaded model with its metadata."""

    estimator: Any
    metadata: dict[str, Any]
    folder: Path

    @property
    def version(self) -> str:
        return str(self.metadata["version"])

    @property
    def features(self) -> list[str]:
        return list(self.metadata["features"])

    def feature_matrix(self, frame: pd.DataFrame, *, input_name: str) -> np.ndarray:
        """Validated float64 feature columns of ``frame`` (other columns ignored)."""
        if len(frame) and list(frame.columns) == self.features:
            # Fast path for a frame of exactly the numeric features (what the JSON
            # payload parser builds); the checks below keep their messages.
            values = frame.to_numpy()  # object dtype unless every column is numeric
            if values.dtype.kind in "iuf":
                matrix = values.astype(np.float64, copy=False)
                if np.isfinite(matrix).all():
                    return matrix
        check_not_empty(frame, input_name=input_name)
        check_columns(frame, self.features, input_name=input_name, allow_extra=True)
        numeric = to_numeric_columns(
            frame, self.features, input_name=input_name, allow_missing=False
        )
        return numeric.to_numpy(dtype="float64")

    def predict(self, frame: pd.DataFrame, *, input_name: str = "input") -> dict[str, Any]:
        """Predicted classes and positive-class probabilities for each row."""
        proba = self.positive_proba(self.feature_matrix(frame, input_name=input_name))
        classes = self.estimator.classes_
        # Same rule as predict() for binary classifiers: class 1 when p > 0.5.
        labels = classes[(proba > 0.5).astype(int)]
        return {
            "predictions": [int(v) for v in labels],
            "probabilities": [round(float(p), 6) for p in proba],
        }

    def positive_proba(self, matrix: np.ndarray) -> np.ndarray:
        """Positive-class probabilities of a :meth:`feature_matrix` result.

        A binary ``LogisticRegression`` is evaluated as ``expit(X @ coef_.T +
        intercept_)``, skipping scikit-learn's per-call validation (most of a 10-row
        prediction's time); this equals ``predict_proba`` within one float rounding
        (<= 4.5e-16), as the BLAS sum order follows the values' memory layout. Other
        estimators get ``predict_proba`` with ``assume_finite``.
        """
        estimator = self.estimator
        # a binary logistic regression has one row of coefficients
        if type(estimator) is LogisticRegression and estimator.coef_.shape == (1, matrix.shape[1]):
            scores = (matrix @ estimator.coef_.T + estimator.intercept_).reshape(-1)
            return np.asarray(expit(scores, out=scores))
        frame = pd.DataFrame(matrix, columns=self.features)
        with sklearn.config_context(assume_finite=True):
            return np.asarray(estimator.predict_proba(frame)[:, 1])


def library_versions() -> dict[str, str]:
    """Versions that decide whether a pickle loads and predicts the same."""
    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
    }


def save_artifact(folder: Path, estimator: Any, metadata: dict[str, Any]) -> dict[str, Any]:
    """Write the pickle, then the metadata naming its SHA-256, atomically; return it.

    A crash in between leaves old metadata whose hash no longer matches.
    """
    data = pickle.dumps(estimator, protocol=pickle.HIGHEST_PROTOCOL)
    metadata = {**metadata, "sha256": sha256_bytes(data), "model_file": MODEL_FILE}
    atomic_write_bytes(folder / MODEL_FILE, data)
    atomic_write_json(folder / METADATA_FILE, metadata)
    return metadata


def read_metadata(folder: Path) -> dict[str, Any]:
    """Metadata of the artifact in ``folder``; MissingArtifactError if there is none."""
    metadata = read_json(folder / METADATA_FILE)
    if not isinstance(metadata, dict) or "version" not in metadata:
        raise MissingArtifactError(
            f"no trained model in {folder}; run 'python -m monitoring train' first"
        )
    return metadata


def load_artifact(folder: Path) -> Artifact:
    """Load the artifact in ``folder``.

    Raises MissingArtifactError without a model, IntegrityError when the pickle's
    SHA-256 is not the recorded one or it cannot be read.
    """
    metadata = read_metadata(folder)
    try:
        data = (folder / MODEL_FILE).read_bytes()
    except FileNotFoundError:
        raise MissingArtifactError(f"model file {folder / MODEL_FILE} is missing") from None
    digest = sha256_bytes(data)
    if digest != metadata.get("sha256"):
        raise IntegrityError(
            f"model file {folder / MODEL_FILE} does not match its recorded checksum "
            f"(expected {metadata.get('sha256')}, got {digest}); refusing to load it"
        )
    try:
        estimator = pickle.loads(data)  # noqa: S301 - verified, self-written artifact
    except Exception as exc:
        raise IntegrityError(f"model file {folder / MODEL_FILE} cannot be loaded: {exc}") from exc
    return Artifact(estimator=estimator, metadata=metadata, folder=folder)
