"""HTTP views: thin wrappers that parse the request and call :mod:`monitoring`.

Every response is JSON. Errors share one shape::

    {"error": "<HTTP reason phrase>", "message": "<what was wrong>", "status": <code>}

Read-only endpoints are GET; nothing that changes state answers to GET or OPTIONS.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, request

from monitoring.capture import record, should_capture
from monitoring.data.payloads import frame_from_request
from monitoring.exceptions import DataValidationError, RowLimitError
from monitoring.model.deployment import list_versions
from monitoring.readmodels import ReadModels
from monitoring.web.logs import new_request_id, request_id
from monitoring.web.metrics import count_predictions
from monitoring.web.openapi import doc
from monitoring.web.schemas import DATA_BODY, DATA_ERRORS, LIMIT, PATH_QUERY, STR, query

bp = Blueprint("api", __name__)


def views() -> ReadModels:
    """The per-process :class:`~monitoring.readmodels.ReadModels` of the app factory."""
    return current_app.extensions["readmodels"]


def _check_rows(frame: Any) -> None:
    limit = current_app.config["MAX_ROWS"]
    if len(frame) > limit:
        raise RowLimitError(f"request has {len(frame)} rows; the limit is {limit}")


@bp.post("/prediction")
@doc(
    "Predict with the deployed model",
    "Classes and positive-class probabilities for each row.",
    ok="Prediction",
    errors=DATA_ERRORS,
    params=[PATH_QUERY],
    body=DATA_BODY,
)
def prediction() -> Any:
    """Predict with the deployed model.

    Body: JSON ``{"data": [rows]}`` / a JSON list of rows, ``{"dataset_path": ...}``
    (a file in the data folders), a ``text/csv`` body, or a multipart ``file``.
    Errors: 400 unparseable body, 403 path outside the data folders, 404 missing
    dataset, 413 too large, 415 content type, 422 invalid columns or values,
    503 no model deployed.
    """
    v = views()
    frame, name = frame_from_request(request, v.settings)
    _check_rows(frame)
    return after_prediction(v, frame, v.model.predict(frame, input_name=name))


@bp.get("/scoring")
@doc(
    "Score of the deployed model",
    "F1 and other metrics on the test data, with the model-drift verdict.",
    ok="Scoring",
    errors=(503,),
)
def scoring() -> Any:
    """The deployed model's F1 (and other metrics) on the test data; no side effects.

    ``live_performance`` adds each model version's metrics on captured traffic
    labelled through ``POST /feedback`` (refreshed at most once a second, and no
    sooner than 20x the time its last computation took).
    """
    scores = views().scoring
    return {**scores.current(), "live_performance": scores.live()}


@bp.get("/summarystats")
@doc(
    "Summary statistics",
    "Mean, median, std, min, quartiles and max of each feature of the ingested data.",
    ok="SummaryStats",
    errors=(503,),
)
def summarystats() -> Any:
    """Mean, median, std, min, quartiles and max of each feature of the ingested data."""
    return views().profile.summary()


@bp.get("/diagnostics")
@doc(
    "Diagnostics",
    "Missing data, step timings and the dependency check (cached).",
    ok="Diagnostics",
)
def diagnostics() -> Any:
    """Missing data, step timings and the dependency check (all cached)."""
    return views().diagnostics.current()


@bp.get("/drift")
@doc(
    "Drift of the ingested data",
    "Data drift of the latest ingested data against the training data; not recorded.",
    ok="DriftReport",
    errors=(422, 503),
)
def drift_latest() -> Any:
    """Data drift of the latest ingested data against the deployed model's training data."""
    return views().drift.latest()


@bp.post("/drift")
@doc(
    "Drift of a batch",
    "Data drift of the rows in the body (same formats as /prediction); recorded.",
    ok="DriftReport",
    errors=DATA_ERRORS,
    params=[PATH_QUERY],
    body=DATA_BODY,
)
def drift_batch() -> Any:
    """Data drift of the batch in the body (same formats as ``/prediction``); recorded."""
    frame, name = frame_from_request(request, views().settings)
    _check_rows(frame)
    return views().drift.record(frame, input_name=name)


@bp.get("/drift/history")
@doc(
    "Drift history",
    "Recorded drift reports, newest first.",
    ok="DriftHistory",
    errors=(422,),
    params=[LIMIT, query("full", STR, "1/true/yes: include the per-column tables.")],
)
def drift_history() -> Any:
    """Recorded drift reports, newest first (``?limit=``, ``?full=1`` for the tables)."""
    limit = _int_arg("limit", 50, 1, 1000)
    full = request.args.get("full", "0") in ("1", "true", "yes")
    return {"reports": views().store.drift_reports(limit=limit, full=full)}


@bp.get("/runs")
@doc(
    "Pipeline runs",
    "Recorded pipeline runs with their decisions and evidence, newest first.",
    ok="Runs",
    errors=(422,),
    params=[LIMIT],
)
def runs() -> Any:
    """Recorded pipeline runs with their decisions and evidence, newest first."""
    return {"runs": views().store.runs(limit=_int_arg("limit", 50, 1, 1000))}


@bp.get("/versions")
@doc(
    "Model versions",
    "Every deployed model version and the deployment history.",
    ok="Versions",
)
def versions() -> Any:
    """Every deployed model version, and which one is live."""
    v = views()
    return {"versions": list_versions(v.settings), "deployments": v.store.deployments()}


@bp.get("/health")
@doc(
    "Liveness",
    "Always open (no token). 'no_model' before the first deployment.",
    ok="Health",
    tag="ops",
)
def health() -> Any:
    """Liveness, and the deployed model version (``status`` is ``no_model`` before setup)."""
    return views().model.health()


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise DataValidationError(
            f"query parameter '{name}' must be an integer, got {raw!r}"
        ) from None
    if not low <= value <= high:
        raise DataValidationError(f"query parameter '{name}' must be between {low} and {high}")
    return value


def after_prediction(views: ReadModels, frame: Any, result: dict[str, Any]) -> dict[str, Any]:
    """Count a prediction for the metrics and capture it; return the response body.

    Adds ``request_id`` and, when the request was captured, ``row_ids`` (one per
    row, for ``POST /feedback``).
    """
    version = str(result.get("model_version"))
    count_predictions(version, result["predictions"])
    rid = request_id() or new_request_id()
    body = {**result, "request_id": rid}
    if should_capture(views.settings):
        body["row_ids"] = record(
            views.store,
            views.settings,
            request_id=rid,
            model_version=version,
            frame=frame,
            result=result,
        )
    return body
