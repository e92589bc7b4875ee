"""The model artifact: building, saving, loading and predicting.

A trained model is a row of the record store: the pickled estimator, its metadata
(version, features, training-data hash, library versions, the pickle's SHA-256), its
test score and the drift reference profile (``.npz`` bytes). Pickles run code, so
:func:`load_artifact` refuses bytes whose SHA-256 is not the recorded one. The course's
files (``trainedmodel.pkl``, ``trainedmodel.json``, ``reference_profile``) are written
too, as exports (:func:`export_artifact`).
"""

from __future__ import annotations

import io
import pickle
import platform
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from scipy.special import expit
from sklearn.base import ClassifierMixin
from sklearn.linear_model import LogisticRegression

from monitoring.config import ModelSettings, estimator_class
from monitoring.data.validation import check_columns, check_not_empty, to_numeric_columns
from monitoring.drift import ReferenceProfile
from monitoring.exceptions import IntegrityError, NotFoundError
from monitoring.storage.files import atomic_write_bytes, atomic_write_json, sha256_bytes
from monitoring.storage.store import Store

MODEL_FILE = "trainedmodel.pkl"
METADATA_FILE = "trainedmodel.json"
REFERENCE_FILE = "reference_profile"
# Why an artifact was refused (IntegrityError.details), in words a client may see.
CHECKSUM_FAILED = "model artifact failed its checksum"
LOAD_FAILED = "model artifact cannot be unpickled"
# round6 rounds fewer values than this one by one (measured: 0.5x at 10 values, 26x at
# 10,000 against the loop; bench_fastpaths.py "artifact.round6").
ROUND_LOOP_BELOW = 64


def build_estimator(model: ModelSettings) -> ClassifierMixin:
    """An unfitted instance of the configured (and already checked) estimator."""
    return estimator_class(model.estimator)(**model.params)


@dataclass(frozen=True)
class Artifact:
    """A loaded model with its metadata, test score (None until scored) and reference."""

    estimator: Any
    metadata: dict[str, Any]
    score: dict[str, Any] | None = None
    reference_bytes: bytes | None = field(default=None, repr=False)

    @property
    def version(self) -> str:
        return str(self.metadata["version"])

    @cached_property
    def reference(self) -> ReferenceProfile:
        """The drift reference profile of the training data, loaded on first use.

        IntegrityError if there is none, or it is not the one recorded in the metadata.
        """
        data = self.reference_bytes
        if data is None:
            raise IntegrityError(f"model version {self.version} has no drift reference profile")
        expected = self.metadata.get("reference_sha256")
        if expected is not None and sha256_bytes(data) != expected:
            raise IntegrityError(
                f"the drift reference of model version {self.version} does not match its "
                "recorded checksum; refusing to load it"
            )
        return ReferenceProfile.load(io.BytesIO(data))

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
        return self.predict_matrix(self.feature_matrix(frame, input_name=input_name))

    def predict_matrix(self, matrix: np.ndarray) -> dict[str, Any]:
        """:meth:`predict` of a :meth:`feature_matrix` result (finite float64, the
        features in :attr:`features` order)."""
        labels, rounded = self.outputs(self.positive_proba(matrix))
        return {"predictions": labels.tolist(), "probabilities": rounded.tolist()}

    def outputs(self, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The predicted classes (int64) and the probabilities rounded to 6 decimals of
        positive-class probabilities ``proba``."""
        classes = self.estimator.classes_
        # Same rule as predict() for binary classifiers: class 1 when p > 0.5.
        labels = classes[(proba > 0.5).astype(int)].astype(np.int64)
        return labels, round6(proba)

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


def round6(values: np.ndarray) -> np.ndarray:
    """``round(float(v), 6)`` of each value, vectorised and identical to it.

    ``rint(v * 1e6) / 1e6`` is the double nearest to the rounded decimal, as Python's
    ``round`` gives, whenever ``v * 1e6`` is not within rounding error of a half; those
    few values (and non-finite ones) take Python's ``round`` itself.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size < ROUND_LOOP_BELOW:  # a few values: Python's round is cheaper
        return np.array([round(v, 6) for v in values.tolist()], dtype=np.float64)
    scaled = values * 1e6
    out = np.rint(scaled) / 1e6
    fraction = np.abs(scaled - np.floor(scaled) - 0.5)
    near = ~(fraction > 1e-6)  # near a tie, or NaN
    near |= ~np.isfinite(out) | (np.abs(scaled) >= 2.0**52)
    for i in np.flatnonzero(near):
        out[i] = round(float(values[i]), 6)
    return out


def library_versions() -> dict[str, str]:
    """Versions that decide whether a pickle loads and predicts the same."""
    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
    }


def save_artifact(
    store: Store, estimator: Any, metadata: dict[str, Any], reference: bytes
) -> dict[str, Any]:
    """Save a trained model in the store; return its row (as :meth:`Store.model_version`).

    ``metadata`` needs ``version`` and ``trained_at``; the SHA-256 of the pickle and
    of ``reference`` (a saved :class:`~monitoring.drift.ReferenceProfile`) are added.
    """
    data = pickle.dumps(estimator, protocol=pickle.HIGHEST_PROTOCOL)
    metadata = {
        **metadata,
        "sha256": sha256_bytes(data),
        "reference_sha256": sha256_bytes(reference),
        "model_file": MODEL_FILE,
    }
    row = {
        "version": str(metadata["version"]),
        "trained_at": str(metadata["trained_at"]),
        "metadata": metadata,
        "sha256": metadata["sha256"],
        "artifact": data,
        "reference": reference,
    }
    store.add_model_version(**row)
    return {**row, "score": None}


def artifact_from_row(row: dict[str, Any]) -> Artifact:
    """The artifact of a store row with its bytes (:meth:`Store.model_version`).

    IntegrityError when the pickle's SHA-256 is not the recorded one or it cannot
    be unpickled.
    """
    version, data = row["version"], row["artifact"]
    digest = sha256_bytes(data)
    if digest != row["sha256"]:
        raise IntegrityError(
            f"model version {version} does not match its recorded checksum "
            f"(expected {row['sha256']}, got {digest}); refusing to load it",
            details=CHECKSUM_FAILED,
        )
    try:
        estimator = pickle.loads(data)  # noqa: S301 - verified, self-written artifact
    except Exception as exc:
        raise IntegrityError(
            f"model version {version} cannot be loaded: {exc}", details=LOAD_FAILED
        ) from exc
    return Artifact(estimator, row["metadata"], row["score"], row["reference"])


def load_artifact(store: Store, version: str) -> Artifact:
    """Load and verify model ``version`` from the store.

    NotFoundError if it was never trained; IntegrityError as :func:`artifact_from_row`.
    """
    row = store.model_version(version)
    if row is None:
        raise NotFoundError(f"model version '{version}' is not in the record store")
    return artifact_from_row(row)


def export_artifact(folder: Path, row: dict[str, Any]) -> None:
    """Write a store row's ``trainedmodel.pkl``, ``trainedmodel.json`` and reference into
    ``folder``, each atomically (the course's files; nothing reads them back)."""
    atomic_write_bytes(folder / MODEL_FILE, row["artifact"])
    atomic_write_json(folder / METADATA_FILE, row["metadata"])
    atomic_write_bytes(folder / REFERENCE_FILE, row["reference"])
