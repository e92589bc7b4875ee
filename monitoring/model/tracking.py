"""MLflow tracking and model registry, for teams that keep their models there.

Active only when ``MLFLOW_TRACKING_URI`` is set and MLflow is installed
(``pip install -r requirements-mlflow.txt``); otherwise every function here returns
``None`` at once and MLflow is never imported (it is imported on first use, never on
the request path). With it, training, scoring, deployment and rollback each log a run
in the ``mlflow.experiment`` experiment, tagged with the model version:

* training: the estimator's parameters, the training data's hash and size, the
  in-sample and cross-validated metrics, their confusion matrices (JSON artifact) and
  the model (``mlflow.sklearn``, skops format), registered as a new version of
  ``mlflow.registered_model`` with the alias ``challenger``;
* scoring: the test metrics and confusion matrix;
* deployment and rollback: the F1, the version replaced and the model card (Markdown
  artifact); the alias ``champion`` moves to the version made live (a deployed
  challenger loses its ``challenger`` alias). The gate's verdict is a tag of the
  registered version.

MLflow failing (a server down, a refused request) never fails the operation: the
failure is logged as a warning and returned as ``{"error": ...}``. Unless set, the
HTTP retries and timeout of the MLflow client are lowered (2 retries, 10 s) so that a
server that is down costs seconds, not minutes, and MLflow's usage telemetry is off.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import os
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

import sklearn

from monitoring.config import Settings

log = logging.getLogger(__name__)

TRACKING_ENV = "MLFLOW_TRACKING_URI"
VERSION_TAG = "monitoring.version"
CHAMPION, CHALLENGER = "champion", "challenger"
CLIENT_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_DISABLE_TELEMETRY": "true",  # no usage reports to MLflow's makers
}
METRIC_NAMES = ("f1", "precision", "recall", "accuracy", "roc_auc")


@cache
def installed() -> bool:
    """Whether MLflow can be imported (looked up once, without importing it)."""
    return importlib.util.find_spec("mlflow") is not None


def enabled() -> bool:
    """Whether runs are logged: ``MLFLOW_TRACKING_URI`` set and MLflow installed."""
    return bool(os.environ.get(TRACKING_ENV)) and installed()


def _mlflow() -> Any:
    for name, value in CLIENT_DEFAULTS.items():
        os.environ.setdefault(name, value)
    return importlib.import_module("mlflow")


def _safely(what: str, action: Callable[[Any], dict[str, Any]]) -> dict[str, Any] | None:
    """``action(mlflow)`` when enabled; a failure is a warning and ``{"error": ...}``."""
    if not enabled():
        return None
    try:
        return action(_mlflow())
    except Exception as exc:  # noqa: BLE001 - MLflow must never fail the operation
        message = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        log.warning("MLflow: could not log %s: %s", what, message)
        return {"error": message}


def _metrics(prefix: str, metrics: Mapping[str, Any] | None) -> dict[str, float]:
    return {
        f"{prefix}{name}": float(metrics[name])
        for name in METRIC_NAMES
        if metrics and metrics.get(name) is not None
    }


def _start(mlflow: Any, settings: Settings, step: str, version: str) -> Any:
    mlflow.set_experiment(settings.mlflow.experiment)
    return mlflow.start_run(
        run_name=f"{step} {version}", tags={VERSION_TAG: version, "monitoring.step": step}
    )


def _registered(mlflow: Any, settings: Settings, version: str) -> Any | None:
    """The registered model version of our ``version`` (by its tag), or None."""
    client = mlflow.MlflowClient()
    name = settings.mlflow.registered_model
    found = [
        mv
        for mv in client.search_model_versions(f"name='{name}'")
        if mv.tags.get(VERSION_TAG) == version
    ]
    return max(found, key=lambda mv: int(mv.version)) if found else None


def log_training(
    settings: Settings, estimator: Any, metadata: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Log a training run and register the model as the new ``challenger``."""
    version = str(metadata["version"])

    def action(mlflow: Any) -> dict[str, Any]:
        sklearn_flavor = importlib.import_module("mlflow.sklearn")
        data = metadata.get("training_data") or {}
        with _start(mlflow, settings, "train", version) as run:
            params = {f"model.{k}": v for k, v in (metadata.get("params") or {}).items()}
            mlflow.log_params(
                {
                    "estimator": metadata.get("estimator"),
                    "features": ",".join(metadata.get("features") or []),
                    "target": metadata.get("target"),
                    "training_data.sha256": data.get("sha256"),
                    "training_data.rows_used": data.get("rows_used"),
                    **params,
                }
            )
            mlflow.log_metrics(
                {
                    **_metrics("training_", metadata.get("training_score")),
                    **_metrics("cv_", metadata.get("cv_score")),
                }
            )
            matrices = {
                "labels": [0, 1],
                "layout": "[[tn, fp], [fn, tp]]",
                "training": (metadata.get("training_score") or {}).get("confusion_matrix"),
                "cross_validated": (metadata.get("cv_score") or {}).get("confusion_matrix"),
            }
            mlflow.log_dict(matrices, "confusion_matrix.json")
            mlflow.log_dict(dict(metadata), "metadata.json")
            name = settings.mlflow.registered_model
            info = sklearn_flavor.log_model(
                estimator,
                name="model",
                serialization_format="skops",
                pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
                registered_model_name=name,
            )
            registered = str(info.registered_model_version)
            client = mlflow.MlflowClient()
            client.set_model_version_tag(name, registered, VERSION_TAG, version)
            client.set_registered_model_alias(name, CHALLENGER, registered)
            return {
                "run_id": run.info.run_id,
                "registered_model": name,
                "registered_version": registered,
            }

    return _safely(f"the training of {version}", action)


def log_scoring(
    settings: Settings, version: str, metrics: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Log a scoring run: the test metrics and confusion matrix of ``version``."""

    def action(mlflow: Any) -> dict[str, Any]:
        with _start(mlflow, settings, "score", version) as run:
            mlflow.log_param("dataset", metrics.get("dataset", "test"))
            mlflow.log_param("dataset.sha256", metrics.get("dataset_sha256"))
            mlflow.log_metrics({**_metrics("test_", metrics), "test_rows": metrics["n_rows"]})
            mlflow.log_dict(
                {
                    "labels": [0, 1],
                    "layout": "[[tn, fp], [fn, tp]]",
                    "test": metrics.get("confusion_matrix"),
                },
                "confusion_matrix.json",
            )
            return {"run_id": run.info.run_id}

    return _safely(f"the scoring of {version}", action)


def log_deployment(
    settings: Settings,
    *,
    action: str,
    version: str,
    previous: str | None,
    f1: float | None,
    model_card: str | None,
) -> dict[str, Any] | None:
    """Log a deployment or rollback (``action``) and move the ``champion`` alias to
    ``version`` (a ``challenger`` alias on it is removed)."""

    def run_it(mlflow: Any) -> dict[str, Any]:
        with _start(mlflow, settings, action, version) as run:
            mlflow.log_params({"action": action, "previous_version": previous})
            if f1 is not None:
                mlflow.log_metric("test_f1", float(f1))
            if model_card:
                mlflow.log_text(model_card, "model_card.md")
            out: dict[str, Any] = {"run_id": run.info.run_id, "registered_version": None}
        registered = _registered(mlflow, settings, version)
        if registered is not None:
            client, name = mlflow.MlflowClient(), settings.mlflow.registered_model
            client.set_registered_model_alias(name, CHAMPION, registered.version)
            if CHALLENGER in (registered.aliases or []):
                client.delete_registered_model_alias(name, CHALLENGER)
            out["registered_version"] = str(registered.version)
        return out

    return _safely(f"the {action} of {version}", run_it)


def log_gate(settings: Settings, version: str, verdict: Mapping[str, Any]) -> dict[str, Any] | None:
    """Tag the registered ``version`` with the gate's verdict (``accepted``/``rejected``);
    a rejected challenger keeps its ``challenger`` alias."""

    def action(mlflow: Any) -> dict[str, Any]:
        registered = _registered(mlflow, settings, version)
        if registered is None:
            return {"registered_version": None}
        name = settings.mlflow.registered_model
        client = mlflow.MlflowClient()
        outcome = "accepted" if verdict["accepted"] else "rejected"
        client.set_model_version_tag(name, registered.version, "gate", outcome)
        client.set_model_version_tag(name, registered.version, "gate.verdict", json.dumps(verdict))
        return {"registered_version": str(registered.version), "gate": outcome}

    return _safely(f"the gate verdict of {version}", action)
