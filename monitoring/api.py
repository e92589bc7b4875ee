"""HTTP views: thin wrappers that parse the request and call :mod:`monitoring`.

Every response is JSON. Errors share one shape::

    {"error": "<HTTP reason phrase>", "message": "<what was wrong>", "status": <code>}

Read-only endpoints are GET; nothing that changes state answers to GET or OPTIONS.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from monitoring.exceptions import DataValidationError, MonitoringError
from monitoring.payloads import frame_from_request
from monitoring.service import Monitor

bp = Blueprint("api", __name__)


def monitor() -> Monitor:
    """The per-process :class:`Monitor` built by the app factory."""
    return current_app.extensions["monitor"]


def _check_rows(frame: Any) -> None:
    limit = current_app.config["MAX_ROWS"]
    if len(frame) > limit:
        raise RowLimitError(f"request has {len(frame)} rows; the limit is {limit}")


class RowLimitError(MonitoringError):
    """More rows than ``api.max_rows``."""

    status_code = 413


@bp.post("/prediction")
def prediction() -> Any:
    """Predict with the deployed model.

    Body: JSON ``{"data": [rows]}`` / a JSON list of rows, ``{"dataset_path": ...}``
    (a file in the data folders), a ``text/csv`` body, or a multipart ``file``.
    Errors: 400 unparseable body, 403 path outside the data folders, 404 missing
    dataset, 413 too large, 415 content type, 422 invalid columns or values,
    503 no model deployed.
    """
    m = monitor()
    frame, name = frame_from_request(request, m.settings)
    _check_rows(frame)
    result = m.predict(frame, input_name=name)
    from monitoring.observability import after_prediction

    return after_prediction(m, frame, result)


@bp.get("/scoring")
def scoring() -> Any:
    """The deployed model's F1 (and other metrics) on the test data; no side effects.

    ``live_performance`` adds each model version's metrics on captured traffic
    labelled through ``POST /feedback`` (refreshed at most once a second, and no
    sooner than 20x the time its last computation took).
    """
    from monitoring.capture import live_performance

    m = monitor()
    # Captured rows arrive all the time: refreshed at most once a second (or less often
    # when it takes long to compute: Monitor.store_cached).
    live = m.store_cached("live_performance", lambda: live_performance(m.store), min_age=1.0)
    return {**m.scoring(), "live_performance": live}


@bp.get("/summarystats")
def summarystats() -> Any:
    """Mean, median, std, min, quartiles and max of each feature of the ingested data."""
    return monitor().summarystats()


@bp.get("/diagnostics")
def diagnostics() -> Any:
    """Missing data, step timings and the dependency check (all cached)."""
    return monitor().diagnostics()


@bp.get("/drift")
def drift_latest() -> Any:
    """Data drift of the latest ingested data against the deployed model's training data."""
    return monitor().drift(record=False)


@bp.post("/drift")
def drift_batch() -> Any:
    """Data drift of the batch in the body (same formats as ``/prediction``); recorded."""
    frame, name = frame_from_request(request, monitor().settings)
    _check_rows(frame)
    return monitor().drift(frame, input_name=name, record=True)


@bp.get("/drift/history")
def drift_history() -> Any:
    """Recorded drift reports, newest first (``?limit=``, ``?full=1`` for the tables)."""
    limit = _int_arg("limit", 50, 1, 1000)
    full = request.args.get("full", "0") in ("1", "true", "yes")
    return {"reports": monitor().store.drift_reports(limit=limit, full=full)}


@bp.get("/runs")
def runs() -> Any:
    """Recorded pipeline runs with their decisions and evidence, newest first."""
    return {"runs": monitor().store.runs(limit=_int_arg("limit", 50, 1, 1000))}


@bp.get("/versions")
def versions() -> Any:
    """Every deployed model version, and which one is live."""
    return {"versions": monitor().versions(), "deployments": monitor().store.deployments()}


@bp.get("/health")
def health() -> Any:
    """Liveness, and the deployed model version (``status`` is ``no_model`` before setup)."""
    return monitor().health()


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


def error_response(status: int, message: str, headers: Any = None) -> Any:
    """The one JSON error shape of the API."""
    body = {"error": HTTP_STATUS_CODES.get(status, "Error"), "message": message, "status": status}
    response = jsonify(body)
    response.status_code = status
    if headers:
        for key, value in headers:
            if key.lower() not in ("content-type", "content-length"):
                response.headers[key] = value
    return response


def register_options_json(app: Flask) -> None:
    """Answer Flask's automatic OPTIONS with JSON too: ``{"allow": [...]}``.

    The view is never run for OPTIONS (Flask answers it from the URL map), so a
    CORS preflight cannot trigger anything.
    """

    @app.after_request
    def _options_json(response: Any) -> Any:
        if request.method == "OPTIONS" and response.status_code == 200 and not response.data:
            allowed = sorted(response.allow)
            response.set_data(json.dumps({"allow": allowed}))
            response.mimetype = "application/json"
        return response


def register_errorhandlers(app: Flask) -> None:
    """Map our exceptions and every HTTP error to the JSON error shape."""

    @app.errorhandler(MonitoringError)
    def _monitoring_error(exc: MonitoringError) -> Any:
        if exc.status_code >= 500:
            app.logger.error("request failed: %s", exc.message)
        if exc.status_code == 500:  # details (server paths, checksums) stay in the log
            return error_response(500, "internal error; see the server log")
        return error_response(exc.status_code, exc.message)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        status = exc.code or 500
        message = exc.description or HTTP_STATUS_CODES.get(status, "")
        if status == 413:
            limit = app.config.get("MAX_CONTENT_LENGTH")
            message = f"request body is larger than the limit of {limit} bytes"
        if status == 405:
            allowed = exc.get_response().headers.get("Allow", "")
            message = f"method {request.method} is not allowed here; allowed: {allowed}"
        return error_response(status, message, exc.get_response().headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        app.logger.exception("unhandled error")
        return error_response(500, "internal error; see the server log")
