"""Operations routes (``GET /metrics``, ``POST /feedback``, ``GET /dashboard``) and the
request hooks: request ids, JSON logs, request metrics."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, request
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from monitoring.capture.feedback import apply_feedback
from monitoring.exceptions import BadRequestError
from monitoring.reports.dashboard import dashboard_html
from monitoring.web.api import views
from monitoring.web.logs import configure_json_logging
from monitoring.web.metrics import finish_request, render_metrics, start_request
from monitoring.web.openapi import doc
from monitoring.web.schemas import ANY_OBJ, INT, STR, array, json_body, obj, text

bp = Blueprint("ops", __name__)


@bp.get("/metrics")
@doc("Prometheus metrics", ok=text("text/plain"), tag="ops")
def metrics() -> Any:
    """Request, prediction and pipeline metrics in the Prometheus text format."""
    v = views()
    return Response(render_metrics(v.settings, v.store), mimetype=CONTENT_TYPE_LATEST)


@bp.post("/feedback")
@doc(
    "Ground-truth feedback",
    ok=obj(("labelled_rows",), labelled_rows=INT, request_ids=array(STR), row_ids=array(INT)),
    errors=(400, 404, 413, 415, 422),
    body=json_body(
        ANY_OBJ,
        '{"request_id": "...", "labels": [0, 1]}, {"row_id": 17, "label": 1} or '
        '{"feedback": [items]}.',
    ),
)
def feedback() -> Any:
    """Labels for captured predictions, by request id or row id (all or nothing).

    ``labels`` are one per row of that request, in order; unknown ids give 404 (all
    listed, nothing stored), invalid labels or a wrong label count 422.
    """
    body = request.get_json(silent=True)
    if body is None:
        raise BadRequestError("feedback must be a JSON body")
    v = views()
    return apply_feedback(v.store, v.settings, body)


@bp.get("/dashboard")
@doc("Dashboard", ok=text("text/html"), errors=(503,), tag="ops")
def dashboard() -> Any:
    """The monitoring dashboard as one self-contained HTML page."""
    return Response(dashboard_html(views()), mimetype="text/html")


def init_app(app: Flask) -> None:
    """Install request ids, JSON logs, request metrics and the ops routes on ``app``."""
    if not app.testing:
        configure_json_logging()
    app.before_request(start_request)
    app.after_request(finish_request)
    app.register_blueprint(bp)
