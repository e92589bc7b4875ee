"""Operations routes: ``GET /metrics``, ``POST /feedback``, ``GET /dashboard``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, current_app, request
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from monitoring.capture.feedback import apply_feedback
from monitoring.capture.records import record, should_capture
from monitoring.exceptions import BadRequestError
from monitoring.reports.dashboard import dashboard_html
from monitoring.web.logs import configure_json_logging, new_request_id, request_id
from monitoring.web.metrics import _after, _before, count_predictions, render_metrics

bp = Blueprint("ops", __name__)


def _monitor() -> Any:
    return current_app.extensions["monitor"]


@bp.get("/metrics")
def metrics() -> Any:
    """Prometheus metrics (text exposition format)."""
    m = _monitor()
    return Response(render_metrics(m.settings, m.store), mimetype=CONTENT_TYPE_LATEST)


@bp.post("/feedback")
def feedback() -> Any:
    """Ground-truth labels for captured predictions, by request id or row id.

    Body: ``{"request_id": "...", "labels": [0, 1, ...]}`` (one label per row of
    that request, in order), ``{"row_id": 17, "label": 1}``, or
    ``{"feedback": [items]}``. Errors: 400 unparseable body, 404 unknown ids
    (all listed; nothing stored), 422 invalid labels or wrong label count.
    """

    body = request.get_json(silent=True)
    if body is None:
        raise BadRequestError("feedback must be a JSON body")
    return apply_feedback(_monitor().store, body)


@bp.get("/dashboard")
def dashboard() -> Any:
    """The monitoring dashboard: one self-contained HTML page (cached)."""

    return Response(dashboard_html(_monitor()), mimetype="text/html")


def init_app(app: Flask) -> None:
    """Install request ids, JSON logs, request metrics and the ops routes on ``app``."""
    if not app.testing:
        configure_json_logging()
    app.before_request(_before)
    app.after_request(_after)
    app.register_blueprint(bp)


def after_prediction(monitor: Any, frame: Any, result: dict[str, Any]) -> dict[str, Any]:
    """Count a prediction for the metrics and capture it; return the response body.

    Adds ``request_id`` and, when the request was captured, ``row_ids`` (one per
    row, for ``POST /feedback``).
    """

    version = str(result.get("model_version"))
    count_predictions(version, result["predictions"])
    rid = request_id() or new_request_id()
    body = {**result, "request_id": rid}
    if should_capture(monitor.settings):
        body["row_ids"] = record(
            monitor.store,
            monitor.settings,
            request_id=rid,
            model_version=version,
            frame=frame,
            result=result,
        )
    return body
